"""Jittered, capped exponential back-off.

Used for MQTT reconnects and agent restarts. The jitter matters in the field: after a store-wide power
cut or a broker restart, hundreds of gateways must not reconnect in lock-step. We use "equal jitter"
(half the delay fixed, half random) so a delay never collapses to zero and hammers a dead broker.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delay generator: ``initial * factor**attempt`` capped at ``maximum``, with equal jitter."""

    initial: float = 0.5
    maximum: float = 60.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random, repr=False)
    attempt: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ValueError("back-off needs 0 < initial <= maximum and factor >= 1")

    def next_delay(self) -> float:
        """Return the next delay in seconds and advance the attempt counter."""
        # Cap the exponent (and catch overflow) so days of retries cannot break the arithmetic.
        try:
            grown = self.initial * self.factor ** min(self.attempt, 64)
        except OverflowError:
            grown = self.maximum
        base = min(self.maximum, grown)
        self.attempt += 1
        return base / 2 + self.rng.uniform(0, base / 2)

    def reset(self) -> None:
        """Forget past failures (call after a connection or run proved healthy)."""
        self.attempt = 0
