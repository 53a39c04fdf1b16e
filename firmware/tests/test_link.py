from esltag import link


def test_crc16_check_value():
    assert link.crc16(b"123456789") == 0x29B1
    assert link.crc16(b"") == 0xFFFF


def test_cobs_roundtrip():
    samples = [b"", b"\x00", b"\x00\x00", b"\x11\x22\x00\x33", bytes(range(1, 255)), bytes(range(256)) * 3]
    for data in samples:
        encoded = link.cobs_encode(data)
        assert 0 not in encoded
        assert link.cobs_decode(encoded) == data


def test_cobs_known_vectors():
    assert link.cobs_encode(b"\x00") == b"\x01\x01"
    assert link.cobs_encode(b"\x11\x22\x00\x33") == b"\x03\x11\x22\x02\x33"
    assert link.cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255))


def test_cobs_decode_rejects_bad_input():
    for bad in (b"\x05\x11", b"\x02\x00"):
        try:
            link.cobs_decode(bad)
        except link.LinkError:
            pass
        else:
            raise AssertionError("accepted %r" % bad)


def test_frame_roundtrip_and_zero_residue():
    body = link.pack_frame(link.FLAG_DATA, 7, 0x0105, link.PT_ECP_COMMAND, b"\x00\x05")
    assert body[:8] == b"\x01\x01\x07\x05\x01\x01\x02\x00"
    assert link.crc16(body) == 0
    assert link.unpack_frame(body) == (link.FLAG_DATA, 7, 0x0105, link.PT_ECP_COMMAND, b"\x00\x05")


def test_unpack_rejects_corruption():
    body = bytearray(link.pack_frame(link.FLAG_DATA, 1, 0x0105, link.PT_ECP_COMMAND, b"\x00\x05"))
    body[9] ^= 0x40
    try:
        link.unpack_frame(bytes(body))
    except link.LinkError:
        pass
    else:
        raise AssertionError("corrupt frame accepted")


def test_decoder_streams_and_resyncs():
    frame = link.encode_frame(link.FLAG_DATA, 3, 0x0105, link.PT_ECP_COMMAND, b"\x00\x05")
    stream = b"\x13\x37garbage\x00" + frame + frame[:4]
    decoder = link.FrameDecoder()
    got = []
    for byte in stream:
        got.extend(decoder.feed(bytes((byte,))))
    assert got == [(link.FLAG_DATA, 3, 0x0105, link.PT_ECP_COMMAND, b"\x00\x05")]
    assert decoder.errors == 1
    assert decoder.feed(frame[4:]) == got


def test_decoder_drops_overlong_run():
    decoder = link.FrameDecoder()
    assert decoder.feed(b"\x01" * (link.MAX_ENCODED + 5)) == []
    assert decoder.overflows == 1
    frame = link.encode_frame(link.FLAG_ACK, 9, 0x0105, link.PT_NONE, b"")
    assert decoder.feed(b"\x01\x00" + frame) == [(link.FLAG_ACK, 9, 0x0105, 0, b"")]
