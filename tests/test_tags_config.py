"""The ``tags:`` section of the gateway config: address ranges, panels, duplicates, templates, YAML lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.core.errors import ConfigError
from agents.gateway.config import parse_config
from agents.tags.config import TagsConfig, parse_address
from protocols.esl import EslAddress

HEAD = 'store_id: s\ngateway_id: g\nbroker: {url: "mqtt://localhost"}\n'


def bus(*ranges: str, name: str = "a") -> dict[str, object]:
    return {"name": name, "port": "/dev/ttyUSB0", "tags": [{"addresses": r, "panel": "152x152-bw"} for r in ranges]}


def test_ranges_expand_and_addresses_parse() -> None:
    config = TagsConfig.model_validate({"buses": [bus("1/1-3", "2/7")]})
    assert config.buses[0].tags[0].expand() == [EslAddress(1, 1), EslAddress(1, 2), EslAddress(1, 3)]
    assert config.buses[0].tags[1].expand() == [EslAddress(2, 7)]
    assert parse_address(" 3 / 4 ") == EslAddress(3, 4)
    for bad in ("3", "1/2-4", "128/1", "1/255", "a/b"):
        with pytest.raises(ValueError):
            parse_address(bad)


@pytest.mark.parametrize(
    ("buses", "message"),
    [
        ([bus("1/1-5"), bus("1/5", name="b")], "tag 1/5 is declared twice (buses a and b)"),
        ([bus("1/1"), bus("2/1")], "bus names must be unique"),
        ([bus("1/5-2")], "first <= last"),
        ([bus("1-5")], "group/first-last"),
    ],
)
def test_bad_sections_name_the_problem(buses: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TagsConfig.model_validate({"buses": buses})


def test_yaml_errors_name_field_and_line(tmp_path: Path) -> None:
    text = (
        HEAD
        + "tags:\n  buses:\n    - name: a\n      port: /dev/x\n"
        + "      tags:\n        - {addresses: '1/1', panel: 7x7-bw}\n"
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "gw.yaml")
    assert "tags.buses.0.tags.0.panel (line 9)" in str(caught.value)
    assert "unknown panel '7x7-bw'" in str(caught.value)


def test_templates_are_loaded_at_config_time(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("layouts: 3\n")
    with pytest.raises(ValueError, match="template 'wide'"):
        TagsConfig.model_validate({"buses": [bus("1/1")], "templates": {"wide": str(broken)}})
    with pytest.raises(ValueError, match="built-in"):
        TagsConfig.model_validate({"buses": [bus("1/1")], "templates": {"default": str(broken)}})
