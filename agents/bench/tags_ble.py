"""``storeedge bench tags-ble``: how long a full price change takes on a Bluetooth ESL fleet, modelled.

The protocol is real: the access point (:class:`EslAccessPoint` over bleak with the bumble backend) onboards N
emulated tags on the in-process radio and then sends every tag a new price label twice, in the same run:

* **baseline** (naive): the label as raw framebuffer bytes, one tag after the other;
* **ours**: the label zlib-compressed (4 KB window; the tag inflates it), with P connections in parallel.

Time is *modelled*, not measured: each emulated tag records what its radio work would take on real hardware
(:class:`sim.ble.TimingModel`: connection set-up, ATT round trips, object bytes at the link's L2CAP throughput, the
e-paper refresh), so the figures do not depend on this machine's CPU. Per tag, the AP is busy for connection +
ATT + transfer (the refresh runs on the tag after the AP has moved on). The fleet time for P parallel connections
is the makespan of handing tags in order to the first free connection, bounded below by the air: all object bytes
at ``air_capacity_bytes_per_s`` (connections share the 2.4 GHz channel time). The baseline is the same tags, one
connection, uncompressed. Bytes on air per tag count GATT writes and object data sent by the AP.
"""

from __future__ import annotations

import asyncio
import heapq
import statistics
import time
from dataclasses import dataclass
from typing import Any

from agents.tags.ble.access_point import EslAccessPoint
from agents.tags.ble.records import AccessPointSettings, EslTagRecord
from agents.tags.ble.transport import BleTagTransport
from agents.tags.panels import panel_by_name
from agents.tags.render import render_label
from protocols.esl import EslAddress, KeyMaterial

__all__ = ["fleet_seconds", "run_tags_ble_bench"]

DEFAULT_AIR_CAPACITY = 100_000.0
"""Aggregate object bytes per second the channel carries over all connections (1M PHY, shared airtime)."""


@dataclass(frozen=True)
class TagCost:
    """Modelled seconds of one tag's update: AP-side busy time and the tag's refresh afterwards."""

    busy_s: float
    refresh_s: float
    object_bytes: int


def fleet_seconds(costs: list[TagCost], parallel: int, air_capacity: float) -> float:
    """Makespan of updating every tag with ``parallel`` connections (see the module docstring)."""
    lanes = [0.0] * parallel
    heapq.heapify(lanes)
    finish = 0.0
    for cost in costs:
        start = heapq.heappop(lanes)
        end = start + cost.busy_s
        heapq.heappush(lanes, end)
        finish = max(finish, end + cost.refresh_s)
    air_bound = sum(cost.object_bytes for cost in costs) / air_capacity
    return max(finish, air_bound)


def _fields(n: int, price: float) -> dict[str, Any]:
    return {
        "name": f"Product no. {n}",
        "price": f"{price:.2f}",
        "currency": "EUR",
        "old_price": "9.99",
        "unit_price": f"{price:.2f} EUR/kg",
        "qr": f"https://shop.example/p/{n}",
    }


async def _price_change(
    transport: BleTagTransport, tags: list[Any], addresses: list[EslAddress], images: dict[EslAddress, bytes]
) -> tuple[list[TagCost], int]:
    """Send every image (through ``transport``) and return each tag's modelled cost and the AP bytes written."""
    before = {
        tag.address: (
            tag.timeline.connection_s,
            tag.timeline.att_s,
            tag.timeline.transfer_s,
            tag.timeline.refresh_s,
            tag.timeline.object_bytes_received,
        )
        for tag in tags
    }
    written = transport.bytes_written
    limit = asyncio.Semaphore(8)  # CPU-side concurrency of the simulation; modelled time does not depend on it

    async def one(address: EslAddress) -> None:
        async with limit:
            await transport.send_image(address, images[address])

    async with asyncio.TaskGroup() as group:
        for address in addresses:
            group.create_task(one(address), name=f"bench-ble-{address}")
    by_address = {tag.esl_address: tag for tag in tags}
    costs = []
    for address in addresses:
        tag = by_address[address]
        c0, a0, t0, r0, b0 = before[tag.address]
        timeline = tag.timeline
        busy = (timeline.connection_s - c0) + (timeline.att_s - a0) + (timeline.transfer_s - t0)
        costs.append(TagCost(busy, timeline.refresh_s - r0, timeline.object_bytes_received - b0))
    return costs, transport.bytes_written - written


