"""The seams of the store day: what each camera's frame loop reports, and how staff are recognised.

Both are called on the camera's worker thread (one per camera, so from several threads at once):

* :class:`CameraObserver` is what :func:`agents.footfall.agent.run_pipeline` calls after
  ``counter.update`` on every frame, and when it closes an interval (for the ``unique`` and ``returning``
  fields of the interval records). The store day (:mod:`agents.footfall.day.observer`) implements it.
* :class:`StaffPolicy` is asked about every counted crossing before it becomes a visitor's entry or exit.
  A crossing it calls staff is counted as a staff crossing instead (``staff_crossings`` of the daily
  record) and never reaches the visitor figures. The staff package (zones, BLE badges) implements it;
  the observer does the counting (``DayCounters.staff_crossing``), so a policy only answers.

Wiring (``agents/gateway/runtime.py``): with a ``footfall.staff`` section the runtime builds one policy
for the store from that section and the cameras, and hands it to the store day together with any agents
the policy needs running (the BLE badge scanner). A policy that is also an
:class:`~agents.core.supervisor.Agent`, or that offers ``agents() -> list[Agent]``, gets them supervised.

Times: ``t`` is the frame's time (UNIX seconds on the camera pipeline's time base: the wall clock for live
cameras and replayed files alike), the same ``t`` the counter's events carry. It is not the store day's
:class:`~agents.footfall.day.clock.Clock`, which only decides which day a count belongs to.

``identity`` is the counter's identity of the person on that camera (``CrossingEvent.visitor_id``, and the
values of ``identities``, which map the frame's track ids to them): stable across track breaks, per camera,
never shared between cameras.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from agents.footfall.counting import CounterUpdate, CrossingEvent
from agents.footfall.types import Tracks


class CameraObserver(Protocol):
    """Per-camera hook of the frame loop (see the module docstring)."""

    def observe(
        self,
        camera: str,
        frame: np.ndarray,
        tracks: Tracks,
        identities: Mapping[int, int],
        update: CounterUpdate,
        t: float,
    ) -> None:
        """One frame: its image (never kept), confirmed tracks, track id -> identity, the counter's update."""

    def interval_fields(self, camera: str) -> dict[str, int]:
        """An interval of ``camera`` closed; returns the fields its records gain: ``{"unique": n, "returning": m}``,
        the visitors decided on this camera since the last call."""

    def camera_ended(self, camera: str, t: float) -> None:
        """The camera's stream ended (file end, shutdown): every identity it still held has ended."""


class StaffPolicy(Protocol):
    """Decides whether a crossing is made by staff (zones, badges); implemented by the staff package.

    ``observe`` sees every frame of every camera before its crossings are judged (so a track entering a staff
    zone in this very frame is already staff); ``is_staff`` is asked once per counted crossing (a crossing
    that is a new visit) and may consume what excused it (one badge sighting excuses one crossing);
    ``clear_day`` forgets who was staff at the store's day boundary.
    """

    def observe(
        self, camera: str, tracks: Tracks, identities: Mapping[int, int], update: CounterUpdate, t: float
    ) -> None: ...

    def is_staff(self, camera: str, identity: int, event: CrossingEvent, t: float) -> bool: ...

    def clear_day(self) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Counts only (staff identities today, badge sightings), for health."""
        ...
