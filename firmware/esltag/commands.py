"""ECP command handling on the tag (ESL Service 1.0): TLVs in, response TLVs out.

A TLV's total length is ``(opcode >> 4) + 2``; byte 1 is the ESL ID. Commands for another ESL ID get no response
(Nordic behaviour); broadcast (0xFF) commands are executed without a response.
"""

from esltag.epaper import EPaper
from esltag.images import ImageStore

BROADCAST_ID = 0xFF

OP_PING = 0x00
OP_UNASSOCIATE = 0x01
OP_SERVICE_RESET = 0x02
OP_FACTORY_RESET = 0x03
OP_UPDATE_COMPLETE = 0x04
OP_READ_SENSOR = 0x10
OP_REFRESH_DISPLAY = 0x11
OP_DISPLAY_IMAGE = 0x20
OP_LED_CONTROL = 0xB0

RSP_ERROR = 0x00
RSP_LED_STATE = 0x01
RSP_BASIC_STATE = 0x10
RSP_DISPLAY_STATE = 0x11

ERR_UNSPECIFIED = 0x01
ERR_INVALID_OPCODE = 0x02
ERR_INVALID_STATE = 0x03
ERR_INVALID_IMAGE_INDEX = 0x04
ERR_IMAGE_NOT_AVAILABLE = 0x05
ERR_INVALID_PARAMETERS = 0x06

FLAG_SERVICE_NEEDED = 0x01
FLAG_SYNCHRONIZED = 0x02
FLAG_ACTIVE_LED = 0x04

SENSOR_BATTERY = 0


def tlv_length(opcode: int) -> int:
    return (opcode >> 4) + 2


def error(code: int) -> bytes:
    return bytes((RSP_ERROR, code))


class Led:
    """One LED: the last LED Control settings; a real driver subclasses it and overrides ``apply``."""

    def __init__(self) -> None:
        self.color = 0
        self.pattern = 0
        self.off_period = 0
        self.on_period = 0
        self.repeat = 0

    @property
    def active(self) -> bool:
        # Repeats_Duration 0 with Repeat_Type 0 means "off"; anything else lights the LED at some point.
        return self.repeat != 0 and self.pattern != 0 or self.repeat == 1

    def apply(self) -> None:
        """Drive the hardware; the virtual LED keeps only the settings."""


class CommandHandler:
    def __init__(
        self, esl_id: int, display: EPaper, images: ImageStore, leds: list[Led], battery_mv: int = 3000
    ) -> None:
        self.esl_id = esl_id
        self.display = display
        self.images = images
        self.leds = leds
        self.battery_mv = battery_mv
        self.flags = FLAG_SYNCHRONIZED
        self.image_index = -1

    def basic_state(self) -> bytes:
        flags = self.flags
        for led in self.leds:
            if led.active:
                flags |= FLAG_ACTIVE_LED
        return bytes((RSP_BASIC_STATE, flags & 0xFF, flags >> 8))

    def handle(self, data: bytes) -> bytes:
        """Run every TLV in ``data``; return the concatenated responses (possibly empty)."""
        out = bytearray()
        index = 0
        while index < len(data):
            opcode = data[index]
            end = index + tlv_length(opcode)
            if end > len(data):
                out.extend(error(ERR_INVALID_PARAMETERS))
                break
            response = self.handle_one(bytes(data[index:end]))
            if response is not None:
                out.extend(response)
            index = end
        return bytes(out)

    def handle_one(self, tlv: bytes) -> bytes | None:
        opcode = tlv[0]
        if len(tlv) < 2:
            return error(ERR_INVALID_PARAMETERS)
        esl_id = tlv[1]
        if esl_id != self.esl_id and esl_id != BROADCAST_ID:
            return None
        response = self._execute(opcode, tlv)
        return None if esl_id == BROADCAST_ID else response

    def _execute(self, opcode: int, tlv: bytes) -> bytes | None:
        if opcode == OP_PING:
            return self.basic_state()
        if opcode == OP_UNASSOCIATE:
            self.flags &= ~FLAG_SYNCHRONIZED
            return self.basic_state()
        if opcode == OP_FACTORY_RESET:
            if self.flags & FLAG_SYNCHRONIZED:
                return error(ERR_INVALID_STATE)
            self.images.clear()
            self.image_index = -1
            return None
        if opcode == OP_UPDATE_COMPLETE:
            if self.flags & FLAG_SYNCHRONIZED:
                return error(ERR_INVALID_STATE)
            self.flags |= FLAG_SYNCHRONIZED
            return None
        if opcode == OP_SERVICE_RESET:
            self.flags &= ~FLAG_SERVICE_NEEDED
            return self.basic_state()
        if opcode == OP_READ_SENSOR:
            if tlv[2] != SENSOR_BATTERY:
                return error(ERR_INVALID_PARAMETERS)
            millivolts = self.battery_mv
            return bytes((0x2E, SENSOR_BATTERY, millivolts & 0xFF, (millivolts >> 8) & 0xFF))
        if opcode == OP_REFRESH_DISPLAY:
            if tlv[2] != 0:
                return error(ERR_INVALID_PARAMETERS)
            if self.image_index < 0:
                return error(ERR_IMAGE_NOT_AVAILABLE)
            self.display.refresh()
            return bytes((RSP_DISPLAY_STATE, 0, self.image_index))
        if opcode == OP_DISPLAY_IMAGE:
            display_index = tlv[2]
            image_index = tlv[3]
            if display_index != 0:
                return error(ERR_INVALID_PARAMETERS)
            if image_index >= self.images.slots:
                return error(ERR_INVALID_IMAGE_INDEX)
            image = self.images.get(image_index)
            if image is None:
                return error(ERR_IMAGE_NOT_AVAILABLE)
            if not self.display.show(image):
                return error(ERR_UNSPECIFIED)
            self.image_index = image_index
            return bytes((RSP_DISPLAY_STATE, display_index, image_index))
        if opcode == OP_LED_CONTROL:
            led_index = tlv[2]
            if led_index >= len(self.leds):
                return error(ERR_INVALID_PARAMETERS)
            led = self.leds[led_index]
            led.color = tlv[3]
            led.pattern = int.from_bytes(tlv[4:9], "little")
            led.off_period = tlv[9]
            led.on_period = tlv[10]
            led.repeat = tlv[11] | (tlv[12] << 8)
            led.apply()
            return bytes((RSP_LED_STATE, led_index))
        return error(ERR_INVALID_OPCODE)
