"""The ECP TLV rule that commands and responses share: the opcode's length nibble gives the TLV's length.

Source: the Bluetooth SIG ESL Service 1.0, ESL Control Point. Commands and responses alike::

    byte 0: opcode = length nibble (bits 7..4) | tag nibble (bits 3..0)
    total TLV length = (opcode >> 4) + 2 bytes, opcode byte included

The length nibble is what lets a receiver skip a TLV it does not understand, so decoders check that the opcode's
length nibble matches the layout of the message it names and report unknown opcodes with their length
(:class:`UnknownOpcodeError`). Commands are in :mod:`protocols.esl.commands`, responses in
:mod:`protocols.esl.responses`.
"""

from __future__ import annotations

from protocols.errors import ProtocolError

__all__ = ["UnknownOpcodeError", "take_tlv", "tlv_length"]


def tlv_length(opcode: int) -> int:
    """Total length of a TLV, opcode included, from its opcode's length nibble: ``(opcode >> 4) + 2``."""
    return ((opcode & 0xF0) >> 4) + 2


class UnknownOpcodeError(ProtocolError):
    """The opcode is not a known command or response. ``length`` (from the length nibble) lets a caller skip it.

    A tag answers an unknown command with Error Invalid Opcode (``00 02``).
    """

    def __init__(self, opcode: int, kind: str) -> None:
        self.opcode = opcode
        self.length = tlv_length(opcode)
        super().__init__(f"unknown {kind} opcode 0x{opcode:02x} (TLV length {self.length})")


def take_tlv(data: bytes, kind: str) -> tuple[int, bytes, bytes]:
    """Split ``data`` into (opcode, whole TLV, rest) using the length nibble; ProtocolError if truncated."""
    if not data:
        raise ProtocolError(f"empty {kind}: no opcode byte")
    opcode = data[0]
    length = tlv_length(opcode)
    if len(data) < length:
        raise ProtocolError(f"{kind} opcode 0x{opcode:02x} needs {length} bytes, got {len(data)}")
    return opcode, bytes(data[:length]), bytes(data[length:])
