"""Appearance re-identification and the store's day gallery: daily unique visitors across re-entries and doors.

Optional per store (``identity:`` in the gateway config; off unless configured). The pieces, bottom up:

* :mod:`.config`: :class:`IdentityConfig` (``type: omz | osnet``, the model file, thresholds and sampling);
* :mod:`.embedder`: :class:`ReidEmbedder`, BGR crops -> L2-normalised embeddings, shapes checked at load;
* :mod:`.sampling`: which confirmed tracks get a crop now (big enough, not cut by the edge, not covered);
* :mod:`.gallery`: :class:`DayGallery`, the day's people and sightings, and the rules in time and place;
* :mod:`.resolver`: :class:`StoreIdentity`, what a camera's worker thread calls.

How the match thresholds were chosen (dev footage only; PETS09, on which the acceptance figures are scored, was
not used): crops of the TUD-Campus and MOT17-mini ground truth and of the six people of the Intel one-by-one clip
(YOLOX-Nano boxes, whole, uncovered, >= 48 px), each person's crops split in time into two views of up to 3,
compared as :class:`DayGallery` compares them (camera-centred, below). 80 same-person pairs, 836 different-people
pairs:

==========  =====================================  ============================================  =========
model       same person (mean, 5th percentile)     different people (mean, 99th pct., maximum)   threshold
==========  =====================================  ============================================  =========
omz         0.83, 0.65                             -0.09, 0.31, 0.49                              0.50
osnet       0.81, 0.60                             -0.07, 0.44, 0.61                              0.65
==========  =====================================  ============================================  =========

The threshold is the lowest multiple of 0.05 above every different-people pair: a false merge hides a visitor
for the day, a missed match only counts one twice (today's behaviour), so the tail of the different-people
scores sets it, at a cost of a few missed matches on dev (recall 0.98 omz, 0.91 osnet). Without the centring the
same data gave overlapping tails (different people up to 0.67 omz, 0.90 osnet: the Intel clip's two men in black
seen from behind), which is why views are centred. On the Intel clip both models count its 6 people as 6
(baseline 6), also with the clip cut into two overlapping views as two cameras (7 omz, 8 osnet; 11 without
re-identification).

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
