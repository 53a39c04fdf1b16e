"""On-air image encodings for e-ink tags: raw 1-bit planes, OEPL-compatible zlib, and a content hash.

Why these two encodings: raw planes are what every tag can blit without decoding, and the zlib form is
what OpenEPaperLink tags (802.15.4 and the ATC/OEPL BLE firmware) inflate in 4 KB of RAM; a typical
price label compresses to a few per cent of its raw size, which is what matters on a slow serial bus
or BLE link. Both are pure functions of the planes, so the simulator and the gateway agree byte for
byte. Layouts (checked against OEPL ``makeimage.cpp`` and the OEPL Home Assistant
integration's ``image_upload.py``):

Plane layout (``raw``)
    One plane = the panel's native ``width x height`` pixels, row-major from the top-left pixel, packed
    8 pixels per byte **MSB first** (pixel x=0 is bit 7 of byte 0), as one continuous bit stream with
    **no per-row padding**, zero-padded only at the very end: ``ceil(width * height / 8)`` bytes (this
    is ``numpy.packbits`` of the flattened bitmap). Bit = 1 means ink: black in the black plane, red or
    yellow in the accent plane; 0 means white (or "no accent"). A panel whose controller wants the
    opposite polarity inverts in its driver. ``raw`` is the black plane, followed by the accent plane
    for three-colour panels (OEPL's ``bpp = 2``).

zlib payload (OEPL data type ``0x30``)
    ``[u32 LE inner_size][zlib stream]``, where the zlib stream inflates to ``inner_size`` bytes:
    ``[0x06][width u16 LE][height u16 LE][bpp u8]`` followed by the raw planes above. The stream uses
    a **4 KB window** (``wbits=12``, so the zlib header's CMF byte is ``0x48``) so tags can inflate it
    in 4 KB of RAM. We compress at level 9; the decoder refuses any other window size or a size prefix
    that does not match, and never inflates more than the declared size (no zip bombs).

Framebuffer layout (``framebuffer``)
    What the serial tag firmware stores and blits (``framebuf.MONO_HLSB``): the same MSB-first row-major
    packing, but every row starts on a byte boundary, so a plane is ``ceil(width / 8) * height`` bytes.
    It equals ``raw`` when the width is a multiple of 8 (152, 200, 296, 400) and differs otherwise (250,
    212). :func:`encode_framebuffer` converts, so the bytes the serial link carries are exactly the bytes
    the tag's e-paper driver scans out.

Content hash
    ``sha256`` over a version tag, the panel's native name (size and colour mode) and the raw planes.
    It is hashed from the raw planes, not the zlib bytes, so a different zlib build or level never
    makes an unchanged image look changed; the tag service stores it per tag and skips any transfer
    whose hash the tag already shows. Rotation is not part of it: the planes are already native.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agents.tags.panels import Panel

__all__ = [
    "OEPL_DATATYPE_RAW_BW",
    "OEPL_DATATYPE_RAW_COLOUR",
    "OEPL_DATATYPE_ZLIB",
    "ZLIB_WBITS",
    "DecodedImage",
    "EncodedImage",
    "ImageEncodingError",
    "content_hash",
    "decode_raw",
    "decode_zlib",
    "encode",
    "compress_framebuffer",
    "decode_framebuffer",
    "encode_framebuffer",
    "inflate_framebuffer",
    "encode_raw",
    "encode_zlib",
]

#: OEPL data-type bytes for the three encodings (raw 1 bpp, raw 2 bpp, zlib).
OEPL_DATATYPE_RAW_BW = 0x20
OEPL_DATATYPE_RAW_COLOUR = 0x21
OEPL_DATATYPE_ZLIB = 0x30

#: zlib window bits: 2**12 = 4096-byte window, what OEPL tags can inflate.
ZLIB_WBITS = 12
_ZLIB_CMF = 0x48  # CM=8 (deflate), CINFO=4 (window 2**(4+8))
_INNER_HEADER = struct.Struct("<BHHB")  # hdr_len=6, width, height, bpp
_SIZE_PREFIX = struct.Struct("<I")
_HASH_DOMAIN = b"storeedge.tags.image.v1\x00"
#: Largest inner buffer the decoder accepts: 2 planes of a 1024x1024 panel plus the header.
MAX_INNER_SIZE = _INNER_HEADER.size + 2 * (1024 * 1024 // 8)

Encoding = Literal["raw", "zlib"]


class ImageEncodingError(ValueError):
    """Planes that do not fit the panel, or a payload that is truncated, corrupt or not OEPL-shaped."""


@dataclass(frozen=True, slots=True)
class DecodedImage:
    """What a zlib payload says about itself: native size, plane count and the planes."""

    width: int
    height: int
    planes: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class EncodedImage:
    """An image ready to send: the payload, its encoding, the content hash and the raw size."""

    encoding: Encoding
    payload: bytes
    content_hash: str
    raw_size: int

    @property
    def ratio(self) -> float:
        """Payload size as a fraction of the raw planes' size."""
        return len(self.payload) / self.raw_size


