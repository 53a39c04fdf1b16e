"""Serial link codec: COBS, CRC-16, frames, streaming decoder, link layer, block image transfer."""

from __future__ import annotations

import binascii
import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.esl import DisplayImage, EslAddress, Ping, decode_command
from protocols.esl.serial import (
    BLOCK_HEADER_SIZE,
    MAX_PAYLOAD,
    BlockAck,
    ChecksumError,
    Frame,
    FrameFormatError,
    FrameKind,
    FramingError,
    ImageAssembler,
    ImageBlock,
    LinkReceiver,
    LinkSender,
    PayloadType,
    SendOutcome,
    SerialFrameDecoder,
    TransferStatus,
    blocks_to_send,
    cobs_decode,
    cobs_encode,
    crc16,
    image_hash,
    pack_frame,
    split_image,
    unpack_frame,
)

TAG = EslAddress(group_id=3, esl_id=7)
OTHER = EslAddress(group_id=3, esl_id=8)

# ---------------------------------------------------------------------------------------------------------------------
# CRC-16/CCITT-FALSE


def test_crc16_check_value() -> None:
    # The catalogue check value of CRC-16/CCITT-FALSE (a.k.a. CRC-16/IBM-3740).
    assert crc16(b"123456789") == 0x29B1
    assert crc16(b"") == 0xFFFF
    assert crc16(b"56789", crc16(b"1234")) == 0x29B1


@given(st.binary(max_size=300))
def test_crc16_matches_binascii(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0xFFFF)
    assert crc16(data + crc16(data).to_bytes(2, "big")) == 0  # zero residue


# ---------------------------------------------------------------------------------------------------------------------
# COBS: the examples from Cheshire & Baker as listed on Wikipedia ("Consistent Overhead Byte Stuffing")

_RUN_01_FE = bytes(range(1, 255))
COBS_VECTORS = [
    (b"\x00", bytes.fromhex("01 01")),
    (b"\x00\x00", bytes.fromhex("01 01 01")),
    (bytes.fromhex("00 11 00"), bytes.fromhex("01 02 11 01")),
    (bytes.fromhex("11 22 00 33"), bytes.fromhex("03 11 22 02 33")),
    (bytes.fromhex("11 22 33 44"), bytes.fromhex("05 11 22 33 44")),
    (bytes.fromhex("11 00 00 00"), bytes.fromhex("02 11 01 01 01")),
    (_RUN_01_FE, b"\xff" + _RUN_01_FE),
    (b"\x00" + _RUN_01_FE, b"\x01\xff" + _RUN_01_FE),
    (bytes(range(1, 256)), b"\xff" + _RUN_01_FE + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
    (b"", b"\x01"),
]


@pytest.mark.parametrize(("plain", "encoded"), COBS_VECTORS)
def test_cobs_vectors(plain: bytes, encoded: bytes) -> None:
    assert cobs_encode(plain) == encoded
    assert cobs_decode(encoded) == plain


@given(st.binary(max_size=1200))
def test_cobs_round_trip(data: bytes) -> None:
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(encoded) <= len(data) + len(data) // 254 + 1
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize("bad", [b"\x00", b"\x05\x11", b"\x03\x11\x00", b"\x02"])
def test_cobs_decode_rejects(bad: bytes) -> None:
    with pytest.raises(FramingError):
        cobs_decode(bad)


# ---------------------------------------------------------------------------------------------------------------------
# Frames: byte-exact

# Ping ESL 7 (ECP "00 07") to tag group 3 / ESL 7, seq 5.
PING_BODY = bytes.fromhex("01 01 05 07 03 01 02 00 00 07 cd 9b")
PING_WIRE = bytes.fromhex("08 01 01 05 07 03 01 02 01 04 07 cd 9b 00")
ACK_BODY = bytes.fromhex("01 02 05 07 03 00 00 00 a9 07")
ACK_WIRE = bytes.fromhex("06 01 02 05 07 03 01 01 03 a9 07 00")


def _ping_frame() -> Frame:
    return Frame.data(5, TAG, PayloadType.ECP_COMMAND, Ping(7).encode())


def test_frame_vectors() -> None:
    frame = _ping_frame()
    assert frame.body() == PING_BODY
    assert crc16(PING_BODY[:-2]) == binascii.crc_hqx(PING_BODY[:-2], 0xFFFF) == 0xCD9B
    assert frame.encode() == PING_WIRE
    assert frame.ack().body() == ACK_BODY
    assert frame.ack().encode() == ACK_WIRE
    assert crc16(ACK_BODY[:-2]) == 0xA907
    assert pack_frame(0x01, 5, 0x0307, 1, b"\x00\x07") == PING_BODY
    assert unpack_frame(PING_BODY) == (0x01, 5, 0x0307, 1, b"\x00\x07")
    assert Frame.from_body(PING_BODY) == frame
    assert decode_command(frame.payload) == (Ping(7), b"")


def test_broadcast_frame_vector() -> None:
    frame = Frame.data(
        0x80, EslAddress(3, 0xFF), PayloadType.ECP_COMMAND, DisplayImage(0xFF, 0, 1).encode(), no_ack=True
    )
    body = frame.body()
    assert body[:-2] == bytes.fromhex("01 09 80 ff 03 01 04 00 20 ff 00 01")
    assert body[-2:] == binascii.crc_hqx(body[:-2], 0xFFFF).to_bytes(2, "big")
    assert SerialFrameDecoder().feed(frame.encode()) == [frame]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (PING_BODY[:-1], FrameFormatError),  # short by one byte
        (PING_BODY + b"\x00", FrameFormatError),  # long by one byte
        (PING_BODY[:5] + b"\xff" + PING_BODY[6:], ChecksumError),  # corrupted payload type
        (b"\x01\x01", FrameFormatError),
    ],
)
def test_unpack_rejects(body: bytes, error: type[ProtocolError]) -> None:
    with pytest.raises(error):
        unpack_frame(body)


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "big")


