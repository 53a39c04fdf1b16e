"""The store's day counters: counts only, thread-safe, persisted so a restart mid-day keeps them.

One :class:`DayCounters` per store (every camera of the gateway adds to it, each from its own worker thread).
It holds plain integers and seconds, nothing about any person: entries and exits (visitor visits over all
lines; ``a_to_b`` is *in*), unique and returning visitors, staff crossings, entries per local hour,
occupancy (entries minus exits since the day began: its peak, and its value at the boundary, which should
be 0 in a store that is closed then; anything else is drift), and per camera its downtime and skipped frames.

**Persistence.** :meth:`save` writes the counters and the closed days not yet handed to the outbox to one
JSON file in the state directory, atomically (temporary file, fsync, rename), so a crash leaves the old or
the new file and never half of one. :meth:`load` resumes them: the same day goes on counting; a day that
ended while the gateway was down is closed at once (``closed_late``). A restart within the day keeps every
count but not the re-identification gallery, which is never written anywhere by design: the day's record
then says ``gallery_reset`` and how many visitors that may count twice (``possibly_double_counted``: the
unique visitors counted before each such restart, each of whom could be counted once more after it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agents.footfall.counting import Direction
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.day.record import DailyRecord, PendingRecord

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass
class CameraDay:
    """One camera's share of the day."""

    entries: int = 0
    exits: int = 0
    staff_crossings: int = 0
    downtime_s: float = 0.0
    frames_skipped: int = 0


@dataclass
class DayCounts:
    """Everything counted in one store day (all plain numbers: this is what is persisted)."""

    day: str
    entries: int = 0
    exits: int = 0
    unique_visitors: int = 0
    returning: int = 0
    staff_crossings: int = 0
    entries_by_hour: list[int] = field(default_factory=lambda: [0] * 24)
    occupancy: int = 0
    peak_occupancy: int = 0
    cameras: dict[str, CameraDay] = field(default_factory=dict)
    restarts: int = 0
    gallery_reset: bool = False
    possibly_double_counted: int = 0

    def camera(self, name: str) -> CameraDay:
        found = self.cameras.get(name)
        if found is None:
            found = self.cameras[name] = CameraDay()
        return found

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DayCounts:
        cameras = {name: CameraDay(**values) for name, values in data.get("cameras", {}).items()}
        return cls(**{**data, "cameras": cameras})


