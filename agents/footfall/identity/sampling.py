"""Which confirmed tracks are worth a crop on this frame, and the crops.

A crop is embedded only when it shows one whole person, large enough to describe: the box is at least
``min_box_height_px`` tall, keeps ``edge_margin_px`` from every frame edge (a box cut by the edge is half a person
entering or leaving), and no other box covers more than ``max_overlap`` of it (a crop of two people is the classic
cause of a false merge). Coverage, not IoU: a small person in front of a large one barely changes the IoU but
ruins the large one's crop.

A few crops per identity, spaced in time: at most ``max_samples_per_track`` per identity, at least
``sample_interval_s`` apart, so the samples see different steps of the gait and the embedder's cost per person is
bounded whatever the length of the visit. Pure code on arrays; :class:`~agents.footfall.identity.resolver.StoreIdentity`
keeps the per-identity counts and times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from agents.footfall.identity.config import IdentityConfig
from agents.footfall.types import FloatArray, Tracks


@dataclass(frozen=True, slots=True)
class Candidate:
    """A track to crop on this frame: its counter identity, tracker id and box (pixels, clipped, integers)."""

    identity: int
    track_id: int
    box: tuple[int, int, int, int]


def coverage(xyxy: FloatArray) -> FloatArray:
    """For each of ``(N, 4)`` boxes, the largest share of its area covered by any one other box."""
    n = xyxy.shape[0]
    if n < 2:
        return np.zeros((n,), np.float32)
    tl = np.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    br = np.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    np.fill_diagonal(inter, 0.0)
    area = np.prod(np.clip(xyxy[:, 2:] - xyxy[:, :2], 0, None), axis=1)
    share: FloatArray = (inter.max(axis=1) / np.maximum(area, 1e-6)).astype(np.float32)
    return share


def good_boxes(xyxy: FloatArray, frame_hw: tuple[int, int], config: IdentityConfig) -> npt.NDArray[np.bool_]:
    """Which boxes are big enough, inside the margin and not heavily covered (module docstring)."""
    if xyxy.shape[0] == 0:
        return np.zeros((0,), bool)
    h, w = frame_hw
    m = config.edge_margin_px
    x1, y1, x2, y2 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    ok = (y2 - y1 >= config.min_box_height_px) & (x2 - x1 >= 4)
    ok &= (x1 >= m) & (y1 >= m) & (x2 <= w - m) & (y2 <= h - m)
    ok &= coverage(xyxy) <= config.max_overlap
    return ok


def lesser_boxes(xyxy: FloatArray, config: IdentityConfig) -> npt.NDArray[np.bool_]:
    """Boxes good enough for a *fallback* look of an identity that never had a good one: not heavily covered and
    at least half ``min_box_height_px`` tall, but possibly cut by the frame edge (e.g. a camera whose view only
    ever shows people entering or leaving across its edge)."""
    if xyxy.shape[0] == 0:
        return np.zeros((0,), bool)
    ok = (xyxy[:, 3] - xyxy[:, 1] >= 0.5 * config.min_box_height_px) & (xyxy[:, 2] - xyxy[:, 0] >= 4)
    ok &= coverage(xyxy) <= config.max_overlap
    return ok


def select(
    tracks: Tracks,
    identities: Mapping[int, int],
    frame_hw: tuple[int, int],
    config: IdentityConfig,
    wants_sample: Callable[[int], bool],
) -> list[Candidate]:
    """The tracks to crop now: confirmed (id >= 0, known to the counter), good boxes, and ``wants_sample(identity)``.

    Coverage is computed against every reported box, sampled or not. One candidate per identity per frame.
    """
    if len(tracks) == 0:
        return []
    ok = good_boxes(np.asarray(tracks.xyxy, np.float32), frame_hw, config)
    chosen: list[Candidate] = []
    seen: set[int] = set()
    for good, tid, box in zip(ok.tolist(), tracks.ids.tolist(), tracks.xyxy.tolist(), strict=True):
        if not good or tid < 0:
            continue
        identity = identities.get(tid)
        if identity is None or identity in seen or not wants_sample(identity):
            continue
        seen.add(identity)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        chosen.append(Candidate(identity, tid, (x1, y1, x2, y2)))
    return chosen


def crop(frame: npt.NDArray[np.uint8], box: tuple[int, int, int, int]) -> npt.NDArray[np.uint8]:
    """A copy of ``frame`` inside ``box`` (clipped to the frame); the frame buffer may be reused afterwards."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    x1, y1 = max(0, min(x1, w - 1)), max(0, min(y1, h - 1))
    x2, y2 = max(x1 + 1, min(x2, w)), max(y1 + 1, min(y2, h))
    return np.ascontiguousarray(frame[y1:y2, x1:x2])
