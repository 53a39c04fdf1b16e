"""Appearance re-identification and the store's day gallery: daily unique visitors across re-entries and doors.

Optional per store (``identity:`` in the gateway config; off unless configured). The pieces, bottom up:

* :mod:`.config`: :class:`IdentityConfig` (``type: omz | osnet``, the model file, thresholds and sampling);
* :mod:`.embedder`: :class:`ReidEmbedder`, BGR crops -> L2-normalised embeddings, shapes checked at load;
* :mod:`.sampling`: which confirmed tracks get a crop now (big enough, not cut by the edge, not covered);
* :mod:`.gallery`: :class:`DayGallery`, the day's people and sightings, and the rules in time and place;
* :mod:`.resolver`: :class:`StoreIdentity`, what a camera's worker thread calls.

Privacy: embeddings are personal data while held. They live in the gallery's memory only, for one store day at
most (cleared at the day boundary, lost on restart by design); nothing here writes, logs, pickles or publishes
them, and :meth:`StoreIdentity.stats` gives counts only.
"""

from agents.footfall.identity.config import DEFAULT_MATCH_THRESHOLD, IdentityConfig, ReidType
from agents.footfall.identity.embedder import REID_MODELS, ReidEmbedder, ReidModelSpec
from agents.footfall.identity.gallery import DayGallery, Person, Resolution, Sighting
from agents.footfall.identity.resolver import StoreIdentity

__all__ = [
    "DEFAULT_MATCH_THRESHOLD",
    "REID_MODELS",
    "DayGallery",
    "IdentityConfig",
    "Person",
    "ReidEmbedder",
    "ReidModelSpec",
    "ReidType",
    "Resolution",
    "Sighting",
    "StoreIdentity",
]
