"""Tests for the on-air image encodings (``agents/tags/encoding.py``).

Covers: the exact plane bit layout (MSB first, row-major, no per-row padding); raw and zlib round trips;
the OEPL zlib layout byte by byte (u32 LE size prefix, CMF 0x48 = 4 KB window, 6-byte inner header);
issue 4 acceptance 5 (the zlib payload averages at most 25 % of the raw planes on the rendered label
set, ratio printed); the content hash (stable, changes with content and panel, not with rotation or
zlib level); that truncated, corrupt or mismatched payloads raise ``ImageEncodingError``; and, with
hypothesis, random bitmaps of any size round-trip and randomly mangled payloads never raise anything else.
"""

from __future__ import annotations

import functools
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.tags import (
    ColourMode,
    ImageEncodingError,
    LabelImage,
    Panel,
    content_hash,
    decode_raw,
    decode_zlib,
    encode_raw,
    encode_zlib,
    panel_by_name,
    render_label,
)
from agents.tags.encoding import OEPL_DATATYPE_ZLIB, decode_framebuffer, encode

BASE: dict[str, Any] = {
    "name": "Organic Whole Milk 3.8% Fat 1 L",
    "price": 1.29,
    "unit_price": "1.29 \u20ac/l",
    "ean13": "5901234123457",
    "qr": "https://shop.example/p/5901234123457",
}
# The label set: four panel sizes in BW and BWR, each as a regular, promo and out-of-stock label.
LABEL_PANELS = [f"{size}-{mode}" for size in ("152x152", "200x200", "296x128", "400x300") for mode in ("bw", "bwr")]
VARIANTS: list[dict[str, Any]] = [
    BASE,
    {**BASE, "name": "Dark Chocolate 85%", "price": 2.49, "old_price": 3.19, "ean13": "4006381333931"},
    {**BASE, "name": "Sparkling Water 6 x 1.5 L", "price": 3.99, "out_of_stock": True, "qr": "https://s.example/w"},
]


def label_set() -> list[LabelImage]:
    return [render_label(fields, panel) for panel in LABEL_PANELS for fields in VARIANTS]


def test_plane_layout_is_msb_first_row_major_without_row_padding() -> None:
    """Pixel (x, y) is bit 7 - (i % 8) of byte i // 8, with i = y * width + x, on a 250-wide panel."""
    panel = panel_by_name("250x122-bw")
    bitmap = np.zeros((panel.height, panel.width), dtype=bool)
    bitmap[0, 0] = True  # byte 0, bit 7
    bitmap[0, 9] = True  # byte 1, bit 6
    bitmap[1, 0] = True  # i = 250: byte 31, bit 5 (no padding to 256 bits)
    bitmap[-1, -1] = True  # last pixel i = 30499: byte 3812, bit 4; the rest of that byte is padding
    plane = np.packbits(bitmap.ravel()).tobytes()
    assert len(plane) == panel.plane_bytes == 3813
    assert plane[0] == 0x80 and plane[1] == 0x40 and plane[31] == 0x20 and plane[3812] == 0x10
    assert sum(bin(b).count("1") for b in plane) == 4
    image = LabelImage(panel=panel, planes=(plane,))
    assert np.array_equal(image.plane_array(0), bitmap)
    assert encode_raw(panel, [plane]) == plane


def test_rendered_label_bits_match_the_preview() -> None:
    image = render_label({**BASE, "old_price": 1.59}, "296x128-bwr")
    rgb = np.asarray(image.preview(orientation="native"))
    black = (rgb == 0).all(axis=2)
    red = (rgb[:, :, 0] == 255) & (rgb[:, :, 1] == 0)
    assert np.packbits(black.ravel()).tobytes() == image.black
    assert np.packbits(red.ravel()).tobytes() == image.accent


