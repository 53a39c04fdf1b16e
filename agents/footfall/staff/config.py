"""The ``footfall.staff`` section: staff zones per camera and the BLE badges that mark staff at a door.

```yaml
footfall:
  staff:
    zones: {door: [back-office]}          # camera -> names of zones of its counting config
    badges:
      - {type: ibeacon, uuid: E2C56DB5-DFFB-48D2-B060-D0F5A71096E0}      # every major/minor of the UUID
      - {type: ibeacon, uuid: E2C56DB5-DFFB-48D2-B060-D0F5A71096E0, major: 7, minor: 2}
      - {type: eddystone, namespace: EDD1EBEAC04E5DEFA017}               # every instance of the namespace
    rssi_min_dbm: -70                      # weaker sightings are not "near the door"
    window_s: 3                            # a sighting this close to a crossing excuses it
    badge_cameras: [door]                  # cameras whose crossings the scanner can hear (default: all)
    scanner_backend: null                  # 'module:Class' of a bleak scanner backend; null = bleak's own
```

A badge entry names a whole fleet (a UUID or namespace) or one badge (with major and minor, or an instance);
sightings are kept per physical badge (the beacon's full identity) either way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, field_validator, model_validator

from agents.core.config import StrictModel
from protocols.beacons import Beacon, EddystoneUid, IBeacon

__all__ = ["Badge", "EddystoneBadge", "IBeaconBadge", "StaffConfig", "check_staff_zones"]

_CLASS_PATTERN = r"^[\w.]+:\w+$"
_CAMERA_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,31}$"


def _hex(value: str, digits: int, what: str) -> str:
    text = value.replace("-", "").replace(":", "").lower()
    if not re.fullmatch(rf"[0-9a-f]{{{digits}}}", text):
        raise ValueError(f"{what} must be {digits} hex digits, got {value!r}")
    return text


class IBeaconBadge(StrictModel):
    """iBeacon badges: one proximity UUID, optionally narrowed to a major, or to one badge (major and minor)."""

    type: Literal["ibeacon"]
    uuid: UUID
    major: int | None = Field(None, ge=0, le=0xFFFF)
    minor: int | None = Field(None, ge=0, le=0xFFFF)

    @model_validator(mode="after")
    def _minor_needs_major(self) -> IBeaconBadge:
        if self.minor is not None and self.major is None:
            raise ValueError("minor is given without major")
        return self

    def matches(self, beacon: Beacon) -> bool:
        return (
            isinstance(beacon, IBeacon)
            and beacon.uuid == self.uuid
            and self.major in (None, beacon.major)
            and self.minor in (None, beacon.minor)
        )


class EddystoneBadge(StrictModel):
    """Eddystone-UID badges: a 10-byte namespace (20 hex digits), optionally one 6-byte instance (12)."""

    type: Literal["eddystone"]
    namespace: str
    instance: str | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return _hex(value, 20, "namespace")

    @field_validator("instance")
    @classmethod
    def _instance(cls, value: str | None) -> str | None:
        return None if value is None else _hex(value, 12, "instance")

    def matches(self, beacon: Beacon) -> bool:
        return (
            isinstance(beacon, EddystoneUid)
            and beacon.namespace.hex() == self.namespace
            and self.instance in (None, beacon.instance.hex())
        )


Badge = Annotated[IBeaconBadge | EddystoneBadge, Field(discriminator="type")]


class StaffConfig(StrictModel):
    """``footfall.staff``: how staff are told apart from visitors (module docstring)."""

    zones: dict[Annotated[str, Field(pattern=_CAMERA_PATTERN)], list[str]] = Field(
        default_factory=dict,
        description="Camera -> names of zones of its counting config; a track entering one is staff for the day.",
    )
    badges: list[Badge] = Field(default_factory=list, description="BLE beacons staff carry (iBeacon, Eddystone-UID).")
    rssi_min_dbm: int = Field(-75, ge=-127, le=20, description="Weakest sighting that counts as near the door, dBm.")
    window_s: float = Field(
        3.0, gt=0, le=60, allow_inf_nan=False, description="A sighting this close in time to a crossing excuses it."
    )
    badge_cameras: list[Annotated[str, Field(pattern=_CAMERA_PATTERN)]] | None = Field(
        None, description="Cameras at the door the scanner covers; None = every camera."
    )
    scanner_backend: str | None = Field(
        None, description="'module:Class' of a bleak scanner backend; None = bleak's default (BlueZ on Linux)."
    )
    adapter: str | None = Field(None, pattern=r"^hci\d{1,2}$", description="Bluetooth adapter (BlueZ); None = default.")

    @field_validator("scanner_backend")
    @classmethod
    def _class_path(cls, value: str | None) -> str | None:
        if value is not None and not re.match(_CLASS_PATTERN, value):
            raise ValueError(f"must be 'module:Class', got {value!r}")
        return value

    @model_validator(mode="after")
    def _something_to_do(self) -> StaffConfig:
        if not any(self.zones.values()) and not self.badges:
            raise ValueError("staff needs zones or badges (or leave the section out)")
        if self.badge_cameras is not None and not self.badges:
            raise ValueError("badge_cameras is set but no badges are configured")
        return self

    def badge_for(self, beacon: Beacon) -> str | None:
        """The sighting key of ``beacon`` if it is one of the configured badges, else ``None``."""
        if not any(badge.matches(beacon) for badge in self.badges):
            return None
        if isinstance(beacon, IBeacon):
            return f"ibeacon:{beacon.uuid}:{beacon.major}:{beacon.minor}"
        return f"eddystone:{beacon.namespace.hex()}:{beacon.instance.hex()}"


def check_staff_zones(staff: StaffConfig, cameras: Mapping[str, Iterable[str]]) -> None:
    """Raise ``ValueError`` naming every staff zone or badge camera that the cameras do not have.

    ``cameras`` maps each camera's name to the names of the zones of its counting config.
    """
    problems: list[str] = []
    for camera, zones in staff.zones.items():
        if camera not in cameras:
            problems.append(f"staff.zones: no camera {camera!r}")
            continue
        missing = sorted(set(zones) - set(cameras[camera]))
        if missing:
            problems.append(f"staff.zones.{camera}: camera {camera!r} has no zone {', '.join(map(repr, missing))}")
    for camera in staff.badge_cameras or ():
        if camera not in cameras:
            problems.append(f"staff.badge_cameras: no camera {camera!r}")
    if problems:
        raise ValueError("; ".join(problems))
