"""The serial link layer: acknowledged, deduplicated delivery of data frames, per tag. Sans-IO.

Stop-and-wait per tag: :class:`LinkSender` keeps at most one unacknowledged data frame per ESL address (different
tags on the bus proceed in parallel), retransmits it when its deadline passes with a capped exponential back-off,
and gives up after ``max_tries`` with a :class:`SendResult` of ``FAILED``. A NACK asks for an immediate retransmit.
Sequence numbers count per address from a random start, so a restarted sender is unlikely to reuse the sequence of
the last frame a tag saw. :class:`LinkReceiver` acknowledges every data frame (even duplicates, since the first ACK
may be what was lost) and delivers a frame only once: a frame with the same sequence number and the same content
as the last one delivered from that address is a retransmission.

Nothing here reads a clock: :class:`LinkSender` is told the current time and answers with the frames to transmit
and when to call again.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from dataclasses import dataclass, field

from protocols.esl.address import EslAddress
from protocols.esl.serial.frames import Frame, FrameKind, PayloadType
from protocols.esl.serial.wire import MAX_PAYLOAD

__all__ = [
    "LinkReceiver",
    "LinkSender",
    "Received",
    "SendActions",
    "SendOutcome",
    "SendResult",
]


class SendOutcome(enum.Enum):
    DELIVERED = "delivered"
    """The tag acknowledged the frame."""
    FAILED = "failed"
    """No acknowledgement after ``max_tries`` transmissions."""
    SENT = "sent"
    """A NO_ACK frame (broadcast) was handed out for transmission once; nothing more is known."""


@dataclass(frozen=True)
class SendResult:
    token: int
    address: EslAddress
    seq: int
    outcome: SendOutcome
    tries: int


@dataclass(frozen=True)
class SendActions:
    """What :meth:`LinkSender.poll` wants done: frames to write now, finished sends, and when to poll next."""

    transmit: list[Frame]
    results: list[SendResult]
    deadline: float | None


@dataclass
class _InFlight:
    token: int
    frame: Frame
    tries: int
    deadline: float


@dataclass
class _Peer:
    next_seq: int
    queue: deque[tuple[int, PayloadType, bytes, bool]] = field(default_factory=deque)
    in_flight: _InFlight | None = None


class LinkSender:
    """Sans-IO sender with per-tag stop-and-wait, retransmission and capped exponential back-off.

    Call :meth:`submit` to queue a payload, :meth:`poll` with the current time (any monotonic clock, seconds) to
    learn what to transmit and the next deadline, and :meth:`on_frame` with each ACK/NACK received. Try ``k``
    (1-based) waits ``min(ack_timeout * 2 ** (k - 1), max_timeout)`` for its ACK; after ``max_tries`` tries the send
    finishes as ``FAILED``. Data frames to a broadcast ESL ID go out once with NO_ACK (many tags answering at once
    would collide on a bus).
    """

    def __init__(
        self,
        *,
        max_tries: int = 5,
        ack_timeout: float = 0.1,
        max_timeout: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        if max_tries < 1 or ack_timeout <= 0 or max_timeout < ack_timeout:
            raise ValueError("need max_tries >= 1 and 0 < ack_timeout <= max_timeout")
        self.max_tries = max_tries
        self.ack_timeout = ack_timeout
        self.max_timeout = max_timeout
        self._rng = rng or random.Random()
        self._peers: dict[EslAddress, _Peer] = {}
        self._next_token = 1
        self.retransmissions = 0
        self.stale_acks = 0

    def timeout_for(self, tries: int) -> float:
        """How long try number ``tries`` (1-based) waits for its acknowledgement."""
        return min(self.ack_timeout * (1 << min(tries - 1, 30)), self.max_timeout)

    def submit(
        self, address: EslAddress, payload_type: PayloadType, payload: bytes, *, no_ack: bool | None = None
    ) -> int:
        """Queue a payload for ``address``; return a token that the :class:`SendResult` will carry.

        ``no_ack`` defaults to True for a broadcast ESL ID and False otherwise.
        """
        if payload_type == PayloadType.NONE:
            raise ValueError("data frames need a payload type")
        if len(payload) > MAX_PAYLOAD:
            raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        token = self._next_token
        self._next_token += 1
        peer = self._peers.get(address)
        if peer is None:
            peer = self._peers[address] = _Peer(next_seq=self._rng.randrange(256))
        peer.queue.append((token, payload_type, bytes(payload), address.is_broadcast if no_ack is None else no_ack))
        return token

    @property
    def idle(self) -> bool:
        """True when nothing is queued or waiting for an acknowledgement."""
        return all(peer.in_flight is None and not peer.queue for peer in self._peers.values())

    def pending(self, address: EslAddress) -> int:
        """Payloads for ``address`` not yet finished (queued or in flight)."""
        peer = self._peers.get(address)
        if peer is None:
            return 0
        return len(peer.queue) + (peer.in_flight is not None)

    def next_deadline(self) -> float | None:
        deadlines = [peer.in_flight.deadline for peer in self._peers.values() if peer.in_flight is not None]
        return min(deadlines) if deadlines else None

    def poll(self, now: float) -> SendActions:
        transmit: list[Frame] = []
        results: list[SendResult] = []
        for address, peer in self._peers.items():
            flight = peer.in_flight
            if flight is not None and flight.deadline <= now:
                if flight.tries >= self.max_tries:
                    results.append(
                        SendResult(flight.token, address, flight.frame.seq, SendOutcome.FAILED, flight.tries)
                    )
                    peer.in_flight = None
                else:
                    flight.tries += 1
                    flight.deadline = now + self.timeout_for(flight.tries)
                    self.retransmissions += 1
                    transmit.append(flight.frame)
            while peer.in_flight is None and peer.queue:
                token, payload_type, payload, no_ack = peer.queue.popleft()
                seq = peer.next_seq
                peer.next_seq = (seq + 1) & 0xFF
                frame = Frame.data(seq, address, payload_type, payload, no_ack=no_ack)
                transmit.append(frame)
                if no_ack:
                    results.append(SendResult(token, address, seq, SendOutcome.SENT, 1))
                else:
                    peer.in_flight = _InFlight(token, frame, 1, now + self.timeout_for(1))
        return SendActions(transmit, results, self.next_deadline())

    def on_frame(self, frame: Frame, now: float) -> SendResult | None:
        """Handle an ACK or NACK. Returns the finished send for an ACK that matches the frame in flight.

        A NACK makes the frame due at once (the next :meth:`poll` retransmits it, counting a try). ACKs that match
        nothing in flight (late duplicates) are counted in ``stale_acks`` and ignored. Data frames are ignored:
        they belong to a :class:`LinkReceiver`.
        """
        if frame.kind == FrameKind.DATA:
            return None
        peer = self._peers.get(frame.address)
        flight = peer.in_flight if peer is not None else None
        if peer is None or flight is None or flight.frame.seq != frame.seq:
            self.stale_acks += 1
            return None
        if frame.kind == FrameKind.NACK:
            flight.deadline = now
            return None
        peer.in_flight = None
        return SendResult(flight.token, frame.address, frame.seq, SendOutcome.DELIVERED, flight.tries)


@dataclass(frozen=True)
class Received:
    """What :meth:`LinkReceiver.on_frame` decided: a frame to hand up (None for a duplicate) and a reply to send."""

    deliver: Frame | None
    reply: Frame | None


class LinkReceiver:
    """Acknowledges data frames and delivers each one once (idempotent delivery).

    A data frame whose sequence number and content equal those of the last frame delivered from the same address
    is a retransmission (its ACK was lost): it is acknowledged again and not delivered. Comparing the content as
    well as the sequence number keeps a restarted sender that happens to reuse a sequence number from being
    silenced.
    """

    def __init__(self) -> None:
        self._last: dict[EslAddress, tuple[int, int, bytes]] = {}
        self.duplicates = 0

    def on_frame(self, frame: Frame) -> Received:
        if frame.kind != FrameKind.DATA:
            return Received(None, None)
        reply = None if frame.no_ack else frame.ack()
        key = (frame.seq, int(frame.payload_type), frame.payload)
        if self._last.get(frame.address) == key:
            self.duplicates += 1
            return Received(None, reply)
        self._last[frame.address] = key
        return Received(frame, reply)

    def forget(self, address: EslAddress) -> None:
        """Drop the duplicate-detection state for ``address`` (for example after the tag reported a reset)."""
        self._last.pop(address, None)
