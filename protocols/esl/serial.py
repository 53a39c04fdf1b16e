"""Framed serial link for e-ink tags: COBS framing, CRC-16, acknowledged delivery, block image transfer. Sans-IO.

One serial port (an RS-485 style bus or a radio bridge) reaches many tags; every frame names its tag by ESL address
(group and ESL id). Frames carry the Bluetooth ESL ECP command and response TLVs unchanged
(:mod:`protocols.esl.ecp`), plus image blocks and block acknowledgements. Nothing here touches a port or a clock:
bytes go in through :meth:`SerialFrameDecoder.feed`, frames come out of :meth:`Frame.encode`, and the link-layer
classes are told the current time and answer with what to transmit and when to call again.

Wire format
-----------
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

Link layer
----------
Stop-and-wait per tag: :class:`LinkSender` keeps at most one unacknowledged data frame per ESL address (different
tags on the bus proceed in parallel), retransmits it when its deadline passes with a capped exponential back-off,
and gives up after ``max_tries`` with a :class:`SendResult` of ``FAILED``. A NACK asks for an immediate retransmit.
Sequence numbers count per address from a random start, so a restarted sender is unlikely to reuse the sequence of
the last frame a tag saw. :class:`LinkReceiver` acknowledges every data frame (even duplicates, since the first ACK
may be what was lost) and delivers a frame only once: a frame with the same sequence number and the same content
as the last one delivered from that address is a retransmission.

Block image transfer
--------------------
Images are larger than a frame, so :func:`split_image` cuts them into :class:`ImageBlock` payloads. Every block
carries the whole transfer's identity (image index, 8-byte image hash, total size, block size), so blocks can
arrive in any order, after a gap or after a reset, with no separate "begin transfer" exchange; each block has its
own CRC-16 over its data. :class:`ImageAssembler` (the tag side) answers each block with a :class:`BlockAck`
bitmap of what it holds, which tells the sender what is still missing (resume), and exposes the image only when
every block is present and the SHA-256 of the whole image matches the hash: no tag ever shows a partial image.
This follows the OpenEPaperLink idea of per-part bitmaps and a whole-image hash (its 802.15.4 block
transfer), without its fixed 4096-byte blocks of 99-byte parts.

MicroPython
-----------
The core (:func:`cobs_encode`, :func:`cobs_decode`, :func:`crc16`, :func:`pack_frame`, :func:`unpack_frame`)
uses only ``bytes``/``bytearray``, integers and ``struct`` (no dataclasses, enums, typing or slice deletion), and
the wire constants are plain ints (``FLAG_*``, ``PT_*``), so the tag firmware can share that subset verbatim; the typed
dataclasses (:class:`Frame`, :class:`ImageBlock`, ...) and the link-layer classes are thin wrappers on top, for the
gateway. This module as a whole is not importable under MicroPython (``dataclasses``, ``enum``, ``from __future__``);
the firmware issue should move or copy the core functions into a shared MicroPython-compatible module.
"""

from __future__ import annotations

import enum
import hashlib
import random
import struct
from collections import deque
from dataclasses import dataclass, field

from protocols.errors import ProtocolError
from protocols.esl.ecp import EslAddress

