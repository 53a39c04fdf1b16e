"""Uplink over TLS with client certificates: mosquitto with ``require_certificate true``, PKI made by trustme.

Acceptance: the gateway's uplink reaches the cloud sink over mutual TLS (MQTT 3.1.1 and 5), and a client
without a valid certificate is refused: no client certificate at all, a certificate from another CA, or
a client that does not trust the broker's CA. A refused session never connects, records the failure in
its health, and the gateway keeps buffering in its durable outbox until a valid certificate is used.
"""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from agents.cloud.sink import CloudSink
from agents.core.config import BrokerUrl, MqttProtocol, TlsConfig
from agents.gateway.config import GatewayConfig
from agents.gateway.runtime import Gateway
from agents.uplink.mqtt_session import MqttSession, SessionOptions
from tests.brokers import Mosquitto, TlsFiles
from tests.conftest import gateway_config, wait_for

REFUSED_WINDOW_S = 1.0  # how long a refused client is watched; reconnects every 0.1-0.5 s meanwhile
GATEWAY_ID = "gw-1"  # the id gateway_config() gives the gateway


@dataclass(frozen=True)
class Pki:
    """PEM files of one test PKI, plus a client certificate issued by an unrelated CA."""

    ca_file: Path
    server_cert: Path
    server_key: Path
    gateway_cert: Path  # issued by ca_file's CA for "gateway-1"
    gateway_key: Path
    sink_cert: Path  # issued by ca_file's CA for "cloud-sink"
    sink_key: Path
    foreign_cert_and_key: Path  # "gateway-1", but issued by a different CA (key and chain in one file)
    misnamed_server_cert_and_key: Path  # the right CA, but for "broker.example" instead of 127.0.0.1

    def gateway_tls(self) -> TlsConfig:
        return TlsConfig(ca_file=self.ca_file, cert_file=self.gateway_cert, key_file=self.gateway_key)

    def sink_tls(self) -> TlsConfig:
        return TlsConfig(ca_file=self.ca_file, cert_file=self.sink_cert, key_file=self.sink_key)

    def ca_only_tls(self) -> TlsConfig:
        return TlsConfig(ca_file=self.ca_file)

    def foreign_cert_tls(self) -> TlsConfig:
        return TlsConfig(ca_file=self.ca_file, cert_file=self.foreign_cert_and_key, key_file=self.foreign_cert_and_key)

    def untrusting_tls(self) -> TlsConfig:
        """A valid client certificate, but no ca_file: only the system trust store verifies the broker."""
        return TlsConfig(cert_file=self.gateway_cert, key_file=self.gateway_key)


