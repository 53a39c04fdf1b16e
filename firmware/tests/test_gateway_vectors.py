# Golden vectors produced by the gateway codec (protocols.esl.serial under CPython); checked here under the
# real MicroPython interpreter, so byte compatibility holds on the tag's own runtime too.
from binascii import unhexlify

from esltag import images, link

FRAMES = [
    ((1, 7, 0x0105, 1, b"\x00\x05"), "080101070501010201040589dc00"),
    ((2, 255, 0x0105, 0, b""), "060102ff0501010103175200"),
]
BLOCKS = [
    "025faa4eec361155682800000010000000373b000102030405060708090a0b0c0d0e0f",
    "025faa4eec361155682800000010000100667e101112131415161718191a1b1c1d1e1f",
    "025faa4eec361155682800000010000200a3ac2021222324252627",
]
ACKS = ["025faa4eec3611556803000001", "025faa4eec3611556803000003", "025faa4eec3611556803000107"]


def test_frames_match_gateway_bytes():
    for fields, wire in FRAMES:
        assert link.encode_frame(*fields) == unhexlify(wire)
        assert link.FrameDecoder().feed(unhexlify(wire)) == [fields]


def test_long_zero_payload_matches_gateway_bytes():
    wire = link.encode_frame(link.FLAG_DATA | link.FLAG_NO_ACK, 0, 0x7FFF, link.PT_IMAGE_BLOCK, bytes(300))
    assert wire[:10] == unhexlify("03010906ff7f032c0101")
    assert wire[-5:] == unhexlify("0103286600") and len(wire) == 312


def test_block_acks_match_gateway_assembler():
    store = images.ImageStore()
    for block, ack in zip(BLOCKS, ACKS):
        assert store.add_block(unhexlify(block)) == unhexlify(ack)
    assert store.get(2) == bytes(range(40))