@pytest.mark.parametrize(
    "header_hex",
    [
        "02 01 05 07 03 01 00 00",  # version 2
        "01 03 05 07 03 01 00 00",  # DATA and ACK
        "01 00 05 07 03 01 00 00",  # no kind
        "01 11 05 07 03 01 00 00",  # reserved flag bit
        "01 01 05 07 03 00 00 00",  # data frame without payload type
        "01 02 05 07 03 01 00 00",  # ACK with payload type
        "01 01 05 07 03 05 00 00",  # unknown payload type
        "01 01 05 07 83 01 00 00",  # RFU address bit
    ],
)
def test_unpack_rejects_bad_header(header_hex: str) -> None:
    with pytest.raises(FrameFormatError):
        Frame.from_body(_with_crc(bytes.fromhex(header_hex)))


def test_frame_validation() -> None:
    with pytest.raises(FrameFormatError):
        Frame(FrameKind.ACK, 1, TAG, PayloadType.ECP_COMMAND)
    with pytest.raises(FrameFormatError):
        Frame(FrameKind.DATA, 1, TAG)
    with pytest.raises(FrameFormatError):
        Frame(FrameKind.DATA, 256, TAG, PayloadType.ECP_COMMAND)
    with pytest.raises(FrameFormatError):
        Frame.data(1, TAG, PayloadType.IMAGE_BLOCK, bytes(MAX_PAYLOAD + 1))
    big = Frame.data(1, TAG, PayloadType.IMAGE_BLOCK, bytes(range(256)) * 4)
    assert SerialFrameDecoder().feed(big.encode()) == [big]


# ---------------------------------------------------------------------------------------------------------------------
# Streaming decoder


