"""Field commands for technicians: ``storeedge tags list|show|ping|led`` and ``storeedge counts``.

Reading is local: ``tags list`` / ``tags show`` open the tag service's SQLite store read-only, so they work
whether or not the gateway runs. Acting goes through the gateway: ``tags ping`` / ``tags led`` send the
same ``tags.ping`` / ``tags.led`` command the cloud would, over the gateway's own broker (credentials and
TLS from its config), and wait for the result. Going through the gateway rather than opening the serial
port here matters on an RS-485 bus: two masters talking at once would garble each other's frames.
``counts`` subscribes to the gateway's ``counts/<camera>`` streams and prints each interval as it
arrives.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from agents.core.errors import StoreedgeError
from agents.core.urls import redact_url
from agents.gateway.config import GatewayConfig
from agents.uplink.mqtt_session import MqttSession, SessionOptions, build_tls_context, password_from
from protocols.mqtt_v1 import COMMAND_RESULT, GatewayTopics, decode_envelope

__all__ = ["FieldError", "address_sort_key", "call_gateway", "follow_streams", "tag_rows"]

_ADDRESS_PARTS = re.compile(r"\d+|[^\d/]+")

_TAG_COLUMNS = (
    "address", "bus", "panel", "state", "applied_hash", "battery_mv", "last_seen", "last_error", "attempts", "updates",
    "bytes_sent", "desired_hash", "show_at",
)  # fmt: skip


class FieldError(StoreedgeError):
    """A field command could not do its job (no tag store, gateway not answering, ...)."""


def address_sort_key(address: str) -> tuple[tuple[int, int | str], ...]:
    """Natural order for tag addresses: ``1/2`` before ``1/10``, and numbers before names."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in _ADDRESS_PARTS.findall(address))


