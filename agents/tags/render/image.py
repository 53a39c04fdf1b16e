"""The rendered label: packed 1-bit planes in the panel's native orientation, and a PNG preview of them.

One plane per ink (black, and red or yellow on three-colour panels), packed 8 pixels to a byte in the panel's
native scan order, exactly as :mod:`agents.tags.encoding` sends them. The content hash of the planes tells the
tag service that a tag already shows a label. The preview draws exactly the planes (white, black, accent), in
view or native orientation, scaled by whole pixels only so that what a tester sees is what the tag shows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import IO, Literal

import numpy as np
from PIL import Image

from agents.tags import encoding
from agents.tags.panels import Panel

__all__ = ["TO_NATIVE", "LabelImage"]


@dataclass(frozen=True, slots=True)
class LabelImage:
    """A rendered label: packed 1-bit planes in the panel's native orientation (see ``encoding``)."""

    panel: Panel
    planes: tuple[bytes, ...]

    @property
    def black(self) -> bytes:
        """The black plane."""
        return self.planes[0]

    @property
    def accent(self) -> bytes | None:
        """The red/yellow plane, or ``None`` on a black/white panel."""
        return self.planes[1] if len(self.planes) > 1 else None

    def content_hash(self) -> str:
        """Hash of what the tag will show; equal hashes mean nothing needs sending."""
        return encoding.content_hash(self.panel, self.planes)

    def encode(self, kind: encoding.Encoding = "zlib") -> encoding.EncodedImage:
        """The payload to send, with its hash."""
        return encoding.encode(self.panel, self.planes, kind)

    def framebuffer(self) -> bytes:
        """The planes in the serial tag firmware's layout, rows padded to bytes (``encoding.encode_framebuffer``)."""
        return encoding.encode_framebuffer(self.panel, self.planes)

    def plane_array(self, index: int) -> np.ndarray:
        """One plane as a native ``(height, width)`` boolean array (True = ink)."""
        bits = np.unpackbits(np.frombuffer(self.planes[index], dtype=np.uint8))
        count = self.panel.width * self.panel.height
        return bits[:count].reshape(self.panel.height, self.panel.width).astype(bool)

    def preview(self, scale: int = 1, orientation: Literal["view", "native"] = "view") -> Image.Image:
        """An RGB image of exactly the planes (white, black, accent), optionally scaled by whole pixels."""
        if scale < 1:
            raise ValueError("scale must be a positive integer")
        rgb = np.full((self.panel.height, self.panel.width, 3), 255, dtype=np.uint8)
        accent_rgb = self.panel.colour_mode.accent_rgb
        if accent_rgb is not None:
            rgb[self.plane_array(1)] = accent_rgb
        rgb[self.plane_array(0)] = (0, 0, 0)
        image = Image.fromarray(rgb)
        if orientation == "view" and self.panel.rotation:
            image = image.transpose(_TO_VIEW[self.panel.rotation])
        if scale > 1:
            image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
        return image

    def save_png(self, path: str | os.PathLike[str] | IO[bytes], scale: int = 1) -> None:
        """Write the preview as a PNG (deterministic bytes: no timestamps or text chunks)."""
        self.preview(scale).save(path, format="PNG", optimize=False)


# Rotating a view-orientation image into native scan order and back (Pillow's ROTATE_90 is counter-clockwise).
TO_NATIVE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
_TO_VIEW = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}
