"""The ESL synchronized broadcast path (PAwR), modelled above bumble, which has no PAwR in its controller.

Why: after configuration an ESL leaves the connection and follows the AP's Periodic Advertising with Responses train;
one subevent per group carries ECP commands for many tags and each addressed tag answers in its own response slot
(ESL Profile 1.0). bumble (0.0.236) defines the HCI opcodes but implements neither side,
so this module delivers subevent data in Python instead of over the link layer, keeping everything else real: the AP
builds the packet with :class:`protocols.esl.SyncPacket` and encrypts it with its AP Sync Key (EAD); each
synchronized tag of the group decrypts it with the key it was given over GATT, executes the TLVs addressed to it
(:meth:`sim.ble.esl_tag.state.EslStateMachine.on_sync_packet`, the same ``execute`` the ECP path runs) and answers
EAD-encrypted under its Response Key in the slot the packet assigned; the AP parses the slots with
:func:`protocols.esl.parse_response_slots`. The train sees the tags only as the radio's
:class:`~sim.ble.radio.SyncListener` objects, so this module does not import the tag.

Not modelled: the train's timing (``subevent_s`` is recorded, not slept), RF loss other than the ``loss`` knob and
out-of-range tags, more slots than a real train has, and PAST (a tag is on the train once it reaches SYNCHRONIZED).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from protocols.esl import KeyMaterial, SyncPacket
from sim.ble.radio import VirtualRadio

__all__ = ["PawrTrain", "SubeventResult"]


@dataclass(frozen=True)
class SubeventResult:
    """What one subevent produced: the response slots heard (slot -> data) and the modelled duration."""

    responses: dict[int, bytes]
    modelled_s: float


class PawrTrain:
    """The AP's PAwR train over a :class:`VirtualRadio`: send one subevent's data, collect the response slots.

    ``loss`` is the chance that a given tag misses a given subevent (or its answer is lost); ``subevent_s`` is the
    modelled time of one subevent with its responses (PAwR allows intervals of 7.5 ms .. 82 s).
    """

    def __init__(
        self, radio: VirtualRadio, *, loss: float = 0.0, subevent_s: float = 0.05, seed: int | None = None
    ) -> None:
        self.radio = radio
        self.loss = loss
        self.subevent_s = subevent_s
        self._rng = random.Random(seed)
        self.subevents_sent = 0
        self.modelled_s = 0.0

    async def send_subevent(self, group_id: int, data: bytes) -> SubeventResult:
        """Deliver ``data`` (the EAD sync packet of ``group_id``) to every listener; return what the slots heard.

        Two tags answering in the same slot collide: that slot is reported empty, as on air.
        """
        responses: dict[int, bytes] = {}
        collided: set[int] = set()
        for listener in self.radio.sync_listeners:
            if self.loss and self._rng.random() < self.loss:
                continue
            answer = listener.on_sync_packet(group_id, data)
            if answer is None:
                continue
            slot, payload = answer
            if slot in responses:
                collided.add(slot)
            responses[slot] = payload
        for slot in collided:
            del responses[slot]
        self.subevents_sent += 1
        self.modelled_s += self.subevent_s
        await asyncio.sleep(0)  # a subevent is a radio event: let connections and other work interleave
        return SubeventResult(responses, self.subevent_s)

    async def send(self, packet: SyncPacket, key: KeyMaterial, randomizer: bytes) -> SubeventResult:
        """Encrypt ``packet`` under the AP Sync ``key`` and send it in subevent ``packet.group_id``."""
        return await self.send_subevent(packet.group_id, packet.encode(key, randomizer))
