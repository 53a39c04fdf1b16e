"""What an emulated ESL tag is and holds: its profile, state, faults, image objects, e-paper and LEDs.

Plain data, no radio: the state machine (:mod:`sim.ble.esl_tag.state`), the Object Transfer Service
(:mod:`sim.ble.esl_tag.ots`) and the bumble device (:mod:`sim.ble.esl_tag.tag`) share these. An image slot is an OTS
object (:class:`ImageObject`, object ID 0x100 + index); the e-paper (:class:`EslEPaper`) shows an image only when its
object holds a whole framebuffer (the serial tags' row-padded layout, :func:`agents.tags.encoding.encode_framebuffer`,
raw or compressed) and the AP has run Calculate Checksum over all of it since the last write: a half-transferred or
unverified image answers Display Image with Image Not Available.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass, field

from agents.tags.encoding import ImageEncodingError, inflate_framebuffer
from agents.tags.panels import ColourMode, Panel
from protocols.esl import (
    DisplayInfo,
    DisplayInformation,
    DisplayType,
    LedControl,
    LedInfo,
    LedInformation,
    LedTimedControl,
    LedType,
    MeshSensor,
    SensorInformation,
)
from protocols.ots import IMAGE_OBJECT_ID_BASE

__all__ = [
    "EslEPaper",
    "ImageObject",
    "LedStatus",
    "TagFaults",
    "TagProfile",
    "TagState",
    "framebuffer_size",
]


class TagState(enum.Enum):
    """ESL states (ESL Profile 1.0)."""

    UNASSOCIATED = "unassociated"
    CONFIGURING = "configuring"
    SYNCHRONIZED = "synchronized"
    UPDATING = "updating"
    UNSYNCHRONIZED = "unsynchronized"


def framebuffer_size(panel: Panel) -> int:
    """Bytes of one image for ``panel``: every plane with rows padded to whole bytes (the serial tags' layout)."""
    return panel.planes * panel.height * ((panel.width + 7) // 8)


@dataclass
class TagFaults:
    """Fault injection: ``disconnect_mid_transfer`` is the chance that an OACP Write's data stream is cut (the tag
    drops the link after a random share of the bytes); ``out_of_range`` makes the tag stop advertising and ignore
    sync packets (set it through :meth:`sim.ble.esl_tag.tag.EmulatedEslTag.set_out_of_range`)."""

    disconnect_mid_transfer: float = 0.0
    out_of_range: bool = False
    seed: int | None = None


@dataclass(frozen=True)
class TagProfile:
    """What the tag is: its panel, image slots, LEDs, battery and PnP ID."""

    panel: Panel = field(default_factory=lambda: Panel(296, 128, ColourMode.BWR))
    max_image_index: int = 1
    led_count: int = 1
    battery_mv: int = 3000
    low_battery_mv: int = 2200
    pnp_id: bytes = bytes((0x01, 0x59, 0x00, 0x01, 0xE5, 0x00, 0x01))
    """Vendor ID source 1 (SIG), vendor 0x0059, product 0xE501, version 0x0100 (values are illustrative)."""
    manufacturer_data: bytes | None = None
    """Advertised as Manufacturer Specific Data when set: company ID (u16 LE) then payload (at most 14 bytes)."""

    def display_information(self) -> DisplayInformation:
        return DisplayInformation(
            (DisplayInfo(self.panel.width, self.panel.height, DisplayType(self.panel.colour_mode.esl_display_type)),)
        )

    def sensor_information(self) -> SensorInformation:
        # Mesh Device Property 0x0059 "Present Device Operating Voltage"; the value is reported in millivolts, u16.
        return SensorInformation((MeshSensor(0x0059),))

    def led_information(self) -> LedInformation:
        return LedInformation(tuple(LedInfo(LedType.SRGB, 3, 3, 3) for _ in range(self.led_count)))


@dataclass
class ImageObject:
    """One OTS object (an image slot): its bytes and whether the AP verified them with Calculate Checksum."""

    index: int
    allocated_size: int
    data: bytearray = field(default_factory=bytearray)
    verified: bool = False

    @property
    def object_id(self) -> int:
        return IMAGE_OBJECT_ID_BASE + self.index

    @property
    def name(self) -> str:
        return f"esl_image_{self.index:02X}"

    @property
    def complete(self) -> bool:
        return self.image() is not None

    def image(self) -> bytes | None:
        """The framebuffer this object holds once verified: the raw bytes (object of exactly the framebuffer size)
        or the inflated compressed form (``agents.tags.encoding.compress_framebuffer``); None otherwise."""
        if not self.verified or not self.data:
            return None
        if len(self.data) == self.allocated_size:
            return bytes(self.data)
        try:
            return inflate_framebuffer(bytes(self.data), self.allocated_size)
        except ImageEncodingError:
            return None


class EslEPaper:
    """The tag's virtual e-paper: what it shows and the sha256 of every image it was asked to show, in order."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.shown: bytes | None = None
        self.shown_index: int | None = None
        self.history: list[str] = []
        self.refreshes = 0

    def show(self, index: int, image: bytes) -> None:
        self.shown = bytes(image)
        self.shown_index = index
        self.refreshes += 1
        self.history.append(hashlib.sha256(image).hexdigest())

    @property
    def shown_sha256(self) -> str | None:
        return self.history[-1] if self.history else None


@dataclass
class LedStatus:
    """One LED and the last LED Control (or due LED Timed Control) it was given."""

    command: LedControl | LedTimedControl | None = None

    @property
    def active(self) -> bool:
        command = self.command
        if command is None:
            return False
        # Repeats_Duration 0 with Repeat_Type 0 means "off" (ESL Service LED Control).
        return not (command.repeats_duration == 0 and command.repeat_type == 0)