def test_decoder_every_split_point() -> None:
    frames = [
        _ping_frame(),
        _ping_frame().ack(),
        Frame.data(9, OTHER, PayloadType.ECP_RESPONSE, bytes.fromhex("10 02 00")),
    ]
    wire = b"".join(frame.encode() for frame in frames)
    for cut in range(len(wire) + 1):
        decoder = SerialFrameDecoder()
        assert decoder.feed(wire[:cut]) + decoder.feed(wire[cut:]) == frames
        assert decoder.dropped == 0
        assert decoder.buffered == 0
    decoder = SerialFrameDecoder()
    assert [frame for byte in wire for frame in decoder.feed(bytes([byte]))] == frames


def test_decoder_garbage_between_frames() -> None:
    decoder = SerialFrameDecoder()
    garbage = bytes.fromhex("ff 13 37 00 00 42 42 42 00 01")
    wire = garbage + _ping_frame().encode(flush=True) + garbage + b"\x00" + ACK_WIRE + b"\xde\xad"
    assert _ping_frame().encode(flush=True) == b"\x00" + PING_WIRE
    assert decoder.feed(wire) == [_ping_frame(), _ping_frame().ack()]
    assert decoder.dropped >= 2
    assert decoder.buffered == 2  # the trailing bytes wait for a delimiter
    # Garbage glued to the start of a frame (no delimiter in between) costs that frame only.
    decoder = SerialFrameDecoder()
    assert decoder.feed(garbage + PING_WIRE + ACK_WIRE) == [_ping_frame().ack()]


def test_decoder_corrupted_byte_dropped_and_counted() -> None:
    for position in range(len(PING_WIRE) - 1):  # every byte but the delimiter
        for flip in (0x01, 0x80, 0xFF):
            corrupted = bytearray(PING_WIRE)
            corrupted[position] ^= flip
            decoder = SerialFrameDecoder()
            frames = decoder.feed(bytes(corrupted) + ACK_WIRE)
            # The corrupted frame never comes out; if the corruption produced a zero byte, the frame splits in two
            # pieces that are both dropped. The following frame always survives.
            assert frames[-1] == _ping_frame().ack()
            assert _ping_frame() not in frames
            assert decoder.dropped >= 1
            assert decoder.frames == 1


def test_decoder_counts_by_kind() -> None:
    decoder = SerialFrameDecoder()
    bad_crc = bytearray(PING_BODY)
    bad_crc[-1] ^= 1
    bad_length = _with_crc(bytes.fromhex("01 01 05 07 03 01 05 00 aa"))
    wire = (
        cobs_encode(bytes(bad_crc))
        + b"\x00"
        + cobs_encode(bad_length)
        + b"\x00"
        + b"\x05\x11\x00"  # COBS code runs past the delimiter
        + PING_WIRE
    )
    assert decoder.feed(wire) == [_ping_frame()]
    assert (decoder.checksum_errors, decoder.format_errors, decoder.framing_errors) == (1, 1, 1)
    assert decoder.dropped == 3


def test_decoder_overflow_resyncs() -> None:
    decoder = SerialFrameDecoder()
    assert decoder.feed(b"\x01" * 5000) == []
    assert decoder.overflows == 1
    assert decoder.buffered < 2000
    assert decoder.feed(b"\x01" * 10 + b"\x00" + PING_WIRE) == [_ping_frame()]
    assert decoder.overflows == 1


_addresses = st.builds(EslAddress, st.integers(0, 127), st.integers(0, 255))
_data_frames = st.builds(
    Frame.data,
    st.integers(0, 255),
    _addresses,
    st.sampled_from([t for t in PayloadType if t != PayloadType.NONE]),
    st.binary(max_size=300),
    no_ack=st.booleans(),
)
_control_frames = st.builds(Frame, st.sampled_from([FrameKind.ACK, FrameKind.NACK]), st.integers(0, 255), _addresses)
_frames = st.one_of(_data_frames, _control_frames)


