"""Typed link frames and the streaming decoder that finds them in whatever bytes the port returned.

:class:`Frame` wraps a frame body of :mod:`protocols.esl.serial.wire` with its kind, sequence number, tag address
and payload type as Python values; :class:`SerialFrameDecoder` buffers partial frames across reads, drops and counts
corrupt ones and resynchronises at the next ``0x00`` delimiter, so line noise costs at most the frame it hits.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protocols.errors import ProtocolError
from protocols.esl.address import EslAddress
from protocols.esl.serial.wire import (
    CRC_SIZE,
    FLAG_ACK,
    FLAG_DATA,
    FLAG_NACK,
    FLAG_NO_ACK,
    HEADER_SIZE,
    KIND_MASK,
    MAX_PAYLOAD,
    PT_BLOCK_ACK,
    PT_ECP_COMMAND,
    PT_ECP_RESPONSE,
    PT_IMAGE_BLOCK,
    PT_NONE,
    ChecksumError,
    FrameFormatError,
    FramingError,
    cobs_decode,
    cobs_encode,
    pack_frame,
    unpack_frame,
)

__all__ = [
    "Frame",
    "FrameKind",
    "PayloadType",
    "SerialFrameDecoder",
]


class FrameKind(enum.IntEnum):
    DATA = FLAG_DATA
    ACK = FLAG_ACK
    NACK = FLAG_NACK


class PayloadType(enum.IntEnum):
    NONE = PT_NONE
    ECP_COMMAND = PT_ECP_COMMAND
    ECP_RESPONSE = PT_ECP_RESPONSE
    IMAGE_BLOCK = PT_IMAGE_BLOCK
    BLOCK_ACK = PT_BLOCK_ACK


@dataclass(frozen=True)
class Frame:
    """One link frame. ``address`` is the tag the frame goes to (gateway to tag) or comes from (tag to gateway)."""

    kind: FrameKind
    seq: int
    address: EslAddress
    payload_type: PayloadType = PayloadType.NONE
    payload: bytes = b""
    no_ack: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= 0xFF:
            raise FrameFormatError(f"sequence number {self.seq} is not a byte")
        if (self.payload_type == PayloadType.NONE) != (self.kind != FrameKind.DATA):
            raise FrameFormatError("data frames need a payload type; ACK/NACK frames must have none")
        if self.kind != FrameKind.DATA and (self.payload or self.no_ack):
            raise FrameFormatError("ACK/NACK frames carry no payload and no NO_ACK flag")
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameFormatError(f"payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    @classmethod
    def data(
        cls, seq: int, address: EslAddress, payload_type: PayloadType, payload: bytes, *, no_ack: bool = False
    ) -> Frame:
        return cls(FrameKind.DATA, seq, address, payload_type, bytes(payload), no_ack)

    def ack(self) -> Frame:
        """The ACK for this data frame."""
        return Frame(FrameKind.ACK, self.seq, self.address)

    def nack(self) -> Frame:
        """The NACK for this data frame."""
        return Frame(FrameKind.NACK, self.seq, self.address)

    @property
    def flags(self) -> int:
        return int(self.kind) | (FLAG_NO_ACK if self.no_ack else 0)

    def body(self) -> bytes:
        """The frame body before COBS (header, payload, CRC)."""
        return pack_frame(self.flags, self.seq, self.address.to_int(), int(self.payload_type), self.payload)

    def encode(self, *, flush: bool = False) -> bytes:
        """Wire bytes: COBS-encoded body followed by the 0x00 delimiter.

        ``flush`` puts a 0x00 in front as well, so that line noise received since the previous frame ends there
        instead of spoiling this frame (costs one byte; useful on a noisy bus or after a pause).
        """
        return (b"\x00" if flush else b"") + cobs_encode(self.body()) + b"\x00"

    @classmethod
    def from_body(cls, body: bytes) -> Frame:
        """Parse a frame body (already COBS-decoded). Raises :class:`ProtocolError` subclasses."""
        flags, seq, address, payload_type, payload = unpack_frame(body)
        return cls(
            FrameKind(flags & KIND_MASK),
            seq,
            EslAddress.from_int(address),
            PayloadType(payload_type),
            payload,
            bool(flags & FLAG_NO_ACK),
        )


_MAX_ENCODED = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE + (HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE) // 254 + 1


class SerialFrameDecoder:
    """Streaming decoder: feed it whatever the port returned, get complete valid frames back. Never raises.

    Partial frames are buffered across calls. Corrupt frames are dropped and counted (``framing_errors`` for bad
    COBS, ``checksum_errors``, ``format_errors`` for bad length or header fields, ``overflows`` for runs of more
    than the longest possible frame without a delimiter); decoding resumes at the next delimiter either way.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._discarding = False
        self.frames = 0
        self.framing_errors = 0
        self.checksum_errors = 0
        self.format_errors = 0
        self.overflows = 0

    @property
    def dropped(self) -> int:
        """Frames dropped so far, for any reason."""
        return self.framing_errors + self.checksum_errors + self.format_errors + self.overflows

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for a delimiter."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        scanned = len(buffer)  # the buffer never holds a delimiter between calls: search only the new bytes
        buffer += data
        start = 0
        while True:
            end = buffer.find(b"\x00", max(start, scanned))
            if end < 0:
                break
            chunk = bytes(buffer[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            if chunk:
                frame = self._decode(chunk)
                if frame is not None:
                    frames.append(frame)
        del buffer[:start]
        if len(buffer) > _MAX_ENCODED:
            # No delimiter within the longest legal frame: drop what we have and everything up to the next delimiter.
            self.overflows += 1
            buffer.clear()
            self._discarding = True
        return frames

    def _decode(self, chunk: bytes) -> Frame | None:
        if len(chunk) > _MAX_ENCODED:
            self.overflows += 1
            return None
        try:
            frame = Frame.from_body(cobs_decode(chunk))
        except FramingError:
            self.framing_errors += 1
            return None
        except ChecksumError:
            self.checksum_errors += 1
            return None
        except ProtocolError:
            self.format_errors += 1
            return None
        self.frames += 1
        return frame