def _check_planes(panel: Panel, planes: Sequence[bytes]) -> None:
    if len(planes) != panel.planes:
        raise ImageEncodingError(f"panel {panel.base_name} needs {panel.planes} plane(s), got {len(planes)}")
    for index, plane in enumerate(planes):
        if len(plane) != panel.plane_bytes:
            raise ImageEncodingError(
                f"plane {index} for panel {panel.base_name} must be {panel.plane_bytes} bytes, got {len(plane)}"
            )


def encode_raw(panel: Panel, planes: Sequence[bytes]) -> bytes:
    """Raw planes, black first, as described in the module docstring."""
    _check_planes(panel, planes)
    return b"".join(planes)


def decode_raw(panel: Panel, data: bytes) -> tuple[bytes, ...]:
    """Split a raw buffer back into its planes, checking the size against the panel."""
    size = panel.plane_bytes
    if len(data) != size * panel.planes:
        raise ImageEncodingError(
            f"raw image for panel {panel.base_name} must be {size * panel.planes} bytes, got {len(data)}"
        )
    return tuple(data[i * size : (i + 1) * size] for i in range(panel.planes))


def encode_framebuffer(panel: Panel, planes: Sequence[bytes]) -> bytes:
    """The planes in the firmware's framebuffer layout (rows padded to whole bytes), black first."""
    _check_planes(panel, planes)
    count = panel.width * panel.height
    out = []
    for plane in planes:
        bits = np.unpackbits(np.frombuffer(plane, dtype=np.uint8))[:count].reshape(panel.height, panel.width)
        out.append(np.packbits(bits, axis=1).tobytes())
    return b"".join(out)


def decode_framebuffer(panel: Panel, data: bytes) -> tuple[bytes, ...]:
    """Inverse of :func:`encode_framebuffer`: the raw planes (no row padding) of a framebuffer-layout image."""
    row_bytes = (panel.width + 7) // 8
    plane_size = row_bytes * panel.height
    if len(data) != plane_size * panel.planes:
        raise ImageEncodingError(
            f"framebuffer for panel {panel.base_name} must be {plane_size * panel.planes} bytes, got {len(data)}"
        )
    count = panel.width * panel.height
    planes = []
    for index in range(panel.planes):
        rows = np.frombuffer(data[index * plane_size : (index + 1) * plane_size], dtype=np.uint8)
        bits = np.unpackbits(rows.reshape(panel.height, row_bytes), axis=1)[:, : panel.width]
        planes.append(np.packbits(bits.reshape(count)).tobytes())
    return tuple(planes)


def compress_framebuffer(framebuffer: bytes, level: int = 9) -> bytes:
    """The tag image object in compressed form: a bare zlib stream (4 KB window) of the framebuffer bytes.

    BLE tags take either form as an OTS image object (the ESL spec leaves the image format to the vendor): an object
    of exactly the framebuffer size is raw, anything else must inflate to exactly that size.
    """
    compressor = zlib.compressobj(level=level, method=zlib.DEFLATED, wbits=ZLIB_WBITS)
    return compressor.compress(framebuffer) + compressor.flush()


def inflate_framebuffer(data: bytes, size: int) -> bytes:
    """Inverse of :func:`compress_framebuffer`; never inflates past ``size`` bytes (no zip bombs)."""
    if not data or data[0] != _ZLIB_CMF:
        raise ImageEncodingError("compressed image must be a zlib stream with a 4 KB window (CMF 0x48)")
    return _inflate_exact(data, size, "compressed image")


