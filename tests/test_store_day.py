"""The store day (``agents/footfall/day/``): the calendar, the persisted day counters, who is a visitor, and the
``counts/daily`` record handed to the outbox exactly once.

* Calendar: the day runs from boundary to boundary in the store's zone (23 and 25 hours on the daylight-saving
  days); bad zones and the reserved camera name ``daily`` are config errors naming their field.
* :class:`DayCounters`: entries, exits, hours, occupancy; a restart mid-day keeps the counts and says
  ``gallery_reset`` / ``possibly_double_counted``; a day that ended while the gateway was down is closed late;
  the state file holds counts only.
* :class:`StoreDay`: unique, returning and same-visit entries with and without re-identification (a fake
  resolver), staff crossings kept apart, decisions waiting for a resolution, the day boundary clearing it all.
* :class:`StoreDayAgent` on a real outbox: one record per day; a crash after the outbox committed the record
  does not send it again; a lost outbox gets it again with the same ``record_id``.
* The frame loop gives interval records ``unique`` and ``returning``; the ``day-boundary`` simulator scenario
  delivers its ``counts/daily`` record to the cloud sink exactly once (acceptance 7).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.core.config import OutboxConfig
from agents.core.errors import ConfigError
from agents.footfall.agent import run_pipeline
from agents.footfall.config import CameraConfig
from agents.footfall.counting import CounterUpdate, CrossingEvent
from agents.footfall.day.agent import STATE_FILE, StoreDayAgent
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.day.counters import DayCounters
from agents.footfall.day.observer import UNRESOLVED_GRACE_S, StoreDay
from agents.footfall.day.record import DAILY_STREAM
from agents.footfall.sources import Frame, SourceStats
from agents.footfall.types import Detections, Tracks
from agents.gateway.config import parse_config
from agents.uplink.outbox import Outbox
from tests.test_outbox import open_outbox, serving

BERLIN = StoreDayConfig()
# 2026-03-14 12:00 Berlin (CET, UTC+1): store day 2026-03-14 runs 04:00 that day to 04:00 the next.
NOON = dt.datetime(2026, 3, 14, 12, 0, tzinfo=dt.UTC).timestamp() - 3600
NEXT_DAY = NOON + 17 * 3600  # 05:00 on the 15th: past the boundary


class FakeClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def time(self) -> float:
        return self.t


# ---- the calendar -------------------------------------------------------------------------------------------------


def _at(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_store_day_runs_boundary_to_boundary_in_the_stores_zone() -> None:
    assert BERLIN.day_of(_at("2026-03-14T04:00:00+01:00")) == dt.date(2026, 3, 14)
    assert BERLIN.day_of(_at("2026-03-14T03:59:59+01:00")) == dt.date(2026, 3, 13)
    assert BERLIN.day_of(_at("2026-03-15T03:00:00+00:00")) == dt.date(2026, 3, 15)  # 04:00 in Berlin
    start, end = BERLIN.bounds(dt.date(2026, 3, 28))
    assert (end - start) / 3600 == 23  # clocks go forward on the 29th at 02:00
    start, end = BERLIN.bounds(dt.date(2026, 10, 24))
    assert (end - start) / 3600 == 25  # and back on the 25th of October
    assert BERLIN.local_hour(_at("2026-07-01T10:30:00+00:00")) == 12  # CEST
    # A boundary inside the hour that does not exist on the spring day falls an hour later that day.
    spring = StoreDayConfig(boundary=dt.time(2, 30))
    begins = dt.datetime.fromtimestamp(spring.day_start(dt.date(2026, 3, 29)), spring.zone)
    assert (begins.hour, begins.minute) == (3, 30)


def _gateway_yaml(footfall: str, camera: str = "door", zones: str = "") -> str:
    return f"""\
