"""The doctor's runner: loads the configuration, then runs every check and collects the results.

Machine checks run first and always (they need no configuration); the gateway's checks need a valid one. A
check that crashes is reported as a failed check with its error, so one bug never hides the other results.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from agents.core.errors import ConfigError
from agents.doctor.devices import check_bluetooth, check_cameras, check_tag_buses, check_tag_fleet
from agents.doctor.gateway import check_agents, read_json
from agents.doctor.network import check_broker, check_outbox
from agents.doctor.results import CheckResult, fail, ok
from agents.doctor.system import check_clock, check_cpu, check_disk, check_memory
from agents.gateway.config import GatewayConfig, load_config

__all__ = ["Doctor"]


class Doctor:
    """Runs every check for the gateway configured in ``config_path``."""

    def __init__(self, config_path: Path, *, timeout_s: float = 5.0) -> None:
        self.config_path = config_path
        self.timeout_s = timeout_s
        self.config: GatewayConfig | None = None
        self.health: dict[str, Any] | None = None

    async def run(self) -> list[CheckResult]:
        results = [self._check_config()]
        results += [check_clock(self.timeout_s), check_memory(), check_cpu()]
        config = self.config
        state_dir = config.state_dir if config else Path("/var/lib/storeedge")
        results.append(await asyncio.to_thread(check_disk, state_dir))
        if config is None:
            return results
        health = self.health = read_json(config.health_path)
        checks: list[tuple[str, Callable[[], Awaitable[list[CheckResult]]]]] = [
            ("bluetooth", lambda: check_bluetooth(config)),
            ("agents", lambda: check_agents(config, health)),
            ("broker", lambda: check_broker(config, self.timeout_s)),
            ("outbox", lambda: check_outbox(config)),
            ("cameras", lambda: check_cameras(config)),
            ("tag_buses", lambda: check_tag_buses(config, health)),
            ("tag_fleet", lambda: check_tag_fleet(config)),
        ]
        for name, check in checks:
            try:
                results += await check()
            except Exception as exc:  # noqa: BLE001 - reported as the check's result, with its type and message
                results.append(
                    fail(
                        name,
                        f"check crashed: {type(exc).__name__}: {exc}",
                        "report this as a bug with the support bundle (storeedge doctor --bundle FILE)",
                    )
                )
        return results

    def _check_config(self) -> CheckResult:
        try:
            self.config = load_config(self.config_path)
        except ConfigError as exc:
            first = str(exc).splitlines()[-1].strip()
            return fail(
                "config",
                f"configuration invalid: {first}",
                f"fix {self.config_path}, then run `storeedge config check {self.config_path}`",
            )
        return ok("config", f"{self.config_path} is valid", path=str(self.config_path))
