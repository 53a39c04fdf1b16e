"""``storeedge sim run``: a whole store in one process.

A run starts the embedded broker (or uses ``--broker``), the cloud sink and one gateway wired to
simulated devices, runs the scenario for its duration with a live progress line, lets the gateway drain
its outbox on shutdown, and then compares what the gateway produced with what the cloud stored:
``published`` (messages the gateway's outbox accepted), ``received`` (unique at the sink), ``lost``
(produced but never received), ``duplicates`` (redeliveries the sink dropped) and ``dropped`` (removed by
the outbox's explicit drop policy). Scenarios are YAML data files (``sim/scenarios/*.yaml``).

A run fails early and in one message rather than half-way with tracebacks: before anything starts, every
file the scenario names (camera footage, detector models, anything under ``${SHARED_DATA}``) must exist
(:func:`check_scenario_files`), and a ``--broker`` must accept a connection within a few seconds. A run
that did start fails (``report["failures"]``, see :func:`report_failures`) when messages were lost, tags
were not applied, or any agent crashed: the simulator injects faults into links and radios, never into
agents, so a restart is always a bug or a broken input. The run stops at the first crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Coroutine
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from agents.cloud.sink import CloudSink
from agents.core.config import BrokerUrl
from agents.core.errors import ConfigError, StoreedgeError
from agents.gateway.config import GatewayConfig
from agents.gateway.runtime import Gateway
from agents.preflight import check_paths
from protocols.mqtt_v1 import GatewayTopics
from sim.ble.badges import BadgeScenario, scenario_badges
from sim.broker import EmbeddedBroker
from sim.clock import SimClock, SimClockConfig
from sim.footfall_report import footfall_report, store_day_report
from sim.loadgen import LoadgenConfig, loadgen_agents
from sim.tag_fleet import TagFleet, TagsScenario

BROKER_PROBE_TIMEOUT_S = 3.0
"""How long ``--broker`` may take to accept a TCP connection before the run gives up."""
BROKER_CONNECT_TIMEOUT_S = 15.0
"""How long the cloud sink may take to complete its first MQTT connection (TLS and CONNACK included)."""


class BrokerUnreachableError(StoreedgeError, ConnectionError):
    """The broker of a simulator run refused or did not answer; ``str(err)`` names its URL and the reason."""


class Scenario(BaseModel):
    """A simulator scenario file."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    duration_s: float = Field(20.0, gt=0)
    gateway: dict[str, Any] = Field(default_factory=dict, description="Merged into the gateway config.")
    drain_timeout_s: float = Field(10.0, ge=0)
    ground_truth: dict[str, dict[str, dict[str, int]]] = Field(
        default_factory=dict, description="camera -> line -> expected totals (events_/visits_a_to_b/b_to_a)."
    )
    store_truth: dict[str, int] = Field(
        default_factory=dict, description="The store's expected visitors, e.g. {unique_visitors: 10}."
    )
    clock: SimClockConfig | None = Field(
        None, description="The store day's simulated clock (shifted, accelerated): a run that crosses a day boundary."
    )
    tags: TagsScenario | None = Field(None, description="Simulated serial tag buses and a price batch.")
    badges: BadgeScenario | None = Field(
        None, description="Emulated staff badges on the radio, following a camera's footage (sim/ble/badges.py)."
    )
    loadgen: LoadgenConfig | None = Field(None, description="Synthetic uplink traffic generated beside the gateway.")


def builtin_scenarios() -> dict[str, str]:
    """Names of the scenarios shipped in ``sim/scenarios`` mapped to their file text."""
    folder = resources.files("sim") / "scenarios"
    return {
        entry.name.removesuffix(".yaml"): entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    }