store_id: store-1
gateway_id: gw-1
broker: {{url: "mqtt://127.0.0.1:1883"}}
footfall:
{footfall}
cameras:
  - name: {camera}
    source: {{url: door.mp4}}
    detector: {{type: yolox}}
    counting:
      lines: [{{name: door, p1: [0, 0], p2: [10, 0]}}]
{zones}
"""


def test_footfall_section_in_the_gateway_config() -> None:
    config = parse_config(_gateway_yaml("  day: {boundary: 03:30, timezone: America/New_York}"))
    assert config.footfall.day.boundary == dt.time(3, 30)  # unquoted 03:30 is YAML 1.1 sexagesimal 210
    assert config.footfall.day.timezone == "America/New_York"
    assert config.footfall.identity is None and config.footfall.staff is None
    assert parse_config(_gateway_yaml("  day: {}")).footfall.day == StoreDayConfig()


def test_bad_footfall_settings_name_their_field() -> None:
    with pytest.raises(ConfigError, match=r"footfall\.day\.timezone \(line 5\).*unknown time zone 'Mars/Olympus'"):
        parse_config(_gateway_yaml("  day: {timezone: Mars/Olympus}"))
    with pytest.raises(ConfigError, match=r"footfall\.day\.boundary"):
        parse_config(_gateway_yaml('  day: {boundary: "25:00"}'))
    with pytest.raises(ConfigError, match=r"may not be called 'daily'"):
        parse_config(_gateway_yaml("  day: {}", camera="daily"))
    with pytest.raises(ConfigError, match=r"footfall\.identity\.type"):
        parse_config(_gateway_yaml("  identity: {type: resnet, model: reid.onnx}"))
    with pytest.raises(ConfigError, match=r"camera 'door' has no zone 'office'"):
        parse_config(_gateway_yaml("  staff: {zones: {door: [office]}}"))
    staffed = parse_config(
        _gateway_yaml(
            "  staff: {zones: {door: [office]}}",
            zones="      zones: [{name: office, polygon: [[0, 0], [9, 0], [9, 9], [0, 9]]}]",
        )
    )
    assert staffed.footfall.staff is not None


# ---- the day counters ---------------------------------------------------------------------------------------------


def _counters(tmp_path: Path | None = None, *, now: float = NOON, reid: bool = False) -> DayCounters:
    return DayCounters(
        BERLIN,
        store_id="store-1",
        gateway_id="gw-1",
        now=now,
        path=tmp_path / STATE_FILE if tmp_path is not None else None,
        reidentification=reid,
    )


def test_counters_and_the_daily_record() -> None:
    counters = _counters()
    for minutes in (0, 5, 65):
        counters.crossing("door", "a_to_b", NOON + minutes * 60)
    counters.crossing("side", "a_to_b", NOON + 70 * 60)
    counters.crossing("door", "b_to_a", NOON + 80 * 60)
    counters.staff_crossing("door", "door", "a_to_b", NOON)
    counters.visitors(unique=3, returning=1)
    counters.quality("door", frames_skipped=7, downtime_s=2.25)
    assert counters.roll(NOON + 3600) == []  # not over yet
    (record,) = counters.roll(NEXT_DAY)
    assert record.record_id == "store-1:2026-03-14"
    assert (record.day_start, record.day_end) == BERLIN.bounds(dt.date(2026, 3, 14))
    assert (record.entries, record.exits, record.unique_visitors, record.returning) == (4, 1, 3, 1)
    assert record.staff_crossings == 1
    assert record.entries_by_hour[12] == 2 and record.entries_by_hour[13] == 2 and sum(record.entries_by_hour) == 4
    assert (record.peak_occupancy, record.occupancy_at_close) == (4, 3)
    assert (record.camera_downtime_s, record.frames_skipped) == (2.25, 7)
    assert record.cameras["door"] == {
        "entries": 3,
        "exits": 1,
        "staff_crossings": 1,
        "downtime_s": 2.25,
        "frames_skipped": 7,
    }
    assert not (record.gallery_reset or record.closed_late or record.reidentification)
    assert counters.day == "2026-03-15" and counters.snapshot()["entries"] == 0
    assert counters.snapshot()["occupancy"] == 0  # reset at the boundary: the drift is in the record
    assert [p.data["record_id"] for p in counters.pending] == ["store-1:2026-03-14"]
    assert counters.roll(NOON) == []  # a clock stepped back does not reopen a day


def test_restart_mid_day_keeps_counts_and_says_the_gallery_was_reset(tmp_path: Path) -> None:
    first = _counters(tmp_path, reid=True)
    first.crossing("door", "a_to_b", NOON)
    first.visitors(unique=5)
    first.save()
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert set(state) == {"version", "store_id", "counts", "pending"}  # counts only: nothing about anyone

    second = _counters(tmp_path, now=NOON + 600, reid=True)
    second.load(NOON + 600)
    second.visitors(unique=2)
    second.save()
    third = _counters(tmp_path, now=NOON + 1200, reid=True)
    third.load(NOON + 1200)
    (record,) = third.roll(NEXT_DAY)
    assert (record.entries, record.unique_visitors, record.restarts) == (1, 7, 2)
    assert record.gallery_reset and record.reidentification
    assert record.possibly_double_counted == 5 + 7  # each restart: everyone counted so far may come again

    plain = _counters(tmp_path / "plain")
    plain.visitors(unique=5)
    plain.save()
    again = _counters(tmp_path / "plain", now=NOON + 60)
    again.load(NOON + 60)
    (record,) = again.roll(NEXT_DAY)
    assert (record.restarts, record.gallery_reset, record.possibly_double_counted) == (1, False, 0)


def test_a_day_that_ended_while_down_is_closed_late(tmp_path: Path) -> None:
    before = _counters(tmp_path)
    before.crossing("door", "a_to_b", NOON)
    before.save()
    after = _counters(tmp_path, now=NEXT_DAY + 86400)
    after.load(NEXT_DAY + 86400)
    (pending,) = after.pending
    assert pending.data["record_id"] == "store-1:2026-03-14"
    assert pending.data["closed_late"] and pending.data["entries"] == 1 and pending.data["restarts"] == 0
    assert after.day == "2026-03-16"  # the day in between, never observed, sends nothing
    assert after.snapshot()["restarts"] == 0


def test_a_corrupt_state_file_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / STATE_FILE).write_text("{not json")
    counters = _counters(tmp_path)
    counters.load(NOON)
    assert counters.snapshot()["entries"] == 0
    assert (tmp_path / "footfall-day.corrupt").exists()
    assert "set aside" in caplog.text


# ---- who is a visitor ---------------------------------------------------------------------------------------------


def _update(t: float, *crossings: tuple[int, str]) -> CounterUpdate:
    events = [CrossingEvent("door", d, vid, vid, t, 0, True) for vid, d in crossings]  # type: ignore[arg-type]
    return CounterUpdate(t, 0, events, [])


FRAME = np.zeros((4, 4, 3), np.uint8)


class Day:
    """A store day over fake time; ``frame(camera, t, alive, *crossings)`` is one frame of one camera."""

    def __init__(self, *, unique_from: str = "entries", identity: Any = None, staff: Any = None) -> None:
        self.clock = FakeClock(NOON)
        self.config = StoreDayConfig(unique_from=unique_from)
        self.counters = DayCounters(self.config, store_id="s", gateway_id="g", now=NOON)
        self.day = StoreDay(self.config, self.counters, clock=self.clock, identity=identity, staff=staff)

    def frame(self, camera: str, t: float, alive: Sequence[int], *crossings: tuple[int, str]) -> None:
        identities = {vid: vid for vid in alive}
        self.day.observe(camera, FRAME, Tracks.empty(), identities, _update(t, *crossings), t)

    def figures(self) -> tuple[int, int, int, int]:
        c = self.counters.snapshot()
        return c["entries"], c["exits"], c["unique_visitors"], c["returning"]


def test_without_reidentification_every_counter_identity_is_a_person() -> None:
    store = Day()
    store.frame("door", 1, [1, 2], (1, "a_to_b"))
    store.frame("door", 2, [1, 2], (2, "a_to_b"))
    assert store.day.interval_fields("door") == {"unique": 2, "returning": 0}
    assert store.day.interval_fields("door") == {"unique": 0, "returning": 0}  # since the last call
    store.frame("door", 3, [1, 2], (1, "b_to_a"))
    store.frame("door", 4, [1, 2], (1, "a_to_b"))  # the same identity out and back in: a return
    store.frame("door", 5, [2], (2, "a_to_b"))  # identity 2 again, never out: the same visit (two lines)
    assert store.figures() == (4, 1, 2, 1)
    assert store.day.interval_fields("door") == {"unique": 0, "returning": 1}


@dataclass(frozen=True)
class Res:
    camera: str
    identity: int
    uid: int
    new_person: bool
    returning: bool


class FakeIdentity:
    """Resolves what the test says, when it says; records what the store day tells it."""

    def __init__(self) -> None:
        self.queue: list[Res] = []
        self.ended_calls: list[tuple[str, int, bool]] = []
        self.observed = 0
        self.cleared = 0

    def observe(self, camera: str, frame: Any, tracks: Tracks, identities: Mapping[int, int], t: float) -> None:
        self.observed += 1

    def ended(self, camera: str, identity: int, t: float, crossed_out: bool) -> None:
        self.ended_calls.append((camera, identity, crossed_out))

    def resolutions(self) -> list[Res]:
        queue, self.queue = self.queue, []
        return queue

    def clear_day(self) -> None:
        self.cleared += 1

    def stats(self) -> dict[str, int]:
        return {"people": 0}


def test_reidentification_decides_unique_returning_and_same_visit() -> None:
    fake = FakeIdentity()
    store = Day(identity=fake)
    store.frame("front", 1, [1], (1, "a_to_b"))
    assert store.figures() == (1, 0, 0, 0)  # an entry at once; who entered waits for the resolution
    fake.queue.append(Res("front", 1, 7, True, False))
    store.frame("front", 2, [1])
    assert store.figures()[2:] == (1, 0)
    store.frame("front", 3, [])  # the counter forgot identity 1: it ended
    assert fake.ended_calls == [("front", 1, False)]
    # The same person enters by the side door later: recognised as returning, not a new visitor.
    store.frame("side", 50, [4], (4, "a_to_b"))
    fake.queue.append(Res("side", 4, 7, False, True))
    store.frame("side", 51, [4])
    assert store.figures() == (2, 0, 1, 1)
    assert store.day.interval_fields("side") == {"unique": 0, "returning": 1}
    # Seen at once by an overlapping camera that also counts the door: the same visit, nothing new.
    store.frame("overlap", 51, [9], (9, "a_to_b"))
    fake.queue.append(Res("overlap", 9, 7, False, False))
    store.frame("overlap", 52, [9])
    assert store.figures() == (3, 0, 1, 1)
    # A new person crosses out then in: the exit ends it for the gallery (crossed_out) and the entry returns.
    store.frame("front", 60, [5], (5, "a_to_b"))
    fake.queue.append(Res("front", 5, 8, True, False))
    store.frame("front", 61, [5], (5, "b_to_a"))
    store.frame("front", 62, [5], (5, "a_to_b"))
    assert ("front", 5, True) in fake.ended_calls
    assert store.figures() == (5, 1, 2, 2)
    assert fake.observed == 10  # every frame was shown to the re-identification


def test_an_identity_never_resolved_becomes_its_own_person() -> None:
    fake = FakeIdentity()
    store = Day(identity=fake)
    store.frame("door", 1, [3], (3, "a_to_b"))
    store.frame("door", 2, [])
    assert store.figures()[2] == 0  # waiting a little for a late resolution
    store.frame("door", 2 + UNRESOLVED_GRACE_S, [])
    assert store.figures()[2] == 1
    assert store.day.stats()["unresolved_fallbacks"] == 1
    store.frame("door", 20, [4], (4, "a_to_b"))
    store.day.camera_ended("door", 21)  # the stream ended: nothing more will come
    assert store.figures()[2] == 2


class Staff:
    """Identity 3 is staff; records the calls."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.cleared = 0

    def observe(self, camera: str, tracks: Tracks, identities: Mapping[int, int], update: Any, t: float) -> None:
        pass

    def is_staff(self, camera: str, identity: int, event: CrossingEvent, t: float) -> bool:
        self.asked.append((camera, identity))
        return identity == 3

    def clear_day(self) -> None:
        self.cleared += 1

    def stats(self) -> dict[str, Any]:
        return {"asked": len(self.asked)}


