"""The store's staff policy: staff zones and BLE badges, behind the store day's
:class:`~agents.footfall.day.hooks.StaffPolicy` seam.

Two rules, either one makes a crossing a staff crossing:

* **Staff zones** (back door, behind the counter). A counter identity that enters one of its camera's staff
  zones is staff for the rest of the day. With re-identification, the *store person* it resolves to is staff
  too, so the same person crossing at another door, or after a track break the counter could not bridge, is
  staff as well, as soon as that other identity is resolved to the person. Crossings an identity made
  *before* it entered the zone stay as they were counted (the policy answers once per crossing; the store
  day does not recount).
* **Badges**. A crossing on a camera the scanner covers (``badge_cameras``) is staff when a configured badge
  was near at that moment (:class:`~agents.footfall.staff.sightings.BadgeSightings`: one presence excuses one
  crossing). Badges mark the crossing, not the person: a customer next to a staff member at the door must not
  become staff for the day.

Badge sightings and crossings meet on the gateway's own clock (``clock``, monotonic by default): a sighting is
stamped when the scanner hears it, a crossing when its frame is judged, not with the frame's timestamp. A live
camera judges a frame a few tens of milliseconds after it was taken, well inside the window; a replayed file's
timestamps (media time from the start of the replay, at any replay speed) have no relation to the radio at all.

Zones are checked first, so a staff member with a badge who is already known from a zone does not use up the
badge's presence. ``observe`` runs on each camera's worker thread before that frame's crossings are judged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from agents.core.supervisor import Agent
from agents.footfall.counting import CounterUpdate, CrossingEvent
from agents.footfall.staff.config import StaffConfig, check_staff_zones
from agents.footfall.staff.scanner import BadgeScannerAgent
from agents.footfall.staff.sightings import BadgeSightings
from agents.footfall.types import Tracks

__all__ = ["StaffRules", "build_staff_policy"]


class _Person(Protocol):
    @property
    def uid(self) -> int: ...


PersonOf = Callable[[str, int], _Person | None]
"""``StoreIdentity.person_of``: (camera, counter identity) -> the store person, or None while unresolved."""


class StaffRules:
    """Implements :class:`agents.footfall.day.hooks.StaffPolicy` (module docstring)."""

    def __init__(
        self,
        config: StaffConfig,
        *,
        sightings: BadgeSightings | None = None,
        scanner: BadgeScannerAgent | None = None,
        person_of: PersonOf | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self._zones = {camera: frozenset(names) for camera, names in config.zones.items() if names}
        self._badge_cameras = None if config.badge_cameras is None else frozenset(config.badge_cameras)
        if sightings is None and config.badges:
            sightings = BadgeSightings(window_s=config.window_s)
        self.sightings = sightings
        self.scanner = scanner
        self.person_of = person_of
        self._lock = threading.Lock()
        self._staff_ids: set[tuple[str, int]] = set()
        self._unresolved: set[tuple[str, int]] = set()  # staff identities whose person is not known yet
        self._staff_people: set[int] = set()
        self._counts = {"zone_entries": 0, "zone_crossings": 0, "badge_crossings": 0}

    # -- the StaffPolicy seam --------------------------------------------------------------------------------------

    def observe(
        self, camera: str, tracks: Tracks, identities: Mapping[int, int], update: CounterUpdate, t: float
    ) -> None:
        """Mark the identities that entered one of ``camera``'s staff zones in this frame."""
        zones = self._zones.get(camera)
        if not zones:
            return
        entered = [(camera, e.visitor_id) for e in update.zone_events if e.kind == "enter" and e.zone in zones]
        if not entered:
            return
        with self._lock:
            for key in entered:
                if key not in self._staff_ids:
                    self._staff_ids.add(key)
                    self._unresolved.add(key)
                    self._counts["zone_entries"] += 1

    def is_staff(self, camera: str, identity: int, event: CrossingEvent, t: float) -> bool:
        """Staff if the identity (or its person) is staff today, or if a badge is near the door now (on
        ``clock``: see the module docstring; ``t``, the frame's time, is not compared with sightings)."""
        if self._zone_staff(camera, identity):
            with self._lock:
                self._counts["zone_crossings"] += 1
            return True
        if self.sightings is None or (self._badge_cameras is not None and camera not in self._badge_cameras):
            return False
        if self.sightings.badge_near(self.clock()) is None:
            return False
        with self._lock:
            self._counts["badge_crossings"] += 1
        return True

    def clear_day(self) -> None:
        """The store day ended: nobody is staff any more until they enter a zone again."""
        with self._lock:
            self._staff_ids.clear()
            self._unresolved.clear()
            self._staff_people.clear()
        if self.sightings is not None:
            self.sightings.clear()

    def stats(self) -> dict[str, Any]:
        """Counts only (no identity, no badge): for health."""
        with self._lock:
            out: dict[str, Any] = {
                **self._counts,
                "staff_identities": len(self._staff_ids),
                "staff_people": len(self._staff_people),
            }
        if self.sightings is not None:
            out.update(self.sightings.stats())
        return out

    def agents(self) -> list[Agent]:
        """What must run for this policy: the badge scanner when badges are configured."""
        return [self.scanner] if self.scanner is not None else []

    # -- zones and people --------------------------------------------------------------------------------------------

    def _zone_staff(self, camera: str, identity: int) -> bool:
        key = (camera, identity)
        with self._lock:
            if key in self._staff_ids:
                return True
            if self.person_of is None or not self._staff_ids:
                return False
            pending = list(self._unresolved)
        # person_of takes the gallery's lock: call it without ours (the gallery never calls back into us).
        resolved = [(k, p.uid) for k in pending if (p := self.person_of(*k)) is not None]
        person = self.person_of(camera, identity)
        with self._lock:
            for k, uid in resolved:
                self._staff_people.add(uid)
                self._unresolved.discard(k)
            if person is None or person.uid not in self._staff_people:
                return False
            self._staff_ids.add(key)  # the same person under another identity: staff for the day too
            return True


def build_staff_policy(
    config: StaffConfig,
    camera_zones: Mapping[str, Iterable[str]],
    *,
    person_of: PersonOf | None = None,
    clock: Callable[[], float] | None = None,
) -> StaffRules:
    """The store's policy from ``footfall.staff`` and the cameras (name -> the zone names of its counting
    config), with its badge scanner when badges are configured. ``person_of`` is the re-identification's
    ``StoreIdentity.person_of`` (None without re-identification); ``clock`` is where the scanner's
    sightings and the judged crossings meet (default ``time.monotonic``; see the module docstring).

    Raises ``ValueError`` naming staff zones or badge cameras the cameras do not have, and
    :class:`~agents.core.errors.ConfigError` for a scanner backend that cannot be loaded.
    """
    check_staff_zones(config, camera_zones)
    clock = clock or time.monotonic
    sightings = BadgeSightings(window_s=config.window_s) if config.badges else None
    scanner = BadgeScannerAgent(config, sightings, clock=clock) if sightings is not None else None
    return StaffRules(config, sightings=sightings, scanner=scanner, person_of=person_of, clock=clock)
