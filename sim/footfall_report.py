"""What a simulator run's cameras counted, as the cloud received it, next to the scenario's ground truth.

* per camera and line: the totals of the ``counts/<camera>`` interval records (events and visits) against the
  scenario's ``ground_truth`` (camera -> line -> totals);
* the store's visitors: ``unique`` and ``returning`` summed over the cameras' intervals (each visitor is decided
  on one camera, in one interval) against ``store_truth`` (e.g. ``unique_visitors: 10`` for PETS09-S2L1, the
  people of ``person_clusters.json``);
* the ``counts/daily`` records that arrived: how many messages, how many distinct ``record_id`` values (a
  repeat would show as a duplicate ``record_id``: the sink itself drops repeats only by envelope ``id``), and
  each day's figures.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agents.cloud.sink import CloudSink
from agents.footfall.day.record import DAILY_STREAM
from agents.gateway.config import GatewayConfig

DAILY_SUMMARY = ("entries", "exits", "unique_visitors", "returning", "staff_crossings", "peak_occupancy")


def footfall_report(
    config: GatewayConfig,
    sink: CloudSink,
    ground_truth: dict[str, dict[str, dict[str, int]]],
) -> dict[str, Any]:
    """Per camera and line: totals of the interval records the cloud received, next to ground truth."""
    report: dict[str, Any] = {}
    for camera in config.cameras:
        records = sink.store.stream_data(config.gateway_id, f"counts/{camera.name}")
        lines: dict[str, Any] = {}
        for line in camera.counting.lines:
            keys = ("events_a_to_b", "events_b_to_a", "visits_a_to_b", "visits_b_to_a")
            mine = [r for r in records if r.get("line") == line.name]
            totals = {key: sum(int(r[key]) for r in mine) for key in keys}
            entry: dict[str, Any] = {"measured": totals, "intervals": len(mine)}
            expected = ground_truth.get(camera.name, {}).get(line.name)
            if expected:
                entry["ground_truth"] = expected
                entry["error"] = {key: totals[key] - expected[key] for key in expected if key in totals}
            lines[line.name] = entry
        first_line = camera.counting.lines[0].name if camera.counting.lines else None
        frames = sum(int(r["frames"]) for r in records if first_line and r.get("line") == first_line)
        report[camera.name] = {"lines": lines, "frames_processed": frames, **_visitors(records)}
    return report


def _visitors(records: list[dict[str, Any]]) -> dict[str, int]:
    """``unique`` and ``returning`` of one camera: every record of one interval repeats them, so one per interval."""
    per_interval: dict[float, tuple[int, int]] = {}
    for record in records:
        if "unique" in record:
            per_interval[record["interval_start"]] = (int(record["unique"]), int(record["returning"]))
    return {
        "unique": sum(unique for unique, _ in per_interval.values()),
        "returning": sum(returning for _, returning in per_interval.values()),
    }


def store_day_report(
    config: GatewayConfig, sink: CloudSink, cameras: dict[str, Any], store_truth: dict[str, int]
) -> dict[str, Any]:
    """The store's visitors (from the cameras' intervals), the truth, and the daily records that arrived."""
    measured = {
        "unique_visitors": sum(int(entry.get("unique", 0)) for entry in cameras.values()),
        "returning": sum(int(entry.get("returning", 0)) for entry in cameras.values()),
    }
    visitors: dict[str, Any] = {"measured": measured}
    if store_truth:
        visitors["ground_truth"] = dict(store_truth)
        visitors["error"] = {key: measured[key] - value for key, value in store_truth.items() if key in measured}
    daily = sink.store.stream_data(config.gateway_id, DAILY_STREAM)
    ids = Counter(str(record.get("record_id")) for record in daily)
    return {
        "visitors": visitors,
        "reidentification": config.footfall.identity is not None,
        "daily": {
            "messages": len(daily),
            "record_ids": sorted(ids),
            "repeated_record_ids": sorted(rid for rid, n in ids.items() if n > 1),
            "days": [{"record_id": r.get("record_id"), **{key: r.get(key) for key in DAILY_SUMMARY}} for r in daily],
        },
    }
