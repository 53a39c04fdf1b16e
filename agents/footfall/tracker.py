"""ByteTrack-class multi-object tracker: per-frame person boxes in, stable track ids out.

Why this shape (a pure, frame-driven vision stage: boxes in, tracks out, no I/O):

* **Two-stage association (the ByteTrack idea), newcomers last.** At a store entrance people occlude each other and
  boxes flicker: a half-hidden person is often still detected, only with a low score. Dropping low
  scores loses those frames and breaks tracks; keeping them everywhere breeds false tracks. So stage 1
  matches only confident detections (``score >= high_score``) against the confirmed tracks, tracked or
  lost; stage 2 offers the leftover low-score detections (``low_score <= score < high_score``) to the
  confirmed tracks that were seen on the previous frame and are still unmatched; stage 3 offers the
  leftover confident detections to tentative tracks. Low-score boxes can therefore *extend* a track but
  never *start* one, and an established identity is served before a newcomer: a tentative track started
  beside a briefly lost person cannot steal that person's next detection (measured on PETS09: ~10 %
  fewer id switches than one joint stage).
* **Tentative -> confirmed -> lost -> removed.** A new track (from an unmatched detection with
  ``score >= new_track_score``) is tentative until it has ``min_hits`` hits; a tentative track that misses
  a frame is dropped, so a one-frame false positive never gets an id. A confirmed track that misses is
  *lost*: it keeps predicting for up to ``max_lost`` frames and can be re-found by stage 1 (someone
  walking behind a pillar or another shopper keeps their id), then it is removed and its id is reported
  once by :meth:`ByteTracker.removed_ids` (the counter's cue that a visit ended).
* **Ids** are handed out only at confirmation, from a counter that never goes back: positive, stable,
  consecutive among confirmed tracks, never reused (not even after :meth:`ByteTracker.flush`).
* **Motion model.** A Kalman filter with constant velocity on ``(cx, cy, w, h)``. Width and height are
  filtered directly rather than aspect ratio, because people's widths flicker with their gait and pose
  and a direct ``w`` keeps that noise out of ``h``. Noise standard deviations are proportional to the
  box height (far, small people move fewer pixels per frame). ByteTrack's weights assume 30 fps video;
  entrance cameras are sampled at 7-15 fps, where walkers turn and stop more between frames, so the
  defaults allow twice the velocity noise and a little more detection noise (chosen on PETS09 and
  TUD-Campus public detections, also subsampled, jittered and re-thresholded: fewer id switches on all).
  A lost track's size velocity is zeroed so its box neither collapses nor balloons while it coasts.
* **Speed.** The tracker and the line counter must keep up with thousands of frames per second on cached
  detections, and with ~6 people per frame numpy call overhead, not arithmetic, is the cost. Because the
  process noise, measurement noise and initial covariance are diagonal per coordinate, the 8x8 Kalman
  covariance stays block-diagonal: four independent (position, velocity) 2x2 blocks. The filter
  therefore stores three numbers per coordinate (``pp``, ``pv``, ``vv``); prediction of all tracks is
  one 6x6 matrix product over that layout and the update a handful of element-wise operations - exactly
  the full filter, without per-track 8x8 matrix algebra. All per-track state lives in two arrays (floats
  and ints), so a frame is a few dozen vectorised operations and no Python loop over tracks. The
  Hungarian solver is skipped when the gated IoU matrix is already unambiguous (each track and each
  detection has at most one candidate), which is the usual case when people are apart.

Assignment cost: a pair is allowed only if its IoU exceeds the stage threshold, and the solver maximises
the summed *margin* ``IoU - threshold`` rather than the summed IoU. Maximising summed IoU would prefer two
poor matches over one good match plus one unmatched track; the margin form is the classic "leave it
unmatched at cost threshold" formulation and keeps the good match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from agents.footfall.types import Detections, FloatArray, IntArray, Tracks

__all__ = ["ByteTracker", "TrackMemory", "TrackerConfig", "iou_matrix"]

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Float state, (tracks, 6, 4): for each of the four coordinates (cx, cy, w, h) its filtered value, its
# velocity (per frame), the three distinct entries of its 2x2 (position, velocity) covariance block, and
# a sixth row holding the score of the last detection that updated the track (in column 0). One array
# for all of it keeps adding, dropping and gathering tracks to a single indexing operation.
_POS, _VEL, _PP, _PV, _VV, _SCORE_ROW = range(6)
_NROWS = 6

# Constant-velocity transition of one (track, coordinate) column of the float state, applied to all at
# once as ``T @ state``: x' = x + v, v' = v, and P' = F P F^T with F = [[1, 1], [0, 1]], which for the
# block [[pp, pv], [pv, vv]] is pp' = pp + 2 pv + vv, pv' = pv + vv, vv' = vv. The score row is kept.
_TRANSITION = np.array(
    [
        [1, 1, 0, 0, 0, 0],
        [0, 1, 0, 0, 0, 0],
        [0, 0, 1, 2, 1, 0],
        [0, 0, 0, 1, 1, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 1],
    ],
    np.float64,
)
# Box conversions as 4x4 linear maps (one matmul instead of several slices): ``cxcywh @ _TO_XYXY``.
_TO_XYXY = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [-0.5, 0, 0.5, 0], [0, -0.5, 0, 0.5]], np.float64)
_TO_CXCYWH = np.array([[0.5, 0, -1, 0], [0, 0.5, 0, -1], [0.5, 0, 1, 0], [0, 0.5, 0, 1]], np.float64)

# Integer state columns. ``_ID`` is 0 while a track is tentative.
_ID, _HITS, _MISSES, _FIRST, _LAST = range(5)
_NINT = 5

_NO_IDS: IntArray = np.zeros((0,), np.int64)
_NO_INDEX: npt.NDArray[np.intp] = np.zeros((0,), np.intp)
_NO_IOU: npt.NDArray[np.float64] = np.zeros((0, 0), np.float64)


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Tracker tunables. Frame counts are in *processed* frames, so scale them with the sampling rate.

    Score and IoU defaults follow ByteTrack's published settings and suit raw detector scores (YOLOX,
    SSD); for detections already cut at some score (e.g. MOT public detections at 0.5) raise
    ``high_score`` so stage 2 still gets the uncertain boxes. Noise defaults suit 7-30 fps.
    """

    high_score: float = 0.5
    """Detections at or above this take part in stage 1 (and may start tracks)."""
    low_score: float = 0.1
    """Detections below this are ignored; ``[low_score, high_score)`` feeds stage 2 only."""
    new_track_score: float = 0.6
    """An unmatched high-score detection starts a tentative track only at or above this score."""
    match_iou: float = 0.2
    """Stage 1 gate: a track and a high-score detection may pair only if their IoU exceeds this. Loose,
    because a lost track's predicted box drifts while it coasts."""
    low_match_iou: float = 0.5
    """Stage 2 gate: stricter, because low-score boxes are less reliable and only recently seen tracks
    take part."""
    tentative_match_iou: float = 0.3
    """Stage 3 gate, tentative tracks against the high-score detections left over: stricter than stage
    1, because a track one or two frames old has no reliable velocity yet."""
    min_hits: int = 2
    """Hits (including the first detection) before a tentative track is confirmed and gets an id; 1
    confirms on the first detection."""
    tentative_max_misses: int = 0
    """Frames a tentative track may miss before it is dropped (0: any miss drops it)."""
    max_lost: int = 30
    """Frames a confirmed track is remembered after its last hit; it can be re-found within that time."""
    position_noise: float = 1.0 / 20.0
    """Process noise std of the box position and size, per frame, as a fraction of the box height."""
    velocity_noise: float = 1.0 / 80.0
    """Process noise std of the velocities, per frame, as a fraction of the box height."""
    measurement_noise: float = 1.0 / 16.0
    """Detection noise std, as a fraction of the box height."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_score <= self.high_score <= self.new_track_score:
            raise ValueError(
                "scores must satisfy 0 <= low_score <= high_score <= new_track_score, got "
                f"{self.low_score}, {self.high_score}, {self.new_track_score}"
            )
        for name in ("match_iou", "low_match_iou", "tentative_match_iou"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.min_hits < 1:
            raise ValueError(f"min_hits must be >= 1, got {self.min_hits}")
        if self.tentative_max_misses < 0 or self.max_lost < 0:
            raise ValueError("tentative_max_misses and max_lost must be >= 0")
        for name in ("position_noise", "velocity_noise", "measurement_noise"):
            if getattr(self, name) <= 0.0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True)
class TrackMemory:
    """Confirmed tracks the tracker still holds (seen this frame or lost), for counters and diagnostics.

    All arrays are (K,) int64 and aligned: ``first_frame`` / ``last_frame`` are 1-based frame numbers
    (the tracker's :attr:`ByteTracker.frame` when the track was created / last matched), ``hits`` counts
    matched frames, ``lost`` is the number of frames since the last match (0: seen this frame).
    """

    ids: IntArray
    first_frame: IntArray
    last_frame: IntArray
    hits: IntArray
    lost: IntArray

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def iou_matrix(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> F64:
    """Pairwise IoU of ``xyxy`` boxes: ``a`` (M, 4) x ``b`` (N, 4) -> (M, N). Degenerate boxes give 0."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    # Zero-area pairs would divide 0 by 0; their IoU is 0 by definition.
    out: F64 = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0.0)
    return out


