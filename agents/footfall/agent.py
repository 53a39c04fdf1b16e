"""The footfall agent: one per camera, running source -> detector -> tracker -> counter -> intervals.

Privacy by structure: the frame loop runs in :func:`run_pipeline`, on a worker thread, and the only
thing that leaves it is a list of closed interval records (plain counts and data quality). No frame,
crop or box is stored, logged or sent: nothing in this module has a path by which an image could reach
the outbox. The store day's observer (:class:`~agents.footfall.day.hooks.CameraObserver`) sees each frame
on the same thread, for re-identification when it is configured; what it gives back is counts (the
``unique`` and ``returning`` fields of the records), and its embeddings stay in memory
(``docs/privacy.md``).

The blocking parts (OpenCV decoding, onnxruntime) stay on that thread; the event loop only receives
records (through ``call_soon_threadsafe``) and writes them to the durable outbox on stream
``counts/<camera>``, one message per closed interval with a stable ``record_id`` (the same interval
always has the same id, so an upload repeated after a crash is recognisable as such). A file source that
ends finishes the agent after flushing the last, partial interval; a live source reconnects inside the
source and never ends on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from agents.core.supervisor import Agent
from agents.footfall.config import CameraConfig
from agents.footfall.counting import FootfallCounter, IntervalAggregator
from agents.footfall.day.hooks import CameraObserver
from agents.footfall.detectors import PersonDetector, build_detector
from agents.footfall.sources import FrameSource
from agents.footfall.tracker import ByteTracker, TrackerConfig
from agents.uplink.outbox import Outbox

Records = list[dict[str, Any]]


def run_pipeline(
    camera: CameraConfig,
    source: FrameSource,
    detector: PersonDetector,
    emit: Callable[[Records], None],
    stats: dict[str, float],
    observer: CameraObserver | None = None,
) -> None:
    """The frame loop (blocking; runs until the source ends or is closed). Only records leave it.

    With an ``observer`` (the store day) every frame is also shown to it after the counter's update, and the
    records of each closed interval carry the ``unique`` and ``returning`` figures it decided on this camera.
    """
    tracker = ByteTracker(config=TrackerConfig(max_lost=camera.max_lost_frames))
    counter: FootfallCounter | None = None
    aggregator = IntervalAggregator.for_config(camera.counting, interval_s=camera.interval_s)
    # Files carry media time; anchor them to the wall clock at start so intervals are real time.
    time_base = 0.0 if source.live else time.time()
    t = time_base

    def with_quality(records: list[Any]) -> Records:
        quality = source.stats.take_interval()
        if observer is None:
            return [{"camera": camera.name, **record.as_dict(), "quality": quality} for record in records]
        # The observer's figures go to the latest interval closed; an older one closed at the same time (time
        # jumped) gets zeros, so that summing over intervals counts each visitor once.
        fields = observer.interval_fields(camera.name)
        latest = max(record.interval_start for record in records)
        none = dict.fromkeys(fields, 0)
        return [
            {
                "camera": camera.name,
                **record.as_dict(),
                **(fields if record.interval_start == latest else none),
                "quality": quality,
            }
            for record in records
        ]

    try:
        for frame in source:
            if counter is None:
                height, width = frame.image.shape[:2]
                counter = FootfallCounter(camera.counting, frame_size=(width, height))
            t = time_base + frame.ts
            started = time.perf_counter()
            tracks = tracker.update(detector.detect(frame.image))
            update = counter.update(tracks, t)
            if observer is not None:
                observer.observe(camera.name, frame.image, tracks, counter.identities(), update, t)
            records = aggregator.add(update)
            stats["frames"] = stats.get("frames", 0) + 1
            stats["busy_s"] = stats.get("busy_s", 0.0) + time.perf_counter() - started
            if records:
                emit(with_quality(records))
    finally:
        if observer is not None:
            observer.camera_ended(camera.name, t)  # every identity of this counter has ended, even on a crash
    if counter is not None:
        aggregator.feed(counter.close(t))
    final = aggregator.flush()
    if final:
        emit(with_quality(final))


class FootfallAgent(Agent):
    """Runs :func:`run_pipeline` for one camera and uplinks its interval records."""

    def __init__(self, camera: CameraConfig, outbox: Outbox, observer: CameraObserver | None = None) -> None:
        super().__init__(f"footfall-{camera.name}")
        self.camera = camera
        self.outbox = outbox
        self.observer = observer
        self.stream = f"counts/{camera.name}"
        self._source: FrameSource | None = None
        self._stats: dict[str, float] = {}
        self._finished = asyncio.Event()

    def source_totals(self) -> tuple[float, int]:
        """Downtime (s) and frames skipped since this agent's current source was opened (for the store day)."""
        source = self._source
        return (source.stats.downtime_s, source.stats.frames_skipped) if source is not None else (0.0, 0)

    def diagnostics(self) -> dict[str, Any]:
        source = self._source
        return {
            "camera": self.camera.name,
            "source": source.stats.as_dict() if source else None,
            "frames_processed": int(self._stats.get("frames", 0)),
        }

    async def drain(self, timeout_s: float) -> None:
        """Stop the camera; the pipeline flushes its last (partial) interval into the outbox."""
        if self._source is not None:
            self._source.close()
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
        except TimeoutError:
            pass  # the supervisor logs agents that do not drain in time

    async def run(self) -> None:
        self._finished.clear()
        loop = asyncio.get_running_loop()
        detector = await asyncio.to_thread(build_detector, self.camera.detector)
        source = self._source = FrameSource(self.camera.source)
        queue: asyncio.Queue[Records | None] = asyncio.Queue()

        def emit(records: Records) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, records)

        failure: list[BaseException] = []

        def work() -> None:
            try:
                run_pipeline(self.camera, source, detector, emit, self._stats, self.observer)
            except Exception as exc:  # noqa: BLE001 - handed to the event loop below, which re-raises it
                failure.append(exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = threading.Thread(target=work, name=f"footfall-{self.camera.name}", daemon=True)
        worker.start()
        try:
            while (records := await queue.get()) is not None:
                await self.outbox.put_many([(self.stream, record) for record in records])
                self.health.count("intervals_sent", len(records))
        finally:
            source.close()
            await asyncio.to_thread(worker.join)
            self._finished.set()
        if failure:
            raise failure[0]