def test_staff_crossings_are_counted_apart() -> None:
    staff = Staff()
    store = Day(staff=staff)
    store.frame("door", 1, [1, 3], (1, "a_to_b"), (3, "a_to_b"))
    store.frame("door", 2, [1, 3], (3, "b_to_a"))
    assert store.figures() == (1, 0, 1, 0)
    snapshot = store.counters.snapshot()
    assert snapshot["staff_crossings"] == 2 and snapshot["cameras"]["door"]["staff_crossings"] == 2
    assert staff.asked == [("door", 1), ("door", 3), ("door", 3)]
    assert store.day.stats()["staff"] == {"asked": 3}


def test_sightings_mode_counts_people_seen() -> None:
    store = Day(unique_from="sightings")
    store.frame("floor", 1, [1, 2])
    store.frame("floor", 2, [1, 2, 3], (1, "a_to_b"))
    assert store.figures() == (1, 0, 3, 0)
    # With re-identification, a line is no door here: crossing it does not end the person's sighting.
    fake = FakeIdentity()
    floor = Day(unique_from="sightings", identity=fake)
    floor.frame("floor", 1, [1], (1, "b_to_a"))
    assert fake.ended_calls == []
    fake.queue.append(Res("floor", 1, 4, True, False))
    floor.frame("floor", 2, [])
    assert fake.ended_calls == [("floor", 1, False)]
    assert floor.figures() == (0, 1, 1, 0)