@settings(max_examples=300, deadline=None)
@given(st.lists(_frames, max_size=6), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_decoder_round_trip_random_chunks(frames: list[Frame], chunk_sizes: list[int]) -> None:
    wire = b"".join(frame.encode() for frame in frames)
    decoder = SerialFrameDecoder()
    out: list[Frame] = []
    position = 0
    index = 0
    while position < len(wire):
        size = chunk_sizes[index % len(chunk_sizes)]
        out += decoder.feed(wire[position : position + size])
        position += size
        index += 1
    assert out == frames
    assert decoder.dropped == 0


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=120), st.integers(1, 16))
def test_decoder_never_raises_on_garbage(garbage: bytes, chunk: int) -> None:
    decoder = SerialFrameDecoder()
    for start in range(0, len(garbage), chunk):
        decoder.feed(garbage[start : start + chunk])
    # After any garbage, a delimiter and a valid frame always decode.
    assert decoder.feed(b"\x00" + PING_WIRE) == [_ping_frame()]


@settings(max_examples=500, deadline=None)
@given(st.lists(_data_frames, min_size=1, max_size=4), st.binary(min_size=1, max_size=30), st.randoms())
def test_decoder_garbage_injected_between_frames(frames: list[Frame], garbage: bytes, rng: random.Random) -> None:
    wire = b"".join(b"\x00" + garbage + b"\x00" + frame.encode() for frame in frames)
    decoder = SerialFrameDecoder()
    out: list[Frame] = []
    position = 0
    while position < len(wire):
        size = rng.randint(1, 50)
        out += decoder.feed(wire[position : position + size])
        position += size
    # Garbage that happens to be a valid frame could decode too, but every real frame comes out, in order.
    iterator = iter(out)
    assert all(any(candidate == frame for candidate in iterator) for frame in frames)


# ---------------------------------------------------------------------------------------------------------------------
# Link layer


def _sender(ack_timeout: float = 0.1, max_timeout: float = 1.0) -> LinkSender:
    return LinkSender(ack_timeout=ack_timeout, max_timeout=max_timeout, rng=random.Random(1))


def test_sender_retransmission_timing_and_give_up() -> None:
    sender = LinkSender(max_tries=4, ack_timeout=0.1, max_timeout=0.3, rng=random.Random(1))
    token = sender.submit(TAG, PayloadType.ECP_COMMAND, Ping(7).encode())
    actions = sender.poll(0.0)
    assert len(actions.transmit) == 1
    frame = actions.transmit[0]
    assert actions.deadline == pytest.approx(0.1)
    assert sender.poll(0.05).transmit == []  # not due yet
    times = [0.0]
    now = 0.0
    while True:
        deadline = sender.next_deadline()
        assert deadline is not None
        now = deadline
        actions = sender.poll(now)
        if actions.results:
            break
        assert actions.transmit == [frame]  # same frame, same sequence number
        times.append(now)
    # Back-off doubles from 0.1 and is capped at 0.3.
    assert times == pytest.approx([0.0, 0.1, 0.3, 0.6])
    assert now == pytest.approx(0.9)
    (result,) = actions.results
    assert (result.token, result.outcome, result.tries, result.seq) == (token, SendOutcome.FAILED, 4, frame.seq)
    assert actions.transmit == []
    assert sender.idle
    assert sender.retransmissions == 3
    assert [sender.timeout_for(k) for k in (1, 2, 3, 10)] == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_sender_ack_and_queue_per_tag() -> None:
    sender = _sender()
    first = sender.submit(TAG, PayloadType.ECP_COMMAND, Ping(7).encode())
    second = sender.submit(TAG, PayloadType.ECP_COMMAND, DisplayImage(7, 0, 1).encode())
    other = sender.submit(OTHER, PayloadType.ECP_COMMAND, Ping(8).encode())
    actions = sender.poll(0.0)
    # Stop-and-wait per tag: one frame for TAG, one for OTHER.
    assert [frame.address for frame in actions.transmit] == [TAG, OTHER]
    assert sender.pending(TAG) == 2
    tag_frame, other_frame = actions.transmit
    assert sender.on_frame(Frame(FrameKind.ACK, (tag_frame.seq + 1) & 0xFF, TAG), 0.01) is None  # stale
    assert sender.stale_acks == 1
    result = sender.on_frame(tag_frame.ack(), 0.02)
    assert result is not None
    assert (result.token, result.outcome, result.tries) == (first, SendOutcome.DELIVERED, 1)
    actions = sender.poll(0.03)
    (next_frame,) = actions.transmit
    assert next_frame.seq == (tag_frame.seq + 1) & 0xFF
    assert next_frame.payload == DisplayImage(7, 0, 1).encode()
    assert sender.on_frame(tag_frame.ack(), 0.04) is None  # late duplicate ACK changes nothing
    result = sender.on_frame(next_frame.ack(), 0.05)
    assert result is not None and result.token == second
    result = sender.on_frame(other_frame.ack(), 0.05)
    assert result is not None and result.token == other
    assert sender.idle
    assert sender.next_deadline() is None


