"""Price-label rendering: validated fields + a declarative YAML template -> 1-bit planes for one panel.

Why this shape:

* **Declarative templates.** A store changes the look of its labels by editing a YAML file (boxes as
  fractions of the label, fonts sizes, colours, when an element shows), not code. A template holds one
  or more *layouts*, each for a range of aspect ratios, so the same template serves a 152x152 square
  and a 296x128 strip. The built-in one is ``templates/price-label.yaml``.
* **Validated fields.** A price label that shows ``NaN`` or ``-1.00`` is worse than none, so every
  field goes through :class:`LabelFields` (pydantic, ``extra="forbid"``): prices finite, non-negative,
  at most 999999.99 with two decimals; text lengths bounded, no control characters; the EAN-13 / UPC-A
  check digit verified. Every error names the field (:class:`LabelFieldsError`).
* **1-bit, native resolution, deterministic.** E-paper has no grey levels, so we draw straight into
  1-bit Pillow images (text with ``fontmode="1"``, no anti-aliasing, no resampling), one plane per ink
  (black, and red or yellow on three-colour panels), then rotate losslessly into the panel's native
  scan order. Same fields + template + panel -> same bytes on every run (fonts ship inside pip packages,
  nothing is fetched or looked up on the host), so the content hash can tell "unchanged".
* **Libraries, not hand-written equivalents.** Pillow for raster and FreeType text, ``segno`` for QR
  codes, ``python-barcode`` for the EAN-13 / UPC-A module pattern (we draw its bars with integer module
  widths so they stay crisp). The font is DejaVu Sans Mono, which ships inside ``python-barcode``
  (Bitstream Vera licence, DejaVu changes public domain; covers Latin-1, Latin Extended and the euro
  and pound signs); ``font: aileron`` selects Pillow's built-in Aileron (CC0, ASCII only). Text the
  font has no glyph for is refused with the field's name instead of printing "tofu" boxes on a shelf.
* **Fit, don't overflow.** Names wrap (balanced, so no lone word on the last line) and shrink down to
  the element's ``min_size``, then truncate with an ellipsis; barcodes and QR codes use the largest
  integer module size that fits, and a code that cannot fit at one pixel per module is an error
  naming its field, never a silently unreadable code.

Ink rules: an element draws into the plane of its ``colour`` (``accent`` falls back to black on a BW
panel); a banner clears its box in every plane first and draws its text as white; where both planes
end up set, black wins (the accent plane is masked), so a pixel is always exactly one colour.
"""

from __future__ import annotations

import functools
import math
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Annotated, Any, Literal

import barcode  # type: ignore[import-untyped]
import numpy as np
import segno
import yaml
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.tags import encoding
from agents.tags.panels import Panel, panel_by_name

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "LabelFields",
    "LabelFieldsError",
    "LabelImage",
    "Template",
    "TemplateError",
    "default_template",
    "load_template",
    "parse_fields",
    "render_label",
]

DEFAULT_TEMPLATE_PATH = Path(__file__).parents[1] / "templates" / "price-label.yaml"
_DEJAVU_MONO = Path(barcode.__file__).parent / "fonts" / "DejaVuSansMono.ttf"
_ELLIPSIS = "\u2026"

MAX_PRICE = Decimal("999999.99")
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, max_digits=8, decimal_places=2, allow_inf_nan=False)]


class TemplateError(ValueError):
    """A template file that cannot be used: bad YAML, an unknown key, or an unknown field name."""


