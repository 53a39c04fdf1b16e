"""The serial link's wire format: COBS framing, CRC-16, frame bodies packed and checked. Plain functions.

On the wire every frame is COBS-encoded and ends with a single ``0x00`` delimiter. COBS removes every zero byte
from the frame body, so a zero always marks a frame boundary: a receiver that starts mid-frame, or sees a corrupted
byte, loses at most the frame it is in and resynchronises at the next ``0x00`` (this is the whole reason for COBS over
a length-prefixed framing, where one corrupt length byte desynchronises the stream). Senders may put an extra
``0x00`` before a frame to flush a half-received one at the peer; empty frames are ignored. COBS costs one byte per
254 bytes of body and is implemented here (about 30 lines) rather than taken from the ``cobs`` PyPI package,
because that package ships no type information and is a C extension the MicroPython tag firmware cannot use.

Frame body (before COBS), all multi-byte fields little-endian except the CRC::

    offset  size  field
    0       1     version        (1)
    1       1     flags          bit 0 DATA, bit 1 ACK, bit 2 NACK (exactly one set); bit 3 NO_ACK (data frame
                                 that must not be acknowledged, for broadcasts); bits 4-7 reserved, 0
    2       1     sequence       per-tag sequence number of the data frame (an ACK/NACK echoes it)
    3       2     ESL address    u16 LE, group << 8 | ESL id (as in Bluetooth ESL): the tag the frame goes to or
                                 comes from; the gateway has no address of its own
    5       1     payload type   0 none (ACK/NACK), 1 ECP command, 2 ECP response, 3 image block, 4 block ack
    6       2     length         payload length, u16 LE, at most MAX_PAYLOAD (1024)
    8       n     payload
    8+n     2     CRC-16         CRC-16/CCITT-FALSE over bytes 0 .. 8+n-1, big-endian

CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR; check value ``crc16(b"123456789") ==
0x29B1``) was chosen over KERMIT because CPython computes it natively (``binascii.crc_hqx(data, 0xFFFF)``, used in
the tests as an independent oracle) and because appending it big-endian gives a zero residue: the CRC of a whole
valid frame body, CRC included, is 0.

MicroPython
-----------
This module (:func:`cobs_encode`, :func:`cobs_decode`, :func:`crc16`, :func:`pack_frame`, :func:`unpack_frame`)
uses only ``bytes``/``bytearray``, integers and ``struct`` (no dataclasses, enums, typing or slice deletion), and
the wire constants are plain ints (``FLAG_*``, ``PT_*``), so the tag firmware can share this subset:
``firmware/esltag/link.py`` is its copy, and ``tests/test_firmware.py`` checks the two byte for byte. The typed
frames (:mod:`protocols.esl.serial.frames`) and everything above them are for the gateway. The firmware copies this
module rather than importing it, because it still uses ``from __future__`` and the gateway's error classes.
"""

from __future__ import annotations

import struct

from protocols.errors import ProtocolError

__all__ = [
    "CRC_SIZE",
    "DELIMITER",
    "FLAG_ACK",
    "FLAG_DATA",
    "FLAG_NACK",
    "FLAG_NO_ACK",
    "HEADER_SIZE",
    "KIND_MASK",
    "MAX_PAYLOAD",
    "PT_BLOCK_ACK",
    "PT_ECP_COMMAND",
    "PT_ECP_RESPONSE",
    "PT_IMAGE_BLOCK",
    "PT_NONE",
    "VERSION",
    "ChecksumError",
    "FrameFormatError",
    "FramingError",
    "cobs_decode",
    "cobs_encode",
    "crc16",
    "pack_frame",
    "unpack_frame",
]

VERSION = 1
DELIMITER = 0x00
HEADER_SIZE = 8
CRC_SIZE = 2
MAX_PAYLOAD = 1024
"""Largest payload a frame may carry; the decoder drops longer frames before checking anything else."""

FLAG_DATA = 0x01
FLAG_ACK = 0x02
FLAG_NACK = 0x04
FLAG_NO_ACK = 0x08
KIND_MASK = FLAG_DATA | FLAG_ACK | FLAG_NACK