def test_sender_nack_retransmits_now() -> None:
    sender = _sender(ack_timeout=1.0, max_timeout=1.0)
    sender.submit(TAG, PayloadType.ECP_COMMAND, Ping(7).encode())
    (frame,) = sender.poll(0.0).transmit
    assert sender.on_frame(frame.nack(), 0.2) is None
    actions = sender.poll(0.2)
    assert actions.transmit == [frame]
    assert actions.deadline == pytest.approx(1.2)
    result = sender.on_frame(frame.ack(), 0.3)
    assert result is not None and result.tries == 2


def test_sender_broadcast_is_fire_and_forget() -> None:
    sender = _sender()
    broadcast = EslAddress(3, 0xFF)
    token = sender.submit(broadcast, PayloadType.ECP_COMMAND, Ping(0xFF).encode())
    actions = sender.poll(0.0)
    (frame,) = actions.transmit
    assert frame.no_ack
    assert [(r.token, r.outcome) for r in actions.results] == [(token, SendOutcome.SENT)]
    assert actions.deadline is None
    assert sender.idle


def test_sender_rejects_bad_submit() -> None:
    sender = _sender()
    with pytest.raises(ValueError):
        sender.submit(TAG, PayloadType.NONE, b"")
    with pytest.raises(ValueError):
        sender.submit(TAG, PayloadType.IMAGE_BLOCK, bytes(MAX_PAYLOAD + 1))
    with pytest.raises(ValueError):
        LinkSender(max_tries=0)


def test_receiver_acks_and_drops_duplicates() -> None:
    receiver = LinkReceiver()
    frame = _ping_frame()
    first = receiver.on_frame(frame)
    assert first.deliver == frame
    assert first.reply == frame.ack()
    again = receiver.on_frame(frame)  # retransmission after a lost ACK
    assert again.deliver is None
    assert again.reply == frame.ack()
    assert receiver.duplicates == 1
    # Same sequence number from another tag, or different content, is new.
    assert receiver.on_frame(Frame.data(5, OTHER, PayloadType.ECP_COMMAND, Ping(8).encode())).deliver is not None
    changed = Frame.data(5, TAG, PayloadType.ECP_COMMAND, DisplayImage(7, 0, 1).encode())
    assert receiver.on_frame(changed).deliver == changed
    assert receiver.on_frame(frame.ack()) == receiver.on_frame(frame.nack())
    broadcast = Frame.data(1, EslAddress(3, 0xFF), PayloadType.ECP_COMMAND, b"\x00\xff", no_ack=True)
    assert receiver.on_frame(broadcast).reply is None
    receiver.forget(TAG)
    assert receiver.on_frame(changed).deliver == changed


