"""``storeedge sim run --scenario tags-serial``: 100 serial tags on 4 buses under line noise, end to end.

Issue 4 acceptance 1 (the e-paper PNG previews are in the report and their QR and EAN-13 codes scan with
zxing-cpp), 2 (every tag's virtual e-paper shows exactly the intended image under 5 % corrupted bytes and
2 % lost frames; no partial image ever shown), 4 (sending the same batch again transfers zero image bytes)
and 5 (the zlib ratio of the batch is reported and at most 25 %). The run is the real CLI in a subprocess:
embedded broker, cloud sink sending the batch over MQTT, the gateway's tag service on pyserial, the
MicroPython firmware tags behind ptys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zxingcpp
from PIL import Image

from sim.tag_fleet import ean13


def test_tags_serial_scenario(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", "sim", "run", "--scenario", "tags-serial", "--report", str(report_path)],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(report_path.read_text())
    tags = report["tags"]
    print(json.dumps({key: value for key, value in tags.items() if key != "previews"}, indent=1))

    assert (tags["total"], tags["applied"], tags["failed"], tags["no_result"]) == (100, 100, 0, 0)
    assert tags["hash_match"] == 100
    assert tags["partial_images_shown"] == 0
    assert 0 < tags["bytes_sent"] <= tags["raw_image_bytes"]
    assert tags["errors"] == []
    faults = tags["faults"]
    assert faults["measured_corrupted_byte_ratio"] >= 0.045  # 5 % configured; the measured share of delivered bytes
    assert faults["frames_dropped"] / faults["frames"] >= 0.015
    assert tags["resend"] == {"queued": 0, "unchanged": 100, "error": 0, "bytes_sent": 0}
    assert tags["zlib_ratio_mean"] <= 0.25
    assert report["uplink"]["lost"] == 0

    previews = tags["previews"]
    assert {p["bus"] for p in previews} == {"aisle-1", "aisle-2", "aisle-3", "aisle-4"}
    for preview in previews:
        assert preview["shows_intended_image"]
        width, height = (int(n) for n in preview["panel"].split("-")[0].split("x"))
        with Image.open(preview["path"]) as image:
            assert image.size == (width, height)
            big = image.resize((width * 4, height * 4), Image.Resampling.NEAREST)
        codes = {result.format.name: result.text for result in zxingcpp.read_barcodes(big)}
        group, esl_id = (int(n) for n in preview["tag"].split("/"))
        n = (group - 1) * 25 + esl_id
        assert codes.get("QRCode") == f"https://shop.example/p/{n}", (preview, codes)
        assert codes.get("EAN13") == ean13(n), (preview, codes)
