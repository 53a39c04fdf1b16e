"""The ``tags/state`` records: what the tag service reports to the cloud after an update ends.

One record per finished update (``applied`` or ``staged``) and per tag given up on (``failed``), written to
the outbox like every uplink message; the fields are documented in ``protocols/mqtt_v1.md`` (stream
``tags/state``). ``request`` echoes the ``tags.set_labels`` request with ``#item``, so the cloud can match each
record to the item that asked for it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agents.tags.store import TagRecord
from agents.uplink.outbox import Outbox

__all__ = ["RESULTS_STREAM", "publish_state"]

RESULTS_STREAM = "tags/state"


async def publish_state(
    outbox: Outbox,
    record: TagRecord,
    outcome: str,
    image_hash: str,
    request: str | None,
    *,
    bytes_sent: int = 0,
    seconds: float | None = None,
) -> None:
    """Put the ``tags/state`` record of ``record`` after an update that ended in ``outcome``."""
    payload = {
        "tag": record.address,
        "bus": record.bus,
        "state": outcome,
        "image_hash": image_hash,
        "applied_hash": record.applied_hash,
        "request": request,
        "show_at": _iso(record.show_at),
        "battery_mv": record.battery_mv,
        "signal": record.signal,
        "last_seen": record.last_seen,
        "last_error": record.last_error,
        "attempts": record.attempts,
        "bytes_sent": bytes_sent,
        "seconds": round(seconds, 3) if seconds is not None else None,
    }
    await outbox.put(RESULTS_STREAM, payload)


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None
