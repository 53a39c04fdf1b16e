"""The privacy rule of re-identification (issue 12, acceptance 5): appearance embeddings never leave memory.

A short real clip (the first 150 frames of PETS09-S2L1) runs through the real gateway with ``footfall.identity``
configured (the Open Model Zoo model), the real outbox, mosquitto and the cloud sink; the store day's clock
crosses a day boundary during the run, so the daily record is published and the gallery cleared as in a store.
Every embedding the embedder produced is recorded (``ReidEmbedder.embed`` wrapped), and then searched for in

* every file of the state directory (outbox database with its WAL and shared memory, the store day's
  counters, the command log, health.json, anything else there), read as bytes while the gateway runs (when
  the WAL files exist) and again after it stopped;
* every file the cloud sink wrote (its database and WAL), and every published message it stored;
* every log record of the run (DEBUG and up, formatted messages);

as little-endian float32 bytes (the model's output type), float16 and float64 bytes, base64 of the float32
bytes, and the text of the first values (the float32's shortest repr and the float64 repr). A positive control
plants one embedding's bytes in a file and checks the search finds it, so a search that could never fail
would fail here.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.cloud.sink import CloudSink
from agents.footfall.day.record import DAILY_STREAM
from agents.footfall.identity import ReidEmbedder
from agents.gateway.runtime import Gateway
from sim.clock import SimClock
from tests.brokers import Mosquitto
from tests.conftest import gateway_config, wait_for
from tests.test_footfall_agent import short_clip

FIRST = 8  # values of each embedding whose renderings are searched (32 bytes of float32: no chance collision)


def _needles(embeddings: Iterable[np.ndarray]) -> dict[bytes, str]:
    """Byte strings that would betray an embedding, each with what it is."""
    needles: dict[bytes, str] = {}
    for index, row in enumerate(embeddings):
        head = np.asarray(row[:FIRST], dtype="<f4")
        needles[head.tobytes()] = f"embedding {index}: float32 bytes"
        needles[head.astype("<f2").tobytes()] = f"embedding {index}: float16 bytes"
        needles[head.astype("<f8").tobytes()] = f"embedding {index}: float64 bytes"
        needles[base64.b64encode(np.asarray(row, dtype="<f4").tobytes()[:30])] = f"embedding {index}: base64"
        for value in head[:2]:
            if abs(float(value)) > 1e-3:  # a tiny value's text is short enough to occur by chance
                needles[np.format_float_positional(value, unique=True).encode()] = f"embedding {index}: float32 text"
                needles[repr(float(value)).encode()] = f"embedding {index}: float64 text"
    return needles


def _found(data: bytes, needles: dict[bytes, str]) -> list[str]:
    return [what for needle, what in needles.items() if needle in data]


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


async def test_no_embedding_reaches_disk_outbox_logs_or_the_cloud(
    tmp_path: Path, mosquitto: Mosquitto, shared_data: Path, caplog: pytest.LogCaptureFixture, monkeypatch: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    produced: list[np.ndarray] = []
    original = ReidEmbedder.embed

    def recording(self: ReidEmbedder, crops: Any) -> Any:
        out = original(self, crops)
        produced.extend(np.array(row, copy=True) for row in out)
        return out

    monkeypatch.setattr(ReidEmbedder, "embed", recording)

    clip = short_clip(shared_data, tmp_path / "clip.avi", 150)
    camera = {
        "name": "door",
        "source": {"url": str(clip), "realtime": True, "realtime_speed": 5},
        "detector": {"type": "yolox", "model": str(shared_data / "models/yolox_nano/yolox_nano.onnx")},
        "counting": {
            "lines": [
                {"name": "x384", "p1": [384, 0], "p2": [384, 576]},
                {"name": "y300", "p1": [0, 300], "p2": [768, 300]},
            ]
        },
        "interval_s": 2,
    }
    footfall = {
        "day": {"boundary": "04:00", "timezone": "Europe/Berlin"},
        "identity": {"type": "omz", "model": str(shared_data / "models/reid/person-reidentification-retail-0267.onnx")},
    }
    config = gateway_config(tmp_path, mosquitto.url, cameras=[camera], footfall=footfall)
    # The store's clock: 20 simulated seconds before the boundary, 4x: the day closes about 5 s into the run.
    day = config.footfall.day
    clock = SimClock(day.bounds(day.day_of(time.time()))[1] - 20, 4.0)
    sink = CloudSink(mosquitto.url, tmp_path / "cloud" / "cloud.sqlite3")
    gateway = Gateway(config, clock=clock)
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(gateway.run(stop), name="test:gateway")
            await wait_for(
                lambda: gateway.snapshot().get("agents", {}).get("footfall-door", {}).get("state") == "finished",
                timeout=120,
                what="the clip to be played",
            )
            await wait_for(
                lambda: gateway.store_day is not None and gateway.store_day.health.counters.get("daily_records_sent"),
                timeout=30,
                what="the store day to close",
            )
            await wait_for(lambda: gateway.outbox is not None and gateway.outbox.stats.backlog_messages == 0)
            # While running, the SQLite databases have their WAL and shared-memory files: read them now too.
            running = {path: path.read_bytes() for path in _files(config.state_dir) + _files(tmp_path / "cloud")}
            stop.set()
            await gw_task
            await wait_for(lambda: len(sink.store.stream_data("gw-1", DAILY_STREAM)) == 1, what="the daily record")
            sink.session.request_stop()
            await sink_task
        messages = [
            payload
            for stream in ("counts/door", DAILY_STREAM, "health", "heartbeat")
            for payload in sink.store.stream_data("gw-1", stream)
        ]
    finally:
        sink.close()

    assert len(produced) >= 20, f"the run embedded only {len(produced)} crops: the test would prove nothing"
    assert all(row.dtype == np.float32 and row.shape == (256,) for row in produced)
    needles = _needles(produced)

    leaks: list[str] = []
    searched = _files(config.state_dir) + _files(tmp_path / "cloud")
    assert any(p.name == "outbox.sqlite3" for p in searched) and any(p.name == "footfall-day.json" for p in searched)
    assert any(path.name.endswith("-wal") for path in running), sorted(p.name for p in running)
    files = [(f"{path.relative_to(tmp_path)} (running)", data) for path, data in running.items()]
    files += [(f"{path.relative_to(tmp_path)} (stopped)", path.read_bytes()) for path in searched]
    for name, data in files:
        leaks += [f"{name}: {what}" for what in _found(data, needles)]
    for message in messages:
        leaks += [f"published message: {what}" for what in _found(repr(message).encode(), needles)]
    log_text = "\n".join(record.getMessage() for record in caplog.records) + caplog.text
    leaks += [f"log: {what}" for what in _found(log_text.encode(), needles)]
    print(f"{len(produced)} embeddings, {len(needles)} renderings, {len(files)} files, {len(messages)} messages")
    assert not leaks, leaks[:20]
    assert len(messages) > 3 and any(r["reidentification"] for r in messages if "reidentification" in r)

    # Positive control: the same search on a file that does hold one embedding finds it.
    planted = tmp_path / "planted.bin"
    planted.write_bytes(b"x" * 100 + produced[len(produced) // 2].astype("<f4").tobytes() + b"y" * 100)
    assert "float32 bytes" in " ".join(_found(planted.read_bytes(), needles))
