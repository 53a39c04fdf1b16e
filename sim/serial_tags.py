"""Simulated serial e-ink tags behind a pty, running the real MicroPython tag firmware on CPython.

Why a pty: the gateway's :class:`agents.tags.serial_transport.SerialTagTransport` opens a plain pyserial port, so
the simulator must look like a serial device, not like an in-process object. ``os.openpty()`` gives exactly that:
the gateway opens the slave path (``/dev/pts/N``) with pyserial, and this module serves the master side.

Why the real firmware: every simulated tag is an ``esltag.tag.Tag`` (the code that runs on the MicroPython tag)
with a virtual e-paper built on ``esltag.hostfb`` (the pure-Python ``framebuf`` stand-in), so the simulator tests the
same framing, dedup, image store and command handling as a real tag. Nothing is mocked.

The bus is RS-485 style: every tag sees every frame, and answers only those addressed to it. One worker thread
reads the master fd, splits the byte stream into frames at the COBS ``0x00`` delimiter, applies fault injection
(drop a whole frame, corrupt single bytes, in both directions), feeds the frame to every tag and writes the tags'
replies back. A tag can be reset after it has received a given number of image blocks (``schedule_reset``): it is
replaced by a fresh firmware object (image store and transfer state lost), keeping its e-paper, which is bistable
and keeps showing what it showed.

Import note: the firmware lives in ``firmware/esltag`` (a checkout) or in the installed ``firmware`` package (a
wheel), found by :func:`agents.firmware_files.esltag_dir`, and imports itself as ``esltag`` (as on the device), so
this module appends the folder holding ``esltag/`` to ``sys.path`` (appended, not prepended, so it never shadows
anything) before importing it; the firmware package has no type information for this checkout's mypy configuration,
hence the ``type: ignore[import-not-found]`` comments.
"""

from __future__ import annotations

import hashlib
import os
import random
import select
import sys
import threading
import tty
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agents.firmware_files import esltag_dir
from protocols.esl import EslAddress
from protocols.esl.serial import Frame, PayloadType, SerialFrameDecoder

_FIRMWARE = str(esltag_dir().parent)
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)

from esltag.epaper import EPaper  # type: ignore[import-not-found]  # noqa: E402
from esltag.tag import Tag  # type: ignore[import-not-found]  # noqa: E402

__all__ = ["FaultConfig", "SimulatedSerialBus", "SimulatedTag", "VirtualEPaper"]


class VirtualEPaper(EPaper):  # type: ignore[misc]
    """The firmware's virtual e-paper, recording the hash of every image it was asked to show (for the
    "never a partial image" check)."""

    def __init__(self, width: int, height: int, planes: int = 1) -> None:
        super().__init__(width, height, planes)
        self.history: list[str] = []

    def _push(self) -> None:
        shown = self.shown
        if shown is not None:
            self.history.append(hashlib.sha256(shown).hexdigest())


@dataclass
class FaultConfig:
    """Fault injection, applied to the byte stream in both directions.

    * ``corrupt_byte``: every byte independently corrupted (one flipped bit) with this probability;
    * ``corrupt_burst_ratio``: this fraction of all bytes is corrupted in noise bursts of on average
      ``burst_bytes`` bytes (each byte in a burst replaced by a random other value); gaps and burst lengths
      are geometric, and a burst may run on into the next frame, as line noise does;
    * ``corrupt_frame``: a frame gets one flipped bit at a random position with this probability;
    * ``drop_frame``: a whole frame is lost with this probability.
    """

    corrupt_byte: float = 0.0
    corrupt_burst_ratio: float = 0.0
    burst_bytes: float = 16.0
    corrupt_frame: float = 0.0
    drop_frame: float = 0.0
    seed: int | None = None


