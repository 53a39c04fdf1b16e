"""One MQTT connection at a time, re-established with jittered, capped back-off.

paho-mqtt does the protocol work; this module decides *when* to connect. paho's own reconnect loop
doubles a fixed delay with no jitter, so every gateway of a chain would hammer a recovering broker in
lock-step. Instead each attempt gets a fresh ``paho.mqtt.client.Client`` with ``reconnect_on_failure``
off: paho's network thread ends when the connection ends, and :meth:`MqttSession.run` waits a jittered
delay and starts the next one. A fresh client per connection also means no stale paho-internal queue is
replayed behind our back: what to resend is decided by the durable outbox alone.

Callbacks (``on_connected``, ``on_disconnected``, ``on_ack``, ``on_message``) run on paho's network
thread; consumers that live on the event loop forward them with ``loop.call_soon_threadsafe``. Each
carries the connection ``generation`` so late events from a dead connection can be told apart.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from agents.core.backoff import Backoff
from agents.core.config import BrokerUrl, MqttProtocol, TlsConfig
from agents.core.errors import StoreedgeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True)
class SessionOptions:
    """Everything needed to open a connection (built from :class:`BrokerConfig` or CLI flags)."""

    url: BrokerUrl
    client_id: str
    protocol: MqttProtocol = MqttProtocol.V311
    tls: TlsConfig | None = None
    tls_setting: str = "broker.tls"  # where ``tls`` came from, so an error names the setting to fix
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    persistent_session: bool = True
    session_expiry_s: int = 86400
    inflight: int = 100
    manual_ack: bool = False
    will: Will | None = None
    birth: Will | None = None  # published (retained) right after every successful connect
    subscriptions: tuple[tuple[str, int], ...] = ()
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 60.0


@dataclass
class SessionHealth:
    state: str = "idle"  # idle | connecting | connected | backoff | stopped
    connects: int = 0
    disconnects: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    connected_since: float | None = None
    next_attempt_in_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "connects": self.connects,
            "disconnects": self.disconnects,
            "failed_attempts": self.failed_attempts,
            "last_error": self.last_error,
            "connected_for_s": None
            if self.connected_since is None
            else round(time.monotonic() - self.connected_since, 1),
        }


def password_from(username: str | None, password_file: Path | None, url: BrokerUrl) -> tuple[str | None, str | None]:
    """Resolve credentials: explicit username/password file win over the URL's ``user:pass@``."""
    user = username or url.username
    password = url.password
    if password_file is not None:
        password = password_file.read_text(encoding="utf-8").strip()
    return user, password


class _ClosingSSLSocket(ssl.SSLSocket):
    """An SSL socket that closes itself when its handshake fails.

    paho does not close the socket when ``do_handshake()`` raises; without this every refused TLS attempt
    would leave a file descriptor for the garbage collector (and a ResourceWarning) while we retry.
    """

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


class TlsFileError(StoreedgeError, OSError):
    """A TLS file is missing, unreadable or not what its setting says; ``str(err)`` names both.

    For example ``broker.tls.ca_file: /etc/storeedge/ca.pem: No such file or directory``. The ssl module's
    own errors name neither the file nor the setting, which leaves a technician guessing.
    """

    def __init__(self, setting: str, path: Path, reason: str) -> None:
        super().__init__(f"{setting}: {path}: {reason}")
        self.setting = setting
        self.path = path
        self.reason = reason


def _check_readable(setting: str, path: Path) -> None:
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise TlsFileError(setting, path, exc.strerror or str(exc)) from exc


