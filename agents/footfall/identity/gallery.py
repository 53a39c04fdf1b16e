"""The store's day gallery: who has been seen today, by which camera and identity, and when.

:class:`DayGallery` is one per store, shared by every camera, held in memory only: it is never pickled, logged,
put in health or in the outbox, and :meth:`DayGallery.clear` forgets it at the store's day boundary. It keeps:

* **sightings**: one per ``(camera, identity)`` (identity = the counter's visitor id on that camera): first and
  last time observed, whether it has ended (the counter lost it for good, or it crossed out of the store), its
  appearance as *views* (each the normalised mean of a few samples taken close together, later views seconds
  apart; :class:`Sighting`), and the person it resolved to;
* **people**: one per distinct person of the day, each with its sightings.

**Scores.** Views are compared **camera-centred**: each camera's mean person (the mean of its people's views, each
person once, shrunk by ``n / (n + 1)`` while there are few) is subtracted before the cosine. Whatever every crop of
a camera shares (its light, its angle, the background, and OSNet's all-positive ReLU output) otherwise lifts every
cosine: on the dev footage the centring took the worst pair of different people from 0.67 to 0.49 (OMZ) and from
0.90 to 0.61 (OSNet) while same-person scores stayed around 0.8. A sighting's score against another is the best
pair of their views, and only views that still look like the sighting's first view (score at least the threshold)
take part: a tracker id switch inside an identity leaves later views of *another* person, which must not carry
this person's matches.

Resolving a sighting (:meth:`DayGallery.resolve`) scores it against every other resolved sighting and, among the
people scoring at least the threshold, takes the best one that the **rules in time and place** allow:

1. a person with a sighting on the **same camera** that was observed **at the same time** as this one (their
   observed spans share at least one frame) is refused: two people seen at once are not one person;
2. a person observed at the same time on **another camera** is the same person in overlapping views: a match,
   not a return;
3. a person whose every other sighting has **ended** is a **returning** visitor (a visit, not a new unique one);
4. otherwise (an earlier sighting not seen now but not ended either: a track break, someone walking behind a
   shelf or from one view into the next) it is the same person, not returning.

No person above the threshold (or a sighting with no usable sample) makes a new person. "At the same time" is
strict (one common frame): a tracker reports only the tracks it matched on a frame and the counter links an id
hand-over into one identity, so two identities of one camera on one frame are two boxes, i.e. two people; and
people who arrive together are resolved within a second, when their spans have overlapped only a few frames.

Cost: one small matrix product over the day's views per resolution (a busy store day: a few thousand views of
256-512 floats, about a millisecond). Memory is bounded by ``max_people``: past it, the
people whose sightings all ended longest ago are dropped first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Key = tuple[str, int]


def _unit(vector: Vector) -> Vector:
    unit: Vector = (vector / max(float(np.linalg.norm(vector)), 1e-12)).astype(np.float32)
    return unit


def _units(rows: Vector) -> Vector:
    norms = np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    units: Vector = (rows / norms).astype(np.float32)
    return units


@dataclass(frozen=True, slots=True)
class Person:
    """A store person as the caller sees it: ``uid`` (per day), whether *this sighting* is a return, first seen."""

    uid: int
    returning: bool
    first_seen_t: float


@dataclass(frozen=True, slots=True)
class Resolution:
    """A ``(camera, identity)`` resolved to person ``uid``: a new person of the day, or a return, or neither."""

    camera: str
    identity: int
    uid: int
    new_person: bool
    returning: bool


@dataclass(eq=False)
class Sighting:
    """One counter identity on one camera (see the module docstring).

    Its samples (unit embeddings) are grouped into **views**: a few samples taken close together, averaged into one
    prototype (``views``), with later views taken seconds apart so a long visit keeps its different looks (walking
    towards the camera, away from it, standing) instead of averaging them into a blur.
    """

    camera: str
    identity: int
    first_t: float
    last_t: float
    ended: bool = False
    uid: int | None = None
    returning: bool = False
    views: list[Vector] = field(default_factory=list)  # the views that have samples, in order
    view_sizes: list[int] = field(default_factory=list)  # samples per view, counting those still being embedded
    view_start_t: float = -np.inf
    last_sample_t: float = -np.inf
    _sums: list[Vector | None] = field(default_factory=list, repr=False)
    _filled: list[int] = field(default_factory=list, repr=False)
    fallback: Vector | None = field(default=None, repr=False)  # best lesser crop's embedding while views is empty
    fallback_h: float = 0.0

    def looks(self) -> list[Vector]:
        """The views, or while there is none the embedding of its best lesser crop (module docstring)."""
        if self.views:
            return self.views
        return [self.fallback] if self.fallback is not None else []

    @property
    def samples(self) -> int:
        """Number of samples taken (embedded or on their way)."""
        return sum(self.view_sizes)

    @property
    def first_view_samples(self) -> int:
        """Embedded samples of the first view (what resolution waits for)."""
        return self._filled[0] if self._filled else 0

    def reserve(self, t: float, *, new_view: bool = False) -> int:
        """Count a sample taken at ``t`` whose embedding comes later: into the open view, or a new one (the first
        sample always opens one). Returns the view's index for :meth:`fill`."""
        if new_view or not self.view_sizes:
            self.view_sizes.append(1)
            self._sums.append(None)
            self._filled.append(0)
            self.view_start_t = t
        else:
            self.view_sizes[-1] += 1
        self.last_sample_t = t
        return len(self.view_sizes) - 1

    def fill(self, index: int, embedding: Vector) -> None:
        """The embedding of a sample reserved in view ``index``."""
        total = self._sums[index]
        self._sums[index] = np.array(embedding, np.float32) if total is None else total + embedding
        self._filled[index] += 1
        self.views = [_unit(v) for v in self._sums if v is not None]

    def add(self, embedding: Vector, t: float, *, new_view: bool = False) -> None:
        """Add a unit embedding at once (:meth:`reserve` then :meth:`fill`)."""
        self.fill(self.reserve(t, new_view=new_view), embedding)


