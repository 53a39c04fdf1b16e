"""storeedge gateway agents.

The gateway is a set of named agents (uplink, commands, heartbeat, footfall cameras, the tag service) run by
the supervisor in :mod:`agents.core.supervisor`. They share one durable outbox (:mod:`agents.uplink.outbox`)
through which everything that leaves the store goes.

``__version__`` is looked up on first use: importing :mod:`importlib.metadata` costs tens of milliseconds,
which ``storeedge --help`` should not pay.
"""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'agents' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("storeedge")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+unknown"
    globals()["__version__"] = found
    return found
