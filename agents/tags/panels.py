"""Panel profiles for e-ink shelf labels: native resolution, colour mode and mounting rotation.

Why a fixed table: a tag reports (or is configured with) its panel type, and every later stage (the
renderer, the encoders, the content hash) needs the exact native geometry so the bytes we send are the
bytes the panel scans out. The sizes are the common ESL panels (OpenEPaperLink's tag types): 152x152 (1.54"),
200x200 (1.54"/1.6"), 250x122 (2.13"), 296x128 (2.9"), 400x300 (4.2"), plus a few larger ones, each in
black/white (``bw``), black/white/red (``bwr``) and black/white/yellow (``bwy``).

Names are ``<width>x<height>-<mode>`` in the panel's *native* scan orientation, e.g. ``296x128-bwr``.
A panel mounted the other way round (a 296x128 panel used as a portrait label) is the same panel with a
``rotation``: the label is designed in the *view* orientation (native size rotated by ``rotation``
degrees clockwise) and the renderer rotates it back into native scan order. ``panel_by_name`` accepts
an ``@90`` / ``@180`` / ``@270`` suffix for that, e.g. ``296x128-bwr@90``.

BWRY (four-colour) and 7-colour panels are not modelled yet: they need 2-bit packed pixels rather than
two 1-bit planes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

__all__ = ["ColourMode", "Panel", "UnknownPanelError", "known_panels", "panel_by_name"]


class ColourMode(enum.StrEnum):
    """Inks a panel can show besides white."""

    BW = "bw"
    BWR = "bwr"
    BWY = "bwy"

    @property
    def planes(self) -> int:
        """Number of 1-bit planes: black, plus one accent plane for three-colour panels."""
        return 1 if self is ColourMode.BW else 2

    @property
    def esl_display_type(self) -> int:
        """The Bluetooth ESL Display Information type of a panel with these inks (ESL Service 1.0)."""
        return {ColourMode.BW: 0x01, ColourMode.BWR: 0x06, ColourMode.BWY: 0x07}[self]

    @property
    def accent_rgb(self) -> tuple[int, int, int] | None:
        """Preview colour of the accent plane, or ``None`` for black/white panels."""
        return {ColourMode.BW: None, ColourMode.BWR: (255, 0, 0), ColourMode.BWY: (255, 255, 0)}[self]


_ROTATIONS = (0, 90, 180, 270)


class UnknownPanelError(LookupError, ValueError):
    """A panel name that is not in the profile table; the message lists the known names."""


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel profile.

    ``width`` and ``height`` are the native scan geometry (what the controller clocks out row by row);
    ``rotation`` is how many degrees clockwise the label as seen by a shopper is turned relative to it.
    """

    width: int
    height: int
    colour_mode: ColourMode
    rotation: int = 0

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"panel size must be positive, got {self.width}x{self.height}")
        if self.rotation not in _ROTATIONS:
            raise ValueError(f"rotation must be one of {_ROTATIONS}, got {self.rotation}")

    @property
    def base_name(self) -> str:
        """Name without the rotation suffix, e.g. ``296x128-bwr``."""
        return f"{self.width}x{self.height}-{self.colour_mode.value}"

    @property
    def name(self) -> str:
        """Full name, e.g. ``296x128-bwr`` or ``296x128-bwr@90``."""
        return self.base_name if self.rotation == 0 else f"{self.base_name}@{self.rotation}"

    @property
    def planes(self) -> int:
        """Number of 1-bit planes (1 for BW, 2 for BWR/BWY); also the OEPL ``bpp`` header byte."""
        return self.colour_mode.planes

    @property
    def view_size(self) -> tuple[int, int]:
        """(width, height) of the label as designed and seen, after applying ``rotation``."""
        if self.rotation in (90, 270):
            return self.height, self.width
        return self.width, self.height

    @property
    def plane_bytes(self) -> int:
        """Bytes in one packed plane: ``ceil(width * height / 8)`` (no per-row padding, like OEPL raw)."""
        return (self.width * self.height + 7) // 8

    def rotated(self, rotation: int) -> Panel:
        """The same panel mounted with ``rotation`` degrees clockwise."""
        return replace(self, rotation=rotation)


_SIZES: tuple[tuple[int, int], ...] = (
    (152, 152),
    (200, 200),
    (212, 104),
    (250, 122),
    (296, 128),
    (296, 152),
    (384, 168),
    (400, 300),
    (640, 384),
    (800, 480),
)

_PANELS: dict[str, Panel] = {
    p.base_name: p for (w, h) in _SIZES for mode in ColourMode for p in (Panel(width=w, height=h, colour_mode=mode),)
}


def known_panels() -> list[str]:
    """Names of all known panel profiles, in table order."""
    return list(_PANELS)


def panel_by_name(name: str, rotation: int | None = None) -> Panel:
    """Look a panel up by name (``296x128-bwr``, optionally ``@90``); ``rotation`` overrides the suffix.

    Raises :class:`UnknownPanelError` listing the known names when the name is not in the table.
    """
    base, _, suffix = name.strip().lower().partition("@")
    panel = _PANELS.get(base)
    if panel is None:
        raise UnknownPanelError(f"unknown panel {name!r}; known panels: {', '.join(known_panels())}")
    if suffix:
        try:
            suffix_rotation = int(suffix)
        except ValueError:
            raise UnknownPanelError(f"bad rotation suffix in panel name {name!r}: expected @0/@90/@180/@270") from None
        if suffix_rotation not in _ROTATIONS:
            raise UnknownPanelError(f"bad rotation suffix in panel name {name!r}: expected @0/@90/@180/@270")
        panel = panel.rotated(suffix_rotation)
    if rotation is not None:
        panel = panel.rotated(rotation)
    return panel
