"""``storeedge bench footfall``: our detect -> track -> count pipeline against the peer baseline.

One run over one video (or a MOT detection file instead of the detector), detected with ``--model`` or, by
default, the YOLOX-Nano model shipped with the package:

1. **End to end**: decode every frame, detect, track, count, timed as a whole (``fps.end_to_end``); the
   ``detect()`` calls are also timed on their own (``fps.detector_only``, pre/post-processing included).
   Detections are cached.
2. **Baseline on identical detections**: the cached detections go through Roboflow's ``trackers``
   ByteTrackTracker and supervision's ``LineZone`` (bottom-centre anchor); see
   :mod:`agents.footfall.baseline`. Its end-to-end figure is decode+detect time plus its own tracking time.
3. **Tracker speed**: tracker + counter alone over the cached detections, repeated for at least
   ``min_seconds`` (``fps.tracker``), for us and for the baseline.
4. **Scores** with ``--gt``: MOTA, IDF1 and ID switches (py-motmetrics; MOT15 rule: ground-truth rows
   with flag 0 dropped, predictions kept; MOT frame N = decoded frame N-1).

Counts: ``counts`` are events (crossings), ``visits`` are de-duplicated visitors per direction (for the
baseline: distinct tracker ids that crossed, which is what its users can report).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.footfall.counting import CounterConfig, FootfallCounter, LineConfig
from agents.footfall.detectors import SHIPPED_YOLOX_MODEL, build_detector
from agents.footfall.mot import read_mot_detections, read_mot_ground_truth, score_tracks
from agents.footfall.sources import FrameSource, SourceConfig
from agents.footfall.tracker import ByteTracker, TrackerConfig
from agents.footfall.types import Detections, Tracks


@dataclass(frozen=True)
class FootfallBenchOptions:
    line: tuple[float, float, float, float]
    video: Path | None = None
    model: Path | None = None
    detector_type: str = "auto"
    dets: Path | None = None
    gt: Path | None = None
    fps: float | None = None  # frame rate for timestamps when there is no video
    score_threshold: float | None = None
    threads: int = 2
    hysteresis_px: float = 8.0
    visit_window_s: float = 600.0
    min_seconds: float = 1.0


def detector_type_for(model: Path, requested: str) -> str:
    """``auto`` picks the detector type from the model file name (yolox, ssd or yolov8)."""
    if requested != "auto":
        return requested
    name = model.name.lower()
    if "ssd" in name:
        return "ssd"
    if "yolov8" in name or "yolo11" in name or "yolov5" in name:
        return "yolov8"
    return "yolox"


class _OurPipeline:
    """Tracker + counter with the benchmark's line."""

    def __init__(self, options: FootfallBenchOptions) -> None:
        x1, y1, x2, y2 = options.line
        self.tracker = ByteTracker(config=TrackerConfig())
        self.counter = FootfallCounter(
            CounterConfig(
                lines=[
                    LineConfig(
                        name="line",
                        p1=(x1, y1),
                        p2=(x2, y2),
                        hysteresis_px=options.hysteresis_px,
                        visit_window_s=options.visit_window_s,
                    )
                ]
            )
        )

    def step(self, detections: Detections, t: float) -> Tracks:
        tracks = self.tracker.update(detections)
        self.counter.update(tracks, t)
        return tracks

    def results(self) -> tuple[dict[str, int], dict[str, int]]:
        totals = self.counter.totals()["line"]
        return (
            {"a_to_b": totals.events_a_to_b, "b_to_a": totals.events_b_to_a},
            {"a_to_b": totals.visits_a_to_b, "b_to_a": totals.visits_b_to_a},
        )


def _tracker_fps(make_step: Any, frames: list[Detections], fps: float, min_seconds: float) -> float:
    """Frames/s of a fresh tracker+counter over cached detections, repeated for ``min_seconds``."""
    done, started = 0, time.perf_counter()
    while True:
        step = make_step()
        for index, detections in enumerate(frames):
            step(detections, index / fps)
        done += len(frames)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed


def bench_model(options: FootfallBenchOptions) -> tuple[Path, str]:
    """The model file and detector type to run: ``--model``, else the shipped YOLOX-Nano (for yolox only)."""
    if options.model is not None:
        return options.model, detector_type_for(options.model, options.detector_type)
    if options.detector_type not in ("auto", "yolox"):
        raise ValueError(f"--detector {options.detector_type} needs --model (the shipped model is YOLOX-Nano)")
    return SHIPPED_YOLOX_MODEL, "yolox"


