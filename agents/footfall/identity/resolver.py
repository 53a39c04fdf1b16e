""":class:`StoreIdentity`: each camera's counter identities resolved to the store's people of the day.

Called from every camera's worker thread (after ``FootfallCounter.update``)::

    store = StoreIdentity(IdentityConfig(type="omz", model=path))
    store.observe(camera, frame, tracks, counter.identities(), t)   # every frame
    store.ended(camera, visitor_id, t, crossed_out=...)              # the counter lost it for good, or it left
    for r in store.resolutions(): ...                                # (camera, identity, uid, new_person, returning)
    store.clear_day()                                                # at the store's day boundary

``observe`` picks the tracks worth a crop (:mod:`.sampling`), embeds their crops in batches and adds each
embedding to its ``(camera, identity)`` sighting; a sighting with ``samples_per_track`` samples is resolved to a
person of the :class:`~agents.footfall.identity.gallery.DayGallery` (the rules in time and place are there). An
identity that ends before it has enough samples is resolved with what it has. One that never had a whole-person
crop (a camera that only ever sees people enter or leave across its edge) is resolved on the embedding of its best
*lesser* crop (cut by the edge, or small: :func:`~agents.footfall.identity.sampling.lesser_boxes`), kept only while
it has no view; one with no crop at all becomes a person of its own (never lost from the count, only not
recognisable later). Samples keep coming after
resolution as further *views* (``max_views``, ``view_interval_s`` apart), so a long visit leaves its different
looks for the person's return.

Threads: the gallery has one lock; the embedder runs **outside** it, so cameras embed in parallel and never wait
for each other's model run. One ``onnxruntime`` session serves every camera (``run`` is thread-safe). Work begun
before :meth:`StoreIdentity.clear_day` is dropped when it comes back (the gallery's generation has moved).

Batches: a camera's crops queue until ``batch_size`` of them wait or the oldest has waited ``batch_delay_s`` of
frame time, then run together (a batch of 4-8 costs about 60 % of single runs per crop); an identity that ends
has its queued crops embedded before it is resolved.

Privacy: crops and embeddings live only in this object's memory; a crop only until its batch runs (at most
``batch_delay_s`` of frame time, or the camera's next frame after that), an embedding until the day is cleared.
:meth:`stats` returns counts only, and nothing here logs, writes or pickles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agents.footfall.identity.config import IdentityConfig
from agents.footfall.identity.embedder import EmbeddingArray, ReidEmbedder
from agents.footfall.identity.gallery import DayGallery, Person, Resolution, Sighting
from agents.footfall.identity.sampling import crop, lesser_boxes, select
from agents.footfall.types import Tracks

Embed = Callable[[list[npt.NDArray[np.uint8]]], EmbeddingArray]


@dataclass(frozen=True, slots=True)
class _Queued:
    """A crop waiting for the camera's next embedder batch: its identity and view (-1: a fallback look)."""

    identity: int
    view: int
    crop: npt.NDArray[np.uint8]
    t: float


FALLBACK_GROWTH = 1.25
"""A new fallback crop is taken when the box is this many times taller than the last one (so a person walking in
across the frame edge costs a handful of crops, not one per frame)."""


def _wants(sighting: Sighting, cfg: IdentityConfig, t: float) -> bool | None:
    """Whether ``sighting`` takes a sample at ``t``: ``False`` into its open view, ``True`` as a new view, ``None``
    not now (view full and the next one not due, or all views taken)."""
    sizes = sighting.view_sizes  # samples taken, embedded or still queued
    if sizes and sizes[-1] < cfg.samples_per_track:
        return False if t - sighting.last_sample_t >= cfg.sample_interval_s else None
    if len(sizes) >= cfg.max_views:
        return None
    return True if not sizes or t - sighting.view_start_t >= cfg.view_interval_s else None


