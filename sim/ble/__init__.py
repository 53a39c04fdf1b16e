"""Simulated Bluetooth LE for the ESL access point: a bumble virtual radio, bleak backends and emulated ESL tags.

Why: the access point (``agents/tags/ble``) uses bleak's public API only, so tests and the simulator swap the
platform backend for :class:`BumbleBleakClient` / :class:`BumbleBleakScanner` and meet tags that run the real
protocol on a real, in-process BLE stack (bumble). Pieces:

- :mod:`sim.ble.radio`: :class:`VirtualRadio`, the shared link, the AP's adapter and task ownership;
  :func:`use_radio` / :func:`current_radio` let bleak-constructed backends find it.
- :mod:`sim.ble.bleak_backend`: the bleak backend classes.
- :mod:`sim.ble.objects`: :class:`BumbleObjectChannel`, the OTS object channel (L2CAP CoC, PSM 0x25).
- :mod:`sim.ble.esl_tag`: :class:`EmulatedEslTag` with ESL, OTS and DIS services, state machine, e-paper, timing
  model and faults (one module each).
- :mod:`sim.ble.pawr`: :class:`PawrTrain`, the synchronized broadcast path bumble lacks.
"""

from __future__ import annotations

from protocols.ots import (
    IMAGE_OBJECT_ID_BASE,
    OacpOpcode,
    OacpResult,
    OlcpOpcode,
    OlcpResult,
    OtsCharacteristic,
)
from sim.ble.bleak_backend import BumbleBleakClient, BumbleBleakScanner
from sim.ble.esl_tag.model import EslEPaper, ImageObject, TagFaults, TagProfile, TagState, framebuffer_size
from sim.ble.esl_tag.ots import OBJECT_PSM
from sim.ble.esl_tag.tag import EmulatedEslTag
from sim.ble.esl_tag.timing import TagTimeline, TimingModel
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