class LabelFieldsError(ValueError):
    """Label fields that cannot be rendered; ``problems`` maps each offending field to what is wrong."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems.items()))


# ---------------------------------------------------------------------------------------------- fields


def _no_control_chars(value: str | None) -> str | None:
    if value is not None and any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in value):
        raise ValueError("must not contain control characters")
    return value


class LabelFields(BaseModel):
    """The fields a price label can show. Which are required is up to the template (``required:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=120, description="Product name; wrapped or shrunk.")
    price: Price | None = Field(None, description="Selling price, 0 to 999999.99, two decimals at most.")
    currency: str = Field("EUR", pattern=r"^[A-Z]{3}$", description="ISO 4217 code, shown as its symbol if known.")
    old_price: Price | None = Field(None, description="Price before the promotion, shown struck through.")
    unit_price: str | None = Field(None, min_length=1, max_length=40, description="Free text, e.g. '3.98 EUR/kg'.")
    ean13: str | None = Field(None, description="EAN-13 (13 digits) or UPC-A (12 digits) with a valid check digit.")
    qr: str | None = Field(None, min_length=1, max_length=300, description="QR payload, e.g. a product URL.")
    out_of_stock: bool = Field(False, description="Show the out-of-stock banner.")

    _check_text = field_validator("name", "unit_price", "qr")(_no_control_chars)

    @field_validator("ean13")
    @classmethod
    def _check_ean(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.isascii() or not value.isdigit() or len(value) not in (12, 13):
            raise ValueError("must be 13 digits (EAN-13) or 12 digits (UPC-A)")
        symbology = barcode.EAN13(value[:12]) if len(value) == 13 else barcode.UPCA(value[:11])
        expected = str(symbology.get_fullcode())
        if expected != value:
            raise ValueError(f"check digit is {value[-1]}, expected {expected[-1]}")
        return value

    @model_validator(mode="after")
    def _check_promo(self) -> LabelFields:
        if self.old_price is not None and self.price is not None and self.old_price <= self.price:
            raise ValueError("old_price must be higher than price (it is shown struck through as a promotion)")
        return self


_FIELD_NAMES = tuple(LabelFields.model_fields)


def parse_fields(fields: Mapping[str, Any] | LabelFields, required: tuple[str, ...] = ()) -> LabelFields:
    """Validate raw fields (e.g. parsed JSON); raise :class:`LabelFieldsError` naming every bad field."""
    if isinstance(fields, LabelFields):
        parsed = fields
    else:
        try:
            parsed = LabelFields.model_validate(dict(fields))
        except ValidationError as exc:
            problems: dict[str, str] = {}
            for error in exc.errors():
                field = ".".join(str(part) for part in error["loc"]) or "old_price"
                if error["type"] == "extra_forbidden":
                    problems[field] = f"unknown field (known fields: {', '.join(_FIELD_NAMES)})"
                else:
                    problems.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
            raise LabelFieldsError(problems) from None
    missing = {name: "missing required field" for name in required if not _is_set(getattr(parsed, name))}
    if missing:
        raise LabelFieldsError(missing)
    return parsed


# -------------------------------------------------------------------------------------------- template

Box = tuple[
    Annotated[float, Field(ge=0, le=1)],
    Annotated[float, Field(ge=0, le=1)],
    Annotated[float, Field(gt=0, le=1)],
    Annotated[float, Field(gt=0, le=1)],
]
Colour = Literal["black", "accent"]


class _Element(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="Label field the element shows.")
    box: Box = Field(description="x, y, width, height as fractions of the label in view orientation.")
    colour: Colour = "black"
    when: str | None = Field(None, description="Only draw when this field is set (not empty, not false).")
    unless: str | None = Field(None, description="Only draw when this field is not set.")

    def field_names(self) -> list[str]:
        return [name for name in (self.field, self.when, self.unless) if name is not None]

    @model_validator(mode="after")
    def _check_sizes(self) -> _Element:
        lo, hi = getattr(self, "min_size", 0), getattr(self, "max_size", 0)
        if lo > hi:
            raise ValueError(f"min_size {lo} is larger than max_size {hi}")
        return self


class TextElement(_Element):
    """Free text (name, unit price), wrapped to ``max_lines`` and shrunk down to ``min_size`` to fit."""

    type: Literal["text"]
    max_lines: int = Field(1, ge=1, le=6)
    min_size: int = Field(8, ge=6, le=200)
    max_size: int = Field(40, ge=6, le=400)
    align: Literal["left", "center", "right"] = "left"
    prefix: str = Field("", max_length=20, description="Text drawn before the value, e.g. 'Art. '.")


class PriceElement(_Element):
    """A price field formatted with the currency; ``strike`` draws a line through it (old price)."""

    type: Literal["price"]
    format: str = Field("{symbol}{amount}", description="Uses {symbol}, {code} and {amount}.")
    decimal_separator: Literal[".", ","] = "."
    strike: bool = False
    bold: bool = Field(False, description="Embolden with a 1-bit outline (the bundled font has no bold face).")
    min_size: int = Field(8, ge=6, le=200)
    max_size: int = Field(120, ge=6, le=400)
    align: Literal["left", "center", "right"] = "left"

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        names = [name for _, name, spec, conv in string.Formatter().parse(value) if name is not None]
        unknown = [name for name in names if name not in ("symbol", "code", "amount")]
        if unknown or "amount" not in names:
            raise ValueError(f"format must use {{amount}} and only {{symbol}}, {{code}}, {{amount}}; got {value!r}")
        return value


class BarcodeElement(_Element):
    """EAN-13 or UPC-A bars with integer module widths, digits underneath when there is room."""

    type: Literal["barcode"]
    digits: bool = True
    quiet_zone: int = Field(9, ge=1, le=15, description="White modules kept each side (EAN-13 asks 11 left, 7 right).")
    min_quiet_zone: int = Field(4, ge=1, le=15, description="Narrowest quiet zone accepted on a narrow label.")

    @model_validator(mode="after")
    def _check_quiet_zones(self) -> BarcodeElement:
        if self.min_quiet_zone > self.quiet_zone:
            raise ValueError(f"min_quiet_zone {self.min_quiet_zone} is larger than quiet_zone {self.quiet_zone}")
        return self


class QrElement(_Element):
    """A QR code (``segno``, error correction M) with integer module size, centred in its box."""

    type: Literal["qr"]
    error: Literal["l", "m", "q", "h"] = "m"
    quiet_zone: int = Field(2, ge=0, le=4, description="Modules of white kept around the code inside the box.")


class BannerElement(_Element):
    """A filled bar with white text (out of stock) drawn over everything else when its field is true."""

    type: Literal["banner"]
    text: str = Field("OUT OF STOCK", min_length=1, max_length=40)


Element = Annotated[
    TextElement | PriceElement | BarcodeElement | QrElement | BannerElement, Field(discriminator="type")
]

# Which field an element type may show.
_ELEMENT_FIELDS: dict[str, tuple[str, ...]] = {
    "text": ("name", "unit_price", "qr", "currency", "ean13"),
    "price": ("price", "old_price"),
    "barcode": ("ean13",),
    "qr": ("qr", "ean13", "name"),
    "banner": ("out_of_stock",),
}


class Layout(BaseModel):
    """Elements for labels whose width/height ratio is in ``[min_aspect, max_aspect)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_aspect: float = Field(0.0, ge=0)
    max_aspect: float = Field(1000.0, gt=0)
    elements: list[Element] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_range(self) -> Layout:
        if self.min_aspect >= self.max_aspect:
            raise ValueError(f"min_aspect {self.min_aspect} must be below max_aspect {self.max_aspect}")
        return self


class Template(BaseModel):
    """A label template: required fields, font, and layouts chosen by the label's aspect ratio."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    version: Literal[1] = 1
    font: Literal["dejavu-sans-mono", "aileron"] = "dejavu-sans-mono"
    required: tuple[str, ...] = ()
    layouts: list[Layout] = Field(min_length=1)

    @model_validator(mode="after")
    def _check_field_names(self) -> Template:
        for name in self.required:
            if name not in _FIELD_NAMES:
                raise ValueError(f"required: unknown field {name!r} (known fields: {', '.join(_FIELD_NAMES)})")
        for li, layout in enumerate(self.layouts):
            for ei, element in enumerate(layout.elements):
                where = f"layouts[{li}].elements[{ei}]"
                for name in element.field_names():
                    if name not in _FIELD_NAMES:
                        raise ValueError(f"{where}: unknown field {name!r} (known fields: {', '.join(_FIELD_NAMES)})")
                if element.field not in _ELEMENT_FIELDS[element.type]:
                    raise ValueError(
                        f"{where}: a {element.type} element cannot show field {element.field!r} "
                        f"(allowed: {', '.join(_ELEMENT_FIELDS[element.type])})"
                    )
        return self

    def layout_for(self, width: int, height: int) -> Layout:
        """The first layout whose aspect range holds ``width / height``."""
        aspect = width / height
        for layout in self.layouts:
            if layout.min_aspect <= aspect < layout.max_aspect:
                return layout
        raise TemplateError(f"template {self.name!r} has no layout for a {width}x{height} label (aspect {aspect:.2f})")


def load_template(source: str | os.PathLike[str]) -> Template:
    """Load and validate a YAML template file; errors name the file and the offending key or field."""
    path = Path(source)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise TemplateError(f"{path}: cannot read template: {exc}") from exc
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            problems.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}".lstrip(": "))
        raise TemplateError(f"{path}: invalid template: " + "; ".join(problems)) from None