@dataclass
class SimulatedTag:
    """One tag on the bus: its ESL address, the firmware object and its virtual e-paper."""

    address: EslAddress
    display: VirtualEPaper
    firmware: Any
    resets: int = 0
    blocks_seen: int = 0
    reset_after_blocks: list[int] = field(default_factory=list)

    @property
    def planes(self) -> bytes | None:
        """The planes the e-paper shows (None: nothing shown yet)."""
        shown = self.display.shown
        return bytes(shown) if shown is not None else None

    @property
    def content_hash(self) -> str | None:
        """SHA-256 (hex) of the shown planes, None when blank."""
        shown = self.display.shown
        return hashlib.sha256(shown).hexdigest() if shown is not None else None

    def save_png(self, path: str | os.PathLike[str]) -> None:
        """Write what the e-paper shows as a PNG (white, black, red accent)."""
        from PIL import Image

        display = self.display
        image = Image.new("RGB", (display.width, display.height), (255, 255, 255))
        pixels = image.load()
        assert pixels is not None
        colours = {0: (255, 255, 255), 1: (0, 0, 0), 2: (200, 0, 0)}
        for y in range(display.height):
            for x in range(display.width):
                pixels[x, y] = colours[display.pixel(x, y)]
        image.save(path, format="PNG")

    def reset(self) -> None:
        """Power-cycle the tag: fresh firmware state (images, transfer, dedup), same e-paper content."""
        self.firmware = Tag(self.address.to_int(), self.display)
        self.resets += 1


def _geometric(rng: random.Random, mean: float) -> int:
    """A whole number >= 1 with (about) the given mean and a memoryless (geometric-like) spread."""
    return 1 + int(rng.expovariate(1 / max(mean - 0.5, 1e-9)))


