"""Staff (``agents/footfall/staff``): the config section, badge presences, and the staff policy on synthetic tracks.

The zone tests run the real :class:`FootfallCounter` on trajectory tables (as ``test_counting`` does) and show the
policy each frame the way the store day does: ``observe`` first, then ``is_staff`` per crossing. The scanner over
the emulated radio is tested in ``test_sim_badges.py``; the footage acceptance (badges at the door of the Intel
clip) in ``test_staff_door.py``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from agents.footfall.counting import CounterConfig, CrossingEvent, FootfallCounter
from agents.footfall.day.hooks import StaffPolicy
from agents.footfall.staff import BadgeSightings, StaffConfig, check_staff_zones
from agents.footfall.staff.policy import StaffRules, build_staff_policy
from agents.footfall.staff.scanner import BadgeScannerAgent
from agents.footfall.types import Tracks
from protocols.beacons import EddystoneUid, IBeacon

STAFF_UUID = "E2C56DB5-DFFB-48D2-B060-D0F5A71096E0"
DT = 0.125


def staff(**data: Any) -> StaffConfig:
    return StaffConfig.model_validate(data)


# -- config ------------------------------------------------------------------------------------------------------------


def test_config_full_example() -> None:
    config = staff(
        zones={"door": ["back-office"]},
        badges=[
            {"type": "ibeacon", "uuid": STAFF_UUID},
            {"type": "ibeacon", "uuid": STAFF_UUID, "major": 7, "minor": 2},
            {"type": "eddystone", "namespace": "edd1ebea-c04e-5def-a017", "instance": "0B:DB:87:53:9B:67"},
        ],
        rssi_min_dbm=-70,
        window_s=3,
        badge_cameras=["door"],
        scanner_backend="sim.ble:BumbleBleakScanner",
        adapter="hci1",
    )
    assert config.badges[2].namespace == "edd1ebeac04e5defa017"  # type: ignore[union-attr]
    defaults = staff(zones={"door": ["back"]})
    assert (defaults.rssi_min_dbm, defaults.window_s, defaults.scanner_backend) == (-75, 3.0, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "zones or badges"),
        ({"zones": {"door": []}}, "zones or badges"),
        ({"zones": {"door": ["a"]}, "badge_cameras": ["door"]}, "no badges"),
        ({"badges": [{"type": "ibeacon", "uuid": STAFF_UUID, "minor": 1}]}, "minor is given without major"),
        ({"badges": [{"type": "ibeacon", "uuid": "not-a-uuid"}]}, "uuid"),
        ({"badges": [{"type": "eddystone", "namespace": "edd1"}]}, "20 hex digits"),
        ({"badges": [{"type": "eddystone", "namespace": "ab" * 10, "instance": "zz" * 6}]}, "12 hex digits"),
        ({"badges": [{"type": "altbeacon", "id": 1}]}, "altbeacon"),
        ({"badges": [{"type": "ibeacon", "uuid": STAFF_UUID}], "scanner_backend": "sim.ble"}, "module:Class"),
        ({"badges": [{"type": "ibeacon", "uuid": STAFF_UUID}], "rssi_min_dbm": -200}, "rssi_min_dbm"),
        ({"badges": [{"type": "ibeacon", "uuid": STAFF_UUID}], "window_s": 0}, "window_s"),
        ({"badges": [{"type": "ibeacon", "uuid": STAFF_UUID}], "adapter": "/dev/hci0"}, "adapter"),
        ({"zones": {"door": ["a"]}, "rssi_min": -70}, "rssi_min"),  # a typo is an error, not a default
    ],
)
def test_config_errors_name_the_problem(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        staff(**data)


def test_badge_matching_and_sighting_keys() -> None:
    fleet = staff(badges=[{"type": "ibeacon", "uuid": STAFF_UUID, "major": 7}])
    one = staff(badges=[{"type": "eddystone", "namespace": "ab" * 10, "instance": "0102030405ff"}])
    mine = IBeacon(uuid=uuid.UUID(STAFF_UUID), major=7, minor=9, measured_power=-59)
    assert fleet.badge_for(mine) == f"ibeacon:{STAFF_UUID.lower()}:7:9"
    assert fleet.badge_for(IBeacon(uuid=uuid.UUID(STAFF_UUID), major=8, minor=9, measured_power=-59)) is None
    assert fleet.badge_for(IBeacon(uuid=uuid.uuid4(), major=7, minor=9, measured_power=-59)) is None
    badge = EddystoneUid(tx_power=0, namespace=bytes.fromhex("ab" * 10), instance=bytes.fromhex("0102030405ff"))
    assert one.badge_for(badge) == "eddystone:" + "ab" * 10 + ":0102030405ff"
    assert one.badge_for(EddystoneUid(tx_power=0, namespace=badge.namespace, instance=bytes(6))) is None
    assert one.badge_for(mine) is None


def test_staff_zones_must_exist_on_their_cameras() -> None:
    config = staff(zones={"door": ["back"], "till": ["behind"]}, badges=[{"type": "ibeacon", "uuid": STAFF_UUID}])
    check_staff_zones(config, {"door": ["back", "aisle"], "till": ["behind"]})
    with pytest.raises(ValueError, match="camera 'door' has no zone 'back'") as err:
        check_staff_zones(config, {"door": ["aisle"]})
    assert "no camera 'till'" in str(err.value)
    with pytest.raises(ValueError, match="staff.badge_cameras: no camera 'side'"):
        check_staff_zones(staff(badges=[{"type": "ibeacon", "uuid": STAFF_UUID}], badge_cameras=["side"]), {"door": []})


# -- badge presences ---------------------------------------------------------------------------------------------------


def test_one_presence_excuses_one_crossing() -> None:
    sightings = BadgeSightings(window_s=3)
    for t in (10.0, 10.1, 10.5, 11.0):  # one walk past the door: many advertisements, one presence
        sightings.add("a", -60, t)
    assert sightings.badge_near(12.0) == "a"
    assert sightings.badge_near(12.5) is None  # a customer right behind the staff member is a visitor
    sightings.add("a", -60, 13.0)  # still the same presence (the badge idles by the door)
    assert sightings.badge_near(13.0) is None
    sightings.add("a", -60, 20.0)  # gone for more than the window, back again: a new presence
    assert sightings.badge_near(19.0) == "a"
    assert sightings.stats() == {"badge_sightings": 6, "badge_presences": 1, "badge_excused": 2}


@pytest.mark.parametrize(("t", "excused"), [(6.9, False), (7.0, True), (10.0, True), (14.0, True), (14.1, False)])
def test_the_window_reaches_both_sides_of_a_presence(t: float, excused: bool) -> None:
    sightings = BadgeSightings(window_s=3)
    sightings.add("a", -60, 10.0)
    sightings.add("a", -60, 11.0)
    assert (sightings.badge_near(t) == "a") is excused


def test_the_strongest_badge_goes_first_and_each_badge_once() -> None:
    sightings = BadgeSightings(window_s=3)
    sightings.add("far", -72, 10.0)
    sightings.add("near", -55, 10.2)
    assert [sightings.badge_near(10.5) for _ in range(3)] == ["near", "far", None]
    assert sightings.badge_near(10.5, window_s=100) is None


def test_presences_are_bounded_and_cleared() -> None:
    sightings = BadgeSightings(window_s=1, max_badges=3)
    for n in range(5):
        sightings.add(f"b{n}", -60, float(n))
    assert sightings.stats()["badge_presences"] == 3
    assert sightings.badge_near(0.0) is None  # the oldest were dropped
    sightings.clear()
    assert sightings.badge_near(4.0) is None
    with pytest.raises(ValueError):
        BadgeSightings(window_s=0)


def test_sightings_are_thread_safe() -> None:
    sightings = BadgeSightings(window_s=5)
    for n in range(50):
        sightings.add(f"b{n}", -60, 100.0)
    won: list[str | None] = []
    lock = threading.Lock()

    def camera() -> None:
        for _ in range(20):
            found = sightings.badge_near(100.0)
            with lock:
                won.append(found)

    threads = [threading.Thread(target=camera, name=f"camera-{n}") for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    excused = [badge for badge in won if badge is not None]
    assert sorted(excused) == sorted(f"b{n}" for n in range(50))  # each badge exactly once


# -- the policy on synthetic tracks ---------------------------------------------------------------------------------

# A door line y = 100 (x 0..200; a_to_b = walking down the image, into the store) and a staff zone below it
# and to the right (behind the counter).
COUNTING = CounterConfig.model_validate(
    {
        "lines": [{"name": "door", "p1": (0, 100), "p2": (200, 100)}],
        "zones": [{"name": "counter", "polygon": [(300, 150), (400, 150), (400, 250), (300, 250)]}],
    }
)
Frame = dict[int, tuple[float, float]]


def box(x: float, y: float) -> tuple[float, float, float, float]:
    return (x - 10, y - 40, x + 10, y)  # a 20 x 40 box whose bottom centre is (x, y)


def tracks(frame: Frame) -> Tracks:
    if not frame:
        return Tracks.empty()
    return Tracks(
        np.array(list(frame), np.int64),
        np.array([box(*p) for p in frame.values()], np.float32),
        np.ones(len(frame), np.float32),
    )


def walk(a: tuple[float, float], b: tuple[float, float], steps: int) -> list[tuple[float, float]]:
    return [(a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps) for i in range(steps + 1)]


@dataclass
class Judged:
    camera: str
    identity: int
    direction: str
    staff: bool


class Clock:
    """The policy's clock in these tests: set by hand, or to each frame's time by :func:`judge`."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def judge(
    policy: StaffPolicy, table: Sequence[Frame], camera: str = "door", t0: float = 0.0, clock: Clock | None = None
) -> list[Judged]:
    """Run the counter over ``table`` and ask the policy about every crossing, as the store day does."""
    counter = FootfallCounter(COUNTING)
    judged: list[Judged] = []
    for i, frame in enumerate(table):
        t = t0 + i * DT
        if clock is not None:
            clock.t = t  # frames judged as they are taken, as a live camera's are
        found = tracks(frame)
        update = counter.update(found, t)
        policy.observe(camera, found, counter.identities(), update, t)
        for crossing in update.crossings:
            staff_now = policy.is_staff(camera, crossing.visitor_id, crossing, t)
            judged.append(Judged(camera, crossing.visitor_id, crossing.direction, staff_now))
    return judged


