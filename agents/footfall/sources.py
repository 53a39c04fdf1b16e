"""Camera sources: video files, USB cameras and network streams through OpenCV, as plain iterators.

A source yields :class:`Frame` objects (decoded BGR image, 0-based index, timestamp) at a target
sampling rate and keeps per-interval data-quality figures (frames read, delivered, skipped, downtime),
so counts can be reported together with how much of the interval was actually seen.

Kinds, from the ``url`` of :class:`SourceConfig`:

* a path (``.avi``, ``.mp4``, MPEG-1 ``.mpg`` ...): a **file**. It ends at end of file. Timestamps are
  media time (index / fps), so a file is processed as fast as possible and sampling is by media time.
  With ``realtime: true`` (the simulator's camera) frames are paced at the file's native rate, as if the
  file were a live camera; with ``loop: true`` it starts over at the end.
* ``usb:N``: a local camera (OpenCV device index N); ``rtsp://``, ``http(s)://``: a network stream. These
  are **live**: a failure to open or a failed read is not the end; the source reconnects with jittered,
  capped back-off until closed, and the time without frames is counted as downtime.

OpenCV calls block, so an agent runs the iterator on a worker thread; :meth:`FrameSource.close` may be
called from another thread and makes the iterator end promptly, even during a back-off wait.

Privacy: frames exist only inside the process; this module never writes or sends an image.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.core.backoff import Backoff
from agents.core.urls import redact_url

log = logging.getLogger(__name__)

SourceKind = Literal["file", "usb", "stream"]


class SourceError(RuntimeError):
    """A source cannot be used at all (missing or unreadable file, invalid URL)."""


class SourceConfig(BaseModel):
    """Where frames come from and how often."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str = Field(description="File path, usb:N, rtsp://..., http(s)://...")
    sample_fps: float | None = Field(None, gt=0, le=120, description="Target frames per second (None = all).")
    realtime: bool = Field(False, description="Pace a file at its native frame rate, as if live (simulator).")
    realtime_speed: float = Field(1.0, ge=0.1, le=100, description="With realtime: replay this many times faster.")
    loop: bool = Field(False, description="Restart a file at its end (simulator).")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    open_timeout_s: float = Field(10.0, gt=0, description="Network streams: give up an open attempt after this.")

    @field_validator("url")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        source_kind(value)
        return value


def source_kind(url: str) -> SourceKind:
    """Classify a source URL; raise ValueError for malformed ones."""
    if url.startswith("usb:"):
        if not url[4:].isdigit():
            raise ValueError(f"usb source must be usb:<device index>, got {url!r}")
        return "usb"
    if url.startswith(("rtsp://", "rtsps://", "http://", "https://")):
        return "stream"
    if "://" in url:
        scheme = url.partition("://")[0]
        raise ValueError(f"unsupported source scheme {scheme!r}; use a file path, usb:N, rtsp:// or http(s)://")
    if not url:
        raise ValueError("source url is empty")
    return "file"


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based index of the decoded frame in the source (files: position in the file)
    ts: float  # files: media time in seconds; live: UNIX time
    image: npt.NDArray[np.uint8]  # BGR, H x W x 3


@dataclass
class SourceStats:
    """Data quality, cumulative; :meth:`take_interval` returns and resets the per-interval part."""

    state: str = "idle"  # idle | open | reconnecting | ended | closed
    frames_read: int = 0
    frames_delivered: int = 0
    frames_skipped: int = 0  # decoded but not delivered because of sample_fps
    reconnects: int = 0
    downtime_s: float = 0.0
    last_error: str | None = None
    width: int | None = None
    height: int | None = None
    native_fps: float | None = None
    _interval: dict[str, float] = field(default_factory=dict, repr=False)

    def _add(self, key: str, amount: float = 1) -> None:
        self._interval[key] = self._interval.get(key, 0) + amount

    def take_interval(self) -> dict[str, float]:
        """Frames read/delivered/skipped and downtime since the last call."""
        taken = {"frames_read": 0.0, "frames_delivered": 0.0, "frames_skipped": 0.0, "downtime_s": 0.0}
        taken.update(self._interval)
        self._interval = {}
        return taken

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "frames_read": self.frames_read,
            "frames_delivered": self.frames_delivered,
            "frames_skipped": self.frames_skipped,
            "reconnects": self.reconnects,
            "downtime_s": round(self.downtime_s, 3),
            "last_error": self.last_error,
            "resolution": None if self.width is None else f"{self.width}x{self.height}",
            "native_fps": self.native_fps,
        }


