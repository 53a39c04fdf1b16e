"""E-paper driver over framebuf: shows an image made of 1-bit planes (MONO_HLSB, MSB first, row-major).

An image is one plane (black/white) or two planes (black, then red or yellow), each ``ceil(width / 8) * height``
bytes; a set bit in the black plane is a black pixel, a set bit in the colour plane is a coloured pixel (colour
wins). ``EPaper`` is virtual (keeps the framebuffers, counts refreshes); a real panel driver subclasses it and
overrides ``_push`` to send the planes over SPI.
"""

try:
    import framebuf
except ImportError:  # CPython host (simulator, tests): a pure-Python stand-in for the subset used here
    from esltag import hostfb as framebuf  # type: ignore[no-redef]

WHITE = 0
BLACK = 1
COLOR = 2


class EPaper:
    def __init__(self, width: int, height: int, planes: int = 1) -> None:
        if planes not in (1, 2):
            raise ValueError("planes must be 1 or 2")
        self.width = width
        self.height = height
        self.planes = planes
        self.plane_size = ((width + 7) // 8) * height
        self._buffers = [bytearray(self.plane_size) for _ in range(planes)]
        self._frames = [framebuf.FrameBuffer(buf, width, height, framebuf.MONO_HLSB) for buf in self._buffers]
        self.refreshes = 0
        self.shown: bytes | None = None

    def accepts(self, image: bytes) -> bool:
        return len(image) in (self.plane_size, self.plane_size * self.planes)

    def show(self, image: bytes) -> bool:
        """Copy the planes into the framebuffers and refresh; False (nothing shown) when the size does not fit."""
        if not self.accepts(image):
            return False
        for plane in range(self.planes):
            start = plane * self.plane_size
            chunk = image[start : start + self.plane_size]
            buf = self._buffers[plane]
            if len(chunk) == self.plane_size:
                buf[:] = chunk
            else:
                self._frames[plane].fill(0)
        self.shown = bytes(image)
        self._push()
        self.refreshes += 1
        return True

    def refresh(self) -> None:
        self._push()
        self.refreshes += 1

    def _push(self) -> None:
        """Send the planes to the panel; the virtual panel has nothing to do."""

    def pixel(self, x: int, y: int) -> int:
        """WHITE, BLACK or COLOR at (x, y) as the panel would show it."""
        if self.planes == 2 and self._frames[1].pixel(x, y):
            return COLOR
        return BLACK if self._frames[0].pixel(x, y) else WHITE

    def text(self, message: str, x: int = 0, y: int = 0) -> None:
        """Draw a status text in black (boot screen, errors)."""
        self._frames[0].text(message, x, y, 1)