def frames(*paths: tuple[int, list[tuple[float, float]]]) -> list[Frame]:
    """Several tracks walking at once: frame i has every track whose path has a point i."""
    length = max(len(points) for _, points in paths)
    return [{tid: points[i] for tid, points in paths if i < len(points)} for i in range(length)]


def test_a_track_that_enters_a_staff_zone_is_staff_for_the_day() -> None:
    policy = StaffRules(staff(zones={"door": ["counter"]}))
    # Track 1 starts behind the counter (came in by the back door), walks out through the front door and back in;
    # track 2, a customer, walks in at the same time and stays on the shop floor.
    staff_path = (
        walk((350, 200), (350, 200), 5) + walk((350, 200), (100, 130), 8) + walk((100, 130), (100, 50), 10)
    ) + walk((100, 50), (100, 140), 10)
    customer = walk((60, 40), (60, 140), 20)
    judged = judge(policy, frames((1, staff_path), (2, customer)))
    assert [(j.identity, j.direction, j.staff) for j in judged] == [
        (2, "a_to_b", False),
        (1, "b_to_a", True),
        (1, "a_to_b", True),
    ]
    assert policy.stats() == {"zone_entries": 1, "zone_crossings": 2, "badge_crossings": 0} | {
        "staff_identities": 1,
        "staff_people": 0,
    }
    policy.clear_day()  # a new day: yesterday's staff zone does not make anyone staff today
    again = judge(policy, frames((1, walk((100, 50), (100, 140), 10))))
    assert [(j.identity, j.staff) for j in again] == [(1, False)]


