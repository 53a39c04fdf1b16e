"""Framed serial link for e-ink tags: COBS framing, CRC-16, acknowledged delivery, block image transfer. Sans-IO.

One serial port (an RS-485 style bus or a radio bridge) reaches many tags; every frame names its tag by ESL address
(group and ESL id). Frames carry the Bluetooth ESL ECP command and response TLVs unchanged
(:mod:`protocols.esl.commands`, :mod:`protocols.esl.responses`), plus image blocks and block acknowledgements.
Nothing here touches a port or a clock: bytes go in through :meth:`SerialFrameDecoder.feed`, frames come out of
:meth:`Frame.encode`, and the link-layer classes are told the current time and answer with what to transmit and
when to call again.

Bottom-up:

- :mod:`protocols.esl.serial.wire`: the wire format (COBS, CRC-16/CCITT-FALSE, frame bodies) as plain functions
  and int constants, the subset the MicroPython tag firmware copies.
- :mod:`protocols.esl.serial.frames`: typed :class:`Frame` values and the streaming :class:`SerialFrameDecoder`.
- :mod:`protocols.esl.serial.link`: the link layer, per-tag stop-and-wait with retransmission
  (:class:`LinkSender`) and once-only delivery (:class:`LinkReceiver`).
- :mod:`protocols.esl.serial.blocks`: block image transfer (:func:`split_image`, :class:`ImageAssembler`,
  :class:`BlockAck`), with no partial image ever shown.

This package re-exports every public name of those modules. Errors are :class:`~protocols.errors.ProtocolError`
subclasses (:class:`FramingError`, :class:`ChecksumError`, :class:`FrameFormatError`) or, for a caller's own mistake
when setting up or queueing a send, ``ValueError``.
"""

from __future__ import annotations

from protocols.esl.serial.blocks import (
    BLOCK_HEADER_SIZE,
    DEFAULT_BLOCK_SIZE,
    IMAGE_HASH_SIZE,
    MAX_BLOCK_SIZE,
    MAX_BLOCKS,
    BlockAck,
    ImageAssembler,
    ImageBlock,
    TransferStatus,
    blocks_to_send,
    image_hash,
    split_image,
)
from protocols.esl.serial.frames import (
    Frame,
    FrameKind,
    PayloadType,
    SerialFrameDecoder,
)
from protocols.esl.serial.link import (
    LinkReceiver,
    LinkSender,
    Received,
    SendActions,
    SendOutcome,
    SendResult,
)
from protocols.esl.serial.wire import (
    CRC_SIZE,
    DELIMITER,
    FLAG_ACK,
    FLAG_DATA,
    FLAG_NACK,
    FLAG_NO_ACK,
    HEADER_SIZE,
    KIND_MASK,
    MAX_PAYLOAD,
    PT_BLOCK_ACK,
    PT_ECP_COMMAND,
    PT_ECP_RESPONSE,
    PT_IMAGE_BLOCK,
    PT_NONE,
    VERSION,
    ChecksumError,
    FrameFormatError,
    FramingError,
    cobs_decode,
    cobs_encode,
    crc16,
    pack_frame,
    unpack_frame,
)

__all__ = [
    "BLOCK_HEADER_SIZE",
    "CRC_SIZE",
    "DEFAULT_BLOCK_SIZE",
    "DELIMITER",
    "FLAG_ACK",
    "FLAG_DATA",
    "FLAG_NACK",
    "FLAG_NO_ACK",
    "HEADER_SIZE",
    "IMAGE_HASH_SIZE",
    "KIND_MASK",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "MAX_PAYLOAD",
    "PT_BLOCK_ACK",
    "PT_ECP_COMMAND",
    "PT_ECP_RESPONSE",
    "PT_IMAGE_BLOCK",
    "PT_NONE",
    "VERSION",
    "BlockAck",
    "ChecksumError",
    "Frame",
    "FrameFormatError",
    "FrameKind",
    "FramingError",
    "ImageAssembler",
    "ImageBlock",
    "LinkReceiver",
    "LinkSender",
    "PayloadType",
    "Received",
    "SendActions",
    "SendOutcome",
    "SendResult",
    "SerialFrameDecoder",
    "TransferStatus",
    "blocks_to_send",
    "cobs_decode",
    "cobs_encode",
    "crc16",
    "image_hash",
    "pack_frame",
    "split_image",
    "unpack_frame",
]