def _write_cert(cert: trustme.LeafCert, cert_path: Path, key_path: Path) -> None:
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    folder = tmp_path / "pki"
    folder.mkdir()
    ca = trustme.CA()
    files = Pki(
        ca_file=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        gateway_cert=folder / "gateway.pem",
        gateway_key=folder / "gateway.key",
        sink_cert=folder / "sink.pem",
        sink_key=folder / "sink.key",
        foreign_cert_and_key=folder / "foreign.pem",
        misnamed_server_cert_and_key=folder / "misnamed-server.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    _write_cert(ca.issue_cert("127.0.0.1", "localhost"), files.server_cert, files.server_key)
    _write_cert(ca.issue_cert("gateway-1"), files.gateway_cert, files.gateway_key)
    _write_cert(ca.issue_cert("cloud-sink"), files.sink_cert, files.sink_key)
    trustme.CA().issue_cert("gateway-1").private_key_and_cert_chain_pem.write_to_path(str(files.foreign_cert_and_key))
    ca.issue_cert("broker.example").private_key_and_cert_chain_pem.write_to_path(
        str(files.misnamed_server_cert_and_key)
    )
    return files


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Iterator[Mosquitto]:
    broker = Mosquitto(
        tmp_path / "mosquitto-tls",
        tls=TlsFiles(pki.ca_file, pki.server_cert, pki.server_key, require_certificate=True),
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def tls_gateway_config(
    tmp_path: Path, broker: Mosquitto, tls: TlsConfig, protocol: MqttProtocol = MqttProtocol.V311
) -> GatewayConfig:
    return gateway_config(
        tmp_path,
        broker.url,
        broker={"protocol": protocol.value, "tls": tls.model_dump(exclude_none=True, mode="json")},
    )


def uplink_state(gateway: Gateway) -> str:
    return str(gateway.snapshot()["agents"]["uplink"]["mqtt"]["state"])


def sink_stream(sink: CloudSink, stream: str) -> dict[str, Any]:
    streams: dict[str, dict[str, Any]] = sink.store.report()["streams"]
    return streams.get(f"{GATEWAY_ID}/{stream}", {})


@pytest.mark.parametrize("protocol", [MqttProtocol.V5, MqttProtocol.V311], ids=["mqtt5", "mqtt311"])
async def test_gateway_heartbeats_reach_sink_over_mutual_tls(
    tmp_path: Path, pki: Pki, tls_broker: Mosquitto, protocol: MqttProtocol
) -> None:
    config = tls_gateway_config(tmp_path, tls_broker, pki.gateway_tls(), protocol)
    assert config.broker.parsed_url.tls and config.broker.tls is not None
    sink = CloudSink(
        tls_broker.url,
        tmp_path / "cloud.sqlite3",
        tls=pki.sink_tls(),
        client_id="storeedge-cloud-sink-tls",
        protocol=protocol,
    )
    gateway = Gateway(config)
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(gateway.run(stop), name="test:gateway")
            await wait_for(
                lambda: sink_stream(sink, "heartbeat").get("received", 0) >= 3,
                timeout=15,
                what="3 heartbeats at the sink over TLS",
            )
            await wait_for(
                lambda: sink.store.report()["status"].get(GATEWAY_ID, {}).get("online") is True,
                what="retained online status",
            )
            assert uplink_state(gateway) == "connected"
            assert gateway.uplink is not None and gateway.uplink.session is not None
            uplink_health = gateway.uplink.session.health
            assert uplink_health.connects == 1
            assert uplink_health.failed_attempts == 0
            stop.set()
            await gw_task
            await wait_for(
                lambda: sink.store.report()["status"][GATEWAY_ID].get("online") is False,
                what="offline status after shutdown",
            )
            sink.session.request_stop()
            await sink_task
        report = sink.store.report()
        status = report["status"][GATEWAY_ID]
        assert status == {"online": False, "reason": "shutdown", "since": status["since"]}
        assert abs(status["since"] - time.time()) < 60
        assert report["missing"] == 0 and report["duplicates"] == 0
        assert report["streams"][f"{GATEWAY_ID}/heartbeat"]["missing"] == 0
        assert gateway.outbox is not None and gateway.outbox.stats.backlog_messages == 0
        assert sink.session.health.failed_attempts == 0
    finally:
        sink.close()


def uplink_acked(gateway: Gateway) -> int:
    """PUBACKs the uplink agent has processed (counted on the event loop as each one arrives)."""
    return int(gateway.snapshot()["agents"]["uplink"]["counters"].get("acked", 0))


async def test_acked_message_leaves_outbox_promptly_and_gateway_stops_without_waiting_out_grace(
    tmp_path: Path, pki: Pki, tls_broker: Mosquitto
) -> None:
    """A PUBACK that arrives while no producer is active must still delete its message within
    ``ack_linger_s``; otherwise the backlog never reaches 0 and every shutdown waits out the whole grace.

    Heartbeats are slowed down to one at start, so the test's own message is the only traffic.
    """
    config = gateway_config(
        tmp_path,
        tls_broker.url,
        broker={"tls": pki.gateway_tls().model_dump(exclude_none=True, mode="json")},
        heartbeat={"interval_s": 3600, "health_interval_s": 3600},
    )
    gateway = Gateway(config)
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop), name="test:gateway")
    deleted_in_time = False
    try:
        await asyncio.wait_for(gateway.ready.wait(), 10)
        outbox = gateway.outbox
        assert outbox is not None
        await wait_for(lambda: outbox.stats.last_seq >= 2, what="the start-up heartbeat and health report")
        await wait_for(lambda: uplink_acked(gateway) == outbox.stats.last_seq, what="start-up PUBACKs")
        await asyncio.sleep(0.5)  # let pending deletions settle: the outbox writer is now idle
        result = await outbox.put("heartbeat", {"probe": True})
        assert result.seq == outbox.stats.last_seq
        await wait_for(lambda: uplink_acked(gateway) == outbox.stats.last_seq, what="the probe's PUBACK")
        try:
            await wait_for(lambda: outbox.stats.backlog_messages == 0, timeout=2.0, what="the acked probe deleted")
            deleted_in_time = True
        except AssertionError:
            pass
        backlog_before_stop = outbox.stats.backlog_messages
    finally:
        stop.set()
        stopping = time.monotonic()
        await asyncio.wait_for(task, 15)
        shutdown_s = time.monotonic() - stopping
    assert deleted_in_time, (
        f"{backlog_before_stop} acknowledged message(s) still counted in the outbox backlog 2 s after the PUBACK "
        f"(ack_linger_s is {outbox.ack_linger_s}s): a lone PUBACK must arm the writer's ack flush"
    )
    assert outbox.stats.backlog_messages == 0
    grace_s = config.runtime.shutdown_grace_s
    assert shutdown_s < grace_s, f"shutdown took {shutdown_s:.2f}s (grace {grace_s}s) with nothing left to send"


