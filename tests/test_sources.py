"""Camera sources (agents/footfall/sources.py): files at a sampling rate, clear errors for bad input,
live sources that keep retrying with their state visible, and the simulator's real-time replay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from agents.footfall.sources import FrameSource, SourceConfig, SourceError, source_kind


def vtest(shared_data: Path) -> str:
    return str(shared_data / "footage" / "pets09_s2l1" / "vtest.avi")


def test_file_source_reads_every_frame_with_media_timestamps(shared_data: Path) -> None:
    source = FrameSource(SourceConfig(url=vtest(shared_data)))
    frames = list(source)
    assert len(frames) == 795
    assert [f.index for f in frames[:3]] == [0, 1, 2]
    assert frames[10].ts == pytest.approx(1.0)  # 10 fps container
    assert frames[0].image.shape == (576, 768, 3) and frames[0].image.dtype == np.uint8
    assert source.stats.state == "ended"
    assert source.stats.as_dict()["resolution"] == "768x576"


def test_sampling_rate_halves_a_10_fps_file(shared_data: Path) -> None:
    source = FrameSource(SourceConfig(url=vtest(shared_data), sample_fps=5))
    indices = [f.index for f in source]
    assert indices[:4] == [0, 2, 4, 6]
    assert len(indices) == 398
    quality = source.stats.take_interval()
    assert quality["frames_read"] == 795 and quality["frames_delivered"] == 398 and quality["frames_skipped"] == 397
    assert source.stats.take_interval()["frames_read"] == 0  # the interval was reset


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="video file not found"):
        list(FrameSource(SourceConfig(url=str(tmp_path / "nope.avi"))))


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot decode video file"):
        list(FrameSource(SourceConfig(url=str(bad))))


def test_mpeg1_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "clip.mpg"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"PIM1"), 25, (320, 240))
    for i in range(12):
        writer.write(np.full((240, 320, 3), i * 10, np.uint8))
    writer.release()
    frames = list(FrameSource(SourceConfig(url=str(path))))
    assert len(frames) == 12


def test_source_kinds_and_invalid_urls() -> None:
    assert source_kind("usb:0") == "usb"
    assert source_kind("rtsp://cam/stream") == "stream"
    assert source_kind("/videos/door.mp4") == "file"
    for bad in ("usb:front", "ftp://cam/x", ""):
        with pytest.raises(ValidationError, match="url"):
            SourceConfig(url=bad)


def test_dead_live_source_keeps_retrying_until_closed() -> None:
    # An RTSP URL on a closed loopback port: every open fails at once.
    url = "rtsp://admin:s3cret@127.0.0.1:9/none"
    source = FrameSource(SourceConfig(url=url, reconnect_min_s=0.05, reconnect_max_s=0.1))
    received: list[int] = []
    worker = threading.Thread(target=lambda: received.extend(f.index for f in source), name="test-live-source")
    worker.start()
    deadline = time.monotonic() + 10
    while source.stats.reconnects < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert source.stats.state == "reconnecting"
    assert "cannot open stream source rtsp://admin:***@127.0.0.1:9/none" in (source.stats.last_error or "")
    assert "s3cret" not in (source.stats.last_error or "")  # health and logs carry this text
    assert source.stats.downtime_s > 0
    source.close()
    worker.join(10)
    assert not worker.is_alive()
    assert received == []
    assert source.stats.state == "closed"


def test_realtime_replay_paces_frames_at_native_rate(shared_data: Path) -> None:
    source = FrameSource(SourceConfig(url=vtest(shared_data), realtime=True))
    started = time.monotonic()
    frames = []
    for frame in source:
        frames.append(frame)
        if len(frames) == 6:
            source.close()
    elapsed = time.monotonic() - started
    assert len(frames) == 6
    assert elapsed >= 0.45  # frames 0..5 at 10 fps span 0.5 s


def test_loop_restarts_a_file(shared_data: Path) -> None:
    source = FrameSource(SourceConfig(url=vtest(shared_data), loop=True))
    count = 0
    for _ in source:
        count += 1
        if count == 800:
            source.close()
    assert count == 800
