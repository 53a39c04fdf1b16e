"""The emulated ESL's state machine and command execution, without a radio (ESL Profile 1.0 states, after nrf-esl).

UNASSOCIATED (advertising connectable with service UUID 0x1857) -> a connection makes it CONFIGURING -> the AP
writes address, both keys and the time, then ECP Update Complete -> on disconnect SYNCHRONIZED (PAST is implicit:
:mod:`sim.ble.pawr` delivers the group's sync packets). A connection to a synchronized or unsynchronized tag makes it
UPDATING; Update Complete then disconnect returns it to SYNCHRONIZED, a disconnect without it leaves it
UNSYNCHRONIZED. Unassociate and Factory Reset return it to UNASSOCIATED.

Commands reach the one :meth:`EslStateMachine.execute` two ways, so both paths behave alike: an ECP write over the
connection (:meth:`~EslStateMachine.handle_ecp`) and a TLV in a PAwR sync packet, decrypted with the AP Sync Key
and answered EAD-encrypted under the Response Key (:meth:`~EslStateMachine.on_sync_packet`). Timed commands (Display
Timed Image, LED Timed Control) run lazily: whenever the tag handles something, the due ones execute first.

The bumble side (:class:`sim.ble.esl_tag.tag.EmulatedEslTag`) subclasses this: it reports the link going up and down
(:meth:`~EslStateMachine.link_up`, :meth:`~EslStateMachine.link_down`) and stores the configuration the AP writes
over GATT. What the tag does costs modelled time, added to its :class:`~sim.ble.esl_tag.timing.TagTimeline`.
"""

from __future__ import annotations

import asyncio
import random
import struct

from protocols.errors import ProtocolError
from protocols.esl import (
    BROADCAST_ESL_ID,
    BasicState,
    BasicStateFlags,
    Command,
    DisplayImage,
    DisplayState,
    DisplayTimedImage,
    ErrorCode,
    ErrorResponse,
    EslAddress,
    FactoryReset,
    KeyMaterial,
    LedControl,
    LedState,
    LedTimedControl,
    Ping,
    ReadSensorData,
    RefreshDisplay,
    Response,
    SensorValue,
    ServiceReset,
    SyncPacket,
    Unassociate,
    UnknownOpcodeError,
    UpdateComplete,
    VendorCommand,
    decode_command,
    encode_slot_response,
    tlv_length,
)
from sim.ble.esl_tag.model import EslEPaper, ImageObject, LedStatus, TagFaults, TagProfile, TagState, framebuffer_size
from sim.ble.esl_tag.timing import TagTimeline, TimingModel

__all__ = ["EslStateMachine"]


