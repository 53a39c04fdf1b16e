"""The documents keep to the code: ``protocols/mqtt_v1.md``, the command lines of the guides, the example config.

* Every uplink stream an agent publishes and every command type the gateway registers has its section in
  ``mqtt_v1.md``, and the document names no stream or command the code does not have. The streams come from the
  code (the names the agents are built with), and a scan of the source for outbox writes makes sure no producer
  is left out of that list; the command types come from the registries of the command and tag agents and from a
  scan for ``register("...")`` calls.
* The field tables list exactly the fields the code sends: the records are produced by the real code (a heartbeat
  round, the footfall frame loop on a synthetic source, the tag service's report of a finished update) and their
  keys compared with the table; command arguments are compared with the argument models.
* Every JSON example in ``mqtt_v1.md`` parses.
* Every ``storeedge ...`` and ``flash.py ...`` command line in the README and ``docs/`` parses with the real
  argument parsers, so a renamed or removed flag breaks this test rather than a technician's first hour.
* ``examples/gateway.yaml`` passes ``storeedge config check`` and shows a camera, the store day (with the
  re-identification model path commented out) and tags.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import BaseModel

from agents.core.config import CommandsConfig, HeartbeatConfig
from agents.core.supervisor import Agent, Supervisor
from agents.footfall.agent import FootfallAgent, run_pipeline
from agents.footfall.config import CameraConfig
from agents.footfall.day.clock import SystemClock
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.day.counters import DayCounters
from agents.footfall.day.observer import StoreDay
from agents.footfall.day.record import DAILY_STREAM
from agents.footfall.sources import Frame, SourceStats
from agents.footfall.types import Detections
from agents.gateway.config import GatewayConfig
from agents.heartbeat import HeartbeatAgent
from agents.tags.config import TagsConfig
from agents.tags.service import RESULTS_STREAM, TagServiceAgent
from agents.tags.service.state import publish_state
from agents.tags.store import TagRecord, TagState
from agents.uplink.commands import CommandAgent
from agents.uplink.outbox import OutboxStats
from protocols import mqtt_v1
from sim.loadgen import loadgen_stream

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "protocols" / "mqtt_v1.md"

# Modules that write to the outbox, and the streams each writes (as named in mqtt_v1.md). A new producer must be
# added here and documented; agents/bench/uplink.py is left out on purpose: the benchmark's own throw-away outbox.
PRODUCERS = {
    "agents/heartbeat.py": {"heartbeat", "health"},
    "agents/uplink/commands.py": {"cmd/result"},
    "agents/footfall/agent.py": {"counts/<camera>"},
    "agents/footfall/day/agent.py": {"counts/daily"},
    "agents/tags/service/state.py": {"tags/state"},
    "sim/loadgen.py": {"load/<n>"},
}
NOT_GATEWAY_STREAMS = {"agents/bench/uplink.py"}


# ---- reading the document -------------------------------------------------------------------------------------


def _sections(text: str, level: str) -> dict[str, str]:
    """Heading text -> body, for headings of exactly ``level`` (e.g. ``"##"``)."""
    parts = re.split(rf"^{level} (.+)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _named_subsections(body: str) -> dict[str, str]:
    """``### `name``` subsections of a section: name -> body."""
    found = {}
    for heading, sub in _sections(body, "###").items():
        match = re.fullmatch(r"`([^`]+)`", heading)
        assert match, f"subsection heading {heading!r} should be a `name` in backquotes"
        found[match.group(1)] = sub
    return found


def _table_fields(body: str, *, table: int = 0) -> set[str]:
    """Backquoted names in the first column of the ``table``-th markdown table of ``body``."""
    tables: list[list[str]] = []
    current: list[str] | None = None
    for line in body.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append(current)
            current.append(line)
        else:
            current = None
    rows = tables[table][2:]  # header and separator
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def documented_streams(doc: str) -> dict[str, str]:
    return _named_subsections(_sections(doc, "##")["Streams"])


@pytest.fixture(scope="module")
def documented_commands(doc: str) -> dict[str, str]:
    return _named_subsections(_sections(doc, "##")["Command types"])


# ---- what the code has ------------------------------------------------------------------------------------------