def run_footfall_bench(
    options: FootfallBenchOptions, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Run the benchmark; ``progress`` gets a line now and then (a long video takes a while on a Pi)."""

    def say(message: str) -> None:
        if progress is not None:
            progress(message)

    if options.video is None and options.dets is None:
        raise ValueError("give --video (detected with --model, default the shipped YOLOX-Nano) or --dets")
    x1, y1, x2, y2 = options.line
    ours = _OurPipeline(options)
    our_tracks: dict[int, Tracks] = {}
    cached: list[Detections] = []
    fps = options.fps or 10.0
    decode_detect_s = detect_s = end_to_end_s = 0.0
    detector_name = "mot-detections"

    if options.dets is not None:
        by_mot_frame = read_mot_detections(options.dets, min_score=options.score_threshold)
        frame_count = max(by_mot_frame, default=0)
        if options.video is not None:
            probe = FrameSource(SourceConfig(url=str(options.video)))
            frame_count = max(frame_count, sum(1 for _ in probe))
            fps = options.fps or probe.stats.native_fps or fps
        cached = [by_mot_frame.get(index + 1, Detections.empty()) for index in range(frame_count)]
        started = time.perf_counter()
        for index, detections in enumerate(cached):
            our_tracks[index + 1] = ours.step(detections, index / fps)
        end_to_end_s = time.perf_counter() - started
    else:
        assert options.video is not None
        model, detector_type = bench_model(options)
        config: dict[str, Any] = {
            "type": detector_type,
            "model": str(model),
            "threads": options.threads,
        }
        if options.score_threshold is not None:
            config["score_threshold"] = options.score_threshold
        detector = build_detector(config)
        detector_name = detector.name
        say(f"detecting people in {options.video} with {detector_name}")
        source = FrameSource(SourceConfig(url=str(options.video)))
        started = time.perf_counter()
        frames = iter(source)
        while True:
            frame = next(frames, None)
            if frame is None:
                break
            t0 = time.perf_counter()
            detections = detector.detect(frame.image)
            detect_s += time.perf_counter() - t0
            cached.append(detections)
            fps = options.fps or source.stats.native_fps or fps
            our_tracks[frame.index + 1] = ours.step(detections, frame.index / fps)
            if len(cached) % 250 == 0:
                say(f"{len(cached)} frames decoded, detected, tracked and counted")
        end_to_end_s = time.perf_counter() - started
        # Decode + detect share of the run, without our tracking and counting, for the baseline's figure.
        track_only_s = _replay_seconds(lambda: _OurPipeline(options).step, cached, fps)
        decode_detect_s = max(end_to_end_s - track_only_s, detect_s)

    n = len(cached)
    counts, visits = ours.results()
    say(f"{n} frames done; measuring tracker speed")
    our_tracker_fps = _tracker_fps(lambda: _OurPipeline(options).step, cached, fps, options.min_seconds)

    ours_scores: dict[str, Any] = {"mota": None, "idf1": None, "id_switches": None}
    gt = read_mot_ground_truth(options.gt) if options.gt is not None else None
    if gt is not None:
        _score_into(ours_scores, gt, our_tracks)

    has_detector = options.dets is None
    say("running the baseline on the same detections")
    baseline = _run_baseline(options, cached, fps, gt, decode_detect_s, detect_s if has_detector else None)
    return {
        "benchmark": "footfall",
        "video": None if options.video is None else str(options.video),
        "detector": detector_name,
        "frames": n,
        "line": {"p1": [x1, y1], "p2": [x2, y2]},
        "counts": counts,
        "visits": visits,
        **ours_scores,
        "fps": {
            "end_to_end": round(n / end_to_end_s, 2) if has_detector and end_to_end_s else None,
            "detector_only": round(n / detect_s, 2) if has_detector and detect_s else None,
            "tracker": round(our_tracker_fps, 1),
        },
        "baseline": baseline,
    }


BASELINE_NAME = "trackers.ByteTrackTracker + supervision.LineZone(BOTTOM_CENTER)"


def _score_into(target: dict[str, Any], gt: Any, tracks: dict[int, Tracks]) -> None:
    scores = score_tracks(gt, tracks)
    target.update(mota=round(scores.mota, 2), idf1=round(scores.idf1, 2), id_switches=scores.id_switches)


def _run_baseline(
    options: FootfallBenchOptions,
    cached: list[Detections],
    fps: float,
    gt: Any,
    decode_detect_s: float,
    detect_s: float | None,
) -> dict[str, Any]:
    """The peer pipeline on our cached detections; ``skipped`` with the reason when its packages are absent
    (they are the ``bench`` extra: a plain install still counts, it only has nothing to compare with)."""
    try:
        from agents.footfall.baseline import SupervisionBaseline

        x1, y1, x2, y2 = options.line
        baseline = SupervisionBaseline((x1, y1), (x2, y2), frame_rate=fps)
    except ImportError as exc:
        reason = f"{exc.name or exc} is not installed: pip install 'storeedge[bench]'"
        return {"name": BASELINE_NAME, "skipped": reason}
    n = len(cached)
    baseline_tracks: dict[int, Tracks] = {}
    started = time.perf_counter()
    for index, detections in enumerate(cached):
        baseline_tracks[index + 1] = baseline.update(detections)
    baseline_track_s = time.perf_counter() - started

    def baseline_step() -> Any:
        peer = SupervisionBaseline((x1, y1), (x2, y2), frame_rate=fps)
        return lambda detections, _t: peer.update(detections)

    baseline_tracker_fps = _tracker_fps(baseline_step, cached, fps, options.min_seconds)
    scores: dict[str, Any] = {"mota": None, "idf1": None, "id_switches": None}
    if gt is not None:
        _score_into(scores, gt, baseline_tracks)
    return {
        "name": BASELINE_NAME,
        "counts": dict(baseline.events),
        "visits": baseline.visits,
        **scores,
        "fps": {
            "end_to_end": round(n / (decode_detect_s + baseline_track_s), 2) if detect_s is not None else None,
            "detector_only": round(n / detect_s, 2) if detect_s else None,
            "tracker": round(baseline_tracker_fps, 1),
        },
    }


def _replay_seconds(make_step: Any, frames: list[Detections], fps: float) -> float:
    step = make_step()
    started = time.perf_counter()
    for index, detections in enumerate(frames):
        step(detections, index / fps)
    return time.perf_counter() - started
