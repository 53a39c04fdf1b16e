from esltag import link
from esltag.epaper import EPaper
from esltag.tag import Tag
from helpers import ADDRESS, block_frame, command_frame, frames, image_blocks


def _tag():
    return Tag(ADDRESS, EPaper(16, 8), battery_mv=3100)


def test_ping_is_acked_and_answered():
    out = frames(_tag().feed(command_frame(42, b"\x00\x05")))
    assert out[0] == (link.FLAG_ACK, 42, ADDRESS, link.PT_NONE, b"")
    flags, _seq, address, ptype, payload = out[1]
    assert flags == link.FLAG_DATA | link.FLAG_NO_ACK and address == ADDRESS
    assert ptype == link.PT_ECP_RESPONSE and payload == b"\x10\x02\x00"


def test_other_address_ignored_and_garbage_survived():
    tag = _tag()
    assert tag.feed(command_frame(1, b"\x00\x06", address=0x0106)) == b""
    assert tag.feed(b"\xde\xad\x00\x00\x01\x02") == b""
    assert len(frames(tag.feed(b"\x00" + command_frame(2, b"\x00\x05")))) == 2


def test_retransmission_executes_once_and_repeats_reply():
    tag = _tag()
    frame = command_frame(9, b"\xb0\x05\x00\x7f\x76\xef\x96\x08\x91\x07\x06\x14\x00")
    first = tag.feed(frame)
    assert tag.feed(frame) == first
    assert tag.duplicates == 1


def test_image_transfer_then_display():
    tag = _tag()
    image = bytes((i * 13) & 0xFF for i in range(16))
    blocks = image_blocks(image, block_size=5)
    acks = []
    for seq, block in enumerate(blocks):
        for frame in frames(tag.feed(block_frame(seq, block))):
            if frame[3] == link.PT_BLOCK_ACK:
                acks.append(frame[4])
    assert len(acks) == len(blocks) and acks[-1][11] == 1
    out = frames(tag.feed(command_frame(100, b"\x20\x05\x00\x00")))
    assert out[-1][4] == b"\x11\x00\x00"
    assert tag.display.shown == image


def test_broadcast_executed_silently():
    tag = _tag()
    out = frames(tag.feed(command_frame(5, b"\x00\xff", address=0x01FF, flags=link.FLAG_DATA | link.FLAG_NO_ACK)))
    assert out == []


def test_fuzzed_frames_never_crash():
    import random

    random.seed(7)
    tag = _tag()
    for round_ in range(300):
        # Valid frames for this tag with random payloads (any payload type), and raw random bytes.
        size = random.getrandbits(5)
        payload = bytes(random.getrandbits(8) for _ in range(size))
        ptype = 1 + random.getrandbits(2) % 4
        if random.getrandbits(1) and (ptype != link.PT_ECP_COMMAND or size):
            tag.feed(link.encode_frame(link.FLAG_DATA, round_ & 0xFF, ADDRESS, ptype, payload))
        else:
            tag.feed(payload + b"\x00")
    out = frames(tag.feed(command_frame(1, b"\x00\x05")))
    assert out[-1][4][0] == 0x10  # still answers