__all__ = [
    "BLOCK_HEADER_SIZE",
    "DEFAULT_BLOCK_SIZE",
    "DELIMITER",
    "HEADER_SIZE",
    "IMAGE_HASH_SIZE",
    "MAX_PAYLOAD",
    "VERSION",
    "BlockAck",
    "ChecksumError",
    "FramingError",
    "Frame",
    "FrameFormatError",
    "FrameKind",
    "ImageAssembler",
    "ImageBlock",
    "LinkReceiver",
    "LinkSender",
    "PayloadType",
    "Received",
    "SendActions",
    "SendOutcome",
    "SendResult",
    "SerialFrameDecoder",
    "TransferStatus",
    "blocks_to_send",
    "cobs_decode",
    "cobs_encode",
    "crc16",
    "image_hash",
    "pack_frame",
    "split_image",
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
_KIND_MASK = FLAG_DATA | FLAG_ACK | FLAG_NACK

PT_NONE = 0
PT_ECP_COMMAND = 1
PT_ECP_RESPONSE = 2
PT_IMAGE_BLOCK = 3
PT_BLOCK_ACK = 4
_MAX_PAYLOAD_TYPE = PT_BLOCK_ACK

_HEADER = "<BBBHBH"


# --------------------------------------------------------------------------------------------------------------------
# Core: plain functions, MicroPython-friendly


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
    kind = flags & _KIND_MASK
    if flags & 0xF0 or kind not in (FLAG_DATA, FLAG_ACK, FLAG_NACK):
        raise FrameFormatError(f"invalid flags 0x{flags:02x}")
    if payload_type > _MAX_PAYLOAD_TYPE or (payload_type == PT_NONE) != (kind != FLAG_DATA):
        raise FrameFormatError(f"payload type {payload_type} invalid for flags 0x{flags:02x}")
    if address & 0x8000:
        raise FrameFormatError(f"ESL address 0x{address:04x} has the RFU bit set")
    return flags, seq, address, payload_type, bytes(body[HEADER_SIZE : HEADER_SIZE + length])


# --------------------------------------------------------------------------------------------------------------------
# Typed frames and the streaming decoder


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
            FrameKind(flags & _KIND_MASK),
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


# --------------------------------------------------------------------------------------------------------------------
# Link layer: acknowledged, deduplicated delivery


class SendOutcome(enum.Enum):
    DELIVERED = "delivered"
    """The tag acknowledged the frame."""
    FAILED = "failed"
    """No acknowledgement after ``max_tries`` transmissions."""
    SENT = "sent"
    """A NO_ACK frame (broadcast) was handed out for transmission once; nothing more is known."""


@dataclass(frozen=True)
class SendResult:
    token: int
    address: EslAddress
    seq: int
    outcome: SendOutcome
    tries: int


@dataclass(frozen=True)
class SendActions:
    """What :meth:`LinkSender.poll` wants done: frames to write now, finished sends, and when to poll next."""

    transmit: list[Frame]
    results: list[SendResult]
    deadline: float | None


@dataclass
class _InFlight:
    token: int
    frame: Frame
    tries: int
    deadline: float


@dataclass
class _Peer:
    next_seq: int
    queue: deque[tuple[int, PayloadType, bytes, bool]] = field(default_factory=deque)
    in_flight: _InFlight | None = None


class LinkSender:
    """Sans-IO sender with per-tag stop-and-wait, retransmission and capped exponential back-off.

    Call :meth:`submit` to queue a payload, :meth:`poll` with the current time (any monotonic clock, seconds) to
    learn what to transmit and the next deadline, and :meth:`on_frame` with each ACK/NACK received. Try ``k``
    (1-based) waits ``min(ack_timeout * 2 ** (k - 1), max_timeout)`` for its ACK; after ``max_tries`` tries the send
    finishes as ``FAILED``. Data frames to a broadcast ESL ID go out once with NO_ACK (many tags answering at once
    would collide on a bus).
    """

    def __init__(
        self,
        *,
        max_tries: int = 5,
        ack_timeout: float = 0.1,
        max_timeout: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_tries < 1 or ack_timeout <= 0 or max_timeout < ack_timeout:
            raise ValueError("need max_tries >= 1 and 0 < ack_timeout <= max_timeout")
        self.max_tries = max_tries
        self.ack_timeout = ack_timeout
        self.max_timeout = max_timeout
        self._rng = rng or random.Random()
        self._peers: dict[EslAddress, _Peer] = {}
        self._next_token = 1
        self.retransmissions = 0
        self.stale_acks = 0

    def timeout_for(self, tries: int) -> float:
        """How long try number ``tries`` (1-based) waits for its acknowledgement."""
        return min(self.ack_timeout * (1 << min(tries - 1, 30)), self.max_timeout)

    def submit(
        self, address: EslAddress, payload_type: PayloadType, payload: bytes, *, no_ack: bool | None = None
    ) -> int:
        """Queue a payload for ``address``; return a token that the :class:`SendResult` will carry.

        ``no_ack`` defaults to True for a broadcast ESL ID and False otherwise.
        """
        if payload_type == PayloadType.NONE:
            raise ValueError("data frames need a payload type")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        token = self._next_token
        self._next_token += 1
        peer = self._peers.get(address)
        if peer is None:
            peer = self._peers[address] = _Peer(next_seq=self._rng.randrange(256))
        peer.queue.append((token, payload_type, bytes(payload), address.is_broadcast if no_ack is None else no_ack))
        return token

    @property
    def idle(self) -> bool:
        """True when nothing is queued or waiting for an acknowledgement."""
        return all(peer.in_flight is None and not peer.queue for peer in self._peers.values())

    def pending(self, address: EslAddress) -> int:
        """Payloads for ``address`` not yet finished (queued or in flight)."""
        peer = self._peers.get(address)
        if peer is None:
            return 0
        return len(peer.queue) + (peer.in_flight is not None)

    def next_deadline(self) -> float | None:
        deadlines = [peer.in_flight.deadline for peer in self._peers.values() if peer.in_flight is not None]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> SendActions:
        transmit: list[Frame] = []
        results: list[SendResult] = []
        for address, peer in self._peers.items():
            flight = peer.in_flight
            if flight is not None and flight.deadline <= now:
                if flight.tries >= self.max_tries:
                    results.append(
                        SendResult(flight.token, address, flight.frame.seq, SendOutcome.FAILED, flight.tries)
                    )
                    peer.in_flight = None
                else:
                    flight.tries += 1
                    flight.deadline = now + self.timeout_for(flight.tries)
                    self.retransmissions += 1
                    transmit.append(flight.frame)
            while peer.in_flight is None and peer.queue:
                token, payload_type, payload, no_ack = peer.queue.popleft()
                seq = peer.next_seq
                peer.next_seq = (seq + 1) & 0xFF
                frame = Frame.data(seq, address, payload_type, payload, no_ack=no_ack)
                transmit.append(frame)
                if no_ack:
                    results.append(SendResult(token, address, seq, SendOutcome.SENT, 1))
                else:
                    peer.in_flight = _InFlight(token, frame, 1, now + self.timeout_for(1))
        return SendActions(transmit, results, self.next_deadline())

    def on_frame(self, frame: Frame, now: float) -> SendResult | None:
        """Handle an ACK or NACK. Returns the finished send for an ACK that matches the frame in flight.

        A NACK makes the frame due at once (the next :meth:`poll` retransmits it, counting a try). ACKs that match
        nothing in flight (late duplicates) are counted in ``stale_acks`` and ignored. Data frames are ignored:
        they belong to a :class:`LinkReceiver`.
        """
        if frame.kind == FrameKind.DATA:
            return None
        peer = self._peers.get(frame.address)
        flight = peer.in_flight if peer is not None else None
        if peer is None or flight is None or flight.frame.seq != frame.seq:
            self.stale_acks += 1
            return None
        if frame.kind == FrameKind.NACK:
            flight.deadline = now
            return None
        peer.in_flight = None
        return SendResult(flight.token, frame.address, frame.seq, SendOutcome.DELIVERED, flight.tries)


@dataclass(frozen=True)
class Received:
    """What :meth:`LinkReceiver.on_frame` decided: a frame to hand up (None for a duplicate) and a reply to send."""

    deliver: Frame | None
    reply: Frame | None


class LinkReceiver:
    """Acknowledges data frames and delivers each one once (idempotent delivery).

    A data frame whose sequence number and content equal those of the last frame delivered from the same address
    is a retransmission (its ACK was lost): it is acknowledged again and not delivered. Comparing the content as
    well as the sequence number keeps a restarted sender that happens to reuse a sequence number from being
    silenced.
    """

    def __init__(self) -> None:
        self._last: dict[EslAddress, tuple[int, int, bytes]] = {}
        self.duplicates = 0

    def on_frame(self, frame: Frame) -> Received:
        if frame.kind != FrameKind.DATA:
            return Received(None, None)
        reply = None if frame.no_ack else frame.ack()
        key = (frame.seq, int(frame.payload_type), frame.payload)
        if self._last.get(frame.address) == key:
            self.duplicates += 1
            return Received(None, reply)
        self._last[frame.address] = key
        return Received(frame, reply)

    def forget(self, address: EslAddress) -> None:
        """Drop the duplicate-detection state for ``address`` (for example after the tag reported a reset)."""
        self._last.pop(address, None)


# --------------------------------------------------------------------------------------------------------------------
# Block image transfer

IMAGE_HASH_SIZE = 8
_BLOCK_HEADER = "<B8sIHHH"
BLOCK_HEADER_SIZE = struct.calcsize(_BLOCK_HEADER)  # 19
DEFAULT_BLOCK_SIZE = 256
MAX_BLOCK_SIZE = MAX_PAYLOAD - BLOCK_HEADER_SIZE
_BLOCK_ACK_HEADER = "<B8sHB"
_BLOCK_ACK_HEADER_SIZE = struct.calcsize(_BLOCK_ACK_HEADER)  # 12
MAX_BLOCKS = (MAX_PAYLOAD - _BLOCK_ACK_HEADER_SIZE) * 8
"""The received-blocks bitmap of a :class:`BlockAck` must fit in one frame."""


def image_hash(image: bytes) -> bytes:
    """The transfer's image identity: the first 8 bytes of SHA-256 (like OEPL's 8-byte ``dataVer``)."""
    return hashlib.sha256(image).digest()[:IMAGE_HASH_SIZE]


def _block_count(total_size: int, block_size: int) -> int:
    return (total_size + block_size - 1) // block_size


@dataclass(frozen=True)
class ImageBlock:
    """One block of an image transfer (payload type IMAGE_BLOCK).

    Layout, little-endian, then the block data::

        image_index u8 | image_hash[8] | total_size u32 | block_size u16 | block_index u16 | block_crc u16 | data

    Every block but the last holds exactly ``block_size`` bytes; ``block_crc`` is :func:`crc16` over ``data``.
    """

    image_index: int
    image_hash: bytes
    total_size: int
    block_size: int
    index: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.image_index <= 0xFF:
            raise ProtocolError(f"image index {self.image_index} is not a byte")
        if len(self.image_hash) != IMAGE_HASH_SIZE:
            raise ProtocolError(f"image hash must be {IMAGE_HASH_SIZE} bytes")
        if not 1 <= self.block_size <= MAX_BLOCK_SIZE:
            raise ProtocolError(f"block size {self.block_size} outside 1..{MAX_BLOCK_SIZE}")
        if not 1 <= self.total_size <= 0xFFFF_FFFF:
            raise ProtocolError(f"image size {self.total_size} outside 1..2**32-1")
        if self.block_count > MAX_BLOCKS:
            raise ProtocolError(f"{self.block_count} blocks exceed {MAX_BLOCKS}; use larger blocks")
        if not 0 <= self.index < self.block_count:
            raise ProtocolError(f"block index {self.index} outside 0..{self.block_count - 1}")
        if len(self.data) != self.expected_length:
            raise ProtocolError(f"block {self.index} has {len(self.data)} bytes, expected {self.expected_length}")

    @property
    def block_count(self) -> int:
        return _block_count(self.total_size, self.block_size)

    @property
    def expected_length(self) -> int:
        return min(self.block_size, self.total_size - self.index * self.block_size)

    def encode(self) -> bytes:
        header = struct.pack(
            _BLOCK_HEADER,
            self.image_index,
            self.image_hash,
            self.total_size,
            self.block_size,
            self.index,
            crc16(self.data),
        )
        return header + self.data

    @classmethod
    def decode(cls, payload: bytes) -> ImageBlock:
        if len(payload) < BLOCK_HEADER_SIZE:
            raise ProtocolError(f"image block of {len(payload)} bytes is shorter than its header")
        image_index, digest, total_size, block_size, index, crc = struct.unpack_from(_BLOCK_HEADER, payload)
        data = bytes(payload[BLOCK_HEADER_SIZE:])
        if crc16(data) != crc:
            raise ChecksumError(f"block {index} CRC mismatch")
        return cls(image_index, bytes(digest), total_size, block_size, index, data)


def split_image(image: bytes, *, image_index: int = 0, block_size: int = DEFAULT_BLOCK_SIZE) -> list[ImageBlock]:
    """Cut ``image`` into blocks that each fit a frame."""
    if not image:
        raise ProtocolError("cannot transfer an empty image")
    digest = image_hash(image)
    return [
        ImageBlock(image_index, digest, len(image), block_size, index, bytes(image[offset : offset + block_size]))
        for index, offset in enumerate(range(0, len(image), block_size))
    ]


class TransferStatus(enum.IntEnum):
    IN_PROGRESS = 0
    COMPLETE = 1
    """Every block is present and the image hash matches."""
    HASH_MISMATCH = 2
    """Every block arrived but the image hash did not match; the receiver discarded all blocks."""


@dataclass(frozen=True)
class BlockAck:
    """The receiver's view of a transfer (payload type BLOCK_ACK).

    Layout, little-endian: ``image_index u8 | image_hash[8] | block_count u16 | status u8 | bitmap``, where the
    bitmap has ``ceil(block_count / 8)`` bytes and bit ``i % 8`` (LSB first) of byte ``i // 8`` is set when block
    ``i`` is held.
    """

    image_index: int
    image_hash: bytes
    block_count: int
    status: TransferStatus
    received: frozenset[int]

    def __post_init__(self) -> None:
        if not 0 <= self.image_index <= 0xFF or len(self.image_hash) != IMAGE_HASH_SIZE:
            raise ProtocolError("invalid image index or hash")
        if not 0 <= self.block_count <= MAX_BLOCKS:
            raise ProtocolError(f"block count {self.block_count} outside 0..{MAX_BLOCKS}")
        if any(not 0 <= index < self.block_count for index in self.received):
            raise ProtocolError("received block index outside the transfer")

    def missing(self) -> list[int]:
        return [index for index in range(self.block_count) if index not in self.received]

    def encode(self) -> bytes:
        bitmap = bytearray((self.block_count + 7) // 8)
        for index in self.received:
            bitmap[index >> 3] |= 1 << (index & 7)
        header = struct.pack(_BLOCK_ACK_HEADER, self.image_index, self.image_hash, self.block_count, self.status)
        return header + bytes(bitmap)

    @classmethod
    def decode(cls, payload: bytes) -> BlockAck:
        if len(payload) < _BLOCK_ACK_HEADER_SIZE:
            raise ProtocolError(f"block ack of {len(payload)} bytes is shorter than its header")
        image_index, digest, block_count, status = struct.unpack_from(_BLOCK_ACK_HEADER, payload)
        bitmap = payload[_BLOCK_ACK_HEADER_SIZE:]
        if len(bitmap) != (block_count + 7) // 8:
            raise ProtocolError(f"block ack bitmap has {len(bitmap)} bytes for {block_count} blocks")
        if status not in TransferStatus._value2member_map_:
            raise ProtocolError(f"unknown transfer status {status}")
        received = frozenset(index for index in range(block_count) if bitmap[index >> 3] >> (index & 7) & 1)
        if (block_count & 7) and bitmap[-1] >> (block_count & 7):
            raise ProtocolError("block ack bitmap has bits past the block count")
        return cls(image_index, bytes(digest), block_count, TransferStatus(status), received)


class ImageAssembler:
    """Tag side of a block transfer: collects blocks in any order and exposes only complete, verified images.

    A block of a different transfer (other image index, hash, size or block size) abandons the current one; a
    sender that restarts or resumes after a tag reset simply sends the blocks the latest :class:`BlockAck` reports
    missing (:func:`blocks_to_send`). The caller moves a completed :meth:`image` to its image store: the next
    transfer starts from scratch. Blocks are kept in memory; persisting them (resume across a tag reset without
    resending) is the firmware's business.
    """

    def __init__(self) -> None:
        self._key: tuple[int, bytes, int, int] | None = None
        self._blocks: dict[int, bytes] = {}
        self._count = 0
        self._image: bytes | None = None
        self.hash_failures = 0

    def add(self, block: ImageBlock) -> BlockAck:
        key = (block.image_index, block.image_hash, block.total_size, block.block_size)
        if key != self._key:
            self._key = key
            self._blocks = {}
            self._count = block.block_count
            self._image = None
        status = TransferStatus.IN_PROGRESS
        if self._image is not None:
            status = TransferStatus.COMPLETE
        else:
            self._blocks.setdefault(block.index, block.data)
            if len(self._blocks) == self._count:
                image = b"".join(self._blocks[index] for index in range(self._count))
                if image_hash(image) == block.image_hash:
                    self._image = image
                    status = TransferStatus.COMPLETE
                else:
                    self.hash_failures += 1
                    self._blocks = {}
                    status = TransferStatus.HASH_MISMATCH
        return BlockAck(block.image_index, block.image_hash, self._count, status, frozenset(self._blocks))

    def missing(self) -> list[int]:
        """Indexes of blocks of the current transfer not received yet (empty when none is in progress)."""
        return [index for index in range(self._count) if index not in self._blocks]

    @property
    def image_index(self) -> int | None:
        return self._key[0] if self._key is not None else None

    def image(self) -> bytes | None:
        """The complete image, or None until every block is present and the image hash matched."""
        return self._image


def blocks_to_send(blocks: list[ImageBlock], ack: BlockAck | None) -> list[ImageBlock]:
    """The blocks still to send given the receiver's last :class:`BlockAck` (None: nothing known, send all)."""
    if not blocks:
        return []
    first = blocks[0]
    if ack is None or (ack.image_index, ack.image_hash, ack.block_count) != (
        first.image_index,
        first.image_hash,
        first.block_count,
    ):
        return list(blocks)
    if ack.status == TransferStatus.COMPLETE:
        return []
    return [block for block in blocks if block.index not in ack.received]
