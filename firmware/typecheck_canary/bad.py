"""Deliberately wrong MicroPython code: the type check MUST reject this file (proves the check is live).

scripts/firmware-test fails when mypy accepts it.
"""

import framebuf

buffer = bytearray(8)
frame = framebuf.FrameBuffer(buffer, "eight", 8, framebuf.MONO_HLSB)  # width must be an int
frame.pixel(0, 0, "black")  # colour must be an int
frame.frobnicate()  # no such method