async def run_tags_ble_bench(
    tags: int = 1000,
    parallel: tuple[int, ...] = (1, 2, 4, 8),
    panel: str = "296x128-bwr",
    air_capacity: float = DEFAULT_AIR_CAPACITY,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the benchmark and return the JSON-ready result (see the module docstring)."""
    from sim.ble import BumbleBleakClient, BumbleBleakScanner, EmulatedEslTag, TagProfile, VirtualRadio, use_radio

    started = time.monotonic()
    profile = TagProfile(panel=panel_by_name(panel))
    async with VirtualRadio() as radio:
        with use_radio(radio):
            fleet = [await EmulatedEslTag.create(radio, profile=profile) for _ in range(tags)]
            timing = fleet[0].timing
            access_point = EslAccessPoint(
                ap_sync_key=KeyMaterial(bytes(range(16)), bytes(range(8))),
                client_backend=BumbleBleakClient,
                scanner_backend=BumbleBleakScanner,
                object_channel="sim",
                settings=AccessPointSettings(scan_s=1.0, connect_s=5.0, response_s=5.0, attempts=4),
            )
            addresses = [EslAddress(1 + index // 250, 1 + index % 250) for index in range(tags)]
            if progress:
                progress(f"onboarding {tags} tags")
            outcome = await access_point.onboard_all(
                [(tag.address, address) for tag, address in zip(fleet, addresses, strict=True)], concurrency=8
            )
            records = [record for record in outcome.values() if isinstance(record, EslTagRecord)]
            if len(records) != tags:
                failed = {str(a): str(r) for a, r in outcome.items() if not isinstance(r, EslTagRecord)}
                raise RuntimeError(f"onboarding failed for {len(failed)} tags: {list(failed.items())[:3]}")
            panel_profile = panel_by_name(panel)
            images_a = {
                a: render_label(_fields(n, 1.0 + n % 50 / 10), panel_profile).framebuffer()
                for n, a in enumerate(addresses)
            }
            images_b = {
                a: render_label(_fields(n, 2.0 + n % 50 / 10), panel_profile).framebuffer()
                for n, a in enumerate(addresses)
            }
            if progress:
                progress("baseline: uncompressed price change")
            naive = BleTagTransport(access_point, records, max_concurrent=8, compress=False)
            naive_costs, naive_bytes = await _price_change(naive, fleet, addresses, images_a)
            if progress:
                progress("ours: compressed price change")
            ours = BleTagTransport(access_point, records, max_concurrent=8, compress=True)
            our_costs, our_bytes = await _price_change(ours, fleet, addresses, images_b)
            correct = sum(
                1 for tag in fleet if tag.esl_address is not None and tag.epaper.shown == images_b.get(tag.esl_address)
            )
    throughput = timing.l2cap_throughput_bytes_per_s
    baseline_s = fleet_seconds(naive_costs, 1, air_capacity)
    results = []
    for lanes in parallel:
        seconds = fleet_seconds(our_costs, lanes, air_capacity)
        results.append(
            {
                "parallel_connections": lanes,
                "modelled_s": round(seconds, 1),
                "speedup_vs_baseline": round(baseline_s / seconds, 2),
            }
        )
    raw = statistics.mean(len(image) for image in images_b.values())
    return {
        "benchmark": "tags-ble",
        "tags": tags,
        "panel": panel,
        "timing_model": {
            "connection_setup_s": timing.connection_setup_s,
            "l2cap_throughput_bytes_per_s": throughput,
            "att_round_trip_s": timing.att_round_trip_s,
            "epaper_refresh_s": timing.epaper_refresh_s,
            "air_capacity_bytes_per_s": air_capacity,
        },
        "baseline": {
            "strategy": "sequential, uncompressed",
            "modelled_s": round(baseline_s, 1),
            "bytes_on_air_per_tag": round(naive_bytes / tags, 1),
            "per_tag_busy_s": round(statistics.mean(c.busy_s for c in naive_costs), 3),
        },
        "ours": {
            "strategy": "parallel connections, zlib-compressed images",
            "bytes_on_air_per_tag": round(our_bytes / tags, 1),
            "bytes_ratio_vs_baseline": round(our_bytes / naive_bytes, 3),
            "per_tag_busy_s": round(statistics.mean(c.busy_s for c in our_costs), 3),
            "by_parallelism": results,
        },
        "raw_image_bytes": round(raw, 1),
        "tags_showing_the_new_label": correct,
        "wall_s": round(time.monotonic() - started, 1),
    }
