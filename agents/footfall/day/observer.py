"""The store day's observer: every camera's frames in, the day's visitors out.

:class:`StoreDay` implements :class:`~agents.footfall.day.hooks.CameraObserver` for all cameras of the store.
Per frame it lets the staff policy and the re-identification (when configured) look at the frame, then books
the counter's crossings: a crossing that is a new visit is either staff (counted apart) or a visitor's entry
(``a_to_b``) or exit (``b_to_a``), which :class:`~agents.footfall.day.counters.DayCounters` counts at once.

**Who is a new visitor** needs a *person*, which takes longer: with re-identification a counter identity
(one person on one camera, across track breaks) is resolved to a store person only once enough good crops
were embedded, or when it ends. Until then its entries, exits and sighting wait on it, in order; when it is
resolved they are decided:

* an entry (``unique_from: entries``) or the first sighting (``unique_from: sightings``) of a person not
  counted today is a **unique visitor**;
* an entry of a person already counted today who has left since (crossed out, or whose earlier sighting had
  ended: the resolution says ``returning``) is a **returning** visit; in ``sightings`` mode, a returning
  resolution is;
* anything else is the same visit seen again (two cameras with overlapping views, one door): nothing.

Without re-identification every counter identity is its own person, resolved at once (today's behaviour:
``unique`` counts identities, and only an identity that crossed out and back in is ``returning``). An
identity that ends without ever being resolved (no usable crop) becomes its own person after
``UNRESOLVED_GRACE_S``, so a person the model could not see is counted rather than lost.

An exit (``b_to_a``) in ``entries`` mode also tells the re-identification that the person left the store
(``ended(..., crossed_out=True)``), so their next entry is a return. In ``sightings`` mode lines are not doors
and an identity ends only when the counter forgets it.

Staff are decided per crossing by the :class:`~agents.footfall.day.hooks.StaffPolicy`; a staff crossing is
never an entry, so in ``entries`` mode staff are never visitors (in ``sightings`` mode there is no crossing
to ask about: staff walking in front of a floor camera are counted, a documented limit).

Nothing here holds an image or an embedding: frames are handed to the re-identification and dropped; the
person keys are the gallery's integer ids, and all of it is forgotten at the day boundary.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from agents.footfall.counting import CounterUpdate, CrossingEvent
from agents.footfall.day.clock import Clock
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.day.counters import DayCounters
from agents.footfall.day.hooks import StaffPolicy
from agents.footfall.types import Tracks

log = logging.getLogger(__name__)

UNRESOLVED_GRACE_S = 2.0
"""Frame seconds an ended identity may wait for its resolution before it becomes its own person."""

_Event = Literal["in", "out", "seen"]


class Resolution(Protocol):
    """One decision of the re-identification: counter identity ``identity`` of ``camera`` is person ``uid``."""

    @property
    def camera(self) -> str: ...

    @property
    def identity(self) -> int: ...

    @property
    def uid(self) -> int: ...

    @property
    def returning(self) -> bool: ...


class IdentityResolver(Protocol):
    """What the store day needs of ``agents.footfall.identity.StoreIdentity``."""

    def observe(
        self, camera: str, frame: np.ndarray, tracks: Tracks, identities: Mapping[int, int], t: float
    ) -> None: ...

    def ended(self, camera: str, identity: int, t: float, crossed_out: bool) -> None: ...

    def resolutions(self) -> Sequence[Resolution]: ...

    def clear_day(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


@dataclass
class _Identity:
    """A counter identity of one camera, as the store day follows it."""

    person: Hashable | None = None
    returning: bool = False
    events: list[_Event] = field(default_factory=list)
    ended_t: float | None = None


@dataclass
class _Person:
    counted: bool = False
    inside: bool = False


class StoreDay:
    """The store's :class:`CameraObserver` (module docstring); one per gateway, shared by its cameras."""

    def __init__(
        self,
        config: StoreDayConfig,
        counters: DayCounters,
        *,
        clock: Clock,
        identity: IdentityResolver | None = None,
        staff: StaffPolicy | None = None,
    ) -> None:
        self.config = config
        self.counters = counters
        self.clock = clock
        self.identity = identity
        self.staff = staff
        self._lock = threading.RLock()
        self._identities: dict[tuple[str, int], _Identity] = {}
        self._alive: dict[str, set[int]] = {}
        self._people: dict[Hashable, _Person] = {}
        self._interval: dict[str, list[int]] = {}
        self._day_end = counters.day_end
        self._unresolved_fallbacks = 0

    # ------------------------------------------------------------------------------------ the frame loop

    def observe(
        self,
        camera: str,
        frame: np.ndarray,
        tracks: Tracks,
        identities: Mapping[int, int],
        update: CounterUpdate,
        t: float,
    ) -> None:
        now = self.clock.time()
        self.roll_if_due(now)
        if self.staff is not None:
            self.staff.observe(camera, tracks, identities, update, t)
        if self.identity is not None:
            self.identity.observe(camera, frame, tracks, identities, t)
        visits = [c for c in update.crossings if c.new_visit]
        staff = [self._is_staff(camera, c, t) for c in visits]
        ended: list[tuple[int, bool]] = []
        with self._lock:
            current = set(identities.values())
            alive = self._alive.setdefault(camera, set())
            for vid in sorted(current - alive):
                self._start(camera, vid)
            for crossing, by_staff in zip(visits, staff, strict=True):
                if by_staff:
                    self.counters.staff_crossing(camera, crossing.line, crossing.direction, now)
                    continue
                self.counters.crossing(camera, crossing.direction, now)
                state = self._identities.get((camera, crossing.visitor_id)) or self._start(camera, crossing.visitor_id)
                state.events.append("in" if crossing.direction == "a_to_b" else "out")
                if crossing.direction == "b_to_a" and self.config.unique_from == "entries":
                    ended.append((crossing.visitor_id, True))  # out of the store (with sightings, lines are no doors)
            for vid in sorted(alive - current):
                gone = self._identities.get((camera, vid))
                if gone is not None:
                    gone.ended_t = t
                ended.append((vid, False))
            self._alive[camera] = current
        self._settle(camera, ended, t, final=False)

    def interval_fields(self, camera: str) -> dict[str, int]:
        with self._lock:
            unique, returning = self._interval.pop(camera, (0, 0))
        return {"unique": unique, "returning": returning}

    def camera_ended(self, camera: str, t: float) -> None:
        with self._lock:
            alive = self._alive.pop(camera, set())
            for vid in alive:
                state = self._identities.get((camera, vid))
                if state is not None:
                    state.ended_t = t
        self._settle(camera, [(vid, False) for vid in sorted(alive)], t, final=True)

    # ------------------------------------------------------------------------------------ the boundary

    def roll_if_due(self, now: float) -> None:
        """Close the day if ``now`` is past its end (from any thread; the first caller does it)."""
        if now < self._day_end:
            return
        with self._lock:
            if now < self._day_end:
                return
            closed = self.counters.roll(now)
            self._day_end = self.counters.day_end
            self._identities.clear()
            self._people.clear()
            self._alive.clear()  # whoever is in view now is seen afresh on the new day
        if self.identity is not None:
            self.identity.clear_day()
        if self.staff is not None:
            self.staff.clear_day()
        for record in closed:
            log.info("store day %s closed: %d unique visitors", record.day, record.unique_visitors)

    # ---------------------------------------------------------------------------------------- queries

    def stats(self) -> dict[str, Any]:
        """Counts only, for health: no person, no id."""
        with self._lock:
            waiting = sum(1 for state in self._identities.values() if state.person is None)
            out: dict[str, Any] = {
                "day": self.counters.day,
                "people_today": len(self._people),
                "unresolved": waiting,
                "unresolved_fallbacks": self._unresolved_fallbacks,
            }
        if self.identity is not None:
            out["identity"] = self.identity.stats()
        if self.staff is not None:
            out["staff"] = self.staff.stats()
        return out

    # ------------------------------------------------------------------------------------------ rules

    def _is_staff(self, camera: str, crossing: CrossingEvent, t: float) -> bool:
        return self.staff is not None and self.staff.is_staff(camera, crossing.visitor_id, crossing, t)

    def _start(self, camera: str, vid: int) -> _Identity:
        """A counter identity appears (caller holds the lock)."""
        state = _Identity()
        if self.config.unique_from == "sightings":
            state.events.append("seen")
        if self.identity is None:
            state.person = ("camera", camera, vid)  # every counter identity is its own person
        self._identities[(camera, vid)] = state
        return state

    def _settle(self, camera: str, ended: list[tuple[int, bool]], t: float, *, final: bool) -> None:
        """Tell the re-identification what ended, take its resolutions, decide what can be decided."""
        identity = self.identity
        if identity is not None:
            for vid, crossed_out in ended:
                identity.ended(camera, vid, t, crossed_out)
            resolutions = identity.resolutions()
        else:
            resolutions = []
        with self._lock:
            for res in resolutions:
                state = self._identities.get((res.camera, res.identity))
                if state is None:
                    state = self._identities[(res.camera, res.identity)] = _Identity()
                state.person = ("person", res.uid)
                state.returning = res.returning
            for (cam, vid), state in list(self._identities.items()):
                waited = state.ended_t is not None and (final or t - state.ended_t >= UNRESOLVED_GRACE_S)
                if state.person is None and cam == camera and waited:
                    state.person = ("unresolved", cam, vid)
                    self._unresolved_fallbacks += 1
                if state.person is not None and state.events:
                    self._decide(cam, state)
                if state.person is not None and state.ended_t is not None and not state.events:
                    del self._identities[(cam, vid)]  # ended and decided: nothing more can happen to it

    def _decide(self, camera: str, state: _Identity) -> None:
        """Apply a resolved identity's waiting events in order (caller holds the lock)."""
        assert state.person is not None
        person = self._people.get(state.person)
        if person is None:
            person = self._people[state.person] = _Person()
        unique = returning = 0
        entries_mode = self.config.unique_from == "entries"
        for event in state.events:
            if event == "out":
                person.inside = False
                continue
            if (event == "in") != entries_mode:
                if event == "in":
                    person.inside = True
                continue
            if not person.counted:
                person.counted = True
                unique += 1
            elif state.returning or (entries_mode and not person.inside):
                returning += 1
            state.returning = False  # one resolution makes one returning visit
            if event == "in":
                person.inside = True
        state.events.clear()
        if unique or returning:
            self.counters.visitors(unique=unique, returning=returning)
            counts = self._interval.setdefault(camera, [0, 0])
            counts[0] += unique
            counts[1] += returning