def test_link_over_lossy_channel_delivers_each_payload_once() -> None:
    """Sender and receiver over a channel that loses and corrupts frames in both directions."""
    rng = random.Random(7)
    sender = LinkSender(max_tries=30, ack_timeout=0.05, max_timeout=0.4, rng=rng)
    receiver = LinkReceiver()
    to_tag, to_gateway = SerialFrameDecoder(), SerialFrameDecoder()
    payloads = [bytes([n]) * (n + 1) for n in range(40)]
    for payload in payloads:
        sender.submit(TAG, PayloadType.IMAGE_BLOCK, payload)

    def channel(wire: bytes) -> bytes:
        if rng.random() < 0.2:
            return b""
        data = bytearray(wire)
        if rng.random() < 0.2:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return bytes(data)

    delivered: list[bytes] = []
    results = []
    now = 0.0
    while not sender.idle:
        actions = sender.poll(now)
        results += actions.results
        for frame in actions.transmit:
            for received in to_tag.feed(channel(frame.encode())):
                outcome = receiver.on_frame(received)
                if outcome.deliver is not None:
                    delivered.append(outcome.deliver.payload)
                if outcome.reply is not None:
                    for ack in to_gateway.feed(channel(outcome.reply.encode())):
                        result = sender.on_frame(ack, now)
                        if result is not None:
                            results.append(result)
        deadline = sender.next_deadline()
        now = deadline if deadline is not None else now
    assert delivered == payloads
    assert all(result.outcome is SendOutcome.DELIVERED for result in results)
    assert len(results) == len(payloads)
    assert receiver.duplicates > 0 and sender.retransmissions > 0
    assert to_tag.dropped > 0


# ---------------------------------------------------------------------------------------------------------------------
# Block image transfer


