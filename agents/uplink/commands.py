"""The command agent: validates downlink commands, runs them once, and reports a result for each.

Rules a cloud operator can rely on:

* Every command gets exactly one kind of answer on ``.../cmd/result``: ``ok`` with a result, or
  ``error`` with a reason that names the problem (malformed JSON, too large, unknown type, a bad field,
  a handler failure, a time-out). The result travels through the durable outbox like any uplink message.
* Commands are idempotent by ``id``: a repeated id (a QoS 1 redelivery or a cloud retry) is answered with
  the stored result, marked ``duplicate``, and the handler does not run again. Ids are remembered in
  SQLite across restarts (the most recent ``commands.remember`` of them).
* A bad or slow command never disturbs other work: each runs in its own named task under a concurrency
  limit and a time-out; a handler exception becomes an error result and is logged with its traceback.
* The inbound PUBACK is sent only after the command is recorded, so a crash cannot lose an accepted one.

Other agents add command types with :meth:`CommandAgent.register` (the tags agent adds label updates).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agents.core.config import CommandsConfig
from agents.core.errors import MessageTooLarge
from agents.core.supervisor import Agent
from agents.uplink.outbox import Outbox
from protocols.errors import ProtocolError
from protocols.mqtt_v1 import (
    COMMAND_RESULT,
    Command,
    CommandResult,
    decode_command,
    encode_data,
    format_validation_error,
    salvage_command_id,
)

log = logging.getLogger(__name__)


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class CommandHandler:
    args_model: type[BaseModel]
    run: Callable[[Any], Awaitable[Any]]
    description: str


class CommandLog:
    """SQLite record of command ids and their results (for idempotency). Confined to one thread."""

    def __init__(self, path: Path, remember: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS commands (n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
            " type TEXT, received_at REAL NOT NULL, result TEXT)"
        )
        self._remember = remember

    def lookup(self, command_id: str) -> tuple[bool, str | None]:
        row = self._db.execute("SELECT result FROM commands WHERE id = ?", (command_id,)).fetchone()
        return (row is not None, row[0] if row else None)

    def record_received(self, command_id: str, ctype: str) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO commands (id, type, received_at) VALUES (?, ?, ?)", (command_id, ctype, time.time())
        )
        self._db.execute("DELETE FROM commands WHERE n <= (SELECT MAX(n) FROM commands) - ?", (self._remember,))

    def record_result(self, command_id: str, result_json: str) -> None:
        self._db.execute("UPDATE commands SET result = ? WHERE id = ?", (result_json, command_id))

    def close(self) -> None:
        self._db.close()


class CommandAgent(Agent):
    """Runs downlink commands; see the module docstring."""

    def __init__(self, config: CommandsConfig, outbox: Outbox, log_path: Path, *, queue_size: int = 1000) -> None:
        super().__init__("commands")
        self.config = config
        self.outbox = outbox
        self._log_path = log_path
        self._queue: asyncio.Queue[tuple[bytes, Callable[[], None]]] = asyncio.Queue(maxsize=queue_size)
        self._handlers: dict[str, CommandHandler] = {}
        self._running: set[str] = set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="command-log")
        self.register("ping", NoArgs, self._ping, "Answer with pong and the gateway's clock.")

    def register(
        self, ctype: str, args_model: type[BaseModel], run: Callable[[Any], Awaitable[Any]], description: str
    ) -> None:
        """Add a command type; ``run`` receives the validated ``args_model`` instance."""
        if ctype in self._handlers:
            raise ValueError(f"command type {ctype!r} is already registered")
        self._handlers[ctype] = CommandHandler(args_model, run, description)

    @property
    def command_types(self) -> list[str]:
        return sorted(self._handlers)

    def submit(self, payload: bytes, send_puback: Callable[[], None]) -> None:
        """Queue a raw command (called on the event loop by the uplink agent)."""
        try:
            self._queue.put_nowait((payload, send_puback))
        except asyncio.QueueFull:
            # Do not ack: the broker keeps the command and redelivers it once we have caught up.
            self.health.count("commands_deferred_busy")
            log.warning("command queue full; leaving a command unacknowledged for redelivery")

    async def _ping(self, _args: NoArgs) -> dict[str, Any]:
        return {"pong": True, "ts": round(time.time(), 3)}

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(self) -> None:
        command_log = await self._db(CommandLog, self._log_path, self.config.remember)
        limit = asyncio.Semaphore(self.config.max_concurrent)
        try:
            async with asyncio.TaskGroup() as group:
                n = 0
                while True:
                    payload, send_puback = await self._queue.get()
                    n += 1
                    await limit.acquire()
                    task = group.create_task(
                        self._handle_isolated(command_log, payload, send_puback), name=f"commands:handle-{n}"
                    )
                    task.add_done_callback(lambda _t: limit.release())
        finally:
            await self._db(command_log.close)

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True)

    async def _handle_isolated(self, command_log: CommandLog, payload: bytes, send_puback: Callable[[], None]) -> None:
        """Handle one command; an unexpected failure is logged and counted, never spread to the others."""
        try:
            await self._handle(command_log, payload, send_puback)
        except Exception:  # noqa: BLE001 - isolation boundary; logged with traceback and counted
            self.health.count("commands_internal_errors")
            log.exception("internal error while handling a command; other commands continue")

    async def _handle(self, command_log: CommandLog, payload: bytes, send_puback: Callable[[], None]) -> None:
        max_bytes = int(self.config.max_bytes)
        try:
            command = decode_command(payload, max_bytes=max_bytes)
        except ProtocolError as exc:
            cid, ctype = salvage_command_id(payload) if len(payload) <= max_bytes else (None, None)
            await self._answer(None, CommandResult(command_id=cid, type=ctype, status="error", reason=str(exc)))
            send_puback()
            self.health.count("commands_invalid")
            return
        if command.id in self._running:
            send_puback()  # the first delivery is still running and will answer
            self.health.count("commands_duplicate")
            return
        # Claim the id before the first await, so two close deliveries cannot both run the handler.
        self._running.add(command.id)
        try:
            seen, stored = await self._db(command_log.lookup, command.id)
            if seen and stored is not None:
                previous = CommandResult.model_validate_json(stored)
                await self._answer(None, previous.model_copy(update={"duplicate": True}))
                send_puback()
                self.health.count("commands_duplicate")
                return
            await self._db(command_log.record_received, command.id, command.type)
            send_puback()
            result = await self._execute(command)
            await self._answer(command_log, result)
        finally:
            self._running.discard(command.id)

    async def _execute(self, command: Command) -> CommandResult:
        def error(reason: str) -> CommandResult:
            self.health.count("commands_failed")
            return CommandResult(command_id=command.id, type=command.type, status="error", reason=reason)

        handler = self._handlers.get(command.type)
        if handler is None:
            return error(f"unknown command type {command.type!r}; known types: {', '.join(self.command_types)}")
        try:
            args = handler.args_model.model_validate(command.args)
        except ValidationError as exc:
            return error(f"invalid args: {format_validation_error(exc)}")
        try:
            async with asyncio.timeout(self.config.timeout_s):
                value = await handler.run(args)
            encode_data(value)  # a handler must return JSON-serialisable data
        except TimeoutError:
            return error(f"timed out after {self.config.timeout_s}s")
        except Exception as exc:  # the handler's failure is the command's result, not the agent's crash
            # The reason goes back to the cloud in the result; the traceback is for a developer, at DEBUG.
            log.warning("command %s (%s) failed: %s: %s", command.id, command.type, type(exc).__name__, exc)
            log.debug("command %s traceback", command.id, exc_info=exc)
            return error(f"{type(exc).__name__}: {exc}")
        self.health.count("commands_ok")
        return CommandResult(command_id=command.id, type=command.type, status="ok", result=value)

    async def _answer(self, command_log: CommandLog | None, result: CommandResult) -> None:
        try:
            await self.outbox.put(COMMAND_RESULT, result.model_dump(mode="json"))
        except MessageTooLarge as exc:
            # The command ran but its result cannot travel: say so instead of leaving it unanswered.
            self.health.count("commands_failed")
            result = CommandResult(
                command_id=result.command_id, type=result.type, status="error", reason=f"result too large: {exc}"
            )
            await self.outbox.put(COMMAND_RESULT, result.model_dump(mode="json"))
        if command_log is not None and result.command_id is not None:
            await self._db(command_log.record_result, result.command_id, result.model_dump_json())
