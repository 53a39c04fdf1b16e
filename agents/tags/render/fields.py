"""Label fields: what a price label can show, validated before anything is drawn.

A price label that shows ``NaN`` or ``-1.00`` is worse than none, so every field goes through
:class:`LabelFields` (pydantic, ``extra="forbid"``): prices finite, non-negative, at most 999999.99 with two
decimals; text lengths bounded, no control characters; the EAN-13 / UPC-A check digit verified (the check digit
computed by ``python-barcode``). Every error names the field (:class:`LabelFieldsError`). Which fields a label
requires is up to its template; whether the font can draw a text is checked where it is drawn
(:func:`agents.tags.render.text.require_glyphs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

import barcode  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = ["FIELD_NAMES", "MAX_PRICE", "LabelFields", "LabelFieldsError", "Price", "is_set", "parse_fields"]

MAX_PRICE = Decimal("999999.99")
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, max_digits=8, decimal_places=2, allow_inf_nan=False)]


class LabelFieldsError(ValueError):
    """Label fields that cannot be rendered; ``problems`` maps each offending field to what is wrong."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{field}: {message}" for field, message in self.problems.items()))


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


FIELD_NAMES = tuple(LabelFields.model_fields)


def is_set(value: object) -> bool:
    """Whether a field has something to show (not ``None``, ``False`` or empty)."""
    return value is not None and value is not False and value != ""


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
                    problems[field] = f"unknown field (known fields: {', '.join(FIELD_NAMES)})"
                else:
                    problems.setdefault(field, str(error["msg"]).removeprefix("Value error, "))
            raise LabelFieldsError(problems) from None
    missing = {name: "missing required field" for name in required if not is_set(getattr(parsed, name))}
    if missing:
        raise LabelFieldsError(missing)
    return parsed