def _inflate_exact(stream: bytes, size: int, what: str) -> bytes:
    """Inflate a 4 KB-window zlib stream that must hold exactly ``size`` bytes; reads at most one byte more."""
    inflater = zlib.decompressobj(wbits=ZLIB_WBITS)
    try:
        out = inflater.decompress(stream, size + 1)
    except zlib.error as exc:
        raise ImageEncodingError(f"corrupt {what}: {exc}") from exc
    if not inflater.eof or inflater.unused_data or len(out) != size:
        raise ImageEncodingError(f"{what} inflates to {len(out)} bytes (complete: {inflater.eof}), expected {size}")
    return out


def encode_zlib(panel: Panel, planes: Sequence[bytes], level: int = 9) -> bytes:
    """The OEPL zlib payload (type ``0x30``) with a 4 KB window."""
    _check_planes(panel, planes)
    inner = _INNER_HEADER.pack(_INNER_HEADER.size, panel.width, panel.height, panel.planes) + b"".join(planes)
    compressor = zlib.compressobj(level=level, method=zlib.DEFLATED, wbits=ZLIB_WBITS)
    stream = compressor.compress(inner) + compressor.flush()
    return _SIZE_PREFIX.pack(len(inner)) + stream


def decode_zlib(payload: bytes, panel: Panel | None = None) -> DecodedImage:
    """Inflate an OEPL zlib payload and check every length; with ``panel``, also check it matches."""
    if len(payload) < _SIZE_PREFIX.size + 2:
        raise ImageEncodingError(f"zlib payload too short ({len(payload)} bytes)")
    (inner_size,) = _SIZE_PREFIX.unpack_from(payload)
    if not _INNER_HEADER.size < inner_size <= MAX_INNER_SIZE:
        raise ImageEncodingError(f"zlib payload declares an implausible size of {inner_size} bytes")
    stream = payload[_SIZE_PREFIX.size :]
    if stream[0] != _ZLIB_CMF:
        raise ImageEncodingError(f"zlib stream must use a 4 KB window (CMF 0x48), got CMF 0x{stream[0]:02x}")
    inner = _inflate_exact(stream, inner_size, "zlib stream")
    hdr_len, width, height, bpp = _INNER_HEADER.unpack_from(inner)
    if hdr_len != _INNER_HEADER.size or bpp not in (1, 2) or width == 0 or height == 0:
        raise ImageEncodingError(f"bad inner header: hdr_len={hdr_len} width={width} height={height} bpp={bpp}")
    plane_size = (width * height + 7) // 8
    body = inner[_INNER_HEADER.size :]
    if len(body) != plane_size * bpp:
        raise ImageEncodingError(
            f"{width}x{height} bpp={bpp} needs {plane_size * bpp} bytes of planes, got {len(body)}"
        )
    if panel is not None and (width, height, bpp) != (panel.width, panel.height, panel.planes):
        raise ImageEncodingError(
            f"payload is {width}x{height} bpp={bpp}, panel {panel.base_name} is "
            f"{panel.width}x{panel.height} bpp={panel.planes}"
        )
    planes = tuple(body[i * plane_size : (i + 1) * plane_size] for i in range(bpp))
    return DecodedImage(width=width, height=height, planes=planes)


def content_hash(panel: Panel, planes: Sequence[bytes]) -> str:
    """Hex sha256 identifying what the tag will show (see the module docstring)."""
    _check_planes(panel, planes)
    digest = hashlib.sha256(_HASH_DOMAIN)
    digest.update(panel.base_name.encode("ascii") + b"\x00")
    for plane in planes:
        digest.update(plane)
    return digest.hexdigest()


def encode(panel: Panel, planes: Sequence[bytes], encoding: Encoding = "zlib") -> EncodedImage:
    """Encode planes for sending and attach the content hash and raw size."""
    raw = encode_raw(panel, planes)
    payload = raw if encoding == "raw" else encode_zlib(panel, planes)
    return EncodedImage(encoding=encoding, payload=payload, content_hash=content_hash(panel, planes), raw_size=len(raw))
