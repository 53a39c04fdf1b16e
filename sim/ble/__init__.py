"""Simulated Bluetooth LE for the ESL access point: a bumble virtual radio, bleak backends and emulated ESL tags.

Why: the access point (``agents/tags/ble``) uses bleak's public API only, so tests and the simulator swap the
platform backend for :class:`BumbleBleakClient` / :class:`BumbleBleakScanner` and meet tags that run the real
protocol on a real, in-process BLE stack (bumble). Pieces:

- :mod:`sim.ble.radio`: :class:`VirtualRadio`, the shared link, the AP's adapter and task ownership;
  :func:`use_radio` / :func:`current_radio` let bleak-constructed backends find it.
- :mod:`sim.ble.bleak_backend`: the bleak backend classes.
- :mod:`sim.ble.objects`: :class:`BumbleObjectChannel`, the OTS object channel (L2CAP CoC, PSM 0x25).
- :mod:`sim.ble.esl_tag`: :class:`EmulatedEslTag` with ESL, OTS and DIS services, state machine, e-paper, timing
  model and faults.
- :mod:`sim.ble.pawr`: :class:`PawrTrain`, the synchronized broadcast path bumble lacks.
"""

from __future__ import annotations

from sim.ble.bleak_backend import BumbleBleakClient, BumbleBleakScanner
from sim.ble.esl_tag import (
    IMAGE_OBJECT_ID_BASE,
    OBJECT_PSM,
    EmulatedEslTag,
    EslEPaper,
    ImageObject,
    OacpOpcode,
    OacpResult,
    OlcpOpcode,
    OlcpResult,
    OtsCharacteristic,
    TagFaults,
    TagProfile,
    TagState,
    TagTimeline,
    TimingModel,
    framebuffer_size,
)
from sim.ble.objects import BumbleObjectChannel
from sim.ble.pawr import PawrTrain, SubeventResult
from sim.ble.radio import RadioClosedError, VirtualRadio, current_radio, use_radio

__all__ = [
    "IMAGE_OBJECT_ID_BASE",
    "OBJECT_PSM",
    "BumbleBleakClient",
    "BumbleBleakScanner",
    "BumbleObjectChannel",
    "EmulatedEslTag",
    "EslEPaper",
    "ImageObject",
    "OacpOpcode",
    "OacpResult",
    "OlcpOpcode",
    "OlcpResult",
    "OtsCharacteristic",
    "PawrTrain",
    "RadioClosedError",
    "SubeventResult",
    "TagFaults",
    "TagProfile",
    "TagState",
    "TagTimeline",
    "TimingModel",
    "VirtualRadio",
    "current_radio",
    "framebuffer_size",
    "use_radio",
]
