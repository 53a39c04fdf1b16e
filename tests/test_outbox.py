"""Tests for the durable outbox (``agents/uplink/outbox.py``): the SQLite ``OutboxStore`` and the asyncio
``Outbox`` facade.

Covers: sequence allocation (``seq`` per gateway, ``stream_seq`` per stream) and its continuity across
close/reopen, also after every message was deleted; durability and byte-identical payloads after reopen;
acks (batched, flushed by the writer or by ``aclose``) and backlog statistics; the ``drop_oldest`` and
``drop_newest`` policies with drop counts persisted per stream and reason; age expiry; the
``MessageTooLarge`` check; ``put_many`` ordering; ``OutboxStats.as_dict``; ``read_after`` served from
SQLite (backlog from before a reopen, evicted cache) and from the in-memory cache (fresh rows); and
envelopes that decode with ``protocols.mqtt_v1.decode_envelope`` carrying the id ``<gateway>:<seq>``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.core.config import DropPolicy, OutboxConfig
from agents.core.errors import MessageTooLarge, OutboxError
from agents.uplink.outbox import Outbox, OutboxRow, OutboxStore, PutResult
from protocols.errors import ProtocolError
from protocols.mqtt_v1 import GatewayTopics, decode_envelope, encode_data
from tests.conftest import wait_for

TOPICS = GatewayTopics("s1", "g1")
GATEWAY = "g1"


def open_store(path: Path, config: OutboxConfig | None = None) -> OutboxStore:
    return OutboxStore(path, config or OutboxConfig(), gateway_id=GATEWAY, topic_for=TOPICS.stream)


def open_outbox(path: Path, config: OutboxConfig | None = None, **kwargs: Any) -> Outbox:
    return Outbox(open_store(path, config), **kwargs)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "outbox.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[OutboxStore]:
    s = open_store(db_path)
    yield s
    s.close()


def item(stream: str, data: Any, ts: float = 1000.0) -> tuple[str, bytes, float]:
    return (stream, encode_data(data), ts)


async def cancel_and_wait(task: asyncio.Task[None], grace_s: float = 2.0) -> bool:
    """Cancel ``task``; True if it ended within ``grace_s``. If not, cancel again until it ends (bounded
    clean-up for a writer that swallowed the first cancel) and return False."""
    task.cancel()
    await asyncio.wait([task], timeout=grace_s)
    if task.done():
        return True
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    return False


@asynccontextmanager
async def serving(outbox: Outbox) -> AsyncIterator[Outbox]:
    """Run ``outbox.serve()`` in a TaskGroup for the block; cancel it, then ``aclose()`` (which flushes acks).

    Fails (instead of hanging) if the writer does not stop within 2 s of its cancellation.
    """
    stopped = True
    try:
        async with asyncio.TaskGroup() as group:
            writer = group.create_task(outbox.serve(), name="test:outbox-writer")
            try:
                yield outbox
            finally:
                stopped = await cancel_and_wait(writer)
    finally:
        await outbox.aclose()
    assert stopped, "Outbox.serve() did not stop when cancelled"


async def settle() -> None:
    """Give the writer time to handle a wake-up (it needs one loop iteration, no I/O)."""
    await asyncio.sleep(0.05)


# == OutboxStore (synchronous) =========================================================================


def test_append_allocates_seq_and_stream_seq(store: OutboxStore) -> None:
    results, evicted = store.append_many([item("counts", 1), item("heartbeat", 2), item("counts", 3)])
    assert results == [PutResult(1, 1), PutResult(2, 1), PutResult(3, 2)]
    assert all(r.accepted for r in results)
    assert evicted == []
    results, _ = store.append_many([item("heartbeat", 4)])
    assert results == [PutResult(4, 2)]
    assert store.stream_position("counts") == 2
    assert store.stream_position("heartbeat") == 2
    assert store.stream_position("never-used") == 0
    assert store.stats.last_seq == 4
    assert store.stats.backlog_messages == 4
    assert store.stats.accepted == 4


def test_rows_and_envelopes(store: OutboxStore) -> None:
    store.append_many([item("counts/door-1", {"in": 3}, ts=1700000000.5), item("heartbeat", None, ts=1700000001.0)])
    rows = store.read_after(0, 10)
    assert [r.seq for r in rows] == [1, 2]
    first = rows[0]
    assert first.stream == "counts/door-1"
    assert first.stream_seq == 1
    assert first.topic == "storeedge/v1/s1/g1/counts/door-1"
    assert first.ts == 1700000000.5
    envelope = decode_envelope(first.payload)
    assert envelope.id == "g1:1"
    assert (envelope.gateway, envelope.stream, envelope.seq, envelope.stream_seq) == ("g1", "counts/door-1", 1, 1)
    assert envelope.ts == 1700000000.5
    assert envelope.data == {"in": 3}
    assert decode_envelope(rows[1].payload).id == "g1:2"
    assert store.stats.backlog_bytes == sum(len(r.payload) + len(r.topic) for r in rows)


def test_read_after_respects_seq_and_limit(store: OutboxStore) -> None:
    store.append_many([item("s", i) for i in range(10)])
    assert [r.seq for r in store.read_after(0, 3)] == [1, 2, 3]
    assert [r.seq for r in store.read_after(7, 100)] == [8, 9, 10]
    assert store.read_after(10, 5) == []


def test_messages_survive_reopen_byte_identical(db_path: Path) -> None:
    store = open_store(db_path)
    store.append_many([item("counts", {"n": i, "text": "é✓"}, ts=1000.0 + i) for i in range(5)])
    before = store.read_after(0, 100)
    store.close()

    store = open_store(db_path)
    try:
        after = store.read_after(0, 100)
        assert after == before
        assert [r.seq for r in after] == [1, 2, 3, 4, 5]
        assert all(isinstance(r.payload, bytes) for r in after)
        assert store.stats.backlog_messages == 5
        assert store.stats.backlog_bytes == sum(len(r.payload) + len(r.topic) for r in before)
        assert store.stats.oldest_ts == 1000.0
        assert store.stats.last_seq == 5
        assert store.stats.accepted == 0  # accepted counts this process only
    finally:
        store.close()


def test_seq_and_stream_seq_continue_after_reopen(db_path: Path) -> None:
    store = open_store(db_path)
    store.append_many([item("a", 1), item("b", 2), item("a", 3)])
    store.close()
    store = open_store(db_path)
    try:
        results, _ = store.append_many([item("a", 4), item("b", 5)])
        assert results == [PutResult(4, 3), PutResult(5, 2)]
    finally:
        store.close()


def test_seq_not_reused_after_everything_was_deleted(db_path: Path) -> None:
    store = open_store(db_path)
    store.append_many([item("a", i) for i in range(3)])
    assert store.delete([1, 2, 3]) == 3
    assert store.stats.backlog_messages == 0
    store.close()

    store = open_store(db_path)
    try:
        assert store.read_after(0, 10) == []
        assert store.stats.last_seq == 3
        results, _ = store.append_many([item("a", "again")])
        assert results == [PutResult(4, 4)]
        assert decode_envelope(store.read_after(0, 1)[0].payload).id == "g1:4"
    finally:
        store.close()


def test_seq_not_reused_after_range_delete_and_reopen(db_path: Path) -> None:
    store = open_store(db_path)
    store.append_many([item("a", i) for i in range(4)])
    store.delete_known([(r.seq, r.stream, len(r.payload) + len(r.topic)) for r in store.read_after(0, 10)])
    assert store.stats.backlog_messages == 0
    assert store.stats.backlog_bytes == 0
    assert store.stats.oldest_ts is None
    store.close()
    store = open_store(db_path)
    try:
        assert store.append_many([item("a", "x")])[0] == [PutResult(5, 5)]
    finally:
        store.close()


def test_delete_updates_backlog_and_acked(store: OutboxStore) -> None:
    store.append_many([item("s", i, ts=1000.0 + i) for i in range(3)])
    sizes = {r.seq: len(r.payload) + len(r.topic) for r in store.read_after(0, 10)}
    assert store.delete([1]) == 1
    assert store.stats.backlog_messages == 2
    assert store.stats.backlog_bytes == sizes[2] + sizes[3]
    assert store.stats.oldest_ts == 1001.0
    assert store.stats.acked == 1
    assert store.delete([1, 99]) == 0  # already gone / never existed
    assert store.stats.acked == 1
    assert [r.seq for r in store.read_after(0, 10)] == [2, 3]
    assert store.stats.dropped == {}


def test_drop_oldest_evicts_and_counts(db_path: Path) -> None:
    config = OutboxConfig(max_bytes=2000)
    store = open_store(db_path, config)
    accepted: list[PutResult] = []
    evicted: list[int] = []
    for i in range(60):
        results, gone = store.append_many([item("counts", {"i": i, "pad": "x" * 20})])
        accepted += results
        evicted += gone
    assert all(r.accepted for r in accepted)
    assert [r.seq for r in accepted] == list(range(1, 61))
    remaining = store.read_after(0, 1000)
    assert store.stats.backlog_bytes <= 2000
    assert store.stats.backlog_bytes == sum(len(r.payload) + len(r.topic) for r in remaining)
    assert store.stats.backlog_messages == len(remaining)
    # The newest survive, the oldest were evicted, in order.
    assert [r.seq for r in remaining] == list(range(61 - len(remaining), 61))
    assert evicted == list(range(1, 61 - len(remaining)))
    dropped = 60 - len(remaining)
    assert dropped > 0
    assert store.stats.dropped == {"full": dropped}
    assert store.stats.as_dict()["dropped_total"] == dropped
    assert store.drops_by_stream() == {"counts": {"full": dropped}}
    store.close()

    store = open_store(db_path, config)
    try:
        assert store.stats.dropped == {"full": dropped}
        assert store.drops_by_stream() == {"counts": {"full": dropped}}
        assert store.read_after(0, 1000) == remaining
        assert store.stats.backlog_messages == len(remaining)
    finally:
        store.close()


def test_drop_oldest_in_one_batch(store: OutboxStore, db_path: Path) -> None:
    small = open_store(db_path.with_name("small.sqlite3"), OutboxConfig(max_bytes=2000))
    try:
        results, evicted = small.append_many([item("a" if i % 2 else "b", "y" * 30) for i in range(50)])
        assert [r.seq for r in results] == list(range(1, 51))
        remaining = small.read_after(0, 1000)
        assert [r.seq for r in remaining] == list(range(51 - len(remaining), 51))
        assert evicted == list(range(1, 51 - len(remaining)))
        assert small.stats.backlog_bytes <= 2000
        by_stream = small.drops_by_stream()
        assert sum(d["full"] for d in by_stream.values()) == len(evicted)
        assert small.stats.dropped == {"full": len(evicted)}
        assert small.stats.oldest_ts == remaining[0].ts
    finally:
        small.close()


def test_drop_newest_refuses_and_counts(db_path: Path) -> None:
    config = OutboxConfig(max_bytes=2000, drop_policy=DropPolicy.DROP_NEWEST)
    store = open_store(db_path, config)
    results: list[PutResult] = []
    for i in range(60):
        results += store.append_many([item("counts", {"i": i, "pad": "x" * 20})])[0]
    accepted = [r for r in results if r.accepted]
    refused = [r for r in results if not r.accepted]
    assert refused and accepted
    assert all(r == PutResult(None, None) for r in refused)
    # The first ones are kept, with contiguous sequence numbers: a refusal consumes no seq.
    assert [r.seq for r in accepted] == list(range(1, len(accepted) + 1))
    assert [r.stream_seq for r in accepted] == list(range(1, len(accepted) + 1))
    assert results[: len(accepted)] == accepted
    assert [r.seq for r in store.read_after(0, 1000)] == [r.seq for r in accepted]
    assert store.stats.backlog_bytes <= 2000
    assert store.stats.dropped == {"full": len(refused)}
    assert store.drops_by_stream() == {"counts": {"full": len(refused)}}

    # Room again after an ack: the next message takes the next seq.
    store.delete([1, 2, 3])
    after_ack, _ = store.append_many([item("counts", "fits")])
    assert after_ack == [PutResult(len(accepted) + 1, len(accepted) + 1)]
    store.close()

    store = open_store(db_path, config)
    try:
        assert store.stats.dropped == {"full": len(refused)}
        assert store.drops_by_stream() == {"counts": {"full": len(refused)}}
    finally:
        store.close()


def test_age_expiry_drops_and_counts(db_path: Path) -> None:
    config = OutboxConfig(max_age=timedelta(seconds=10))
    store = open_store(db_path, config)
    store.append_many([item("old", 1, ts=1000.0), item("old", 2, ts=1004.0), item("new", 3, ts=1020.0)])
    assert store.expire(1010.0) == []
    assert store.expire(1015.0) == [1, 2]
    assert [r.seq for r in store.read_after(0, 10)] == [3]
    assert store.stats.backlog_messages == 1
    assert store.stats.oldest_ts == 1020.0
    assert store.stats.dropped == {"age": 2}
    assert store.stats.acked == 0
    assert store.drops_by_stream() == {"old": {"age": 2}}
    assert store.expire(1015.0) == []
    store.close()

    store = open_store(db_path, config)
    try:
        assert store.stats.dropped == {"age": 2}
        assert store.expire(1031.0) == [3]
        assert store.stats.dropped == {"age": 3}
        assert store.drops_by_stream() == {"old": {"age": 2}, "new": {"age": 1}}
        assert store.stats.backlog_messages == 0
        assert store.stats.oldest_ts is None
    finally:
        store.close()


def test_stats_as_dict(store: OutboxStore) -> None:
    empty = store.stats.as_dict(now=5000.0)
    assert empty == {
        "backlog_messages": 0,
        "backlog_bytes": 0,
        "oldest_age_s": None,
        "last_seq": 0,
        "accepted": 0,
        "acked": 0,
        "dropped": {},
        "dropped_total": 0,
    }
    store.append_many([item("s", 1, ts=1000.0), item("s", 2, ts=1001.0)])
    store.delete([2])
    stats = store.stats.as_dict(now=1012.3456)
    assert set(stats) == set(empty)
    assert stats["backlog_messages"] == 1
    assert stats["oldest_age_s"] == 12.346
    assert stats["last_seq"] == 2
    assert stats["accepted"] == 2
    assert stats["acked"] == 1
    assert store.stats.as_dict(now=900.0)["oldest_age_s"] == 0.0  # clock went back: never negative


def test_drops_of_several_reasons_add_up(db_path: Path) -> None:
    store = open_store(db_path, OutboxConfig(max_bytes=1000, max_age=timedelta(seconds=5)))
    try:
        store.append_many([item("a", "p" * 40, ts=1000.0 + i) for i in range(20)])
        full = store.stats.dropped["full"]
        left = store.stats.backlog_messages
        store.expire(10_000.0)
        assert store.stats.dropped == {"full": full, "age": left}
        assert store.stats.as_dict()["dropped_total"] == 20
        assert store.drops_by_stream() == {"a": {"full": full, "age": left}}
    finally:
        store.close()


# == Outbox (asyncio facade) ===========================================================================


async def test_put_returns_seq_and_stream_seq(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        assert await outbox.put("counts", {"n": 1}) == PutResult(1, 1)
        assert await outbox.put("heartbeat", {}) == PutResult(2, 1)
        assert await outbox.put("counts", {"n": 2}) == PutResult(3, 2)
        assert await outbox.stream_position("counts") == 2
        assert outbox.stats.last_seq == 3
        assert outbox.stats.accepted == 3
        assert outbox.stats.backlog_messages == 3


async def test_concurrent_puts_get_distinct_ordered_seqs(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        results = await asyncio.gather(*(outbox.put("s", i) for i in range(50)))
        assert sorted(r.seq for r in results if r.seq is not None) == list(range(1, 51))
        rows = await outbox.read_after(0, 100)
        # gather starts the puts in order, so data i has seq i + 1.
        assert [decode_envelope(r.payload).data for r in rows] == list(range(50))
        assert [r.seq for r in results] == list(range(1, 51))


async def test_put_many_keeps_order_and_returns_one_result_each(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        items: list[tuple[str, Any]] = [("a", 0), ("b", 1), ("a", 2), ("c", 3), ("a", 4)]
        results = await outbox.put_many(items)
        assert results == [PutResult(1, 1), PutResult(2, 1), PutResult(3, 2), PutResult(4, 1), PutResult(5, 3)]
        rows = await outbox.read_after(0, 10)
        assert [(r.stream, decode_envelope(r.payload).data) for r in rows] == items
        assert await outbox.put_many([]) == []


async def test_envelopes_decode_with_gateway_id(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        await outbox.put_many([("counts/door-1", {"in": 2}), ("heartbeat", None)])
        rows = await outbox.read_after(0, 10)
        for row in rows:
            envelope = decode_envelope(row.payload)
            assert envelope.id == f"g1:{row.seq}"
            assert envelope.gateway == "g1"
            assert envelope.stream == row.stream
            assert envelope.seq == row.seq
            assert envelope.stream_seq == row.stream_seq
            assert row.topic == TOPICS.stream(row.stream)
        assert decode_envelope(rows[0].payload).data == {"in": 2}


async def test_messages_survive_reopen_through_outbox(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        await outbox.put_many([("s", {"i": i, "t": "é"}) for i in range(5)])
        written = await outbox.read_after(0, 100)

    store = open_store(db_path)
    try:
        assert store.read_after(0, 100) == written
    finally:
        store.close()

    outbox = open_outbox(db_path)
    async with serving(outbox):
        assert await outbox.read_after(0, 100) == written
        assert await outbox.put("s", "next") == PutResult(6, 6)


async def test_ack_deletes_after_writer_flush(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    outbox.ack_batch = 2
    async with serving(outbox):
        await outbox.put_many([("s", i) for i in range(3)])
        outbox.ack(1)
        outbox.ack(2)
        await wait_for(lambda: outbox.stats.acked == 2, timeout=5, what="acks flushed")
        assert outbox.stats.backlog_messages == 1
        assert outbox.stats.backlog_bytes == sum(len(r.payload) + len(r.topic) for r in outbox.store.read_after(0, 9))
        assert [r.seq for r in await outbox.read_after(0, 10)] == [3]
        assert outbox.stats.dropped == {}

    store = open_store(db_path)
    try:
        assert [r.seq for r in store.read_after(0, 10)] == [3]
    finally:
        store.close()


async def test_ack_is_flushed_after_linger_when_writer_is_idle(db_path: Path) -> None:
    """A lone ack must be deleted about ``ack_linger_s`` later, not only at the next age sweep (10 s)."""
    outbox = open_outbox(db_path)
    outbox.ack_linger_s = 0.05
    async with serving(outbox):
        await outbox.put_many([("s", i) for i in range(3)])
        await asyncio.sleep(0.05)  # the writer is idle again
        outbox.ack(1)
        await wait_for(lambda: outbox.stats.acked == 1, timeout=2, what="ack flushed after ack_linger_s")
        assert outbox.stats.backlog_messages == 2


async def test_full_ack_batch_is_flushed_without_linger(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    outbox.ack_batch = 3
    outbox.ack_linger_s = 60.0
    async with serving(outbox):
        await outbox.put_many([("s", i) for i in range(4)])
        for seq in (1, 2, 3):
            outbox.ack(seq)
        await wait_for(lambda: outbox.stats.acked == 3, timeout=5, what="a full ack batch flushed")
        assert outbox.stats.backlog_messages == 1


async def test_aclose_flushes_pending_acks(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    outbox.ack_linger_s = 60.0  # the writer would wait a minute; aclose must not
    async with serving(outbox):
        await outbox.put_many([("s", i) for i in range(4)])
        for seq in (1, 2, 4):
            outbox.ack(seq)
        await settle()
        assert outbox.stats.acked == 0  # still lingering
    assert outbox.stats.acked == 3
    assert outbox.stats.backlog_messages == 1

    store = open_store(db_path)
    try:
        assert [r.seq for r in store.read_after(0, 10)] == [3]
        assert store.stats.backlog_messages == 1
    finally:
        store.close()


async def test_acking_a_seq_twice_in_one_batch_counts_it_once(db_path: Path) -> None:
    """After a reconnect an acked-but-unflushed message is resent and acked again within the linger."""
    outbox = open_outbox(db_path)
    outbox.ack_linger_s = 60.0
    async with serving(outbox):
        await outbox.put_many([("s", 1), ("s", 2)])
        outbox.ack(1)
        outbox.ack(1)
        await settle()
    assert outbox.stats.backlog_messages == 1
    assert outbox.stats.acked == 1
    store = open_store(db_path)
    try:
        assert store.stats.backlog_messages == 1
    finally:
        store.close()


async def test_writer_stops_when_cancelled_right_after_being_woken(db_path: Path) -> None:
    """Shutdown cancels ``serve()``; an ack (or put, reject) that woke the writer just before must not make
    it ignore the cancel and run forever (the gateway's TaskGroup would then never exit)."""
    outbox = open_outbox(db_path)
    outbox.ack_batch = 1
    async with serving(outbox):  # fails if the writer is still running 2 s after its cancellation
        await outbox.put("s", 1)
        outbox.ack(1)  # wakes the writer; leaving the block cancels it in the same loop iteration
    assert outbox.stats.acked == 1


async def test_ack_of_backlog_from_before_reopen(db_path: Path) -> None:
    store = open_store(db_path)
    store.append_many([item("s", i, ts=time.time()) for i in range(3)])
    store.close()
    outbox = open_outbox(db_path)
    outbox.ack_batch = 3
    async with serving(outbox):
        await outbox.put("s", 3)
        for seq in (1, 2, 4):
            outbox.ack(seq)
        await wait_for(lambda: outbox.stats.acked == 3, timeout=5, what="acks flushed")
        assert outbox.stats.backlog_messages == 1
        assert [r.seq for r in await outbox.read_after(0, 10)] == [3]


async def test_reject_drops_and_counts(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        await outbox.put_many([("a", 1), ("b", 2)])
        outbox.reject(2)
        await wait_for(lambda: outbox.stats.dropped.get("rejected") == 1, timeout=5, what="reject flushed")
        assert outbox.stats.backlog_messages == 1
        assert outbox.stats.acked == 0
        assert await outbox.drops_by_stream() == {"b": {"rejected": 1}}
        assert [r.seq for r in await outbox.read_after(0, 10)] == [1]


async def test_drop_oldest_through_outbox(db_path: Path) -> None:
    outbox = open_outbox(db_path, OutboxConfig(max_bytes=2000))
    async with serving(outbox):
        for i in range(40):
            assert (await outbox.put("counts", {"i": i, "pad": "x" * 20})).accepted
        rows = await outbox.read_after(0, 1000)  # cache path: evicted rows must not be served
        assert [r.seq for r in rows] == list(range(41 - len(rows), 41))
        dropped = 40 - len(rows)
        assert dropped > 0
        assert outbox.stats.dropped == {"full": dropped}
        assert outbox.stats.backlog_messages == len(rows)
        assert outbox.stats.backlog_bytes <= 2000
        assert await outbox.drops_by_stream() == {"counts": {"full": dropped}}
        assert rows == outbox.store.read_after(0, 1000)

    store = open_store(db_path, OutboxConfig(max_bytes=2000))
    try:
        assert store.stats.dropped == {"full": dropped}
        assert store.drops_by_stream() == {"counts": {"full": dropped}}
    finally:
        store.close()


async def test_drop_newest_through_outbox(db_path: Path) -> None:
    outbox = open_outbox(db_path, OutboxConfig(max_bytes=2000, drop_policy=DropPolicy.DROP_NEWEST))
    async with serving(outbox):
        results = await outbox.put_many([("counts", {"i": i, "pad": "x" * 20}) for i in range(40)])
        accepted = [r for r in results if r.accepted]
        refused = [r for r in results if not r.accepted]
        assert accepted and refused
        assert results == accepted + refused  # the newest are refused, not the oldest
        assert [r.seq for r in accepted] == list(range(1, len(accepted) + 1))
        assert not (await outbox.put("counts", "more")).accepted
        assert outbox.stats.dropped == {"full": len(refused) + 1}
        assert await outbox.drops_by_stream() == {"counts": {"full": len(refused) + 1}}
        assert [r.seq for r in await outbox.read_after(0, 1000)] == [r.seq for r in accepted]


async def test_age_expiry_by_writer_sweep(db_path: Path) -> None:
    outbox = open_outbox(db_path, OutboxConfig(max_age=timedelta(milliseconds=50)), sweep_interval_s=0.02)
    async with serving(outbox):
        await outbox.put_many([("old", 1), ("old", 2)])
        await wait_for(lambda: outbox.stats.dropped.get("age") == 2, timeout=5, what="age sweep")
        assert outbox.stats.backlog_messages == 0
        assert await outbox.read_after(0, 10) == []
        assert await outbox.drops_by_stream() == {"old": {"age": 2}}


async def test_message_too_large_stores_nothing(db_path: Path) -> None:
    outbox = open_outbox(db_path, OutboxConfig(max_message_bytes=1000))
    async with serving(outbox):
        with pytest.raises(MessageTooLarge) as info:
            await outbox.put("s", "x" * 2000)
        assert isinstance(info.value, OutboxError) and isinstance(info.value, ValueError)
        assert "limit is 1000" in str(info.value)
        with pytest.raises(MessageTooLarge):
            await outbox.put_many([("s", "small"), ("s", "é" * 600)])  # 1200 bytes of UTF-8
        assert outbox.stats.backlog_messages == 0
        assert outbox.stats.last_seq == 0
        assert await outbox.read_after(0, 10) == []
        # Nothing was consumed: the next message gets seq 1.
        assert await outbox.put("s", "x" * 500) == PutResult(1, 1)
        assert outbox.stats.dropped == {}


async def test_invalid_stream_is_rejected_before_storing(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        with pytest.raises(ProtocolError):
            await outbox.put_many([("ok", 1), ("status", 2)])
        assert outbox.stats.last_seq == 0


async def test_put_after_aclose_raises(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    async with serving(outbox):
        await outbox.put("s", 1)
    with pytest.raises(RuntimeError, match="closed"):
        await outbox.put("s", 2)
    await outbox.aclose()  # idempotent


async def test_read_after_backlog_from_before_reopen(db_path: Path) -> None:
    """Rows from a previous process are read from SQLite; rows of this process come from the cache."""
    store = open_store(db_path)
    store.append_many([item("s", {"old": i}, ts=time.time()) for i in range(3)])
    old_rows = store.read_after(0, 10)
    store.close()

    outbox = open_outbox(db_path)
    async with serving(outbox):
        await outbox.put_many([("s", {"new": 0}), ("s", {"new": 1})])
        everything = await outbox.read_after(0, 100)  # SQLite path (below the cache floor)
        assert [r.seq for r in everything] == [1, 2, 3, 4, 5]
        assert everything[:3] == old_rows
        assert [decode_envelope(r.payload).data for r in everything[3:]] == [{"new": 0}, {"new": 1}]
        assert await outbox.read_after(0, 2) == everything[:2]
        assert await outbox.read_after(1, 100) == everything[1:]
        assert await outbox.read_after(2, 2) == everything[2:4]
        # Cache path: rows committed by this process.
        assert await outbox.read_after(3, 100) == everything[3:]
        assert await outbox.read_after(4, 100) == everything[4:]
        assert await outbox.read_after(3, 1) == everything[3:4]
        assert await outbox.read_after(5, 100) == []
        assert everything == outbox.store.read_after(0, 100)


async def test_read_after_fresh_rows_and_acks(db_path: Path) -> None:
    outbox = open_outbox(db_path)
    outbox.ack_batch = 2
    async with serving(outbox):
        await outbox.put_many([("a", i) for i in range(6)])
        rows = await outbox.read_after(0, 100)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5, 6]
        assert rows == outbox.store.read_after(0, 100)
        assert await outbox.read_after(2, 3) == rows[2:5]
        outbox.ack(3)
        outbox.ack(4)
        await wait_for(lambda: outbox.stats.acked == 2, timeout=5, what="acks flushed")
        assert [r.seq for r in await outbox.read_after(0, 100)] == [1, 2, 5, 6]
        assert [r.seq for r in await outbox.read_after(2, 1)] == [5]


async def test_read_after_when_cache_overflows(db_path: Path) -> None:
    outbox = Outbox(open_store(db_path), cache_limit=3)
    async with serving(outbox):
        for i in range(8):
            await outbox.put("s", i)
        rows = await outbox.read_after(0, 100)
        assert [r.seq for r in rows] == list(range(1, 9))
        assert rows == outbox.store.read_after(0, 100)
        for after in range(9):
            assert await outbox.read_after(after, 100) == rows[after:], after
            assert await outbox.read_after(after, 2) == rows[after : after + 2], after


async def test_outbox_open_and_stats_as_dict(db_path: Path) -> None:
    outbox = Outbox.open(db_path, OutboxConfig(), gateway_id=GATEWAY, topic_for=TOPICS.stream)
    async with serving(outbox):
        await outbox.put("s", 1)
        stats = outbox.stats.as_dict()
        assert set(stats) == {
            "backlog_messages",
            "backlog_bytes",
            "oldest_age_s",
            "last_seq",
            "accepted",
            "acked",
            "dropped",
            "dropped_total",
        }
        assert stats["backlog_messages"] == 1
        assert stats["oldest_age_s"] is not None and 0.0 <= stats["oldest_age_s"] < 60
        assert stats["dropped_total"] == 0
        assert isinstance((await outbox.read_after(0, 1))[0], OutboxRow)
