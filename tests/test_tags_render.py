"""Tests for price-label rendering (``agents/tags/render/``) and panel profiles (``agents/tags/panels.py``).

Covers issue 4 acceptance 1 and 6 for the rendering half: labels for four panel sizes in BW and BWR
render, and their QR and EAN-13 / UPC-A codes decode with a real decoder (zxing-cpp, reading the PNG
preview); same fields -> same bytes; rotation; only pure colours (no anti-aliasing); promo and
out-of-stock; and bad input (price, EAN check digit, unknown or missing field, unknown panel, broken
template) fails with an error that names the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from agents.tags import (
    ColourMode,
    LabelFieldsError,
    LabelImage,
    Panel,
    TemplateError,
    UnknownPanelError,
    default_template,
    known_panels,
    load_template,
    panel_by_name,
    render_label,
)

FIELDS: dict[str, Any] = {
    "name": "Organic Whole Milk 3.8% Fat 1 L",
    "price": 1.29,
    "currency": "EUR",
    "old_price": 1.59,
    "unit_price": "1.29 \u20ac/l",
    "ean13": "5901234123457",
    "qr": "https://shop.example/p/5901234123457",
}
# Four sizes x BW and BWR: the acceptance set.
ACCEPTANCE_PANELS = [
    f"{size}-{mode}" for size in ("152x152", "200x200", "296x128", "400x300") for mode in ("bw", "bwr")
]


def decode(image: LabelImage, scale: int = 4) -> dict[str, str]:
    """Decode every code in the label's PNG preview with zxing-cpp: {format name: text}."""
    buffer = io.BytesIO()
    image.preview(scale=scale).save(buffer, format="PNG")
    png = Image.open(io.BytesIO(buffer.getvalue()))
    return {result.format.name: result.text for result in zxingcpp.read_barcodes(png)}


@pytest.mark.parametrize("panel_name", ACCEPTANCE_PANELS)
def test_label_codes_decode_with_zxing(panel_name: str) -> None:
    image = render_label(FIELDS, panel_name)
    panel = panel_by_name(panel_name)
    assert len(image.planes) == panel.planes
    assert all(len(plane) == math.ceil(panel.width * panel.height / 8) for plane in image.planes)
    assert decode(image) == {"QRCode": FIELDS["qr"], "EAN13": FIELDS["ean13"]}


@pytest.mark.parametrize("panel_name", ["250x122-bwr", "296x128-bwy", "200x200-bwy"])
def test_other_panels_and_upc_a_decode(panel_name: str) -> None:
    image = render_label({**FIELDS, "ean13": "036000291452"}, panel_name)
    found = decode(image)
    # zxing-cpp reports a UPC-A symbol as the EAN-13 with a leading zero (UPC-A is that subset of EAN-13).
    assert found in (
        {"QRCode": FIELDS["qr"], "UPCA": "036000291452"},
        {"QRCode": FIELDS["qr"], "EAN13": "0036000291452"},
    )


def test_png_preview_file_is_written_and_decodes(tmp_path: Path) -> None:
    image = render_label(FIELDS, "296x128-bwr")
    out = tmp_path / "label.png"
    image.save_png(out, scale=3)
    with Image.open(out) as png:
        assert png.size == (296 * 3, 128 * 3)
        found = {r.format.name: r.text for r in zxingcpp.read_barcodes(png)}
    assert found == {"QRCode": FIELDS["qr"], "EAN13": FIELDS["ean13"]}


def test_same_fields_same_bytes() -> None:
    first = render_label(FIELDS, "296x128-bwr")
    second = render_label(dict(FIELDS), "296x128-bwr", default_template())
    assert first.planes == second.planes
    assert first.content_hash() == second.content_hash()
    assert first.encode().payload == second.encode().payload
    changed = render_label({**FIELDS, "price": 1.19}, "296x128-bwr")
    assert changed.content_hash() != first.content_hash()


