"""Directional line counting, zone occupancy and dwell, visit de-duplication and per-interval aggregates.

Pure code (no I/O, frame-driven): :class:`FootfallCounter` takes one :class:`~agents.footfall.types.Tracks`
per frame plus its timestamp and returns the events of that frame; :class:`IntervalAggregator` folds those
events into closed, per-interval records. No I/O, no clocks, no threads: everything is testable with
trajectory tables, exactly like supervision's ``LineZone`` tests, and replayable on ground truth.

Why not just supervision's ``LineZone``
---------------------------------------
Peers count *events*: every time a tracker id changes side. Their users' complaints (the issue numbers
below) are all about what that does in a real doorway:

* a box flickering on the line counts again and again (supervision PR #1540 added an N-frame threshold);
* a person walking *along* the line (PETS09's y=300 path) changes side with every pixel of jitter;
* an id switch near the line counts the same person twice (OpenDataCam #204: +400 counts in 4 hours);
* unconfirmed tracks (``tracker_id == -1``) are merged into one and inflate counts 7/9 -> 97/95 (supervision #2578);
* a line near the frame edge never counts because all four box corners had to change side (supervision #1838);
* a track lost inside a zone leaves a ghost occupant (supervision #1855, Frigate #5311).

So this package separates two quantities and makes each one robust. **Events** are physical crossings: the
anchor point of the box must go from *clearly* one side of the line to *clearly* the other, through the segment
(:mod:`.lines`). **Visits** are de-duplicated events: one per direction per identity per window, and identities
survive track breaks, a new id taking over a recently lost track's state (:mod:`.identities`). **Zones** count
occupancy and dwell with debouncing, and a lost track leaves after a short hold: no ghost occupants (:mod:`.zones`).

Usage::

    counter = FootfallCounter(CounterConfig(lines=[LineConfig(name="door", p1=(0, 300), p2=(768, 300))]))
    aggregator = IntervalAggregator.for_config(counter.config, interval_s=60)
    for t, tracks in stream:                       # tracks: agents.footfall.types.Tracks
        update = counter.update(tracks, t)         # update.crossings, update.zone_events
        for record in aggregator.add(update):      # closed LineInterval / ZoneInterval records
            publish(record.record_id, record.as_dict())
    aggregator.feed(counter.close(t)); aggregator.flush()

Cost: a frame is one ``tolist()`` per array and a Python loop over tracks and lines (no per-frame numpy
calls on tiny arrays): about 100,000 frames/s for six tracks, two lines and a zone on one x86 core.

Modules, bottom up (each imports only those above it):

* :mod:`.geometry`: anchors, point units (pixels or normalised), the config base, polygon tests;
* :mod:`.events`: what the counter reports (crossings, zone events, one frame's update, line totals);
* :mod:`.identities`: an identity's state across track breaks, its visits, and linking a new id to a lost one;
* :mod:`.lines` and :mod:`.zones`: each its config and its rule, stepped once per identity and frame;
* :mod:`.counter`: :class:`CounterConfig` and :class:`FootfallCounter`, the frame loop over the above;
* :mod:`.aggregation`: :class:`IntervalAggregator` and the interval records the agent uplinks.
"""

from agents.footfall.counting.aggregation import IntervalAggregator, IntervalRecord, LineInterval, ZoneInterval
from agents.footfall.counting.counter import CounterConfig, FootfallCounter
from agents.footfall.counting.events import CounterUpdate, CrossingEvent, Direction, LineTotals, ZoneEvent
from agents.footfall.counting.geometry import ANCHORS, AnchorName
from agents.footfall.counting.lines import LineConfig
from agents.footfall.counting.zones import ZoneConfig

__all__ = [
    "ANCHORS",
    "AnchorName",
    "CounterConfig",
    "CounterUpdate",
    "CrossingEvent",
    "Direction",
    "FootfallCounter",
    "IntervalAggregator",
    "IntervalRecord",
    "LineConfig",
    "LineInterval",
    "LineTotals",
    "ZoneConfig",
    "ZoneEvent",
    "ZoneInterval",
]