def test_the_day_boundary_closes_the_day_and_forgets_everyone() -> None:
    fake, staff = FakeIdentity(), Staff()
    store = Day(identity=fake, staff=staff)
    store.frame("door", 1, [1], (1, "a_to_b"))
    fake.queue.append(Res("door", 1, 7, True, False))
    store.frame("door", 2, [1])
    store.clock.t = NEXT_DAY
    store.frame("door", 3, [1])  # the first camera thread past the boundary closes the day
    (pending,) = store.counters.pending
    assert (pending.data["day"], pending.data["unique_visitors"], pending.data["entries"]) == ("2026-03-14", 1, 1)
    assert (fake.cleared, staff.cleared) == (1, 1)
    assert store.counters.day == "2026-03-15"
    store.frame("door", 4, [1], (1, "a_to_b"))  # still in view after the boundary: a stranger of the new day
    fake.queue.append(Res("door", 1, 1, True, False))
    store.frame("door", 5, [1])
    assert store.figures() == (1, 0, 1, 0)


# ---- the agent: exactly once --------------------------------------------------------------------------------------


async def _daily_rows(outbox: Outbox) -> list[dict[str, Any]]:
    rows = await outbox.read_after(0, 1000)
    return [json.loads(row.payload)["data"] for row in rows if row.stream == DAILY_STREAM]