def test_a_crossing_before_the_zone_is_not_recounted() -> None:
    policy = StaffRules(staff(zones={"door": ["counter"]}))
    # In through the front door, then behind the counter: the entry was a visitor's when it was judged.
    path = walk((100, 50), (100, 140), 10) + walk((100, 140), (350, 200), 8) + walk((350, 200), (350, 200), 5)
    judged = judge(policy, frames((1, path)))
    assert [(j.direction, j.staff) for j in judged] == [("a_to_b", False)]
    assert policy.stats()["staff_identities"] == 1


@dataclass(frozen=True)
class Person:
    uid: int


def test_with_reidentification_the_person_is_staff_on_every_camera() -> None:
    resolved: dict[tuple[str, int], Person] = {("door", 1): Person(7), ("side", 5): Person(7), ("side", 6): Person(8)}
    policy = StaffRules(staff(zones={"door": ["counter"]}), person_of=lambda cam, ident: resolved.get((cam, ident)))
    judge(policy, frames((1, walk((350, 200), (350, 200), 5))))  # person 7 behind the counter on camera door
    event = CrossingEvent("door", "b_to_a", 5, 5, 10.0, 80, True)
    assert policy.is_staff("side", 5, event, 10.0)  # the same person at the side door
    assert not policy.is_staff("side", 6, event, 10.0)  # somebody else
    assert not policy.is_staff("side", 9, event, 10.0)  # not resolved yet: judged as a visitor
    resolved[("side", 9)] = Person(7)
    assert policy.is_staff("side", 9, event, 11.0)
    assert policy.stats()["staff_people"] == 1
    assert policy.stats()["staff_identities"] == 3


