"""The tag commands' arguments, and the per-item validation of ``tags.set_labels``.

``tags.set_labels``, ``tags.led``, ``tags.ping`` and ``tags.status`` take the argument models below (strict:
an unknown key is an error). The items of ``tags.set_labels`` are deliberately *not* validated as a whole: a
batch of 400 price changes must not fail because item 17 has a negative price or names a tag that is not on
this gateway, so :func:`prepare_items` validates and renders each item on its own and turns a bad one into an
error entry with the reason, while the others go on. It is pure (no I/O) and runs on a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.tags.config import parse_address
from agents.tags.encoding import ImageEncodingError
from agents.tags.panels import Panel, UnknownPanelError, panel_by_name
from agents.tags.render import LabelFieldsError, LabelImage, Template, TemplateError, render_label
from protocols.esl import EslAddress, LedControl

__all__ = [
    "LabelItem",
    "LedArgs",
    "PreparedItem",
    "SetLabelsArgs",
    "StatusArgs",
    "TagListArgs",
    "led_command",
    "prepare_items",
]


class LabelItem(BaseModel):
    """One item of ``tags.set_labels``: what tag ``tag`` should show."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tag: str = Field(description="ESL address 'group/id'.")
    fields: dict[str, Any] = Field(description="Label fields for the template (name, price, currency, ...).")
    template: str = "default"
    panel: str | None = Field(None, description="Panel name; must be the tag's panel (a rotation may differ).")
    priority: int = Field(0, ge=-100, le=100, description="Higher goes first.")
    show_at: datetime | None = Field(None, description="Show at this time (ISO 8601 with zone, or Unix seconds).")

    @field_validator("show_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("show_at needs a time zone (e.g. 2026-12-01T07:00:00+01:00) or Unix seconds")
        return value


class SetLabelsArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=2000, description="LabelItem objects, validated one by one.")
    request: str | None = Field(None, max_length=128, description="Echoed (with #item) in the tags/state results.")


class TagListArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1, max_length=2000)


class LedArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] = Field(min_length=1, max_length=2000)
    action: Literal["flash", "on", "off"] = "flash"
    color: Literal["red", "green", "blue", "white", "yellow"] = "green"
    duration_s: int = Field(10, ge=1, le=3600, description="How long to flash or stay on.")
    led: int = Field(0, ge=0, le=255)


class StatusArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tags: list[str] | None = Field(None, max_length=2000, description="Default: every tag.")


_COLOURS = {
    "red": (3, 0, 0),
    "green": (0, 3, 0),
    "blue": (0, 0, 3),
    "white": (3, 3, 3),
    "yellow": (3, 3, 0),
}


def led_command(address: EslAddress, args: LedArgs) -> LedControl:
    """The ECP LED Control for ``args``: flash = 200 ms on / 200 ms off for ``duration_s`` seconds."""
    red, green, blue = _COLOURS[args.color]
    if args.action == "off":
        pattern, repeat_type, duration = 0, 0, 0
    elif args.action == "on":
        pattern, repeat_type, duration = 0xFF_FFFF_FFFF, 1, args.duration_s
    else:
        pattern, repeat_type, duration = 0b10, 1, args.duration_s
    return LedControl(
        esl_id=address.esl_id,
        led_index=args.led,
        red=red,
        green=green,
        blue=blue,
        brightness=3,
        pattern=pattern,
        off_period=100,
        on_period=100,
        repeat_type=repeat_type,
        repeats_duration=duration,
    )


# --------------------------------------------------------------------------------------------------------------------
# Preparing items (pure; runs on a worker thread)


@dataclass(frozen=True)
class PreparedItem:
    """A validated and rendered item, or the reason it was refused."""

    index: int
    tag: str | None
    error: str | None = None
    address: EslAddress | None = None
    image: LabelImage | None = None
    framebuffer: bytes | None = None
    priority: int = 0
    show_at: float | None = None

    @property
    def image_hash(self) -> str | None:
        return self.image.content_hash() if self.image is not None else None


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = "unknown key" if error["type"] == "extra_forbidden" else str(error["msg"])
    return f"{where}: {message}" if where else message


def prepare_items(
    items: Sequence[Any], panels: Mapping[EslAddress, Panel], templates: Mapping[str, Template]
) -> list[PreparedItem]:
    """Validate and render every item on its own; a bad item becomes an error entry, the others go on."""
    prepared: list[PreparedItem] = []
    first_index: dict[EslAddress, int] = {}
    for index, raw in enumerate(items):
        tag = raw.get("tag") if isinstance(raw, dict) and isinstance(raw.get("tag"), str) else None
        try:
            item = LabelItem.model_validate(raw)
        except ValidationError as exc:
            prepared.append(PreparedItem(index, tag, error=_first_error(exc)))
            continue
        try:
            address = parse_address(item.tag)
        except ValueError as exc:
            prepared.append(PreparedItem(index, tag, error=f"tag: {exc}"))
            continue
        if address in first_index:
            error = f"tag {address} appears twice in this batch (first valid at item {first_index[address]})"
            prepared.append(PreparedItem(index, tag, error=error))
            continue
        tag_panel = panels.get(address)
        if tag_panel is None:
            prepared.append(PreparedItem(index, tag, error=f"unknown tag {address}: not declared on any bus"))
            continue
        panel = tag_panel
        if item.panel is not None:
            try:
                panel = panel_by_name(item.panel)
            except UnknownPanelError as exc:
                prepared.append(PreparedItem(index, tag, error=f"panel: {exc}"))
                continue
            if panel.base_name != tag_panel.base_name:
                error = f"panel: tag {address} has a {tag_panel.base_name} panel, not {panel.base_name}"
                prepared.append(PreparedItem(index, tag, error=error))
                continue
        template = templates.get(item.template)
        if template is None:
            known = ", ".join(sorted(templates))
            prepared.append(PreparedItem(index, tag, error=f"template: unknown template {item.template!r} ({known})"))
            continue
        try:
            image = render_label(item.fields, panel, template)
            framebuffer = image.framebuffer()
        except LabelFieldsError as exc:
            prepared.append(PreparedItem(index, tag, error=f"fields: {exc}"))
            continue
        except (TemplateError, ImageEncodingError) as exc:
            prepared.append(PreparedItem(index, tag, error=f"render: {exc}"))
            continue
        first_index[address] = index
        show_at = item.show_at.timestamp() if item.show_at is not None else None
        prepared.append(
            PreparedItem(index, tag, None, address, image, framebuffer, priority=item.priority, show_at=show_at)
        )
    return prepared
