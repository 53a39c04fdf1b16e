"""What the Bluetooth ESL access point is told and what it hands back: settings, discovered tags, records, results.

Plain values shared by the access point's modules (:mod:`agents.tags.ble.access_point`, :mod:`~agents.tags.ble.session`,
:mod:`~agents.tags.ble.object_transfer`) and its callers (:mod:`agents.tags.ble.bus`, :mod:`~agents.tags.ble.transport`,
the tag service). The per-tag :class:`EslTagRecord` is what onboarding produces and the caller persists
(:meth:`EslTagRecord.to_dict`): the AP itself keeps no files. Nothing here talks to a radio or imports bleak at
runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.tags.ble.objects import AddressType
from protocols.errors import ProtocolError
from protocols.esl import (
    DisplayInfo,
    DisplayInformation,
    EslAddress,
    KeyMaterial,
    LedInfo,
    LedInformation,
    SensorInfo,
    SensorInformation,
)
from protocols.ots import OtsFeature

if TYPE_CHECKING:
    from bleak.backends.device import BLEDevice

__all__ = ["AccessPointSettings", "DiscoveredTag", "EslTagRecord", "TagInformation", "UploadResult"]


@dataclass(frozen=True)
class AccessPointSettings:
    """Named tunables (seconds unless the name says otherwise). Defaults suit a real adapter; tests shrink them."""

    scan_s: float = 5.0
    """How long :meth:`~agents.tags.ble.access_point.EslAccessPoint.scan` listens."""
    connect_s: float = 10.0
    """Connect + service discovery (+ pairing) deadline per attempt."""
    response_s: float = 5.0
    """Deadline for one GATT read/write and for the notification answering an ECP/OACP/OLCP request."""
    transfer_s: float = 60.0
    """Deadline for sending one object's data over the object channel and the tag reaching its full size."""
    settle_s: float = 0.5
    """After a complete write, how long a mismatching checksum is re-checked before it counts (data in flight)."""
    poll_s: float = 0.02
    """Object Size polling interval while waiting for the tag to take in an object."""
    no_response_grace_s: float = 0.05
    """How long to listen for an Error after a command that has no success response (Update Complete)."""
    attempts: int = 4
    """Connections tried per operation (1 = no retry)."""
    backoff_min_s: float = 0.1
    backoff_max_s: float = 5.0
    pair: bool = True
    """Pair (bond) on the first connection, where the backend supports it."""
    update_complete: bool = True
    """Send ECP Update Complete before disconnecting from a configured tag (ends the Updating state)."""

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        for name in ("scan_s", "connect_s", "response_s", "transfer_s", "poll_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True)
class DiscoveredTag:
    """An unassociated ESL seen advertising the ESL Service."""

    ble_address: str
    name: str | None
    rssi: int | None
    address_type: AddressType
    device: BLEDevice = field(repr=False, compare=False)


@dataclass(frozen=True)
class TagInformation:
    """What a tag says about itself (configuration step 3)."""

    displays: tuple[DisplayInfo, ...]
    max_image_index: int
    sensors: tuple[SensorInfo, ...]
    leds: tuple[LedInfo, ...]
    pnp_id: bytes | None
    ots_feature: OtsFeature | None


@dataclass
class EslTagRecord:
    """Everything the AP must remember about one onboarded tag. The caller persists it (:meth:`to_dict`)."""

    ble_address: str
    esl_address: EslAddress
    response_key: KeyMaterial = field(repr=False)
    address_type: AddressType = "public"
    bonded: bool = False
    displays: tuple[DisplayInfo, ...] = ()
    max_image_index: int = 0
    sensors: tuple[SensorInfo, ...] = ()
    leds: tuple[LedInfo, ...] = ()
    pnp_id: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (characteristic values as hex, as the tag sent them)."""
        return {
            "ble_address": self.ble_address,
            "address_type": self.address_type,
            "esl_address": self.esl_address.to_int(),
            "response_key": self.response_key.encode().hex(),
            "bonded": self.bonded,
            "displays": DisplayInformation(self.displays).encode().hex() if self.displays else "",
            "max_image_index": self.max_image_index,
            "sensors": SensorInformation(self.sensors).encode().hex() if self.sensors else "",
            "leds": LedInformation(self.leds).encode().hex() if self.leds else "",
            "pnp_id": self.pnp_id.hex() if self.pnp_id is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EslTagRecord:
        """Inverse of :meth:`to_dict`; ``ValueError`` on a damaged record."""
        try:
            address_type = data.get("address_type", "public")
            if address_type not in ("public", "random"):
                raise ValueError(f"address type {address_type!r}")
            displays = bytes.fromhex(data.get("displays", ""))
            sensors = bytes.fromhex(data.get("sensors", ""))
            leds = bytes.fromhex(data.get("leds", ""))
            pnp_id = data.get("pnp_id")
            return cls(
                ble_address=str(data["ble_address"]),
                esl_address=EslAddress.from_int(int(data["esl_address"])),
                response_key=KeyMaterial.decode(bytes.fromhex(data["response_key"])),
                address_type=address_type,
                bonded=bool(data.get("bonded", False)),
                displays=DisplayInformation.decode(displays).displays if displays else (),
                max_image_index=int(data.get("max_image_index", 0)),
                sensors=SensorInformation.decode(sensors).sensors if sensors else (),
                leds=LedInformation.decode(leds).leds if leds else (),
                pnp_id=bytes.fromhex(pnp_id) if pnp_id is not None else None,
            )
        except (KeyError, TypeError, ProtocolError) as exc:
            raise ValueError(f"damaged ESL tag record: {exc!r}") from exc


@dataclass(frozen=True)
class UploadResult:
    """The outcome of one image upload."""

    image_index: int
    size: int
    crc32: int
    bytes_sent: int
    """Object bytes sent over the object channel (all connections; a resume sends only the missing part)."""
    resumed_from: int | None
    """Offset the last successful write started at when the tag already held a verified prefix."""
    connections: int
    """Connections it took (1 when nothing broke)."""