def build_tls_context(tls: TlsConfig | None, *, setting: str = "broker.tls") -> ssl.SSLContext:
    """An SSL context for the broker connection; a bad TLS file raises :class:`TlsFileError`.

    ``setting`` is the configuration path of ``tls`` (``broker.tls`` in the gateway YAML), used to name
    the setting in errors.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.sslsocket_class = _ClosingSSLSocket
    if tls is not None:
        files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
        for name, path in files.items():
            if path is not None:
                _check_readable(f"{setting}.{name}", path)
        if tls.ca_file is not None:
            try:
                context.load_verify_locations(cafile=str(tls.ca_file))
            except ssl.SSLError as exc:
                raise TlsFileError(f"{setting}.ca_file", tls.ca_file, f"not a PEM CA certificate ({exc})") from exc
        if tls.cert_file is not None and tls.key_file is not None:
            try:
                context.load_cert_chain(certfile=str(tls.cert_file), keyfile=str(tls.key_file))
            except ssl.SSLError as exc:
                # OpenSSL does not say which of the two files it did not like.
                raise TlsFileError(
                    f"{setting}.cert_file",
                    tls.cert_file,
                    f"not a PEM certificate matching the private key {setting}.key_file ({tls.key_file}): {exc}",
                ) from exc
        if tls.insecure_skip_verify:
            context.check_hostname = False
    return context


def _reason_is_failure(reason: Any) -> bool:
    if isinstance(reason, ReasonCode):
        return bool(reason.is_failure)
    return bool(reason)


class MqttSession:
    """Keeps one MQTT connection up until :meth:`run` is cancelled or :meth:`request_stop` is called."""

    def __init__(
        self,
        options: SessionOptions,
        *,
        on_connected: Callable[[int], None] | None = None,
        on_disconnected: Callable[[int, str | None], None] | None = None,
        on_ack: Callable[[int, int, bool], None] | None = None,
        on_message: Callable[[int, paho.MQTTMessage], None] | None = None,
        name: str = "mqtt",
    ) -> None:
        self.options = options
        self.name = name
        self.health = SessionHealth()
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_ack = on_ack
        self._on_message = on_message
        self._client: paho.Client | None = None
        self._generation = 0
        self._connected_generation = -1
        self._lock = threading.Lock()
        self._backoff = Backoff(options.reconnect_min_s, options.reconnect_max_s)
        self._tls_context = (
            build_tls_context(options.tls, setting=options.tls_setting) if (options.url.tls or options.tls) else None
        )
        self._connected = asyncio.Event()
        self._stop_requested = asyncio.Event()

    # -- public API used from the event loop ------------------------------------------------------

    @property
    def connected_generation(self) -> int | None:
        """The generation of the live connection, or None while disconnected."""
        with self._lock:
            return self._connected_generation if self._connected_generation == self._generation else None

    async def wait_connected(self) -> None:
        await self._connected.wait()

    def publish_many(self, generation: int, messages: Iterable[tuple[str, bytes]]) -> list[int]:
        """Publish QoS 1 messages in order on connection ``generation``; returns their mids.

        Stops at the first message paho refuses (the connection went away): the returned list is then
        shorter than ``messages``.
        """
        with self._lock:
            client = self._client
            if client is None or self._connected_generation != generation or generation != self._generation:
                return []
        mids = []
        publish, success = client.publish, MQTTErrorCode.MQTT_ERR_SUCCESS
        for topic, payload in messages:
            info = publish(topic, payload, qos=1)
            if info.rc != success:
                break
            mids.append(int(info.mid))
        return mids

    def ack(self, generation: int, mid: int, qos: int = 1) -> None:
        """Send the PUBACK of a manually acknowledged inbound message."""
        with self._lock:
            client = self._client if generation == self._generation else None
        if client is not None:
            client.ack(mid, qos)

    def request_stop(self) -> None:
        self._stop_requested.set()

    # -- connection loop ---------------------------------------------------------------------------

    async def run(self, *, goodbye: Will | None = None, goodbye_timeout_s: float = 2.0) -> None:
        """Connect, wait for the connection to end, back off, repeat; until stopped or cancelled.

        On the way out the session publishes ``goodbye`` (if connected) and disconnects cleanly, so the
        broker does not fire the Last Will for an orderly shutdown.
        """
        loop = asyncio.get_running_loop()
        try:
            while not self._stop_requested.is_set():
                ended = asyncio.Event()
                client = self._new_client(loop, ended)
                self.health.state = "connecting"
                connects_before, failures_before = self.health.connects, self.health.failed_attempts
                try:
                    await self._connect(client)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    self._record_failure(f"connect to {self.options.url} failed: {exc}")
                else:
                    client.loop_start()
                    # A TLS peer may reject us after the handshake, before CONNACK: bound the wait.
                    if not await self._first_of(self._connected, ended, timeout=self.options.connect_timeout_s):
                        self._record_failure(
                            f"no CONNACK from {self.options.url} within {self.options.connect_timeout_s}s"
                        )
                    elif self._connected.is_set():
                        await self._first_of(ended)
                    elif (
                        ended.is_set()
                        and self.health.connects == connects_before
                        and self.health.failed_attempts == failures_before
                    ):
                        # TLS 1.3: the broker checks our certificate after our handshake completes,
                        # so a refused certificate shows up as a close before CONNACK.
                        self._record_failure(
                            f"{self.options.url} closed the connection before CONNACK "
                            "(client certificate refused, or not an MQTT broker?)"
                        )
                    if self._stop_requested.is_set():
                        await self._say_goodbye(client, goodbye, goodbye_timeout_s)
                    await self._shutdown_client(client)
                if self._stop_requested.is_set():
                    break
                delay = self._backoff.next_delay()
                self.health.state = "backoff"
                self.health.next_attempt_in_s = round(delay, 2)
                log.info("%s: reconnecting in %.2fs", self.name, delay)
                try:
                    async with asyncio.timeout(delay):
                        await self._stop_requested.wait()
                except TimeoutError:
                    pass
        finally:
            with self._lock:
                last_client, self._client = self._client, None
                self._generation += 1
            if last_client is not None:
                await self._shutdown_client(last_client)
            self._connected.clear()
            self.health.state = "stopped"

    async def _first_of(self, *events: asyncio.Event, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        """Wait for any of ``events`` or a stop request; False on timeout."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (*events, self._stop_requested)]
        try:
            done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return bool(done)

    def _new_client(self, loop: asyncio.AbstractEventLoop, ended: asyncio.Event) -> paho.Client:
        opts = self.options
        v5 = opts.protocol is MqttProtocol.V5
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=opts.client_id,
            clean_session=None if v5 else not opts.persistent_session,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=opts.manual_ack,
        )
        client.max_inflight_messages_set(opts.inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = opts.connect_timeout_s
        if self._tls_context is not None:
            client.tls_set_context(self._tls_context)
        user, password = opts.username, opts.password
        if user is not None:
            client.username_pw_set(user, password)
        if opts.will is not None:
            client.will_set(opts.will.topic, opts.will.payload, opts.will.qos, opts.will.retain)
        with self._lock:
            self._generation += 1
            generation = self._generation
            self._client = client

        def mark_ended() -> None:
            loop.call_soon_threadsafe(ended.set)

        def on_connect(c: paho.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if _reason_is_failure(reason):
                self._record_failure(f"broker refused the connection: {reason}")
                c.disconnect()
                mark_ended()
                return
            for topic, qos in opts.subscriptions:
                c.subscribe(topic, qos)
            if opts.birth is not None:
                c.publish(opts.birth.topic, opts.birth.payload, opts.birth.qos, opts.birth.retain)
            with self._lock:
                self._connected_generation = generation
            self.health.state = "connected"
            self.health.connects += 1
            self.health.connected_since = time.monotonic()
            self.health.next_attempt_in_s = None
            self._backoff.reset()
            loop.call_soon_threadsafe(self._connected.set)
            log.info("%s: connected to %s (generation %d)", self.name, opts.url, generation)
            if self._on_connected is not None:
                self._on_connected(generation)

        def on_disconnect(c: paho.Client, _u: Any, _flags: Any, reason: Any, _props: Any) -> None:
            was_connected = False
            with self._lock:
                if self._connected_generation == generation:
                    self._connected_generation = -1
                    was_connected = True
            if was_connected:
                self.health.disconnects += 1
                self.health.connected_since = None
                loop.call_soon_threadsafe(self._connected.clear)
                why = None if not _reason_is_failure(reason) else f"connection lost: {reason}"
                if why:
                    self.health.last_error = why
                    log.warning("%s: %s", self.name, why)
                if self._on_disconnected is not None:
                    self._on_disconnected(generation, why)
            c.disconnect()  # stop paho's loop thread; we reconnect ourselves with jitter
            mark_ended()

        def on_publish(_c: paho.Client, _u: Any, mid: int, reason: Any, _props: Any) -> None:
            if self._on_ack is not None:
                self._on_ack(generation, mid, not _reason_is_failure(reason))

        def on_message(_c: paho.Client, _u: Any, message: paho.MQTTMessage) -> None:
            if self._on_message is not None:
                self._on_message(generation, message)

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.on_message = on_message
        return client

    async def _connect(self, client: paho.Client) -> None:
        opts = self.options
        kwargs: dict[str, Any] = {"keepalive": opts.keepalive_s}
        if opts.protocol is MqttProtocol.V5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = opts.session_expiry_s if opts.persistent_session else 0
            kwargs.update(clean_start=not opts.persistent_session, properties=props)
        # The blocking TCP + TLS handshake runs off the loop. If we are cancelled meanwhile, wait for the
        # attempt to finish (bounded by connect_timeout) so no half-open client outlives us.
        attempt = asyncio.get_running_loop().run_in_executor(
            None, lambda: client.connect(opts.url.host, opts.url.port, **kwargs)
        )
        try:
            await asyncio.shield(attempt)
        except asyncio.CancelledError:
            try:
                await attempt
            except (OSError, ssl.SSLError, ValueError):
                pass
            raise

    async def _say_goodbye(self, client: paho.Client, goodbye: Will | None, timeout_s: float) -> None:
        if goodbye is None or self.connected_generation is None:
            return
        info = client.publish(goodbye.topic, goodbye.payload, goodbye.qos, goodbye.retain)
        deadline = time.monotonic() + timeout_s
        # paho signals the PUBACK on its own thread; polling briefly at shutdown is simplest.
        while not info.is_published() and time.monotonic() < deadline and client.is_connected():  # noqa: ASYNC110
            await asyncio.sleep(0.02)

    async def _shutdown_client(self, client: paho.Client) -> None:
        client.disconnect()
        # loop_stop joins paho's thread; run it off the loop.
        await asyncio.to_thread(client.loop_stop)
        with self._lock:
            if self._client is client:
                self._connected_generation = -1
        self._connected.clear()

    def _record_failure(self, message: str) -> None:
        self.health.failed_attempts += 1
        self.health.last_error = message
        log.warning("%s: %s", self.name, message)