class StoreIdentity:
    """The store's re-identification: sampling, embedding and the day gallery (module docstring).

    ``embedder`` replaces the ONNX model (tests pass a function of the crops); ``clock_time`` is kept for callers
    that want the gallery's idle expiry on their clock (default: the ``t`` passed to :meth:`observe`).
    """

    def __init__(
        self,
        config: IdentityConfig,
        clock_time: Callable[[], float] | None = None,
        *,
        embedder: Embed | None = None,
    ) -> None:
        self.config = config
        self._clock = clock_time
        if embedder is None:
            model = ReidEmbedder(config.model, config.type, threads=config.threads, batch_size=config.batch_size)
            self.embedder_name = model.name
            embedder = model.embed
        else:
            self.embedder_name = "custom"
        self._embed = embedder
        self.gallery = DayGallery(config.threshold(), max_people=config.max_people)
        self._pending: list[Resolution] = []
        self._pending_lock = threading.Lock()
        self._last_sweep: dict[str, float] = {}
        self._queue: dict[str, list[_Queued]] = {}
        self.embedded = 0
        self.embed_s = 0.0

    # --------------------------------------------------------------------------------------------- per frame

    def observe(
        self, camera: str, frame: npt.NDArray[np.uint8], tracks: Tracks, identities: Mapping[int, int], t: float
    ) -> None:
        """One frame of ``camera``: its confirmed ``tracks`` and the counter's track id -> identity mapping."""
        gallery = self.gallery
        cfg = self.config
        batch: list[_Queued] = []
        with gallery.lock:
            generation = gallery.generation
            for tid in tracks.ids.tolist():
                identity = identities.get(tid)
                if identity is not None and tid >= 0:
                    gallery.touch(camera, identity, t)

            def wants_sample(identity: int) -> bool:
                sighting = gallery.get(camera, identity)
                return sighting is not None and _wants(sighting, cfg, t) is not None

            frame_hw = (int(frame.shape[0]), int(frame.shape[1]))
            candidates = select(tracks, identities, frame_hw, cfg, wants_sample)
            queue = self._queue.setdefault(camera, [])
            for c in candidates:
                sighting = gallery.get(camera, c.identity)
                new_view = None if sighting is None else _wants(sighting, cfg, t)
                if sighting is not None and new_view is not None:
                    queue.append(_Queued(c.identity, sighting.reserve(t, new_view=new_view), crop(frame, c.box), t))
            for identity, box in self._fallbacks(camera, tracks, identities, {c.identity for c in candidates}):
                queue.append(_Queued(identity, -1, crop(frame, box), t))
            if queue and (len(queue) >= cfg.batch_size or t - queue[0].t >= cfg.batch_delay_s):
                batch, self._queue[camera] = queue, []
        if batch:
            self._embed_batch(camera, batch, generation)
        self._sweep(camera, t)

    def _embed_batch(self, camera: str, batch: list[_Queued], generation: int) -> None:
        """Embed queued crops (outside the lock) and hand each embedding to its sighting."""
        started = time.perf_counter()
        embeddings = self._embed([q.crop for q in batch])
        self.embed_s += time.perf_counter() - started
        self.embedded += len(batch)
        gallery = self.gallery
        with gallery.lock:
            if gallery.generation != generation:
                return  # the day ended while embedding
            for q, embedding in zip(batch, embeddings, strict=True):
                sighting = gallery.get(camera, q.identity)
                if sighting is None:
                    continue
                vector = np.asarray(embedding, np.float32)
                if q.view >= 0:
                    sighting.fill(q.view, vector)
                    if sighting.uid is None and sighting.first_view_samples >= self.config.samples_per_track:
                        self._resolve(sighting)
                elif not sighting.views:
                    sighting.fallback = vector

    def _flush(self, camera: str, identity: int | None = None) -> None:
        """Embed ``camera``'s queued crops now (all of them; only if ``identity`` has one queued, when given)."""
        with self.gallery.lock:
            queue = self._queue.get(camera, [])
            if not queue or (identity is not None and all(q.identity != identity for q in queue)):
                return
            batch, self._queue[camera], generation = queue, [], self.gallery.generation
        self._embed_batch(camera, batch, generation)

    def _fallbacks(
        self, camera: str, tracks: Tracks, identities: Mapping[int, int], chosen: set[int]
    ) -> list[tuple[int, tuple[int, int, int, int]]]:
        """Lesser crops for identities without a view yet, taken when the box has grown by a quarter since the last
        one (caller holds the gallery lock); a whole-person crop later replaces them all."""
        if len(tracks) == 0:
            return []
        ok = lesser_boxes(np.asarray(tracks.xyxy, np.float32), self.config)
        out: list[tuple[int, tuple[int, int, int, int]]] = []
        for good, tid, box in zip(ok.tolist(), tracks.ids.tolist(), tracks.xyxy.tolist(), strict=True):
            identity = identities.get(tid)
            if not good or identity is None or identity in chosen:
                continue
            sighting = self.gallery.get(camera, identity)
            if sighting is None or sighting.view_sizes or sighting.uid is not None:
                continue
            if box[3] - box[1] >= FALLBACK_GROWTH * sighting.fallback_h:
                sighting.fallback_h = box[3] - box[1]
                chosen.add(identity)
                x1, y1, x2, y2 = (int(round(v)) for v in box)
                out.append((identity, (x1, y1, x2, y2)))
        return out

    def ended(self, camera: str, identity: int, t: float, crossed_out: bool) -> None:
        """The counter lost ``identity`` for good, or it crossed out of the store: resolve it now if it was not
        (its crops still queued are embedded first)."""
        self._flush(camera, identity)
        with self.gallery.lock:
            sighting = self.gallery.end(camera, identity)
            if sighting is not None and sighting.uid is None:
                self._resolve(sighting)

    def _sweep(self, camera: str, t: float) -> None:
        """Sightings not observed for ``lost_after_s`` end (a safety net for callers that never call ended())."""
        now = self._clock() if self._clock is not None else t
        if now - self._last_sweep.get(camera, -np.inf) < 1.0:
            return
        self._last_sweep[camera] = now
        limit = self.config.lost_after_s
        with self.gallery.lock:
            for sighting in self.gallery.open_sightings(camera):
                if now - sighting.last_t > limit:
                    sighting.ended = True
                    if sighting.uid is None:
                        self._resolve(sighting)

    def _resolve(self, sighting: Sighting) -> None:
        resolution = self.gallery.resolve(sighting)
        with self._pending_lock:
            self._pending.append(resolution)

    # ------------------------------------------------------------------------------------------------ queries

    def person_of(self, camera: str, identity: int) -> Person | None:
        """The person ``(camera, identity)`` resolved to; ``None`` while unresolved (or never observed)."""
        return self.gallery.person_of(camera, identity)

    def resolutions(self) -> list[Resolution]:
        """The resolutions made since the last call (drained)."""
        with self._pending_lock:
            pending, self._pending = self._pending, []
        return pending

    def clear_day(self) -> None:
        """The day boundary: forget every person, sighting and sample (undrained resolutions are kept)."""
        with self.gallery.lock:
            self.gallery.clear()
            self._queue.clear()
            self._last_sweep.clear()

    def stats(self) -> dict[str, int]:
        """Counts only, safe for health: people, sightings, resolved, returning, merges, refused, embedded."""
        return {**self.gallery.stats(), "embedded": self.embedded}
