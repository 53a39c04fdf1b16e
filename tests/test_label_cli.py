"""`storeedge label render`: writes a PNG for valid fields; bad fields or panels exit 2 naming them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from agents.cli import main

FIELDS = {"name": "Organic Green Tea", "price": 2.49, "old_price": 3.19, "currency": "EUR", "ean13": "4006381333931"}


def test_render_writes_png_of_the_panel_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "label.png"
    assert main(["label", "render", "--fields", json.dumps(FIELDS), "--panel", "296x128-bwr", "--out", str(out)]) == 0
    with Image.open(out) as image:
        assert image.size == (296, 128)
    assert "content hash" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fields", "panel", "message"),
    [
        ({**FIELDS, "price": -1}, "296x128-bwr", "price"),
        ({**FIELDS, "ean13": "4006381333932"}, "296x128-bwr", "ean13"),
        (FIELDS, "999x1-bw", "unknown panel"),
    ],
)
def test_bad_input_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fields: dict[str, object], panel: str, message: str
) -> None:
    out = tmp_path / "label.png"
    assert main(["label", "render", "--fields", json.dumps(fields), "--panel", panel, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