def _agent(tmp_path: Path, outbox: Outbox | None, clock: FakeClock, **kwargs: Any) -> StoreDayAgent:
    return StoreDayAgent(
        BERLIN, outbox, store_id="store-1", gateway_id="gw-1", state_dir=tmp_path / "state", clock=clock, **kwargs
    )


async def test_the_daily_record_goes_to_the_outbox_once(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    async with serving(open_outbox(tmp_path / "outbox.sqlite3")) as outbox:
        agent = _agent(tmp_path, outbox, clock)
        agent.counters.crossing("door", "a_to_b", NOON)
        await agent.step()
        assert await _daily_rows(outbox) == []
        clock.t = NEXT_DAY
        await agent.step()
        await agent.step()
        await agent.drain(1)
        (record,) = await _daily_rows(outbox)
        assert record["record_id"] == "store-1:2026-03-14" and record["entries"] == 1
        assert agent.health.counters["daily_records_sent"] == 1
        assert agent.diagnostics()["day"] == "2026-03-15" and agent.diagnostics()["pending_records"] == 0
    state = json.loads((tmp_path / "state" / STATE_FILE).read_text())
    assert state["pending"] == [] and state["counts"]["day"] == "2026-03-15"


async def test_a_crash_after_the_outbox_committed_does_not_send_it_again(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    path = tmp_path / "outbox.sqlite3"
    async with serving(open_outbox(path)) as outbox:
        crashed = _agent(tmp_path, outbox, clock)
        crashed.counters.crossing("door", "a_to_b", NOON)
        crashed.store_day.roll_if_due(NEXT_DAY)
        # What flush() does up to the put, then the process dies before noting that the outbox has it.
        (pending,) = crashed.counters.pending
        crashed.counters.set_position(pending.data["record_id"], await outbox.stream_position(DAILY_STREAM))
        crashed.counters.save()
        assert (await outbox.put(DAILY_STREAM, pending.data)).accepted
    clock.t = NEXT_DAY + 60
    async with serving(open_outbox(path)) as outbox:
        restarted = _agent(tmp_path, outbox, clock)
        assert len(restarted.counters.pending) == 1
        await restarted.flush()
        assert restarted.counters.pending == []
        assert [r["record_id"] for r in await _daily_rows(outbox)] == ["store-1:2026-03-14"]
    # The outbox itself is lost (a new disk): the record is put again, with the same record id.
    again = tmp_path / "again"
    again.mkdir()
    (again / "state").mkdir()
    (again / "state" / STATE_FILE).write_bytes((tmp_path / "state" / STATE_FILE).read_bytes())
    state = json.loads((again / "state" / STATE_FILE).read_text())
    state["pending"] = [{"data": pending.data, "stream_position": 0}]
    (again / "state" / STATE_FILE).write_text(json.dumps(state))
    async with serving(open_outbox(again / "outbox.sqlite3", OutboxConfig())) as outbox:
        fresh = _agent(again, outbox, clock)
        await fresh.flush()
        assert [r["record_id"] for r in await _daily_rows(outbox)] == ["store-1:2026-03-14"]


async def test_restart_mid_day_through_the_agent(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    async with serving(open_outbox(tmp_path / "outbox.sqlite3")) as outbox:
        first = _agent(tmp_path, outbox, clock, identity=FakeIdentity())
        first.counters.visitors(unique=4)
        await first.drain(1)
        clock.t = NOON + 3600
        second = _agent(tmp_path, outbox, clock, identity=FakeIdentity())
        clock.t = NEXT_DAY
        await second.step()
        (record,) = await _daily_rows(outbox)
    assert (record["gallery_reset"], record["possibly_double_counted"], record["restarts"]) == (True, 4, 1)


async def test_camera_downtime_is_booked_while_the_camera_is_down(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    agent = _agent(tmp_path, None, clock)
    totals = [0.0, 0]
    agent.watch_camera("door", lambda: (totals[0], int(totals[1])))
    totals[:] = [5.0, 10]
    await agent.step()
    totals[:] = [1.0, 2]  # the camera's agent restarted: its source counts from 0 again
    await agent.step()
    door = agent.counters.snapshot()["cameras"]["door"]
    assert (door["downtime_s"], door["frames_skipped"]) == (6.0, 12)


# ---- the frame loop -----------------------------------------------------------------------------------------------


def test_interval_records_carry_unique_and_returning() -> None:
    camera = CameraConfig.model_validate(
        {
            "name": "door",
            "source": {"url": "door.mp4"},
            "detector": {"type": "yolox", "model": "unused.onnx"},
            "counting": {"lines": [{"name": "door", "p1": [320, 480], "p2": [320, 0]}]},  # a_to_b: left to right
            "interval_s": 1,
        }
    )

    class Source:
        live = False

        def __init__(self) -> None:
            self.stats = SourceStats()

        def __iter__(self) -> Any:
            for index in range(30):
                self.stats._add("frames_delivered")
                yield Frame(index, index / 10, np.zeros((480, 640, 3), np.uint8))

    class Walker:
        """One person walking left to right across x=320."""

        name = "walker"
        input_size = (640, 640)
        frame = 0

        def detect(self, _image: Any) -> Detections:
            x = 100 + 15 * self.frame
            self.frame += 1
            return Detections.from_lists([(x, 200, x + 60, 400)], [0.9])

    counters = DayCounters(BERLIN, store_id="s", gateway_id="g", now=NOON)
    observer = StoreDay(BERLIN, counters, clock=FakeClock(NOON))
    records: list[dict[str, Any]] = []
    run_pipeline(camera, Source(), Walker(), records.extend, {}, observer)  # type: ignore[arg-type]
    assert all({"unique", "returning"} <= set(r) for r in records)
    assert sum(r["visits_a_to_b"] for r in records) == sum(r["unique"] for r in records) == 1
    assert counters.snapshot()["unique_visitors"] == sum(r["unique"] for r in records)


# ---- the simulator: a day boundary in seconds (acceptance 7) ------------------------------------------------------


async def test_day_boundary_scenario_delivers_the_daily_record_exactly_once(tmp_path: Path) -> None:
    from rich.console import Console

    from sim.harness import load_scenario, run_scenario

    scenario = load_scenario("day-boundary")
    with (tmp_path / "log.txt").open("w") as log:
        report = await run_scenario(scenario, console=Console(file=log), workdir=tmp_path)
    assert report["failures"] == []
    daily = report["store_day"]["daily"]
    assert daily["messages"] == 1 and daily["repeated_record_ids"] == []
    (record_id,) = daily["record_ids"]
    assert record_id.startswith("sim-store-1:")
    assert report["cloud"]["streams"][f"sim-gw-day/{DAILY_STREAM}"] == {
        "received": 1,
        "max_stream_seq": 1,
        "missing": 0,
    }
    assert report["uplink"]["duplicates"] == 0


# ---- wiring and threads -------------------------------------------------------------------------------------------


async def test_one_store_day_is_shared_by_the_cameras_of_the_gateway(tmp_path: Path) -> None:
    from agents.footfall.agent import FootfallAgent
    from agents.gateway.runtime import Gateway
    from tests.conftest import gateway_config

    def camera(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "source": {"url": f"{name}.mp4"},
            "detector": {"type": "yolox"},
            "counting": {
                "lines": [{"name": "door", "p1": [0, 0], "p2": [10, 0]}],
                "zones": [{"name": "office", "polygon": [[0, 0], [9, 0], [9, 9], [0, 9]]}],
            },
        }

    config = gateway_config(
        tmp_path,
        "mqtt://127.0.0.1:1",
        cameras=[camera("front"), camera("side")],
        footfall={"staff": {"zones": {"side": ["office"]}}},
    )
    gateway = Gateway(config)
    agents = await gateway._footfall_agents(None)  # type: ignore[arg-type]
    assert [agent.name for agent in agents] == ["store-day", "footfall-front", "footfall-side"]
    day = gateway.store_day
    assert day is not None and agents[0] is day
    cameras = [agent for agent in agents if isinstance(agent, FootfallAgent)]
    assert all(agent.observer is day.store_day for agent in cameras)
    assert day.store_day.staff is not None and day.store_day.identity is None
    assert set(day.counters.snapshot()["cameras"]) == {"front", "side"}


def test_cameras_on_their_own_threads_count_into_one_day() -> None:
    import threading

    store = Day()
    per_camera = 500

    def camera(name: str) -> None:
        for vid in range(1, per_camera + 1):
            store.frame(name, float(vid), [vid], (vid, "a_to_b"))

    threads = [threading.Thread(target=camera, args=(f"cam{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.figures() == (4 * per_camera, 0, 4 * per_camera, 0)
    fields = [store.day.interval_fields(f"cam{i}") for i in range(4)]
    assert fields == [{"unique": per_camera, "returning": 0}] * 4


def test_the_simulated_clock() -> None:
    from pydantic import ValidationError

    from sim.clock import SimClock, SimClockConfig

    clock = SimClock.from_config(SimClockConfig(before_boundary_s=30, rate=10), BERLIN, now=NOON)
    assert abs(clock.time() - (BERLIN.bounds(dt.date(2026, 3, 14))[1] - 30)) < 1
    start = SimClock.from_config(SimClockConfig(start="2026-03-14T03:59:00+01:00"), BERLIN)
    assert abs(start.time() - _at("2026-03-14T03:59:00+01:00")) < 1
    with pytest.raises(ValidationError, match="exactly one"):
        SimClockConfig(rate=2)
    with pytest.raises(ValidationError, match="time zone"):
        SimClockConfig(start="2026-03-14T03:59:00")


async def test_restart_with_the_record_still_in_the_outbox_delivers_it_once(tmp_path: Path) -> None:
    """The day closes while the broker is down; the gateway restarts; the outbox sends the record, once."""
    import asyncio

    from agents.cloud.sink import CloudSink
    from agents.gateway.runtime import Gateway
    from sim.clock import SimClock
    from tests.brokers import Mosquitto
    from tests.conftest import gateway_config, wait_for

    broker = Mosquitto(tmp_path / "mosquitto")  # on its port, but not started yet: the broker is down
    camera = {
        "name": "door",
        "source": {"url": "rtsp://127.0.0.1:9/absent", "reconnect_min_s": 0.5, "reconnect_max_s": 1},
        "detector": {"type": "yolox"},
        "counting": {"lines": [{"name": "door", "p1": [0, 0], "p2": [10, 0]}]},
    }
    config = gateway_config(tmp_path, broker.url, cameras=[camera])
    boundary = BERLIN.bounds(BERLIN.day_of(NOON))[1]

    async def run(clock: SimClock, until: Any, *, sink: CloudSink | None = None) -> None:
        gateway = Gateway(config, clock=clock)
        stop = asyncio.Event()
        task = asyncio.create_task(gateway.run(stop), name="test:gateway")
        try:
            await wait_for(lambda: until(gateway), timeout=20, what="the gateway")
        finally:
            stop.set()
            await task

    def queued(gateway: Gateway) -> bool:
        return gateway.store_day is not None and bool(gateway.store_day.health.counters.get("daily_records_sent"))

    await run(SimClock(boundary - 1, 1.0), queued)  # closes the day; nothing can be published
    state = json.loads((config.state_dir / STATE_FILE).read_text())
    assert state["pending"] == [] and state["counts"]["day"] == "2026-03-15"

    broker.start()
    sink = CloudSink(broker.url, tmp_path / "cloud.sqlite3")
    try:
        async with asyncio.TaskGroup() as group:
            sink_task = group.create_task(sink.run(), name="test:sink")
            await asyncio.wait_for(sink.session.wait_connected(), 10)
            await run(
                SimClock(boundary + 60, 1.0),
                lambda gw: bool(sink.store.stream_data("gw-1", DAILY_STREAM)) and gw.outbox.stats.backlog_messages == 0,
            )
            sink.session.request_stop()
            await sink_task
        (record,) = sink.store.stream_data("gw-1", DAILY_STREAM)
        assert record["record_id"] == "store-1:2026-03-14" and not record["closed_late"]
        assert sink.store.report()["streams"][f"gw-1/{DAILY_STREAM}"]["received"] == 1
    finally:
        sink.close()
        broker.stop()


def test_the_sim_report_fails_on_a_repeated_or_missing_daily_record() -> None:
    from sim.harness import report_failures

    def report(messages: int, repeated: list[str], expect: bool = True) -> dict[str, Any]:
        daily = {"messages": messages, "record_ids": ["s:2026-03-14"], "repeated_record_ids": repeated, "days": []}
        return {"uplink": {"lost": 0}, "agents": {}, "store_day": {"daily": daily, "expect_daily": expect}}

    assert report_failures(report(1, [])) == []
    assert report_failures(report(2, ["s:2026-03-14"])) == ["daily records arrived more than once: s:2026-03-14"]
    assert report_failures(report(0, [])) == ["the run crossed a day boundary but no counts/daily record arrived"]
    assert report_failures(report(0, [], expect=False)) == []
