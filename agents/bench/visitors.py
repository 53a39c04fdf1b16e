"""``storeedge bench visitors``: distinct people of one video, with appearance re-identification and without.

One pass over the video (optionally sampled at ``--sample-fps``), each frame (or each vertical strip of it, with
``--views``: the strips are separate cameras of one store sharing one
:class:`~agents.footfall.identity.StoreIdentity`, on one clock) going through the camera pipeline
detect -> track -> count -> ``StoreIdentity.observe``; an identity the counter forgets is ``ended``, and one that
makes an exit visit (``b_to_a``) ends as crossed out.

* ``unique_visitors``: distinct store people among the counted identities. Without ``--line`` every identity
  seen is counted (distinct people seen); with it, the identities that made a visit across the line (distinct
  people who crossed). ``returning``: counted identities resolved as a return (their person's earlier
  sightings had all ended). ``visits``: the counter's de-duplicated visits per direction, summed over views
  (``null`` without a line); re-identification does not change them.
* ``baseline``: the same run without re-identification: every counter identity is its own person (today's
  behaviour), so its ``unique_visitors`` is the number of counted identities and ``returning`` is 0.
* ``fps``: ``end_to_end`` is frames (of the video, all views) per second of the whole loop: decoding, detection,
  tracking, counting and re-identification; ``without_reid`` the same with the time spent in ``StoreIdentity``
  taken out (measured in the same run, so both see the same machine load); ``reid_share`` =
  ``1 - end_to_end / without_reid``, the share of frame rate re-identification costs.

**False merges and false splits** (``--gt`` MOT ground truth, ``--persons`` its track ids grouped into people,
``{"clusters": [[11, 3], [12, 4], ...]}`` as ``pets09_s2l1/person_clusters.json``; with ``--gt`` alone every
ground-truth track is a person of its own):

1. Per frame, our confirmed tracks are matched one-to-one to the ground-truth boxes of that frame (Hungarian on
   IoU, pairs with IoU >= 0.5; MOT frame N = decoded frame N-1; view strips shifted back to full-frame pixels).
2. Each counted ``(camera, identity)`` takes the ground-truth person it matched in the most frames, if it matched
   in at least :data:`MIN_MATCHED_FRAMES` frames; identities that never match (false detections) are left out.
   A tracker id switch inside one identity is the tracker's error and is not scored here: only whole identities
   are, which is what re-identification joins or keeps apart.
3. A store person whose identities carry **k > 1** ground-truth persons counts **k - 1 false merges**; a
   ground-truth person spread over **m > 1** store persons counts **m - 1 false splits**. The baseline is scored
   the same way with each identity its own store person.

Both are ``null`` without ``--gt``.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from agents.footfall.counting import CounterConfig, FootfallCounter, LineConfig
from agents.footfall.detectors import PersonDetector, box_iou, build_detector
from agents.footfall.identity import IdentityConfig, StoreIdentity
from agents.footfall.sources import FrameSource, SourceConfig
from agents.footfall.tracker import ByteTracker, TrackerConfig

MIN_MATCHED_FRAMES = 3
"""An identity needs this many frames matched to ground truth to be given a ground-truth person."""

MATCH_IOU = 0.5

BASELINE_NAME = "no re-identification: every counter identity is its own person"

Key = tuple[str, int]


@dataclass(frozen=True)
class VisitorsBenchOptions:
    video: Path
    reid_model: Path
    reid_type: str = "auto"
    model: Path | None = None
    detector_type: str = "auto"
    line: tuple[float, float, float, float] | None = None
    gt: Path | None = None
    persons: Path | None = None
    views: tuple[tuple[int, int], ...] | None = None
    sample_fps: float | None = None
    threads: int = 2
    reid_threads: int = 2
    match_threshold: float | None = None
    hysteresis_px: float = 8.0
    visit_window_s: float = 600.0


def parse_views(text: str) -> tuple[tuple[int, int], ...]:
    """``"0-479,288-767"`` -> ``((0, 479), (288, 767))``: inclusive pixel columns of each view."""
    views = []
    for part in text.split(","):
        try:
            a, b = (int(v) for v in part.strip().split("-"))
        except ValueError:
            raise ValueError(f"--views: expected X0-X1[,X0-X1...], got {text!r}") from None
        if a < 0 or b <= a:
            raise ValueError(f"--views: {part!r} must be X0-X1 with 0 <= X0 < X1")
        views.append((a, b))
    return tuple(views)


def reid_type_for(model: Path, requested: str) -> str:
    """``auto`` picks ``osnet`` when the file name says so, else ``omz``."""
    if requested != "auto":
        return requested
    return "osnet" if "osnet" in model.name.lower() else "omz"


def read_persons(path: Path) -> dict[int, int]:
    """Ground-truth track id -> person index from a ``{"clusters": [[id, ...], ...]}`` file."""
    data = json.loads(path.read_text(encoding="utf-8"))
    clusters = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(clusters, list) or not all(isinstance(c, list) for c in clusters):
        raise ValueError(f"{path}: expected an object with 'clusters': [[gt id, ...], ...]")
    persons: dict[int, int] = {}
    for index, cluster in enumerate(clusters):
        for gt_id in cluster:
            if int(gt_id) in persons:
                raise ValueError(f"{path}: ground-truth id {gt_id} is in two clusters")
            persons[int(gt_id)] = index
    return persons


class _Camera:
    """One view: its column range, detector, tracker and counter, and what the scoring needs of it."""

    def __init__(self, name: str, x0: int, x1: int | None, detector: PersonDetector, options: VisitorsBenchOptions):
        self.name, self.x0, self.x1 = name, x0, x1
        self.detector = detector
        self.tracker = ByteTracker(config=TrackerConfig())
        lines = []
        if options.line is not None:
            lx1, ly1, lx2, ly2 = options.line
            lines.append(
                LineConfig(
                    name="line",
                    p1=(lx1 - x0, ly1),
                    p2=(lx2 - x0, ly2),
                    hysteresis_px=options.hysteresis_px,
                    visit_window_s=options.visit_window_s,
                )
            )
        self.counter = FootfallCounter(CounterConfig(lines=lines))
        self.alive: set[int] = set()
        self.seen: set[int] = set()
        self.crossed: set[int] = set()
        # per decoded frame index: (identity per track, boxes in full-frame pixels)
        self.tracks: dict[int, tuple[list[int], np.ndarray]] = {}

    def image(self, frame: np.ndarray) -> np.ndarray:
        if self.x1 is None:
            return frame
        return np.ascontiguousarray(frame[:, self.x0 : self.x1 + 1])


def run_visitors_bench(options: VisitorsBenchOptions, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark (module docstring); ``progress`` gets a line now and then."""

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    from agents.bench.footfall import FootfallBenchOptions, bench_model

    if options.persons is not None and options.gt is None:
        raise ValueError("--persons needs --gt (the ground truth whose track ids it groups)")
    persons = read_persons(options.persons) if options.persons is not None else None
    model, detector_type = bench_model(
        FootfallBenchOptions(line=(0, 0, 1, 1), model=options.model, detector_type=options.detector_type)
    )
    reid_type = reid_type_for(options.reid_model, options.reid_type)
    identity = StoreIdentity(
        IdentityConfig.model_validate(
            {
                "type": reid_type,
                "model": options.reid_model,
                "threads": options.reid_threads,
                "match_threshold": options.match_threshold,
            }
        )
    )
    source = FrameSource(SourceConfig(url=str(options.video), sample_fps=options.sample_fps))
    detector_config = {"type": detector_type, "model": str(model), "threads": options.threads}
    views: list[tuple[int, int | None]] = list(options.views) if options.views else [(0, None)]
    cameras = [
        _Camera(f"view{i}" if options.views else "camera", x0, x1, build_detector(detector_config), options)
        for i, (x0, x1) in enumerate(views)
    ]
    say(f"{options.video}: {len(cameras)} camera(s), {cameras[0].detector.name}, re-id {identity.embedder_name}")
    frames = 0
    reid_s = 0.0
    t = 0.0
    started = time.perf_counter()
    for frame in source:
        if frames == 0 and options.views:
            width = frame.image.shape[1]
            if any(x1 is not None and x1 >= width for _x0, x1 in views):
                raise ValueError(f"--views: a view reaches past the frame's width ({width} px)")
        t = frame.ts
        for cam in cameras:
            image = cam.image(frame.image)
            tracks = cam.tracker.update(cam.detector.detect(image))
            update = cam.counter.update(tracks, t)
            identities = cam.counter.identities()
            r0 = time.perf_counter()
            identity.observe(cam.name, image, tracks, identities, t)
            alive = set(identities.values())
            for vid in cam.alive - alive:
                identity.ended(cam.name, vid, t, crossed_out=False)
            for crossing in update.crossings:
                if crossing.new_visit and crossing.direction == "b_to_a":
                    identity.ended(cam.name, crossing.visitor_id, t, crossed_out=True)
            reid_s += time.perf_counter() - r0
            cam.alive = alive
            cam.seen |= {identities[tid] for tid in tracks.ids.tolist() if tid in identities}
            cam.crossed |= {c.visitor_id for c in update.crossings if c.new_visit}
            xyxy = np.asarray(tracks.xyxy, np.float32).copy()
            xyxy[:, [0, 2]] += cam.x0
            cam.tracks[frame.index] = ([identities.get(tid, -1) for tid in tracks.ids.tolist()], xyxy)
        frames += 1
        if frames % 200 == 0:
            say(f"{frames} frames; {identity.stats()['people']} people so far")
    r0 = time.perf_counter()
    for cam in cameras:
        cam.counter.close(t)
        for vid in cam.alive:
            identity.ended(cam.name, vid, t, crossed_out=False)
    reid_s += time.perf_counter() - r0
    total_s = time.perf_counter() - started
    identity.resolutions()

    counted: list[Key] = [
        (cam.name, vid) for cam in cameras for vid in sorted(cam.crossed if options.line else cam.seen)
    ]
    ours: dict[Key, int] = {}
    returning = 0
    for key in counted:
        person = identity.person_of(*key)
        assert person is not None, f"{key} was never resolved"
        ours[key] = person.uid
        returning += int(person.returning)
    baseline_people = {key: index for index, key in enumerate(counted)}
    merges = splits = base_merges = base_splits = None
    ground_truth: dict[str, Any] | None = None
    if options.gt is not None:
        say("scoring against the ground truth")
        gt_person = _gt_persons(options.gt, cameras, persons)
        gt_person = {key: p for key, p in gt_person.items() if key in ours}
        merges, splits = _merges_splits(gt_person, ours)
        base_merges, base_splits = _merges_splits(gt_person, baseline_people)
        ground_truth = {
            "persons": len(set(persons.values())) if persons is not None else None,
            "persons_matched": len(set(gt_person.values())),
        }
    visits: dict[str, int | None] = {"a_to_b": None, "b_to_a": None}
    if options.line is not None:
        totals = [cam.counter.totals()["line"] for cam in cameras]
        visits = {"a_to_b": sum(x.visits_a_to_b for x in totals), "b_to_a": sum(x.visits_b_to_a for x in totals)}
    end_to_end = frames / total_s if total_s > 0 else None
    without = frames / (total_s - reid_s) if total_s > reid_s else None
    stats = identity.stats()
    return {
        "benchmark": "visitors",
        "video": str(options.video),
        "detector": cameras[0].detector.name,
        "reid": {
            "model": identity.embedder_name,
            "threshold": identity.config.threshold(),
            "crops_embedded": stats["embedded"],
            "ms_per_crop": round(1000 * identity.embed_s / stats["embedded"], 2) if stats["embedded"] else None,
            "people": stats["people"],
            "refused_matches": stats["refused"],
        },
        "frames": frames,
        "sample_fps": options.sample_fps,
        "views": [list(v) for v in options.views] if options.views else None,
        "line": list(options.line) if options.line else None,
        "unique_visitors": len(set(ours.values())),
        "visits": visits,
        "returning": returning,
        "false_merges": merges,
        "false_splits": splits,
        "fps": {
            "end_to_end": round(end_to_end, 2) if end_to_end else None,
            "without_reid": round(without, 2) if without else None,
            "reid_share": round(1 - end_to_end / without, 3) if end_to_end and without else None,
        },
        "ground_truth": ground_truth,
        "baseline": {
            "name": BASELINE_NAME,
            "unique_visitors": len(counted),
            "visits": visits,
            "returning": 0,
            "false_merges": base_merges,
            "false_splits": base_splits,
            "fps": {"end_to_end": round(without, 2) if without else None},
        },
    }


