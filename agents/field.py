"""Field commands for technicians: ``storeedge tags list|show|ping|led`` and ``storeedge counts --live``.

Reading is local: ``tags list`` / ``tags show`` open the tag service's SQLite store read-only, so they work
whether or not the gateway runs. Acting goes through the gateway: ``tags ping`` / ``tags led`` send the
same ``tags.ping`` / ``tags.led`` command the cloud would, over the gateway's own broker (credentials and
TLS from its config), and wait for the result. Going through the gateway rather than opening the serial
port here matters on an RS-485 bus: two masters talking at once would garble each other's frames.
``counts --live`` subscribes to the gateway's ``counts/<camera>`` streams and prints each interval as it
arrives.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from agents.core.config import GatewayConfig
from agents.core.errors import StoreedgeError
from agents.uplink.mqtt_session import MqttSession, SessionOptions, password_from
from protocols.mqtt_v1 import COMMAND_RESULT, GatewayTopics, decode_envelope

__all__ = ["FieldError", "call_gateway", "follow_streams", "tag_rows"]

_TAG_COLUMNS = (
    "address", "bus", "panel", "state", "applied_hash", "battery_mv", "last_seen", "last_error", "attempts", "updates",
    "bytes_sent", "desired_hash", "show_at",
)  # fmt: skip


class FieldError(StoreedgeError):
    """A field command could not do its job (no tag store, gateway not answering, ...)."""


def tag_rows(config: GatewayConfig, *, problems_only: bool = False, address: str | None = None) -> list[dict[str, Any]]:
    """Rows of the tag store (read-only). ``problems_only``: failed, low battery or not seen for a day."""
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
        rows = [dict(zip(_TAG_COLUMNS, row, strict=True)) for row in db.execute(sql + " ORDER BY address", params)]
    finally:
        db.close()
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
    broker = config.broker
    url = broker.parsed_url
    user, password = password_from(broker.username, broker.password_file, url)
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


async def call_gateway(
    config: GatewayConfig, ctype: str, args: dict[str, Any], timeout_s: float = 30.0
) -> dict[str, Any]:
    """Send one command to the running gateway through its broker and return the command result."""
    topics = GatewayTopics(config.store_id, config.gateway_id)
    command_id = f"field-{uuid.uuid4().hex[:12]}"
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[dict[str, Any]] = loop.create_future()

    def deliver(result: dict[str, Any]) -> None:
        if not answer.done():
            answer.set_result(result)

    def on_message(_generation: int, message: paho.MQTTMessage) -> None:  # paho's thread
        try:
            data = decode_envelope(bytes(message.payload)).data
        except ValueError:
            return  # not an envelope: not the answer we wait for
        if isinstance(data, dict) and data.get("command_id") == command_id:
            loop.call_soon_threadsafe(deliver, data)

    session = _session(config, "field-command", ((topics.stream(COMMAND_RESULT), 1),), on_message)
    payload = json.dumps({"id": command_id, "type": ctype, "args": args}).encode()
    async with asyncio.TaskGroup() as group:
        runner = group.create_task(session.run(), name="field:mqtt")
        try:
            async with asyncio.timeout(timeout_s):
                await session.wait_connected()
                generation = session.connected_generation
                if generation is None or not session.publish_many(generation, [(topics.command, payload)]):
                    raise FieldError("lost the broker connection while sending the command")
                return await answer
        except TimeoutError:
            raise FieldError(
                f"no answer from gateway {config.gateway_id} within {timeout_s:.0f}s "
                "(is it running and connected? `storeedge doctor`)"
            ) from None
        finally:
            session.request_stop()
            await runner


async def follow_streams(
    config: GatewayConfig, prefix: str, emit: Callable[[str, Any], None], stop: asyncio.Event
) -> None:
    """Print every message of the gateway's streams under ``prefix`` (e.g. ``counts/``) until ``stop``."""
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
    async with asyncio.TaskGroup() as group:
        runner = group.create_task(session.run(), name="field:follow")
        await stop.wait()
        session.request_stop()
        await runner
