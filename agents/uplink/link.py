"""The uplink agent: drains the durable outbox to the broker over one MQTT session.

Delivery contract (QoS 1, at least once, de-duplicated by ``id`` in the cloud):

* The publisher reads committed messages from the outbox in ``seq`` order and keeps at most
  ``broker.inflight`` of them unacknowledged. Each PUBACK deletes its message from the outbox.
* On every new connection it starts again from the head of the outbox. Messages that were in flight
  when the link dropped are therefore sent again, in their original order; the cloud drops the
  duplicates by ``id``. Nothing is ever deleted without a PUBACK (or an explicit, counted drop).
* A PUBACK carrying an MQTT 5 error reason means the broker refused that message for good; it is dropped
  and counted as ``rejected`` rather than retried forever (one poison message must not block a store).

The agent also publishes the retained status topic (birth on connect, Last Will ``{"online": false}``)
and hands downlink commands to the command agent, acknowledging them only once they are recorded.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import paho.mqtt.client as paho

from agents import __version__
from agents.core.config import BrokerConfig
from agents.core.supervisor import Agent
from agents.uplink.mqtt_session import MqttSession, SessionOptions, Will, password_from
from agents.uplink.outbox import Outbox
from protocols.mqtt_v1 import GatewayTopics, encode_status

log = logging.getLogger(__name__)

CommandSink = Callable[[bytes, Callable[[], None]], None]
"""Receives a raw command payload and a callback that sends its PUBACK once the command is recorded."""


class UplinkSettings(Protocol):
    """What the uplink needs of the gateway's configuration (``agents.gateway.config.GatewayConfig`` has it;
    the uplink stays below the gateway's assembly and does not import it)."""

    @property
    def store_id(self) -> str: ...
    @property
    def gateway_id(self) -> str: ...
    @property
    def broker(self) -> BrokerConfig: ...
    @property
    def client_id(self) -> str: ...


def session_options(config: UplinkSettings, topics: GatewayTopics) -> SessionOptions:
    broker = config.broker
    url = broker.parsed_url
    user, password = password_from(broker.username, broker.password_file, url)
    return SessionOptions(
        url=url,
        client_id=config.client_id,
        protocol=broker.protocol,
        tls=broker.tls,
        username=user,
        password=password,
        keepalive_s=broker.keepalive_s,
        connect_timeout_s=broker.connect_timeout_s,
        persistent_session=True,
        session_expiry_s=broker.session_expiry_s,
        inflight=broker.inflight,
        manual_ack=True,
        will=Will(topics.status, encode_status(False)),
        birth=Will(topics.status, encode_status(True, version=__version__, since=round(time.time(), 3))),
        subscriptions=((topics.command, 1),),
        reconnect_min_s=broker.reconnect.min_delay_s,
        reconnect_max_s=broker.reconnect.max_delay_s,
    )


