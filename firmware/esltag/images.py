"""Image store: assembles block transfers (protocols.esl.serial layout) and exposes only complete, hash-checked images.

Image block payload (little-endian)::

    image_index u8 | image_hash[8] | total_size u32 | block_size u16 | block_index u16 | block_crc u16 | data

Block ack payload: ``image_index u8 | image_hash[8] | block_count u16 | status u8 | bitmap`` (LSB first).
The image hash is the first 8 bytes of SHA-256 of the whole image.
"""

import hashlib
import struct

from esltag.link import MAX_PAYLOAD, crc16

BLOCK_FORMAT = "<B8sIHHH"
BLOCK_HEADER_SIZE = 19
ACK_FORMAT = "<B8sHB"
ACK_HEADER_SIZE = 12
HASH_SIZE = 8
MAX_BLOCKS = (MAX_PAYLOAD - ACK_HEADER_SIZE) * 8

IN_PROGRESS = 0
COMPLETE = 1
HASH_MISMATCH = 2


def image_hash(image: bytes) -> bytes:
    return bytes(hashlib.sha256(image).digest()[:HASH_SIZE])


class ImageStore:
    """Holds complete images by index (``slots`` of them) and at most one transfer in progress.

    ``add_block(payload)`` returns the block-ack payload to send back, or None when the block is malformed or its
    CRC is wrong (the sender resends it after the next ack shows it missing). A block of another transfer abandons
    the current one. An image enters the store only when every block is present and the hash matches.
    """

    def __init__(self, slots: int = 4) -> None:
        self.slots = slots
        self._images: dict[int, bytes] = {}
        self._key: tuple[int, bytes, int, int] | None = None
        self._blocks: dict[int, bytes] = {}
        self._count = 0
        self._complete = False
        self.crc_errors = 0
        self.hash_failures = 0

    def get(self, index: int) -> bytes | None:
        return self._images.get(index)

    def has(self, index: int) -> bool:
        return index in self._images

    def clear(self) -> None:
        """Forget every image and the transfer in progress (factory reset)."""
        self._images = {}
        self._key = None
        self._blocks = {}
        self._count = 0
        self._complete = False

    def missing(self) -> list[int]:
        return [index for index in range(self._count) if index not in self._blocks]

    def add_block(self, payload: bytes) -> bytes | None:
        if len(payload) < BLOCK_HEADER_SIZE:
            self.crc_errors += 1
            return None
        image_index, digest, total, block_size, index, crc = struct.unpack_from(BLOCK_FORMAT, payload, 0)
        data = bytes(payload[BLOCK_HEADER_SIZE:])
        if crc16(data) != crc:
            self.crc_errors += 1
            return None
        if image_index >= self.slots or block_size < 1 or total < 1:
            return None
        count = (total + block_size - 1) // block_size
        if count > MAX_BLOCKS or index >= count or len(data) != min(block_size, total - index * block_size):
            return None
        digest = bytes(digest)
        key = (image_index, digest, total, block_size)
        if key != self._key:
            self._key = key
            self._blocks = {}
            self._count = count
            self._complete = False
        status = IN_PROGRESS
        if self._complete:
            status = COMPLETE
        else:
            if index not in self._blocks:
                self._blocks[index] = data
            if len(self._blocks) == count:
                image = b"".join([self._blocks[i] for i in range(count)])
                if image_hash(image) == digest:
                    self._images[image_index] = image
                    self._complete = True
                    status = COMPLETE
                else:
                    self.hash_failures += 1
                    self._blocks = {}
                    status = HASH_MISMATCH
        return self._ack(image_index, digest, count, status)

    def _ack(self, image_index: int, digest: bytes, count: int, status: int) -> bytes:
        bitmap = bytearray((count + 7) // 8)
        if status == COMPLETE:
            for index in range(count):
                bitmap[index >> 3] |= 1 << (index & 7)
        else:
            for index in self._blocks:
                bitmap[index >> 3] |= 1 << (index & 7)
        return struct.pack(ACK_FORMAT, image_index, digest, count, status) + bytes(bitmap)
