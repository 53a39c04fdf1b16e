"""Drawing a label: every element of the template's layout into its colour plane, then the planes packed.

Each element draws into the plane of its ``colour`` (``accent`` falls back to black on a BW panel); a banner
clears its box in every plane first and draws its text as white; where both planes end up set, black wins (the
accent plane is masked), so a pixel is always exactly one colour. Barcodes (bars from ``python-barcode``'s
EAN-13 / UPC-A module pattern) and QR codes (``segno``) use the largest integer module size that fits, so they
stay crisp; a code that cannot fit at one pixel per module is an error naming its field, never a silently
unreadable code. The planes are drawn in view orientation and rotated losslessly into the panel's native scan
order at the end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import barcode  # type: ignore[import-untyped]
import numpy as np
import segno
from PIL import Image, ImageDraw

from agents.tags.panels import Panel, panel_by_name
from agents.tags.render.fields import LabelFields, LabelFieldsError, is_set, parse_fields
from agents.tags.render.image import TO_NATIVE, LabelImage
from agents.tags.render.template import (
    BannerElement,
    BarcodeElement,
    Colour,
    Element,
    PriceElement,
    QrElement,
    Template,
    TemplateError,
    TextElement,
    default_template,
)
from agents.tags.render.text import draw_lines, fit_text, line_height, require_glyphs, stroke_width

__all__ = ["render_label"]

_CURRENCY_SYMBOLS = {"EUR": "\u20ac", "GBP": "\u00a3", "USD": "$", "JPY": "\u00a5", "INR": "\u20b9"}


@dataclass(slots=True)
class _Canvas:
    """View-orientation 1-bit images, one per plane, and the pixel size of the label."""

    width: int
    height: int
    planes: list[Image.Image]
    font_name: str

    def plane(self, colour: Colour) -> Image.Image:
        return self.planes[1] if colour == "accent" and len(self.planes) > 1 else self.planes[0]

    def draw(self, colour: Colour) -> ImageDraw.ImageDraw:
        draw = ImageDraw.Draw(self.plane(colour))
        draw.fontmode = "1"  # no anti-aliasing, ever
        return draw

    def box(self, element: Element) -> tuple[int, int, int, int]:
        """The element's box in pixels: left, top, width, height (at least 1x1)."""
        fx, fy, fw, fh = element.box
        left, top = math.floor(fx * self.width), math.floor(fy * self.height)
        right = min(self.width, math.floor((fx + fw) * self.width))
        bottom = min(self.height, math.floor((fy + fh) * self.height))
        return left, top, max(1, right - left), max(1, bottom - top)


def _format_price(element: PriceElement, amount: Decimal, currency: str) -> str:
    text = f"{amount:.2f}".replace(".", element.decimal_separator)
    symbol = _CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return element.format.format(symbol=symbol, code=currency, amount=text)


def _draw_text(canvas: _Canvas, element: TextElement, value: str) -> None:
    box = canvas.box(element)
    require_glyphs(element.prefix + value, canvas.font_name, element.field)
    font, lines = fit_text(
        element.prefix + value, canvas.font_name, box[2], box[3], element.max_lines, element.min_size, element.max_size
    )
    draw_lines(canvas.draw(element.colour), lines, font, box, element.align, fill=1)