def test_png_bytes_are_deterministic(tmp_path: Path) -> None:
    render_label(FIELDS, "200x200-bwr").save_png(tmp_path / "a.png")
    render_label(FIELDS, "200x200-bwr").save_png(tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


@pytest.mark.parametrize("panel_name", ["152x152-bwr", "296x128-bwr", "400x300-bwy"])
def test_preview_has_only_pure_panel_colours(panel_name: str) -> None:
    """No anti-aliasing: every pixel is white, black or the accent colour, and the planes never overlap."""
    image = render_label(FIELDS, panel_name)
    colours = {tuple(int(c) for c in px) for px in np.asarray(image.preview()).reshape(-1, 3)}
    accent = panel_by_name(panel_name).colour_mode.accent_rgb
    assert colours == {(255, 255, 255), (0, 0, 0), accent}
    assert not (image.plane_array(0) & image.plane_array(1)).any()


def test_bw_panel_has_one_plane_and_promo_in_black() -> None:
    image = render_label(FIELDS, "296x128-bw")
    assert image.accent is None
    colours = {tuple(int(c) for c in px) for px in np.asarray(image.preview()).reshape(-1, 3)}
    assert colours == {(255, 255, 255), (0, 0, 0)}


def test_promo_price_uses_accent_plane_only_when_old_price_set() -> None:
    promo = render_label(FIELDS, "296x128-bwr")
    regular = render_label({k: v for k, v in FIELDS.items() if k != "old_price"}, "296x128-bwr")
    assert promo.plane_array(1).any()
    assert not regular.plane_array(1).any()
    # The struck-through old price (box x 0.03-0.37, y 0.31-0.44) is black ink the regular label lacks,
    # with a full-width strike line: some row of that box is inked across most of the text.
    old_box = (slice(40, 56), slice(9, 109))
    assert promo.plane_array(0)[old_box].any()
    assert not regular.plane_array(0)[old_box].any()
    assert promo.plane_array(0)[old_box].sum(axis=1).max() >= 40


def test_out_of_stock_banner() -> None:
    normal = render_label(FIELDS, "296x128-bwr")
    banner = render_label({**FIELDS, "out_of_stock": True}, "296x128-bwr")
    accent = banner.plane_array(1)
    # A solid accent bar across the full width (rows 0.42..0.74 of the height), with white text in it.
    bar_rows = accent[60:90]
    assert bar_rows[:, 0].all() and bar_rows[:, -1].all()
    assert 0.5 < bar_rows.mean() < 1.0
    assert not banner.plane_array(0)[60:90].any()
    assert normal.content_hash() != banner.content_hash()
    bw = render_label({**FIELDS, "out_of_stock": True}, "296x128-bw")
    assert bw.plane_array(0)[60:90, 0].all()


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_gives_native_planes(rotation: int) -> None:
    panel = panel_by_name("296x128-bwr", rotation=rotation)
    image = render_label(FIELDS, panel)
    assert panel.view_size == ((128, 296) if rotation in (90, 270) else (296, 128))
    native = image.preview(orientation="native")
    assert native.size == (296, 128)
    assert image.preview().size == panel.view_size
    assert decode(image) == {"QRCode": FIELDS["qr"], "EAN13": FIELDS["ean13"]}


def test_rotation_180_is_the_unrotated_label_turned_round() -> None:
    upright = render_label(FIELDS, "200x200-bwr")
    turned = render_label(FIELDS, "200x200-bwr@180")
    for index in range(2):
        assert np.array_equal(turned.plane_array(index), np.rot90(upright.plane_array(index), 2))
    # Rotations 90 and 270 of a square panel share the view layout, so they are each other turned round.
    r90 = render_label(FIELDS, "200x200-bwr@90")
    assert np.array_equal(r90.plane_array(0), np.rot90(upright.plane_array(0), 1))


def test_long_name_shrinks_or_truncates_within_its_box() -> None:
    long_name = "Extra Virgin Olive Oil from Single Estate Groves, Cold Pressed, First Harvest " * 1
    image = render_label({**FIELDS, "name": long_name.strip()}, "152x152-bw")
    assert decode(image) == {"QRCode": FIELDS["qr"], "EAN13": FIELDS["ean13"]}
    # Nothing is drawn in the name box's right margin (x >= 0.97 * width) of the top rows.
    assert not image.plane_array(0)[:33, 148:].any()
    unbreakable = render_label({**FIELDS, "name": "X" * 120}, "152x152-bw")
    assert unbreakable.plane_array(0)[:33].any()


def test_minimal_fields_render() -> None:
    image = render_label({"name": "Bread", "price": "2.50"}, "250x122-bw")
    assert image.plane_array(0).any()
    assert decode(image) == {}


def test_panel_names_and_errors() -> None:
    names = known_panels()
    for size in ("152x152", "200x200", "250x122", "296x128", "400x300"):
        for mode in ("bw", "bwr", "bwy"):
            assert f"{size}-{mode}" in names
    panel = panel_by_name("296x128-BWR@90")
    assert panel == Panel(296, 128, ColourMode.BWR, 90)
    assert panel.name == "296x128-bwr@90"
    assert panel.plane_bytes == 296 * 128 // 8
    with pytest.raises(UnknownPanelError, match=r"unknown panel '123x45-bw'; known panels: .*296x128-bwr"):
        panel_by_name("123x45-bw")
    with pytest.raises(UnknownPanelError, match="rotation"):
        panel_by_name("296x128-bw@45")
    with pytest.raises(ValueError, match="rotation"):
        Panel(296, 128, ColourMode.BW, 45)
    with pytest.raises(UnknownPanelError):
        render_label(FIELDS, "nope")


@pytest.mark.parametrize(
    ("override", "field", "message"),
    [
        ({"price": -1}, "price", "greater than or equal to 0"),
        ({"price": float("nan")}, "price", "finite"),
        ({"price": float("inf")}, "price", "finite"),
        ({"price": 1e12}, "price", ""),
        ({"price": 1.234}, "price", "decimal places"),
        ({"price": "abc"}, "price", ""),
        ({"old_price": float("nan")}, "old_price", "finite"),
        ({"old_price": 1.00}, "old_price", "higher than price"),
        ({"name": "x" * 121}, "name", "at most 120"),
        ({"name": ""}, "name", "at least 1"),
        ({"name": "bad\x00name"}, "name", "control characters"),
        ({"unit_price": "u" * 41}, "unit_price", "at most 40"),
        ({"qr": "q" * 301}, "qr", "at most 300"),
        ({"ean13": "5901234123458"}, "ean13", "check digit is 8, expected 7"),
        ({"ean13": "036000291453"}, "ean13", "check digit"),
        ({"ean13": "59012341234"}, "ean13", "13 digits"),
        ({"ean13": "590123412345x"}, "ean13", "13 digits"),
        ({"currency": "euro"}, "currency", "pattern"),
        ({"colour": "red"}, "colour", "unknown field"),
    ],
)
def test_bad_fields_name_the_field(override: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(LabelFieldsError) as info:
        render_label({**FIELDS, **override}, "296x128-bwr")
    assert field in info.value.problems
    assert message in info.value.problems[field]
    assert field in str(info.value)


@pytest.mark.parametrize("missing", ["name", "price"])
def test_missing_required_field_is_named(missing: str) -> None:
    fields = {k: v for k, v in FIELDS.items() if k not in (missing, "old_price")}
    with pytest.raises(LabelFieldsError, match=f"{missing}: missing required field"):
        render_label(fields, "296x128-bw")


def test_qr_too_long_for_a_small_panel_names_the_field() -> None:
    with pytest.raises(LabelFieldsError, match="qr: QR code .* does not fit"):
        render_label({**FIELDS, "qr": "https://shop.example/" + "p" * 270}, "152x152-bw")


TEMPLATE = """\
name: tiny
required: [name]
layouts:
  - elements:
      - {type: text, field: name, box: [0, 0, 1, 0.5], max_lines: 1}
      - {type: qr, field: qr, box: [0, 0.5, 1, 0.5]}
"""


def test_custom_template_file(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(TEMPLATE)
    template = load_template(path)
    image = render_label({"name": "Tea", "qr": "T1"}, "200x200-bw", template)
    assert decode(image) == {"QRCode": "T1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TEMPLATE.replace("field: name,", "field: title,"), "unknown field 'title'"),
        (TEMPLATE.replace("required: [name]", "required: [sku]"), "required: unknown field 'sku'"),
        (TEMPLATE.replace("name: tiny", "name: tiny\ncolour_depth: 4"), "colour_depth: Extra inputs"),
        (TEMPLATE.replace("type: qr, field: qr", "type: qr, field: price"), "cannot show field 'price'"),
        (TEMPLATE.replace("type: qr", "type: sparkle"), "sparkle"),
        (TEMPLATE.replace("[0, 0.5, 1, 0.5]", "[0, 0.5, 1.5, 0.5]"), "less than or equal to 1"),
        ("name: [unclosed", "cannot read template"),
        (TEMPLATE.replace("max_lines: 1", "max_lines: 1, min_size: 30, max_size: 20"), "min_size 30 is larger"),
        (TEMPLATE.replace("- elements:", "- min_aspect: 2\n    max_aspect: 1\n    elements:"), "min_aspect 2.0"),
        (
            TEMPLATE.replace("{type: qr, field: qr,", "{type: price, field: price, format: '{symbol.__class__}',"),
            "format must use {amount}",
        ),
    ],
)
def test_bad_template_errors_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(TemplateError, match="bad.yaml") as info:
        load_template(path)
    assert message in str(info.value)


def test_default_template_is_a_data_file() -> None:
    template = default_template()
    assert template.name == "price-label"
    assert set(template.required) == {"name", "price"}
    shown = {element.field for layout in template.layouts for element in layout.elements}
    assert shown == {"name", "price", "old_price", "unit_price", "ean13", "qr", "out_of_stock"}


def test_text_the_font_cannot_draw_is_refused_not_printed_as_boxes() -> None:
    with pytest.raises(
        LabelFieldsError, match=r"name: font 'dejavu-sans-mono' has no glyph for '牛' \(U\+725B\), '奶' \(U\+5976\)"
    ):
        render_label({**FIELDS, "name": "Milk 牛奶"}, "296x128-bw")
    # Latin-1, Latin Extended and Cyrillic are covered by DejaVu Sans Mono.
    image = render_label({**FIELDS, "name": "Crème brûlée Łódź Молоко"}, "296x128-bw")
    assert image.plane_array(0).any()


def test_aileron_font_is_ascii_only(tmp_path: Path) -> None:
    path = tmp_path / "aileron.yaml"
    path.write_text(TEMPLATE.replace("name: tiny", "name: tiny\nfont: aileron"))
    template = load_template(path)
    assert render_label({"name": "Tea", "qr": "T1"}, "200x200-bw", template).plane_array(0).any()
    with pytest.raises(LabelFieldsError, match="name: font 'aileron' has no glyph for 'é'"):
        render_label({"name": "Café", "qr": "T1"}, "200x200-bw", template)


def test_zero_price_is_a_price_not_a_missing_field() -> None:
    image = render_label({"name": "Free sample", "price": 0}, "296x128-bw")
    assert image.plane_array(0).any()


@pytest.mark.parametrize("size", sorted({name.rsplit("-", 1)[0] for name in known_panels()}))
@pytest.mark.parametrize("rotation", [0, 90])
def test_every_known_panel_renders_the_default_label(size: str, rotation: int) -> None:
    panel = panel_by_name(f"{size}-bwr", rotation=rotation)
    image = render_label(FIELDS, panel)
    scale = 4 if max(panel.width, panel.height) <= 300 else 2
    assert decode(image, scale) == {"QRCode": FIELDS["qr"], "EAN13": FIELDS["ean13"]}


def test_same_bytes_in_a_fresh_interpreter() -> None:
    """Determinism across runs: another process (other hash seed) renders the same planes and PNG."""
    script = (
        "import hashlib, io, json, sys\n"
        "from agents.tags import render_label\n"
        "image = render_label(json.loads(sys.argv[1]), '296x128-bwr')\n"
        "png = io.BytesIO(); image.save_png(png)\n"
        "print(image.content_hash(), hashlib.sha256(png.getvalue()).hexdigest())\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(FIELDS)], capture_output=True, text=True, env=env, check=True
    )
    image = render_label(FIELDS, "296x128-bwr")
    png = io.BytesIO()
    image.save_png(png)
    assert result.stdout.split() == [image.content_hash(), hashlib.sha256(png.getvalue()).hexdigest()]
