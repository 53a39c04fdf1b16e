"""Downlink commands end to end: cloud -> mosquitto -> gateway command agent -> outbox -> cloud.

Each test runs a real :class:`Gateway` against the ``mosquitto`` fixture and talks to it the way a cloud
operator would: a plain paho client publishes commands (QoS 1) on ``storeedge/v1/<store>/<gw>/cmd`` and
collects the ``cmd/result`` and ``heartbeat`` envelopes the gateway publishes back.

What is pinned down here (acceptance criteria of the command agent):

* malformed JSON, oversized, unknown and schema-violating commands each get an ``error`` result whose
  reason names the problem (and echoes the command id when one could be read);
* handler failures and time-outs become ``error`` results; ``ping`` and ``health`` answer ``ok``;
* commands are idempotent by id: the handler runs once, repeats are answered with the stored result
  marked ``duplicate`` (also across a gateway restart, and when the repeat races the first delivery);
* a bad command never disturbs other work: heartbeats keep flowing, other commands keep being answered
  and the command agent itself never crashes or restarts.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict

from agents.core.config import BrokerUrl
from agents.core.supervisor import Agent
from agents.gateway.runtime import Gateway
from agents.uplink.commands import CommandAgent, NoArgs
from protocols.errors import ProtocolError
from protocols.mqtt_v1 import COMMAND_RESULT, HEARTBEAT, CommandResult, GatewayTopics, decode_envelope
from tests.brokers import Mosquitto
from tests.conftest import gateway_config, wait_for

STORE_ID = "store-1"
GATEWAY_ID = "gw-1"
MAX_BYTES = 4096
TIMEOUT_S = 0.5

_client_ids = itertools.count(1)


# -- the cloud side ------------------------------------------------------------------------------


class CloudClient:
    """A plain paho client that publishes commands and records the gateway's uplink envelopes.

    Envelopes are de-duplicated by their ``id`` (QoS 1 is at least once), so every entry in
    :meth:`results` is one answer the gateway produced.
    """

    def __init__(self, url: BrokerUrl, topics: GatewayTopics) -> None:
        self.topics = topics
        self._url = url
        self._lock = threading.Lock()
        self._seen_ids: set[str] = set()
        self._results: list[CommandResult] = []
        self._heartbeats = 0
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-cloud-{next(_client_ids)}",
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message

    # paho callbacks (network thread) ----------------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _flags: Any, _reason: Any, _props: Any) -> None:
        client.subscribe(f"{self.topics.base}/#", qos=1)

    def _on_subscribe(self, _c: paho.Client, _u: Any, _mid: int, _reasons: Any, _props: Any) -> None:
        self._subscribed.set()

    def _on_message(self, _c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
        if message.topic not in (self.topics.stream(COMMAND_RESULT), self.topics.stream(HEARTBEAT)):
            return
        try:
            envelope = decode_envelope(bytes(message.payload))
        except ProtocolError:
            return
        with self._lock:
            if envelope.id in self._seen_ids:
                return
            self._seen_ids.add(envelope.id)
            if envelope.stream == HEARTBEAT:
                self._heartbeats += 1
            else:
                self._results.append(CommandResult.model_validate(envelope.data))

    # test API (event loop) ----------------------------------------------------------------------

    async def start(self) -> None:
        self._client.connect(self._url.host, self._url.port, keepalive=30)
        self._client.loop_start()
        await wait_for(self._subscribed.is_set, timeout=10, what="the cloud client's SUBACK")

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def heartbeats(self) -> int:
        with self._lock:
            return self._heartbeats

    def results(self) -> list[CommandResult]:
        with self._lock:
            return list(self._results)

    def results_for(self, command_id: str) -> list[CommandResult]:
        return [r for r in self.results() if r.command_id == command_id]

    async def send(self, payload: bytes | dict[str, Any]) -> None:
        """Publish one command with QoS 1 and wait for the broker's PUBACK."""
        raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        info = self._client.publish(self.topics.command, raw, qos=1)
        await wait_for(info.is_published, timeout=10, what="the broker's PUBACK for a command")

    async def answer(self, command_id: str, *, within_s: float = 10) -> CommandResult:
        """Wait for the first answer to ``command_id`` (other commands may be outstanding)."""
        await wait_for(lambda: self.results_for(command_id), timeout=within_s, what=f"the result of {command_id}")
        return self.results_for(command_id)[0]

    async def request(
        self, payload: bytes | dict[str, Any], *, gateway: Gateway, within_s: float = 10
    ) -> CommandResult:
        """Send one command and return the single answer it gets (only one command may be outstanding)."""
        before = len(self.results())
        await self.send(payload)
        try:
            await wait_for(lambda: len(self.results()) > before, timeout=within_s, what="a command result")
        except AssertionError as exc:
            commands = gateway.commands
            health = commands.health.as_dict() if commands is not None else None
            raise AssertionError(
                f"no result for command {str(payload)[:200]} within {within_s}s; command agent health: {health}"
            ) from exc
        new = self.results()[before:]
        assert len(new) == 1, f"expected exactly one answer, got {new}"
        return new[0]