def load_scenario(name_or_path: str | None) -> Scenario:
    """Load a built-in scenario by name, or a scenario file by path."""
    if name_or_path is None:
        name_or_path = "default"
    builtin = builtin_scenarios()
    if name_or_path in builtin:
        text, source = builtin[name_or_path], f"scenario '{name_or_path}'"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"no scenario {name_or_path!r}: not a file and not one of {', '.join(sorted(builtin))}")
        text, source = path.read_text(encoding="utf-8"), str(path)
    text = text.replace("${SHARED_DATA}", str(shared_data_dir()))
    try:
        return Scenario.model_validate(yaml.safe_load(text) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{source}: invalid scenario: {exc}") from exc


def shared_data_dir() -> Path:
    """Models and footage for footage scenarios: ``$STOREEDGE_SHARED_DATA`` or ``../shared/data`` beside
    the source tree (they are never copied into the repository)."""
    override = os.environ.get("STOREEDGE_SHARED_DATA")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "shared" / "data"


def check_scenario_files(scenario: Scenario) -> None:
    """Raise :class:`ConfigError` naming every file ``scenario`` needs that is not on this machine.

    Checks the inputs of the scenario's gateway section (camera footage, detector models, TLS files: see
    :func:`agents.preflight.check_paths`) and every other value under the shared data folder. Devices (USB
    cameras, serial ports) are not required here: a scenario's tag buses are created by the run itself.
    """
    shared = str(shared_data_dir())
    config = gateway_config(scenario, BrokerUrl.parse("mqtt://127.0.0.1"), Path("sim-state"))
    missing = [(f"gateway.{p.field}", p.path, p.message) for p in check_paths(config) if p.is_error]
    named = {path for _field, path, _message in missing}
    for field, value in _strings(scenario.model_dump(mode="json")):
        if value.startswith(shared) and value not in named and not Path(value).exists():
            missing.append((field, value, "not found"))
            named.add(value)
    if not missing:
        return
    lines = [f"scenario {scenario.name!r} needs files that are missing:"]
    lines += [f"  {field}: {message}: {path}" for field, path, message in missing]
    if any(path.startswith(shared) for _field, path, _message in missing):
        origin = "$STOREEDGE_SHARED_DATA" if os.environ.get("STOREEDGE_SHARED_DATA") else "the default, ../shared/data"
        lines.append(
            f"Models and footage are read from {shared} ({origin}): set STOREEDGE_SHARED_DATA to the folder"
            " holding models/ and footage/ (footage is never shipped with storeedge)."
        )
    else:
        lines.append("Fix the paths in the scenario file.")
    raise ConfigError("\n".join(lines))


def _strings(value: Any, field: str = "") -> list[tuple[str, str]]:
    """``(dotted field, text)`` for every string inside a JSON-like ``value``."""
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = [(str(key), item) for key, item in value.items()]
    elif isinstance(value, list):
        items = [(str(index), item) for index, item in enumerate(value)]
    else:
        return []
    return [found for key, item in items for found in _strings(item, f"{field}.{key}" if field else key)]


async def probe_broker(url: BrokerUrl, timeout_s: float = BROKER_PROBE_TIMEOUT_S) -> None:
    """Raise :class:`BrokerUnreachableError` unless ``url``'s host accepts a TCP connection within ``timeout_s``.

    A quick look before anything starts, so a wrong ``--broker`` fails in seconds with the reason instead of
    after the MQTT client's reconnect back-off.
    """
    try:
        async with asyncio.timeout(timeout_s):
            _reader, writer = await asyncio.open_connection(url.host, url.port)
    except TimeoutError:
        reason, hint = f"connection timed out after {timeout_s:.0f}s", "Check the host, port and firewall."
    except socket.gaierror as exc:
        reason, hint = f"unknown host ({(exc.strerror or str(exc)).lower()})", "Check the host name."
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
        hint = "Is the broker running on that host and port?"
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise BrokerUnreachableError(
        f"cannot reach the broker {url}: {reason}. {hint} Without --broker the run uses its embedded broker."
    )


async def _wait_for_broker(sink: CloudSink, url: BrokerUrl, timeout_s: float = BROKER_CONNECT_TIMEOUT_S) -> None:
    """Wait for the sink's first MQTT connection; fail at its first failed attempt (TLS, credentials, not an
    MQTT broker) instead of retrying for the whole run."""
    health = sink.session.health
    deadline = time.monotonic() + timeout_s
    while health.connects == 0:
        if health.failed_attempts:
            raise BrokerUnreachableError(f"the cloud sink cannot connect to the broker {url}: {health.last_error}")
        if time.monotonic() > deadline:
            raise BrokerUnreachableError(f"no MQTT connection to the broker {url} within {timeout_s:.0f}s")
        await asyncio.sleep(0.05)


def gateway_config(
    scenario: Scenario, broker: BrokerUrl, state_dir: Path, extra: dict[str, Any] | None = None
) -> GatewayConfig:
    data: dict[str, Any] = {
        "store_id": "sim-store-1",
        "gateway_id": "sim-gw-1",
        **scenario.gateway,
        **(extra or {}),
        "state_dir": str(state_dir),
    }
    broker_section = dict(data.get("broker") or {})
    broker_section.setdefault("url", str(broker))
    broker_section.setdefault("reconnect", {"min_delay_s": 0.2, "max_delay_s": 5})
    data["broker"] = broker_section
    data.setdefault("runtime", {"shutdown_grace_s": scenario.drain_timeout_s, "health_file_interval_s": 1})
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"scenario {scenario.name!r}: invalid gateway section: {exc}") from exc


