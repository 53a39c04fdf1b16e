"""Fuzzing the OTS control-point codec (protocols/ots.py): arbitrary bytes give a value or ProtocolError, never
another exception; encoded requests keep their layout."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.ots import OacpResponse, ObjectSize, OlcpResponse, OtsFeature, encode_calculate_checksum, encode_write

DECODERS = [OacpResponse.decode, OlcpResponse.decode, ObjectSize.decode, OtsFeature.decode]


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=32), index=st.integers(0, len(DECODERS) - 1))
def test_decoders_raise_only_protocol_error(data: bytes, index: int) -> None:
    try:
        DECODERS[index](data)
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(offset=st.integers(0, 2**32 - 1), length=st.integers(0, 2**32 - 1), truncate=st.booleans())
def test_write_and_checksum_requests_keep_their_layout(offset: int, length: int, truncate: bool) -> None:
    assert encode_write(offset, length, truncate=truncate) == struct.pack(
        "<BIIB", 0x06, offset, length, 2 if truncate else 0
    )
    assert encode_calculate_checksum(offset, length) == struct.pack("<BII", 0x03, offset, length)