def tag_rows(config: GatewayConfig, *, problems_only: bool = False, address: str | None = None) -> list[dict[str, Any]]:
    """Rows of the tag store (read-only), in natural address order. ``problems_only``: failed, low battery or
    not seen for a day."""
    if config.tags is None:
        raise FieldError("this gateway has no tags: section in its config")
    path = config.tags.store_path or config.state_dir / "tags.sqlite3"
    if not path.exists():
        raise FieldError(f"no tag store at {path} yet (the tag service has not run on this gateway)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    try:
        sql = f"SELECT {', '.join(_TAG_COLUMNS)} FROM tags"
        params: tuple[str, ...] = ()
        if address is not None:
            sql += " WHERE address = ?"
            params = (address,)
        rows = [dict(zip(_TAG_COLUMNS, row, strict=True)) for row in db.execute(sql, params)]
    except sqlite3.DatabaseError as exc:
        raise FieldError(f"cannot read the tag store {path}: {exc}") from exc
    finally:
        db.close()
    rows.sort(key=lambda row: address_sort_key(str(row["address"])))
    if problems_only:
        now = time.time()
        rows = [
            row
            for row in rows
            if row["state"] == "failed"
            or (row["battery_mv"] is not None and row["battery_mv"] < 2400)
            or (row["last_seen"] is not None and now - row["last_seen"] > 86400)
        ]
    return rows


def _session(
    config: GatewayConfig, name: str, subscriptions: tuple[tuple[str, int], ...], on_message: Any
) -> MqttSession:
    """A clean, short-lived session with the gateway's own broker settings; bad TLS or password files are
    reported here, naming the setting and the file, before any connection is tried."""
    broker = config.broker
    url = broker.parsed_url
    build_tls_context(broker.tls)  # raises TlsFileError naming broker.tls.<file> and the path
    try:
        user, password = password_from(broker.username, broker.password_file, url)
    except OSError as exc:
        raise FieldError(f"broker.password_file: {broker.password_file}: {exc.strerror or exc}") from exc
    options = SessionOptions(
        url=url,
        client_id=f"storeedge-field-{uuid.uuid4().hex[:10]}",
        protocol=broker.protocol,
        tls=broker.tls,
        username=user,
        password=password,
        persistent_session=False,
        subscriptions=subscriptions,
        reconnect_min_s=0.5,
        reconnect_max_s=5.0,
    )
    return MqttSession(options, name=name, on_message=on_message)


async def _connected_or_fail(session: MqttSession, broker_url: str, timeout_s: float) -> None:
    """Wait for the broker; if it refuses us or is not reached in ``timeout_s``, say which broker and why.

    A command-line tool gives up at the first failed attempt (the gateway's own link keeps retrying; a
    technician wants the reason now, not after a back-off schedule).
    """
    deadline = time.monotonic() + timeout_s
    while session.connected_generation is None:
        if session.health.failed_attempts or time.monotonic() > deadline:
            # the session's own error names the (redacted) broker URL already
            why = session.health.last_error or f"{redact_url(broker_url)}: no connection within {timeout_s:.0f}s"
            raise FieldError(f"cannot reach the broker: {why} (is it running? `storeedge doctor`)")
        await asyncio.sleep(0.05)


def _offline_reason(status: Any) -> str | None:
    """Why a retained ``status`` message says the gateway is offline, or ``None`` when it is online."""
    if not isinstance(status, dict) or status.get("online") is not False:
        return None
    reason = str(status.get("reason") or "connection lost")
    since = status.get("since")
    if isinstance(since, int | float):
        reason += time.strftime(", since %Y-%m-%d %H:%M:%S", time.localtime(since))
    return reason


async def call_gateway(
    config: GatewayConfig,
    ctype: str,
    args: dict[str, Any],
    timeout_s: float = 30.0,
    connect_timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Send one command to the running gateway through its broker and return the command result.

    Fails fast, with one :class:`FieldError` saying what to fix, when the broker cannot be reached or when the
    gateway's retained ``status`` says it is offline; a gateway that is up answers within ``timeout_s``.
    """
    topics = GatewayTopics(config.store_id, config.gateway_id)
    command_id = f"field-{uuid.uuid4().hex[:12]}"
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[dict[str, Any]] = loop.create_future()
    offline: asyncio.Future[str] = loop.create_future()
    status_seen = False

    def deliver(future: asyncio.Future[Any], value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def on_message(_generation: int, message: paho.MQTTMessage) -> None:  # paho's thread
        nonlocal status_seen
        if message.topic == topics.status:
            status_seen = True
            try:
                reason = _offline_reason(json.loads(bytes(message.payload)))
            except ValueError:
                return
            if reason is not None:
                loop.call_soon_threadsafe(deliver, offline, reason)
            return
        try:
            data = decode_envelope(bytes(message.payload)).data
        except ValueError:
            return  # not an envelope: not the answer we wait for
        if isinstance(data, dict) and data.get("command_id") == command_id:
            loop.call_soon_threadsafe(deliver, answer, data)

    subscriptions = ((topics.stream(COMMAND_RESULT), 1), (topics.status, 1))
    session = _session(config, "field-command", subscriptions, on_message)
    payload = json.dumps({"id": command_id, "type": ctype, "args": args}).encode()
    gateway = f"{config.store_id}/{config.gateway_id}"
    # The outcome leaves the task group as a value, so a failure reaches the caller as itself, not wrapped
    # in an ExceptionGroup.
    outcome: dict[str, Any] | FieldError
    async with asyncio.TaskGroup() as group:
        runner = group.create_task(session.run(), name="field:mqtt")
        try:
            await _connected_or_fail(session, config.broker.url, connect_timeout_s)
            generation = session.connected_generation
            if generation is None or not session.publish_many(generation, [(topics.command, payload)]):
                raise FieldError(f"lost the connection to {redact_url(config.broker.url)} while sending the command")
            waiting: list[asyncio.Future[Any]] = [answer, offline]
            done, _ = await asyncio.wait(waiting, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            if answer in done:
                outcome = answer.result()
            elif offline in done:
                outcome = FieldError(
                    f"gateway {gateway} is offline ({offline.result()}): start it (`systemctl start storeedge`) "
                    "and check `storeedge doctor`"
                )
            else:
                hint = "" if status_seen else f"; it has never announced itself on {redact_url(config.broker.url)}"
                outcome = FieldError(
                    f"no answer from gateway {gateway} within {timeout_s:.0f}s{hint} "
                    "(is it running and connected? `storeedge doctor`)"
                )
        except FieldError as exc:
            outcome = exc
        finally:
            session.request_stop()
            await runner
    if isinstance(outcome, FieldError):
        raise outcome
    return outcome


async def follow_streams(
    config: GatewayConfig,
    prefix: str,
    emit: Callable[[str, Any], None],
    stop: asyncio.Event,
    connect_timeout_s: float = 10.0,
    on_following: Callable[[], None] | None = None,
) -> None:
    """Pass every message of the gateway's streams under ``prefix`` (e.g. ``counts/``) to ``emit`` until ``stop``.

    Raises :class:`FieldError` when the broker cannot be reached at first; later outages are reconnected.
    ``on_following`` is called once the subscription is up.
    """
    topics = GatewayTopics(config.store_id, config.gateway_id)
    loop = asyncio.get_running_loop()
    base = f"{topics.base}/{prefix.strip('/')}"

    def on_message(_generation: int, message: paho.MQTTMessage) -> None:
        try:
            envelope = decode_envelope(bytes(message.payload))
        except ValueError:
            return
        stream = message.topic[len(topics.base) + 1 :]
        loop.call_soon_threadsafe(emit, stream, envelope.data)

    session = _session(config, "field-follow", ((f"{base}/#", 1),), on_message)
    failure: FieldError | None = None
    async with asyncio.TaskGroup() as group:
        runner = group.create_task(session.run(), name="field:follow")
        try:
            connected = group.create_task(
                _connected_or_fail(session, config.broker.url, connect_timeout_s), name="field:connect"
            )
            stopped = group.create_task(stop.wait(), name="field:stop")
            await asyncio.wait([connected, stopped], return_when=asyncio.FIRST_COMPLETED)
            if connected.done():
                failure = connected.exception()  # type: ignore[assignment]  # only FieldError escapes it
                if failure is None:
                    if on_following is not None:
                        on_following()
                    await stopped
            connected.cancel()
            stopped.cancel()
        finally:
            session.request_stop()
            await runner
    if failure is not None:
        raise failure