def test_a_badge_near_the_door_excuses_one_crossing_on_the_door_camera() -> None:
    config = staff(badges=[{"type": "ibeacon", "uuid": STAFF_UUID}], window_s=2, badge_cameras=["door"])
    clock = Clock()
    policy = StaffRules(config, clock=clock)
    assert policy.sightings is not None
    policy.sightings.add("ibeacon:x:1:1", -60, 9.5)
    # a staff member and a customer walk in together: one badge, one staff crossing
    together = frames((1, walk((60, 40), (60, 140), 20)), (2, walk((140, 40), (140, 140), 20)))
    judged = judge(policy, together, t0=8.0, clock=clock)
    assert sorted(j.staff for j in judged) == [False, True]
    assert policy.stats()["badge_crossings"] == 1
    policy.sightings.add("ibeacon:x:1:2", -60, 30.0)  # heard at the door, but the crossing is on another camera
    clock.t = 30.0
    assert not policy.is_staff("floor", 3, CrossingEvent("aisle", "a_to_b", 3, 3, 30.0, 1, True), 30.0)
    event = CrossingEvent("door", "a_to_b", 4, 4, 30.0, 1, True)
    clock.t = 40.0
    assert not policy.is_staff("door", 4, event, 30.0)  # judged outside the window: the frame's time is not used
    clock.t = 31.0
    assert policy.is_staff("door", 4, event, 99.0)


def test_zones_are_asked_first_and_keep_the_badge_for_someone_else() -> None:
    config = staff(zones={"door": ["counter"]}, badges=[{"type": "ibeacon", "uuid": STAFF_UUID}], window_s=2)
    policy = StaffRules(config, clock=Clock(10.0))
    judge(policy, frames((1, walk((350, 200), (350, 200), 5))))
    assert policy.sightings is not None
    policy.sightings.add("ibeacon:x:1:1", -60, 10.0)
    event = CrossingEvent("door", "b_to_a", 1, 1, 10.0, 80, True)
    assert policy.is_staff("door", 1, event, 10.0)  # staff by the zone: the badge presence is not used
    assert policy.is_staff("door", 2, event, 10.0)  # the badge excuses the next staff member
    assert policy.stats()["zone_crossings"] == 1 and policy.stats()["badge_crossings"] == 1


def test_build_staff_policy() -> None:
    cameras = {"door": ["counter"], "floor": []}
    zones_only = build_staff_policy(staff(zones={"door": ["counter"]}), cameras)
    assert zones_only.sightings is None and zones_only.agents() == []
    with_badges = build_staff_policy(
        staff(badges=[{"type": "ibeacon", "uuid": STAFF_UUID}]), cameras, clock=lambda: 42.0
    )
    (scanner,) = with_badges.agents()
    assert isinstance(scanner, BadgeScannerAgent)
    assert scanner.sightings is with_badges.sightings and scanner.clock() == with_badges.clock() == 42.0
    assert scanner.backend is None  # bleak's own backend
    with pytest.raises(ValueError, match="camera 'floor' has no zone 'counter'"):
        build_staff_policy(staff(zones={"floor": ["counter"]}), cameras)
