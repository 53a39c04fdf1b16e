"""The gateway's ``footfall:`` section: the store day, and optionally re-identification and staff.

```yaml
footfall:
  day: {boundary: "04:00", timezone: Europe/Berlin}       # when the store day ends (the daily record)
  identity: {type: omz, model: /etc/storeedge/models/reid.onnx}   # optional: off unless configured
  staff: {zones: {door: [back-office]}}                    # optional: staff zones and BLE badges
```

Kept apart from :mod:`agents.footfall.day.config` because it gathers the sections of the identity and staff
packages, which themselves build on the day's seams (:mod:`agents.footfall.day.hooks`).
"""

from __future__ import annotations

from pydantic import Field

from agents.core.config import StrictModel
from agents.footfall.day.config import StoreDayConfig
from agents.footfall.identity import IdentityConfig
from agents.footfall.staff import StaffConfig

__all__ = ["FootfallConfig"]


class FootfallConfig(StrictModel):
    """``footfall:``: store-level settings of the cameras' counting (all optional)."""

    day: StoreDayConfig = Field(default_factory=StoreDayConfig, description="The store day and its boundary.")
    identity: IdentityConfig | None = Field(
        None,
        description=(
            "Appearance re-identification across re-entries and doors (off unless configured; the models'"
            " training data restricts commercial use: docs/privacy.md)."
        ),
    )
    staff: StaffConfig | None = Field(
        None, description="Staff zones and BLE staff badges: their crossings are counted apart, never as visitors."
    )
