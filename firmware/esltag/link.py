"""Serial link core for the tag: COBS framing, CRC-16/CCITT-FALSE, frame pack/unpack, streaming decoder.

Byte-compatible with protocols/esl/serial/wire.py (same layout, same CRC); plain Python that runs unchanged under
MicroPython and CPython (no typing, dataclasses, enum, slice deletion). tests/test_firmware.py cross-checks the
bytes against protocols.esl.serial under CPython.

Frame body before COBS (multi-byte fields little-endian except the CRC, which is big-endian)::

    version u8 | flags u8 | seq u8 | address u16 | payload_type u8 | length u16 | payload | crc16
"""

import struct

VERSION = 1
HEADER_SIZE = 8
CRC_SIZE = 2
MAX_PAYLOAD = 1024
MAX_ENCODED = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE + (HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE) // 254 + 1

FLAG_DATA = 0x01
FLAG_ACK = 0x02
FLAG_NACK = 0x04
FLAG_NO_ACK = 0x08
KIND_MASK = 0x07

PT_NONE = 0
PT_ECP_COMMAND = 1
PT_ECP_RESPONSE = 2
PT_IMAGE_BLOCK = 3
PT_BLOCK_ACK = 4

HEADER_FORMAT = "<BBBHBH"


class LinkError(ValueError):
    """Invalid COBS, CRC mismatch or a bad frame header."""


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
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR); crc16(b"123456789") == 0x29B1."""
    table = _CRC_TABLE
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """COBS without the trailing delimiter; the result holds no zero byte."""
    out = bytearray(b"\x00")
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
            if code == 0xFF and position + 1 < length:
                out[code_index] = code
                code_index = len(out)
                out.append(0)
                code = 1
    out[code_index] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode (delimiter not included). Raises LinkError on invalid input."""
    out = bytearray()
    index = 0
    length = len(data)
    while index < length:
        code = data[index]
        if code == 0:
            raise LinkError("COBS zero byte")
        end = index + code
        if end > length:
            raise LinkError("COBS code runs past the end")
        for position in range(index + 1, end):
            if data[position] == 0:
                raise LinkError("COBS zero byte")
        out.extend(data[index + 1 : end])
        index = end
        if code != 0xFF and index < length:
            out.append(0)
    return bytes(out)


def pack_frame(flags: int, seq: int, address: int, payload_type: int, payload: bytes) -> bytes:
    """Frame body (header, payload, big-endian CRC) ready for cobs_encode."""
    if not 0 <= seq <= 0xFF:
        raise LinkError("sequence number is not a byte")
    if len(payload) > MAX_PAYLOAD:
        raise LinkError("payload too long")
    body = struct.pack(HEADER_FORMAT, VERSION, flags, seq, address, payload_type, len(payload)) + bytes(payload)
    return body + struct.pack(">H", crc16(body))


def unpack_frame(body: bytes) -> tuple[int, int, int, int, bytes]:
    """Check a frame body and split it into (flags, seq, address, payload_type, payload)."""
    if len(body) < HEADER_SIZE + CRC_SIZE:
        raise LinkError("frame too short")
    version, flags, seq, address, payload_type, length = struct.unpack_from(HEADER_FORMAT, body, 0)
    if length > MAX_PAYLOAD or len(body) != HEADER_SIZE + length + CRC_SIZE:
        raise LinkError("frame length mismatch")
    if crc16(body) != 0:
        raise LinkError("CRC mismatch")
    if version != VERSION:
        raise LinkError("unsupported version")
    kind = flags & KIND_MASK
    if flags & 0xF0 or kind not in (FLAG_DATA, FLAG_ACK, FLAG_NACK):
        raise LinkError("invalid flags")
    if payload_type > PT_BLOCK_ACK or (payload_type == PT_NONE) != (kind != FLAG_DATA):
        raise LinkError("invalid payload type")
    if address & 0x8000:
        raise LinkError("address RFU bit set")
    return flags, seq, address, payload_type, bytes(body[HEADER_SIZE : HEADER_SIZE + length])


def encode_frame(flags: int, seq: int, address: int, payload_type: int, payload: bytes) -> bytes:
    """Wire bytes of one frame: COBS(body) followed by the 0x00 delimiter."""
    return cobs_encode(pack_frame(flags, seq, address, payload_type, payload)) + b"\x00"


class FrameDecoder:
    """Streaming decoder: feed() bytes, get a list of valid (flags, seq, address, payload_type, payload) tuples.

    Never raises; bad frames are dropped and counted in ``errors``; an overlong run without a delimiter is dropped
    up to the next delimiter (``overflows``).
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.frames = 0
        self.errors = 0
        self.overflows = 0

    def feed(self, data: bytes) -> list[tuple[int, int, int, int, bytes]]:
        frames = []
        for byte in data:
            if byte != 0:
                if self._discarding:
                    continue
                self._buffer.append(byte)
                if len(self._buffer) > MAX_ENCODED:
                    self.overflows += 1
                    self._buffer = bytearray()
                    self._discarding = True
                continue
            chunk = bytes(self._buffer)
            self._buffer = bytearray()
            if self._discarding:
                self._discarding = False
                continue
            if not chunk:
                continue
            try:
                frames.append(unpack_frame(cobs_decode(chunk)))
            except LinkError:
                self.errors += 1
                continue
            self.frames += 1
        return frames
