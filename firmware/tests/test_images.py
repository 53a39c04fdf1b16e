import hashlib

from esltag import images
from helpers import image_blocks


def _image(size=300):
    return bytes((i * 7 + 3) & 0xFF for i in range(size))


def test_image_exposed_only_when_complete():
    image = _image()
    store = images.ImageStore()
    blocks = image_blocks(image, image_index=1)
    for block in reversed(blocks[1:]):
        ack = store.add_block(block)
        assert ack is not None and ack[11] == images.IN_PROGRESS
        assert store.get(1) is None
    assert store.missing() == [0]
    ack = store.add_block(blocks[0])
    assert ack is not None and ack[11] == images.COMPLETE
    assert ack[12:] == b"\x1f"  # 5 blocks held
    assert store.get(1) == image
    assert store.add_block(blocks[2])[11] == images.COMPLETE  # late duplicate


def test_block_with_bad_crc_is_rejected():
    store = images.ImageStore()
    block = bytearray(image_blocks(_image())[0])
    block[-1] ^= 1
    assert store.add_block(bytes(block)) is None
    assert store.crc_errors == 1


def test_hash_mismatch_discards_blocks():
    image = _image(100)
    store = images.ImageStore()
    blocks = image_blocks(image)
    wrong = bytearray(blocks[1])
    wrong[1] ^= 0xFF  # other hash in block 1 only: becomes a new transfer
    store.add_block(blocks[0])
    ack = store.add_block(bytes(wrong))
    assert ack[11] == images.IN_PROGRESS
    assert store.missing() == [0]
    # All blocks of a transfer whose hash is wrong: nothing is exposed.
    lying = [bytes(b[:1]) + b"\x00" * 8 + bytes(b[9:]) for b in blocks]
    for block in lying:
        ack = store.add_block(block)
    assert ack[11] == images.HASH_MISMATCH
    assert store.get(0) is None and store.hash_failures == 1


def test_image_hash_is_sha256_prefix():
    assert images.image_hash(b"abc") == hashlib.sha256(b"abc").digest()[:8]


def test_slot_out_of_range_ignored():
    store = images.ImageStore(slots=2)
    assert store.add_block(image_blocks(_image(10), image_index=3)[0]) is None