def _match(iou: F64, min_iou: float) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows and columns of the best one-to-one pairs with ``iou > min_iou`` (margin-maximising)."""
    feasible = iou > min_iou
    rows, cols = np.nonzero(feasible)
    if rows.size == 0:
        return _NO_INDEX, _NO_INDEX
    # Unambiguous: no row and no column appears twice among feasible pairs, so every feasible pair is in
    # the optimum and the Hungarian solver would return exactly these. Cheaper than calling it.
    # (``rows`` from ``nonzero`` is sorted, so a repeated row is a repeated neighbour.)
    if not (rows[1:] == rows[:-1]).any() and feasible.sum(axis=0).max() <= 1:
        return rows, cols
    # Infeasible pairs cost 0, the same as leaving both sides unmatched, so the rectangular solver's
    # forced pairings among them are harmless and dropped below.
    cost = np.where(feasible, min_iou - iou, 0.0)
    r, c = linear_sum_assignment(cost)
    keep = feasible[r, c]
    return r[keep], c[keep]


class ByteTracker:
    """ByteTrack-class tracker. Feed :meth:`update` one :class:`Detections` per frame, in order.

    ``update`` returns the **confirmed tracks matched on this frame** (lost tracks are not reported; a
    track confirmed on this frame is). Besides that:

    * :meth:`removed_ids`: confirmed ids whose track ended during the last ``update`` (lost for more than
      ``max_lost`` frames) - each id exactly once, never seen again;
    * :meth:`lost_ids`: confirmed ids currently lost but still remembered;
    * :meth:`memory`: per-track first/last frame, hits and frames lost of every confirmed track held;
    * :meth:`flush`: end every track (end of footage, camera switch) and return the confirmed ids ended;
    * :meth:`diagnostics`: counts of tracked, lost and tentative tracks and of ids issued.

    Not thread-safe; one instance per camera stream.
    """

    def __init__(self, *, config: TrackerConfig | None = None) -> None:
        self.config = config if config is not None else TrackerConfig()
        self._state: F64 = np.zeros((0, _NROWS, 4), np.float64)
        self._ints: npt.NDArray[np.int64] = np.zeros((0, _NINT), np.int64)
        self._frame = 0
        self._next_id = 1
        self._removed: IntArray = _NO_IDS
        # Process noise per frame as a multiple of h^2, laid out like the float state: position and
        # velocity variances grow, their covariance and the score do not.
        q = np.zeros((_NROWS, 4), np.float64)
        q[_PP] = self.config.position_noise**2
        q[_VV] = self.config.velocity_noise**2
        self._q = q
        self._r = self.config.measurement_noise**2

    @property
    def frame(self) -> int:
        """Number of frames processed; the 1-based number of the frame last passed to :meth:`update`."""
        return self._frame

    def update(self, dets: Detections) -> Tracks:
        """Advance one frame with this frame's detections (possibly none) and return the visible tracks."""
        cfg = self.config
        self._frame += 1
        frame = self._frame
        n_tracks = self._ints.shape[0]
        if n_tracks:
            self._predict()

        scores = dets.scores
        boxes = dets.xyxy
        # Empty or inverted boxes (and NaNs, which compare False) can never match (IoU 0 or NaN) and would
        # only churn tentative tracks and Kalman state: drop them up front.
        usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        high = np.flatnonzero(usable & (scores >= cfg.high_score))
        matched = np.zeros(n_tracks, np.bool_)
        used_high = np.zeros(high.size, np.bool_)

        if n_tracks and scores.size:
            low = np.flatnonzero(usable & (scores >= cfg.low_score) & (scores < cfg.high_score))
            track_boxes = self._state[:, _POS] @ _TO_XYXY
            tentative = self._ints[:, _ID] == 0
            any_tentative = bool(tentative.any())
            rows: list[npt.NDArray[np.intp]] = []
            cols: list[npt.NDArray[np.intp]] = []
            iou_high = _NO_IOU
            if high.size:
                # Stage 1: confident detections against confirmed tracks, tracked or lost. Tentative
                # tracks wait for stage 3, so a person's existing id beats a tentative track that was
                # started beside it while it was lost.
                iou_high = iou_matrix(track_boxes, boxes[high])
                if any_tentative:
                    confirmed = np.flatnonzero(~tentative)
                    r, c = _match(iou_high[confirmed], cfg.match_iou)
                    r = confirmed[r]
                else:
                    r, c = _match(iou_high, cfg.match_iou)
                matched[r] = True
                used_high[c] = True
                rows.append(r)
                cols.append(high[c])
            if low.size:
                # Stage 2: weak detections only extend tracks confirmed and seen on the previous frame;
                # a lost track re-found by a low-score box is too often a different person.
                cand = np.flatnonzero(~matched & ~tentative & (self._ints[:, _MISSES] == 0))
                if cand.size:
                    r, c = _match(iou_matrix(track_boxes[cand], boxes[low]), cfg.low_match_iou)
                    matched[cand[r]] = True
                    rows.append(cand[r])
                    cols.append(low[c])
            if any_tentative and high.size and not used_high.all():
                # Stage 3: tentative tracks take what is left of the confident detections.
                tent = np.flatnonzero(tentative)
                rest = np.flatnonzero(~used_high)
                r, c = _match(iou_high[np.ix_(tent, rest)], cfg.tentative_match_iou)
                matched[tent[r]] = True
                used_high[rest[c]] = True
                rows.append(tent[r])
                cols.append(high[rest[c]])
            if rows:
                t = rows[0] if len(rows) == 1 else np.concatenate(rows)
                if t.size:
                    d = cols[0] if len(cols) == 1 else np.concatenate(cols)
                    self._correct(t, boxes[d], scores[d])

        self._age(matched)

        new = high[~used_high]
        new = new[scores[new] >= cfg.new_track_score]
        if new.size:
            self._start(boxes[new], scores[new], frame)

        ints = self._ints
        visible = np.flatnonzero((ints[:, _MISSES] == 0) & (ints[:, _ID] > 0))
        if visible.size == 0:
            return Tracks.empty()
        state = self._state[visible]
        return Tracks(
            ints[visible, _ID],
            (state[:, _POS] @ _TO_XYXY).astype(np.float32),
            state[:, _SCORE_ROW, 0].astype(np.float32),
        )

    def removed_ids(self) -> IntArray:
        """Confirmed ids whose tracks were removed during the most recent :meth:`update` (or :meth:`flush`)."""
        return self._removed

    def lost_ids(self) -> IntArray:
        """Confirmed ids not matched on the last frame but still remembered (they may come back)."""
        ints = self._ints
        lost: IntArray = ints[(ints[:, _ID] > 0) & (ints[:, _MISSES] > 0), _ID]
        return lost.copy()

    def memory(self) -> TrackMemory:
        """First/last frame, hits and frames lost of every confirmed track the tracker holds."""
        ints = self._ints[self._ints[:, _ID] > 0]
        return TrackMemory(
            ids=ints[:, _ID].copy(),
            first_frame=ints[:, _FIRST].copy(),
            last_frame=ints[:, _LAST].copy(),
            hits=ints[:, _HITS].copy(),
            lost=ints[:, _MISSES].copy(),
        )

    def diagnostics(self) -> dict[str, int]:
        """A plain dict for the field CLI and health reports (``storeedge doctor`` and ``health.json``)."""
        ints = self._ints
        confirmed = ints[:, _ID] > 0
        lost = confirmed & (ints[:, _MISSES] > 0)
        return {
            "frames": self._frame,
            "tracked": int(np.count_nonzero(confirmed)) - int(np.count_nonzero(lost)),
            "lost": int(np.count_nonzero(lost)),
            "tentative": int(ints.shape[0] - np.count_nonzero(confirmed)),
            "ids_issued": self._next_id - 1,
        }

    def flush(self) -> IntArray:
        """End all tracks now; return (and make :meth:`removed_ids` return) the confirmed ids ended.

        The frame counter and id counter carry on, so ids are still never reused.
        """
        ids = self._ints[:, _ID]
        self._removed = ids[ids > 0].copy()
        self._state = self._state[:0]
        self._ints = self._ints[:0]
        return self._removed

    # Kalman filter -------------------------------------------------------------------------------

    def _predict(self) -> None:
        """Constant-velocity prediction of every track at once (state and covariance blocks)."""
        s = self._state
        coasting = self._ints[:, _MISSES] > 0
        if coasting.any():
            s[coasting, _VEL, 2:] = 0.0
        h = s[:, _POS, 3]
        s = _TRANSITION @ s
        s += (h * h)[:, None, None] * self._q
        # A shrinking box that coasts on its velocity must not turn inside out.
        np.maximum(s[:, _POS, 2:], 1.0, out=s[:, _POS, 2:])
        self._state = s

    def _correct(self, rows: npt.NDArray[np.intp], xyxy: FloatArray, scores: FloatArray) -> None:
        """Kalman update of tracks ``rows`` with detections ``xyxy`` (measurement H = [1, 0] per block)."""
        sub = self._state[rows]
        h = sub[:, _POS, 3:]
        r = (h * h) * self._r
        inv_innovation_var = 1.0 / (sub[:, _PP] + r)
        # Gains for (position, velocity) rows: K = [pp, pv] / (pp + r).
        gain = sub[:, _PP : _PV + 1] * inv_innovation_var[:, None]
        residual = xyxy @ _TO_CXCYWH - sub[:, _POS]
        sub[:, _POS : _VEL + 1] += gain * residual[:, None]
        # P' = (I - K H) P per block: vv first (it needs the old pv), then pp and pv scale by 1 - kp.
        sub[:, _VV] -= gain[:, 1] * sub[:, _PV]
        sub[:, _PP : _PV + 1] *= (r * inv_innovation_var)[:, None]
        sub[:, _SCORE_ROW, 0] = scores
        self._state[rows] = sub
        ints = self._ints
        ints[rows, _HITS] += 1
        ints[rows, _LAST] = self._frame

    # Track life cycle ----------------------------------------------------------------------------

    def _age(self, matched: BoolArray) -> None:
        """Count misses, confirm tentative tracks with enough hits, remove expired tracks."""
        if matched.size == 0:
            self._removed = _NO_IDS
            return
        cfg = self.config
        ints = self._ints
        ints[:, _MISSES] = np.where(matched, 0, ints[:, _MISSES] + 1)
        ids = ints[:, _ID]
        tentative = ids == 0
        confirm = tentative & matched & (ints[:, _HITS] >= cfg.min_hits)
        n_confirm = int(np.count_nonzero(confirm))
        if n_confirm:
            ints[confirm, _ID] = np.arange(self._next_id, self._next_id + n_confirm)
            self._next_id += n_confirm
            tentative &= ~confirm
        misses = ints[:, _MISSES]
        expired = np.where(tentative, misses > cfg.tentative_max_misses, misses > cfg.max_lost)
        if expired.any():
            gone = ids[expired]
            self._removed = gone[gone > 0].copy()
            keep = ~expired
            self._state = self._state[keep]
            self._ints = ints[keep]
        else:
            self._removed = _NO_IDS

    def _start(self, xyxy: FloatArray, scores: FloatArray, frame: int) -> None:
        """Start tentative tracks (confirmed at once when ``min_hits`` is 1) from unmatched detections."""
        n = xyxy.shape[0]
        cfg = self.config
        state = np.zeros((n, _NROWS, 4), np.float64)
        state[:, _POS] = xyxy @ _TO_CXCYWH
        h2 = np.square(state[:, _POS, 3:])
        # Position is known to about the detector's accuracy, velocity not at all: a wide prior lets the
        # first few matches set it.
        state[:, _PP] = (2.0 * cfg.position_noise) ** 2 * h2
        state[:, _VV] = (10.0 * cfg.velocity_noise) ** 2 * h2
        state[:, _SCORE_ROW, 0] = scores
        ints = np.zeros((n, _NINT), np.int64)
        ints[:, _HITS] = 1
        ints[:, _FIRST] = frame
        ints[:, _LAST] = frame
        if cfg.min_hits <= 1:
            ints[:, _ID] = np.arange(self._next_id, self._next_id + n)
            self._next_id += n
        self._state = np.concatenate((self._state, state))
        self._ints = np.concatenate((self._ints, ints))