@dataclass
class Watched:
    """A stopped session and the ResourceWarnings raised while it ran (collected with gc at the end)."""

    session: MqttSession
    resource_warnings: list[str]


async def watch_session(url: BrokerUrl, tls: TlsConfig, protocol: MqttProtocol, window_s: float) -> Watched:
    """Run an MqttSession for ``window_s`` seconds, stop it, and return it for inspection.

    ResourceWarnings (unclosed sockets) are recorded rather than raised, and ``gc.collect()`` runs before
    the window closes, so a leak is attributed to the test that caused it and not to a later one.
    """
    session = MqttSession(
        SessionOptions(
            url=url,
            client_id=f"storeedge-test-refused-{protocol.value}",
            protocol=protocol,
            tls=tls,
            connect_timeout_s=5.0,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
        ),
        name="refused",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        task = asyncio.create_task(session.run(), name="test:refused-session")
        try:
            await asyncio.sleep(window_s)
        finally:
            session.request_stop()
            await asyncio.wait_for(task, 10)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    return Watched(session, leaks)


BAD_CLIENTS: dict[str, Callable[[Pki], TlsConfig]] = {
    "no-client-cert": Pki.ca_only_tls,
    "client-cert-from-other-ca": Pki.foreign_cert_tls,
    "server-ca-not-trusted": Pki.untrusting_tls,
}


@pytest.mark.parametrize("protocol", [MqttProtocol.V5, MqttProtocol.V311], ids=["mqtt5", "mqtt311"])
@pytest.mark.parametrize("client", list(BAD_CLIENTS))
async def test_session_without_valid_certificate_is_refused(
    pki: Pki, tls_broker: Mosquitto, client: str, protocol: MqttProtocol
) -> None:
    session = (await watch_session(tls_broker.url, BAD_CLIENTS[client](pki), protocol, REFUSED_WINDOW_S)).session
    health = session.health
    assert health.connects == 0, "the broker accepted a client without a valid certificate"
    assert session.connected_generation is None
    assert health.state == "stopped"
    assert health.failed_attempts >= 1, f"refused TLS connections were not recorded as failures: {health}"
    assert health.last_error is not None, f"no last_error after refused TLS connections: {health}"
    if client == "server-ca-not-trusted":
        assert "CERTIFICATE_VERIFY_FAILED" in health.last_error


async def test_valid_certificate_session_connects_for_contrast(pki: Pki, tls_broker: Mosquitto) -> None:
    """The same session setup with the valid client certificate connects: the refusals are about the cert."""
    watched = await watch_session(tls_broker.url, pki.gateway_tls(), MqttProtocol.V311, 1.0)
    session = watched.session
    assert watched.resource_warnings == []
    assert session.health.connects == 1
    assert session.health.failed_attempts == 0
    assert session.health.last_error is None


@pytest.mark.parametrize("client", list(BAD_CLIENTS))
async def test_refused_tls_connections_close_their_sockets(pki: Pki, tls_broker: Mosquitto, client: str) -> None:
    """Each refused attempt must close its socket: a gateway retrying for days must not leak descriptors."""
    watched = await watch_session(tls_broker.url, BAD_CLIENTS[client](pki), MqttProtocol.V5, REFUSED_WINDOW_S)
    assert watched.session.health.connects == 0
    assert watched.resource_warnings == [], f"{len(watched.resource_warnings)} sockets leaked by refused attempts"


async def test_broker_hostname_is_verified_unless_insecure_skip_verify(tmp_path: Path, pki: Pki) -> None:
    broker = Mosquitto(
        tmp_path / "mosquitto-misnamed",
        tls=TlsFiles(pki.ca_file, pki.misnamed_server_cert_and_key, pki.misnamed_server_cert_and_key),
    )
    broker.start()
    try:
        verified = await watch_session(broker.url, pki.gateway_tls(), MqttProtocol.V311, REFUSED_WINDOW_S)
        skipped = await watch_session(
            broker.url,
            pki.gateway_tls().model_copy(update={"insecure_skip_verify": True}),
            MqttProtocol.V311,
            REFUSED_WINDOW_S,
        )
    finally:
        broker.stop()
    assert verified.session.health.connects == 0
    assert verified.session.health.last_error is not None
    assert "CERTIFICATE_VERIFY_FAILED" in verified.session.health.last_error
    assert skipped.session.health.connects == 1, "insecure_skip_verify must skip only the hostname check"
    assert skipped.session.health.failed_attempts == 0


async def test_gateway_with_client_cert_from_other_ca_is_refused(
    tmp_path: Path, pki: Pki, tls_broker: Mosquitto
) -> None:
    config = tls_gateway_config(tmp_path, tls_broker, pki.foreign_cert_tls(), MqttProtocol.V5)
    sink = CloudSink(tls_broker.url, tmp_path / "cloud.sqlite3", tls=pki.sink_tls(), client_id="storeedge-sink-watch")
    gateway = Gateway(config)
    stop = asyncio.Event()
    states: set[str] = set()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(gateway.run(stop), name="test:gateway")
            await asyncio.wait_for(gateway.ready.wait(), 10)
            for _ in range(int(REFUSED_WINDOW_S / 0.05)):
                states.add(uplink_state(gateway))
                await asyncio.sleep(0.05)
            assert not gw_task.done(), "the gateway must keep running while refused"
            stop.set()
            await gw_task
            sink.session.request_stop()
            await sink_task
        report = sink.store.report()
    finally:
        sink.close()
    assert "connected" not in states, f"uplink states seen: {states}"
    assert report["received_unique"] == 0 and GATEWAY_ID not in report["status"]
    assert gateway.uplink is not None and gateway.uplink.session is not None
    health = gateway.uplink.session.health
    assert health.connects == 0
    assert health.failed_attempts >= 1, f"refused TLS connections were not recorded as failures: {health}"
    assert health.last_error is not None, f"no last_error after refused TLS connections: {health}"


async def test_uplink_keeps_buffering_while_refused_and_delivers_with_valid_cert(
    tmp_path: Path, pki: Pki, tls_broker: Mosquitto
) -> None:
    sink = CloudSink(tls_broker.url, tmp_path / "cloud.sqlite3", tls=pki.sink_tls(), client_id="storeedge-sink-later")
    refused = Gateway(tls_gateway_config(tmp_path, tls_broker, pki.ca_only_tls()))
    stop = asyncio.Event()
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            gw_task = group.create_task(refused.run(stop), name="test:refused-gateway")
            await asyncio.wait_for(refused.ready.wait(), 10)
            outbox = refused.outbox
            assert outbox is not None
            await wait_for(lambda: outbox.stats.backlog_messages > 0, what="a buffered heartbeat")
            first_backlog = outbox.stats.backlog_messages
            await wait_for(
                lambda: outbox.stats.backlog_messages >= first_backlog + 2, what="the backlog to keep growing"
            )
            snapshot = refused.snapshot()
            assert snapshot["agents"]["uplink"]["mqtt"]["state"] != "connected"
            assert snapshot["agents"]["uplink"]["state"] == "running"
            assert snapshot["agents"]["uplink"]["restarts"] == 0
            assert snapshot["agents"]["heartbeat"]["state"] == "running"
            assert outbox.stats.acked == 0
            assert sink.store.report()["received_unique"] == 0
            stop.set()
            await gw_task
            buffered = outbox.stats.backlog_messages
            assert buffered >= first_backlog + 2, "shutdown must keep unsent messages on disk"

            # Same state directory, now with a valid client certificate: the backlog goes out.
            stop = asyncio.Event()
            fixed = Gateway(tls_gateway_config(tmp_path, tls_broker, pki.gateway_tls()))
            gw_task = group.create_task(fixed.run(stop), name="test:fixed-gateway")
            await wait_for(
                lambda: sink.store.report()["received_unique"] >= buffered, timeout=15, what="the buffered backlog"
            )
            assert uplink_state(fixed) == "connected"
            stop.set()
            await gw_task
            sink.session.request_stop()
            await sink_task
        report = sink.store.report()
        assert report["missing"] == 0
        assert report["streams"][f"{GATEWAY_ID}/heartbeat"]["missing"] == 0
        assert fixed.outbox is not None and fixed.outbox.stats.backlog_messages == 0
    finally:
        sink.close()