class SimulatedSerialBus:
    """A pty with N firmware tags behind it. ``port`` is the path the gateway opens with pyserial.

    Use as a context manager or call :meth:`start` / :meth:`stop`; ``stop`` joins the worker thread and closes
    both pty fds.
    """

    def __init__(
        self,
        addresses: list[EslAddress],
        *,
        width: int = 152,
        height: int = 152,
        planes: int = 1,
        faults: FaultConfig | None = None,
        geometry: Mapping[EslAddress, tuple[int, int, int]] | None = None,
    ) -> None:
        """``geometry`` gives (width, height, planes) per tag; the others get ``width``/``height``/``planes``."""
        self.faults = faults or FaultConfig()
        self._rng = random.Random(self.faults.seed)
        self.tags: dict[EslAddress, SimulatedTag] = {}
        for address in addresses:
            tag_width, tag_height, tag_planes = (geometry or {}).get(address, (width, height, planes))
            display = VirtualEPaper(tag_width, tag_height, tag_planes)
            self.tags[address] = SimulatedTag(address, display, Tag(address.to_int(), display))
        self._lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._inbound = bytearray()
        self._observer = SerialFrameDecoder()
        self.frames_in = 0
        self.frames_dropped = 0
        self.bytes_corrupted = 0
        self.bytes_total = 0
        self.garbage_injected = 0
        self._burst_left = 0
        self._until_burst = self._gap()
        self._closed = False

    def __enter__(self) -> SimulatedSerialBus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="sim-serial-bus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            os.write(self._stop_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._master, self._slave, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def tag(self, address: EslAddress) -> SimulatedTag:
        return self.tags[address]

    def schedule_reset(self, address: EslAddress, after_blocks: int) -> None:
        """Reset the tag once it has received ``after_blocks`` more image blocks addressed to it."""
        with self._lock:
            tag = self.tags[address]
            tag.reset_after_blocks.append(tag.blocks_seen + after_blocks)

    # ----------------------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self._master, self._stop_r], [], [], 0.5)
            except (OSError, ValueError):
                return
            if self._stop_r in ready:
                return
            if self._master not in ready:
                continue
            try:
                data = os.read(self._master, 65536)
            except OSError:
                return
            if not data:
                return
            out = self._on_bytes(data)
            if out:
                try:
                    os.write(self._master, out)
                except OSError:
                    return

    def inject_garbage(self, data: bytes) -> None:
        """Write ``data`` to the gateway's side of the line as if noise or a babbling device had sent it."""
        os.write(self._master, data)
        self.garbage_injected += len(data)

    def _gap(self) -> int:
        """Bytes until the next noise burst starts (geometric; effectively never without burst noise)."""
        faults = self.faults
        if faults.corrupt_burst_ratio <= 0:
            return 1 << 62
        # bursts of mean length L covering a fraction r of the bytes: mean gap L * (1 - r) / r
        mean_gap = faults.burst_bytes * (1 - faults.corrupt_burst_ratio) / faults.corrupt_burst_ratio
        return _geometric(self._rng, mean_gap)

    def _burst_noise(self, out: bytearray) -> None:
        index = 0
        while index < len(out):
            if self._burst_left == 0:
                step = min(self._until_burst, len(out) - index)
                index += step
                self._until_burst -= step
                if self._until_burst == 0:
                    self._burst_left = _geometric(self._rng, self.faults.burst_bytes)
                    self._until_burst = self._gap()
                continue
            out[index] ^= self._rng.randrange(1, 256)
            self.bytes_corrupted += 1
            self._burst_left -= 1
            index += 1

    def _faulty(self, frame: bytes) -> bytes:
        """Apply fault injection to one delimited frame (delimiter included); b"" when dropped."""
        faults = self.faults
        if faults.drop_frame and self._rng.random() < faults.drop_frame:
            self.frames_dropped += 1
            return b""
        self.bytes_total += len(frame)
        out = bytearray(frame)
        if faults.corrupt_burst_ratio:
            self._burst_noise(out)
        if faults.corrupt_frame and self._rng.random() < faults.corrupt_frame:
            out[self._rng.randrange(len(out))] ^= 1 << self._rng.randrange(8)
            self.bytes_corrupted += 1
        if not faults.corrupt_byte:
            return bytes(out)
        for index in range(len(out)):
            if self._rng.random() < faults.corrupt_byte:
                out[index] ^= 1 << self._rng.randrange(8)
                self.bytes_corrupted += 1
        return bytes(out)

    def _split(self, data: bytes) -> list[bytes]:
        """Split ``data`` into delimited frames; each keeps its trailing 0x00."""
        chunks: list[bytes] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            if end < 0:
                break
            chunks.append(data[start : end + 1])
            start = end + 1
        if start < len(data):
            chunks.append(data[start:])
        return chunks

    def _on_bytes(self, data: bytes) -> bytes:
        self._inbound.extend(data)
        end = self._inbound.rfind(b"\x00")
        if end < 0:
            return b""
        complete = bytes(self._inbound[: end + 1])
        del self._inbound[: end + 1]
        out = bytearray()
        with self._lock:
            for raw in self._split(complete):
                self.frames_in += 1
                chunk = self._faulty(raw)
                if not chunk:
                    continue
                frames = self._observer.feed(chunk)
                for tag in self._listeners(frames):
                    reply = tag.firmware.feed(chunk)
                    for piece in self._split(reply):
                        out.extend(self._faulty(piece))
                for frame in frames:
                    if frame.payload_type == PayloadType.IMAGE_BLOCK and frame.address in self.tags:
                        tag = self.tags[frame.address]
                        tag.blocks_seen += 1
                        if tag.reset_after_blocks and tag.blocks_seen >= tag.reset_after_blocks[0]:
                            tag.reset_after_blocks.pop(0)
                            tag.reset()
        return bytes(out)

    def _listeners(self, frames: list[Frame]) -> list[SimulatedTag]:
        """The tags whose firmware must see a chunk.

        On a real bus every tag reads every frame and drops those for other addresses; simulating that in one
        Python thread costs 25 decodes per frame on a 25-tag bus. A valid frame is therefore handed only to
        the tags it addresses (itself, or its group for a broadcast), which is what the others would have
        decided too; a chunk that does not decode (noise, a corrupted frame) goes to every tag, so each
        firmware's own decoder still has to reject it.
        """
        if not frames:
            return list(self.tags.values())
        listeners: list[SimulatedTag] = []
        for frame in frames:
            address = frame.address
            if address.is_broadcast:
                listeners.extend(tag for a, tag in self.tags.items() if a.group_id == address.group_id)
            elif address in self.tags:
                listeners.append(self.tags[address])
        return listeners