class FrameSource:
    """Iterate frames from one source; see the module docstring."""

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.kind = source_kind(config.url)
        # Camera URLs often carry a password (rtsp://admin:secret@...): every message shows this form only.
        self.display_url = redact_url(config.url) if "://" in config.url else config.url
        self.stats = SourceStats()
        self._closed = threading.Event()
        self._capture: cv2.VideoCapture | None = None
        self._down_since: float | None = None
        self._backoff = Backoff(config.reconnect_min_s, max(config.reconnect_min_s, config.reconnect_max_s))

    @property
    def live(self) -> bool:
        return self.kind != "file"

    def close(self) -> None:
        """End iteration (thread-safe) and release the device."""
        self._closed.set()

    def _open(self) -> cv2.VideoCapture:
        url = self.config.url
        if self.kind == "file":
            path = Path(url)
            if not path.is_file():
                raise SourceError(f"video file not found: {path}")
            capture = cv2.VideoCapture(str(path))
            if not capture.isOpened():
                raise SourceError(f"cannot decode video file {path} (not a video, or a codec OpenCV lacks)")
        elif self.kind == "usb":
            capture = cv2.VideoCapture(int(url[4:]))
        else:
            timeout_ms = int(self.config.open_timeout_s * 1000)
            capture = cv2.VideoCapture(
                url,
                cv2.CAP_FFMPEG,
                [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
            )
        if not capture.isOpened():
            capture.release()
            raise OSError(f"cannot open {self.kind} source {self.display_url}")
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.stats.native_fps = round(fps, 3) if fps and fps > 0 else None
        self.stats.width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)) or None
        self.stats.height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) or None
        return capture

    def probe(self, frames: int = 10) -> dict[str, Any]:
        """Open the source once and read up to ``frames`` frames (blocking): resolution, native and measured
        frame rate. Raises :class:`SourceError` or ``OSError`` like iteration does; never reconnects."""
        capture = self._open()
        try:
            started = time.monotonic()
            read = 0
            for _ in range(frames):
                ok, _image = capture.read()
                if not ok:
                    break
                read += 1
            elapsed = time.monotonic() - started
        finally:
            capture.release()
        if read == 0:
            raise SourceError(f"{self.kind} source {self.display_url} opened but delivered no frame")
        return {
            "width": self.stats.width,
            "height": self.stats.height,
            "native_fps": self.stats.native_fps,
            "read_fps": round(read / elapsed, 1) if elapsed > 0 else None,
            "frames_read": read,
        }

    def __iter__(self) -> Iterator[Frame]:
        try:
            if self.live:
                yield from self._iterate_live()
            else:
                yield from self._iterate_file()
        finally:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
            self.stats.state = "closed" if self._closed.is_set() else "ended"

    def _due(self, ts: float, next_due: float) -> tuple[bool, float]:
        """Sampling by timestamp: deliver when ``ts`` reaches ``next_due``; return the next due time."""
        if self.config.sample_fps is None:
            return True, next_due
        if ts + 1e-9 < next_due:
            return False, next_due
        period = 1.0 / self.config.sample_fps
        # Keep the grid (no drift), but never schedule in the past after a stall.
        return True, max(next_due + period, ts + period / 2)

    def _iterate_file(self) -> Iterator[Frame]:
        capture = self._capture = self._open()
        self.stats.state = "open"
        fps = self.stats.native_fps or 25.0
        index, next_due, started = 0, 0.0, time.monotonic()
        loop_offset = 0
        while not self._closed.is_set():
            ok, image = capture.read()
            if not ok:
                if self.config.loop and index > loop_offset:
                    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                    loop_offset = index
                    continue
                return
            self.stats.frames_read += 1
            self.stats._add("frames_read")
            ts = index / fps
            index += 1
            deliver, next_due = self._due(ts, next_due)
            if not deliver:
                self.stats.frames_skipped += 1
                self.stats._add("frames_skipped")
                continue
            if self.config.realtime:
                # Replay as if live: wait until this frame's moment.
                delay = started + ts / self.config.realtime_speed - time.monotonic()
                if delay > 0 and self._closed.wait(delay):
                    return
            self.stats.frames_delivered += 1
            self.stats._add("frames_delivered")
            yield Frame(index - 1, ts, np.asarray(image, dtype=np.uint8))

    def _iterate_live(self) -> Iterator[Frame]:
        index, next_due = 0, 0.0
        self._down_since = time.monotonic()  # no frames yet: counts as downtime until the first one
        while not self._closed.is_set():
            if self._capture is None:
                try:
                    self._capture = self._open()
                except OSError as exc:
                    self._wait_before_retry(str(exc))
                    continue
                self.stats.state = "open"
                self._backoff.reset()
            ok, image = self._capture.read()
            if not ok:
                self._capture.release()
                self._capture = None
                if self._down_since is None:
                    self._down_since = time.monotonic()
                self._wait_before_retry(f"{self.kind} source {self.display_url} stopped delivering frames")
                continue
            if self._down_since is not None:
                self._account_downtime()
                self._down_since = None
            self.stats.frames_read += 1
            self.stats._add("frames_read")
            ts = time.time()
            deliver, next_due = self._due(ts, next_due or ts)
            if not deliver:
                self.stats.frames_skipped += 1
                self.stats._add("frames_skipped")
                continue
            self.stats.frames_delivered += 1
            self.stats._add("frames_delivered")
            yield Frame(index, ts, np.asarray(image, dtype=np.uint8))
            index += 1
        if self._down_since is not None:
            self._account_downtime()

    def _account_downtime(self) -> None:
        """Move the time since ``_down_since`` into the downtime counters (so they grow while down)."""
        assert self._down_since is not None
        now = time.monotonic()
        self.stats.downtime_s += now - self._down_since
        self.stats._add("downtime_s", now - self._down_since)
        self._down_since = now

    def _wait_before_retry(self, error: str) -> None:
        self.stats.state = "reconnecting"
        self.stats.reconnects += 1
        self.stats.last_error = error
        delay = self._backoff.next_delay()
        log.warning("%s; retrying in %.1fs", error, delay)
        self._closed.wait(delay)
        self._account_downtime()
