"""Gateway side of the serial tag link: pyserial port, framed link, ECP commands and block image transfer.

Why this shape: the codec (:mod:`protocols.esl.serial`) is sans-IO, so this module only adds the I/O and the
clock. pyserial has no asyncio API, so a worker thread does the blocking reads (``timeout`` bounded, so it notices
``close`` quickly) and hands decoded frames to the event loop with ``call_soon_threadsafe``; all link state
(:class:`LinkSender`, :class:`LinkReceiver`, pending requests) lives on the event loop thread only, so no locks are
needed. Writes are short and go straight to the port from the loop thread.

Two layers of retry, because the tag acknowledges a command before it answers it (the answer is a separate
NO_ACK data frame, see ``firmware/esltag/tag.py``):

* link level: :class:`LinkSender` retransmits a frame until the tag ACKs it, and gives up after ``max_tries``
  (then :class:`TagUnreachableError`: the tag is absent or the bus is dead; no point asking again);
* request level: once ACKed, the answer must arrive within ``reply_timeout``; if it was lost the request is
  submitted again (a new sequence number, so the tag runs it again; every request used here is idempotent),
  up to ``request_attempts`` times (then :class:`TagTimeoutError`).

A reply is accepted only once the request's ACK has been seen (its cached duplicate is sent again when the ACK was
lost and the frame retransmitted, so nothing is missed), which keeps a stale reply from a previous request from
answering the next one.

Image transfer uses the block protocol with resume: every block is answered with a :class:`BlockAck` bitmap; after
a pass, only the blocks the latest ack reports missing are sent again (a tag reset mid-transfer loses its partial
image, and the bitmap says so), until the tag reports COMPLETE (all blocks, hash verified); then Display Image. The
tag exposes an image only when it is complete and hash-checked, so it never shows a partial image.

Concurrency: different tags on the bus are served in parallel (the link is stop-and-wait per tag), at most
``max_concurrent`` operations at a time; operations on one tag are serialised.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import serial

from agents.tags.transport import ImageResult, TagRefusedError, TagTransportError
from protocols.errors import ProtocolError
from protocols.esl import (
    Command,
    DisplayImage,
    DisplayState,
    ErrorResponse,
    EslAddress,
    Ping,
    Response,
    decode_response,
)
from protocols.esl.serial import (
    DEFAULT_BLOCK_SIZE,
    BlockAck,
    Frame,
    FrameKind,
    ImageBlock,
    LinkReceiver,
    LinkSender,
    PayloadType,
    SendOutcome,
    SendResult,
    SerialFrameDecoder,
    TransferStatus,
    blocks_to_send,
    image_hash,
    split_image,
)

log = logging.getLogger(__name__)

__all__ = [
    "ImageResult",
    "SerialTagTransport",
    "SerialTransportError",
    "TagRejectedError",
    "TagTimeoutError",
    "TagUnreachableError",
]


class SerialTransportError(TagTransportError):
    """Base class of the serial transport's errors."""


class TagUnreachableError(SerialTransportError):
    """The tag never acknowledged a frame (absent, wrong address, or the bus is down)."""


class TagTimeoutError(SerialTransportError):
    """The tag acknowledged requests but its answers never arrived."""


class TagRejectedError(SerialTransportError, TagRefusedError):
    """The tag answered with an error, or an image transfer could not be completed."""


def _held(ack: BlockAck | None, block: ImageBlock) -> bool:
    """True when ``ack`` (for this very transfer) says the tag already holds ``block``."""
    return (
        ack is not None
        and (ack.image_index, ack.image_hash, ack.block_count)
        == (block.image_index, block.image_hash, block.block_count)
        and block.index in ack.received
    )


@dataclass
class _Pending:
    address: EslAddress
    expect: PayloadType
    future: asyncio.Future[bytes]
    delivered: bool = False