class UplinkAgent(Agent):
    """Publishes the outbox; see the module docstring."""

    def __init__(
        self,
        config: UplinkSettings,
        outbox: Outbox,
        *,
        commands: CommandSink | None = None,
        options: SessionOptions | None = None,
        publish_status: bool = True,
    ) -> None:
        super().__init__("uplink")
        self.config = config
        self.topics = GatewayTopics(config.store_id, config.gateway_id)
        self.outbox = outbox
        self._commands = commands
        self._options = options or session_options(config, self.topics)
        self._publish_status = publish_status
        # paho keeps at most ``broker.inflight`` unacknowledged on the wire and releases the next queued
        # message from its own thread the moment a PUBACK arrives. We hand it up to
        # ``broker.publish_ahead`` messages in large chunks: interleaving small hand-overs with paho's
        # PUBACK handling costs more (lock and GIL ping-pong) than the memory this takes.
        self._inflight_limit = max(self._options.inflight, config.broker.publish_ahead)
        self._refill_batch = max(1, self._inflight_limit // 2)
        self._inflight: dict[tuple[int, int], int] = {}
        self._wake = asyncio.Event()
        self._acks: collections.deque[tuple[int, int, bool]] = collections.deque()
        self._acks_scheduled = False
        self._session: MqttSession | None = None
        self._session_done = asyncio.Event()
        self.ack_listeners: list[Callable[[int], None]] = []

    # -- agent interface ---------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        session = MqttSession(
            self._options,
            name="uplink",
            on_connected=lambda gen: self._call_soon(loop, self._wake.set),
            on_disconnected=lambda gen, why: self._call_soon(loop, self._on_disconnected, gen),
            on_ack=lambda gen, mid, ok: self._queue_ack(loop, gen, mid, ok),
            on_message=lambda gen, msg: self._call_soon(loop, self._on_message, session, gen, msg),
        )
        self._session = session
        self._session_done.clear()
        self._inflight.clear()
        self.outbox.add_commit_listener(self._wake.set)
        goodbye = (
            Will(self.topics.status, encode_status(False, reason="shutdown", since=round(time.time(), 3)))
            if self._publish_status
            else None
        )
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._run_session(session, goodbye), name="uplink:mqtt-session")
                group.create_task(self._publish_loop(session), name="uplink:publisher")
        finally:
            self.outbox.remove_commit_listener(self._wake.set)
            self._session_done.set()

    async def _run_session(self, session: MqttSession, goodbye: Will | None) -> None:
        try:
            await session.run(goodbye=goodbye)
        finally:
            # The session only returns on request_stop (drain); the publisher then idles until cancelled.
            self._session_done.set()

    async def drain(self, timeout_s: float) -> None:
        """Publish what is still in the outbox (bounded by ``timeout_s``), then disconnect cleanly."""
        deadline = time.monotonic() + timeout_s
        session = self._session
        # The backlog shrinks as batched PUBACK deletions land; a short poll keeps this simple.
        while (  # noqa: ASYNC110
            session is not None
            and session.connected_generation is not None
            and self.outbox.stats.backlog_messages > 0
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.05)
        if session is not None:
            session.request_stop()
            try:
                async with asyncio.timeout(max(0.5, deadline - time.monotonic())):
                    await self._session_done.wait()
            except TimeoutError:
                log.warning("uplink: clean disconnect did not finish in time")

    def diagnostics(self) -> dict[str, Any]:
        session = self._session
        return {
            "mqtt": session.health.as_dict() if session else {"state": "idle"},
            "inflight": len(self._inflight),
            "broker": str(self._options.url),
        }

    @property
    def session(self) -> MqttSession | None:
        return self._session

    # -- publishing --------------------------------------------------------------------------------

    async def _publish_loop(self, session: MqttSession) -> None:
        while True:
            await session.wait_connected()
            generation = session.connected_generation
            if generation is None:
                await asyncio.sleep(0.01)
                continue
            # New connection: resend from the head, in order. Anything in flight before is unconfirmed.
            last_sent = 0
            while session.connected_generation == generation:
                self._wake.clear()
                room = self._inflight_limit - len(self._inflight)
                # Refill in batches rather than one read per PUBACK: each read is a hop to the SQLite thread.
                if room >= self._refill_batch or (room > 0 and not self._inflight):
                    rows = await self.outbox.read_after(last_sent, min(room, 1000))
                    mids = session.publish_many(generation, ((row.topic, row.payload) for row in rows))
                    # Fewer mids than rows: the connection is gone and the outer loop waits for the next.
                    for mid, row in zip(mids, rows, strict=False):
                        self._inflight[(generation, mid)] = row.seq
                    if mids:
                        last_sent = rows[len(mids) - 1].seq
                        self.health.count("sent", len(mids))
                    if rows:
                        continue
                await self._wake.wait()

    @staticmethod
    def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn`` on the event loop (called from paho's network thread)."""
        loop.call_soon_threadsafe(fn, *args)

    def _queue_ack(self, loop: asyncio.AbstractEventLoop, generation: int, mid: int, ok: bool) -> None:
        # On paho's thread. PUBACKs arrive in bursts; wake the event loop once per burst, not per ack.
        self._acks.append((generation, mid, ok))
        if not self._acks_scheduled:
            self._acks_scheduled = True
            loop.call_soon_threadsafe(self._drain_acks)

    def _drain_acks(self) -> None:
        self._acks_scheduled = False
        acked = 0
        inflight, outbox, listeners = self._inflight, self.outbox, self.ack_listeners
        while self._acks:
            generation, mid, ok = self._acks.popleft()
            seq = inflight.pop((generation, mid), None)
            if seq is None:
                continue
            if ok:
                outbox.ack(seq)
                acked += 1
                for listener in listeners:
                    listener(seq)
            else:
                log.error("uplink: broker rejected message seq %d; dropping it (counted as 'rejected')", seq)
                outbox.reject(seq)
                self.health.count("rejected")
        if acked:
            self.health.count("acked", acked)
        self._wake.set()

    def _on_disconnected(self, generation: int) -> None:
        for key in [k for k in self._inflight if k[0] == generation]:
            del self._inflight[key]
        self._wake.set()

    # -- downlink ----------------------------------------------------------------------------------

    def _on_message(self, session: MqttSession, generation: int, message: paho.MQTTMessage) -> None:
        if message.topic != self.topics.command:
            session.ack(generation, message.mid, message.qos)
            return
        self.health.count("commands_received")

        def send_puback() -> None:
            session.ack(generation, message.mid, message.qos)

        if self._commands is None:
            send_puback()
            return
        self._commands(bytes(message.payload), send_puback)
