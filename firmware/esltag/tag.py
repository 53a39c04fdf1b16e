"""The tag main loop object, sans-IO: ``feed(bytes)`` returns the bytes to write back to the serial port.

Data frames addressed to this tag are acknowledged (unless NO_ACK) and delivered once: a retransmission (same
sequence number and content as the last delivered frame) is acknowledged again and answered with the cached reply,
without running the command twice. ECP commands are answered with an ECP response frame, image blocks with a block
ack frame; both are DATA|NO_ACK frames from the tag's address (the gateway retransmits its command if the reply is
lost, and gets the cached reply).
"""

from esltag.commands import BROADCAST_ID, CommandHandler, Led
from esltag.epaper import EPaper
from esltag.images import ImageStore
from esltag.link import (
    FLAG_ACK,
    FLAG_DATA,
    FLAG_NO_ACK,
    KIND_MASK,
    PT_BLOCK_ACK,
    PT_ECP_COMMAND,
    PT_ECP_RESPONSE,
    PT_IMAGE_BLOCK,
    PT_NONE,
    FrameDecoder,
    encode_frame,
)


class Tag:
    def __init__(self, address: int, display: EPaper, leds: int = 1, slots: int = 4, battery_mv: int = 3000) -> None:
        self.address = address
        self.decoder = FrameDecoder()
        self.images = ImageStore(slots)
        self.display = display
        self.handler = CommandHandler(address & 0xFF, display, self.images, [Led() for _ in range(leds)], battery_mv)
        self._seq = 0
        self._last: tuple[int, int, bytes] | None = None
        self._last_reply = b""
        self.duplicates = 0

    def _accepts(self, address: int) -> bool:
        if address == self.address:
            return True
        return (address >> 8) == (self.address >> 8) and (address & 0xFF) == BROADCAST_ID

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for flags, seq, address, payload_type, payload in self.decoder.feed(data):
            if flags & KIND_MASK != FLAG_DATA or not self._accepts(address):
                continue
            if not flags & FLAG_NO_ACK:
                out.extend(encode_frame(FLAG_ACK, seq, address, PT_NONE, b""))
            key = (seq, payload_type, payload)
            if self._last == key:
                self.duplicates += 1
                out.extend(self._last_reply)
                continue
            self._last = key
            reply = self._deliver(payload_type, payload)
            if address != self.address:
                reply = b""  # broadcasts are executed silently
            self._last_reply = reply
            out.extend(reply)
        return bytes(out)

    def _deliver(self, payload_type: int, payload: bytes) -> bytes:
        if payload_type == PT_ECP_COMMAND:
            response = self.handler.handle(payload)
            return self._send(PT_ECP_RESPONSE, response) if response else b""
        if payload_type == PT_IMAGE_BLOCK:
            ack = self.images.add_block(payload)
            return self._send(PT_BLOCK_ACK, ack) if ack is not None else b""
        return b""

    def _send(self, payload_type: int, payload: bytes) -> bytes:
        seq = self._seq
        self._seq = (seq + 1) & 0xFF
        return encode_frame(FLAG_DATA | FLAG_NO_ACK, seq, self.address, payload_type, payload)