class EslStateMachine:
    """An ESL's state, configuration, image slots, e-paper and LEDs, and the commands that change them.

    ``profile`` says what the tag is, ``timing`` what its work costs in modelled seconds and ``faults`` what goes
    wrong; the faults' ``seed`` also seeds the tag's randomness (EAD randomizers, where a transfer is cut).
    """

    def __init__(self, *, profile: TagProfile, timing: TimingModel, faults: TagFaults) -> None:
        self.profile = profile
        self.timing = timing
        self.faults = faults
        self.timeline = TagTimeline()
        self._rng = random.Random(faults.seed)

        self.state = TagState.UNASSOCIATED
        self.esl_address: EslAddress | None = None
        self.sync_key: KeyMaterial | None = None
        self.response_key: KeyMaterial | None = None
        self._time_anchor: tuple[int, float] | None = None
        self.update_complete = False
        self.service_needed = False
        self.battery_mv = profile.battery_mv
        self.epaper = EslEPaper(profile.panel)
        size = framebuffer_size(profile.panel)
        self.images = [ImageObject(n, size) for n in range(profile.max_image_index + 1)]
        self.leds = [LedStatus() for _ in range(profile.led_count)]
        self.pending_timed_image: DisplayTimedImage | None = None
        self.pending_timed_led: LedTimedControl | None = None
        self._linked = False

    # ------------------------------------------------------------------------------------------------------------
    # The link and the configuration

    @property
    def connected(self) -> bool:
        """An AP is connected (between :meth:`link_up` and :meth:`link_down`)."""
        return self._linked

    @property
    def configured(self) -> bool:
        """Address, both keys and the absolute time have been written."""
        return None not in (self.esl_address, self.sync_key, self.response_key, self._time_anchor)

    def link_up(self) -> None:
        """An AP connected: an unassociated tag starts CONFIGURING, an associated one UPDATING."""
        self._linked = True
        self.timeline.connections += 1
        self.timeline.connection_s += self.timing.connection_setup_s
        self.update_complete = False
        if self.state is TagState.UNASSOCIATED:
            self.state = TagState.CONFIGURING
        elif self.state in (TagState.SYNCHRONIZED, TagState.UNSYNCHRONIZED):
            self.state = TagState.UPDATING

    def link_down(self) -> None:
        """The AP disconnected: Update Complete decides SYNCHRONIZED or UNSYNCHRONIZED; half-configured, it forgets."""
        self._linked = False
        if self.state is TagState.CONFIGURING:
            if self.update_complete:
                self.state = TagState.SYNCHRONIZED
            elif self.configured:
                self.state = TagState.UNSYNCHRONIZED
            else:
                self._forget_configuration()
        elif self.state is TagState.UPDATING:
            self.state = TagState.SYNCHRONIZED if self.update_complete else TagState.UNSYNCHRONIZED

    def set_absolute_time(self, milliseconds: int) -> None:
        """The AP wrote the ESL Current Absolute Time: the tag's clock runs on from it."""
        self._time_anchor = (milliseconds, asyncio.get_running_loop().time())

    @property
    def absolute_time_ms(self) -> int | None:
        """The tag's ESL Current Absolute Time now (None until the AP wrote it)."""
        if self._time_anchor is None:
            return None
        base, at = self._time_anchor
        return (base + int((asyncio.get_running_loop().time() - at) * 1000)) & 0xFFFF_FFFF

    def _forget_configuration(self) -> None:
        self.state = TagState.UNASSOCIATED
        self.esl_address = None
        self.sync_key = None
        self.response_key = None
        self._time_anchor = None
        self.update_complete = False

    def _readvertise(self) -> None:
        """Hook: the state changed while no AP is connected, so what the tag advertises changes (no radio here)."""

    # ------------------------------------------------------------------------------------------------------------
    # Modelled time and randomness

    def count_att_request(self) -> None:
        """Add one ATT request's round trip (read, write with response, control point) to the modelled time."""
        self.timeline.att_s += self.timing.att_round_trip_s

    def cut_point(self, length: int) -> int | None:
        """Where fault injection cuts an object write of ``length`` bytes (None: it arrives whole)."""
        if length > 1 and self._rng.random() < self.faults.disconnect_mid_transfer:
            return self._rng.randrange(1, length)
        return None

    # ------------------------------------------------------------------------------------------------------------
    # Commands

    def handle_ecp(self, data: bytes) -> Response | None:  # noqa: PLR0911 - one early answer per ECP error case
        """Execute one ECP write received over the connection; the response to notify, or None for no notification."""
        if not data:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if len(data) != tlv_length(data[0]):
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        try:
            command, _ = decode_command(data)
        except UnknownOpcodeError:
            return ErrorResponse(ErrorCode.INVALID_OPCODE)
        except ProtocolError:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if self.esl_address is None or self.state not in (TagState.CONFIGURING, TagState.UPDATING):
            return ErrorResponse(ErrorCode.INVALID_STATE)
        if command.esl_id not in (self.esl_address.esl_id, BROADCAST_ESL_ID):
            return None  # nrf-esl: wrong ESL ID is dropped without a notification
        return self.execute(command, over_pawr=False)

    def execute(self, command: Command, *, over_pawr: bool) -> Response | None:  # noqa: PLR0911 - a dispatch on the command type
        """Run one command addressed to this tag; its response, or None for commands that answer nothing."""
        self._run_due_timed_commands()
        match command:
            case Ping():
                return self._basic_state()
            case Unassociate():
                if command.esl_id == BROADCAST_ESL_ID and not over_pawr:
                    return ErrorResponse(ErrorCode.RETRY)
                self._forget_configuration()
                if self.connected:
                    self.state = TagState.CONFIGURING
                else:
                    self._readvertise()
                return self._basic_state()
            case ServiceReset():
                self.service_needed = False
                return self._basic_state()
            case FactoryReset():
                if self.state is TagState.SYNCHRONIZED or command.esl_id == BROADCAST_ESL_ID:
                    return ErrorResponse(ErrorCode.INVALID_STATE)
                self._forget_configuration()
                for image in self.images:
                    image.data.clear()
                    image.verified = False
                if self.connected:
                    self.state = TagState.CONFIGURING
                return None
            case UpdateComplete():
                if self.state not in (TagState.CONFIGURING, TagState.UPDATING) or not self.configured:
                    return ErrorResponse(ErrorCode.INVALID_STATE)
                self.update_complete = True
                return None
            case ReadSensorData():
                if command.sensor_index != 0:
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                return SensorValue(0, struct.pack("<H", self.battery_mv))
            case RefreshDisplay():
                if command.display_index != 0:
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                if self.epaper.shown_index is None:
                    return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
                return self._show(self.epaper.shown_index)
            case DisplayImage():
                return self._display(command.display_index, command.image_index)
            case DisplayTimedImage():
                return self._display_timed(command)
            case LedControl():
                if command.led_index >= len(self.leds):
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                self.leds[command.led_index].command = command
                return LedState(command.led_index)
            case LedTimedControl():
                if command.led_index >= len(self.leds):
                    return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
                if command.abs_time == 0:
                    self.pending_timed_led = None
                    return LedState(command.led_index)
                error = self._check_future_time(command.abs_time)
                if error is not None:
                    return error
                self.pending_timed_led = command
                return LedState(command.led_index)
            case VendorCommand():
                return ErrorResponse(ErrorCode.INVALID_OPCODE)
        return ErrorResponse(ErrorCode.INVALID_OPCODE)

    def _basic_state(self) -> BasicState:
        flags = BasicStateFlags(0)
        if self.service_needed or self.battery_mv <= self.profile.low_battery_mv:
            flags |= BasicStateFlags.SERVICE_NEEDED
        if self.state is TagState.SYNCHRONIZED:
            flags |= BasicStateFlags.SYNCHRONIZED
        if any(led.active for led in self.leds):
            flags |= BasicStateFlags.ACTIVE_LED
        if self.pending_timed_led is not None:
            flags |= BasicStateFlags.PENDING_LED_UPDATE
        if self.pending_timed_image is not None:
            flags |= BasicStateFlags.PENDING_DISPLAY_UPDATE
        return BasicState(flags)

    def _display(self, display_index: int, image_index: int) -> Response:
        if display_index != 0:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if image_index >= len(self.images):
            return ErrorResponse(ErrorCode.INVALID_IMAGE_INDEX)
        if not self.images[image_index].complete:
            return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
        return self._show(image_index)

    def _show(self, image_index: int) -> DisplayState:
        image = self.images[image_index].image()
        assert image is not None  # callers check ``complete`` first
        self.epaper.show(image_index, image)
        self.timeline.refresh_s += self.timing.epaper_refresh_s
        return DisplayState(0, image_index)

    def _check_future_time(self, absolute_time: int) -> ErrorResponse | None:
        now = self.absolute_time_ms
        if now is None or not 0 < (absolute_time - now) & 0xFFFF_FFFF <= 4_147_200_000:
            return ErrorResponse(ErrorCode.IMPLAUSIBLE_ABSOLUTE_TIME)
        return None

    def _display_timed(self, command: DisplayTimedImage) -> Response:
        if command.abs_time == 0:
            self.pending_timed_image = None
            return DisplayState(command.display_index, command.image_index)
        if command.display_index != 0:
            return ErrorResponse(ErrorCode.INVALID_PARAMETERS)
        if command.image_index >= len(self.images):
            return ErrorResponse(ErrorCode.INVALID_IMAGE_INDEX)
        if not self.images[command.image_index].complete:
            return ErrorResponse(ErrorCode.IMAGE_NOT_AVAILABLE)
        error = self._check_future_time(command.abs_time)
        if error is not None:
            return error
        self.pending_timed_image = command
        return DisplayState(command.display_index, command.image_index)

    def _run_due_timed_commands(self) -> None:
        """Timed commands run lazily: whenever the tag handles something, due ones execute first."""
        now = self.absolute_time_ms
        if now is None:
            return
        timed_image = self.pending_timed_image
        if timed_image is not None and (now - timed_image.abs_time) & 0xFFFF_FFFF < 0x8000_0000:
            self.pending_timed_image = None
            if self.images[timed_image.image_index].complete:
                self._show(timed_image.image_index)
        timed_led = self.pending_timed_led
        if timed_led is not None and (now - timed_led.abs_time) & 0xFFFF_FFFF < 0x8000_0000:
            self.pending_timed_led = None
            self.leds[timed_led.led_index].command = timed_led

    # ------------------------------------------------------------------------------------------------------------
    # PAwR: the radio hands the tag (a sync listener) the subevents sim.ble.pawr.PawrTrain sends

    def on_sync_packet(self, group_id: int, data: bytes) -> tuple[int, bytes] | None:
        """Handle one subevent's data: decrypt, execute its TLVs, build this tag's slot answer.

        Returns ``(response slot, EAD response)``, or None when the tag does not follow the train (not
        synchronized, out of range), the subevent is another group's, the packet does not decrypt under its AP Sync
        Key (not for this AP, or corrupted: dropped, as nrf-esl does), or nothing addressed it with a unicast TLV
        that produced a response.
        """
        if self.faults.out_of_range or self.state is not TagState.SYNCHRONIZED:
            return None
        address, sync_key, response_key = self.esl_address, self.sync_key, self.response_key
        if address is None or sync_key is None or response_key is None or address.group_id != group_id:
            return None
        try:
            packet = SyncPacket.decode(data, sync_key)
        except ProtocolError:
            return None
        if packet.group_id != group_id:
            return None
        responses: list[Response] = []
        slot: int | None = None
        for index, command in enumerate(packet.commands):
            if command.esl_id == BROADCAST_ESL_ID:
                self.execute(command, over_pawr=True)
                continue
            if command.esl_id != address.esl_id:
                continue
            slot = index
            response = self.execute(command, over_pawr=True)
            if response is not None:
                responses.append(response)
        if slot is None or not responses:
            return None
        return slot, encode_slot_response(responses, response_key, self.ead_randomizer())

    def ead_randomizer(self) -> bytes:
        """A fresh 5-byte EAD randomizer for a response."""
        return self._rng.randbytes(5)
