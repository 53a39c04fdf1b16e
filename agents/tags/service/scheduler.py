"""One bus's scheduler: brings the bus's tags to their desired images, a few at a time, with retries.

* **Priority and concurrency.** The loop picks due tags (highest ``priority`` first, then oldest request) and
  runs at most the bus's ``max_concurrent`` updates at a time, each in its own named task. It sleeps until a
  command, a finished update or the bus wakes it, or until the next retry or timed display is due.
* **Retries.** A failed update is retried after a jittered exponential back-off until ``retry.max_attempts``;
  then the tag is ``failed`` with its last error until the next command for it.
* **Timed display.** An item with ``show_at`` in the future is transferred now into the tag's spare image slot
  (staged) and only the short Display Image command is sent at ``show_at``, so a store-wide price change at
  opening time takes seconds, not the length of the whole transfer. A staged image the tag lost (reset) is
  detected at display time and sent again in full.
* **Frames never crash the agent.** Transport and codec errors (:data:`FAILURES`) are per-tag failures;
  anything else is a bug and crashes the agent so the supervisor restarts it (the desired state survives in
  SQLite).

The records are the service's in-memory rows (shared with its command handlers); every change is written
through ``save`` and every finished update is reported on ``tags/state``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

from agents.core.backoff import Backoff
from agents.core.supervisor import AgentHealth
from agents.tags.config import BusConfig, TagsConfig, parse_address
from agents.tags.service.buses import MaintainedTransport
from agents.tags.service.state import publish_state
from agents.tags.store import TagRecord, TagState
from agents.tags.transport import TagRefusedError, TagTransport, TagTransportError
from agents.uplink.outbox import Outbox
from protocols.errors import ProtocolError
from protocols.esl import EslAddress, ReadSensorData, SensorValue

log = logging.getLogger(__name__)

__all__ = ["BATTERY_SENSOR", "CURRENT_SLOT", "FAILURES", "STAGED_SLOT", "BusScheduler", "SaveRecords"]

#: Image slot the tag shows immediate updates from, and the spare slot timed updates are staged into.
CURRENT_SLOT = 0
STAGED_SLOT = 1
BATTERY_SENSOR = 0
#: Errors that fail one tag's update or command, never the agent.
FAILURES = (TagTransportError, ProtocolError)

SaveRecords = Callable[[list[TagRecord]], Awaitable[None]]


class BusScheduler:
    """The update loop of one bus (:meth:`run`), its transport while the service runs, and its running updates.

    ``records`` is the service's map of every tag's row, filled when the service starts; this bus schedules the
    ``addresses`` declared on it.
    """

    def __init__(
        self,
        bus: BusConfig,
        addresses: Sequence[EslAddress],
        records: Mapping[EslAddress, TagRecord],
        *,
        tags: TagsConfig,
        outbox: Outbox,
        health: AgentHealth,
        save: SaveRecords,
        rng: random.Random,
    ) -> None:
        self.config = bus
        self.addresses = list(addresses)
        self.transport: TagTransport | None = None
        self.wake: asyncio.Event | None = None
        self.running: dict[EslAddress, asyncio.Task[None]] = {}
        self.draining = False
        self._records = records
        self._tags = tags
        self._outbox = outbox
        self._health = health
        self._save = save
        self._rng = rng

    @property
    def name(self) -> str:
        return self.config.name

    def require_transport(self) -> TagTransport:
        """The open transport; :class:`TagTransportError` while the bus is not open."""
        if self.transport is None:
            raise TagTransportError(f"bus {self.name} is not open")
        return self.transport

    def wake_up(self) -> None:
        """Look at the bus's tags again now (a command changed them, or a tag became ready)."""
        if self.wake is not None:
            self.wake.set()

    # ------------------------------------------------------------------------------------------------------------
    # The loop

    @staticmethod
    def _due(record: TagRecord, now: float) -> tuple[bool, float | None]:
        """(run now?, when to look again)."""
        if record.state not in (TagState.PENDING, TagState.STAGED):
            return False, None
        if record.next_attempt_at > now:
            return False, record.next_attempt_at
        if record.state == TagState.STAGED and record.show_at is not None and record.show_at > now:
            return False, record.show_at
        return True, None

    async def run(self) -> None:
        """Start due updates until cancelled; ``wake`` must be set up and the transport open."""
        wake = self.wake
        assert wake is not None
        limit = self.config.max_concurrent
        async with asyncio.TaskGroup() as group:
            while True:
                wake.clear()
                now = time.time()
                due: list[TagRecord] = []
                next_look: float | None = None
                transport = self.transport
                for address in self.addresses:
                    if address in self.running:
                        continue
                    if isinstance(transport, MaintainedTransport) and not transport.is_ready(address):
                        continue  # not onboarded yet: the bus wakes this loop when it is
                    record = self._records[address]
                    run_now, later = self._due(record, now)
                    if run_now:
                        due.append(record)
                    elif later is not None:
                        next_look = later if next_look is None else min(next_look, later)
                free = 0 if self.draining else limit - len(self.running)
                due.sort(key=lambda r: (-r.priority, r.desired_at or 0.0, r.address))
                for record in due[: max(0, free)]:
                    address = parse_address(record.address)
                    task = group.create_task(self._update(address, record), name=f"tags:update-{address}")
                    self.running[address] = task
                    task.add_done_callback(functools.partial(self._finished, address))
                timeout = None if next_look is None else max(0.0, next_look - time.time())
                try:
                    async with asyncio.timeout(timeout):
                        await wake.wait()
                except TimeoutError:
                    pass

    def _finished(self, address: EslAddress, _task: asyncio.Task[None]) -> None:
        self.running.pop(address, None)
        self.wake_up()

    # ------------------------------------------------------------------------------------------------------------
    # One update

    async def _update(self, address: EslAddress, record: TagRecord) -> None:
        """Bring one tag to its desired image (or record why not)."""
        transport = self.transport
        assert transport is not None
        image, image_hash, request = record.desired_image, record.desired_hash, record.desired_request
        if image is None or image_hash is None:
            record.state = TagState.IDLE
            await self._save([record])
            return
        show_at = record.show_at
        bytes_sent = 0
        started = time.time()
        try:
            if show_at is not None and show_at > started:
                result = await transport.send_image(address, image, image_index=STAGED_SLOT, display=False)
                bytes_sent = result.bytes_sent
                outcome = TagState.STAGED
            elif record.staged_hash == image_hash and record.state == TagState.STAGED:
                try:
                    await transport.display_image(address, STAGED_SLOT)
                except TagRefusedError:
                    record.staged_hash = None  # the tag lost the staged image (reset): send it in full now
                    record.state = TagState.PENDING
                    raise
                outcome = TagState.APPLIED
            else:
                result = await transport.send_image(address, image, image_index=CURRENT_SLOT)
                bytes_sent = result.bytes_sent
                outcome = TagState.APPLIED
        except FAILURES as exc:
            record.bytes_sent += bytes_sent
            self._health.count("image_bytes_sent", bytes_sent)
            await self._failed(address, record, exc, image_hash, request)
            return
        now = time.time()
        record.bytes_sent += bytes_sent
        record.last_seen = now
        record.attempts = 0
        record.last_error = None
        self._health.count("image_bytes_sent", bytes_sent)
        if outcome == TagState.STAGED:
            record.staged_hash = image_hash
            self._health.count("updates_staged")
        else:
            record.applied_hash = image_hash
            record.applied_at = now
            record.updates += 1
            self._health.count("updates_applied")
            if self._tags.read_battery:
                await self.read_battery(address, record)
        if record.desired_hash == image_hash:  # not replaced by a newer command meanwhile
            record.state = outcome
        else:
            record.state = TagState.PENDING
        await self._save([record])
        await publish_state(
            self._outbox, record, outcome, image_hash, request, bytes_sent=bytes_sent, seconds=now - started
        )

    async def _failed(
        self, address: EslAddress, record: TagRecord, exc: Exception, image_hash: str, request: str | None
    ) -> None:
        record.attempts += 1
        record.last_error = f"{type(exc).__name__}: {exc}"
        self._health.count("update_errors")
        retry = self._tags.retry
        if record.desired_hash != image_hash:
            record.state, record.attempts = TagState.PENDING, 0  # superseded while failing: start afresh
        elif record.attempts >= retry.max_attempts:
            record.state = TagState.FAILED
            self._health.count("updates_failed")
            log.warning("tag %s: giving up after %d attempts: %s", address, record.attempts, record.last_error)
        else:
            backoff = Backoff(retry.min_delay_s, retry.max_delay_s, rng=self._rng, attempt=record.attempts - 1)
            record.next_attempt_at = time.time() + backoff.next_delay()
            if record.state != TagState.STAGED:
                record.state = TagState.PENDING
        await self._save([record])
        if record.state == TagState.FAILED:
            await publish_state(self._outbox, record, TagState.FAILED, image_hash, request)

    async def read_battery(self, address: EslAddress, record: TagRecord) -> None:
        """Best effort: a tag that applied its image but misses a sensor read is still updated."""
        transport = self.require_transport()
        try:
            response = await transport.send_command(address, ReadSensorData(address.esl_id, BATTERY_SENSOR))
        except FAILURES as exc:
            self._health.count("battery_read_errors")
            log.debug("tag %s: battery read failed: %s", address, exc)
            return
        if isinstance(response, SensorValue) and len(response.data) >= 2:
            record.battery_mv = int.from_bytes(response.data[:2], "little")
