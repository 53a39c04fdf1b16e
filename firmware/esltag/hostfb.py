"""Pure-Python stand-in for the MONO_HLSB subset of MicroPython's ``framebuf`` that esltag.epaper uses.

Used only where ``framebuf`` is missing (CPython: the simulator and host tests), so the tag logic runs unchanged
there. tests/test_hostfb.py checks it against the real ``framebuf`` under MicroPython. ``text`` draws nothing.
"""

MONO_HLSB = 3


class FrameBuffer:
    def __init__(self, buffer: bytearray, width: int, height: int, format: int, stride: int = 0) -> None:
        if format != MONO_HLSB:
            raise ValueError("only MONO_HLSB is supported")
        self.buffer = buffer
        self.width = width
        self.height = height
        self.stride = (width + 7) // 8

    def fill(self, c: int) -> None:
        value = 0xFF if c else 0
        for index in range(len(self.buffer)):
            self.buffer[index] = value

    def pixel(self, x: int, y: int, c: int = -1) -> int:
        if not (0 <= x < self.width and 0 <= y < self.height):
            return 0
        index = y * self.stride + (x >> 3)
        mask = 0x80 >> (x & 7)
        if c == -1:
            return 1 if self.buffer[index] & mask else 0
        if c:
            self.buffer[index] |= mask
        else:
            self.buffer[index] &= ~mask & 0xFF
        return 0

    def text(self, s: str, x: int, y: int, c: int = 1) -> None:
        """No font on the host: status text is not drawn."""