@dataclass(eq=False)
class _Person:
    uid: int
    first_seen_t: float
    sightings: list[Sighting] = field(default_factory=list)


class DayGallery:
    """Thread-safe, in-memory day gallery (module docstring). ``threshold`` is the cosine similarity to match."""

    def __init__(self, threshold: float, *, max_people: int = 20_000) -> None:
        self.threshold = float(threshold)
        self.max_people = int(max_people)
        self._lock = threading.RLock()
        self._sightings: dict[Key, Sighting] = {}
        self._people: dict[int, _Person] = {}
        self._next_uid = 1
        self.generation = 0  # bumped by clear(): work started before the boundary is dropped
        self._counts = {"resolved": 0, "returning": 0, "merges": 0, "refused": 0, "unsampled": 0}

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    # -------------------------------------------------------------------------------------------- sightings

    def touch(self, camera: str, identity: int, t: float) -> Sighting:
        """The sighting of ``(camera, identity)``, created on first sight; ``last_t`` becomes ``t``."""
        with self._lock:
            sighting = self._sightings.get((camera, identity))
            if sighting is None:
                sighting = self._sightings[(camera, identity)] = Sighting(camera, identity, t, t)
            elif t > sighting.last_t:
                sighting.last_t = t
            return sighting

    def get(self, camera: str, identity: int) -> Sighting | None:
        with self._lock:
            return self._sightings.get((camera, identity))

    def open_sightings(self, camera: str) -> list[Sighting]:
        """The sightings of ``camera`` that have not ended."""
        with self._lock:
            return [s for s in self._sightings.values() if s.camera == camera and not s.ended]

    def end(self, camera: str, identity: int) -> Sighting | None:
        """Mark a sighting ended (left the view or crossed out); ``None`` when it was never observed."""
        with self._lock:
            sighting = self._sightings.get((camera, identity))
            if sighting is not None:
                sighting.ended = True
            return sighting

    # ------------------------------------------------------------------------------------------- resolving

    def resolve(self, sighting: Sighting) -> Resolution:
        """Give ``sighting`` its person now (module docstring); a resolved sighting keeps its person."""
        with self._lock:
            if sighting.uid is not None:
                return Resolution(sighting.camera, sighting.identity, sighting.uid, False, sighting.returning)
            uid, returning = self._match(sighting)
            new_person = uid is None
            if uid is None:
                uid = self._new_person(sighting.first_t)
            else:
                self._counts["merges"] += 1
            person = self._people[uid]
            person.sightings.append(sighting)
            sighting.uid, sighting.returning = uid, returning
            self._counts["resolved"] += 1
            self._counts["returning"] += int(returning)
            return Resolution(sighting.camera, sighting.identity, uid, new_person, returning)

    def _match(self, sighting: Sighting) -> tuple[int | None, bool]:
        """Best allowed person at or above the threshold and whether it is a return; ``(None, False)`` if none."""
        if not sighting.looks():
            self._counts["unsampled"] += 1
            return None, False
        others = [s for s in self._sightings.values() if s is not sighting and s.uid is not None and s.looks()]
        if not others:
            return None, False
        centres = self._centres(sighting)
        query = self._consistent(sighting, centres)
        owners: list[int] = []
        rows: list[Vector] = []
        for other in others:
            assert other.uid is not None
            views = self._consistent(other, centres)
            rows.append(views)
            owners.extend([other.uid] * len(views))
        gallery = np.concatenate(rows, axis=0)
        best = (gallery @ query.T).max(axis=1)  # each gallery view against the query's closest view
        scores: dict[int, float] = {}
        for uid, score in zip(owners, best.tolist(), strict=True):
            if score >= self.threshold and score > scores.get(uid, -1.0):
                scores[uid] = score
        for uid, _score in sorted(scores.items(), key=lambda item: -item[1]):
            allowed, returning = self._relation(self._people[uid], sighting)
            if allowed:
                return uid, returning
            self._counts["refused"] += 1
        return None, False

    def _consistent(self, sighting: Sighting, centres: dict[str, Vector]) -> Vector:
        """The sighting's centred views that still look like its first view (module docstring)."""
        views = _units(np.stack(sighting.looks()) - centres[sighting.camera])
        if len(views) > 1:
            views = views[(views @ views[0]) >= self.threshold]
        return views

    def _centres(self, query: Sighting) -> dict[str, Vector]:
        """Per camera, the mean appearance of its people (each person once, the query as one more), shrunk by
        ``n / (n + 1)``: subtracting it removes what every crop of that camera shares (module docstring)."""
        views: dict[str, dict[int, list[Vector]]] = {}
        for s in self._sightings.values():
            if s.uid is not None and s.looks() and s is not query:
                views.setdefault(s.camera, {}).setdefault(s.uid, []).extend(s.looks())
        views.setdefault(query.camera, {})[-1] = list(query.looks())
        centres: dict[str, Vector] = {}
        for camera, people in views.items():
            means = [np.mean(np.stack(v), axis=0) for v in people.values()]
            centres[camera] = (np.sum(np.stack(means), axis=0) / (len(means) + 1)).astype(np.float32)
        return centres

    def _relation(self, person: _Person, sighting: Sighting) -> tuple[bool, bool]:
        """``(allowed, returning)`` of matching ``sighting`` to ``person`` under the rules in time and place."""
        returning = True
        for other in person.sightings:
            overlap = min(other.last_t, sighting.last_t) - max(other.first_t, sighting.first_t)
            if overlap >= 0.0:
                if other.camera == sighting.camera:
                    return False, False  # two people seen at once on one camera
                returning = False  # overlapping views: the same person at the same moment
            elif not other.ended:
                returning = False  # a break in the same visit, not a return
        return True, returning

    def _new_person(self, t: float) -> int:
        if len(self._people) >= self.max_people:
            self._drop_oldest()
        uid = self._next_uid
        self._next_uid += 1
        self._people[uid] = _Person(uid, t)
        return uid

    def _drop_oldest(self) -> None:
        ended = [p for p in self._people.values() if all(s.ended for s in p.sightings)]
        if not ended:
            return
        oldest = min(ended, key=lambda p: max((s.last_t for s in p.sightings), default=p.first_seen_t))
        for s in oldest.sightings:
            self._sightings.pop((s.camera, s.identity), None)
        del self._people[oldest.uid]

    # ------------------------------------------------------------------------------------------------ queries

    def person_of(self, camera: str, identity: int) -> Person | None:
        with self._lock:
            sighting = self._sightings.get((camera, identity))
            if sighting is None or sighting.uid is None:
                return None
            return Person(sighting.uid, sighting.returning, self._people[sighting.uid].first_seen_t)

    def stats(self) -> dict[str, int]:
        """Counts only (safe for health): people, sightings, resolved, returning, merges, refused."""
        with self._lock:
            return {"people": len(self._people), "sightings": len(self._sightings), **self._counts}

    def clear(self) -> None:
        """The day boundary: forget every person, sighting and sample."""
        with self._lock:
            self._sightings.clear()
            self._people.clear()
            self._next_uid = 1
            self.generation += 1
            self._counts = dict.fromkeys(self._counts, 0)
