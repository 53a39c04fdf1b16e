"""The footfall agent end to end: a camera in the gateway config, real footage, the real detector,
interval records through the durable outbox and mosquitto to the cloud sink; and config errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import pytest

from agents.cloud.sink import CloudSink
from agents.core.errors import ConfigError
from agents.footfall.sources import FrameSource, SourceConfig
from agents.gateway.runtime import Gateway
from tests.brokers import Mosquitto
from tests.conftest import gateway_config, wait_for


def short_clip(shared_data: Path, target: Path, frames: int) -> Path:
    """The first ``frames`` frames of vtest.avi as a small MJPG file (a fast, real camera stand-in)."""
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter.fourcc(*"MJPG"), 10, (768, 576))
    for frame in FrameSource(SourceConfig(url=str(shared_data / "footage/pets09_s2l1/vtest.avi"))):
        if frame.index >= frames:
            break
        writer.write(frame.image)
    writer.release()
    return target


def camera_section(shared_data: Path, clip: Path) -> dict[str, object]:
    return {
        "name": "door",
        "source": {"url": str(clip), "realtime": True, "realtime_speed": 20},
        "detector": {"type": "yolox", "model": str(shared_data / "models/yolox_nano/yolox_nano.onnx")},
        "counting": {"lines": [{"name": "x384", "p1": [384, 0], "p2": [384, 576]}]},
        "interval_s": 2,
    }


async def test_camera_counts_reach_the_cloud(tmp_path: Path, mosquitto: Mosquitto, shared_data: Path) -> None:
    clip = short_clip(shared_data, tmp_path / "clip.avi", 120)
    config = gateway_config(tmp_path, mosquitto.url, cameras=[camera_section(shared_data, clip)])
    sink = CloudSink(mosquitto.url, tmp_path / "cloud.sqlite3")
    gateway = Gateway(config)
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(gateway.run(stop), name="test:gateway")
            await wait_for(
                lambda: gateway.snapshot().get("agents", {}).get("footfall-door", {}).get("state") == "finished",
                timeout=60,
                what="the clip to be played",
            )
            await wait_for(lambda: gateway.outbox is not None and gateway.outbox.stats.backlog_messages == 0)
            stop.set()
            await gw_task
            sink.session.request_stop()
            await sink_task
        records = sink.store.stream_data("gw-1", "counts/door")
        assert records, "no interval records arrived"
        assert {r["camera"] for r in records} == {"door"}
        assert all(r["record_id"].startswith("line/x384/") for r in records)
        assert len({r["record_id"] for r in records}) == len(records)  # one record per interval
        # Every decoded frame was processed and accounted for in the data quality figures.
        assert sum(r["frames"] for r in records) == 120
        assert sum(r["quality"]["frames_delivered"] for r in records) == 120
        # Records carry counts only: no image data of any kind leaves the camera pipeline.
        assert all(
            set(r)
            <= {
                "camera",
                "record_id",
                "line",
                "interval_start",
                "interval_end",
                "events_a_to_b",
                "events_b_to_a",
                "visits_a_to_b",
                "visits_b_to_a",
                "frames",
                "complete",
                "unique",
                "returning",
                "quality",
            }
            for r in records
        )
    finally:
        sink.close()


def test_invalid_camera_config_names_the_field(tmp_path: Path, shared_data: Path) -> None:
    camera = camera_section(shared_data, tmp_path / "x.avi")
    camera["counting"] = {"lines": [{"name": "bad", "p1": [10, 10], "p2": [10, 10]}]}
    with pytest.raises(Exception, match=r"cameras\.0\.counting\.lines\.0\.p2"):
        gateway_config(tmp_path, "mqtt://127.0.0.1:1883", cameras=[camera])


def test_invalid_camera_yaml_names_field_and_line(tmp_path: Path) -> None:
    from agents.gateway.config import parse_config

    text = """store_id: s1
gateway_id: g1
broker: {url: "mqtt://localhost"}
cameras:
  - name: door
    source: {url: "usb:front"}
    detector: {type: yolox, model: /m.onnx}
    counting: {lines: []}
"""
    with pytest.raises(ConfigError, match=r"cameras\.0\.source\.url \(line 6\)"):
        parse_config(text, "gw.yaml")


def test_detector_field_error_points_at_its_line() -> None:
    from agents.gateway.config import parse_config

    text = """store_id: s1
gateway_id: g1
broker: {url: "mqtt://localhost"}
cameras:
  - name: door
    source: {url: "usb:0"}
    detector:
      type: yolox
      model: /m.onnx
      score_threshold: 7
    counting: {lines: []}
"""
    with pytest.raises(ConfigError, match=r"cameras\.0\.detector\.score_threshold \(line 10\)"):
        parse_config(text, "gw.yaml")
