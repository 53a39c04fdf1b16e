"""Block image transfer over the serial link: images cut into frame-sized blocks, acknowledged by bitmap.

Images are larger than a frame, so :func:`split_image` cuts them into :class:`ImageBlock` payloads. Every block
carries the whole transfer's identity (image index, 8-byte image hash, total size, block size), so blocks can
arrive in any order, after a gap or after a reset, with no separate "begin transfer" exchange; each block has its
own CRC-16 over its data. :class:`ImageAssembler` (the tag side) answers each block with a :class:`BlockAck`
bitmap of what it holds, which tells the sender what is still missing (resume), and exposes the image only when
every block is present and the SHA-256 of the whole image matches the hash: no tag ever shows a partial image.
This follows the OpenEPaperLink idea of per-part bitmaps and a whole-image hash (its 802.15.4 block
transfer), without its fixed 4096-byte blocks of 99-byte parts.

Blocks and block acks travel as the payloads of data frames (payload types IMAGE_BLOCK and BLOCK_ACK), delivered by
the link layer of :mod:`protocols.esl.serial.link`.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from dataclasses import dataclass

from protocols.errors import ProtocolError
from protocols.esl.serial.wire import MAX_PAYLOAD, ChecksumError, crc16

__all__ = [
    "BLOCK_HEADER_SIZE",
    "DEFAULT_BLOCK_SIZE",
    "IMAGE_HASH_SIZE",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "BlockAck",
    "ImageAssembler",
    "ImageBlock",
    "TransferStatus",
    "blocks_to_send",
    "image_hash",
    "split_image",
]

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