def _progress_table(scenario: Scenario, elapsed: float, duration: float, gw: Gateway, sink: CloudSink) -> Table:
    stats = gw.outbox.stats if gw.outbox else None
    sink_counts = sink.store.counters
    table = Table(title=f"storeedge sim: {scenario.name}", show_header=True)
    for column in ("elapsed", "published", "acked", "backlog", "received", "duplicates", "link"):
        table.add_column(column, justify="right")
    link = gw.uplink.session.health.state if gw.uplink and gw.uplink.session else "starting"
    table.add_row(
        f"{elapsed:5.1f}/{duration:.0f}s",
        str(stats.last_seq if stats else 0),
        str(stats.acked if stats else 0),
        str(stats.backlog_messages if stats else 0),
        str(sink_counts.get("stored", 0)),
        str(sink_counts.get("duplicates", 0)),
        link,
    )
    return table


async def run_scenario(
    scenario: Scenario,
    *,
    duration_s: float | None = None,
    broker_url: BrokerUrl | None = None,
    console: Console | None = None,
    workdir: Path | None = None,
    artifacts_dir: Path | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` and return the report (see the module docstring). Files the report refers to (tag
    e-paper previews) go to ``artifacts_dir``; without it none are written."""
    console = console or Console(stderr=True)
    duration = duration_s if duration_s is not None else scenario.duration_s
    check_scenario_files(scenario)
    if broker_url is not None:
        await probe_broker(broker_url)
    with contextlib.ExitStack() as stack:
        root = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="storeedge-sim-")))
        fleet: TagFleet | None = None
        extra: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as astack:
            if scenario.tags is not None:
                fleet = TagFleet(scenario.tags)
                astack.push_async_callback(fleet.aclose)
                await fleet.astart()
                extra["tags"] = fleet.gateway_section()
            if broker_url is None:
                broker = await astack.enter_async_context(EmbeddedBroker())
                broker_url = broker.url
            config = gateway_config(scenario, broker_url, root / "gateway", extra)
            topics = GatewayTopics(config.store_id, config.gateway_id)
            sink = CloudSink(broker_url, root / "cloud.sqlite3", client_id=f"storeedge-sim-sink-{uuid.uuid4().hex[:8]}")
            clock = SimClock.from_config(scenario.clock, config.footfall.day) if scenario.clock else None
            gateway = Gateway(config, extra_agents=loadgen_agents(scenario.loadgen), clock=clock)
            if scenario.badges is not None:
                await astack.enter_async_context(scenario_badges(scenario.badges, gateway.snapshot))
            stop = asyncio.Event()
            started = time.monotonic()
            tag_errors: list[str] = []
            try:
                async with asyncio.TaskGroup() as group:
                    sink_task = group.create_task(sink.run(), name="sim:cloud-sink")
                    await _wait_for_broker(sink, broker_url)
                    gateway_task = group.create_task(gateway.run(stop), name="sim:gateway")
                    fleet_task = None
                    if fleet is not None:
                        drive = fleet.drive(gateway, sink, topics, started + duration)
                        fleet_task = group.create_task(_quietly(drive, tag_errors), name="sim:tag-fleet")
                    with Live(console=console, refresh_per_second=4, transient=False) as live:
                        while (
                            (elapsed := time.monotonic() - started) < duration
                            and not gateway_task.done()
                            and not (_footage_finished(gateway) and not _awaiting_day(scenario, gateway))
                            and not _agent_crashed(gateway)
                            and not (fleet_task is not None and fleet_task.done())
                        ):
                            live.update(_progress_table(scenario, elapsed, duration, gateway, sink))
                            await asyncio.sleep(0.25)
                        if fleet_task is not None and not fleet_task.done():
                            fleet_task.cancel()
                            tag_errors.append(f"the tag batch did not finish within {duration:.0f}s")
                        stop.set()
                        await gateway_task
                        # Give the last acknowledged messages time to reach the sink.
                        deadline = time.monotonic() + 5
                        while time.monotonic() < deadline:
                            received = sink.store.counters.get("stored", 0)
                            if gateway.outbox and received >= gateway.outbox.stats.acked:
                                break
                            await asyncio.sleep(0.1)
                        live.update(_progress_table(scenario, time.monotonic() - started, duration, gateway, sink))
                    sink.session.request_stop()
                    await sink_task
                report = build_report(scenario, config, gateway, sink, time.monotonic() - started, broker_url)
                if fleet is not None:
                    report["tags"] = fleet.report(sink, topics, gateway, artifacts_dir)
                    report["tags"]["errors"] = tag_errors
                report["failures"] = report_failures(report)
                return report
            except* BrokerUnreachableError as errors:
                # one message for the caller, not a task group's traceback
                raise errors.exceptions[0] from None
            finally:
                sink.close()
    raise AssertionError("unreachable")


async def _quietly(work: Coroutine[Any, Any, None], errors: list[str]) -> None:
    """Run scenario work whose failure belongs in the report (e.g. a time-out), not in a crash of the run."""
    try:
        await work
    except (TimeoutError, RuntimeError) as exc:
        errors.append(str(exc))


def _footage_finished(gateway: Gateway) -> bool:
    """True once every camera of the scenario has played its footage to the end."""
    snapshot = gateway.snapshot().get("agents", {})
    cameras = [agent for name, agent in snapshot.items() if name.startswith("footfall-")]
    return bool(cameras) and all(agent["state"] == "finished" for agent in cameras)


def _awaiting_day(scenario: Scenario, gateway: Gateway) -> bool:
    """True while a scenario with a simulated clock has not yet seen its store day close."""
    day = gateway.store_day
    return scenario.clock is not None and day is not None and not day.health.counters.get("daily_records_sent")


def _agent_crashed(gateway: Gateway) -> bool:
    """True once any agent has crashed: the run has failed, and playing on would only repeat the crash."""
    return any(agent["restarts"] > 0 for agent in gateway.snapshot().get("agents", {}).values())


def report_failures(report: dict[str, Any]) -> list[str]:
    """Why the run in ``report`` failed, one line per reason; empty when it passed."""
    failures = []
    lost = report["uplink"]["lost"]
    if lost:
        failures.append(f"{lost} message(s) lost between the gateway and the cloud")
    for name, agent in report["agents"].items():
        if agent["restarts"]:
            failures.append(f"agent {name} crashed {agent['restarts']} time(s), last: {agent['last_error']}")
    tags = report.get("tags")
    if tags is not None:
        if tags["applied"] != tags["total"]:
            failures.append(f"tags applied {tags['applied']}/{tags['total']} (failed {tags['failed']})")
        failures += [f"tags: {error}" for error in tags["errors"]]
    store_day = report.get("store_day", {})
    daily = store_day.get("daily")
    if daily is not None:
        if daily["repeated_record_ids"]:
            failures.append(f"daily records arrived more than once: {', '.join(daily['repeated_record_ids'])}")
        if store_day.get("expect_daily") and not daily["messages"]:
            failures.append("the run crossed a day boundary but no counts/daily record arrived")
    return failures


def build_report(
    scenario: Scenario, config: GatewayConfig, gateway: Gateway, sink: CloudSink, elapsed: float, broker: BrokerUrl
) -> dict[str, Any]:
    assert gateway.outbox is not None
    stats = gateway.outbox.stats
    received_seqs = sink.store.received_ids(config.gateway_id)
    published = stats.last_seq  # fresh state dir: every seq 1..last_seq was produced in this run
    received = sum(1 for s in received_seqs if 1 <= s <= published)
    dropped = sum(stats.dropped.values())
    sink_report = sink.store.report()
    cameras = footfall_report(config, sink, scenario.ground_truth)
    return {
        "scenario": scenario.name,
        "duration_s": round(elapsed, 2),
        "broker": str(broker),
        "gateway": {"store_id": config.store_id, "gateway_id": config.gateway_id},
        "uplink": {
            "published": published,
            "acked": stats.acked,
            "received": received,
            "lost": max(0, published - received - dropped),
            "dropped": dropped,
            "duplicates": sink_report["duplicates"],
            "backlog_at_end": stats.backlog_messages,
        },
        "cloud": sink_report,
        "footfall": cameras,
        "store_day": {
            **store_day_report(config, sink, cameras, scenario.store_truth),
            "expect_daily": scenario.clock is not None and bool(config.cameras),
        },
        "agents": gateway.snapshot().get("agents", {}),
    }


def print_summary(report: dict[str, Any], console: Console) -> None:
    up = report["uplink"]
    table = Table(title=f"sim summary: {report['scenario']} ({report['duration_s']}s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("published", "acked", "received", "lost", "dropped", "duplicates", "backlog_at_end"):
        table.add_row(key, str(up[key]))
    for name, agent in report["agents"].items():
        table.add_row(f"agent {name}", f"{agent['state']} (restarts {agent['restarts']})")
    for camera, entry in report.get("footfall", {}).items():
        for line, counts in entry["lines"].items():
            measured = counts["measured"]
            text = (
                f"events {measured['events_a_to_b']}/{measured['events_b_to_a']}, "
                f"visits {measured['visits_a_to_b']}/{measured['visits_b_to_a']}"
            )
            truth = counts.get("ground_truth")
            if truth:
                text += (
                    f" (truth {truth.get('events_a_to_b')}/{truth.get('events_b_to_a')}, "
                    f"{truth.get('visits_a_to_b')}/{truth.get('visits_b_to_a')})"
                )
            table.add_row(f"{camera} {line} a>b/b>a", text)
    store = report.get("store_day")
    if store and report.get("footfall"):
        visitors = store["visitors"]
        text = f"{visitors['measured']['unique_visitors']} (returning {visitors['measured']['returning']})"
        truth = visitors.get("ground_truth", {}).get("unique_visitors")
        if truth is not None:
            text += f" (truth {truth})"
        table.add_row("unique visitors" + (" (re-id)" if store["reidentification"] else ""), text)
        for day in store["daily"]["days"]:
            figures = ", ".join(f"{key} {day[key]}" for key in ("entries", "exits", "unique_visitors", "returning"))
            table.add_row(f"counts/daily {day['record_id']}", figures)
    tags = report.get("tags")
    if tags:
        table.add_row("tags applied/total", f"{tags['applied']}/{tags['total']} (failed {tags['failed']})")
        table.add_row("tags image bytes sent", f"{tags['bytes_sent']} of {tags['raw_image_bytes']} raw")
        table.add_row("tags e-paper hash match", f"{tags['hash_match']}/{tags['total']}")
        if tags.get("resend"):
            table.add_row(
                "tags resend: unchanged, bytes", f"{tags['resend'].get('unchanged')}, {tags['resend']['bytes_sent']}"
            )
        for error in tags.get("errors", []):
            table.add_row("tags error", error)
    for gateway, status in report["cloud"]["status"].items():
        table.add_row(f"status {gateway}", json.dumps(status))
    failures = report.get("failures", [])
    for failure in failures:
        table.add_row("[red]FAILED[/]", escape(failure))
    table.add_row("result", "[red]failed[/]" if failures else "[green]passed[/]")
    console.print(table)
