"""Encrypted Advertising Data (EAD): the AES-CCM envelope around every ESL PAwR sync packet and response.

Sources: the ESL Profile 1.0 (EAD in ESL) and the Core Specification Supplement v11 Part A 2.3 (sample vectors,
which the tests reproduce byte for byte). The ESL profile never sends its periodic
advertising in the clear: the access point encrypts each subevent's ESL AD structure with the AP Sync Key, and
each tag encrypts its response with its own ESL Response Key. This module is only that envelope; what goes inside
is :mod:`protocols.esl.sync`'s business.

An EAD AD structure, as it appears in advertising data::

    byte 0        length         = 1 + 5 + len(ciphertext) + 4 (counts everything after itself)
    byte 1        AD type 0x31   "Encrypted Advertising Data"
    bytes 2..6    randomizer     5 bytes, over-the-air order; fresh for every packet
    bytes 7..     ciphertext     the plaintext AD structures, same length as the plaintext
    last 4        MIC            the AES-CCM authentication tag

Cipher: AES-128-CCM, 4-byte MIC, 13-byte nonce = randomizer (5 bytes, air order) followed by the IV (8 bytes), and
additional authenticated data = the single byte 0xEA.

Byte order (the trap in the specification's sample data), for every function here:

- ``key``: the 16-byte AES key exactly as AES consumes it, which is also the order the specification's sample prints
  it in (``57A9DA12...0A6A19``) and the order of the first 16 bytes of the Key Material characteristic value.
- ``iv``: the 8 bytes in nonce order, which is the over-the-air order and the order of bytes 16..23 of the Key
  Material characteristic value (the sample's ``9E7A00EFB17AE746``). Nordic's tooling prints it reversed
  (``46E77AB1EF007A9E``) and reverses it back before use; this module never reverses anything.
- ``randomizer``: the 5 bytes in over-the-air order, as they appear in the EAD structure and in the nonce (the
  sample's ``18E157CADE``; Nordic prints ``DECA57E118``).

Errors: everything this module rejects (wrong AD type, a length byte that does not match, a structure too short,
a failed MIC, keys of the wrong size) raises :class:`EadError`, a :class:`~protocols.errors.ProtocolError`. A failed
MIC cannot tell a wrong key from a corrupted packet, and the message does not pretend to.

The randomizer is an argument, not generated here, so the codec stays deterministic and free of I/O; callers draw
it from ``os.urandom(5)`` or ``secrets.token_bytes(5)``. The Supplement also gives the randomizer's top bit a
direction meaning in some profiles; the sample vectors use both values of it (``...DE`` and ``...7A``), so nothing
here sets or checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from protocols.errors import ProtocolError

__all__ = [
    "EAD_AAD",
    "EAD_AD_TYPE",
    "EAD_OVERHEAD",
    "IV_SIZE",
    "MAX_EAD_PLAINTEXT",
    "MIC_SIZE",
    "RANDOMIZER_SIZE",
    "SESSION_KEY_SIZE",
    "EadError",
    "KeyMaterial",
    "ead_decrypt",
    "ead_encrypt",
]

EAD_AD_TYPE = 0x31
"""AD type "Encrypted Advertising Data" (Bluetooth assigned numbers)."""
EAD_AAD = b"\xea"
"""Additional authenticated data of every EAD packet (ESL Profile 1.0)."""
SESSION_KEY_SIZE = 16
IV_SIZE = 8
RANDOMIZER_SIZE = 5
MIC_SIZE = 4
EAD_OVERHEAD = 2 + RANDOMIZER_SIZE + MIC_SIZE
"""Bytes an EAD structure adds around its plaintext: length, type, randomizer, MIC (11)."""
MAX_EAD_PLAINTEXT = 0xFF - (1 + RANDOMIZER_SIZE + MIC_SIZE)
"""Largest plaintext whose EAD structure still fits a one-byte AD length (245)."""


class EadError(ProtocolError):
    """An EAD structure is malformed, or its MIC does not verify (wrong key, wrong IV or a corrupted packet)."""


def _check_size(name: str, value: bytes, size: int) -> None:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, got {type(value).__name__}")
    if len(value) != size:
        raise EadError(f"{name} must be {size} bytes, got {len(value)}")


def _nonce(randomizer: bytes, iv: bytes) -> bytes:
    return bytes(randomizer) + bytes(iv)


def ead_encrypt(key: bytes, iv: bytes, randomizer: bytes, ad: bytes) -> bytes:
    """Encrypt the plaintext AD structures ``ad`` and return the whole EAD AD structure.

    The result is ``length, 0x31, randomizer, ciphertext, MIC``. ``key`` is the 16-byte session key as AES uses it,
    ``iv`` the 8-byte IV in nonce order, ``randomizer`` 5 bytes in over-the-air order (see the module docstring for
    how these relate to the specification's sample). ``ad`` must hold 1..245 bytes (the spec puts one or more AD
    structures inside; an empty payload has nothing to protect and would only burn a randomizer).
    """
    _check_size("session key", key, SESSION_KEY_SIZE)
    _check_size("IV", iv, IV_SIZE)
    _check_size("randomizer", randomizer, RANDOMIZER_SIZE)
    if not isinstance(ad, bytes | bytearray | memoryview):
        raise TypeError(f"AD must be bytes, got {type(ad).__name__}")
    if not 1 <= len(ad) <= MAX_EAD_PLAINTEXT:
        raise EadError(f"EAD plaintext must be 1..{MAX_EAD_PLAINTEXT} bytes, got {len(ad)}")
    sealed = AESCCM(bytes(key), tag_length=MIC_SIZE).encrypt(_nonce(randomizer, iv), bytes(ad), EAD_AAD)
    return bytes((1 + RANDOMIZER_SIZE + len(sealed), EAD_AD_TYPE)) + bytes(randomizer) + sealed


def ead_decrypt(key: bytes, iv: bytes, ead: bytes) -> bytes:
    """Check and decrypt one whole EAD AD structure (as returned by :func:`ead_encrypt`); return the plaintext AD.

    ``ead`` must be exactly one structure: its length byte must count every following byte. ``key`` and ``iv`` use
    the same byte order as in :func:`ead_encrypt`. Raises :class:`EadError` on a wrong AD type, a length mismatch,
    a structure with no ciphertext, or a MIC that does not verify.
    """
    _check_size("session key", key, SESSION_KEY_SIZE)
    _check_size("IV", iv, IV_SIZE)
    data = bytes(ead)
    if len(data) < EAD_OVERHEAD + 1:
        raise EadError(f"EAD structure needs at least {EAD_OVERHEAD + 1} bytes, got {len(data)}")
    if data[0] != len(data) - 1:
        raise EadError(f"EAD length byte says {data[0]} bytes follow, but {len(data) - 1} do")
    if data[1] != EAD_AD_TYPE:
        raise EadError(f"AD type 0x{data[1]:02x} is not Encrypted Advertising Data (0x{EAD_AD_TYPE:02x})")
    randomizer = data[2 : 2 + RANDOMIZER_SIZE]
    sealed = data[2 + RANDOMIZER_SIZE :]
    try:
        return AESCCM(bytes(key), tag_length=MIC_SIZE).decrypt(_nonce(randomizer, iv), sealed, EAD_AAD)
    except InvalidTag as exc:
        raise EadError("EAD MIC check failed: wrong key or IV, or the packet was corrupted") from exc


@dataclass(frozen=True)
class KeyMaterial:
    """EAD Key Material: 16-byte session key then 8-byte IV, 24 bytes in all (ESL Service 1.0).

    This is the value of the AP Sync Key Material (0x2BF7) and ESL Response Key Material (0x2BF8) characteristics.
    Both parts are stored in the order :func:`ead_encrypt` takes them, and the characteristic value is their plain
    concatenation: no byte is reversed on the way to or from the wire. That matches how Zephyr's EAD API consumes a
    Key Material value read over GATT; the IV order inside the characteristic is taken from implementations and not
    checked against the specification text, so an interoperability test against a real tag is the final word.
    """

    session_key: bytes
    iv: bytes

    SIZE: ClassVar[int] = SESSION_KEY_SIZE + IV_SIZE

    def __post_init__(self) -> None:
        _check_size("session key", self.session_key, SESSION_KEY_SIZE)
        _check_size("IV", self.iv, IV_SIZE)
        object.__setattr__(self, "session_key", bytes(self.session_key))
        object.__setattr__(self, "iv", bytes(self.iv))

    def encode(self) -> bytes:
        return self.session_key + self.iv

    @classmethod
    def decode(cls, data: bytes) -> KeyMaterial:
        """Decode a 24-byte Key Material characteristic value; :class:`EadError` on any other length."""
        value = bytes(data)
        if len(value) != cls.SIZE:
            raise EadError(f"key material must be {cls.SIZE} bytes, got {len(value)}")
        return cls(session_key=value[:SESSION_KEY_SIZE], iv=value[SESSION_KEY_SIZE:])

    def encrypt(self, randomizer: bytes, ad: bytes) -> bytes:
        """:func:`ead_encrypt` with this key and IV."""
        return ead_encrypt(self.session_key, self.iv, randomizer, ad)

    def decrypt(self, ead: bytes) -> bytes:
        """:func:`ead_decrypt` with this key and IV."""
        return ead_decrypt(self.session_key, self.iv, ead)

    def __repr__(self) -> str:
        # Keys end up in logs via reprs of configs and exceptions; show only a short fingerprint-free marker.
        return "KeyMaterial(session_key=<16 bytes>, iv=<8 bytes>)"