PT_NONE = 0
PT_ECP_COMMAND = 1
PT_ECP_RESPONSE = 2
PT_IMAGE_BLOCK = 3
PT_BLOCK_ACK = 4
_MAX_PAYLOAD_TYPE = PT_BLOCK_ACK

_HEADER = "<BBBHBH"


class FramingError(ProtocolError):
    """The bytes between two delimiters are not valid COBS."""


class ChecksumError(ProtocolError):
    """The frame's CRC-16 does not match its contents."""


class FrameFormatError(ProtocolError):
    """Wrong length, version, flags, payload type or address in a frame whose CRC is fine (or too long to check)."""


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, MSB first, no final XOR. ``crc16(b"123456789") == 0x29B1``.

    Pass a previous result as ``crc`` to continue over more data.
    """
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the result contains no zero byte and is at most ``len/254 + 1`` longer.

    The delimiter is not appended.
    """
    out = bytearray(b"\x00")  # placeholder for the first code byte
    code_index = 0
    code = 1
    length = len(data)
    for position in range(length):
        byte = data[position]
        if byte == 0:
            out[code_index] = code
            code_index = len(out)
            out.append(0)
            code = 1
        else:
            out.append(byte)
            code += 1
            if code == 0xFF and position + 1 < length:  # a full block with more to come (canonical COBS)
                out[code_index] = code
                code_index = len(out)
                out.append(0)
                code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of :func:`cobs_encode` (without delimiter). Raises :class:`FramingError` on invalid input."""
    out = bytearray()
    index = 0
    length = len(data)
    while index < length:
        code = data[index]
        if code == 0:
            raise FramingError("COBS data contains a zero byte")
        end = index + code
        if end > length:
            raise FramingError(f"COBS code {code} at offset {index} runs past the end ({length} bytes)")
        chunk = data[index + 1 : end]
        if 0 in chunk:
            raise FramingError("COBS data contains a zero byte")
        out += chunk
        index = end
        if code != 0xFF and index < length:
            out.append(0)
    return bytes(out)


def pack_frame(flags: int, seq: int, address: int, payload_type: int, payload: bytes) -> bytes:
    """Frame body (header, payload, CRC) ready for :func:`cobs_encode`; see the module docstring for the layout."""
    if not 0 <= seq <= 0xFF:
        raise FrameFormatError(f"sequence number {seq} is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise FrameFormatError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = struct.pack(_HEADER, VERSION, flags, seq, address, payload_type, len(payload)) + bytes(payload)
    return body + struct.pack(">H", crc16(body))


def unpack_frame(body: bytes) -> tuple[int, int, int, int, bytes]:
    """Check and split a frame body into ``(flags, seq, address, payload_type, payload)``.

    Raises :class:`FrameFormatError` (length, header fields) or :class:`ChecksumError`. The length is checked
    before the CRC so that a corrupt length byte is reported as such.
    """
    if len(body) < HEADER_SIZE + CRC_SIZE:
        raise FrameFormatError(f"frame of {len(body)} bytes is shorter than header and CRC")
    version, flags, seq, address, payload_type, length = struct.unpack_from(_HEADER, body)
    if length > MAX_PAYLOAD or len(body) != HEADER_SIZE + length + CRC_SIZE:
        raise FrameFormatError(f"frame length field {length} does not match {len(body)} received bytes")
    if crc16(body) != 0:  # zero residue: CRC over body + big-endian CRC
        raise ChecksumError(f"CRC mismatch in frame seq {seq}")
    if version != VERSION:
        raise FrameFormatError(f"unsupported frame version {version}")
    kind = flags & KIND_MASK
    if flags & 0xF0 or kind not in (FLAG_DATA, FLAG_ACK, FLAG_NACK):
        raise FrameFormatError(f"invalid flags 0x{flags:02x}")
    if payload_type > _MAX_PAYLOAD_TYPE or (payload_type == PT_NONE) != (kind != FLAG_DATA):
        raise FrameFormatError(f"payload type {payload_type} invalid for flags 0x{flags:02x}")
    if address & 0x8000:
        raise FrameFormatError(f"ESL address 0x{address:04x} has the RFU bit set")
    return flags, seq, address, payload_type, bytes(body[HEADER_SIZE : HEADER_SIZE + length])

