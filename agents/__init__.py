"""storeedge gateway agents.

The gateway is a set of named agents (uplink, commands, heartbeat, and later footfall and tags) run by
the supervisor in :mod:`agents.core.supervisor`. They share one durable outbox (:mod:`agents.uplink.outbox`)
through which everything that leaves the store goes.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("storeedge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
