"""``storeedge sim run --scenario tags-ble``: 200 emulated Bluetooth ESL tags, end to end (issue 5, acceptance 2).

The real CLI in a subprocess: embedded broker, the cloud sending the batch over MQTT, the gateway's tag service
with two Bluetooth buses whose access points use bleak with the bumble backend (a config value), tags emulated as
bumble GATT servers with ESL, OTS and DIS on one in-process radio. Every tag is onboarded and gets its label while
10 % of object transfers are cut off mid-way; each tag's e-paper must show exactly the intended image (hash
checked on the tag side), nothing else ever, and the same batch sent again must cost zero image bytes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zxingcpp
from PIL import Image

from sim.tag_fleet import ean13


def test_tags_ble_scenario(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "agents.cli", "sim", "run", "--scenario", "tags-ble", "--report", str(report_path)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    tags = json.loads(report_path.read_text())["tags"]
    print(json.dumps({key: value for key, value in tags.items() if key != "previews"}, indent=1))

    assert (tags["total"], tags["applied"], tags["failed"], tags["no_result"]) == (200, 200, 0, 0)
    assert tags["hash_match"] == 200
    assert tags["partial_images_shown"] == 0
    ble = tags["ble"]
    assert ble["onboarded"] == 200
    assert ble["dropped_mid_transfer"] / ble["object_writes"] >= 0.05  # 10 % configured, per object transfer
    assert tags["resend"] == {"queued": 0, "unchanged": 200, "error": 0, "bytes_sent": 0}
    assert 0 < tags["bytes_sent"] < 0.5 * tags["raw_image_bytes"]  # images travel compressed
    assert tags["errors"] == []
    assert set(tags["battery_mv"]) == {3000}
    assert tags["previews"]
    for preview in tags["previews"]:
        assert preview["shows_intended_image"]
        with Image.open(preview["path"]) as image:
            big = image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST)
        codes = {result.format.name: result.text for result in zxingcpp.read_barcodes(big)}
        url = codes.get("QRCode", "")
        assert url.startswith("https://shop.example/p/"), (preview, codes)
        assert codes.get("EAN13") == ean13(int(url.rsplit("/", 1)[1])), (preview, codes)