class RecordingOutbox:
    """Stands in for :class:`agents.uplink.outbox.Outbox`: keeps what the agents put."""

    def __init__(self) -> None:
        self.items: list[tuple[str, Any]] = []
        self.put_event = asyncio.Event()

    async def put(self, stream: str, data: Any) -> None:
        self.items.append((stream, data))
        self.put_event.set()

    async def put_many(self, items: list[tuple[str, Any]]) -> None:
        self.items.extend(items)
        self.put_event.set()


def _camera() -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "name": "door",
            "source": {"url": "door.mp4"},
            "detector": {"type": "yolox", "model": "unused.onnx"},
            "counting": {
                "lines": [{"name": "entrance", "p1": [320, 0], "p2": [320, 480]}],
                "zones": [{"name": "promo", "polygon": [[0, 0], [100, 0], [100, 100], [0, 100]]}],
            },
            "interval_s": 1,
        }
    )


def _tags_config() -> TagsConfig:
    return TagsConfig.model_validate(
        {"buses": [{"name": "aisle-1", "port": "/dev/null", "tags": [{"addresses": "1/1-3", "panel": "296x128-bwr"}]}]}
    )


def code_streams() -> set[str]:
    """The uplink stream names, from the code, with the doc's placeholders for the variable part."""
    footfall = FootfallAgent(_camera(), RecordingOutbox())  # type: ignore[arg-type]
    return {
        mqtt_v1.HEARTBEAT,
        mqtt_v1.HEALTH,
        mqtt_v1.COMMAND_RESULT,
        RESULTS_STREAM,
        footfall.stream.replace("door", "<camera>"),
        DAILY_STREAM,
        loadgen_stream(7).replace("7", "<n>"),
    }


def _python_files() -> list[Path]:
    return sorted(p for folder in ("agents", "protocols", "sim") for p in (ROOT / folder).rglob("*.py"))


def _receiver_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def outbox_writers() -> set[str]:
    """Source files that call ``<...outbox>.put(...)`` or ``.put_many(...)``."""
    writers = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("put", "put_many")
                and "outbox" in _receiver_name(node.func.value).lower()
            ):
                writers.add(path.relative_to(ROOT).as_posix())
    return writers


def registered_by_scan() -> set[str]:
    """Command types passed as a literal to a ``register(...)`` call anywhere in the source."""
    types = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and _receiver_name(node.func) == "register"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                types.add(node.args[0].value)
    return types


async def registered_models(tmp_path: Path) -> dict[str, type[BaseModel]]:
    """Command type -> argument model, from the command agent and the tag service themselves."""
    models: dict[str, type[BaseModel]] = {}
    commands = CommandAgent(CommandsConfig(), RecordingOutbox(), tmp_path / "commands.sqlite3")  # type: ignore[arg-type]
    tags = TagServiceAgent(_tags_config(), RecordingOutbox(), tmp_path / "tags.sqlite3")  # type: ignore[arg-type]
    try:
        tags.register_commands(commands.register)
        for ctype in commands.command_types:
            models[ctype] = commands._handlers[ctype].args_model
    finally:
        await commands.aclose()
        await tags.aclose()
    return models


# ---- streams ----------------------------------------------------------------------------------------------------


def test_every_outbox_writer_is_known() -> None:
    writers = outbox_writers()
    unknown = writers - set(PRODUCERS) - NOT_GATEWAY_STREAMS
    assert not unknown, f"new outbox writers {sorted(unknown)}: document their streams in {DOC.name}, list them here"
    assert writers >= set(PRODUCERS), f"producers gone: {sorted(set(PRODUCERS) - writers)}; update PRODUCERS"
    assert set().union(*PRODUCERS.values()) == code_streams()


def test_every_stream_is_documented_and_nothing_else(doc: str, documented_streams: dict[str, str]) -> None:
    streams = code_streams()
    assert set(documented_streams) == streams - {mqtt_v1.COMMAND_RESULT}  # cmd/result has its own section
    topics = _table_fields(doc)  # the topic table at the top
    assert topics == streams | {mqtt_v1.STATUS, mqtt_v1.COMMAND}