def _image(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def test_image_block_vector() -> None:
    image = b"\x11\x22\x33\x44\x55"
    assert image_hash(image) == hashlib.sha256(image).digest()[:8]
    blocks = split_image(image, image_index=2, block_size=2)
    assert [block.data for block in blocks] == [b"\x11\x22", b"\x33\x44", b"\x55"]
    last = blocks[2]
    expected = (
        bytes.fromhex("02")
        + image_hash(image)
        + bytes.fromhex("05 00 00 00  02 00  02 00")
        + crc16(b"\x55").to_bytes(2, "little")
        + b"\x55"
    )
    assert last.encode() == expected
    assert len(expected) == BLOCK_HEADER_SIZE + 1
    assert ImageBlock.decode(expected) == last


def test_block_ack_vector() -> None:
    digest = bytes(range(8))
    ack = BlockAck(1, digest, 10, TransferStatus.IN_PROGRESS, frozenset({0, 2, 9}))
    assert ack.encode() == bytes.fromhex("01 0001020304050607 0a00 00 05 02")
    assert BlockAck.decode(ack.encode()) == ack
    assert ack.missing() == [1, 3, 4, 5, 6, 7, 8]
    with pytest.raises(ProtocolError):
        BlockAck.decode(bytes.fromhex("01 0001020304050607 0a00 00 05 06"))  # bit for block 10
    with pytest.raises(ProtocolError):
        BlockAck.decode(bytes.fromhex("01 0001020304050607 0a00 00 05"))  # short bitmap
    with pytest.raises(ProtocolError):
        BlockAck.decode(bytes.fromhex("01 0001020304050607 0a00 07 05 00"))  # unknown status


def test_image_block_rejects_corruption() -> None:
    (block,) = split_image(b"abc", block_size=8)
    wire = bytearray(block.encode())
    wire[-1] ^= 0x40
    with pytest.raises(ChecksumError):
        ImageBlock.decode(bytes(wire))
    with pytest.raises(ProtocolError):
        ImageBlock.decode(block.encode()[:-1])  # data shorter than the header says (and CRC differs)
    with pytest.raises(ProtocolError):
        ImageBlock.decode(b"\x00" * 5)
    with pytest.raises(ProtocolError):
        split_image(b"")


def test_assembler_out_of_order_duplicates_and_resume() -> None:
    image = _image(1000, seed=1)
    blocks = split_image(image, image_index=1, block_size=64)
    assert len(blocks) == 16
    tag = ImageAssembler()
    order = list(range(16))
    random.Random(3).shuffle(order)
    # First pass: deliver 10 blocks out of order, some twice; the link "loses" the rest.
    ack = None
    for index in order[:10] + order[:3]:
        ack = tag.add(blocks[index])
        assert tag.image() is None
        assert ack.status == TransferStatus.IN_PROGRESS
    assert ack is not None
    assert sorted(ack.received) == sorted(order[:10])
    assert tag.missing() == sorted(order[10:])
    # Resume: the sender sends only what the last ack reports missing, via the wire codec.
    remaining = blocks_to_send(blocks, BlockAck.decode(ack.encode()))
    assert [block.index for block in remaining] == sorted(order[10:])
    for block in reversed(remaining):
        ack = tag.add(ImageBlock.decode(block.encode()))
    assert ack.status == TransferStatus.COMPLETE
    assert tag.image() == image
    assert blocks_to_send(blocks, ack) == []
    assert tag.add(blocks[0]).status == TransferStatus.COMPLETE  # late duplicate
    assert tag.image() == image


def test_assembler_resume_after_tag_reset() -> None:
    image = _image(700, seed=2)
    blocks = split_image(image, block_size=100)
    tag = ImageAssembler()
    for block in blocks[:4]:
        tag.add(block)
    tag = ImageAssembler()  # tag reset: it lost its blocks
    ack = tag.add(blocks[4])
    remaining = blocks_to_send(blocks, ack)
    assert [block.index for block in remaining] == [0, 1, 2, 3, 5, 6]
    for block in remaining:
        ack = tag.add(block)
    assert ack.status == TransferStatus.COMPLETE
    assert tag.image() == image


def test_assembler_new_transfer_replaces_partial_one() -> None:
    old, new = _image(300, seed=3), _image(300, seed=4)
    tag = ImageAssembler()
    old_blocks, new_blocks = split_image(old, block_size=100), split_image(new, block_size=100)
    tag.add(old_blocks[0])
    tag.add(old_blocks[1])
    ack = tag.add(new_blocks[2])
    assert ack.received == frozenset({2})
    assert blocks_to_send(old_blocks, ack) == old_blocks  # an ack for another image says nothing about ours
    tag.add(old_blocks[2])
    for block in new_blocks:
        ack = tag.add(block)
    assert tag.image() == new
    assert tag.image_index == 0


def test_assembler_never_exposes_image_with_wrong_hash() -> None:
    image = _image(250, seed=5)
    blocks = split_image(image, block_size=100)
    # A block whose data is wrong but whose own CRC is consistent (as if corrupted before the CRC was computed).
    forged = ImageBlock(blocks[1].image_index, blocks[1].image_hash, blocks[1].total_size, 100, 1, bytes(100))
    tag = ImageAssembler()
    tag.add(blocks[0])
    tag.add(forged)
    ack = tag.add(blocks[2])
    assert ack.status == TransferStatus.HASH_MISMATCH
    assert tag.image() is None
    assert tag.hash_failures == 1
    assert ack.received == frozenset()
    assert blocks_to_send(blocks, ack) == blocks
    for block in blocks:
        ack = tag.add(block)
    assert tag.image() == image


@settings(max_examples=200, deadline=None)
@given(
    st.binary(min_size=1, max_size=2000),
    st.integers(1, 300),
    st.lists(st.integers(0, 1000), max_size=60),
)
def test_assembler_any_order_exposes_only_the_whole_image(image: bytes, block_size: int, picks: list[int]) -> None:
    blocks = split_image(image, block_size=block_size)
    tag = ImageAssembler()
    for pick in picks:
        tag.add(blocks[pick % len(blocks)])
        assert tag.image() in (None, image)
    for block in blocks_to_send(blocks, tag.add(blocks[0])):
        tag.add(block)
    assert tag.image() == image


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=80))
def test_block_payload_decoders_raise_only_protocol_error(data: bytes) -> None:
    for decode in (ImageBlock.decode, BlockAck.decode):
        try:
            decode(data)
        except ProtocolError:
            pass