# -- test command types --------------------------------------------------------------------------


class EchoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    times: int = 1


class TestHandlers:
    """Command types added to the gateway for these tests, with call counters."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, slow_s: float = 5.0, count_delay_s: float = 0.0) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.slow_s = slow_s
        self.count_delay_s = count_delay_s
        self.slow_cancelled = 0
        self.count_started = asyncio.Event()

    def install(self, gateway: Gateway) -> list[Agent]:
        commands = gateway.commands
        assert commands is not None, "extra_agents runs after the command agent exists"
        commands.register("test.echo", EchoArgs, self.echo, "Echo text a number of times.")
        commands.register("test.boom", NoArgs, self.boom, "Always raises.")
        commands.register("test.slow", NoArgs, self.slow, "Sleeps longer than commands.timeout_s.")
        commands.register("test.count", NoArgs, self.count, "Counts its calls.")
        commands.register("test.unjson", NoArgs, self.unjson, "Returns something that is not JSON.")
        commands.register("test.big", NoArgs, self.big, "Returns more than the outbox takes in one message.")
        commands.register("test.work", NoArgs, self.work, "Legitimate work that takes a little while.")
        return []

    async def echo(self, args: EchoArgs) -> dict[str, Any]:
        self.calls["test.echo"] += 1
        return {"text": args.text * args.times}

    async def boom(self, _args: NoArgs) -> None:
        self.calls["test.boom"] += 1
        raise RuntimeError("kaboom 42")

    async def slow(self, _args: NoArgs) -> str:
        self.calls["test.slow"] += 1
        try:
            await asyncio.sleep(self.slow_s)
        except asyncio.CancelledError:
            self.slow_cancelled += 1
            raise
        return "too late"

    async def count(self, _args: NoArgs) -> dict[str, int]:
        self.calls["test.count"] += 1
        n = self.calls["test.count"]
        self.count_started.set()
        if self.count_delay_s:
            await asyncio.sleep(self.count_delay_s)
        return {"n": n}

    async def unjson(self, _args: NoArgs) -> set[int]:
        self.calls["test.unjson"] += 1
        return {1, 2, 3}

    async def big(self, _args: NoArgs) -> dict[str, str]:
        self.calls["test.big"] += 1
        return {"blob": "x" * 100_000}

    async def work(self, _args: NoArgs) -> dict[str, bool]:
        self.calls["test.work"] += 1
        await asyncio.sleep(0.4)
        return {"done": True}


# -- running a gateway ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_gateway(
    tmp_path: Path, broker: Mosquitto, handlers: TestHandlers, **overrides: Any
) -> AsyncIterator[tuple[Gateway, CloudClient]]:
    """A gateway with ``handlers`` installed and a connected cloud client; both closed on exit."""
    sections: dict[str, Any] = {
        "commands": {"max_bytes": MAX_BYTES, "timeout_s": TIMEOUT_S},
        # Every answer has reached the cloud before a test stops its gateway, so a long flush is useless;
        # a short grace keeps shutdown quick even when a lone PUBACK is still waiting in the outbox.
        "runtime": {"restart_min_delay_s": 0.05, "restart_max_delay_s": 0.5, "shutdown_grace_s": 1.0},
    }
    for key, value in overrides.items():
        sections[key] = {**sections[key], **value} if key in sections and isinstance(value, dict) else value
    config = gateway_config(tmp_path, broker.url, **sections)
    cloud = CloudClient(broker.url, GatewayTopics(STORE_ID, GATEWAY_ID))
    await cloud.start()
    try:
        gateway = Gateway(config, extra_agents=handlers.install)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test:gateway")
        try:
            # A heartbeat at the cloud proves the gateway is connected and its cmd subscription is active
            # (the subscription is sent before anything is published on the same connection).
            await wait_for(lambda: cloud.heartbeats >= 1 or task.done(), timeout=15, what="the first heartbeat")
            if task.done():
                task.result()  # surface a start-up failure
            yield gateway, cloud
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=20)
    finally:
        cloud.stop()


def command_agent(gateway: Gateway) -> CommandAgent:
    assert gateway.commands is not None
    return gateway.commands


def assert_command_agent_never_crashed(gateway: Gateway) -> None:
    health = command_agent(gateway).health
    assert health.restarts == 0, f"the command agent crashed: {health.last_error}"
    assert health.state == "running"


# -- error results -------------------------------------------------------------------------------


async def test_malformed_json_gets_an_error_result(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        for payload in (b'{"id": "m-1", "type": "ping"', b"not json at all", b"\xff\xfe\x00garbage", b""):
            result = await cloud.request(payload, gateway=gateway)
            assert result.status == "error", payload
            assert result.reason is not None and "malformed JSON" in result.reason, (payload, result)
            assert result.command_id is None and result.result is None and result.duplicate is False

        result = await cloud.request(b'["ping"]', gateway=gateway)
        assert result.status == "error"
        assert result.reason == "invalid command: payload must be a JSON object"
        assert_command_agent_never_crashed(gateway)


async def test_deeply_nested_json_gets_an_error_result_without_crashing_the_agent(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """3000 nested arrays fit in max_bytes but make ``json.loads`` raise RecursionError."""
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        for payload in (b"[" * 3000, b'{"id": "n-1", "type": "ping", "args": {"a": ' + b"[" * 3000 + b"}}"):
            assert len(payload) <= MAX_BYTES
            result = await cloud.request(payload, gateway=gateway, within_s=5)
            assert result.status == "error"
            assert result.reason is not None and "JSON" in result.reason, result
        assert_command_agent_never_crashed(gateway)
        ping = await cloud.request({"id": "n-ping", "type": "ping"}, gateway=gateway)
        assert ping.status == "ok"


async def test_oversized_command_gets_an_error_result(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers, commands={"max_bytes": 1024}) as (gateway, cloud):
        body = json.dumps({"id": "big-1", "type": "ping"}).encode()
        too_big = body.ljust(1025, b" ")  # valid JSON apart from its size
        result = await cloud.request(too_big, gateway=gateway)
        assert result.status == "error"
        assert result.reason == "command too large: 1025 bytes > limit 1024"
        assert result.command_id is None  # an oversized payload is not parsed at all

        # A command of exactly max_bytes is accepted.
        at_limit = json.dumps({"id": "big-2", "type": "ping"}).encode().ljust(1024, b" ")
        result = await cloud.request(at_limit, gateway=gateway)
        assert result.status == "ok" and result.command_id == "big-2", result
        assert_command_agent_never_crashed(gateway)


async def test_unknown_command_type_names_it_and_lists_known_types(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        result = await cloud.request({"id": "u-1", "type": "self.destruct"}, gateway=gateway)
        assert result.status == "error"
        assert result.command_id == "u-1" and result.type == "self.destruct"
        assert result.reason is not None
        assert "unknown command type 'self.destruct'" in result.reason
        known = result.reason.split("known types: ", 1)[1].split(", ")
        assert known == sorted(known)
        assert {"ping", "health", "test.echo", "test.boom", "test.slow"} <= set(known)
        assert known == command_agent(gateway).command_types
        assert_command_agent_never_crashed(gateway)


async def test_schema_violations_name_the_field_and_echo_the_id(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    # (command, field named in the reason, expected command_id, expected type)
    cases: list[tuple[dict[str, Any], str, str | None, str | None]] = [
        ({"type": "ping"}, "field 'id'", None, "ping"),
        ({"id": 7, "type": "ping"}, "field 'id'", None, "ping"),
        ({"id": "", "type": "ping"}, "field 'id'", "", "ping"),
        ({"id": "s-nt"}, "field 'type'", "s-nt", None),
        ({"id": "s-bad-type", "type": "Bad Type!"}, "field 'type'", "s-bad-type", "Bad Type!"),
        ({"id": "s-extra", "type": "ping", "bogus": 1}, "field 'bogus'", "s-extra", "ping"),
        ({"id": "s-args-list", "type": "ping", "args": [1]}, "field 'args'", "s-args-list", "ping"),
        ({"id": "s-ping-args", "type": "ping", "args": {"x": 1}}, "field 'x'", "s-ping-args", "ping"),
        (
            {"id": "s-echo-type", "type": "test.echo", "args": {"text": "a", "times": "many"}},
            "field 'times'",
            "s-echo-type",
            "test.echo",
        ),
        (
            {"id": "s-echo-missing", "type": "test.echo", "args": {"times": 2}},
            "field 'text'",
            "s-echo-missing",
            "test.echo",
        ),
    ]
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        for command, field, command_id, ctype in cases:
            result = await cloud.request(command, gateway=gateway)
            assert result.status == "error", (command, result)
            assert result.reason is not None and field in result.reason, (command, result.reason)
            assert result.command_id == command_id, (command, result)
            assert result.type == ctype, (command, result)
            assert result.result is None and result.duplicate is False
        # Bad arguments are the command's problem: the handler never ran.
        assert handlers.calls["test.echo"] == 0
        ok = await cloud.request(
            {"id": "s-echo-ok", "type": "test.echo", "args": {"text": "ab", "times": 2}}, gateway=gateway
        )
        assert ok.status == "ok" and ok.result == {"text": "abab"} and ok.reason is None
        assert handlers.calls["test.echo"] == 1
        assert_command_agent_never_crashed(gateway)


async def test_failing_handler_gets_an_error_result_with_the_exception(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        result = await cloud.request({"id": "b-1", "type": "test.boom"}, gateway=gateway)
        assert result.status == "error" and result.command_id == "b-1" and result.type == "test.boom"
        assert result.reason == "RuntimeError: kaboom 42"

        result = await cloud.request({"id": "b-2", "type": "test.unjson"}, gateway=gateway)
        assert result.status == "error" and result.command_id == "b-2"
        assert result.reason is not None and result.reason.startswith("TypeError:"), result.reason
        assert "JSON serializable" in result.reason
        assert handlers.calls["test.boom"] == 1 and handlers.calls["test.unjson"] == 1
        assert_command_agent_never_crashed(gateway)


async def test_slow_handler_times_out_and_is_cancelled(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers(slow_s=30)
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        started = time.monotonic()
        result = await cloud.request({"id": "t-1", "type": "test.slow"}, gateway=gateway)
        elapsed = time.monotonic() - started
        assert result.status == "error" and result.command_id == "t-1"
        assert result.reason == f"timed out after {TIMEOUT_S}s"
        assert TIMEOUT_S <= elapsed < 10
        assert handlers.slow_cancelled == 1, "the timed-out handler must be cancelled, not left running"
        assert_command_agent_never_crashed(gateway)


async def test_result_too_large_for_the_outbox_gets_an_error_and_disturbs_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A handler result bigger than outbox.max_message_bytes must still be answered (with an error),
    and must not cancel another command that is running at the same time."""
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers, outbox={"max_message_bytes": 32 * 1024}) as (
        gateway,
        cloud,
    ):
        await cloud.send({"id": "w-1", "type": "test.work"})  # still running when test.big fails
        await wait_for(lambda: handlers.calls["test.work"] == 1, what="test.work to start")
        big = await cloud.request({"id": "big-result", "type": "test.big"}, gateway=gateway, within_s=5)
        assert big.status == "error" and big.command_id == "big-result", big
        assert big.reason is not None and "large" in big.reason, big.reason
        await cloud.answer("w-1", within_s=5)
        assert [r.status for r in cloud.results_for("w-1")] == ["ok"]
        assert_command_agent_never_crashed(gateway)