class DayCounters:
    """The store's counters for the current day (module docstring); every method is thread-safe.

    ``reidentification`` says whether a gallery exists to be lost on restart. Days are closed by :meth:`roll`,
    which moves the day's figures into a :class:`~agents.footfall.day.record.DailyRecord` waiting in
    :attr:`pending` until the outbox has it (:meth:`mark_queued`).
    """

    def __init__(
        self,
        config: StoreDayConfig,
        *,
        store_id: str,
        gateway_id: str,
        now: float,
        path: Path | None = None,
        reidentification: bool = False,
    ) -> None:
        self.config = config
        self.store_id = store_id
        self.gateway_id = gateway_id
        self.path = path
        self.reidentification = reidentification
        self._lock = threading.Lock()
        self._dirty = False
        self.pending: list[PendingRecord] = []
        self._counts = self._fresh(now)

    def _fresh(self, now: float) -> DayCounts:
        return DayCounts(day=self.config.day_of(now).isoformat())

    # ------------------------------------------------------------------------------------------- queries

    @property
    def day(self) -> str:
        with self._lock:
            return self._counts.day

    @property
    def day_end(self) -> float:
        with self._lock:
            return self.config.bounds(dt.date.fromisoformat(self._counts.day))[1]

    def snapshot(self) -> dict[str, Any]:
        """The current day's counts as a plain dict (for health and tests)."""
        with self._lock:
            return asdict(self._counts)

    # ------------------------------------------------------------------------------------------ counting

    def crossing(self, camera: str, direction: Direction, now: float) -> None:
        """A visitor's visit across a line of ``camera``: ``a_to_b`` is an entry, ``b_to_a`` an exit."""
        with self._lock:
            counts = self._counts
            cam = counts.camera(camera)
            if direction == "a_to_b":
                counts.entries += 1
                cam.entries += 1
                counts.entries_by_hour[self.config.local_hour(now)] += 1
                counts.occupancy += 1
                counts.peak_occupancy = max(counts.peak_occupancy, counts.occupancy)
            else:
                counts.exits += 1
                cam.exits += 1
                counts.occupancy -= 1
            self._dirty = True

    def staff_crossing(self, camera: str, line: str, direction: Direction, now: float) -> None:
        """A crossing by staff: counted apart, never an entry or exit of a visitor."""
        del line, direction, now  # counted per camera and store; kept in the signature for the callers' clarity
        with self._lock:
            self._counts.staff_crossings += 1
            self._counts.camera(camera).staff_crossings += 1
            self._dirty = True

    def visitors(self, *, unique: int = 0, returning: int = 0) -> None:
        """New unique visitors and returning visits decided (by the store day's observer)."""
        if unique or returning:
            with self._lock:
                self._counts.unique_visitors += unique
                self._counts.returning += returning
                self._dirty = True

    def quality(self, camera: str, *, frames_skipped: float, downtime_s: float) -> None:
        """Data quality of one closed interval of ``camera``."""
        if frames_skipped or downtime_s:
            with self._lock:
                cam = self._counts.camera(camera)
                cam.frames_skipped += int(frames_skipped)
                cam.downtime_s += float(downtime_s)
                self._dirty = True

    def ensure_camera(self, camera: str) -> None:
        """List ``camera`` in the day's record even if it counted nothing."""
        with self._lock:
            if camera not in self._counts.cameras:
                self._counts.camera(camera)
                self._dirty = True

    # ------------------------------------------------------------------------------------- the boundary

    def roll(self, now: float, *, late: bool = False) -> list[DailyRecord]:
        """Close the current day if ``now`` is past its end: its record goes to :attr:`pending` and counting
        starts afresh in the day of ``now`` (occupancy back to 0). Returns the records closed (0 or 1).

        Never goes backwards: a clock stepped back keeps counting into the current day.
        """
        with self._lock:
            start, end = self.config.bounds(dt.date.fromisoformat(self._counts.day))
            if now < end:
                return []
            record = DailyRecord.build(
                self._counts,
                store_id=self.store_id,
                gateway_id=self.gateway_id,
                config=self.config,
                bounds=(start, end),
                reidentification=self.reidentification,
                closed_late=late,
            )
            self.pending.append(PendingRecord(record.as_dict()))
            self._counts = self._fresh(now)
            self._dirty = True
            return [record]

    def mark_queued(self, record_id: str) -> None:
        """The outbox has committed ``record_id``: it is no longer pending."""
        with self._lock:
            self.pending = [p for p in self.pending if p.data["record_id"] != record_id]
            self._dirty = True

    def set_position(self, record_id: str, stream_position: int) -> None:
        """Remember the outbox stream position just before ``record_id`` is put (see ``StoreDayAgent``)."""
        with self._lock:
            for pending in self.pending:
                if pending.data["record_id"] == record_id:
                    pending.stream_position = stream_position
            self._dirty = True

    # ----------------------------------------------------------------------------------- persistence

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "store_id": self.store_id,
            "counts": asdict(self._counts),
            "pending": [asdict(p) for p in self.pending],
        }

    def save(self) -> None:
        """Write the state file atomically (module docstring); a no-op without a path."""
        if self.path is None:
            return
        with self._lock:
            text = json.dumps(self._state(), separators=(",", ":"), sort_keys=True)
            self._dirty = False
        _write_atomically(self.path, text)

    def load(self, now: float) -> None:
        """Resume from the state file, if there is one (module docstring). A corrupt file is set aside and
        counting starts afresh (logged): losing a day's counts beats not counting at all."""
        if self.path is None or not self.path.exists():
            return
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
            if state.get("version") != STATE_VERSION:
                raise ValueError(f"state version {state.get('version')!r}, expected {STATE_VERSION}")
            counts = DayCounts.from_dict(state["counts"])
            pending = [PendingRecord(**p) for p in state.get("pending", [])]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_suffix(".corrupt")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.error("store day: cannot read %s (%s); set aside as %s, counting starts afresh", self.path, exc, aside)
            return
        with self._lock:
            self._counts = counts
            self.pending = pending
            self._dirty = True
        if not self.roll(now, late=True):
            # The same day goes on; what this process never saw (the gallery) is said in the record.
            with self._lock:
                counts.restarts += 1
                if self.reidentification:
                    counts.gallery_reset = True
                    counts.possibly_double_counted += counts.unique_visitors


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
