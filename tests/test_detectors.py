"""Person detectors: real models on PETS09 (vtest) against ground truth, a synthetic YOLOv8 graph with known
boxes, a synthetic YOLOX head, load-time shape validation, and the letterbox / NMS / config helpers.

The synthetic YOLOv8 and YOLOX graphs (built here with ``onnx.helper``) return constant candidates plus a few
whose scores are *pixels of their input tensor*, so one test checks channel order (RGB / BGR), scaling (0..1 /
0..255), padding value (114) and placement of the letterbox (centred / top-left) as well as decoding, mapping
back to the frame, the class filter and NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from agents.footfall.detectors import (
    PAD_VALUE,
    Letterbox,
    ModelNotFoundError,
    ModelShapeError,
    PersonDetector,
    SsdConfig,
    SsdDetector,
    Yolov8Config,
    Yolov8Detector,
    YoloxConfig,
    YoloxDetector,
    box_iou,
    build_detector,
    letterbox,
    letterbox_params,
    nms,
    parse_detector_config,
    yolo_anchor_count,
)
from agents.footfall.types import Detections

Frame = npt.NDArray[np.uint8]
Boxes = npt.NDArray[np.float32]

VTEST_FRAMES = (0, 300)  # decoded indices; GT frame = index + 1


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def yolox_model(shared_data: Path) -> Path:
    return shared_data / "models" / "yolox_nano" / "yolox_nano.onnx"


@pytest.fixture(scope="module")
def ssd_model(shared_data: Path) -> Path:
    return shared_data / "models" / "ssdlite_person" / "ssdlite_person.onnx"


@pytest.fixture(scope="module")
def vtest_frames(shared_data: Path) -> dict[int, Frame]:
    """Decoded frames by 0-based index, read sequentially (seeking in MS-MPEG4 AVI is not frame-exact)."""
    cap = cv2.VideoCapture(str(shared_data / "footage" / "pets09_s2l1" / "vtest.avi"))
    assert cap.isOpened()
    frames: dict[int, Frame] = {}
    try:
        for index in range(max(VTEST_FRAMES) + 1):
            if index in VTEST_FRAMES:
                ok, frame = cap.read()
                assert ok, f"could not decode frame {index}"
                frames[index] = np.asarray(frame, np.uint8)
            else:
                assert cap.grab()
    finally:
        cap.release()
    return frames


@pytest.fixture(scope="module")
def vtest_gt(shared_data: Path) -> dict[int, Boxes]:
    """Considered (flag 1) ground-truth boxes as xyxy, keyed by 0-based decoded index."""
    rows = np.loadtxt(shared_data / "footage" / "pets09_s2l1" / "gt" / "gt.txt", delimiter=",", ndmin=2)
    out: dict[int, Boxes] = {}
    for index in VTEST_FRAMES:
        sel = rows[(rows[:, 0] == index + 1) & (rows[:, 6] == 1)]
        xywh = sel[:, 2:6].astype(np.float32)
        out[index] = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return out


@pytest.fixture(scope="module")
def yolox(yolox_model: Path) -> YoloxDetector:
    return YoloxDetector(yolox_model, threads=2)


@pytest.fixture(scope="module")
def ssd(ssd_model: Path) -> SsdDetector:
    return SsdDetector(ssd_model, threads=2)


def _matched(gt: Boxes, det: Detections, iou: float = 0.5) -> int:
    """Number of GT boxes with a detection of IoU > ``iou`` (one-to-one greedy by IoU is not needed here)."""
    if len(det) == 0 or gt.shape[0] == 0:
        return 0
    return int((box_iou(gt, det.xyxy).max(axis=1) > iou).sum())


def _assert_within(det: Detections, frame: Frame) -> None:
    h, w = frame.shape[:2]
    assert det.xyxy.dtype == np.float32 and det.scores.dtype == np.float32
    assert np.all(det.xyxy[:, [0, 1]] >= 0) and np.all(det.xyxy[:, 2] <= w) and np.all(det.xyxy[:, 3] <= h)
    assert np.all(det.xyxy[:, 2] >= det.xyxy[:, 0]) and np.all(det.xyxy[:, 3] >= det.xyxy[:, 1])
    assert np.all(np.diff(det.scores) <= 0), "detections are returned highest score first"


# ----------------------------------------------------------------------------------- real models, GT


@pytest.mark.parametrize("index", VTEST_FRAMES)
def test_yolox_finds_the_ground_truth_people(
    yolox: YoloxDetector, vtest_frames: dict[int, Frame], vtest_gt: dict[int, Boxes], index: int
) -> None:
    frame, gt = vtest_frames[index], vtest_gt[index]
    det = yolox.detect(frame)
    assert gt.shape[0] >= 3
    assert _matched(gt, det) >= 0.8 * gt.shape[0], (gt, det)
    assert len(det) <= gt.shape[0] + 3  # a few false positives (a sign, a cone) are known; not dozens
    assert np.all(det.scores >= yolox.score_threshold)
    _assert_within(det, frame)


@pytest.mark.parametrize("index", VTEST_FRAMES)
def test_ssd_finds_most_ground_truth_people(
    ssd: SsdDetector, vtest_frames: dict[int, Frame], vtest_gt: dict[int, Boxes], index: int
) -> None:
    frame, gt = vtest_frames[index], vtest_gt[index]
    det = ssd.detect(frame)
    assert _matched(gt, det) >= 0.5 * gt.shape[0], (gt, det)  # lower recall than YOLOX, by design of the model
    assert len(det) <= gt.shape[0] + 3
    assert np.all(det.scores >= ssd.score_threshold)
    _assert_within(det, frame)


def test_ssd_full_frame_input_agrees_with_pre_resized(ssd_model: Path, vtest_frames: dict[int, Frame]) -> None:
    full = SsdDetector(ssd_model, input_size=None)
    assert full.input_size is None
    frame = vtest_frames[300]
    a, b = full.detect(frame), SsdDetector(ssd_model).detect(frame)
    strong_a = a.xyxy[a.scores > 0.6]
    assert len(strong_a) >= 3
    assert np.all(box_iou(strong_a, b.xyxy).max(axis=1) > 0.8)  # same people, boxes within interpolation noise


def test_yolox_decoding_matches_a_reference_implementation(
    yolox_model: Path, yolox: YoloxDetector, vtest_frames: dict[int, Frame]
) -> None:
    """Straight from the model notes (section 1.1), with cv2.dnn.NMSBoxes as an independent NMS."""
    import onnxruntime as ort

    frame = vtest_frames[300]
    h, w = frame.shape[:2]
    r = min(416 / h, 416 / w)
    canvas = np.full((416, 416, 3), 114, np.uint8)
    canvas[: int(h * r), : int(w * r)] = cv2.resize(frame, (int(w * r), int(h * r)), interpolation=cv2.INTER_LINEAR)
    tensor = canvas.transpose(2, 0, 1)[None].astype(np.float32)
    session = ort.InferenceSession(str(yolox_model), providers=["CPUExecutionProvider"])
    out = session.run(None, {"images": tensor})[0][0]
    grids, strides = [], []
    for s in (8, 16, 32):
        ys, xs = np.mgrid[0 : 416 // s, 0 : 416 // s]
        grids.append(np.stack([xs.ravel(), ys.ravel()], 1))
        strides.append(np.full((xs.size, 1), s))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    xy = (out[:, :2] + grid) * stride
    wh = np.exp(out[:, 2:4]) * stride
    cls_scores = out[:, 4:5] * out[:, 5:]
    score = cls_scores[:, 0]
    keep = (score >= 0.3) & (cls_scores.argmax(axis=1) == 0)
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)[keep] / r
    score = score[keep]
    xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in boxes]
    kept = np.asarray(cv2.dnn.NMSBoxes(xywh, score.tolist(), 0.3, 0.45)).reshape(-1)
    ref_boxes = boxes[kept]
    ref_boxes[:, 0::2] = ref_boxes[:, 0::2].clip(0, w)
    ref_boxes[:, 1::2] = ref_boxes[:, 1::2].clip(0, h)
    order = np.argsort(-score[kept], kind="stable")

    det = yolox.detect(frame)
    assert len(det) == kept.size >= 6
    np.testing.assert_allclose(det.scores, score[kept][order], atol=1e-4)
    np.testing.assert_allclose(det.xyxy, ref_boxes[order], atol=0.05)


def test_detectors_handle_other_frame_sizes_and_views(
    yolox: YoloxDetector, ssd: SsdDetector, vtest_frames: dict[int, Frame]
) -> None:
    frame = vtest_frames[300]
    crop = frame[150:450, 100:700]  # a non-contiguous view, 600x300 (wider aspect)
    assert not crop.flags["C_CONTIGUOUS"]
    for detector in (yolox, ssd):
        det = detector.detect(crop)
        _assert_within(det, crop)
        assert len(det) >= 3
        small = np.asarray(cv2.resize(frame, (192, 144)), np.uint8)  # upscaled to the input by the letterbox
        _assert_within(detector.detect(small), small)
    exact = frame[100:516, 200:616]  # a view that needs no resize: used as it is, padding-free
    det = yolox.detect(exact)
    np.testing.assert_array_equal(yolox._input.tensor[0], exact.transpose(2, 0, 1).astype(np.float32))
    _assert_within(det, exact)
    # Back to the full frame after other sizes: the padding of the reused tensor must be rewritten.
    again = yolox.detect(frame)
    fresh_lb = letterbox(frame, (416, 416), centre=False)[0].transpose(2, 0, 1).astype(np.float32)
    np.testing.assert_array_equal(yolox._input.tensor[0], fresh_lb)
    _assert_within(again, frame)


def test_detect_rejects_frames_that_are_not_bgr_uint8(yolox: YoloxDetector, ssd: SsdDetector) -> None:
    for detector in (yolox, ssd):
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            detector.detect(np.zeros((64, 64), np.uint8))
        with pytest.raises(ValueError, match="float32"):
            detector.detect(np.zeros((64, 64, 3), np.float32))


def test_detectors_satisfy_the_interface(yolox: YoloxDetector, ssd: SsdDetector) -> None:
    class Cached:
        name = "cached"
        input_size = None

        def detect(self, frame_bgr: Frame) -> Detections:
            return Detections.empty()

    detectors: list[PersonDetector] = [yolox, ssd, Cached()]
    assert all(isinstance(d, PersonDetector) for d in detectors)
    assert yolox.name == "yolox:yolox_nano.onnx" and yolox.input_size == (416, 416)
    assert ssd.name == "ssd:ssdlite_person.onnx" and ssd.input_size == (300, 300)


# ------------------------------------------------------------------------------ synthetic graphs

STUB_INPUT = 64  # square model input; N = 8*8 + 4*4 + 2*2 = 84 cells
STUB_CELLS = 84


Tap = tuple[tuple[int, int, int], int, int, int, float]
"""``(output index, input channel, y, x, scale)``: that output element is ``scale * images[0, c, y, x]``."""


def _stub_model(
    path: Path, static: npt.NDArray[np.float32], taps: Sequence[Tap] = (), *, dynamic: bool = False
) -> Path:
    """A ``[1, 3, 64, 64]`` float graph whose output is ``static`` plus, at each tap, an input pixel.

    Every tap is ``Slice`` (one pixel) -> ``Reshape`` to rank 3 -> ``Mul`` by a scaled one-hot mask -> ``Add``,
    so a test can put known boxes in the output and still see what the detector wrote into the input tensor.
    ``dynamic`` declares the input as ``[batch, 3, height, width]`` (like ``yolo export dynamic=True``).
    """
    inits = [
        numpy_helper.from_array(static.astype(np.float32), "static"),
        numpy_helper.from_array(np.array([1, 1, 1], np.int64), "rank3"),
    ]
    nodes = []
    total = "static"
    for k, (index, channel, y, x, scale) in enumerate(taps):
        mask = np.zeros(static.shape, np.float32)
        mask[index] = scale
        inits += [
            numpy_helper.from_array(np.array([0, channel, y, x], np.int64), f"start{k}"),
            numpy_helper.from_array(np.array([1, channel + 1, y + 1, x + 1], np.int64), f"end{k}"),
            numpy_helper.from_array(mask, f"mask{k}"),
        ]
        nodes += [
            helper.make_node("Slice", ["images", f"start{k}", f"end{k}"], [f"pixel{k}"]),
            helper.make_node("Reshape", [f"pixel{k}", "rank3"], [f"value{k}"]),
            helper.make_node("Mul", [f"value{k}", f"mask{k}"], [f"term{k}"]),
            helper.make_node("Add", [total, f"term{k}"], [f"sum{k}"]),
        ]
        total = f"sum{k}"
    nodes.append(helper.make_node("Identity", [total], ["output0"]))
    input_shape: list[int | str] = ["batch", 3, "height", "width"] if dynamic else [1, 3, STUB_INPUT, STUB_INPUT]
    output_shape: list[int | str] = ["batch", static.shape[1], "anchors"] if dynamic else list(static.shape)
    graph = helper.make_graph(
        nodes,
        "detector_stub",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _yolov8_stub(path: Path, *, dynamic: bool = False) -> Path:
    """Ultralytics layout ``[1, 4 + 2, 84]``: columns cx, cy, w, h (input pixels), score person, score class 1.

    F (column 82) and G (83) take their class scores from input pixels: F from channels 0, 1 (R, G) at
    (y=32, x=32), inside the letterboxed frame; G from the same channels at (0, 0), which is padding.
    """
    cols = np.zeros((STUB_CELLS, 6), np.float32)
    cols[0] = (16, 32, 16, 16, 0.9, 0.1)  # A: kept
    cols[1] = (17, 32, 16, 16, 0.8, 0.1)  # B: IoU 0.88 with A -> suppressed by NMS
    cols[2] = (48, 24, 8, 8, 0.6, 0.95)  # C: person score high but class 1 is better -> not a person
    cols[3] = (48, 40, 8, 8, 0.2, 0.0)  # D: below the threshold
    cols[4] = (60, 20, 16, 8, 0.5, 0.0)  # E: sticks out of the right edge -> clipped
    cols[82, :4] = (32, 40, 8, 8)  # F
    cols[83, :4] = (8, 32, 8, 8)  # G
    taps: list[Tap] = [((0, 4, 82), 0, 32, 32, 1.0), ((0, 5, 82), 1, 32, 32, 1.0)]
    taps += [((0, 4, 83), 0, 0, 0, 1.0), ((0, 5, 83), 1, 0, 0, 1.0)]
    return _stub_model(path, cols.T[None].copy(), taps, dynamic=dynamic)


def _yolox_stub(path: Path) -> Path:
    """YOLOX raw head ``[1, 84, 5 + 2]``: rows cx, cy (grid offsets), log w, log h, obj, person, class 1.

    Rows: 0..63 stride 8 (8x8 grid), 64..79 stride 16 (4x4), 80..83 stride 32 (2x2), each row-major.
    P (row 70 = stride 16, col 2, row 1) takes its objectness from channel 2 at (0, 0): red in BGR order,
    inside the top-left letterboxed frame. Q (row 0) takes it from channel 0 at (63, 63), which is padding.
    """
    rows = np.zeros((STUB_CELLS, 7), np.float32)
    rows[70] = (0.5, 0.5, np.log(2), np.log(2), 0, 0.9, 0.1)  # P: centre (40, 24), 32x32 in input pixels
    rows[69] = (1.5, 0.5, np.log(2), np.log(2), 1.0, 0.5, 0.0)  # same box as P, score 0.5 -> NMS
    rows[0] = (0.5, 0.5, 0, 0, 0, 1.0, 0.0)  # Q: centre (4, 4), 8x8
    rows[83] = (0, 0, 0, 0, 0.9, 0.5, 0.6)  # class 1 is better -> not a person
    rows[80] = (0.5, 0.5, 0, 0, 0.2, 1.0, 0.0)  # score 0.2 -> below the threshold
    taps: list[Tap] = [((0, 70, 4), 2, 0, 0, 1 / 255), ((0, 0, 4), 0, 63, 63, 1 / 255)]
    return _stub_model(path, rows[None].copy(), taps)


@pytest.fixture(scope="module")
def yolov8_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _yolov8_stub(tmp_path_factory.mktemp("stubs") / "yolov8_stub.onnx")


@pytest.fixture(scope="module")
def yolox_stub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _yolox_stub(tmp_path_factory.mktemp("stubs") / "yolox_stub.onnx")


def _solid(bgr: tuple[int, int, int], h: int, w: int) -> Frame:
    frame = np.empty((h, w, 3), np.uint8)
    frame[...] = bgr
    return frame


def test_yolox_stub_decodes_grids_strides_and_the_top_left_letterbox(yolox_stub: Path) -> None:
    det = YoloxDetector(yolox_stub)
    assert det.input_size == (STUB_INPUT, STUB_INPUT)
    # 128x96 red frame: r = 0.5, resized to 64x48 at the top-left; rows 48..63 of the input are padding.
    out = det.detect(_solid((0, 0, 255), 96, 128))
    # P: input (24, 8, 56, 40) / 0.5; Q: input (0, 0, 8, 8) / 0.5 with obj = 114/255 from the padding.
    np.testing.assert_allclose(out.xyxy, [(48, 16, 112, 80), (0, 0, 16, 16)], atol=1e-4)
    np.testing.assert_allclose(out.scores, [0.9, PAD_VALUE / 255], atol=1e-6)
    # Blue in BGR order is channel 0: P's objectness (channel 2) is 0 now, so the box NMS suppressed under P
    # (row 69: same box, score 0.5) comes through instead.
    blue = det.detect(_solid((255, 0, 0), 96, 128))
    np.testing.assert_allclose(blue.scores, [0.5, PAD_VALUE / 255], atol=1e-6)
    np.testing.assert_allclose(blue.xyxy[0], (48, 16, 112, 80), atol=1e-4)


def test_yolox_export_with_decoding_inside_is_refused(tmp_path: Path) -> None:
    rows = np.zeros((STUB_CELLS, 85), np.float32)
    start = 0
    for stride in (8, 16, 32):
        side = STUB_INPUT // stride
        ys, xs = np.mgrid[0:side, 0:side]
        rows[start : start + side * side, 0] = (xs.ravel() + 0.5) * stride  # pixel centres, not grid offsets
        rows[start : start + side * side, 1] = (ys.ravel() + 0.5) * stride
        start += side * side
    with pytest.raises(ModelShapeError, match="decode_in_inference=True"):
        YoloxDetector(_stub_model(tmp_path / "decoded.onnx", rows[None].copy()))


def test_yolov8_stub_has_the_ultralytics_layout() -> None:
    assert yolo_anchor_count((STUB_INPUT, STUB_INPUT)) == STUB_CELLS
    assert yolo_anchor_count((640, 640)) == 8400 and yolo_anchor_count((416, 416)) == 3549


def test_yolov8_decodes_maps_back_filters_and_suppresses(yolov8_model: Path) -> None:
    det = Yolov8Detector(yolov8_model)  # Ultralytics defaults: score 0.25, NMS IoU 0.7
    assert det.input_size == (STUB_INPUT, STUB_INPUT)
    # A 128x64 pure red frame: r = 0.5, resized to 64x32, centred -> 16 rows of padding above and below.
    out = det.detect(_solid((0, 0, 255), 64, 128))
    pad = PAD_VALUE / 255
    expected_scores = [1.0, 0.9, 0.5, pad]  # F (red = R channel = 1.0), A, E, G (padding pixel = 114/255)
    expected_boxes = [
        (56, 40, 72, 56),  # F: input (28..36, 36..44) -> x / 0.5, (y - 16) / 0.5
        (16, 16, 48, 48),  # A; B suppressed, C is not a person, D below threshold
        (104, 0, 128, 16),  # E: x2 = 136 clipped to the frame width
        (8, 24, 24, 40),  # G
    ]
    np.testing.assert_allclose(out.scores, expected_scores, atol=1e-6)
    np.testing.assert_allclose(out.xyxy, expected_boxes, atol=1e-4)


def test_yolov8_green_frame_is_not_a_person(yolov8_model: Path) -> None:
    """With a green frame the content pixel scores class 1 (G) = 1.0 and class 0 (R) = 0: F disappears."""
    det = Yolov8Detector(yolov8_model, nms_iou=0.95, score_threshold=0.3)
    out = det.detect(_solid((0, 255, 0), 64, 128))
    np.testing.assert_allclose(out.scores, [0.9, 0.8, 0.5, PAD_VALUE / 255], atol=1e-6)  # B kept at IoU 0.95
    assert out.xyxy[1].tolist() == pytest.approx([18, 16, 50, 48])


def test_yolov8_config_and_factory(yolov8_model: Path) -> None:
    det = build_detector({"type": "yolov8", "model": str(yolov8_model), "threads": 1, "max_detections": 2})
    assert isinstance(det, Yolov8Detector) and det.name == "yolov8:yolov8_stub.onnx"
    assert det.detect(_solid((0, 0, 255), 64, 128)).scores.tolist() == pytest.approx([1.0, 0.9])
    with pytest.raises(ModelShapeError, match=r"expected input \[1, 3, 96, 96\] \(input_size\), found images"):
        build_detector({"type": "yolov8", "model": str(yolov8_model), "input_size": 96})


def test_yolov8_dynamic_export_needs_input_size(tmp_path: Path) -> None:
    model = _yolov8_stub(tmp_path / "dynamic.onnx", dynamic=True)
    with pytest.raises(
        ModelShapeError, match=r"input images tensor\(float\) \[batch, 3, height, width\] has a dynamic"
    ):
        Yolov8Detector(model)
    det = Yolov8Detector(model, input_size=STUB_INPUT)
    assert det.detect(_solid((0, 0, 255), 64, 128)).scores.tolist() == pytest.approx([1.0, 0.9, 0.5, PAD_VALUE / 255])


# ------------------------------------------------------------------------------- wrong models


def test_yolov8_export_given_to_yolox_names_expected_and_found(yolov8_model: Path) -> None:
    with pytest.raises(ModelShapeError) as err:
        YoloxDetector(yolov8_model)
    msg = str(err.value)
    assert "yolox model: expected output shape [1, 84, 5 + classes] (85 for COCO)" in msg
    assert "found [1, 6, 84]" in msg and "use type: yolov8" in msg


def test_yolox_model_given_to_ssd_names_expected_and_found(yolox_model: Path) -> None:
    with pytest.raises(ModelShapeError) as err:
        build_detector(SsdConfig(type="ssd", model=yolox_model))
    msg = str(err.value)
    assert "ssd model: expected one uint8 input [N, H, W, 3]" in msg
    assert "found images tensor(float) [1, 3, 416, 416]" in msg and "type: yolox" in msg


def test_yolox_model_given_to_yolov8_hints_yolox(yolox_model: Path) -> None:
    with pytest.raises(ModelShapeError, match=r"found \[1, 3549, 85\] \(is this a YOLOX raw-head export"):
        Yolov8Detector(yolox_model)


def test_ssd_model_given_to_yolox_hints_ssd(ssd_model: Path) -> None:
    with pytest.raises(ModelShapeError, match=r"expected one float32 input \[1, 3, H, W\], found image_tensor:0"):
        YoloxDetector(ssd_model)


def test_input_size_that_the_model_was_not_exported_at(yolox_model: Path) -> None:
    with pytest.raises(ModelShapeError, match=r"expected input \[1, 3, 320, 320\].*found images"):
        YoloxDetector(yolox_model, input_size=320)
    assert YoloxDetector(yolox_model, input_size=(416, 416)).input_size == (416, 416)


def test_missing_or_corrupt_model_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "model.onnx"
    with pytest.raises(ModelNotFoundError, match=str(missing)) as err:
        build_detector({"type": "yolox", "model": str(missing)})
    assert isinstance(err.value, FileNotFoundError)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelShapeError, match="could not be loaded"):
        SsdDetector(garbage)


# ------------------------------------------------------------------------------------- letterbox


@pytest.mark.parametrize("frame_hw", [(576, 768), (480, 640), (1080, 1920), (100, 99), (64, 128), (37, 5), (416, 416)])
@pytest.mark.parametrize("input_hw", [(416, 416), (640, 640), (384, 640), (64, 64)])
@pytest.mark.parametrize("centre", [False, True])
def test_letterbox_round_trip(frame_hw: tuple[int, int], input_hw: tuple[int, int], centre: bool) -> None:
    lb = letterbox_params(frame_hw, input_hw, centre=centre)
    h, w = frame_hw
    # The resized frame fits in the input and touches it on at least one axis.
    assert lb.pad_left + lb.resized_width <= input_hw[1] and lb.pad_top + lb.resized_height <= input_hw[0]
    assert input_hw[1] - lb.resized_width <= 1 or input_hw[0] - lb.resized_height <= 1
    if not centre:
        assert lb.pad_left == lb.pad_top == 0
    else:
        assert abs(lb.pad_left - (input_hw[1] - lb.resized_width - lb.pad_left)) <= 1
        assert abs(lb.pad_top - (input_hw[0] - lb.resized_height - lb.pad_top)) <= 1
    rng = np.random.default_rng(0)
    xy1 = rng.uniform(0, 1, (50, 2)) * (w, h)
    xy2 = xy1 + rng.uniform(0, 1, (50, 2)) * ((w, h) - xy1)
    boxes = np.concatenate([xy1, xy2], 1).astype(np.float32)
    back = lb.to_original(lb.to_input(boxes))
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-3 * max(h, w))
    # The frame's corners land on the edges of the pasted region.
    corners = lb.to_input(np.array([[0, 0, w, h]], np.float32))[0]
    np.testing.assert_allclose(corners[:2], (lb.pad_left, lb.pad_top), atol=1e-4)
    np.testing.assert_allclose(corners[2:], (lb.pad_left + w * lb.scale, lb.pad_top + h * lb.scale), atol=1e-3)


def test_letterbox_matches_the_references_for_vtest() -> None:
    top_left = letterbox_params((576, 768), (416, 416), centre=False)
    assert top_left == Letterbox(416 / 768, 0, 0, 416, 312, 416, 416)
    centred = letterbox_params((576, 768), (640, 640), centre=True)
    assert (centred.resized_width, centred.resized_height, centred.pad_left, centred.pad_top) == (640, 480, 0, 80)
    odd = letterbox_params((100, 99), (64, 64), centre=True)  # 64 x 63: Ultralytics puts the odd column right
    assert (odd.resized_width, odd.pad_left) == (63, 0)
    odd2 = letterbox_params((100, 97), (64, 64), centre=True)  # 62 wide: 1 left, 1 right
    assert (odd2.resized_width, odd2.pad_left) == (62, 1)


@pytest.mark.parametrize("centre", [False, True])
def test_letterbox_image_content(centre: bool) -> None:
    frame = np.random.default_rng(1).integers(0, 255, (60, 100, 3), dtype=np.uint8)
    image, lb = letterbox(frame, (64, 64), centre=centre)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    region = image[lb.pad_top : lb.pad_top + lb.resized_height, lb.pad_left : lb.pad_left + lb.resized_width]
    np.testing.assert_array_equal(region, cv2.resize(frame, (lb.resized_width, lb.resized_height)))
    mask = np.ones((64, 64), bool)
    mask[lb.pad_top : lb.pad_top + lb.resized_height, lb.pad_left : lb.pad_left + lb.resized_width] = False
    assert mask.any() and np.all(image[mask] == PAD_VALUE)


def test_letterbox_rejects_empty_frames() -> None:
    with pytest.raises(ValueError, match="positive"):
        letterbox_params((0, 10), (64, 64), centre=True)


# ------------------------------------------------------------------------------------ NMS and IoU


def test_box_iou_known_values() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    expected = np.array([[1, 50 / 150, 0, 0], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(a, b), expected, atol=1e-6)
    assert box_iou(np.zeros((0, 4), np.float32), b).shape == (0, 4)


def test_nms_basic_cases() -> None:
    assert nms(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), 0.5).tolist() == []
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.5, 0.9, 0.7, 0.5], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]  # 0 and 3 overlap 1 by IoU 0.82
    assert nms(boxes, scores, 0.9).tolist() == [1, 2, 0]  # 3 duplicates 0 exactly (IoU 1); tie keeps index 0
    assert nms(boxes, scores, 1.0).tolist() == [1, 2, 0, 3]  # suppression needs IoU > threshold
    assert nms(boxes, scores, 0.5, max_detections=1).tolist() == [1]


def test_nms_threshold_is_strict() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)  # IoU = 1/3
    scores = np.array([0.9, 0.8], np.float32)
    assert nms(boxes, scores, 1 / 3 + 1e-6).tolist() == [0, 1]
    assert nms(boxes, scores, 0.3).tolist() == [0]


def _brute_force_nms(boxes: Boxes, scores: npt.NDArray[np.float32], thr: float) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep: list[int] = []
    for i in order:
        if all(box_iou(boxes[i : i + 1], boxes[j : j + 1])[0, 0] <= thr for j in keep):
            keep.append(i)
    return keep


@pytest.mark.parametrize("seed", range(5))
def test_nms_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 100, (60, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (60, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 60).astype(np.float32)
    for thr in (0.3, 0.5, 0.7):
        assert nms(boxes, scores, thr).tolist() == _brute_force_nms(boxes, scores, thr)


# ----------------------------------------------------------------------------------------- config


def _loc_of(err: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in err.value.errors()]


def test_config_selects_the_type_and_applies_defaults() -> None:
    yolox = parse_detector_config({"type": "yolox", "model": "m.onnx"})
    assert isinstance(yolox, YoloxConfig) and (yolox.score_threshold, yolox.nms_iou, yolox.threads) == (0.3, 0.45, 2)
    v8 = parse_detector_config({"type": "yolov8", "model": "m.onnx", "input_size": [384, 640]})
    assert isinstance(v8, Yolov8Config) and v8.input_size == (384, 640) and v8.nms_iou == 0.7
    ssd = parse_detector_config({"type": "ssd", "model": "m.onnx"})
    assert isinstance(ssd, SsdConfig) and ssd.input_size == 300 and ssd.model == Path("m.onnx")


@pytest.mark.parametrize(
    ("data", "loc", "text"),
    [
        ({"type": "yolox", "model": "m.onnx", "score_treshold": 0.4}, ("yolox", "score_treshold"), "Extra inputs"),
        ({"type": "yolox", "model": "m.onnx", "score_threshold": 1.5}, ("yolox", "score_threshold"), "less than"),
        ({"type": "yolov8", "model": "m.onnx", "nms_iou": 0}, ("yolov8", "nms_iou"), "greater than"),
        ({"type": "yolox", "model": "m.onnx", "input_size": 400}, ("yolox", "input_size"), "multiple of 32"),
        ({"type": "ssd", "model": "m.onnx", "nms_iou": 0.5}, ("ssd", "nms_iou"), "Extra inputs"),
        ({"type": "ssd", "model": "m.onnx", "threads": 0}, ("ssd", "threads"), "greater than or equal"),
        ({"type": "ssd"}, ("ssd", "model"), "Field required"),
        (
            {"type": "yolo", "model": "m.onnx"},
            (),
            "tag 'yolo' found using 'type' does not match any of the expected tags",
        ),
        ({"model": "m.onnx"}, (), "discriminator 'type'"),
    ],
)
def test_config_errors_name_the_field(data: dict[str, Any], loc: tuple[str, ...], text: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_detector_config(data)
    assert loc in _loc_of(err), _loc_of(err)
    assert text in str(err.value)


def test_config_is_frozen() -> None:
    cfg = YoloxConfig(type="yolox", model=Path("m.onnx"))
    with pytest.raises(ValidationError, match="frozen"):
        cfg.threads = 4  # type: ignore[misc]
