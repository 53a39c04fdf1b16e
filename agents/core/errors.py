"""Exception tree for storeedge.

    StoreedgeError
     ├── ConfigError            the gateway YAML is invalid (message names the field and line)
     ├── OutboxError            the durable outbox refused a message
     │    └── MessageTooLarge   (also a ValueError) a single message exceeds the per-message limit
     └── GatewayLockedError     another gateway process already owns the state directory

Each class maps to one decision a caller makes: fix the config, shrink the message, stop the second
process. Protocol validation errors live in :mod:`protocols.errors` so the codecs stay importable alone.
"""

from __future__ import annotations


class StoreedgeError(Exception):
    """Base of every error storeedge raises on purpose."""


class ConfigError(StoreedgeError, ValueError):
    """The configuration file is invalid; ``str(err)`` lists each problem with field path and line."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class OutboxError(StoreedgeError):
    """The outbox could not accept a message."""


class MessageTooLarge(OutboxError, ValueError):
    """One message is larger than ``outbox.max_message_bytes``."""


class GatewayLockedError(StoreedgeError, RuntimeError):
    """Another process holds the gateway's state directory lock."""
