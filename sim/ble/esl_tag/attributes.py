"""GATT building blocks the emulated tag's services share: ATT error codes and characteristics with one policy.

Every service of the tag (ESL and DIS in :mod:`sim.ble.esl_tag.tag`, OTS in :mod:`sim.ble.esl_tag.ots`) is built
from :class:`CharacteristicFactory`, so one switch (``require_encryption``) decides whether reads and writes need an
encrypted link, and every static read costs one ATT round trip of modelled time. Refusals are raised as
:class:`bumble.att.ATT_Error` with the codes below, so the client gets an ATT Error Response instead of a 30 s
timeout.
"""

from __future__ import annotations

from collections.abc import Callable

from bumble import att, gatt
from bumble.core import UUID
from bumble.device import Connection

__all__ = [
    "ATT_CCCD_IMPROPERLY_CONFIGURED",
    "ATT_INVALID_ATTRIBUTE_LENGTH",
    "ATT_OTS_OBJECT_NOT_SELECTED",
    "ATT_OTS_WRITE_REQUEST_REJECTED",
    "ATT_VALUE_NOT_ALLOWED",
    "CharacteristicFactory",
]

ATT_INVALID_ATTRIBUTE_LENGTH = 0x0D
ATT_VALUE_NOT_ALLOWED = 0x13
ATT_OTS_WRITE_REQUEST_REJECTED = 0x80
ATT_OTS_OBJECT_NOT_SELECTED = 0x81
ATT_CCCD_IMPROPERLY_CONFIGURED = 0xFD

Read = Callable[[Connection], bytes]
Write = Callable[[Connection, bytes], None]


class CharacteristicFactory:
    """Characteristics with the tag's permissions; ``on_access`` is called on every read of a :meth:`static` value."""

    def __init__(self, *, require_encryption: bool, on_access: Callable[[], None]) -> None:
        self.read_permissions = att.Attribute.READABLE | (
            att.Attribute.READ_REQUIRES_ENCRYPTION if require_encryption else 0
        )
        self.write_permissions = att.Attribute.WRITEABLE | (
            att.Attribute.WRITE_REQUIRES_ENCRYPTION if require_encryption else 0
        )
        self._on_access = on_access

    def readable(self, uuid: int, read: Read) -> gatt.Characteristic[bytes]:
        """A read-only characteristic whose value ``read`` computes per request."""
        return gatt.Characteristic(
            UUID.from_16_bits(uuid),
            gatt.Characteristic.Properties.READ,
            self.read_permissions,
            gatt.CharacteristicValue(read=read),
        )

    def static(self, uuid: int, value: bytes) -> gatt.Characteristic[bytes]:
        """A read-only characteristic with a fixed ``value`` (information characteristics, PnP ID)."""

        def read(_connection: Connection) -> bytes:
            self._on_access()
            return value

        return self.readable(uuid, read)

    def writable(
        self,
        uuid: int,
        write: Write,
        properties: gatt.Characteristic.Properties = gatt.Characteristic.Properties.WRITE,
    ) -> gatt.Characteristic[bytes]:
        """A characteristic the AP writes (``properties`` adds notify/indicate for control points)."""
        return gatt.Characteristic(
            UUID.from_16_bits(uuid), properties, self.write_permissions, gatt.CharacteristicValue(write=write)
        )