@pytest.mark.parametrize("panel_name", ["152x152-bw", "250x122-bwr", "296x128-bwy@90", "400x300-bwr"])
def test_raw_and_zlib_round_trip(panel_name: str) -> None:
    image = render_label({**BASE, "old_price": 1.59}, panel_name)
    panel = image.panel
    raw = encode_raw(panel, image.planes)
    assert len(raw) == panel.planes * ((panel.width * panel.height + 7) // 8)
    assert decode_raw(panel, raw) == image.planes
    decoded = decode_zlib(encode_zlib(panel, image.planes), panel)
    assert (decoded.width, decoded.height) == (panel.width, panel.height)
    assert decoded.planes == image.planes


def test_zlib_layout_matches_openepaperlink() -> None:
    image = render_label(BASE, "296x128-bwr")
    payload = encode_zlib(image.panel, image.planes)
    (inner_size,) = struct.unpack_from("<I", payload)
    assert inner_size == 6 + 2 * 296 * 128 // 8
    stream = payload[4:]
    assert stream[0] == 0x48  # CMF: deflate with a 2**12 = 4 KB window
    assert (stream[0] * 256 + stream[1]) % 31 == 0  # zlib header check bits
    inner = zlib.decompress(stream)
    assert inner[:6] == bytes([6]) + struct.pack("<HH", 296, 128) + bytes([2])
    assert inner[6:] == image.black + (image.accent or b"")
    # A tag with a 4 KB window inflates it: decompressing with wbits=12 works.
    assert zlib.decompressobj(wbits=12).decompress(stream) == inner
    assert OEPL_DATATYPE_ZLIB == 0x30
    bw = render_label(BASE, "296x128-bw")
    assert zlib.decompress(encode_zlib(bw.panel, bw.planes)[4:])[5] == 1


def test_zlib_payload_is_at_most_a_quarter_of_raw_on_the_label_set() -> None:
    ratios = []
    for image in label_set():
        encoded = image.encode("zlib")
        assert encoded.raw_size == len(image.encode("raw").payload)
        ratios.append(encoded.ratio)
    mean = sum(ratios) / len(ratios)
    print(
        f"\nzlib/raw over {len(ratios)} labels ({len(LABEL_PANELS)} panels x {len(VARIANTS)} variants): "
        f"mean {mean:.3f}, min {min(ratios):.3f}, max {max(ratios):.3f}"
    )
    assert mean <= 0.25


def test_content_hash_identifies_what_the_tag_shows() -> None:
    image = render_label(BASE, "296x128-bwr")
    again = render_label(dict(BASE), "296x128-bwr")
    digest = image.content_hash()
    assert len(digest) == 64 and digest == again.content_hash() == content_hash(image.panel, image.planes)
    assert encode(image.panel, image.planes, "raw").content_hash == digest
    assert encode(image.panel, image.planes, "zlib").content_hash == digest
    # A different price changes it; the same bits on another panel type change it too.
    assert render_label({**BASE, "price": 1.39}, "296x128-bwr").content_hash() != digest
    blank = bytes(image.panel.plane_bytes)
    assert content_hash(panel_by_name("296x128-bwr"), [blank, blank]) != content_hash(
        panel_by_name("296x128-bwy"), [blank, blank]
    )
    # Rotation is already in the native planes, so it is not hashed on its own.
    assert content_hash(panel_by_name("296x128-bwr@180"), [blank, blank]) == content_hash(
        panel_by_name("296x128-bwr"), [blank, blank]
    )
    # The hash is over the raw planes, so the zlib level does not affect it.
    assert encode_zlib(image.panel, image.planes, level=1) != encode_zlib(image.panel, image.planes)


def test_wrong_plane_count_or_size_is_refused() -> None:
    panel = panel_by_name("200x200-bwr")
    plane = bytes(panel.plane_bytes)
    with pytest.raises(ImageEncodingError, match="needs 2 plane"):
        encode_raw(panel, [plane])
    with pytest.raises(ImageEncodingError, match="must be 5000 bytes"):
        encode_zlib(panel, [plane, plane[:-1]])
    with pytest.raises(ImageEncodingError, match="must be 10000 bytes"):
        decode_raw(panel, plane)


@functools.cache
def _zlib_payload() -> bytes:
    image = render_label(BASE, "200x200-bwr")
    return encode_zlib(image.panel, image.planes)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: p[:3], "too short"),
        (lambda p: p[:-10], "inflates to"),
        (lambda p: p + b"\x00", "inflates to"),
        (lambda p: struct.pack("<I", 7) + p[4:], "inflates to"),
        (lambda p: struct.pack("<I", 1 << 30) + p[4:], "implausible size"),
        (lambda p: p[:4] + b"\x78" + p[5:], "4 KB window"),
        (lambda p: p[:6] + b"\xff" * 8, "corrupt"),
    ],
)
def test_bad_zlib_payload_raises(mangle: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(ImageEncodingError, match=message):
        decode_zlib(mangle(_zlib_payload()))


def test_zlib_header_and_panel_mismatch_raise() -> None:
    def payload(inner: bytes) -> bytes:
        compressor = zlib.compressobj(level=9, wbits=12)
        return struct.pack("<I", len(inner)) + compressor.compress(inner) + compressor.flush()

    with pytest.raises(ImageEncodingError, match="bad inner header"):
        decode_zlib(payload(bytes([6]) + struct.pack("<HH", 8, 8) + bytes([3]) + bytes(24)))
    with pytest.raises(ImageEncodingError, match="needs 8 bytes of planes"):
        decode_zlib(payload(bytes([6]) + struct.pack("<HH", 8, 8) + bytes([1]) + bytes(9)))
    good = _zlib_payload()
    assert decode_zlib(good).width == 200
    with pytest.raises(ImageEncodingError, match="panel 200x200-bw is"):
        decode_zlib(good, panel_by_name("200x200-bw"))


@settings(max_examples=150, deadline=None)
@given(
    width=st.integers(1, 64),
    height=st.integers(1, 64),
    mode=st.sampled_from(list(ColourMode)),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_bitmaps_round_trip(width: int, height: int, mode: ColourMode, seed: int) -> None:
    panel = Panel(width, height, mode)
    rng = np.random.default_rng(seed)
    planes = [np.packbits(rng.random(width * height) < 0.3).tobytes() for _ in range(panel.planes)]
    assert decode_raw(panel, encode_raw(panel, planes)) == tuple(planes)
    decoded = decode_zlib(encode_zlib(panel, planes), panel)
    assert decoded.planes == tuple(planes)
    assert LabelImage(panel=panel, planes=tuple(planes)).plane_array(0).shape == (height, width)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_mangled_payloads_decode_or_raise_image_encoding_error(data: st.DataObject) -> None:
    """Flipped bytes, cuts and garbage never escape as anything but ImageEncodingError."""
    payload = bytearray(_zlib_payload())
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(payload) - 1))
        payload[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(payload)))
    mangled = bytes(payload[:cut]) + data.draw(st.binary(max_size=8))
    try:
        decoded = decode_zlib(mangled)
    except ImageEncodingError:
        return
    assert len(decoded.planes[0]) == (decoded.width * decoded.height + 7) // 8


@pytest.mark.parametrize("panel_name", ["152x152-bw", "250x122-bwr", "212x104-bwy"])
def test_framebuffer_layout_round_trips(panel_name: str) -> None:
    panel = panel_by_name(panel_name)
    image = render_label({"name": "Tea", "price": "2.49", "currency": "EUR", "old_price": "3.19"}, panel)
    framebuffer = image.framebuffer()
    assert len(framebuffer) == panel.planes * panel.height * ((panel.width + 7) // 8)
    assert decode_framebuffer(panel, framebuffer) == image.planes
    with pytest.raises(ImageEncodingError, match="must be"):
        decode_framebuffer(panel, framebuffer[:-1])
