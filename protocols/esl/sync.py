"""PAwR sync packets (AP to a group of tags) and response slots (each tag back to the AP), as bytes.

Sources: the Bluetooth SIG ESL Profile 1.0 (PAwR and EAD) and ESL Service 1.0 (the 48-byte response cap), as
nrf-esl implements them; the tests pin a sync-packet vector computed with the EAD sample key.
Once configured, a tag leaves the GATT connection and listens to one
subevent of the access point's Periodic Advertising with Responses train: subevent number = its Group ID. This is
how an AP reaches thousands of tags without connecting to each: one subevent carries ECP commands for up to 23
tags of a group, and each addressed tag answers in its own response slot of that subevent.

Sync packet (one per subevent), before encryption::

    length | 0x34 "Electronic Shelf Label" | group_id | command TLV | command TLV | ...
                                            \\___________ ESL payload, at most 48 bytes ___________/

The whole AD structure is then wrapped as Encrypted Advertising Data with the AP Sync Key Material
(:mod:`protocols.esl.ead`). The command TLVs are the ECP commands of :mod:`protocols.esl.commands`, byte for byte.

Response slots: the slot a tag answers in is the 0-based index, within the packet, of the **last** TLV addressed
to it by its ESL ID; broadcast TLVs (ESL ID 0xFF) are executed by every tag of the group but give no slot (nrf-esl
behaviour). :meth:`SyncPacket.response_slots` computes that map on the AP side. A tag's answer is
its response TLVs, concatenated, at most 48 bytes, in the same AD framing but without a group byte::

    length | 0x34 | response TLV | response TLV | ...      (then EAD under that tag's ESL Response Key Material)

A tag whose responses would not fit replaces the last one with Error Capacity Limit (``00 07``);
:func:`encode_response_payload` does that for the simulated tag.

Everything takes keys (:class:`~protocols.esl.ead.KeyMaterial`) and randomizers from the caller and returns bytes:
no radio, no clock, no random source. ``key=None`` means the plaintext AD structure, for tests and tracing; a real
PAwR train is always encrypted. Decoding raises nothing but :class:`~protocols.errors.ProtocolError` (and its
subclass :class:`~protocols.esl.ead.EadError`); :func:`parse_response_slots` goes further and never raises for a
bad slot, reporting it per tag instead, so one corrupted answer cannot hide the others.

Choices the implementations leave open: decoding is strict (a TLV that runs past the end of the payload is an error,
where nrf-esl stops parsing quietly), and the plaintext inside an EAD must be exactly one ESL AD structure.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from protocols.errors import ProtocolError
from protocols.esl.address import BROADCAST_ESL_ID, MAX_GROUP_ID, EslAddress
from protocols.esl.commands import Command, decode_commands
from protocols.esl.ead import KeyMaterial
from protocols.esl.responses import ErrorCode, ErrorResponse, Response, decode_responses

__all__ = [
    "ESL_AD_TYPE",
    "MAX_ESL_PAYLOAD",
    "PayloadTooLargeError",
    "SlotOutcome",
    "SlotResult",
    "SyncPacket",
    "build_sync_packets",
    "decode_slot_response",
    "encode_response_payload",
    "encode_slot_response",
    "parse_response_slots",
]

ESL_AD_TYPE = 0x34
"""AD type "Electronic Shelf Label" (Bluetooth assigned numbers)."""
MAX_ESL_PAYLOAD = 48
"""Largest ESL payload: group ID + command TLVs in a sync packet, response TLVs in a response."""

_CAPACITY_LIMIT = ErrorResponse(ErrorCode.CAPACITY_LIMIT).encode()


class PayloadTooLargeError(ProtocolError):
    """An ESL payload would exceed :data:`MAX_ESL_PAYLOAD` bytes; split it (:func:`build_sync_packets`)."""


def _wrap_esl_ad(payload: bytes) -> bytes:
    return bytes((len(payload) + 1, ESL_AD_TYPE)) + payload


def _unwrap_esl_ad(ad: bytes, what: str) -> bytes:
    """The payload of exactly one ESL AD structure ``length 0x34 payload`` (1..48 payload bytes)."""
    if len(ad) < 3:
        raise ProtocolError(f"{what} AD needs at least 3 bytes, got {len(ad)}")
    if ad[0] != len(ad) - 1:
        raise ProtocolError(f"{what} AD length byte says {ad[0]} bytes follow, but {len(ad) - 1} do")
    if ad[1] != ESL_AD_TYPE:
        raise ProtocolError(f"{what} AD type 0x{ad[1]:02x} is not Electronic Shelf Label (0x{ESL_AD_TYPE:02x})")
    payload = ad[2:]
    if len(payload) > MAX_ESL_PAYLOAD:
        raise PayloadTooLargeError(f"{what} payload is {len(payload)} bytes, more than {MAX_ESL_PAYLOAD}")
    return payload


def _seal(ad: bytes, key: KeyMaterial | None, randomizer: bytes | None) -> bytes:
    if key is None:
        if randomizer is not None:
            raise ProtocolError("a randomizer without a key: nothing would be encrypted")
        return ad
    if randomizer is None:
        raise ProtocolError("encrypting needs a fresh 5-byte randomizer")
    return key.encrypt(randomizer, ad)


def _open(data: bytes, key: KeyMaterial | None) -> bytes:
    return bytes(data) if key is None else key.decrypt(data)


# --------------------------------------------------------------------------------------------------------------------
# Sync packets (AP -> tags)


@dataclass(frozen=True)
class SyncPacket:
    """The ECP commands for one group in one PAwR subevent; ``group_id`` is also the subevent number."""

    group_id: int
    commands: tuple[Command, ...] = field(default=())

    def __post_init__(self) -> None:
        if isinstance(self.group_id, bool) or not isinstance(self.group_id, int):
            raise ProtocolError(f"group id must be an integer, got {self.group_id!r}")
        if not 0 <= self.group_id <= MAX_GROUP_ID:
            raise ProtocolError(f"group id must be in 0..{MAX_GROUP_ID}, got {self.group_id}")
        if not isinstance(self.commands, tuple):
            raise ProtocolError(f"commands must be a tuple, got {type(self.commands).__name__}")
        size = len(self.payload())
        if size > MAX_ESL_PAYLOAD:
            raise PayloadTooLargeError(
                f"group {self.group_id}: {len(self.commands)} commands make a {size}-byte payload, "
                f"more than {MAX_ESL_PAYLOAD}; split them with build_sync_packets()"
            )

    def payload(self) -> bytes:
        """The ESL payload: group ID then the command TLVs."""
        return bytes((self.group_id,)) + b"".join(command.encode() for command in self.commands)

    def encode_ad(self) -> bytes:
        """The plaintext AD structure ``length 0x34 payload`` (what goes into EAD)."""
        return _wrap_esl_ad(self.payload())

    def encode(self, key: KeyMaterial | None = None, randomizer: bytes | None = None) -> bytes:
        """The subevent data: the EAD structure under the AP Sync ``key``, or the plaintext AD when ``key`` is None.

        ``randomizer`` (5 bytes, over-the-air order) must be fresh for every packet sent under the same key.
        """
        return _seal(self.encode_ad(), key, randomizer)

    @classmethod
    def decode(cls, data: bytes, key: KeyMaterial | None = None) -> SyncPacket:
        """Decode subevent data (EAD under ``key``, or plaintext AD when ``key`` is None)."""
        payload = _unwrap_esl_ad(_open(data, key), "sync packet")
        return cls(payload[0], tuple(decode_commands(payload[1:])))

    def response_slots(self) -> dict[int, EslAddress]:
        """Response slot -> the tag expected to answer in it, in slot order.

        A tag's slot is the index of the last TLV addressed to it by ESL ID; broadcast TLVs take no slot.
        """
        last_tlv_of: dict[int, int] = {}
        for index, command in enumerate(self.commands):
            if command.esl_id != BROADCAST_ESL_ID:
                last_tlv_of[command.esl_id] = index
        return {
            slot: EslAddress(self.group_id, esl_id)
            for esl_id, slot in sorted(last_tlv_of.items(), key=lambda item: item[1])
        }


def build_sync_packets(
    group_id: int, commands: Iterable[Command], *, max_commands: int | None = None
) -> list[SyncPacket]:
    """Pack ``commands`` for one group into as few sync packets as the 48-byte payload allows, keeping their order.

    ``max_commands`` caps the TLVs per packet, for a PAwR train with fewer response slots than TLVs fit (a TLV at
    index >= the slot count would give its tag a slot that does not exist). Use :class:`SyncPacket` directly to
    get an error instead of a split. No commands gives no packets.
    """
    if max_commands is not None and max_commands < 1:
        raise ProtocolError(f"max_commands must be at least 1, got {max_commands}")
    packets: list[SyncPacket] = []
    pending: list[Command] = []
    size = 1  # the group ID byte
    for command in commands:
        tlv_size = len(command.encode())
        full = size + tlv_size > MAX_ESL_PAYLOAD or (max_commands is not None and len(pending) >= max_commands)
        if full and pending:
            packets.append(SyncPacket(group_id, tuple(pending)))
            pending, size = [], 1
        pending.append(command)
        size += tlv_size
    if pending:
        packets.append(SyncPacket(group_id, tuple(pending)))
    return packets


# --------------------------------------------------------------------------------------------------------------------
# Responses (tag -> AP, one response slot each)


def encode_response_payload(responses: Sequence[Response]) -> bytes:
    """A tag's response payload: the TLVs concatenated, capped at 48 bytes.

    If the next response would overflow, it is dropped together with everything after it and the payload ends with
    Error Capacity Limit (``00 07``) instead, removing the last kept TLV when even those 2 bytes do not fit
    (nrf-esl behaviour). At least one response is required.
    """
    if not responses:
        raise ProtocolError("a response slot carries at least one response TLV")
    tlvs: list[bytes] = []
    size = 0
    for response in responses:
        tlv = response.encode()
        if size + len(tlv) > MAX_ESL_PAYLOAD:
            while size + len(_CAPACITY_LIMIT) > MAX_ESL_PAYLOAD:
                size -= len(tlvs.pop())
            tlvs.append(_CAPACITY_LIMIT)
            break
        tlvs.append(tlv)
        size += len(tlv)
    return b"".join(tlvs)


def encode_slot_response(
    responses: Sequence[Response], key: KeyMaterial | None = None, randomizer: bytes | None = None
) -> bytes:
    """What a tag sends in its response slot: the EAD structure under its Response ``key`` (plaintext if None)."""
    return _seal(_wrap_esl_ad(encode_response_payload(responses)), key, randomizer)


def decode_slot_response(data: bytes, key: KeyMaterial | None = None) -> tuple[Response, ...]:
    """Decode one response slot's data (EAD under the tag's Response ``key``, or plaintext when None)."""
    payload = _unwrap_esl_ad(_open(data, key), "response")
    return tuple(decode_responses(payload))


class SlotOutcome(enum.Enum):
    """What happened in one response slot."""

    ANSWERED = "answered"
    """The expected tag answered; ``responses`` holds its TLVs."""
    MISSING = "missing"
    """The expected tag sent nothing (out of range, not synchronized, or the packet was lost)."""
    MALFORMED = "malformed"
    """Data arrived but did not decrypt or decode; ``error`` says why."""
    UNEXPECTED = "unexpected"
    """Data arrived in a slot no TLV of the packet assigned; ``address`` is None."""


@dataclass(frozen=True)
class SlotResult:
    """The outcome of one response slot of a sync packet."""

    slot: int
    address: EslAddress | None
    outcome: SlotOutcome
    responses: tuple[Response, ...] = ()
    error: ProtocolError | None = None


def parse_response_slots(
    packet: SyncPacket,
    received: Mapping[int, bytes],
    response_keys: Mapping[EslAddress, KeyMaterial] | None,
) -> list[SlotResult]:
    """Match what arrived in the response slots of ``packet`` to the tags it addressed; never raises for bad data.

    ``received`` maps slot index -> the bytes received in it. ``response_keys`` maps each tag to its ESL Response
    Key Material (None: responses are plaintext, for tests). Returns one :class:`SlotResult` per expected slot, in
    slot order, then one per unexpected slot. A slot whose tag has no key in ``response_keys`` is MALFORMED, since
    its data cannot be checked.
    """
    expected = packet.response_slots()
    results: list[SlotResult] = []
    for slot, address in expected.items():
        data = received.get(slot)
        if data is None:
            results.append(SlotResult(slot, address, SlotOutcome.MISSING))
            continue
        try:
            key: KeyMaterial | None = None
            if response_keys is not None:
                key = response_keys.get(address)
                if key is None:
                    raise ProtocolError(f"no response key for ESL {address}")
            responses = decode_slot_response(data, key)
        except ProtocolError as exc:
            results.append(SlotResult(slot, address, SlotOutcome.MALFORMED, error=exc))
        else:
            results.append(SlotResult(slot, address, SlotOutcome.ANSWERED, responses=responses))
    for slot in sorted(set(received) - set(expected)):
        results.append(SlotResult(slot, None, SlotOutcome.UNEXPECTED))
    return results