@functools.cache
def default_template() -> Template:
    """The built-in price label (``templates/price-label.yaml``)."""
    return load_template(DEFAULT_TEMPLATE_PATH)


# ---------------------------------------------------------------------------------------------- output


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
_TO_NATIVE = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
_TO_VIEW = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


# -------------------------------------------------------------------------------------------- drawing

_Font = ImageFont.FreeTypeFont
_CURRENCY_SYMBOLS = {"EUR": "\u20ac", "GBP": "\u00a3", "USD": "$", "JPY": "\u00a5", "INR": "\u20b9"}


@functools.cache
def _font(name: str, size: int) -> _Font:
    if name == "aileron":
        font = ImageFont.load_default(size=size)
        if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
            raise TemplateError("font 'aileron' needs Pillow with FreeType support")
        return font
    return ImageFont.truetype(str(_DEJAVU_MONO), size=size)


def _line_height(font: _Font) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


def _wrap(text: str, font: _Font, width: int) -> list[str]:
    """Greedy word wrap; a word longer than the line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if font.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = ""
        for ch in word:
            if current and font.getlength(current + ch) > width:
                lines.append(current)
                current = ""
            current += ch
    if current:
        lines.append(current)
    return lines


def _truncate(line: str, font: _Font, width: int) -> str:
    while line and font.getlength(line + _ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + _ELLIPSIS


def _glyph_signature(font: _Font, ch: str) -> bytes:
    image = Image.new("1", (2 * int(font.size) + 8, 2 * int(font.size) + 8), 0)
    draw = ImageDraw.Draw(image)
    draw.fontmode = "1"
    draw.text((4, 4), ch, font=font, fill=1)
    return image.tobytes()


@functools.cache
def _has_glyph(font_name: str, ch: str) -> bool:
    """Whether the font draws ``ch`` as something other than its missing-glyph box ("tofu")."""
    font = _font(font_name, 16)
    return _glyph_signature(font, ch) != _glyph_signature(font, "\U0010fffd")


def _require_glyphs(text: str, font_name: str, field: str) -> None:
    """Refuse text the font cannot draw, rather than print boxes on a shelf label."""
    missing = list(dict.fromkeys(ch for ch in text if not ch.isspace() and not _has_glyph(font_name, ch)))
    if missing:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:5])
        raise LabelFieldsError({field: f"font {font_name!r} has no glyph for {shown}"})


def _balance(text: str, font: _Font, width: int, lines: list[str]) -> list[str]:
    """Re-wrap at the narrowest width that keeps the same number of lines, so a name breaks as
    "Organic Whole Milk / 3.8% Fat 1 L" rather than leaving one word alone on the last line."""
    if len(lines) < 2:
        return lines
    lo, hi = 1, width
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_wrap(text, font, mid)) <= len(lines):
            hi = mid
        else:
            lo = mid + 1
    return _wrap(text, font, lo)


def _stroke(bold: bool, size: int) -> int:
    """Outline width that emboldens ``size``-px text; none below 18 px, where it would fill the counters."""
    return max(1, size // 28) if bold and size >= 18 else 0


def _fit_text(
    text: str, font_name: str, width: int, height: int, max_lines: int, lo: int, hi: int, bold: bool = False
) -> tuple[_Font, list[str]]:
    """Largest size in [lo, hi] at which the wrapped text fits; else the smallest size, truncated with '…'."""
    hi = max(lo, min(hi, height))
    for size in range(hi, lo - 1, -1):
        font = _font(font_name, size)
        stroke = _stroke(bold, size)
        lines = _wrap(text, font, width - 2 * stroke)
        if len(lines) <= max_lines and len(lines) * _line_height(font) + 2 * stroke <= height:
            return font, _balance(text, font, width - 2 * stroke, lines)

    font = _font(font_name, lo)
    fitting = max(1, min(max_lines, height // max(1, _line_height(font))))
    lines = _wrap(text, font, width)
    if len(lines) > fitting:
        lines = [*lines[: fitting - 1], _truncate(lines[fitting - 1], font, width)]
    return font, lines


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

    def box(self, element: _Element) -> tuple[int, int, int, int]:
        """The element's box in pixels: left, top, width, height (at least 1x1)."""
        fx, fy, fw, fh = element.box
        left, top = math.floor(fx * self.width), math.floor(fy * self.height)
        right = min(self.width, math.floor((fx + fw) * self.width))
        bottom = min(self.height, math.floor((fy + fh) * self.height))
        return left, top, max(1, right - left), max(1, bottom - top)


