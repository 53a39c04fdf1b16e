"""What the emulated tag advertises, and keeping the bumble device's advertising in step with it.

An unassociated tag advertises connectable with the ESL Service UUID (0x1857): that is how the AP's scan finds tags
to onboard. bumble has no PAwR-initiated connections, so an associated tag keeps advertising connectable, without the
ESL UUID, to let the AP reconnect by address. The tag decides *whether* to advertise (not while connected or out of
range); :class:`Advertiser` starts, stops and refreshes the device's advertising to match.
"""

from __future__ import annotations

from bumble.core import UUID, AdvertisingData
from bumble.device import Device

from protocols.esl import ESL_SERVICE_UUID
from sim.ble.esl_tag.model import TagProfile, TagState

__all__ = ["Advertiser", "advertising_data"]


def advertising_data(state: TagState, profile: TagProfile) -> bytes:
    """Flags, the ESL Service UUID while unassociated, the name ``ESL`` and the profile's manufacturer data."""
    structures: list[tuple[int, bytes]] = [(AdvertisingData.FLAGS, bytes((0x06,)))]
    if state is TagState.UNASSOCIATED:
        structures.append(
            (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, bytes(UUID.from_16_bits(ESL_SERVICE_UUID)))
        )
    structures.append((AdvertisingData.COMPLETE_LOCAL_NAME, b"ESL"))
    if profile.manufacturer_data is not None:
        structures.append((AdvertisingData.MANUFACTURER_SPECIFIC_DATA, profile.manufacturer_data))
    return bytes(AdvertisingData(structures))


class Advertiser:
    """One device's advertising, ``interval_ms`` apart; restarted when the advertised data changes."""

    def __init__(self, device: Device, *, interval_ms: float) -> None:
        self.device = device
        self.interval_ms = interval_ms
        self._advertised: bytes | None = None

    async def update(self, data: bytes | None) -> None:
        """Advertise ``data``, or stop advertising for None."""
        if self.device.is_advertising and (data is None or data != self._advertised):
            await self.device.stop_advertising()
        if data is not None and not self.device.is_advertising:
            await self.device.start_advertising(advertising_data=data, advertising_interval_min=self.interval_ms)
            self._advertised = data
