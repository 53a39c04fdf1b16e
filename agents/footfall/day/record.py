"""The ``counts/daily`` record: one per store and store day, published once at the day boundary.

Its ``record_id`` is ``<store_id>:<day>`` (``store-042:2026-03-14``): one store day always has the same id,
whichever gateway or restart sends it, so a repeat is recognisable. The store day puts it into the durable
outbox exactly once (``StoreDayAgent``: the record waits in the state file, with the outbox stream's
position noted just before the put, until the outbox has committed it), and the outbox and the cloud's
de-duplication by envelope ``id`` do the rest. Fields: ``protocols/mqtt_v1.md``, ``counts/daily``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agents.footfall.day.config import StoreDayConfig
    from agents.footfall.day.counters import DayCounts

DAILY_STREAM = "counts/daily"
"""The outbox stream of the daily record (a camera may therefore not be called ``daily``)."""


@dataclass(frozen=True)
class DailyRecord:
    """One closed store day (see ``protocols/mqtt_v1.md``)."""

    record_id: str
    store_id: str
    gateway_id: str
    day: str
    day_start: float
    day_end: float
    timezone: str
    boundary: str
    entries: int
    exits: int
    unique_visitors: int
    returning: int
    staff_crossings: int
    entries_by_hour: list[int]
    peak_occupancy: int
    occupancy_at_close: int
    camera_downtime_s: float
    frames_skipped: int
    cameras: dict[str, dict[str, Any]]
    reidentification: bool
    gallery_reset: bool
    possibly_double_counted: int
    restarts: int
    closed_late: bool

    @staticmethod
    def record_id_for(store_id: str, day: str) -> str:
        return f"{store_id}:{day}"

    @classmethod
    def build(
        cls,
        counts: DayCounts,
        *,
        store_id: str,
        gateway_id: str,
        config: StoreDayConfig,
        bounds: tuple[float, float],
        reidentification: bool,
        closed_late: bool,
    ) -> DailyRecord:
        cameras = {name: {**asdict(c), "downtime_s": round(c.downtime_s, 3)} for name, c in counts.cameras.items()}
        return cls(
            record_id=cls.record_id_for(store_id, counts.day),
            store_id=store_id,
            gateway_id=gateway_id,
            day=counts.day,
            day_start=bounds[0],
            day_end=bounds[1],
            timezone=config.timezone,
            boundary=config.boundary.strftime("%H:%M"),
            entries=counts.entries,
            exits=counts.exits,
            unique_visitors=counts.unique_visitors,
            returning=counts.returning,
            staff_crossings=counts.staff_crossings,
            entries_by_hour=list(counts.entries_by_hour),
            peak_occupancy=counts.peak_occupancy,
            occupancy_at_close=counts.occupancy,
            camera_downtime_s=round(sum(cam.downtime_s for cam in counts.cameras.values()), 3),
            frames_skipped=sum(cam.frames_skipped for cam in counts.cameras.values()),
            cameras=cameras,
            reidentification=reidentification,
            gallery_reset=counts.gallery_reset,
            possibly_double_counted=counts.possibly_double_counted,
            restarts=counts.restarts,
            closed_late=closed_late,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PendingRecord:
    """A closed day's record not yet committed to the outbox.

    ``stream_position`` is the outbox's last ``stream_seq`` of ``counts/daily`` noted just before the put
    (None until then): after a crash, a position that has moved on means the put went through.
    """

    data: dict[str, Any]
    stream_position: int | None = None