# -- ok results ----------------------------------------------------------------------------------


async def test_ping_and_health_answer_ok(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        before = time.time()
        ping = await cloud.request({"id": "p-1", "type": "ping", "args": {}, "ts": before}, gateway=gateway)
        assert ping.status == "ok" and ping.command_id == "p-1" and ping.type == "ping"
        assert ping.reason is None and ping.duplicate is False
        assert isinstance(ping.result, dict) and ping.result["pong"] is True
        assert set(ping.result) == {"pong", "ts"}
        assert before - 1 <= ping.result["ts"] <= time.time() + 1

        health = await cloud.request({"id": "h-1", "type": "health"}, gateway=gateway)
        assert health.status == "ok" and health.command_id == "h-1" and health.type == "health"
        snapshot = health.result
        assert isinstance(snapshot, dict)
        assert set(snapshot["agents"]) == {"uplink", "commands", "heartbeat"}
        assert snapshot["agents"]["commands"]["state"] == "running"
        assert snapshot["agents"]["commands"]["counters"]["commands_ok"] >= 1  # the ping above
        assert snapshot["gateway_id"] == GATEWAY_ID and snapshot["store_id"] == STORE_ID
        assert "backlog_messages" in snapshot["outbox"]
        assert_command_agent_never_crashed(gateway)


# -- idempotency ---------------------------------------------------------------------------------


async def test_repeated_command_id_runs_the_handler_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        first = await cloud.request({"id": "c-1", "type": "test.count"}, gateway=gateway)
        assert first.status == "ok" and first.result == {"n": 1} and first.duplicate is False

        for _ in range(2):
            again = await cloud.request({"id": "c-1", "type": "test.count"}, gateway=gateway)
            assert again.duplicate is True
            assert again.model_copy(update={"duplicate": False}) == first  # the stored answer, verbatim
        assert handlers.calls["test.count"] == 1

        # The id alone decides: a repeat with other content still gets the stored answer.
        other = await cloud.request({"id": "c-1", "type": "test.echo", "args": {"text": "x"}}, gateway=gateway)
        assert other.duplicate is True and other.type == "test.count" and other.result == {"n": 1}
        assert handlers.calls["test.echo"] == 0

        # Error results are remembered too.
        boom = await cloud.request({"id": "c-boom", "type": "test.boom"}, gateway=gateway)
        boom_again = await cloud.request({"id": "c-boom", "type": "test.boom"}, gateway=gateway)
        assert boom.status == boom_again.status == "error" and boom_again.reason == boom.reason
        assert boom_again.duplicate is True and handlers.calls["test.boom"] == 1

        # A new id runs again.
        second = await cloud.request({"id": "c-2", "type": "test.count"}, gateway=gateway)
        assert second.result == {"n": 2} and second.duplicate is False
        assert handlers.calls["test.count"] == 2
        assert command_agent(gateway).health.counters["commands_duplicate"] == 4


async def test_repeat_while_the_first_is_still_running_does_not_run_it_again(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    handlers = TestHandlers(count_delay_s=0.3)  # well within commands.timeout_s
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        await cloud.send({"id": "r-1", "type": "test.count"})
        await asyncio.wait_for(handlers.count_started.wait(), 10)
        await cloud.send({"id": "r-1", "type": "test.count"})  # the first delivery is still running
        await cloud.answer("r-1")
        await asyncio.sleep(0.3)  # room for a (wrong) second execution or second answer to show up
        assert handlers.calls["test.count"] == 1
        assert [(r.status, r.result, r.duplicate) for r in cloud.results_for("r-1")] == [("ok", {"n": 1}, False)]

        again = await cloud.request({"id": "r-1", "type": "test.count"}, gateway=gateway)
        assert again.duplicate is True and again.result == {"n": 1}
        assert handlers.calls["test.count"] == 1


async def test_back_to_back_repeats_of_one_id_run_the_handler_once(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Two deliveries of one id that reach the agent together (a cloud retry racing a QoS 1 redelivery,
    or a slow SQLite disk) must still run the handler once.

    The command log's database thread is held busy while both arrive, so both deliveries are queued
    before the first one has been recorded: the interleaving a slow disk produces in the field.
    """
    handlers = TestHandlers(count_delay_s=0.2)
    async with running_gateway(tmp_path, mosquitto, handlers) as (gateway, cloud):
        agent = command_agent(gateway)
        assert gateway.uplink is not None
        received_before = gateway.uplink.health.counters.get("commands_received", 0)
        release = threading.Event()
        blocker = agent._executor.submit(release.wait, 10)  # the command log's only (SQLite) thread
        try:
            await cloud.send({"id": "race-1", "type": "test.count"})
            await cloud.send({"id": "race-1", "type": "test.count"})
            await wait_for(
                lambda: (
                    gateway.uplink is not None
                    and gateway.uplink.health.counters.get("commands_received", 0) == received_before + 2
                ),
                what="both deliveries at the gateway",
            )
            # Both deliveries taken off the agent's queue means both handling tasks exist; they cannot get
            # past their first command-log call until the blocker is released.
            await wait_for(agent._queue.empty, what="both deliveries dequeued")
            await asyncio.sleep(0.05)
        finally:
            release.set()
        await asyncio.wait_for(asyncio.wrap_future(blocker), 10)
        await cloud.answer("race-1")
        await asyncio.sleep(0.5)  # room for a second execution to finish and answer
        assert handlers.calls["test.count"] == 1, "the handler ran once per delivery instead of once per id"
        answers = cloud.results_for("race-1")
        assert [r.duplicate for r in answers].count(False) == 1, answers


async def test_command_ids_are_remembered_across_a_restart(tmp_path: Path, mosquitto: Mosquitto) -> None:
    first_run = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, first_run) as (gateway, cloud):
        first = await cloud.request({"id": "keep-1", "type": "test.count"}, gateway=gateway)
        assert first.status == "ok" and first.result == {"n": 1}

    second_run = TestHandlers()
    async with running_gateway(tmp_path, mosquitto, second_run) as (gateway, cloud):
        again = await cloud.request({"id": "keep-1", "type": "test.count"}, gateway=gateway)
        assert again.duplicate is True and again.result == {"n": 1} and again.status == "ok"
        assert second_run.calls["test.count"] == 0


# -- isolation -----------------------------------------------------------------------------------


async def test_bad_commands_never_disturb_other_work(tmp_path: Path, mosquitto: Mosquitto) -> None:
    handlers = TestHandlers(slow_s=30)
    overrides = {"commands": {"max_bytes": MAX_BYTES, "timeout_s": 1.5}}
    async with running_gateway(tmp_path, mosquitto, handlers, **overrides) as (gateway, cloud):
        heartbeats_before = cloud.heartbeats
        bad: list[bytes | dict[str, Any]] = [
            {"id": "x-slow", "type": "test.slow"},
            b"{not json",
            json.dumps({"id": "x-big", "type": "ping"}).encode().ljust(MAX_BYTES + 1, b" "),
            {"id": "x-unknown", "type": "no.such.command"},
            {"type": "ping"},
            {"id": "x-extra", "type": "ping", "what": True},
            {"id": "x-args", "type": "ping", "args": {"x": 1}},
            {"id": "x-boom", "type": "test.boom"},
            {"id": "x-unjson", "type": "test.unjson"},
        ]
        for payload in bad:
            await cloud.send(payload)  # all at once: no waiting for answers in between
        await cloud.send({"id": "x-ping", "type": "ping"})
        ping = await cloud.answer("x-ping")
        assert ping.status == "ok" and ping.command_id == "x-ping"
        # The slow command is still running: the ping did not have to wait for it.
        assert not cloud.results_for("x-slow")

        await wait_for(lambda: len(cloud.results()) == len(bad) + 1, timeout=10, what="one answer per command")
        await asyncio.sleep(0.3)
        results = cloud.results()
        assert len(results) == len(bad) + 1, "every command gets exactly one answer"
        assert [r.status for r in results].count("ok") == 1
        assert cloud.results_for("x-slow")[0].reason == "timed out after 1.5s"

        # Heartbeats kept flowing all along (0.5 s interval) and keep flowing now.
        await wait_for(lambda: cloud.heartbeats >= heartbeats_before + 3, timeout=10, what="heartbeats to continue")
        final = await cloud.request({"id": "x-ping-2", "type": "ping"}, gateway=gateway)
        assert final.status == "ok"
        snapshot = gateway.snapshot()
        assert {name: a["state"] for name, a in snapshot["agents"].items()} == {
            "uplink": "running",
            "commands": "running",
            "heartbeat": "running",
        }
        assert all(a["restarts"] == 0 for a in snapshot["agents"].values()), snapshot["agents"]
        counters = command_agent(gateway).health.counters
        assert counters["commands_invalid"] == 4  # malformed, oversized, missing id, extra key
        assert counters["commands_failed"] == 5  # unknown, bad args, boom, unjson, slow
        assert counters["commands_ok"] == 2