def _draw_price(canvas: _Canvas, element: PriceElement, amount: Decimal, currency: str) -> None:
    box = canvas.box(element)
    text = _format_price(element, amount, currency)
    require_glyphs(text, canvas.font_name, "currency")
    font, lines = fit_text(
        text, canvas.font_name, box[2], box[3], 1, element.min_size, element.max_size, bold=element.bold
    )
    draw = canvas.draw(element.colour)
    stroke = stroke_width(element.bold, int(font.size))
    x0, y0, x1, y1 = draw_lines(draw, lines, font, box, element.align, fill=1, valign="middle", stroke=stroke)
    if element.strike and x1 > x0:
        thickness = max(1, int(font.size) // 10)
        mid = (y0 + y1) // 2
        draw.rectangle((x0 - 1, mid - thickness // 2, x1, mid - thickness // 2 + thickness - 1), fill=1)


def _draw_barcode(canvas: _Canvas, element: BarcodeElement, code: str, panel: Panel) -> None:
    left, top, width, height = canvas.box(element)
    symbology = barcode.EAN13(code[:12]) if len(code) == 13 else barcode.UPCA(code[:11])
    pattern: str = symbology.build()[0]
    # Integer module width with the full quiet zone if it fits; on a very narrow label, 1-px modules
    # with a quiet zone shrunk down to min_quiet_zone (the label's own white margin adds to it).
    quiet = element.quiet_zone
    while width // (len(pattern) + 2 * quiet) < 1 and quiet > element.min_quiet_zone:
        quiet -= 1
    module = width // (len(pattern) + 2 * quiet)
    if module < 1:
        raise LabelFieldsError(
            {element.field: f"barcode needs {len(pattern) + 2 * quiet} px, has {width} px on panel {panel.name}"}
        )
    draw = canvas.draw(element.colour)
    digits_h = 0
    if element.digits and min(16, height // 3) >= 6:
        # Human-readable digits under the bars, only when they fit whole and leave 12 px of bars.
        font, lines = fit_text(code, canvas.font_name, width, min(16, height // 3), 1, 6, 16)
        if lines == [code] and height - line_height(font) >= 12:
            digits_h = line_height(font)
            text_box = (left, top + height - digits_h, width, digits_h)
            draw_lines(draw, [code], font, text_box, "center", fill=1)
    bars_h = height - digits_h - (1 if digits_h else 0)
    x = left + (width - module * len(pattern)) // 2
    for bit in pattern:
        if bit == "1":
            draw.rectangle((x, top, x + module - 1, top + bars_h - 1), fill=1)
        x += module


def _draw_qr(canvas: _Canvas, element: QrElement, data: str, panel: Panel) -> None:
    left, top, width, height = canvas.box(element)
    qr = segno.make_qr(data, error=element.error, boost_error=False)
    modules = len(qr.matrix)
    side = min(width, height)
    module = side // (modules + 2 * element.quiet_zone)
    if module < 1:
        raise LabelFieldsError({element.field: f"QR code ({modules} modules) does not fit {side} px on {panel.name}"})
    x0 = left + (width - module * modules) // 2
    y0 = top + (height - module * modules) // 2
    draw = canvas.draw(element.colour)
    for row_index, row in enumerate(qr.matrix):
        for col_index, dark in enumerate(row):
            if dark:
                x, y = x0 + col_index * module, y0 + row_index * module
                draw.rectangle((x, y, x + module - 1, y + module - 1), fill=1)


def _draw_banner(canvas: _Canvas, element: BannerElement) -> None:
    left, top, width, height = canvas.box(element)
    rect = (left, top, left + width - 1, top + height - 1)
    for plane in canvas.planes:
        ImageDraw.Draw(plane).rectangle(rect, fill=0)
    draw = canvas.draw(element.colour)
    draw.rectangle(rect, fill=1)
    try:
        require_glyphs(element.text, canvas.font_name, element.field)
    except LabelFieldsError as exc:
        raise TemplateError(f"banner text: {exc.problems[element.field]}") from None
    pad = max(1, height // 8)
    inner = (left + pad, top + pad, width - 2 * pad, height - 2 * pad)
    font, lines = fit_text(element.text, canvas.font_name, inner[2], inner[3], 1, 6, 200)
    draw_lines(draw, lines, font, inner, "center", fill=0, valign="middle")


def render_label(
    fields: Mapping[str, Any] | LabelFields, panel: Panel | str, template: Template | None = None
) -> LabelImage:
    """Render one label: validate ``fields`` against ``template`` (default: the built-in price label),
    draw it for ``panel`` (a :class:`Panel` or a name like ``296x128-bwr``) and pack the planes."""
    if isinstance(panel, str):
        panel = panel_by_name(panel)
    template = template or default_template()
    values = parse_fields(fields, template.required)
    width, height = panel.view_size
    canvas = _Canvas(
        width=width,
        height=height,
        planes=[Image.new("1", (width, height), 0) for _ in range(panel.planes)],
        font_name=template.font,
    )
    for element in template.layout_for(width, height).elements:
        value = getattr(values, element.field)
        if not is_set(value):
            continue
        if element.when is not None and not is_set(getattr(values, element.when)):
            continue
        if element.unless is not None and is_set(getattr(values, element.unless)):
            continue
        if isinstance(element, TextElement):
            _draw_text(canvas, element, str(value))
        elif isinstance(element, PriceElement):
            _draw_price(canvas, element, value, values.currency)
        elif isinstance(element, BarcodeElement):
            _draw_barcode(canvas, element, str(value), panel)
        elif isinstance(element, QrElement):
            _draw_qr(canvas, element, str(value), panel)
        else:
            _draw_banner(canvas, element)
    arrays = []
    for image in canvas.planes:
        native = image.transpose(TO_NATIVE[panel.rotation]) if panel.rotation else image
        arrays.append(np.asarray(native, dtype=bool))
    if len(arrays) > 1:
        arrays[1] = arrays[1] & ~arrays[0]  # black wins: every pixel is exactly one colour
    planes = tuple(np.packbits(array.ravel()).tobytes() for array in arrays)
    return LabelImage(panel=panel, planes=planes)
