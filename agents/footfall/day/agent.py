"""The store day agent: the day boundary, the persisted counters and the ``counts/daily`` record.

One per gateway (the runtime builds it when the gateway has cameras). It owns the store's
:class:`~agents.footfall.day.counters.DayCounters` and :class:`~agents.footfall.day.observer.StoreDay` (the
observer every camera's frame loop reports to, with the re-identification and the staff policy when
configured), and on the event loop it

* checks the clock every ``tick_s`` and closes the day at its boundary (a camera thread may close it first:
  whoever sees the boundary passed does it);
* books each camera's downtime and skipped frames as they grow (read from the cameras' sources, so a camera
  that is down, and therefore closes no interval, still shows in the day's record);
* writes the counters to ``<state_dir>/footfall-day.json`` every ``day.persist_interval_s`` when they changed,
  and once more when it drains (after the cameras, which stop first);
* hands each closed day's record to the outbox on stream ``counts/daily``, **exactly once**: the record waits
  in the state file; just before the put the stream's position in the outbox is noted there, and after the
  put the record is removed. After a crash between the two, a stream position that has moved past the noted
  one says the outbox has it (the outbox allocates the stream's sequence in the same transaction that
  stores the message; this agent is the only producer of the stream), so it is not put again. Only if the
  outbox itself was lost is it put again, with the same ``record_id``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agents.core.supervisor import Agent
from agents.footfall.day.clock import Clock, SystemClock
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.day.counters import DayCounters
from agents.footfall.day.hooks import StaffPolicy
from agents.footfall.day.observer import IdentityResolver, StoreDay
from agents.footfall.day.record import DAILY_STREAM
from agents.uplink.outbox import Outbox

log = logging.getLogger(__name__)

STATE_FILE = "footfall-day.json"


class StoreDayAgent(Agent):
    """See the module docstring. ``outbox`` may be None only in tests that never close a day."""

    def __init__(
        self,
        config: StoreDayConfig,
        outbox: Outbox | None,
        *,
        store_id: str,
        gateway_id: str,
        state_dir: Path | None,
        clock: Clock | None = None,
        identity: IdentityResolver | None = None,
        staff: StaffPolicy | None = None,
        tick_s: float = 1.0,
    ) -> None:
        super().__init__("store-day")
        self.config = config
        self.outbox = outbox
        self.clock = clock or SystemClock()
        self.tick_s = tick_s
        now = self.clock.time()
        self.counters = DayCounters(
            config,
            store_id=store_id,
            gateway_id=gateway_id,
            now=now,
            path=state_dir / STATE_FILE if state_dir is not None else None,
            reidentification=identity is not None,
        )
        self.counters.load(now)
        self.store_day = StoreDay(config, self.counters, clock=self.clock, identity=identity, staff=staff)
        self._saved_at = time.monotonic()
        self._flush_lock = asyncio.Lock()
        self._cameras: dict[str, tuple[Callable[[], tuple[float, int]], list[float]]] = {}

    def watch_camera(self, name: str, totals: Callable[[], tuple[float, int]]) -> None:
        """Book camera ``name``'s downtime and skipped frames: ``totals()`` gives both, cumulative (they may
        start again from 0 when the camera's agent restarts)."""
        self.counters.ensure_camera(name)
        self._cameras[name] = (totals, [0.0, 0.0])

    def _book_cameras(self) -> None:
        for name, (totals, last) in self._cameras.items():
            downtime, skipped = totals()
            if downtime < last[0] or skipped < last[1]:
                last[0] = last[1] = 0.0  # a new source: its totals start again
            self.counters.quality(name, frames_skipped=skipped - last[1], downtime_s=downtime - last[0])
            last[0], last[1] = downtime, skipped

    def diagnostics(self) -> dict[str, Any]:
        counts = self.counters.snapshot()
        return {
            "day": counts["day"],
            "entries": counts["entries"],
            "exits": counts["exits"],
            "unique_visitors": counts["unique_visitors"],
            "returning": counts["returning"],
            "staff_crossings": counts["staff_crossings"],
            "occupancy": counts["occupancy"],
            "pending_records": len(self.counters.pending),
            **self.store_day.stats(),
        }

    async def run(self) -> None:
        await self.flush()
        while True:
            await asyncio.sleep(self.tick_s)
            await self.step()

    async def step(self) -> None:
        """One tick: camera quality, the boundary, then the pending records, then the periodic save."""
        self._book_cameras()
        self.store_day.roll_if_due(self.clock.time())
        await self.flush()
        if self.counters.dirty and time.monotonic() - self._saved_at >= self.config.persist_interval_s:
            await self._save()

    async def drain(self, timeout_s: float) -> None:
        """The cameras have stopped: close the day if due, hand over what is pending, save."""
        del timeout_s
        self._book_cameras()
        self.store_day.roll_if_due(self.clock.time())
        await self.flush()
        await self._save()

    async def _save(self) -> None:
        self._saved_at = time.monotonic()
        await asyncio.to_thread(self.counters.save)

    async def flush(self) -> None:
        """Put every closed day's record into the outbox exactly once (module docstring)."""
        async with self._flush_lock:
            while self.counters.pending:
                if self.outbox is None:
                    return
                pending = self.counters.pending[0]
                record_id = pending.data["record_id"]
                position = await self.outbox.stream_position(DAILY_STREAM)
                if pending.stream_position is not None and position > pending.stream_position:
                    log.info("daily record %s was committed before the restart; not sent again", record_id)
                else:
                    self.counters.set_position(record_id, position)
                    await self._save()  # the noted position is on disk before the put
                    result = await self.outbox.put(DAILY_STREAM, pending.data)
                    if not result.accepted:
                        log.warning("outbox full (drop_newest): daily record %s waits for the next try", record_id)
                        return
                    self.health.count("daily_records_sent")
                    log.info("daily record %s queued", record_id)
                self.counters.mark_queued(record_id)
                await self._save()
