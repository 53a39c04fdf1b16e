"""Encrypted Advertising Data: the Core Specification Supplement sample vectors (v11 Part A 2.3), both ways.

The two sample sets differ only in the randomizer; both must come out byte for byte, and every kind of damage
(a flipped bit anywhere, a wrong key or IV, a wrong type or length byte) must raise the codec's own error.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.esl import (
    EAD_OVERHEAD,
    MAX_EAD_PLAINTEXT,
    EadError,
    KeyMaterial,
    ead_decrypt,
    ead_encrypt,
)

# CSS v11 Part A 2.3.1, in the byte order each argument takes (see protocols.esl.ead).
SESSION_KEY = bytes.fromhex("57A9DA12D12E6E131E20612AD10A6A19")
IV = bytes.fromhex("9E7A00EFB17AE746")  # nonce order; Nordic prints it reversed: 46E77AB1EF007A9E
PLAINTEXT_AD = bytes.fromhex("0F0953686F7274204D696E692D42757303190A8C")  # "Short Mini-Bus" name + appearance

SAMPLE_VECTORS = [
    # (randomizer in air order, whole EAD AD structure)
    ("18E157CADE", "1E3118E157CADE74E4DCAFDC51C7282810C2217F0E4CEF4343181FBA0069CC"),  # CSS 2.3.1
    ("8D1C976E7A", "1E318D1C976E7A35444076125788C238A58E8BD9CFF0DEFE251A8E7275454C"),  # CSS 2.3.2
]


@pytest.mark.parametrize(("randomizer_hex", "ead_hex"), SAMPLE_VECTORS)
def test_spec_sample_vector_encrypts_byte_for_byte(randomizer_hex: str, ead_hex: str) -> None:
    assert ead_encrypt(SESSION_KEY, IV, bytes.fromhex(randomizer_hex), PLAINTEXT_AD) == bytes.fromhex(ead_hex)


@pytest.mark.parametrize(("randomizer_hex", "ead_hex"), SAMPLE_VECTORS)
def test_spec_sample_vector_decrypts(randomizer_hex: str, ead_hex: str) -> None:
    assert ead_decrypt(SESSION_KEY, IV, bytes.fromhex(ead_hex)) == PLAINTEXT_AD


def test_sample_vector_layout() -> None:
    ead = bytes.fromhex(SAMPLE_VECTORS[0][1])
    assert len(ead) == 31
    assert ead[0] == len(ead) - 1 == 0x1E
    assert ead[1] == 0x31
    assert ead[2:7] == bytes.fromhex("18E157CADE")
    assert ead[7:-4] == bytes.fromhex("74E4DCAFDC51C7282810C2217F0E4CEF4343181F")
    assert ead[-4:] == bytes.fromhex("BA0069CC")


def test_nordic_printed_order_is_reversed() -> None:
    # nrf-esl's ead_ccm.py writes the randomizer and the IV byte-reversed and reverses them before use.
    nordic_randomizer, nordic_iv = bytes.fromhex("DECA57E118"), bytes.fromhex("46E77AB1EF007A9E")
    expected = bytes.fromhex(SAMPLE_VECTORS[0][1])
    assert ead_encrypt(SESSION_KEY, nordic_iv[::-1], nordic_randomizer[::-1], PLAINTEXT_AD) == expected
    assert ead_encrypt(SESSION_KEY, nordic_iv, nordic_randomizer, PLAINTEXT_AD) != expected


def test_key_material_value_is_key_then_iv() -> None:
    material = KeyMaterial.decode(SESSION_KEY + IV)
    assert (material.session_key, material.iv) == (SESSION_KEY, IV)
    assert material.encode() == SESSION_KEY + IV
    assert material.encrypt(bytes.fromhex("18E157CADE"), PLAINTEXT_AD) == bytes.fromhex(SAMPLE_VECTORS[0][1])
    assert material.decrypt(bytes.fromhex(SAMPLE_VECTORS[1][1])) == PLAINTEXT_AD
    assert "57" not in repr(material)  # no key bytes in logs
    for size in (0, 16, 23, 25):
        with pytest.raises(EadError):
            KeyMaterial.decode(bytes(size))


def test_every_single_bit_flip_is_detected() -> None:
    ead = bytes.fromhex(SAMPLE_VECTORS[0][1])
    for index in range(len(ead)):
        for bit in range(8):
            damaged = bytearray(ead)
            damaged[index] ^= 1 << bit
            with pytest.raises(EadError):
                ead_decrypt(SESSION_KEY, IV, bytes(damaged))


@pytest.mark.parametrize(
    ("key", "iv"),
    [
        (bytes(16), IV),
        (SESSION_KEY[:-1] + b"\x18", IV),
        (SESSION_KEY, IV[::-1]),
        (SESSION_KEY, bytes(8)),
    ],
)
def test_wrong_key_or_iv_fails_the_mic(key: bytes, iv: bytes) -> None:
    with pytest.raises(EadError, match="MIC"):
        ead_decrypt(key, iv, bytes.fromhex(SAMPLE_VECTORS[0][1]))


@pytest.mark.parametrize(
    ("ead_hex", "message"),
    [
        ("", "at least"),
        ("0a31" + "00" * 9, "at least"),  # randomizer + MIC but no ciphertext
        ("1f3118E157CADE74E4DCAFDC51C7282810C2217F0E4CEF4343181FBA0069CC", "length byte"),
        ("1E3118E157CADE74E4DCAFDC51C7282810C2217F0E4CEF4343181FBA0069CC00", "length byte"),
        ("1E3418E157CADE74E4DCAFDC51C7282810C2217F0E4CEF4343181FBA0069CC", "AD type"),
    ],
)
def test_malformed_structures(ead_hex: str, message: str) -> None:
    with pytest.raises(EadError, match=message):
        ead_decrypt(SESSION_KEY, IV, bytes.fromhex(ead_hex))


def test_bad_arguments() -> None:
    randomizer = bytes(5)
    with pytest.raises(EadError, match="session key"):
        ead_encrypt(bytes(32), IV, randomizer, PLAINTEXT_AD)  # AES-256 is not EAD
    with pytest.raises(EadError, match="IV"):
        ead_encrypt(SESSION_KEY, bytes(7), randomizer, PLAINTEXT_AD)
    with pytest.raises(EadError, match="randomizer"):
        ead_encrypt(SESSION_KEY, IV, bytes(6), PLAINTEXT_AD)
    with pytest.raises(EadError, match="plaintext"):
        ead_encrypt(SESSION_KEY, IV, randomizer, b"")
    with pytest.raises(EadError, match="plaintext"):
        ead_encrypt(SESSION_KEY, IV, randomizer, bytes(MAX_EAD_PLAINTEXT + 1))
    assert issubclass(EadError, ProtocolError)


def test_largest_plaintext_fills_the_length_byte() -> None:
    ead = ead_encrypt(SESSION_KEY, IV, bytes(5), bytes(MAX_EAD_PLAINTEXT))
    assert len(ead) == 256
    assert ead[0] == 0xFF
    assert ead_decrypt(SESSION_KEY, IV, ead) == bytes(MAX_EAD_PLAINTEXT)


_keys = st.binary(min_size=16, max_size=16)
_ivs = st.binary(min_size=8, max_size=8)
_randomizers = st.binary(min_size=5, max_size=5)
_plaintexts = st.binary(min_size=1, max_size=MAX_EAD_PLAINTEXT)


@settings(max_examples=300, deadline=None)
@given(_keys, _ivs, _randomizers, _plaintexts)
def test_round_trip(key: bytes, iv: bytes, randomizer: bytes, plaintext: bytes) -> None:
    ead = ead_encrypt(key, iv, randomizer, plaintext)
    assert len(ead) == len(plaintext) + EAD_OVERHEAD
    assert ead[2:7] == randomizer
    assert ead_decrypt(key, iv, ead) == plaintext
    assert KeyMaterial(key, iv).decrypt(ead) == plaintext


@settings(max_examples=300, deadline=None)
@given(_keys, _ivs, _randomizers, _plaintexts, st.data())
def test_tampering_or_another_key_is_rejected(
    key: bytes, iv: bytes, randomizer: bytes, plaintext: bytes, data: st.DataObject
) -> None:
    ead = ead_encrypt(key, iv, randomizer, plaintext)
    # Any change to randomizer, ciphertext or MIC (bytes 2..) breaks the MIC; bytes 0..1 fail the framing checks.
    index = data.draw(st.integers(0, len(ead) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    damaged = bytearray(ead)
    damaged[index] ^= flip
    with pytest.raises(EadError):
        ead_decrypt(key, iv, bytes(damaged))
    other_key = data.draw(_keys.filter(lambda candidate: candidate != key), label="other key")
    with pytest.raises(EadError, match="MIC"):
        ead_decrypt(other_key, iv, ead)
