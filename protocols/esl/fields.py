"""Field checks shared by the ESL codecs: every constructor validates its integers and byte strings the same way.

A value out of range raises :class:`~protocols.errors.ProtocolError` (never ``ValueError`` or ``TypeError``), so a
decoder that builds a message from received bytes keeps the package's promise to raise nothing else. ``bool`` is
rejected where an integer is expected, although Python counts it as one.
"""

from __future__ import annotations

from protocols.errors import ProtocolError

__all__ = ["U8", "U16", "U32", "check_bytes", "check_range"]

U8 = 0xFF
U16 = 0xFFFF
U32 = 0xFFFF_FFFF


def check_range(name: str, value: int, low: int, high: int) -> None:
    """Raise :class:`ProtocolError` unless ``value`` is an ``int`` (not a ``bool``) in ``low..high``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(f"{name} must be an integer in {low}..{high}, got {value!r}")


def check_bytes(name: str, value: bytes, low: int, high: int) -> None:
    """Raise :class:`ProtocolError` unless ``value`` is ``bytes`` of ``low..high`` bytes."""
    if not isinstance(value, bytes) or not low <= len(value) <= high:
        raise ProtocolError(f"{name} must be {low}..{high} bytes, got {value!r}")
