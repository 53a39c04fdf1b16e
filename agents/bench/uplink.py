"""``storeedge bench uplink``: durable outbox throughput and latency against bare paho, same broker.

Both sides publish the same number of QoS 1 messages of the same size to the same broker with the same
in-flight window, and count a message as done at its PUBACK:

* **baseline**: a bare paho client calling ``publish`` in a loop (nothing on disk, nothing survives a
  crash);
* **durable**: the gateway's real path: a burst of ``Outbox.put_many`` calls of ``PRODUCER_BATCH``
  messages each, all at once (group-committed SQLite WAL), then the uplink agent's publisher, with
  deletion after PUBACK.

Latency is measured per message from the producer's call to its PUBACK. Each round runs the baseline and
then the durable path; the figures are medians over the rounds (every round is listed too), because on a
2-core machine single runs vary by +-20 %. The result is one JSON object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agents.core.config import BrokerUrl, MqttProtocol
from agents.gateway.config import GatewayConfig
from agents.uplink.link import UplinkAgent, session_options
from agents.uplink.mqtt_session import build_tls_context
from agents.uplink.outbox import Outbox
from protocols.mqtt_v1 import GatewayTopics, encode_envelope

BENCH_STREAM = "bench"
PRODUCER_BATCH = 50  # messages per put_many call in the durable run


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def bench_bare_paho(
    url: BrokerUrl, messages: int, *, payload: bytes, topic: str, inflight: int, protocol: MqttProtocol
) -> dict[str, Any]:
    """Publish ``messages`` QoS 1 messages with a plain paho client; time until the last PUBACK."""
    done = threading.Event()
    sent_at: dict[int, float] = {}
    latencies: list[float] = []
    connected = threading.Event()

    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"storeedge-bench-bare-{time.monotonic_ns()}",
        protocol=paho.MQTTv5 if protocol is MqttProtocol.V5 else paho.MQTTv311,
    )
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    if url.tls:
        client.tls_set_context(build_tls_context(None))

    def on_connect(*_args: Any) -> None:
        connected.set()

    def on_publish(_c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        latencies.append(time.perf_counter() - sent_at.pop(mid))
        if len(latencies) == messages:
            done.set()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(url.host, url.port)
    client.loop_start()
    try:
        if not connected.wait(10):
            raise ConnectionError(f"bare paho client could not connect to {url}")
        start = time.perf_counter()
        for _ in range(messages):
            now = time.perf_counter()
            info = client.publish(topic, payload, qos=1)
            sent_at[info.mid] = now
        if not done.wait(max(60.0, messages / 100)):
            raise TimeoutError(f"baseline: only {len(latencies)} of {messages} acknowledged")
        elapsed = time.perf_counter() - start
    finally:
        client.disconnect()
        client.loop_stop()
    return {
        "throughput_msgs_per_s": messages / elapsed,
        "p99_latency_ms": _p99(latencies) * 1000,
        "elapsed_s": elapsed,
    }


async def bench_durable(
    url: BrokerUrl, messages: int, *, payload_bytes: int, inflight: int, protocol: MqttProtocol, workdir: Path
) -> dict[str, Any]:
    """Publish ``messages`` through the real outbox and uplink agent; time until the last PUBACK."""
    config = GatewayConfig.model_validate(
        {
            "store_id": "bench",
            "gateway_id": f"bench-{time.monotonic_ns()}",
            "state_dir": str(workdir),
            "broker": {"url": str(url), "protocol": protocol.value, "inflight": inflight},
        }
    )
    topics = GatewayTopics(config.store_id, config.gateway_id)
    outbox = Outbox.open(config.outbox_path, config.outbox, gateway_id=config.gateway_id, topic_for=topics.stream)
    # A throw-away gateway: no persistent session and no retained status left behind on the broker.
    options = dataclasses.replace(
        session_options(config, topics), persistent_session=False, will=None, birth=None, subscriptions=()
    )
    uplink = UplinkAgent(config, outbox, options=options, publish_status=False)
    put_at: dict[int, float] = {}
    latencies: list[float] = []
    all_acked = asyncio.Event()

    def on_acked(seq: int) -> None:
        latencies.append(time.perf_counter() - put_at[seq])
        if len(latencies) == messages:
            all_acked.set()

    uplink.ack_listeners.append(on_acked)
    data = {"pad": "x" * payload_bytes}

    async def put_batch(count: int) -> None:
        called = time.perf_counter()
        results = await outbox.put_many([(BENCH_STREAM, data)] * count)
        for result in results:
            assert result.seq is not None
            put_at[result.seq] = called

    try:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(outbox.serve(), name="bench:outbox-writer")
            link = group.create_task(uplink.run(), name="bench:uplink")
            session = None
            while session is None:
                await asyncio.sleep(0.01)
                session = uplink.session
            async with asyncio.timeout(10):
                await session.wait_connected()
            start = time.perf_counter()
            # A burst, as after an outage or a store-wide price change: every producer hands over its
            # batch at once and the outbox group-commits whatever is queued.
            await asyncio.gather(
                *(put_batch(min(PRODUCER_BATCH, messages - first)) for first in range(0, messages, PRODUCER_BATCH))
            )
            async with asyncio.timeout(max(60.0, messages / 100)):
                await all_acked.wait()
            elapsed = time.perf_counter() - start
            await uplink.drain(2.0)
            link.cancel()
            writer.cancel()
    finally:
        await outbox.aclose()
    return {
        "throughput_msgs_per_s": messages / elapsed,
        "p99_latency_ms": _p99(latencies) * 1000,
        "elapsed_s": elapsed,
    }


async def run_uplink_bench(
    url: BrokerUrl,
    messages: int,
    *,
    inflight: int = 100,
    payload_bytes: int = 128,
    protocol: MqttProtocol = MqttProtocol.V311,
    rounds: int = 3,
) -> dict[str, Any]:
    """Alternate baseline and durable runs ``rounds`` times; report medians (and every round)."""
    topics = GatewayTopics("bench", "bench-bare")
    # Same size on the wire as the durable envelope: the baseline sends a pre-built envelope.
    payload = encode_envelope(
        gateway_id="bench-bare",
        stream=BENCH_STREAM,
        seq=1,
        stream_seq=1,
        ts=time.time(),
        data={"pad": "x" * payload_bytes},
    )
    baselines, durables = [], []
    for _ in range(rounds):
        baselines.append(
            await asyncio.to_thread(
                bench_bare_paho,
                url,
                messages,
                payload=payload,
                topic=topics.stream(BENCH_STREAM),
                inflight=inflight,
                protocol=protocol,
            )
        )
        with tempfile.TemporaryDirectory(prefix="storeedge-bench-") as tmp:
            durables.append(
                await bench_durable(
                    url, messages, payload_bytes=payload_bytes, inflight=inflight, protocol=protocol, workdir=Path(tmp)
                )
            )
    durable_tp = statistics.median(r["throughput_msgs_per_s"] for r in durables)
    baseline_tp = statistics.median(r["throughput_msgs_per_s"] for r in baselines)
    return {
        "benchmark": "uplink",
        "broker": str(url),
        "messages": messages,
        "payload_bytes": len(payload),
        "inflight": inflight,
        "protocol": protocol.value,
        "producer_batch": PRODUCER_BATCH,
        "rounds": rounds,
        "throughput_msgs_per_s": round(durable_tp, 1),
        "p99_latency_ms": round(statistics.median(r["p99_latency_ms"] for r in durables), 3),
        "baseline_throughput_msgs_per_s": round(baseline_tp, 1),
        "baseline_p99_latency_ms": round(statistics.median(r["p99_latency_ms"] for r in baselines), 3),
        "throughput_ratio": round(durable_tp / baseline_tp, 3),
        "per_round": [
            {
                "throughput_msgs_per_s": round(d["throughput_msgs_per_s"], 1),
                "baseline_throughput_msgs_per_s": round(b["throughput_msgs_per_s"], 1),
            }
            for d, b in zip(durables, baselines, strict=True)
        ],
    }
