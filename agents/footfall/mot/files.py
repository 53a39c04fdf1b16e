"""MOT-format files (MOTChallenge ``gt.txt``, ``det.txt`` and tracker results): reading, writing, frame numbering.

File format
    One box per line, comma separated (whitespace separated is accepted too), CRLF or LF line endings, an optional
    UTF-8 byte-order mark; blank lines are skipped. The first six columns are always ``frame, id, x, y, w, h`` with
    ``(x, y)`` the top-left corner in pixels. Readers return ``xyxy`` boxes (``x, y, x + w, y + h``) as float32, like
    :class:`~agents.footfall.types.Detections`. The remaining columns depend on the file:

    ============================  ==============================================================================
    file                          columns
    ============================  ==============================================================================
    MOT15 ``gt.txt``              10: ``frame, id, x, y, w, h, flag, wx, wy, wz`` (``wx..wz`` world coordinates)
    MOT16/17/20 ``gt.txt``        9: ``frame, id, x, y, w, h, flag, class, visibility``
    short ``gt.txt`` variants     7: ``frame, id, x, y, w, h, flag``; 6: no flag (every row counts)
    ``det.txt``                   7 to 10: ``frame, -1, x, y, w, h, score[, -1, -1, -1]``
    tracker result                6 to 10: ``frame, id, x, y, w, h[, score, -1, -1, -1]``
    ============================  ==============================================================================

    Every line of a file must have the same number of columns. A malformed line raises :class:`MotFormatError`, a
    ``ValueError`` whose message starts with ``path:line:``.

Frame numbering
    MOT files number frames from **1**, and every mapping in this module is keyed by that MOT frame number. Decoded
    video frames are 0-based: **MOT frame N is decoded frame N - 1** (checked on PETS09-S2L1 by overlaying the ground
    truth), and ``img1/000001.jpg`` is MOT frame 1. :func:`to_decoded_index` / :func:`to_mot_frame` convert, and
    :func:`to_decoded_frames` re-keys a whole mapping. Readers reject frame 0 and the writer refuses to write it,
    because a file shifted by one frame still parses and silently costs most of the score.

Ground-truth filtering (TrackEval's rule)
    The ``flag`` column (column 7) of a ground-truth file marks a box as considered (non-zero) or ignored (0). As in
    TrackEval's MOT15 evaluation, :func:`read_mot_ground_truth` drops the ground-truth rows whose flag is 0, while
    predictions are all kept: a prediction on an ignored person counts as a false positive. On PETS09-S2L1 this drops
    174 of 4,650 rows. The shared-data notes show why the choice must be stated: with the devkit's reference result,
    all rows give MOTA 85.0 % and this rule 82.9 %. For 9-column MOT16/17 files, ground truth is further restricted to
    ``classes`` (default: class 1, pedestrian), which is TrackEval's ground-truth filter for those benchmarks. TrackEval
    additionally removes predictions that match distractor classes (static person, reflection, ...) in MOT16/17; that
    step is not implemented here, so MOT17 scores can be slightly lower than TrackEval's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from agents.footfall.types import Detections, FloatArray, IntArray, Tracks

MOT_FIRST_FRAME = 1
"""The number of the first frame in MOT files (decoded video frame 0)."""

PEDESTRIAN_CLASS = 1
"""MOT16/17/20 ground-truth class of a pedestrian."""

_Float64Array = npt.NDArray[np.float64]
_T = TypeVar("_T")

# Column layouts by number of columns; 0-based column indices, None where the layout lacks the column.
_GT_FLAG_COLUMN = {6: None, 7: 6, 9: 6, 10: 6}
_GT_CLASS_COLUMN = {6: None, 7: None, 9: 7, 10: None}
_GT_VISIBILITY_COLUMN = {6: None, 7: None, 9: 8, 10: None}
_DET_COLUMNS = (7, 8, 9, 10)
_TRACK_COLUMNS = (6, 7, 8, 9, 10)
_SCORE_COLUMN = 6


class MotFormatError(ValueError):
    """A MOT file that cannot be read; ``path`` and 1-based ``line`` say where."""

    def __init__(self, path: Path, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class GroundTruthFrame(NamedTuple):
    """Ground-truth boxes of one frame: ``ids`` (N,) int64 and ``xyxy`` (N, 4) float32.

    A tuple, so ``ids, xyxy = gt[frame]`` works; note that ``len()`` of it is 2, use ``len(frame.ids)`` for the boxes.
    """

    ids: IntArray
    xyxy: FloatArray


class _Boxes(Protocol):
    @property
    def xyxy(self) -> FloatArray: ...


# ---------------------------------------------------------------------------------------------------------------------
# Frame numbering


def to_decoded_index(mot_frame: int) -> int:
    """The 0-based decoded video frame index of 1-based MOT frame ``mot_frame``."""
    if mot_frame < MOT_FIRST_FRAME:
        raise ValueError(f"MOT frame numbers start at {MOT_FIRST_FRAME}, got {mot_frame}")
    return mot_frame - MOT_FIRST_FRAME


def to_mot_frame(decoded_index: int) -> int:
    """The 1-based MOT frame number of 0-based decoded video frame ``decoded_index``."""
    if decoded_index < 0:
        raise ValueError(f"decoded frame indices start at 0, got {decoded_index}")
    return decoded_index + MOT_FIRST_FRAME


def to_decoded_frames(frames: Mapping[int, _T]) -> dict[int, _T]:
    """Re-key a mapping from 1-based MOT frame numbers to 0-based decoded video frame indices."""
    return {to_decoded_index(frame): value for frame, value in frames.items()}


def count_boxes(frames: Mapping[int, _Boxes]) -> int:
    """Total number of boxes over all frames (of detections, tracks or ground truth)."""
    return sum(int(value.xyxy.shape[0]) for value in frames.values())


# ---------------------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class _Table:
    """The numeric rows of a MOT file, with the line number each came from."""

    path: Path
    values: _Float64Array  # (R, C)
    lines: IntArray  # (R,) 1-based line numbers

    @property
    def num_columns(self) -> int:
        return int(self.values.shape[1])

    def fail(self, row_mask: npt.ArrayLike, problem: str) -> None:
        """Raise :class:`MotFormatError` for the first row where ``row_mask`` is true, if any."""
        bad = np.flatnonzero(np.asarray(row_mask, np.bool_))
        if bad.size:
            row = int(bad[0])
            shown = ", ".join(_format_number(float(v), 6) for v in self.values[row])
            raise MotFormatError(self.path, int(self.lines[row]), f"{problem} (row: {shown})")


def _read_table(path: str | os.PathLike[str], allowed_columns: Collection[int], what: str) -> _Table:
    """Parse every non-blank line of ``path`` as numbers and check the frame, id and box columns."""
    path = Path(path)
    rows: list[list[float]] = []
    lines: list[int] = []
    num_columns = 0
    first_line = 0
    with path.open(encoding="utf-8-sig", newline=None) as handle:
        for line_number, raw in enumerate(handle, start=1):
            text = raw.strip()
            if not text:
                continue
            fields = [field.strip() for field in text.split(",")] if "," in text else text.split()
            if not num_columns:
                if len(fields) not in allowed_columns:
                    expected = ", ".join(str(n) for n in sorted(allowed_columns))
                    raise MotFormatError(
                        path, line_number, f"{len(fields)} columns, but a {what} file has {expected}: {text!r}"
                    )
                num_columns, first_line = len(fields), line_number
            elif len(fields) != num_columns:
                raise MotFormatError(
                    path,
                    line_number,
                    f"{len(fields)} columns, but line {first_line} has {num_columns}: {text!r}",
                )
            values: list[float] = []
            for column, field in enumerate(fields, start=1):
                try:
                    values.append(float(field))
                except ValueError:
                    raise MotFormatError(path, line_number, f"column {column} is not a number: {field!r}") from None
            rows.append(values)
            lines.append(line_number)
    table = _Table(
        path,
        np.asarray(rows, np.float64).reshape(len(rows), num_columns),
        np.asarray(lines, np.int64),
    )
    frame, ids, box = table.values[:, 0], table.values[:, 1], table.values[:, 2:6]
    table.fail(~np.isfinite(frame) | (frame != np.round(frame)), "frame (column 1) is not an integer")
    table.fail(
        frame < MOT_FIRST_FRAME,
        f"frame (column 1) below {MOT_FIRST_FRAME}: MOT frames are 1-based (MOT frame N = decoded frame N - 1)",
    )
    table.fail(~np.isfinite(ids) | (ids != np.round(ids)), "id (column 2) is not an integer")
    table.fail(~np.isfinite(box).all(axis=1), "box (columns 3-6) is not finite")
    table.fail((box[:, 2:] < 0).any(axis=1), "box width or height (columns 5-6) is negative")
    return table


def _xyxy(values: _Float64Array) -> FloatArray:
    x, y, w, h = values[:, 2], values[:, 3], values[:, 4], values[:, 5]
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)


def _check_unique_ids(table: _Table, keep: npt.NDArray[np.bool_]) -> None:
    seen: set[tuple[int, int]] = set()
    for row in np.flatnonzero(keep):
        key = (int(table.values[row, 0]), int(table.values[row, 1]))
        if key in seen:
            raise MotFormatError(table.path, int(table.lines[row]), f"id {key[1]} appears twice in frame {key[0]}")
        seen.add(key)


def _frame_groups(table: _Table, keep: npt.NDArray[np.bool_]) -> Iterator[tuple[int, npt.NDArray[np.intp]]]:
    """``(frame, row indices)`` for every frame with kept rows, frames ascending, rows in file order."""
    rows = np.flatnonzero(keep)
    frames = table.values[rows, 0].astype(np.int64)
    order = np.argsort(frames, kind="stable")
    rows, frames = rows[order], frames[order]
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if rows.size else np.zeros(0, np.intp)
    for start, stop in zip(starts, [*starts[1:], rows.size], strict=True):
        yield int(frames[start]), rows[start:stop]


def read_mot_detections(path: str | os.PathLike[str], *, min_score: float | None = None) -> dict[int, Detections]:
    """Read a MOT ``det.txt`` (``frame, -1, x, y, w, h, score, ...``; 7 to 10 columns).

    Returns detections keyed by **1-based MOT frame** (see :func:`to_decoded_frames` for decoded indices). Only frames
    with at least one kept detection appear; use ``result.get(frame, Detections.empty())``. ``min_score`` drops
    detections scoring below it; ``None`` keeps all.
    """
    table = _read_table(path, _DET_COLUMNS, "MOT detection")
    scores = table.values[:, _SCORE_COLUMN]
    table.fail(~np.isfinite(scores), "score (column 7) is not finite")
    keep = np.ones(scores.shape, np.bool_) if min_score is None else scores >= min_score
    return {
        frame: Detections(_xyxy(table.values[rows]), scores[rows].astype(np.float32))
        for frame, rows in _frame_groups(table, keep)
    }


def read_mot_ground_truth(
    path: str | os.PathLike[str],
    *,
    drop_flag_zero: bool = True,
    classes: Collection[int] | None = (PEDESTRIAN_CLASS,),
    min_visibility: float | None = None,
) -> dict[int, GroundTruthFrame]:
    """Read a MOT ``gt.txt``: 10-column MOT15, 9-column MOT16/17/20, or the 7- and 6-column variants.

    Returns ``(ids, xyxy)`` per **1-based MOT frame**, for frames with at least one kept box.

    * ``drop_flag_zero``: drop rows whose flag (column 7) is 0, TrackEval's rule (module docstring). ``False`` keeps
      every row, e.g. for line counts derived from all annotated boxes.
    * ``classes``: for 9-column files, keep only these classes (column 8; default pedestrians); ``None`` keeps all.
      Layouts without a class column ignore it.
    * ``min_visibility``: for 9-column files, drop rows whose visibility (column 9) is below it; ``None`` keeps all.

    Raises :class:`MotFormatError` for malformed lines and for an id that appears twice in one frame.
    """
    table = _read_table(path, _GT_FLAG_COLUMN.keys(), "MOT ground-truth")
    keep = np.ones(table.values.shape[0], np.bool_)
    flag_column = _GT_FLAG_COLUMN.get(table.num_columns)
    if drop_flag_zero and flag_column is not None:
        keep &= table.values[:, flag_column] != 0
    class_column = _GT_CLASS_COLUMN.get(table.num_columns)
    if classes is not None and class_column is not None:
        keep &= np.isin(table.values[:, class_column], np.asarray(list(classes), np.float64))
    visibility_column = _GT_VISIBILITY_COLUMN.get(table.num_columns)
    if min_visibility is not None and visibility_column is not None:
        keep &= table.values[:, visibility_column] >= min_visibility
    _check_unique_ids(table, keep)
    return {
        frame: GroundTruthFrame(table.values[rows, 1].astype(np.int64), _xyxy(table.values[rows]))
        for frame, rows in _frame_groups(table, keep)
    }


def read_mot_tracks(path: str | os.PathLike[str]) -> dict[int, Tracks]:
    """Read a tracker result in MOT format (``frame, id, x, y, w, h[, score, ...]``; 6 to 10 columns).

    Every row is kept: predictions are never filtered (module docstring). Returns :class:`Tracks` per **1-based MOT
    frame** that has rows; ``scores`` come from column 7 (MOT results often write -1 there), or 1.0 for 6-column files.
    Raises :class:`MotFormatError` for malformed lines and for an id that appears twice in one frame.
    """
    table = _read_table(path, _TRACK_COLUMNS, "MOT tracker result")
    keep = np.ones(table.values.shape[0], np.bool_)
    _check_unique_ids(table, keep)
    if table.num_columns > _SCORE_COLUMN:
        scores = table.values[:, _SCORE_COLUMN]
        table.fail(np.isnan(scores), "score (column 7) is not a number")
    else:
        scores = np.ones(table.values.shape[0], np.float64)
    return {
        frame: Tracks(
            table.values[rows, 1].astype(np.int64), _xyxy(table.values[rows]), scores[rows].astype(np.float32)
        )
        for frame, rows in _frame_groups(table, keep)
    }


# ---------------------------------------------------------------------------------------------------------------------
# Writing and tracking


def _format_number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def write_mot_tracks(path: str | os.PathLike[str], frames: Mapping[int, Tracks], *, decimals: int = 3) -> None:
    """Write tracks as a MOT tracker result: ``frame, id, x, y, w, h, score, -1, -1, -1``, one line per box.

    ``frames`` is keyed by **1-based MOT frame** (what :func:`track_detections` returns); rows are written by frame,
    then by id; frames without tracks write nothing. Coordinates and scores are rounded to ``decimals`` places. The file
    is written whole, with LF line endings, so :func:`read_mot_tracks` reads back the same tracks.
    """
    out: list[str] = []
    for frame in sorted(frames):
        if frame < MOT_FIRST_FRAME:
            raise ValueError(f"MOT frames are 1-based (MOT frame N = decoded frame N - 1), got frame {frame}")
        tracks = frames[frame]
        if len(np.unique(tracks.ids)) != len(tracks):
            raise ValueError(f"frame {frame} repeats a track id: {tracks.ids.tolist()}")
        boxes = tracks.xyxy.astype(np.float64)
        scores = tracks.scores.astype(np.float64)
        for row in np.argsort(tracks.ids, kind="stable"):
            x1, y1, x2, y2 = boxes[row]
            numbers = [x1, y1, x2 - x1, y2 - y1, scores[row]]
            fields = [str(frame), str(int(tracks.ids[row])), *(_format_number(float(v), decimals) for v in numbers)]
            out.append(",".join([*fields, "-1", "-1", "-1"]) + "\n")
    Path(path).write_text("".join(out), encoding="utf-8", newline="\n")


def track_detections(
    tracker_update: Callable[[Detections], Tracks],
    detections_by_frame: Mapping[int, Detections],
    num_frames: int,
) -> dict[int, Tracks]:
    """Step a tracker over MOT frames ``1..num_frames`` and collect what it reports.

    ``tracker_update`` is called once per frame, in order, with that frame's detections, or with empty detections for a
    frame that has none (a tracker must still age its tracks there). ``detections_by_frame`` is keyed by 1-based MOT
    frame, as :func:`read_mot_detections` returns; a key outside ``1..num_frames`` raises ``ValueError`` (usually a
    0-based mapping, or the wrong ``num_frames``) rather than being dropped silently. The result has every frame.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    last = MOT_FIRST_FRAME + num_frames - 1
    outside = sorted(frame for frame in detections_by_frame if not MOT_FIRST_FRAME <= frame <= last)
    if outside:
        raise ValueError(
            f"detections for frames {outside[:5]} lie outside MOT frames {MOT_FIRST_FRAME}..{last}; "
            "MOT frames are 1-based (MOT frame N = decoded frame N - 1)"
        )
    results: dict[int, Tracks] = {}
    for frame in range(MOT_FIRST_FRAME, last + 1):
        detections = detections_by_frame.get(frame)
        results[frame] = tracker_update(detections if detections is not None else Detections.empty())
    return results
