"""What a doctor check answers: ``pass``, ``warn`` or ``fail``, a one-line summary and a hint saying what to do.

A check that cannot tell on this machine (no thermal sensor, no NTP status) passes with a note instead of
warning forever. The worst result decides the exit code (0 all pass, 1 warnings, 2 failures).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["CheckResult", "Status", "exit_code", "fail", "ok", "report", "warn", "worst"]

Status = Literal["pass", "warn", "fail"]
_RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}


@dataclass
class CheckResult:
    name: str
    status: Status
    summary: str
    hint: str = ""
    detail: dict[str, Any] = field(default_factory=dict)


def ok(name: str, summary: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "pass", summary, "", detail)


def warn(name: str, summary: str, hint: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "warn", summary, hint, detail)


def fail(name: str, summary: str, hint: str, **detail: Any) -> CheckResult:
    return CheckResult(name, "fail", summary, hint, detail)


def worst(results: list[CheckResult]) -> Status:
    rank = max((_RANK[r.status] for r in results), default=0)
    return "fail" if rank == 2 else "warn" if rank == 1 else "pass"


def exit_code(results: list[CheckResult]) -> int:
    """0 all pass, 1 warnings, 2 failures."""
    return _RANK[worst(results)]


def report(results: list[CheckResult]) -> dict[str, Any]:
    """The results as one JSON-ready object: every check, and the worst status."""
    return {"checks": [asdict(result) for result in results], "worst": worst(results)}
