"""Errors raised by the pure codecs in :mod:`protocols`."""

from __future__ import annotations


class ProtocolError(ValueError):
    """Bytes or a payload do not follow the wire format; the message says which part and why."""