class _Side:
    """One end of the link in the end-to-end test: a decoder, a sender for its data and a receiver for the peer's."""

    def __init__(self, seed: int) -> None:
        self.decoder = SerialFrameDecoder()
        self.sender = LinkSender(max_tries=50, ack_timeout=0.05, max_timeout=0.4, rng=random.Random(seed))
        self.receiver = LinkReceiver()

    def receive(self, wire: bytes, now: float) -> tuple[list[Frame], list[bytes]]:
        """Feed bytes; return (delivered data frames, wire bytes of the replies to send back)."""
        delivered: list[Frame] = []
        replies: list[bytes] = []
        for frame in self.decoder.feed(wire):
            if frame.kind == FrameKind.DATA:
                outcome = self.receiver.on_frame(frame)
                if outcome.deliver is not None:
                    delivered.append(outcome.deliver)
                if outcome.reply is not None:
                    replies.append(outcome.reply.encode())
            else:
                self.sender.on_frame(frame, now)
        return delivered, replies


def test_image_transfer_end_to_end_with_loss_corruption_and_tag_reset() -> None:
    rng = random.Random(11)
    image = _image(3000, seed=9)
    blocks = split_image(image, image_index=1, block_size=96)

    def channel(wire: bytes) -> bytes:
        if rng.random() < 0.1:
            return b""  # frame lost
        data = bytearray(wire)
        if rng.random() < 0.1:
            data[rng.randrange(len(data))] = rng.randrange(256)  # a corrupted byte
        if rng.random() < 0.05:
            data[:0] = rng.randbytes(3)  # line noise before the frame
        return bytes(data)

    gateway, tag = _Side(1), _Side(2)
    assembler = ImageAssembler()
    last_ack: BlockAck | None = None
    blocks_delivered = 0
    reset_done = False
    for block in blocks:
        gateway.sender.submit(TAG, PayloadType.IMAGE_BLOCK, block.encode())
    now = 0.0
    rounds = 0
    while True:
        # Gateway -> tag.
        for frame in gateway.sender.poll(now).transmit:
            delivered, replies = tag.receive(channel(frame.encode(flush=True)), now)
            for reply in replies:
                gateway.receive(channel(reply), now)
            for data in delivered:
                ack = assembler.add(ImageBlock.decode(data.payload))
                assert assembler.image() in (None, image)  # never a partial image
                tag.sender.submit(TAG, PayloadType.BLOCK_ACK, ack.encode())
                blocks_delivered += 1
                if blocks_delivered == len(blocks) // 2 and not reset_done:
                    assembler, tag = ImageAssembler(), _Side(3)  # tag reset mid-transfer: all state lost
                    reset_done = True
        # Tag -> gateway.
        for frame in tag.sender.poll(now).transmit:
            delivered, replies = gateway.receive(channel(frame.encode(flush=True)), now)
            for reply in replies:
                tag.receive(channel(reply), now)
            for data in delivered:
                last_ack = BlockAck.decode(data.payload)
        if gateway.sender.idle and tag.sender.idle:
            if last_ack is not None and last_ack.status == TransferStatus.COMPLETE:
                break
            rounds += 1
            assert rounds < 20
            for block in blocks_to_send(blocks, last_ack):  # resume: only what the tag says is missing
                gateway.sender.submit(TAG, PayloadType.IMAGE_BLOCK, block.encode())
        deadlines = [d for d in (gateway.sender.next_deadline(), tag.sender.next_deadline()) if d is not None]
        now = min(deadlines) if deadlines else now
    assert reset_done
    assert assembler.image() == image
    assert rounds >= 1  # the reset forced at least one resume round
    assert gateway.decoder.dropped + tag.decoder.dropped > 0
