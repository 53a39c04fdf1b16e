"""Text on a 1-bit label: fonts, glyph coverage, fitting a text into a box, and drawing its lines.

E-paper has no grey levels, so text is drawn with ``fontmode="1"`` (no anti-aliasing). The font is DejaVu Sans
Mono, which ships inside ``python-barcode`` (Bitstream Vera licence, DejaVu changes public domain; covers
Latin-1, Latin Extended and the euro and pound signs); ``font: aileron`` selects Pillow's built-in Aileron
(CC0, ASCII only). Fonts ship inside pip packages, so nothing depends on the host's fonts. Text the font has no
glyph for is refused with the field's name instead of printing "tofu" boxes on a shelf. A text wraps (balanced,
so no lone word on the last line) and shrinks down to the element's ``min_size``, then truncates with an
ellipsis.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import barcode  # type: ignore[import-untyped]
from PIL import Image, ImageDraw, ImageFont

from agents.tags.render.fields import LabelFieldsError
from agents.tags.render.template import TemplateError

__all__ = ["Font", "draw_lines", "fit_text", "line_height", "require_glyphs", "stroke_width"]

_DEJAVU_MONO = Path(barcode.__file__).parent / "fonts" / "DejaVuSansMono.ttf"
_ELLIPSIS = "\u2026"

Font = ImageFont.FreeTypeFont


@functools.cache
def _font(name: str, size: int) -> Font:
    if name == "aileron":
        font = ImageFont.load_default(size=size)
        if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow built without FreeType
            raise TemplateError("font 'aileron' needs Pillow with FreeType support")
        return font
    return ImageFont.truetype(str(_DEJAVU_MONO), size=size)


def line_height(font: Font) -> int:
    ascent, descent = font.getmetrics()
    return int(ascent + descent)


def _wrap(text: str, font: Font, width: int) -> list[str]:
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


def _truncate(line: str, font: Font, width: int) -> str:
    while line and font.getlength(line + _ELLIPSIS) > width:
        line = line[:-1]
    return line.rstrip() + _ELLIPSIS


def _glyph_signature(font: Font, ch: str) -> bytes:
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


def require_glyphs(text: str, font_name: str, field: str) -> None:
    """Refuse text the font cannot draw, rather than print boxes on a shelf label."""
    missing = list(dict.fromkeys(ch for ch in text if not ch.isspace() and not _has_glyph(font_name, ch)))
    if missing:
        shown = ", ".join(f"{ch!r} (U+{ord(ch):04X})" for ch in missing[:5])
        raise LabelFieldsError({field: f"font {font_name!r} has no glyph for {shown}"})


def _balance(text: str, font: Font, width: int, lines: list[str]) -> list[str]:
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


def stroke_width(bold: bool, size: int) -> int:
    """Outline width that emboldens ``size``-px text; none below 18 px, where it would fill the counters."""
    return max(1, size // 28) if bold and size >= 18 else 0


def fit_text(
    text: str, font_name: str, width: int, height: int, max_lines: int, lo: int, hi: int, bold: bool = False
) -> tuple[Font, list[str]]:
    """Largest size in [lo, hi] at which the wrapped text fits; else the smallest size, truncated with '…'."""
    hi = max(lo, min(hi, height))
    for size in range(hi, lo - 1, -1):
        font = _font(font_name, size)
        stroke = stroke_width(bold, size)
        lines = _wrap(text, font, width - 2 * stroke)
        if len(lines) <= max_lines and len(lines) * line_height(font) + 2 * stroke <= height:
            return font, _balance(text, font, width - 2 * stroke, lines)

    font = _font(font_name, lo)
    fitting = max(1, min(max_lines, height // max(1, line_height(font))))
    lines = _wrap(text, font, width)
    if len(lines) > fitting:
        lines = [*lines[: fitting - 1], _truncate(lines[fitting - 1], font, width)]
    return font, lines


def draw_lines(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    font: Font,
    box: tuple[int, int, int, int],
    align: str,
    fill: int,
    valign: Literal["top", "middle"] = "top",
    stroke: int = 0,
) -> tuple[int, int, int, int]:
    """Draw lines in a box; return the union of their ink bounding boxes."""
    left, top, width, height = box
    left, top, width, height = left + stroke, top + stroke, width - 2 * stroke, height - 2 * stroke
    line_h = line_height(font)
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
