"""The tag service: desired label state in, converged tags out.

Flow::

    cloud command tags.set_labels ──► prepare_items (render, validate; worker thread)
                                   ──► TagStore rows (desired image + hash), committed before the answer
    per-bus scheduler ──► transport.send_image / display_image ──► tag confirms ──► row "applied"
                      ──► result on stream ``tags/state`` (image hash, battery, last seen, last error)

Why this shape:

* **Per-item results.** A batch of 400 price changes must not fail because item 17 has a negative price or
  names a tag that is not on this gateway: every item is validated and rendered on its own, and the command
  result lists each item as ``queued``, ``unchanged`` or ``error`` with the reason.
* **Skip-unchanged.** The desired image is identified by its content hash; a tag whose confirmed image has
  the same hash gets nothing sent, so re-sending a batch costs zero image bytes.
* **One scheduler per bus**, with priorities, bounded concurrency, retries with back-off and timed display
  (an image staged ahead, shown at ``show_at`` with one short command).
* **Frames never crash the agent.** Transport and codec errors are per-tag failures; anything else is a bug
  and crashes the agent so the supervisor restarts it (the desired state survives in SQLite).

Modules, bottom-up:

* :mod:`~agents.tags.service.commands`: the commands' arguments and the per-item validation of
  ``tags.set_labels`` (:func:`prepare_items`);
* :mod:`~agents.tags.service.state`: the ``tags/state`` records reported after each update;
* :mod:`~agents.tags.service.buses`: opening a serial or Bluetooth bus as a ``TagTransport``;
* :mod:`~agents.tags.service.scheduler`: one bus's update loop (priority, concurrency, retries, timed display);
* :mod:`~agents.tags.service.agent`: :class:`TagServiceAgent`, which ties them together and answers the
  commands ``tags.set_labels``, ``tags.led``, ``tags.ping`` and ``tags.status``.
"""

from agents.tags.service.agent import TagServiceAgent
from agents.tags.service.commands import LabelItem, PreparedItem, prepare_items
from agents.tags.service.state import RESULTS_STREAM

__all__ = ["RESULTS_STREAM", "LabelItem", "PreparedItem", "TagServiceAgent", "prepare_items"]