async def test_heartbeat_and_health_fields(documented_streams: dict[str, str]) -> None:
    outbox = RecordingOutbox()

    class Idle(Agent):
        async def run(self) -> None:
            await asyncio.Event().wait()

    stats = OutboxStats()
    supervisor = Supervisor(
        [Idle("uplink")],
        snapshot_extra=lambda: {"store_id": "s", "gateway_id": "g", "outbox": stats.as_dict()},
    )
    heartbeat = HeartbeatAgent(HeartbeatConfig(), outbox, supervisor.snapshot)  # type: ignore[arg-type]
    task = asyncio.create_task(heartbeat.run())
    try:
        while {stream for stream, _ in outbox.items} != {mqtt_v1.HEARTBEAT, mqtt_v1.HEALTH}:
            outbox.put_event.clear()
            await asyncio.wait_for(outbox.put_event.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    sent = dict(outbox.items)
    assert _table_fields(documented_streams["heartbeat"]) == set(sent[mqtt_v1.HEARTBEAT])
    assert _table_fields(documented_streams["health"]) == set(sent[mqtt_v1.HEALTH])
    # the runtime's additions are the ones the document lists (agents.gateway.runtime.Gateway._runtime_health)
    runtime = (ROOT / "agents/gateway/runtime.py").read_text(encoding="utf-8")
    extra = re.search(r"def _runtime_health.*?return \{(.*?)\}", runtime, re.S)
    assert extra is not None
    assert set(re.findall(r'"(\w+)":', extra.group(1))) == {"store_id", "gateway_id", "outbox"}
    outbox_row = next(row for row in documented_streams["health"].splitlines() if row.startswith("| `outbox`"))
    assert set(re.findall(r"`(\w+)`", outbox_row.split("|")[3])) >= set(stats.as_dict())


def test_counts_record_fields(documented_streams: dict[str, str]) -> None:
    class Source:
        live = False

        def __init__(self) -> None:
            self.stats = SourceStats()

        def __iter__(self) -> Any:
            for index in range(25):  # 2.5 s at 10 fps: two closed 1 s intervals and a partial one
                self.stats._add("frames_read")
                self.stats._add("frames_delivered")
                yield Frame(index, index / 10, np.zeros((480, 640, 3), np.uint8))

    class Detector:
        name = "none"
        input_size = (640, 640)

        def detect(self, _image: Any) -> Detections:
            return Detections.empty()

    records: list[dict[str, Any]] = []
    counters = DayCounters(StoreDayConfig(), store_id="s", gateway_id="g", now=0.0)
    store_day = StoreDay(StoreDayConfig(), counters, clock=SystemClock())  # the gateway always has one
    run_pipeline(_camera(), Source(), Detector(), records.extend, {}, store_day)  # type: ignore[arg-type]
    lines = [r for r in records if "line" in r]
    zones = [r for r in records if "zone" in r]
    assert lines and zones and any(not r["complete"] for r in records)
    body = documented_streams["counts/<camera>"]
    common, line_fields, zone_fields = (_table_fields(body, table=i) for i in range(3))
    assert set(lines[0]) == common | line_fields
    assert set(zones[0]) == common | zone_fields
    quality_row = next(row for row in body.splitlines() if row.startswith("| `quality`"))
    assert set(re.findall(r"`(\w+)`", quality_row.split("|")[3])) == set(lines[0]["quality"])


def test_daily_record_fields(documented_streams: dict[str, str]) -> None:
    counters = DayCounters(StoreDayConfig(), store_id="store-042", gateway_id="gw-1", now=1_773_500_000.0)
    counters.crossing("door", "a_to_b", 1_773_500_000.0)
    counters.quality("door", frames_skipped=3, downtime_s=1.5)
    (record,) = counters.roll(1_773_600_000.0)
    data = counters.pending[0].data
    assert data == record.as_dict()
    body = documented_streams[DAILY_STREAM]
    assert _table_fields(body) == set(data)
    cameras_row = next(row for row in body.splitlines() if row.startswith("| `cameras`"))
    assert set(re.findall(r"`(\w+)`", cameras_row.split("|")[3])) == set(data["cameras"]["door"])
    example = json.loads(re.findall(r"```json\n(.*?)```", body, re.S)[0])
    assert set(example) == set(data)


async def test_tags_state_fields(documented_streams: dict[str, str]) -> None:
    outbox = RecordingOutbox()
    record = TagRecord(address="1/1", bus="aisle-1", panel="296x128-bwr", state=TagState.APPLIED)
    await publish_state(
        outbox,  # type: ignore[arg-type]
        record,
        TagState.APPLIED,
        "ab" * 32,
        "price-change#0",
        bytes_sent=10,
        seconds=0.1,
    )
    ((stream, data),) = outbox.items
    assert stream == RESULTS_STREAM
    assert _table_fields(documented_streams[RESULTS_STREAM]) == set(data)


def test_envelope_and_command_result_fields(doc: str) -> None:
    sections = _sections(doc, "##")
    assert _table_fields(sections["Envelope (every uplink stream)"]) == set(mqtt_v1.Envelope.model_fields)
    assert _table_fields(sections["Commands (`cmd`, down)"]) == set(mqtt_v1.Command.model_fields)
    results = sections["Command results (`cmd/result`, up, inside an envelope)"]
    assert _table_fields(results) == set(mqtt_v1.CommandResult.model_fields)


# ---- commands ---------------------------------------------------------------------------------------------------


async def test_every_command_type_is_documented_and_nothing_else(
    tmp_path: Path, documented_commands: dict[str, str]
) -> None:
    registered = set(await registered_models(tmp_path)) | registered_by_scan()
    assert {"ping", "health", "tags.set_labels", "tags.led", "tags.ping", "tags.status"} <= registered
    assert set(documented_commands) == registered


async def test_command_arguments_match_the_models(tmp_path: Path, documented_commands: dict[str, str]) -> None:
    for ctype, model in (await registered_models(tmp_path)).items():
        body = documented_commands[ctype]
        if not model.model_fields:
            assert "No arguments" in body, ctype
        else:
            assert _table_fields(body) == set(model.model_fields), ctype
    labels = documented_commands["tags.set_labels"]
    from agents.tags.service import LabelItem  # the items of tags.set_labels are validated one by one

    assert _table_fields(labels, table=1) == set(LabelItem.model_fields)


def test_json_examples_parse(doc: str) -> None:
    blocks = re.findall(r"```json\n(.*?)```", doc, re.S)
    assert len(blocks) >= 10
    for block in blocks:
        json.loads(block)


# ---- command lines in the README and the guides ----------------------------------------------------------------


def _command_lines(path: Path) -> list[str]:
    """``storeedge`` and ``flash.py`` invocations in the file's ```bash blocks (continuations joined)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
        for text in block.replace("\\\n", " ").splitlines():
            for line in text.split("&&"):
                try:
                    words = shlex.split(line, comments=True)
                except ValueError:  # not shell words (a heredoc's Python, an apostrophe in prose)
                    assert "storeedge" not in line and "flash.py" not in line, f"{path.name}: cannot split `{line}`"
                    continue
                while words and (words[0] in ("sudo", "python", "python3") or re.fullmatch(r"[A-Z_]+=\S*", words[0])):
                    words = words[1:]  # sudo, an interpreter, VAR=value prefixes
                if words and (words[0] == "storeedge" or words[0].endswith(("/storeedge", "flash.py"))):
                    lines.append(shlex.join(words))
    return lines


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_documented_command_lines_parse(path: Path) -> None:
    from agents.cli import build_parser as storeedge_parser
    from agents.provision.cli import build_parser as flash_parser

    lines = _command_lines(path)
    if path.name in ("README.md", "install-gateway.md"):
        assert lines, f"{path.name} shows commands: the extractor must find them"
    for line in lines:
        words = shlex.split(line)
        if words[0].endswith("flash.py"):
            parser, args = flash_parser(), words[1:]
        elif words[1:2] == ["flash"]:
            parser, args = flash_parser(), words[2:]
        else:
            parser, args = storeedge_parser(), words[1:]
        try:
            parser.parse_args(args)
        except SystemExit as exc:
            if exc.code != 0:  # --help and --version exit 0
                pytest.fail(f"{path.name}: `{line}` does not parse (exit {exc.code})")


# ---- the example configuration ----------------------------------------------------------------------------------


def test_example_config_passes_config_check(capsys: pytest.CaptureFixture[str]) -> None:
    from agents.cli import main

    example = ROOT / "examples" / "gateway.yaml"
    assert main(["config", "check", str(example)]) == 0, capsys.readouterr().err
    assert "OK" in capsys.readouterr().out
    config = GatewayConfig.model_validate(yaml.safe_load(example.read_text(encoding="utf-8")))
    assert config.cameras and config.tags is not None
    text = example.read_text(encoding="utf-8")
    assert "footfall" in config.model_fields_set and "# identity:" in text and "#   model:" in text
