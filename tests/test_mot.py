"""MOT-format files and scoring (agents.footfall.mot), checked against the shared footage and published scores."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from agents.footfall.mot import (
    GroundTruthFrame,
    MotFormatError,
    MotScores,
    count_boxes,
    read_mot_detections,
    read_mot_ground_truth,
    read_mot_tracks,
    score_tracks,
    to_decoded_frames,
    to_decoded_index,
    to_mot_frame,
    track_detections,
    write_mot_tracks,
)
from agents.footfall.types import Detections, Tracks


def footage(shared_data: Path, *parts: str) -> Path:
    return shared_data.joinpath("footage", *parts)


def as_tracks(gt: Mapping[int, GroundTruthFrame]) -> dict[int, Tracks]:
    return {frame: Tracks(ids.copy(), xyxy.copy(), np.ones(ids.shape, np.float32)) for frame, (ids, xyxy) in gt.items()}


def raw_rows(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------------------------------------------------------------
# The acceptance check: TUD-Campus reference tracker result


def test_tud_campus_reference_tracker_reproduces_published_scores(shared_data: Path) -> None:
    gt_path = footage(shared_data, "tud_campus", "gt", "gt.txt")
    assert b"\r\n" in gt_path.read_bytes(), "the shared TUD ground truth is expected to have CRLF line endings"
    gt = read_mot_ground_truth(gt_path)
    predictions = read_mot_tracks(footage(shared_data, "tud_campus", "reference_tracker_output.txt"))
    assert count_boxes(gt) == 359
    assert count_boxes(predictions) == 222

    scores = score_tracks(gt, predictions)

    # Published: IDF1 55.8 %, MOTA 52.6 % (MOTChallenge devkit), FP 13, FN 150, IDs 7 (IoU 0.5).
    assert round(scores.idf1, 1) == 55.8
    assert round(scores.mota, 1) == 52.6
    assert (scores.fp, scores.fn, scores.id_switches) == (13, 150, 7)
    # py-motmetrics' own test values (fractions there, percentages here).
    assert scores.idf1 == pytest.approx(55.7659, abs=1e-3)
    assert scores.mota == pytest.approx(52.6462, abs=1e-3)
    assert scores.idp == pytest.approx(72.9730, abs=1e-3)
    assert scores.idr == pytest.approx(45.1253, abs=1e-3)
    assert scores.recall == pytest.approx(58.2173, abs=1e-3)
    assert scores.precision == pytest.approx(94.1441, abs=1e-3)
    assert scores.motp == pytest.approx(100 * (1 - 0.277201), abs=1e-3)  # mean IoU; devkit prints 72.3
    assert (scores.gt_ids, scores.mostly_tracked, scores.partially_tracked, scores.mostly_lost) == (8, 1, 6, 1)
    assert scores.fragmentations == 7
    assert (scores.num_frames, scores.gt_boxes, scores.predicted_boxes, scores.matches) == (71, 359, 222, 202)
    assert scores.summary().startswith("MOTA 52.6 % IDF1 55.8 % IDsw 7 FP 13 FN 150")
    as_dict = scores.as_dict()
    assert as_dict["idf1"] == scores.idf1 and as_dict["id_switches"] == 7 and as_dict["iou_threshold"] == 0.5
    assert set(as_dict) == set(MotScores.__dataclass_fields__)


def test_perfect_prediction_scores_100(shared_data: Path) -> None:
    gt = read_mot_ground_truth(footage(shared_data, "tud_campus", "gt", "gt.txt"))
    for predictions in (as_tracks(gt), gt):
        scores = score_tracks(gt, predictions)
        assert scores.mota == pytest.approx(100.0)
        assert scores.idf1 == pytest.approx(100.0)
        assert scores.motp == pytest.approx(100.0)
        assert (scores.id_switches, scores.fp, scores.fn, scores.matches) == (0, 0, 0, 359)
        assert scores.mostly_tracked == scores.gt_ids == 8


def test_swapping_two_ids_mid_sequence_costs_two_switches() -> None:
    a = (0.0, 0.0, 10.0, 20.0)
    b = (100.0, 0.0, 110.0, 20.0)
    gt = {frame: GroundTruthFrame(np.array([1, 2]), np.array([a, b], np.float32)) for frame in range(1, 5)}
    predictions = {
        frame: Tracks(np.array([7, 8] if frame < 3 else [8, 7]), np.array([a, b], np.float32), np.ones(2, np.float32))
        for frame in range(1, 5)
    }
    scores = score_tracks(gt, predictions)
    assert scores.id_switches == 2
    assert (scores.fp, scores.fn) == (0, 0)
    assert scores.mota == pytest.approx(100 * (1 - 2 / 8))
    assert scores.idf1 == pytest.approx(50.0)


def test_one_relabelled_track_on_real_ground_truth_is_one_switch(shared_data: Path) -> None:
    gt = read_mot_ground_truth(footage(shared_data, "tud_campus", "gt", "gt.txt"))
    predictions = as_tracks(gt)
    target = int(predictions[1].ids[0])
    frames_with_target = sorted(frame for frame, tracks in predictions.items() if target in tracks.ids)
    cut = frames_with_target[len(frames_with_target) // 2]
    for frame in frames_with_target:
        if frame >= cut:
            predictions[frame].ids[predictions[frame].ids == target] = 1000  # a new id for the second half
    scores = score_tracks(gt, predictions)
    assert scores.id_switches == 1
    assert (scores.fp, scores.fn) == (0, 0)
    assert scores.mota == pytest.approx(100 * (1 - 1 / 359))
    assert scores.idf1 < 100.0


def test_iou_threshold_decides_matches() -> None:
    gt = {1: GroundTruthFrame(np.array([1]), np.array([[0, 0, 10, 10]], np.float32))}
    half = {1: Tracks(np.array([5]), np.array([[0, 0, 10, 5]], np.float32), np.ones(1, np.float32))}  # IoU 0.5
    assert score_tracks(gt, half).matches == 1  # IoU equal to the threshold matches
    assert score_tracks(gt, half, iou_threshold=0.6).fp == 1
    with pytest.raises(ValueError, match="iou_threshold"):
        score_tracks(gt, half, iou_threshold=0.0)


def test_empty_predictions_are_all_misses_and_empty_ground_truth_is_undefined() -> None:
    gt = {3: GroundTruthFrame(np.array([1, 2]), np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32))}
    misses = score_tracks(gt, {})
    assert (misses.fn, misses.fp, misses.num_frames, misses.mota, misses.recall) == (2, 0, 1, 0.0, 0.0)
    only_fp = score_tracks({}, as_tracks(gt))
    assert only_fp.fp == 2
    assert np.isnan(only_fp.mota) and np.isnan(only_fp.recall)


def test_repeated_id_in_a_predicted_frame_is_rejected() -> None:
    box = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    predictions = {1: Tracks(np.array([4, 4]), box, np.ones(2, np.float32))}
    with pytest.raises(ValueError, match="prediction frame 1 repeats an id"):
        score_tracks({1: GroundTruthFrame(np.array([1, 2]), box)}, predictions)


# ---------------------------------------------------------------------------------------------------------------------
# Ground truth: flag rule and layouts


def test_pets09_flag_zero_rows_dropped_from_ground_truth_but_predictions_keep_them(shared_data: Path) -> None:
    path = footage(shared_data, "pets09_s2l1", "gt", "gt.txt")
    rows = raw_rows(path)
    assert len(rows) == 4650
    assert sum(float(row[6]) == 0 for row in rows) == 174

    gt = read_mot_ground_truth(path)
    assert count_boxes(gt) == 4650 - 174
    assert count_boxes(read_mot_ground_truth(path, drop_flag_zero=False)) == 4650
    assert len({int(i) for frame in gt.values() for i in frame.ids}) == 19
    assert min(gt) == 1 and max(gt) == 795

    predictions = read_mot_tracks(path)  # the same file as a tracker result: column 7 is a score there, never a filter
    assert count_boxes(predictions) == 4650
    scores = score_tracks(gt, predictions)
    # Every flag-0 box is a prediction with nothing left to match: exactly 174 false positives, nothing else lost.
    assert (scores.fp, scores.fn, scores.id_switches, scores.predicted_boxes) == (174, 0, 0, 4650)


def test_ground_truth_boxes_are_xyxy_and_frames_one_based(shared_data: Path) -> None:
    gt = read_mot_ground_truth(footage(shared_data, "tud_campus", "gt", "gt.txt"))
    ids, xyxy = gt[1]  # first line: 1,1,399,182,121,229,1,-1,-1,-1
    assert ids.dtype == np.int64 and xyxy.dtype == np.float32
    assert int(ids[0]) == 1
    np.testing.assert_array_equal(xyxy[0], [399, 182, 399 + 121, 182 + 229])
    assert sorted(gt) == list(range(1, 72))


def test_mot17_mini_ground_truth_class_flag_and_visibility(shared_data: Path) -> None:
    sequences = sorted(footage(shared_data, "mot17_mini", "train").iterdir())
    assert len(sequences) == 7
    for sequence in sequences:
        path = sequence / "gt" / "gt.txt"
        rows = raw_rows(path)
        assert {len(row) for row in rows} == {9}
        pedestrians = [row for row in rows if int(row[7]) == 1 and float(row[6]) != 0]
        gt = read_mot_ground_truth(path)
        assert count_boxes(gt) == len(pedestrians), sequence.name
        assert count_boxes(read_mot_ground_truth(path, drop_flag_zero=False, classes=None)) == len(rows)
        frames = len(list((sequence / "img1").glob("*.jpg")))
        assert set(gt) <= set(range(1, frames + 1)), sequence.name

    path = footage(shared_data, "mot17_mini", "train", "MOT17-09-FRCNN", "gt", "gt.txt")
    rows = raw_rows(path)
    assert count_boxes(read_mot_ground_truth(path)) == 24
    distractors = read_mot_ground_truth(path, drop_flag_zero=False, classes=[8, 9, 12])
    assert count_boxes(distractors) == sum(int(row[7]) in (8, 9, 12) for row in rows)
    visible = read_mot_ground_truth(path, min_visibility=0.5)
    assert count_boxes(visible) == sum(int(row[7]) == 1 and float(row[6]) != 0 and float(row[8]) >= 0.5 for row in rows)
    ids, xyxy = read_mot_ground_truth(path)[1]  # first line: 1,1,260,450,102,262,1,1,1.0
    assert int(ids[0]) == 1
    np.testing.assert_array_equal(xyxy[0], [260, 450, 362, 712])


def test_seven_and_six_column_ground_truth_with_crlf(tmp_path: Path) -> None:
    seven = tmp_path / "gt7.txt"
    seven.write_bytes(b"1,1,10,20,30,40,1\r\n1,2,50,20,30,40,0\r\n2,1,12,20,30,40,1\r\n\r\n")
    gt = read_mot_ground_truth(seven)
    assert sorted(gt) == [1, 2]
    assert gt[1].ids.tolist() == [1]
    np.testing.assert_array_equal(gt[2].xyxy, [[12, 20, 42, 60]])
    assert count_boxes(read_mot_ground_truth(seven, drop_flag_zero=False)) == 3

    six = tmp_path / "gt6.txt"
    six.write_text("3 4 1.5 2.5 10 10\n3 5 20 2.5 10 10\n")  # whitespace separated, no flag column
    gt6 = read_mot_ground_truth(six)
    assert gt6[3].ids.tolist() == [4, 5]
    np.testing.assert_allclose(gt6[3].xyxy[0], [1.5, 2.5, 11.5, 12.5])


# ---------------------------------------------------------------------------------------------------------------------
# Detections and frame numbering


def test_pets09_public_detections(shared_data: Path) -> None:
    path = footage(shared_data, "pets09_s2l1", "det", "det.txt")
    detections = read_mot_detections(path)
    assert count_boxes(detections) == 4359
    assert min(detections) == 1  # MOT frames are 1-based
    assert max(detections) == 795
    first = detections[1]  # first line: 1,-1,649.441,231.502,44.417,86.13,0.995474,-1,-1,-1
    assert first.xyxy.dtype == np.float32 and first.scores.dtype == np.float32
    np.testing.assert_allclose(first.xyxy[0], [649.441, 231.502, 649.441 + 44.417, 231.502 + 86.13], rtol=1e-6)
    assert float(first.scores[0]) == pytest.approx(0.995474)

    scores = [float(row[6]) for row in raw_rows(path)]
    confident = read_mot_detections(path, min_score=0.5)
    assert count_boxes(confident) == sum(score >= 0.5 for score in scores)
    assert all(float(d.scores.min()) >= 0.5 for d in confident.values())

    decoded = to_decoded_frames(detections)
    assert min(decoded) == 0 and max(decoded) == 794
    assert decoded[0] is detections[1]

    same = read_mot_detections(footage(shared_data, "mot15_public_det", "PETS09-S2L1", "det.txt"))
    assert count_boxes(same) == 4359
    assert count_boxes(read_mot_detections(footage(shared_data, "mot15_public_det", "TUD-Campus", "det.txt"))) == 321


def test_mot17_seven_column_detections(shared_data: Path) -> None:
    path = footage(shared_data, "mot17_mini", "train", "MOT17-09-FRCNN", "det", "det.txt")
    detections = read_mot_detections(path)
    assert count_boxes(detections) == len(raw_rows(path))


def test_reading_does_not_need_motmetrics() -> None:
    # motmetrics is a bench/test extra; an edge device reading or writing MOT files must not import it.
    code = "import sys, agents.footfall.mot; assert 'motmetrics' not in sys.modules and 'pandas' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1], timeout=60)


def test_frame_number_conversions() -> None:
    assert to_decoded_index(1) == 0
    assert to_mot_frame(0) == 1
    assert to_decoded_index(to_mot_frame(41)) == 41
    with pytest.raises(ValueError, match="start at 1"):
        to_decoded_index(0)
    with pytest.raises(ValueError, match="start at 0"):
        to_mot_frame(-1)


# ---------------------------------------------------------------------------------------------------------------------
# Tracker output: writing, reading, frame loop


def test_write_read_round_trip(tmp_path: Path) -> None:
    frames = {
        3: Tracks(
            np.array([9, 2]),
            np.array([[10.25, 20.5, 40.125, 80.0], [0.333, 1.0, 5.5, 9.75]], np.float32),
            np.array([0.9, 0.25], np.float32),
        ),
        1: Tracks(np.array([2]), np.array([[1, 2, 3, 4]], np.float32), np.array([1.0], np.float32)),
        2: Tracks.empty(),
    }
    path = tmp_path / "result.txt"
    write_mot_tracks(path, frames)
    lines = path.read_text().splitlines()
    assert lines[0] == "1,2,1,2,2,2,1,-1,-1,-1"
    assert [line.split(",")[:2] for line in lines] == [["1", "2"], ["3", "2"], ["3", "9"]]  # by frame, then id

    back = read_mot_tracks(path)
    assert sorted(back) == [1, 3]  # a frame without tracks writes nothing
    for frame, tracks in back.items():
        order = np.argsort(frames[frame].ids)
        np.testing.assert_array_equal(tracks.ids, frames[frame].ids[order])
        np.testing.assert_allclose(tracks.xyxy, frames[frame].xyxy[order], atol=1e-3)
        np.testing.assert_allclose(tracks.scores, frames[frame].scores[order], atol=1e-3)


def test_write_read_round_trip_of_real_tracks_scores_identically(shared_data: Path, tmp_path: Path) -> None:
    gt = read_mot_ground_truth(footage(shared_data, "tud_campus", "gt", "gt.txt"))
    predictions = read_mot_tracks(footage(shared_data, "tud_campus", "reference_tracker_output.txt"))
    path = tmp_path / "TUD-Campus.txt"
    write_mot_tracks(path, predictions)
    assert score_tracks(gt, read_mot_tracks(path)) == score_tracks(gt, predictions)


def test_write_refuses_frame_zero_and_repeated_ids(tmp_path: Path) -> None:
    one = Tracks(np.array([1]), np.array([[0, 0, 1, 1]], np.float32), np.ones(1, np.float32))
    with pytest.raises(ValueError, match="1-based"):
        write_mot_tracks(tmp_path / "zero.txt", {0: one})
    two = Tracks(np.array([1, 1]), np.zeros((2, 4), np.float32), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="repeats a track id"):
        write_mot_tracks(tmp_path / "repeat.txt", {1: two})


def test_six_column_tracker_result_gets_score_one(tmp_path: Path) -> None:
    path = tmp_path / "six.txt"
    path.write_text("1,1,0,0,10,10\n")
    tracks = read_mot_tracks(path)[1]
    assert tracks.scores.tolist() == [1.0]


def test_track_detections_steps_every_frame(shared_data: Path) -> None:
    detections = read_mot_detections(footage(shared_data, "tud_campus", "det", "det.txt"))
    sparse = {frame: dets for frame, dets in detections.items() if frame % 3}  # every third frame has none
    seen: list[int] = []

    def tracker_update(dets: Detections) -> Tracks:
        seen.append(len(dets))
        ids = np.arange(len(dets), dtype=np.int64) + 1
        return Tracks(ids, dets.xyxy, dets.scores)

    tracks = track_detections(tracker_update, sparse, 71)
    assert sorted(tracks) == list(range(1, 72))
    assert seen == [len(sparse.get(frame, Detections.empty())) for frame in range(1, 72)]
    assert seen[2] == 0  # frame 3 had no detections but still stepped the tracker
    np.testing.assert_array_equal(tracks[1].xyxy, detections[1].xyxy)

    with pytest.raises(ValueError, match="1-based"):
        track_detections(tracker_update, to_decoded_frames(detections), 71)
    with pytest.raises(ValueError, match="outside"):
        track_detections(tracker_update, detections, 70)


# ---------------------------------------------------------------------------------------------------------------------
# Malformed files


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("1,1,0,0,10,10,1,1,1\n1,2,0,0,10,10,1,1,x\n", 2, "column 9 is not a number: 'x'"),
        ("1,1,0,0,10,10,1,1,1\n\n1,2,0,0,10,10,1,1\n", 3, "8 columns, but line 1 has 9"),
        ("1,1,0,0,10\n", 1, "5 columns"),
        ("0,1,0,0,10,10,1,1,1\n", 1, "MOT frames are 1-based"),
        ("1,1,0,0,10,10,1,1,1\n1.5,2,0,0,10,10,1,1,1\n", 2, "frame (column 1) is not an integer"),
        ("1,1,0,0,10,10,1,1,1\n1,1,5,5,10,10,1,1,1\n", 2, "id 1 appears twice in frame 1"),
        ("1,1,0,0,10,10,1,1,1\n2,1,0,0,-10,10,1,1,1\n", 2, "width or height"),
        ("1,1,0,0,10,10,1,1,1\n2,1,nan,0,10,10,1,1,1\n", 2, "not finite"),
        ("1,1,0,0,10,10,1,1,1\n2,1,0,0,10,10,1,1,\n", 2, "column 9 is not a number: ''"),
    ],
)
def test_malformed_ground_truth_names_file_and_line(tmp_path: Path, content: str, line: int, problem: str) -> None:
    path = tmp_path / "gt.txt"
    path.write_text(content)
    with pytest.raises(MotFormatError) as caught:
        read_mot_ground_truth(path)
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert problem in str(caught.value)
    assert caught.value.path == path and caught.value.line == line


def test_malformed_detections_and_tracks_name_the_line(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,10,0.9\n1,-1,0,0,10,10\n")
    with pytest.raises(MotFormatError, match=r"det\.txt:2: 6 columns, but line 1 has 7"):
        read_mot_detections(det)
    short = tmp_path / "short.txt"
    short.write_text("1,-1,0,0,10,10\n")
    with pytest.raises(MotFormatError, match=r"short\.txt:1: 6 columns, but a MOT detection file has 7, 8, 9, 10"):
        read_mot_detections(short)
    tracks = tmp_path / "res.txt"
    tracks.write_text("1,3,0,0,10,10,-1,-1,-1,-1\r\n2,3,0,0,10,10,-1,-1,-1,-1\r\n2,3,1,1,10,10,-1,-1,-1,-1\r\n")
    with pytest.raises(MotFormatError, match=r"res\.txt:3: id 3 appears twice in frame 2"):
        read_mot_tracks(tracks)
