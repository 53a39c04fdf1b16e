"""Staff: telling the store's employees apart from its visitors, so staff crossings are counted separately.

* :mod:`.config`: :class:`StaffConfig`, the ``footfall.staff`` section (staff zones per camera, BLE badges);
* :mod:`.sightings`: :class:`BadgeSightings`, recent badge presences near the door (thread-safe);
* :mod:`.scanner`: ``BadgeScannerAgent``, bleak's scanner parsing beacons with :mod:`protocols.beacons`;
* :mod:`.policy`: ``StaffRules``, the store day's :class:`~agents.footfall.day.hooks.StaffPolicy`, and
  ``build_staff_policy(config, camera_zones, person_of=..., clock=...)``, which the gateway runtime calls.

This package re-exports only the config and the sightings, so loading a gateway config does not import bleak;
the scanner and the policy are imported from their modules when staff are configured.

Privacy: badge identities stay in memory, one presence per badge, forgotten at the store day's boundary;
health and records carry counts only.
"""

from agents.footfall.staff.config import Badge, EddystoneBadge, IBeaconBadge, StaffConfig, check_staff_zones
from agents.footfall.staff.sightings import BadgeSightings

__all__ = [
    "Badge",
    "BadgeSightings",
    "EddystoneBadge",
    "IBeaconBadge",
    "StaffConfig",
    "check_staff_zones",
]