def _draw_lines(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    font: _Font,
    box: tuple[int, int, int, int],
    align: str,
    fill: int,
    valign: Literal["top", "middle"] = "top",
    stroke: int = 0,
) -> tuple[int, int, int, int]:
    """Draw lines in a box; return the union of their ink bounding boxes."""
    left, top, width, height = box
    left, top, width, height = left + stroke, top + stroke, width - 2 * stroke, height - 2 * stroke
    line_h = _line_height(font)
    y = top if valign == "top" else top + max(0, (height - line_h * len(lines)) // 2)
    ink = [left + width, top + height, left, top]
    for line in lines:
        length = font.getlength(line)
        if align == "center":
            x = left + (width - length) // 2
        elif align == "right":
            x = left + width - length
        else:
            x = left
        draw.text((int(x), y), line, font=font, fill=fill, anchor="la", stroke_width=stroke, stroke_fill=fill)
        bbox = draw.textbbox((int(x), y), line, font=font, anchor="la", stroke_width=stroke)
        ink = [
            min(ink[0], int(bbox[0])),
            min(ink[1], int(bbox[1])),
            max(ink[2], int(bbox[2])),
            max(ink[3], int(bbox[3])),
        ]
        y += line_h
    return ink[0], ink[1], ink[2], ink[3]


def _format_price(element: PriceElement, amount: Decimal, currency: str) -> str:
    text = f"{amount:.2f}".replace(".", element.decimal_separator)
    symbol = _CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    return element.format.format(symbol=symbol, code=currency, amount=text)


def _draw_text(canvas: _Canvas, element: TextElement, value: str) -> None:
    box = canvas.box(element)
    _require_glyphs(element.prefix + value, canvas.font_name, element.field)
    font, lines = _fit_text(
        element.prefix + value, canvas.font_name, box[2], box[3], element.max_lines, element.min_size, element.max_size
    )
    _draw_lines(canvas.draw(element.colour), lines, font, box, element.align, fill=1)


def _draw_price(canvas: _Canvas, element: PriceElement, amount: Decimal, currency: str) -> None:
    box = canvas.box(element)
    text = _format_price(element, amount, currency)
    _require_glyphs(text, canvas.font_name, "currency")
    font, lines = _fit_text(
        text, canvas.font_name, box[2], box[3], 1, element.min_size, element.max_size, bold=element.bold
    )
    draw = canvas.draw(element.colour)
    stroke = _stroke(element.bold, int(font.size))
    x0, y0, x1, y1 = _draw_lines(draw, lines, font, box, element.align, fill=1, valign="middle", stroke=stroke)
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
        font, lines = _fit_text(code, canvas.font_name, width, min(16, height // 3), 1, 6, 16)
        if lines == [code] and height - _line_height(font) >= 12:
            digits_h = _line_height(font)
            text_box = (left, top + height - digits_h, width, digits_h)
            _draw_lines(draw, [code], font, text_box, "center", fill=1)
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
        _require_glyphs(element.text, canvas.font_name, element.field)
    except LabelFieldsError as exc:
        raise TemplateError(f"banner text: {exc.problems[element.field]}") from None
    pad = max(1, height // 8)
    inner = (left + pad, top + pad, width - 2 * pad, height - 2 * pad)
    font, lines = _fit_text(element.text, canvas.font_name, inner[2], inner[3], 1, 6, 200)
    _draw_lines(draw, lines, font, inner, "center", fill=0, valign="middle")


def _is_set(value: object) -> bool:
    return value is not None and value is not False and value != ""


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
        if not _is_set(value):
            continue
        if element.when is not None and not _is_set(getattr(values, element.when)):
            continue
        if element.unless is not None and _is_set(getattr(values, element.unless)):
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
        native = image.transpose(_TO_NATIVE[panel.rotation]) if panel.rotation else image
        arrays.append(np.asarray(native, dtype=bool))
    if len(arrays) > 1:
        arrays[1] = arrays[1] & ~arrays[0]  # black wins: every pixel is exactly one colour
    planes = tuple(np.packbits(array.ravel()).tobytes() for array in arrays)
    return LabelImage(panel=panel, planes=planes)
