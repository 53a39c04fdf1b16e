# esltag.hostfb (the CPython stand-in) must behave like the real framebuf for what esltag.epaper uses.
import framebuf

from esltag import hostfb


def _pair(width, height):
    real_buf = bytearray(((width + 7) // 8) * height)
    host_buf = bytearray(len(real_buf))
    real = framebuf.FrameBuffer(real_buf, width, height, framebuf.MONO_HLSB)
    host = hostfb.FrameBuffer(host_buf, width, height, hostfb.MONO_HLSB)
    return real, real_buf, host, host_buf


def test_format_constant_matches():
    assert hostfb.MONO_HLSB == framebuf.MONO_HLSB


def test_pixels_and_fill_match_real_framebuf():
    real, real_buf, host, host_buf = _pair(13, 5)
    for x, y, c in ((0, 0, 1), (12, 4, 1), (7, 2, 1), (8, 2, 1), (7, 2, 0), (20, 1, 1), (3, 3, 1)):
        real.pixel(x, y, c)
        host.pixel(x, y, c)
        assert real_buf == host_buf
    for y in range(5):
        for x in range(13):
            assert real.pixel(x, y) == host.pixel(x, y)
    real.fill(1)
    host.fill(1)
    for y in range(5):
        for x in range(13):
            assert real.pixel(x, y) == host.pixel(x, y) == 1
    real.fill(0)
    host.fill(0)
    assert real_buf == host_buf == bytearray(len(real_buf))