class SerialTagTransport:
    """Async client for tags on one serial port (see the module docstring)."""

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 115200,
        max_concurrent: int = 8,
        max_tries: int = 5,
        ack_timeout: float = 0.05,
        max_timeout: float = 0.4,
        reply_timeout: float = 0.3,
        request_attempts: int = 8,
        block_size: int = DEFAULT_BLOCK_SIZE,
        max_passes: int = 10,
    ) -> None:
        self._serial: Any = serial.serial_for_url(port, baudrate=baudrate, timeout=0.05)
        self._loop = asyncio.get_running_loop()
        self._sender = LinkSender(max_tries=max_tries, ack_timeout=ack_timeout, max_timeout=max_timeout)
        self._receiver = LinkReceiver()
        self._decoder = SerialFrameDecoder()
        self._reply_timeout = reply_timeout
        self._request_attempts = request_attempts
        self._block_size = block_size
        self._max_passes = max_passes
        self._limit = asyncio.Semaphore(max_concurrent)
        self._tag_locks: dict[EslAddress, asyncio.Lock] = {}
        self._by_token: dict[int, _Pending] = {}
        self._by_address: dict[EslAddress, _Pending] = {}
        self._wake = asyncio.Event()
        self._closing = threading.Event()
        self._closed = False
        self.bytes_written = 0
        self.image_bytes_sent = 0
        self._reader = threading.Thread(target=self._read_loop, name="serial-tag-reader", daemon=True)
        self._reader.start()
        self._pump_task = asyncio.create_task(self._pump(), name="serial-tag-pump")

    @classmethod
    async def open(cls, port: str, **kwargs: Any) -> SerialTagTransport:
        return cls(port, **kwargs)

    # ----------------------------------------------------------------------------------------------------------------
    # Public API

    async def send_command(self, address: EslAddress, command: Command) -> Response:
        """Send one ECP command and return the tag's response TLV (decoded)."""
        async with self._limit, self._lock_for(address):
            return await self._command(address, command)

    async def send_image(
        self, address: EslAddress, planes: bytes, *, image_index: int = 0, display: bool = True
    ) -> ImageResult:
        """Transfer ``planes`` into image slot ``image_index`` with resume, then (unless ``display`` is False, for a
        timed display later) Display Image. ``ImageResult.response`` is the Display State, or the Basic State of a
        ping that confirms the tag is still there when the image is only staged."""
        async with self._limit, self._lock_for(address):
            blocks = split_image(planes, image_index=image_index, block_size=self._block_size)
            ack: BlockAck | None = None
            sent = 0
            sent_bytes = 0
            passes = 0
            while True:
                todo = blocks_to_send(blocks, ack)
                if not todo:
                    if not display:
                        response = await self._command(address, Ping(address.esl_id))
                        return ImageResult(address, image_hash(planes), sent, sent_bytes, passes, response)
                    response = await self._command(address, DisplayImage(address.esl_id, 0, image_index))
                    if isinstance(response, DisplayState):
                        return ImageResult(address, image_hash(planes), sent, sent_bytes, passes, response)
                    if isinstance(response, ErrorResponse) and passes < self._max_passes:
                        ack = None  # the tag lost the image (reset after completion): send it again
                        continue
                    raise TagRejectedError(f"tag {address} refused Display Image: {response}")
                passes += 1
                if passes > self._max_passes:
                    raise TagRejectedError(f"tag {address}: image transfer incomplete after {passes - 1} passes")
                for block in todo:
                    if _held(ack, block):
                        continue  # the tag has it (e.g. from an earlier, interrupted attempt): resume
                    payload = block.encode()
                    reply = await self._request(address, PayloadType.IMAGE_BLOCK, payload, PayloadType.BLOCK_ACK)
                    sent += 1
                    sent_bytes += len(block.data)
                    self.image_bytes_sent += len(block.data)
                    try:
                        block_ack = BlockAck.decode(reply)
                    except ProtocolError:
                        continue
                    if (block_ack.image_index, block_ack.image_hash) != (block.image_index, block.image_hash):
                        continue
                    ack = block_ack
                    if ack.status == TransferStatus.COMPLETE:
                        break

    async def display_image(self, address: EslAddress, image_index: int) -> DisplayState:
        """Show an image already stored in slot ``image_index``; TagRejectedError when the tag refuses."""
        response = await self.send_command(address, DisplayImage(address.esl_id, 0, image_index))
        if not isinstance(response, DisplayState):
            raise TagRejectedError(f"tag {address} refused Display Image: {response}")
        return response

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # stop the pump by flag, not by cancel: Python 3.11's wait_for can swallow a cancellation that races with
        # the wake-up it is waiting for, which would leave close() waiting forever
        self._wake.set()
        await self._pump_task
        self._closing.set()
        await asyncio.to_thread(self._reader.join, 5)
        for pending in list(self._by_token.values()):
            if not pending.future.done():
                pending.future.set_exception(SerialTransportError("transport closed"))
        self._serial.close()

    async def __aenter__(self) -> SerialTagTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------------------------------------------------------
    # Requests

    def _lock_for(self, address: EslAddress) -> asyncio.Lock:
        lock = self._tag_locks.get(address)
        if lock is None:
            lock = self._tag_locks[address] = asyncio.Lock()
        return lock

    async def _command(self, address: EslAddress, command: Command) -> Response:
        reply = await self._request(address, PayloadType.ECP_COMMAND, command.encode(), PayloadType.ECP_RESPONSE)
        response, _ = decode_response(reply)
        return response

    async def _request(
        self, address: EslAddress, payload_type: PayloadType, payload: bytes, expect: PayloadType
    ) -> bytes:
        if self._closed:
            raise SerialTransportError("transport closed")
        for _attempt in range(self._request_attempts):
            future: asyncio.Future[bytes] = self._loop.create_future()
            token = self._sender.submit(address, payload_type, payload)
            pending = _Pending(address, expect, future)
            self._by_token[token] = pending
            self._wake.set()
            try:
                # the link level bounds the wait for the ACK; the reply timeout starts once delivered
                while True:
                    done, _ = await asyncio.wait({future}, timeout=self._reply_timeout)
                    if done:
                        return future.result()
                    if pending.delivered:
                        break
            finally:
                self._by_token.pop(token, None)
                if self._by_address.get(address) is pending:
                    del self._by_address[address]
        raise TagTimeoutError(f"tag {address}: no answer after {self._request_attempts} attempts")

    # ----------------------------------------------------------------------------------------------------------------
    # Event-loop side of the link

    async def _pump(self) -> None:
        while not self._closed:
            actions = self._sender.poll(time.monotonic())
            if actions.transmit:
                self._write(b"".join(frame.encode() for frame in actions.transmit))
            for result in actions.results:
                self._on_result(result)
            self._wake.clear()
            timeout = None if actions.deadline is None else max(0.0, actions.deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    def _write(self, data: bytes) -> None:
        try:
            self._serial.write(data)
            self.bytes_written += len(data)
        except (OSError, serial.SerialException) as exc:
            # the port went away: the link layer's time-outs report it per request
            log.warning("serial write failed: %s", exc)

    def _on_result(self, result: SendResult) -> None:
        pending = self._by_token.get(result.token)
        if pending is None:
            return
        if result.outcome == SendOutcome.FAILED:
            if not pending.future.done():
                pending.future.set_exception(
                    TagUnreachableError(f"tag {result.address}: no acknowledgement after {result.tries} tries")
                )
            return
        pending.delivered = True
        self._by_address[result.address] = pending

    def _on_frames(self, frames: list[Frame]) -> None:
        now = time.monotonic()
        for frame in frames:
            if frame.kind != FrameKind.DATA:
                result = self._sender.on_frame(frame, now)
                if result is not None:
                    self._on_result(result)
                    self._wake.set()
                continue
            received = self._receiver.on_frame(frame)
            if received.reply is not None:
                self._write(received.reply.encode())
            # replies are matched to the request waiting for them, not deduplicated: a lost ACK makes the tag send
            # its cached reply again, and that copy may be the first one this side can accept
            delivered = frame
            pending = self._by_address.get(delivered.address)
            if pending is None or pending.expect != delivered.payload_type or pending.future.done():
                continue
            pending.future.set_result(delivered.payload)

    def _read_loop(self) -> None:
        while not self._closing.is_set():
            try:
                # read(n) waits for n bytes or the time-out: wait for one, then take whatever else is buffered
                data = self._serial.read(1)
                if data and self._serial.in_waiting:
                    data += self._serial.read(self._serial.in_waiting)
            except (OSError, serial.SerialException, TypeError) as exc:  # TypeError: port closed under the read
                log.warning("serial read failed, reader stops: %s", exc)
                return
            if not data:
                continue
            frames = self._decoder.feed(data)
            if frames:
                try:
                    self._loop.call_soon_threadsafe(self._on_frames, frames)
                except RuntimeError:  # loop closed
                    return