def _gt_persons(gt_path: Path, cameras: list[_Camera], persons: dict[int, int] | None) -> dict[Key, int]:
    """Each ``(camera, identity)``'s ground-truth person (module docstring, steps 1 and 2)."""
    from agents.footfall.mot import read_mot_ground_truth, to_decoded_index

    gt = {to_decoded_index(frame): boxes for frame, boxes in read_mot_ground_truth(gt_path).items()}
    votes: dict[Key, Counter[int]] = defaultdict(Counter)
    for cam in cameras:
        for index, (vids, xyxy) in cam.tracks.items():
            truth = gt.get(index)
            if truth is None or not vids:
                continue
            iou = box_iou(xyxy, truth.xyxy)
            rows, cols = linear_sum_assignment(-iou)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                if iou[r, c] >= MATCH_IOU and vids[r] >= 0:
                    gt_id = int(truth.ids[c])
                    person = persons.get(gt_id, -gt_id) if persons is not None else gt_id
                    votes[(cam.name, vids[r])][person] += 1
    out: dict[Key, int] = {}
    for key, counter in votes.items():
        person, n = counter.most_common(1)[0]
        if n >= MIN_MATCHED_FRAMES:
            out[key] = person
    return out


def _merges_splits(gt_person: dict[Key, int], store_person: dict[Key, int]) -> tuple[int, int]:
    """``(false merges, false splits)`` (module docstring, step 3)."""
    by_store: dict[int, set[int]] = defaultdict(set)
    by_gt: dict[int, set[int]] = defaultdict(set)
    for key, gt in gt_person.items():
        store = store_person[key]
        by_store[store].add(gt)
        by_gt[gt].add(store)
    merges = sum(len(g) - 1 for g in by_store.values())
    splits = sum(len(s) - 1 for s in by_gt.values())
    return merges, splits
