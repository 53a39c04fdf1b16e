"""The Bluetooth ESL access point: onboard tags, upload images over OTS and drive them with ECP, over bleak.

Role: everything the gateway does to a Bluetooth SIG Electronic Shelf Label over a *connection* (the PAwR broadcast
path is separate). It follows the AP side of the Bluetooth SIG ESL Profile 1.0: scan for unassociated tags
advertising the ESL Service (0x1857), connect, bond, discover ESL/OTS/DIS, read the information characteristics,
configure (ESL Address, AP Sync Key Material, Response Key Material, Current Absolute Time), upload images as
OTS objects and send ECP commands whose responses come back as notifications.

This module holds discovery, the connections and onboarding; the rest has a module each, bottom-up:

- :mod:`agents.tags.ble.errors`: the typed error tree; :mod:`agents.tags.ble.records`: settings and the values the
  AP hands back (the per-tag :class:`EslTagRecord` the caller persists: the AP keeps no files).
- :mod:`agents.tags.ble.objects`: the object channel (OTS data needs an L2CAP CoC, which bleak lacks), by name.
- :mod:`agents.tags.ble.link`: one GATT connection: deadlines, typed errors, control-point response matching.
- :mod:`agents.tags.ble.control_point`: ECP commands; :mod:`agents.tags.ble.object_transfer`: resumable uploads.
- :mod:`agents.tags.ble.session`: :class:`TagSession`, one connection with all of the above.

Why it looks like this:

- **bleak's public API only** (``BleakScanner``, ``BleakClient``); the backend *class* is a constructor argument
  (``client_backend``/``scanner_backend``, ``None`` = bleak's platform default, BlueZ on Linux). The CI backend
  (``sim.ble``, bumble) is therefore a config value; this package imports neither bumble nor ``sim``.
- Every operation runs in :meth:`EslAccessPoint.run`: it connects (with a timeout), runs the operation and
  disconnects; connection-family errors and timeouts (:data:`~agents.tags.ble.errors.RETRYABLE`) are retried on a
  fresh connection after a jittered, capped back-off (:class:`~agents.core.backoff.Backoff`), so a drop mid-image
  resumes where the tag stopped. Tag answers (ECP/OTS errors) are not retried.

Every public coroutine raises :class:`~agents.tags.ble.errors.BleTransportError` subclasses only (plus
``ValueError`` for caller mistakes and ``CancelledError``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak.uuids import normalize_uuid_16

from agents.core.backoff import Backoff
from agents.tags.ble.errors import (
    RETRYABLE,
    BleTagError,
    ConnectionFailedError,
    ConnectTimeoutError,
    TagNotFoundError,
)
from agents.tags.ble.objects import AddressType, ObjectChannelFactory, object_channel_factory
from agents.tags.ble.records import AccessPointSettings, DiscoveredTag, EslTagRecord, TagInformation, UploadResult
from agents.tags.ble.session import TagSession
from protocols.esl import (
    ESL_SERVICE_UUID,
    Command,
    DisplayImage,
    DisplayState,
    EslAddress,
    KeyMaterial,
    Response,
    UpdateComplete,
)

__all__ = ["EslAccessPoint"]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")


def _address_type_of(device: BLEDevice) -> AddressType:
    """LE address type from the backend's details where it says (BlueZ: ``props["AddressType"]``), else public."""
    details = device.details
    if isinstance(details, Mapping):
        props = details.get("props")
        if isinstance(props, Mapping) and props.get("AddressType") == "random":
            return "random"
    return "public"


