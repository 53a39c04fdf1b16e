"""The seam between the tag service and the radios: what every tag transport offers.

The tag service schedules updates; it does not care whether a tag hangs on an RS-485 bus
(:class:`agents.tags.serial_transport.SerialTagTransport`) or is reached over Bluetooth LE (the ESL access
point in :mod:`agents.tags.ble`). Both implement :class:`TagTransport` and raise :class:`TagTransportError`
subclasses for anything a tag or the link did wrong, so the service treats every such error as a per-tag
failure (retry with back-off, then ``failed`` with the reason) and never as a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocols.esl import Command, DisplayState, EslAddress, Response

__all__ = ["ImageResult", "SentImage", "TagRefusedError", "TagTransport", "TagTransportError"]


class TagTransportError(Exception):
    """Base class of every transport's per-tag errors (unreachable, timed out, refused, transfer failed)."""


class TagRefusedError(TagTransportError):
    """The tag answered, with an error (e.g. Display Image of an image it does not hold)."""


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one image transfer."""

    address: EslAddress
    image_hash: bytes
    blocks_sent: int
    bytes_sent: int
    passes: int
    response: Response


class SentImage(Protocol):
    """What the service reads from any transport's image result."""

    @property
    def bytes_sent(self) -> int: ...


class TagTransport(Protocol):
    """What the tag service needs from a transport (one bus or one radio)."""

    @property
    def bytes_written(self) -> int: ...

    async def send_command(self, address: EslAddress, command: Command) -> Response: ...

    async def send_image(
        self, address: EslAddress, planes: bytes, *, image_index: int = 0, display: bool = True
    ) -> SentImage: ...

    async def display_image(self, address: EslAddress, image_index: int) -> DisplayState: ...

    async def close(self) -> None: ...
