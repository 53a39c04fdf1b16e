"""The emulated tag's timing model: modelled air time per cause, recorded instead of slept.

A real access point waits for connection set-up, ATT round trips, object bytes over the L2CAP channel and the
e-paper refresh. The emulated tag runs at CPU speed and adds what each step would have cost to its
:class:`TagTimeline`, so tests and the ``bench tags-ble`` benchmark report modelled seconds; the
:attr:`TimingModel.realtime_factor` turns part of that into real sleeps where an AP's timeouts must meet
proportionate latencies.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TagTimeline", "TimingModel"]


@dataclass(frozen=True)
class TimingModel:
    """Modelled air time, recorded per tag in :class:`TagTimeline`: what a real AP would wait for.

    ``connection_setup_s`` covers connect, MTU exchange, discovery and security; every object byte costs
    ``1 / l2cap_throughput_bytes_per_s``; each ATT request (read, write with response, control point) costs
    ``att_round_trip_s``; showing an image costs ``epaper_refresh_s``. Defaults: a 7.5-15 ms connection interval
    on the 1M PHY with a few packets per event, and a three-colour panel's full refresh.

    ``realtime_factor`` 0 (the default) never sleeps, so tests and benchmarks run at CPU speed and report modelled
    seconds. Above 0, before each notification or indication the tag sleeps the modelled time it accrued since the
    previous one, times the factor, so an AP's timeouts and concurrency meet proportionate latencies.
    """

    connection_setup_s: float = 0.6
    l2cap_throughput_bytes_per_s: float = 20_000.0
    att_round_trip_s: float = 0.03
    epaper_refresh_s: float = 2.0
    realtime_factor: float = 0.0

    def transfer_s(self, size: int) -> float:
        return size / self.l2cap_throughput_bytes_per_s


@dataclass
class TagTimeline:
    """Modelled seconds one tag spent, by cause (see :class:`TimingModel`), and bytes received over the air."""

    connection_s: float = 0.0
    att_s: float = 0.0
    transfer_s: float = 0.0
    refresh_s: float = 0.0
    connections: int = 0
    object_bytes_received: int = 0

    @property
    def total_s(self) -> float:
        return self.connection_s + self.att_s + self.transfer_s + self.refresh_s
