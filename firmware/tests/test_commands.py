from esltag import commands
from esltag.epaper import EPaper
from esltag.images import ImageStore
from helpers import image_blocks


def _handler():
    return commands.CommandHandler(5, EPaper(8, 8), ImageStore(), [commands.Led()], battery_mv=2950)


def test_ping_basic_state():
    assert _handler().handle(b"\x00\x05") == b"\x10\x02\x00"


def test_other_tag_and_broadcast_get_no_response():
    handler = _handler()
    assert handler.handle(b"\x00\x06") == b""
    assert handler.handle(b"\x00\xff") == b""


def test_read_battery():
    handler = _handler()
    assert handler.handle(b"\x10\x05\x00") == bytes((0x2E, 0, 2950 & 0xFF, 2950 >> 8))
    assert handler.handle(b"\x10\x05\x01") == b"\x00\x06"


def test_led_control():
    handler = _handler()
    tlv = b"\xb0\x05\x00\x7f\x76\xef\x96\x08\x91\x07\x06\x14\x00"
    assert handler.handle(tlv) == b"\x01\x00"
    led = handler.leds[0]
    assert led.color == 0x7F and led.pattern == 0x9108_96EF76 and led.repeat == 0x14
    assert handler.handle(b"\x00\x05") == b"\x10\x06\x00"  # Active LED flag
    assert handler.handle(b"\xb0\x05\x01" + tlv[3:]) == b"\x00\x06"


def test_display_image():
    handler = _handler()
    assert handler.handle(b"\x20\x05\x00\x00") == b"\x00\x05"  # not available yet
    assert handler.handle(b"\x20\x05\x00\x09") == b"\x00\x04"
    image = bytes(range(8))
    for block in image_blocks(image, block_size=3):
        handler.images.add_block(block)
    assert handler.handle(b"\x20\x05\x00\x00") == b"\x11\x00\x00"
    assert handler.display.shown == image
    assert handler.handle(b"\x11\x05\x00") == b"\x11\x00\x00"


def test_unknown_opcode_and_truncated():
    handler = _handler()
    assert handler.handle(b"\x05\x05") == b"\x00\x02"
    assert handler.handle(b"\x00\x05\x10\x05") == b"\x10\x02\x00\x00\x06"


def test_several_tlvs():
    assert _handler().handle(b"\x00\x05\x10\x05\x00") == b"\x10\x02\x00\x2e\x00\x86\x0b"


def test_unassociate_factory_reset_update_complete():
    handler = _handler()
    for block in image_blocks(bytes(8), block_size=8):
        handler.images.add_block(block)
    assert handler.handle(b"\x03\x05") == b"\x00\x03"  # factory reset refused while synchronized
    assert handler.handle(b"\x04\x05") == b"\x00\x03"
    assert handler.handle(b"\x01\x05") == b"\x10\x00\x00"  # unassociated: not synchronized
    assert handler.handle(b"\x03\x05") == b""
    assert not handler.images.has(0)
    assert handler.handle(b"\x04\x05") == b""
    assert handler.handle(b"\x00\x05") == b"\x10\x02\x00"