class EslAccessPoint:
    """The ESL access point over bleak (see the module docstring).

    Keyword arguments:

    - ``ap_sync_key``: the AP Sync Key Material written to every tag (one per PAwR train; the caller persists it).
    - ``client_backend`` / ``scanner_backend``: bleak backend classes, ``None`` for bleak's default (BlueZ).
    - ``object_channel``: a registered name (``"linux"``; the simulator registers ``"sim"``), ``"module:Class"`` or
      a factory (see :mod:`.objects`).
    - ``settings``: :class:`AccessPointSettings`.
    - ``client_kwargs``: extra keywords for ``BleakClient`` (for example ``bluez={...}``).
    - ``rng``: randomness for back-off jitter (response keys always come from ``os.urandom``).
    - ``clock_ms``: the AP's absolute time in milliseconds (default: since this object was made).
    """

    def __init__(
        self,
        *,
        ap_sync_key: KeyMaterial,
        client_backend: type[BaseBleakClient] | None = None,
        scanner_backend: type[BaseBleakScanner] | None = None,
        object_channel: str | ObjectChannelFactory = "linux",
        settings: AccessPointSettings | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
        rng: random.Random | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.ap_sync_key = ap_sync_key
        self.client_backend = client_backend
        self.scanner_backend = scanner_backend
        self.channel_factory = (
            object_channel_factory(object_channel) if isinstance(object_channel, str) else object_channel
        )
        self.settings = settings or AccessPointSettings()
        self._client_kwargs = dict(client_kwargs or {})
        self._rng = rng or random.Random()
        started = time.monotonic()
        self._clock_ms = clock_ms or (lambda: int((time.monotonic() - started) * 1000))
        self.bytes_written = 0
        """GATT value bytes written plus object bytes sent, over all tags."""
        self.connections = 0

    def _count_bytes(self, count: int) -> None:
        self.bytes_written += count

    # -- discovery ----------------------------------------------------------------------------------------------------

    async def scan(self, *, timeout_s: float | None = None) -> list[DiscoveredTag]:
        """Listen for tags advertising the ESL Service (unassociated tags do) and return them by address."""
        timeout = self.settings.scan_s if timeout_s is None else timeout_s
        found: dict[str, tuple[BLEDevice, AdvertisementData]] = {}
        esl_uuid = normalize_uuid_16(ESL_SERVICE_UUID)

        def seen(device: BLEDevice, advertisement: AdvertisementData) -> None:
            if esl_uuid in advertisement.service_uuids:
                found[device.address.upper()] = (device, advertisement)

        try:
            async with BleakScanner(seen, service_uuids=[esl_uuid], backend=self.scanner_backend):
                await asyncio.sleep(timeout)
        except (BleakError, OSError) as exc:
            raise ConnectionFailedError("adapter", f"scan failed: {exc}") from exc
        return [
            DiscoveredTag(address, adv.local_name or device.name, adv.rssi, _address_type_of(device), device)
            for address, (device, adv) in sorted(found.items())
        ]

    # -- connections --------------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def connect(
        self, target: DiscoveredTag | EslTagRecord | str, *, pair: bool | None = None
    ) -> AsyncIterator[TagSession]:
        """One connection (no retry): connect within ``connect_s``, pair if asked, yield the session, disconnect."""
        device_or_address: BLEDevice | str
        address_type: AddressType
        if isinstance(target, DiscoveredTag):
            address, address_type, device_or_address = target.ble_address, target.address_type, target.device
        elif isinstance(target, EslTagRecord):
            address, address_type, device_or_address = target.ble_address, target.address_type, target.ble_address
        else:
            address, address_type, device_or_address = target, "public", target
        if pair is None:
            pair = self.settings.pair and not (isinstance(target, EslTagRecord) and target.bonded)
        session: TagSession | None = None

        def disconnected(_: BleakClient) -> None:
            if session is not None:
                session.on_disconnected()

        client = BleakClient(
            device_or_address,
            disconnected_callback=disconnected,
            timeout=self.settings.connect_s,
            backend=self.client_backend,
            **self._client_kwargs,
        )
        session = TagSession(
            client,
            ble_address=address,
            address_type=address_type,
            settings=self.settings,
            channel_factory=self.channel_factory,
            count_bytes=self._count_bytes,
        )
        self.connections += 1
        try:
            # the backend enforces connect_s on the connection itself (and cleans up after it); this outer deadline
            # is the safety net that also bounds pairing
            async with asyncio.timeout(self.settings.connect_s * 2):
                await client.connect()
                if pair:
                    await self._pair(client, address)
        except TimeoutError as exc:
            await self._disconnect(client, address)
            raise ConnectTimeoutError(address, f"connect took over {self.settings.connect_s * 2} s") from exc
        except BleakDeviceNotFoundError as exc:
            await self._disconnect(client, address)
            raise TagNotFoundError(address, f"not found ({exc})") from exc
        except (BleakError, OSError, EOFError) as exc:
            await self._disconnect(client, address)
            raise ConnectionFailedError(address, f"connect failed: {exc}") from exc
        try:
            yield session
        finally:
            await self._disconnect(client, address)

    async def _pair(self, client: BleakClient, address: str) -> None:
        try:
            await client.pair()
        except NotImplementedError:
            _LOG.info("tag %s: backend %s cannot pair; continuing unbonded", address, client.backend_id)

    async def _disconnect(self, client: BleakClient, address: str) -> None:
        """Disconnect; a failure here is logged, not raised: the operation's own outcome is what counts."""
        try:
            async with asyncio.timeout(self.settings.response_s):
                await client.disconnect()
        except (BleakError, OSError, EOFError) as exc:  # includes TimeoutError
            _LOG.warning("tag %s: disconnect failed: %r", address, exc)

    async def run(
        self,
        target: DiscoveredTag | EslTagRecord | str,
        operation: Callable[[TagSession], Awaitable[_T]],
        *,
        what: str,
        attempts: int | None = None,
    ) -> _T:
        """Run ``operation`` on a fresh connection, retrying :data:`RETRYABLE` failures with jittered back-off."""
        tries = attempts or self.settings.attempts
        backoff = Backoff(self.settings.backoff_min_s, self.settings.backoff_max_s, rng=self._rng)
        for attempt in range(1, tries + 1):
            try:
                async with self.connect(target) as session:
                    result = await operation(session)
                    if isinstance(target, EslTagRecord) and not target.bonded and self.settings.pair:
                        target.bonded = True
                    return result
            except RETRYABLE as exc:
                if attempt == tries:
                    raise
                delay = backoff.next_delay()
                _LOG.info("%s: attempt %d/%d failed (%s); retrying in %.2f s", what, attempt, tries, exc, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- onboarding ---------------------------------------------------------------------------------------------------

    async def onboard(
        self,
        tag: DiscoveredTag | str,
        esl_address: EslAddress | Callable[[TagInformation], EslAddress],
        *,
        images: Sequence[bytes] = (),
        display_image: int | None = 0,
        response_key: KeyMaterial | None = None,
    ) -> EslTagRecord:
        """Configure an unassociated tag: bond, read its information, write address, keys and time, upload
        ``images`` (index = position), show ``display_image`` (None: leave the screen) and send Update Complete.

        Returns the record to persist; retried as a whole on connection failures (every step is idempotent).
        """
        if isinstance(esl_address, EslAddress) and esl_address.is_broadcast:
            raise ValueError("a tag cannot be given the broadcast ESL ID")
        key = response_key or KeyMaterial(os.urandom(16), os.urandom(8))
        ble_address = tag.ble_address if isinstance(tag, DiscoveredTag) else tag
        address_type: AddressType = tag.address_type if isinstance(tag, DiscoveredTag) else "public"

        chosen: list[EslAddress] = []

        async def configure(session: TagSession) -> EslTagRecord:
            info = await session.read_information()
            if images and len(images) > info.max_image_index + 1:
                raise ValueError(f"tag {ble_address} holds {info.max_image_index + 1} images, got {len(images)}")
            if isinstance(esl_address, EslAddress):
                address = esl_address
            else:
                # the caller picks the address from what the tag is (its panel), once per onboarding
                if not chosen:
                    chosen.append(esl_address(info))
                address = chosen[0]
            await session.configure(
                address, ap_sync_key=self.ap_sync_key, response_key=key, absolute_time_ms=self._clock_ms()
            )
            for index, image in enumerate(images):
                await session.upload(index, image)
            if images and display_image is not None:
                await session.ecp(DisplayImage(address.esl_id, 0, display_image))
            await session.ecp_without_response(UpdateComplete(address.esl_id))
            return EslTagRecord(
                ble_address=ble_address,
                esl_address=address,
                response_key=key,
                address_type=address_type,
                bonded=self.settings.pair,
                displays=info.displays,
                max_image_index=info.max_image_index,
                sensors=info.sensors,
                leds=info.leds,
                pnp_id=info.pnp_id,
            )

        target = esl_address if isinstance(esl_address, EslAddress) else "a declared address"
        return await self.run(tag, configure, what=f"onboard {ble_address} as {target}")

    async def onboard_all(
        self, assignments: Iterable[tuple[DiscoveredTag | str, EslAddress]], *, concurrency: int = 4
    ) -> dict[EslAddress, EslTagRecord | BleTagError]:
        """Onboard several tags, ``concurrency`` at a time; per tag the record or the error that stopped it."""
        limit = asyncio.Semaphore(concurrency)
        outcome: dict[EslAddress, EslTagRecord | BleTagError] = {}

        async def one(tag: DiscoveredTag | str, esl_address: EslAddress) -> None:
            async with limit:
                try:
                    outcome[esl_address] = await self.onboard(tag, esl_address)
                except BleTagError as exc:
                    _LOG.warning("onboarding %s failed: %s", esl_address, exc)
                    outcome[esl_address] = exc

        async with asyncio.TaskGroup() as group:
            for tag, esl_address in assignments:
                group.create_task(one(tag, esl_address), name=f"esl-onboard-{esl_address}")
        return outcome

    # -- operations on configured tags ------------------------------------------------------------------------------

    async def _finish(self, session: TagSession, record: EslTagRecord) -> None:
        if self.settings.update_complete and not session.lost:
            await session.ecp_without_response(UpdateComplete(record.esl_address.esl_id))

    async def upload_image(
        self, record: EslTagRecord, image_index: int, data: bytes, *, display: bool = False
    ) -> tuple[UploadResult, DisplayState | None]:
        """Upload ``data`` as image ``image_index`` (resuming across dropped connections), optionally show it."""
        if not 0 <= image_index <= record.max_image_index:
            raise ValueError(f"tag {record.ble_address} has image slots 0..{record.max_image_index}")
        sent = 0
        connections = 0
        resumed: int | None = None

        async def upload(session: TagSession) -> DisplayState | None:
            nonlocal sent, connections, resumed
            connections += 1
            try:
                _sent_now, resumed = await session.upload(image_index, data)
            finally:
                sent += session.object_bytes
            state = None
            if display:
                response = await session.ecp(DisplayImage(record.esl_address.esl_id, 0, image_index))
                assert isinstance(response, DisplayState)
                state = response
            await self._finish(session, record)
            return state

        state = await self.run(record, upload, what=f"image {image_index} to {record.esl_address}")
        return UploadResult(image_index, len(data), zlib.crc32(data), sent, resumed, connections), state

    async def command(self, record: EslTagRecord, command: Command) -> Response:
        """Send one ECP command on its own connection and return the response (Error -> :class:`EcpError`)."""

        async def send(session: TagSession) -> Response:
            response = await session.ecp(command)
            await self._finish(session, record)
            return response

        return await self.run(record, send, what=f"{type(command).__name__} to {record.esl_address}")

    async def read_information(self, record: EslTagRecord) -> EslTagRecord:
        """Re-read a tag's information characteristics into a copy of ``record``."""
        info = await self.run(record, TagSession.read_information, what=f"information of {record.esl_address}")
        return replace(
            record,
            displays=info.displays,
            max_image_index=info.max_image_index,
            sensors=info.sensors,
            leds=info.leds,
            pnp_id=info.pnp_id,
        )
