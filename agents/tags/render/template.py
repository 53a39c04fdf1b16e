"""Label templates: declarative YAML that says where each field goes and how it looks, validated on load.

A store changes the look of its labels by editing a YAML file (boxes as fractions of the label, font sizes,
colours, when an element shows), not code. A template holds one or more *layouts*, each for a range of aspect
ratios, so the same template serves a 152x152 square and a 296x128 strip. The built-in one is
``templates/price-label.yaml``. An element is text, a price, a barcode, a QR code or a banner, and may show
only the fields that make sense for its type; every field name is checked against :class:`LabelFields` when
the template is loaded, so a typo fails at start, not on the first label.
"""

from __future__ import annotations

import functools
import os
import string
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agents.tags.render.fields import FIELD_NAMES

__all__ = [
    "DEFAULT_TEMPLATE_PATH",
    "BannerElement",
    "BarcodeElement",
    "Colour",
    "Element",
    "Layout",
    "PriceElement",
    "QrElement",
    "Template",
    "TemplateError",
    "TextElement",
    "default_template",
    "load_template",
]

DEFAULT_TEMPLATE_PATH = Path(__file__).parents[1] / "templates" / "price-label.yaml"


class TemplateError(ValueError):
    """A template file that cannot be used: bad YAML, an unknown key, or an unknown field name."""


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
            if name not in FIELD_NAMES:
                raise ValueError(f"required: unknown field {name!r} (known fields: {', '.join(FIELD_NAMES)})")
        for li, layout in enumerate(self.layouts):
            for ei, element in enumerate(layout.elements):
                where = f"layouts[{li}].elements[{ei}]"
                for name in element.field_names():
                    if name not in FIELD_NAMES:
                        raise ValueError(f"{where}: unknown field {name!r} (known fields: {', '.join(FIELD_NAMES)})")
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
