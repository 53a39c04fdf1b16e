"""MOT-format files (MOTChallenge ``gt.txt``, ``det.txt`` and tracker results) and tracking scores.

This package backs ``storeedge bench footfall``: read public detections, step a tracker over them, write its result in
MOT format, and score it against ground truth with MOTA, IDF1 and ID switches.

* :mod:`.files`: the file format, frame numbering (MOT frames are 1-based), ground-truth filtering, reading and
  writing, and stepping a tracker over the frames of a detection file;
* :mod:`.scoring`: CLEAR-MOT and identity scores against ground truth with py-motmetrics, an optional dependency
  imported only when scoring, so reading and writing files works without it.
"""

from agents.footfall.mot.files import (
    MOT_FIRST_FRAME,
    PEDESTRIAN_CLASS,
    GroundTruthFrame,
    MotFormatError,
    count_boxes,
    read_mot_detections,
    read_mot_ground_truth,
    read_mot_tracks,
    to_decoded_frames,
    to_decoded_index,
    to_mot_frame,
    track_detections,
    write_mot_tracks,
)
from agents.footfall.mot.scoring import IdBoxes, MotScores, score_tracks

__all__ = [
    "MOT_FIRST_FRAME",
    "PEDESTRIAN_CLASS",
    "GroundTruthFrame",
    "IdBoxes",
    "MotFormatError",
    "MotScores",
    "count_boxes",
    "read_mot_detections",
    "read_mot_ground_truth",
    "read_mot_tracks",
    "score_tracks",
    "to_decoded_frames",
    "to_decoded_index",
    "to_mot_frame",
    "track_detections",
    "write_mot_tracks",
]
