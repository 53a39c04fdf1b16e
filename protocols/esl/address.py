"""Bluetooth ESL addresses: which tag a command, a frame or a stored record is about.

Source: the Bluetooth SIG ESL Service 1.0 (ESL Address characteristic, ECP addressing). An ESL address is a uint16
sent little-endian::

    bit 15      bits 14..8        bits 7..0
    +-----+------------------+------------------+
    | RFU | Group ID 0..127  | ESL ID 0..254    |   ESL ID 0xFF = broadcast within the group
    +-----+------------------+------------------+

The group is the PAwR subevent the tag listens in over the air; the serial link (:mod:`protocols.esl.serial`) names
its tags with the same two bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import ClassVar

from protocols.errors import ProtocolError
from protocols.esl.fields import U8, U16, check_range

__all__ = ["BROADCAST_ESL_ID", "MAX_GROUP_ID", "EslAddress"]

BROADCAST_ESL_ID = 0xFF
"""ESL ID 0xFF addresses every tag of a group."""
MAX_GROUP_ID = 127

_RFU_BIT = 0x8000


@dataclass(frozen=True)
class EslAddress:
    """An ESL address: group (0..127, the PAwR subevent) and ESL ID (0..254; 0xFF = broadcast)."""

    group_id: int
    esl_id: int

    SIZE: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_range("group id", self.group_id, 0, MAX_GROUP_ID)
        check_range("ESL id", self.esl_id, 0, U8)

    @property
    def is_broadcast(self) -> bool:
        return self.esl_id == BROADCAST_ESL_ID

    def to_int(self) -> int:
        """The uint16 value: ``group_id << 8 | esl_id`` (bit 15 RFU, always 0)."""
        return (self.group_id << 8) | self.esl_id

    @classmethod
    def from_int(cls, value: int) -> EslAddress:
        check_range("ESL address", value, 0, U16)
        if value & _RFU_BIT:
            raise ProtocolError(f"ESL address 0x{value:04x} has the RFU bit 15 set")
        return cls(group_id=(value >> 8) & 0x7F, esl_id=value & 0xFF)

    def encode(self) -> bytes:
        """Two bytes, little-endian: ESL ID first, then group ID."""
        return struct.pack("<H", self.to_int())

    @classmethod
    def decode(cls, data: bytes) -> tuple[EslAddress, bytes]:
        if len(data) < cls.SIZE:
            raise ProtocolError(f"ESL address needs 2 bytes, got {len(data)}")
        (value,) = struct.unpack_from("<H", data)
        return cls.from_int(value), bytes(data[cls.SIZE :])

    def __str__(self) -> str:
        return f"{self.group_id}/{'*' if self.is_broadcast else self.esl_id}"
