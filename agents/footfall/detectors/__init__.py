"""ONNX person detectors behind one interface: ``detect(frame_bgr) -> Detections``.

Why this module looks the way it does:

* **One narrow interface, implementations chosen by name** (the config's ``type``). The tracker and
  the counter only ever see :class:`~agents.footfall.types.Detections` in pixels of the *original* frame, so
  swapping YOLOX for SSD or a YOLOv8 export is a config change (``detector: {type: yolox, model: ...}``), not
  a code change. :class:`PersonDetector` is a :class:`~typing.Protocol`, so tests and replay tools can pass
  any object with ``name``, ``input_size`` and ``detect`` (e.g. one that serves cached detections).
* **Every model family hides a different contract** behind a float tensor, and getting one detail wrong
  (RGB vs BGR, 0..1 vs 0..255, top-left vs centred padding, ``[1, N, 85]`` vs ``[1, 84, N]``) does not crash:
  it silently produces fewer or shifted boxes. So each detector checks the model's inputs and outputs when it
  is loaded, runs it once on a blank frame to check the shapes it really returns, and raises
  :class:`ModelShapeError` naming what it expected and what it found, with a hint when the model looks like a
  different family. A missing model file raises :class:`ModelNotFoundError` naming the path.
* **A model out of the box**: YOLOX-Nano (COCO, Apache-2.0, ``agents/footfall/models/``) ships with the package
  and is the model of a ``type: yolox`` detector that names none (:data:`SHIPPED_YOLOX_MODEL`), so counting works
  on a fresh machine. The other types have no default: their ``model`` is required.
* **The contracts implemented** (the YOLOX-Nano and SSDLite person models the footage tests use follow the first and
  the last row):

  ========  ===================================  ==========================================================
  type      input                                output / post-processing
  ========  ===================================  ==========================================================
  yolox     ``[1,3,H,W]`` f32 **BGR 0..255**,     ``[1, N, 5+nc]`` raw head, ``N`` = cells of strides
            letterbox at the **top-left**,        8/16/32; ``xy = (xy+grid)*s``, ``wh = exp(wh)*s``,
            pad 114, size ``int(w*r)``            ``score = obj*cls``; NMS here
  yolov8    ``[1,3,H,W]`` f32 **RGB 0..1**,       ``[1, 4+nc, N]``: ``cx,cy,w,h`` in input pixels, class
            letterbox **centred** (Ultralytics    scores, no objectness; NMS here
            ``LetterBox(center=True)``), pad 114,
            size ``round(w*r)``
  ssd       ``[N,H,W,3]`` **uint8 RGB**, any      ``num_detections``, ``detection_boxes`` (normalised
            size (TF Object Detection API)        ``ymin,xmin,ymax,xmax``), ``detection_scores``,
                                                  ``detection_classes``; NMS inside the graph
  ========  ===================================  ==========================================================

  For the YOLO families a box counts as a person when class 0 (COCO ``person``) is its best class and its
  score reaches ``score_threshold``; this is how both reference implementations (YOLOX demo, Ultralytics)
  filter by class, and it keeps e.g. a dog scored 0.9 / person 0.35 out of the counts.
* **Per-frame overhead is kept small** because on a Raspberry Pi every millisecond outside ``session.run``
  comes out of the frame rate: the input tensor is allocated once and its padding written once per frame
  size; each frame costs one ``cv2.resize`` into a preallocated buffer plus a channel split into the tensor.
  Decoding touches only the rows above the score threshold, and NMS is one vectorised overlap pass over those
  few candidates.
* Sessions use ``intra_op_num_threads = threads`` (default 2), ``inter_op_num_threads = 1``, sequential
  execution, all graph optimisations and, by default, **no spinning** of idle intra-op threads (see
  :func:`session_options`); ``onnxruntime`` is imported lazily so config parsing stays cheap.

Measured on vtest (795 frames, 768x576) on the 2-core x86 dev VM, shared with other work, so best and median
of 6 passes: YOLOX-Nano detector-only (``detect()`` calls, decoding of the video excluded) 83 / 75 frames/s
with 2 threads, 96 / 73 with 2 spinning threads, 67 / 65 with 1 thread; when other processes were busy,
2 spinning threads fell to 24-32 frames/s while non-spinning ones kept ~62. Pre-processing (letterbox into
the tensor) 0.25 ms and post-processing (decode, NMS, map back, clip) 0.13 ms per frame, i.e. ~3 % around
``session.run``. SSDLite: pre 0.33 ms (resize to 300x300 and RGB), post 0.02 ms.

A detector keeps preallocated buffers, so it is **not thread-safe**: use one per camera thread.

Errors::

    StoreedgeError
     └── DetectorError
          ├── ModelNotFoundError   (also FileNotFoundError) the configured model file does not exist
          └── ModelShapeError      (also ValueError) the model's inputs/outputs are not what the type expects
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from agents.core.errors import StoreedgeError
from agents.footfall.types import Detections, FloatArray, IntArray

__all__ = [
    "DetectorConfig",
    "PAD_VALUE",
    "SHIPPED_YOLOX_MODEL",
    "DetectorError",
    "ImageArray",
    "Letterbox",
    "ModelNotFoundError",
    "ModelShapeError",
    "PersonDetector",
    "SsdConfig",
    "SsdDetector",
    "Yolov8Config",
    "Yolov8Detector",
    "YoloxConfig",
    "YoloxDetector",
    "box_iou",
    "build_detector",
    "letterbox",
    "letterbox_params",
    "nms",
    "parse_detector_config",
    "session_options",
    "yolo_anchor_count",
]

ImageArray = npt.NDArray[np.uint8]
"""A frame as OpenCV delivers it: ``(H, W, 3)`` uint8, BGR."""

PAD_VALUE = 114
"""Letterbox padding grey used by both YOLOX and Ultralytics training pipelines."""

YOLO_STRIDES = (8, 16, 32)
"""Strides of the three detection heads of YOLOX and YOLOv8 (P3, P4, P5)."""

SHIPPED_YOLOX_MODEL = Path(__file__).resolve().parent.with_name("models") / "yolox_nano.onnx"
"""YOLOX-Nano shipped as package data (source, licence and sha256 in ``models/README.md``): the default model."""

_PRE_NMS_TOPK = 1000
"""At most this many candidates (highest scores) enter NMS, so a degenerate model cannot stall a frame."""


# --------------------------------------------------------------------------------------------- errors


class DetectorError(StoreedgeError):
    """Base of the errors raised while loading or running a person detector."""


class ModelNotFoundError(DetectorError, FileNotFoundError):
    """The configured model file does not exist; ``str(err)`` names the path."""


class ModelShapeError(DetectorError, ValueError):
    """The model's inputs or outputs do not match its configured ``type``.

    The message names the detector type, the expected and the found names/shapes/dtypes, and a hint when the
    model looks like another family (e.g. a YOLOv8 export configured as ``type: yolox``).
    """


# ------------------------------------------------------------------------------------------ interface


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that turns a BGR frame into person boxes in pixels of that frame."""

    @property
    def name(self) -> str:
        """Short description for logs and diagnostics, e.g. ``"yolox:yolox_nano.onnx"``."""
        ...

    @property
    def input_size(self) -> tuple[int, int] | None:
        """Network input ``(height, width)``; ``None`` when the model takes frames of any size."""
        ...

    def detect(self, frame_bgr: ImageArray) -> Detections:
        """Person boxes (``xyxy`` within the frame) and scores for one ``(H, W, 3)`` uint8 BGR frame."""
        ...


# ------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Letterbox:
    """How a frame was placed on the network input: scaled by ``scale``, pasted at ``(pad_left, pad_top)``.

    ``input = original * scale + pad``; :meth:`to_original` inverts it for boxes.
    """

    scale: float
    pad_left: int
    pad_top: int
    resized_width: int
    resized_height: int
    input_height: int
    input_width: int

    def to_original(self, xyxy: FloatArray) -> FloatArray:
        """Map ``(N, 4)`` boxes from network-input pixels back to original-frame pixels (not clipped)."""
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], np.float32)
        return ((xyxy - offset) * np.float32(1.0 / self.scale)).astype(np.float32, copy=False)

    def to_input(self, xyxy: FloatArray) -> FloatArray:
        """Map ``(N, 4)`` boxes from original-frame pixels to network-input pixels."""
        offset = np.array([self.pad_left, self.pad_top, self.pad_left, self.pad_top], np.float32)
        return (xyxy * np.float32(self.scale) + offset).astype(np.float32, copy=False)


def letterbox_params(frame_hw: tuple[int, int], input_hw: tuple[int, int], *, centre: bool) -> Letterbox:
    """Scale and padding that fit a ``frame_hw`` frame into ``input_hw`` keeping the aspect ratio.

    ``centre=False`` is the YOLOX reference: resized size ``int(w * r)`` (floor), pasted at the top-left.
    ``centre=True`` is Ultralytics ``LetterBox(auto=False, center=True)``: resized size ``round(w * r)``,
    padding split evenly with Ultralytics' ``round(d/2 -/+ 0.1)`` so an odd pixel goes to the bottom/right.
    Frames are scaled up as well as down (both references do).
    """
    h, w = frame_hw
    in_h, in_w = input_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"frame size must be positive, got {w}x{h}")
    r = min(in_h / h, in_w / w)
    if centre:
        new_w, new_h = round(w * r), round(h * r)
        pad_left, pad_top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
    else:
        new_w, new_h = int(w * r), int(h * r)
        pad_left = pad_top = 0
    new_w, new_h = max(1, min(new_w, in_w)), max(1, min(new_h, in_h))
    return Letterbox(r, pad_left, pad_top, new_w, new_h, in_h, in_w)


def letterbox(
    frame: ImageArray, input_hw: tuple[int, int], *, centre: bool, pad_value: int = PAD_VALUE
) -> tuple[ImageArray, Letterbox]:
    """A letterboxed copy of ``frame`` (``(H, W, C)`` uint8) of size ``input_hw``, and its :class:`Letterbox`.

    Convenience for tools and tests; the detectors write straight into their preallocated input tensors.
    """
    lb = letterbox_params((frame.shape[0], frame.shape[1]), input_hw, centre=centre)
    canvas = np.full((lb.input_height, lb.input_width, *frame.shape[2:]), pad_value, np.uint8)
    roi = canvas[lb.pad_top : lb.pad_top + lb.resized_height, lb.pad_left : lb.pad_left + lb.resized_width]
    resized = cv2.resize(frame, (lb.resized_width, lb.resized_height), interpolation=cv2.INTER_LINEAR)
    roi[...] = resized.reshape(roi.shape)
    return canvas, lb


def box_iou(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of ``(N, 4)`` and ``(M, 4)`` xyxy boxes, as an ``(N, M)`` float32 matrix."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, np.float32(1e-12)), 0).astype(np.float32)


def nms(xyxy: FloatArray, scores: FloatArray, iou_threshold: float, *, max_detections: int | None = None) -> IntArray:
    """Greedy non-maximum suppression; indices of the kept boxes, highest score first.

    A box is suppressed when its IoU with an already kept, higher-scoring box is **greater than**
    ``iou_threshold`` (torchvision's rule); ties in score keep the lower index (stable sort). The pairwise
    overlap test is one vectorised pass (``inter > t * union``, no division); the greedy walk then costs one
    small numpy step per *kept* box. For the tens of candidates a frame has this is ~3x faster than the
    classic per-step IoU loop (60 boxes: ~60 us instead of ~150 us).
    """
    n = int(scores.shape[0])
    if n == 0:
        return np.zeros((0,), np.int64)
    order = np.argsort(-scores, kind="stable")
    boxes = np.asarray(xyxy, np.float32)[order]
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    area = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    iw = np.clip(np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :]), 0, None)
    ih = np.clip(np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :]), 0, None)
    inter = iw * ih
    overlaps = inter > np.float32(iou_threshold) * (area[:, None] + area[None, :] - inter)
    limit = n if max_detections is None else max_detections
    keep: list[int] = []
    remaining = np.arange(n)
    while remaining.size and len(keep) < limit:
        i = int(remaining[0])
        keep.append(i)
        rest = remaining[1:]
        remaining = rest[~overlaps[i, rest]]
    return order[np.asarray(keep, np.int64)].astype(np.int64, copy=False)


def _clip_to_frame(xyxy: FloatArray, frame_hw: tuple[int, int]) -> FloatArray:
    h, w = frame_hw
    np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
    np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
    return xyxy


def _top_candidates(scores: FloatArray, threshold: float) -> IntArray:
    """Indices of scores ``>= threshold``, at most :data:`_PRE_NMS_TOPK` of them (the highest)."""
    idx = np.flatnonzero(scores >= threshold)
    if idx.size > _PRE_NMS_TOPK:
        idx = idx[np.argpartition(-scores[idx], _PRE_NMS_TOPK)[:_PRE_NMS_TOPK]]
    return idx.astype(np.int64, copy=False)


def yolo_anchor_count(input_hw: tuple[int, int], strides: Sequence[int] = YOLO_STRIDES) -> int:
    """Number of grid cells over all heads, e.g. 3549 for 416x416 and 8400 for 640x640."""
    return sum(math.ceil(input_hw[0] / s) * math.ceil(input_hw[1] / s) for s in strides)


# ------------------------------------------------------------------------------------------ sessions


def session_options(threads: int, *, spin: bool = False) -> Any:
    """``onnxruntime.SessionOptions`` for a small CPU box: ``threads`` intra-op, 1 inter-op, all graph opts.

    ``spin=False`` stops idle intra-op threads from busy-waiting for work. On a 2-core box shared with the
    tracker and the other agents, spinning threads fight everything else for the cores: measured on vtest
    with YOLOX-Nano, 2 threads, while other processes were busy, 32 fps with spinning vs 62 fps without, at
    half the CPU time per frame. On an otherwise idle box spinning gains little (see the module docstring).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return opts


def _open_session(kind: str, model: Path, threads: int, spin: bool) -> Any:
    import onnxruntime as ort

    path = Path(model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"{kind} model file not found: {path.resolve()}")
    try:
        opts = session_options(threads, spin=spin)
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own (non-exported) exception types for bad files
        raise ModelShapeError(f"{kind} model {path} could not be loaded by onnxruntime: {exc}") from exc


def _shape_str(shape: Sequence[Any]) -> str:
    """``[1, 3, 416, 416]``; dynamic dimensions print as their symbolic name (or ``?``)."""
    return "[" + ", ".join(str(d) if isinstance(d, int) else (str(d) if d else "?") for d in shape) + "]"


def _io_str(args: Sequence[Any]) -> str:
    return ", ".join(f"{a.name} {a.type} {_shape_str(a.shape)}" for a in args)


def _static(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def _check_frame(frame: Any) -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        found = f"{frame.dtype} {list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"detect() needs an (H, W, 3) uint8 BGR frame, got {found}")


class _PlanarInput:
    """A preallocated ``[1, 3, H, W]`` float32 letterbox tensor that frames are written into.

    The padding is written once per frame size; each frame costs one ``cv2.resize`` into a preallocated
    buffer, one ``cv2.split`` and three plane copies (with the 0..1 scaling fused into the copy when needed).
    """

    def __init__(self, input_hw: tuple[int, int], *, centre: bool, rgb: bool, scale: float) -> None:
        self.input_hw = input_hw
        self.centre = centre
        self.rgb = rgb
        self.scale = np.float32(scale)
        self.tensor: FloatArray = np.empty((1, 3, *input_hw), np.float32)
        self._frame_hw: tuple[int, int] | None = None
        self._lb: Letterbox | None = None
        self._resized: ImageArray = np.empty((0, 0, 3), np.uint8)
        self._planes: list[ImageArray] = []

    def write(self, frame: ImageArray) -> Letterbox:
        frame_hw = (int(frame.shape[0]), int(frame.shape[1]))
        lb = self._lb
        if lb is None or frame_hw != self._frame_hw:
            lb = self._lb = letterbox_params(frame_hw, self.input_hw, centre=self.centre)
            self._frame_hw = frame_hw
            self.tensor.fill(PAD_VALUE * self.scale)
            self._resized = np.empty((lb.resized_height, lb.resized_width, 3), np.uint8)
            self._planes = [np.empty((lb.resized_height, lb.resized_width), np.uint8) for _ in range(3)]
        resized = frame
        if frame_hw != (lb.resized_height, lb.resized_width):
            resized = self._resized
            cv2.resize(frame, (lb.resized_width, lb.resized_height), dst=resized, interpolation=cv2.INTER_LINEAR)
        cv2.split(resized, self._planes)
        rows = slice(lb.pad_top, lb.pad_top + lb.resized_height)
        cols = slice(lb.pad_left, lb.pad_left + lb.resized_width)
        for channel in range(3):
            plane = self._planes[2 - channel if self.rgb else channel]
            dst = self.tensor[0, channel, rows, cols]
            if self.scale == 1:
                dst[...] = plane
            else:
                np.multiply(plane, self.scale, out=dst)
        return lb


def _resolve_input_hw(kind: str, session: Any, configured: int | tuple[int, int] | None) -> tuple[int, int]:
    """The ``(height, width)`` of a ``[1, 3, H, W]`` float32 input, checked against the configured size."""
    inputs = session.get_inputs()
    expected = "one float32 input [1, 3, H, W]"
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
        hint = ""
        if len(inputs) == 1 and inputs[0].type == "tensor(uint8)":
            hint = " (a uint8 image input looks like a TF Object Detection API export: use type: ssd)"
        raise ModelShapeError(f"{kind} model: expected {expected}, found {_io_str(inputs)}{hint}")
    shape = inputs[0].shape
    channels = _static(shape[1])
    if channels is not None and channels != 3:
        hint = " (channels-last input: is this an SSD/TF export? use type: ssd)" if _static(shape[3]) == 3 else ""
        raise ModelShapeError(f"{kind} model: expected {expected}, found {_io_str(inputs)}{hint}")
    model_hw = (_static(shape[2]), _static(shape[3]))
    want: tuple[int, int] | None = None
    if configured is not None:
        want = (configured, configured) if isinstance(configured, int) else configured
    if want is None:
        if model_hw[0] is None or model_hw[1] is None:
            raise ModelShapeError(
                f"{kind} model: input {_io_str(inputs)} has a dynamic size; set input_size in the config"
            )
        return (model_hw[0], model_hw[1])
    for got, wanted in zip(model_hw, want, strict=True):
        if got is not None and got != wanted:
            raise ModelShapeError(
                f"{kind} model: expected input [1, 3, {want[0]}, {want[1]}] (input_size), found {_io_str(inputs)};"
                " remove input_size or export the model at that size"
            )
    return want


class _OnnxDetector:
    """Shared plumbing: the session, its names, and the metadata of :class:`PersonDetector`."""

    kind = "onnx"

    def __init__(
        self, model: Path | str, *, threads: int, spin: bool, score_threshold: float, max_detections: int
    ) -> None:
        if not 0 <= score_threshold <= 1:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        if threads < 1 or max_detections < 1:
            raise ValueError("threads and max_detections must be >= 1")
        self.model_path = Path(model)
        self.score_threshold = float(score_threshold)
        self.max_detections = int(max_detections)
        self.threads = int(threads)
        self._session = _open_session(self.kind, self.model_path, threads, spin)
        self._input_name: str = self._session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.model_path.name}"

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={str(self.model_path)!r}, input_size={self.input_size})"


class _YoloBase(_OnnxDetector, ABC):
    """Letterboxed ``[1, 3, H, W]`` float input, box decoding and NMS done here."""

    centre = False
    rgb = False
    pixel_scale = 1.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float,
        nms_iou: float,
        threads: int,
        spin: bool,
        input_size: int | tuple[int, int] | None,
        max_detections: int,
    ) -> None:
        if not 0 < nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        super().__init__(
            model, threads=threads, spin=spin, score_threshold=score_threshold, max_detections=max_detections
        )
        self.nms_iou = float(nms_iou)
        self._input_hw = _resolve_input_hw(self.kind, self._session, input_size)
        outputs = self._session.get_outputs()
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            raise ModelShapeError(
                f"{self.kind} model: expected one output of rank 3 ({self._expected_output()}), found "
                f"{_io_str(outputs)}{self._family_hint(outputs)}"
            )
        self._output_name: str = outputs[0].name
        self._check_output_shape(list(outputs[0].shape))
        self._input = _PlanarInput(self._input_hw, centre=self.centre, rgb=self.rgb, scale=self.pixel_scale)
        self._prepare()
        # One run on a grey frame: checks the shape the model really returns (dynamic dims) and pays the
        # first-run allocation cost now instead of on the first camera frame.
        self._input.tensor.fill(PAD_VALUE * self.pixel_scale)
        out = self.infer()
        self._check_output_shape(list(out.shape))
        self._check_output_values(out)

    @property
    def input_size(self) -> tuple[int, int]:
        return self._input_hw

    @abstractmethod
    def _expected_output(self) -> str:
        """The expected output shape, for error messages."""

    def _family_hint(self, outputs: Sequence[Any]) -> str:
        if len(outputs) >= 3:
            return " (several outputs: is this an SSD / TF Object Detection API export? use type: ssd)"
        return ""

    @abstractmethod
    def _check_output_shape(self, shape: list[Any]) -> None:
        """Raise :class:`ModelShapeError` unless ``shape`` (static dims, or a real output's) can be decoded."""

    def _check_output_values(self, out: FloatArray) -> None:
        """Raise :class:`ModelShapeError` when the warm-up output shows the wrong encoding."""

    def _prepare(self) -> None:
        """Precompute per-model constants after the shapes are known."""

    @abstractmethod
    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Candidate boxes (xyxy, network-input pixels) and person scores above the threshold."""

    def preprocess(self, frame_bgr: ImageArray) -> Letterbox:
        """Write ``frame_bgr`` into the preallocated input tensor; exposed for timing and tests."""
        _check_frame(frame_bgr)
        return self._input.write(frame_bgr)

    def infer(self) -> FloatArray:
        """Run the session on the current input tensor; returns the raw output."""
        (out,) = self._session.run([self._output_name], {self._input_name: self._input.tensor})
        return np.asarray(out, np.float32)

    def postprocess(self, out: FloatArray, lb: Letterbox, frame_hw: tuple[int, int]) -> Detections:
        """Decode, map back to the original frame, NMS, clip."""
        boxes, scores = self._decode(out)
        if scores.shape[0] == 0:
            return Detections.empty()
        keep = nms(boxes, scores, self.nms_iou, max_detections=self.max_detections)
        xyxy = _clip_to_frame(lb.to_original(boxes[keep]), frame_hw)
        return Detections(np.ascontiguousarray(xyxy, np.float32), np.ascontiguousarray(scores[keep], np.float32))

    def detect(self, frame_bgr: ImageArray) -> Detections:
        lb = self.preprocess(frame_bgr)
        out = self.infer()
        return self.postprocess(out, lb, (int(frame_bgr.shape[0]), int(frame_bgr.shape[1])))


class YoloxDetector(_YoloBase):
    """YOLOX raw-head export (e.g. the shared YOLOX-Nano): BGR 0..255, top-left letterbox, ``[1, N, 5+nc]``.

    ``N`` must equal the grid cells of strides 8, 16, 32 for the input size (3549 at 416x416): the grids are
    rebuilt here, so a head with another layout cannot be decoded and is rejected at load.
    """

    kind = "yolox"
    centre = False
    rgb = False
    pixel_scale = 1.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.3,
        nms_iou: float = 0.45,
        threads: int = 2,
        spin: bool = False,
        input_size: int | tuple[int, int] | None = None,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            model,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            threads=threads,
            spin=spin,
            input_size=input_size,
            max_detections=max_detections,
        )

    def _expected_output(self) -> str:
        n = yolo_anchor_count(self._input_hw)
        return f"[1, {n}, 5 + classes] (85 for COCO)"

    def _check_output_shape(self, shape: list[Any]) -> None:
        n = yolo_anchor_count(self._input_hw)
        rows, cols = _static(shape[1]), _static(shape[2])
        ok = _static(shape[0]) in (1, None) and rows in (n, None) and (cols is None or cols >= 6)
        if not ok:
            hint = ""
            if cols is not None and rows is not None and cols == n and rows < cols:
                hint = " (is this a YOLOv8 export? use type: yolov8)"
            elif cols is not None and rows is not None and cols > rows:
                hint = " (channels-first output: is this a YOLOv8 export? use type: yolov8)"
            raise ModelShapeError(
                f"yolox model: expected output shape {self._expected_output()} for a "
                f"{self._input_hw[1]}x{self._input_hw[0]} input, found {_shape_str(shape)}{hint}"
            )

    def _check_output_values(self, out: FloatArray) -> None:
        # A raw head predicts grid offsets of a few units (|x|, |y| <= ~4 on a blank frame for YOLOX-Nano);
        # an export with decode_in_inference=True has the same shape but centres in pixels (up to the input
        # size). Decoding those again would silently produce garbage boxes, so refuse them.
        # Decoded centres of the last cells reach nearly the input size, so half of it separates the two.
        largest = float(np.abs(out[0, :, :2]).max()) if out.size else 0.0
        if largest > max(16.0, 0.5 * max(self._input_hw)):
            raise ModelShapeError(
                f"yolox model: expected a raw head (grid offsets, |cx|, |cy| of a few units), found box centres up"
                f" to {largest:.0f} on a blank frame: the model looks exported with decode_in_inference=True;"
                " re-export with it off"
            )

    def _prepare(self) -> None:
        in_h, in_w = self._input_hw
        grids, strides = [], []
        for s in YOLO_STRIDES:
            gh, gw = math.ceil(in_h / s), math.ceil(in_w / s)
            ys, xs = np.meshgrid(np.arange(gh, dtype=np.float32), np.arange(gw, dtype=np.float32), indexing="ij")
            grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
            strides.append(np.full((gh * gw, 1), s, np.float32))
        self._grid: FloatArray = np.concatenate(grids)
        self._stride: FloatArray = np.concatenate(strides)

    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        rows = out[0]  # (N, 5 + nc)
        person = rows[:, 4] * rows[:, 5]  # objectness * P(person)
        idx = _top_candidates(person, self.score_threshold)
        if idx.size and rows.shape[1] > 6:
            cand = rows[idx]
            idx = idx[cand[:, 5] >= cand[:, 5:].max(axis=1)]  # person must be the best class
        if idx.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        cand = rows[idx]
        stride = self._stride[idx]
        cxcy = (cand[:, 0:2] + self._grid[idx]) * stride
        half_wh = np.exp(cand[:, 2:4]) * stride * np.float32(0.5)
        boxes = np.concatenate([cxcy - half_wh, cxcy + half_wh], axis=1).astype(np.float32, copy=False)
        return boxes, person[idx].astype(np.float32, copy=False)


class Yolov8Detector(_YoloBase):
    """Ultralytics YOLOv8/YOLO11 ONNX export (``yolo export format=onnx``, ``nms=False``).

    Input ``images`` ``[1, 3, H, W]`` float32 **RGB 0..1**, letterboxed **centred** with grey 114 (Ultralytics
    ``LetterBox(auto=False, center=True)``); output ``[1, 4 + nc, N]``: ``cx, cy, w, h`` in input pixels, then
    one score per class (no objectness). Person = class 0. ``N`` is not checked against the strides, so P6
    exports (stride 64) work too; only the channels-first layout ``4 + nc < N`` is required.
    """

    kind = "yolov8"
    centre = True
    rgb = True
    pixel_scale = 1.0 / 255.0

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.25,
        nms_iou: float = 0.7,
        threads: int = 2,
        spin: bool = False,
        input_size: int | tuple[int, int] | None = None,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            model,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            threads=threads,
            spin=spin,
            input_size=input_size,
            max_detections=max_detections,
        )

    def _expected_output(self) -> str:
        return "[1, 4 + classes, N] (84 x N for COCO)"

    def _check_output_shape(self, shape: list[Any]) -> None:
        chans, n = _static(shape[1]), _static(shape[2])
        ok = (chans is None or chans >= 5) and (chans is None or n is None or chans < n)
        if not ok:
            hint = ""
            if chans is not None and n is not None and chans > n >= 6:
                if chans == yolo_anchor_count(self._input_hw):
                    hint = " (is this a YOLOX raw-head export? use type: yolox)"
                else:
                    hint = " (rows-first output: is this a YOLOX export, or an end-to-end export with NMS?)"
            elif n in {6, 7}:
                hint = " (looks like an end-to-end export with NMS inside; export with nms=False)"
            raise ModelShapeError(
                f"yolov8 model: expected output shape {self._expected_output()}, found {_shape_str(shape)}{hint}"
            )

    def _decode(self, out: FloatArray) -> tuple[FloatArray, FloatArray]:
        head = out[0]  # (4 + nc, N), channels first: the person row is contiguous
        person = head[4]
        idx = _top_candidates(person, self.score_threshold)
        if idx.size and head.shape[0] > 5:
            idx = idx[person[idx] >= head[4:, idx].max(axis=0)]  # person must be the best class
        if idx.size == 0:
            return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32)
        cx, cy, w, h = head[0, idx], head[1, idx], head[2, idx] * 0.5, head[3, idx] * 0.5
        boxes = np.stack([cx - w, cy - h, cx + w, cy + h], axis=1).astype(np.float32, copy=False)
        return boxes, person[idx].astype(np.float32, copy=False)


class SsdDetector(_OnnxDetector):
    """TF Object Detection API SSD export (e.g. the shared SSDLite person model): NMS inside the graph.

    Input ``image_tensor`` ``[N, H, W, 3]`` uint8 **RGB** of any size (the graph resizes to 300x300 itself).
    With ``input_size`` set, frames are resized to ``input_size x input_size`` here first: the graph would
    stretch them to its own square anyway, and a small uint8 tensor is cheaper to convert and resize than a
    full frame (about 1 ms per frame for 768x576 into 300x300). Boxes come back normalised, so mapping them
    to the original frame is a multiplication by its width and height either way.
    """

    kind = "ssd"
    _OUTPUTS = ("num_detections", "detection_boxes", "detection_scores", "detection_classes")

    def __init__(
        self,
        model: Path | str,
        *,
        score_threshold: float = 0.3,
        threads: int = 2,
        spin: bool = False,
        input_size: int | None = 300,
        person_class: int = 1,
        max_detections: int = 100,
    ) -> None:
        super().__init__(
            model, threads=threads, spin=spin, score_threshold=score_threshold, max_detections=max_detections
        )
        if input_size is not None and input_size < 1:
            raise ValueError(f"input_size must be >= 1 or None, got {input_size}")
        self._side = input_size
        self.person_class = float(person_class)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        expected_in = "one uint8 input [N, H, W, 3] (image_tensor:0)"
        shape = inputs[0].shape if len(inputs) == 1 else []
        if (
            len(inputs) != 1
            or inputs[0].type != "tensor(uint8)"
            or len(shape) != 4
            or _static(shape[3]) not in (3, None)
        ):
            hint = ""
            if len(inputs) == 1 and inputs[0].type == "tensor(float)" and len(shape) == 4:
                hint = " (a float [1, 3, H, W] input looks like a YOLO export: use type: yolox or type: yolov8)"
            raise ModelShapeError(f"ssd model: expected {expected_in}, found {_io_str(inputs)}{hint}")
        by_name = {o.name.split(":")[0]: o.name for o in outputs}
        missing = [n for n in self._OUTPUTS if n not in by_name]
        if missing:
            raise ModelShapeError(
                f"ssd model: expected outputs {', '.join(n + ':0' for n in self._OUTPUTS)}, found "
                f"{_io_str(outputs)} (missing {', '.join(missing)})"
            )
        self._output_names = [by_name[n] for n in self._OUTPUTS]
        self._rgb: ImageArray = np.empty((0, 0, 3), np.uint8)
        self._resized: ImageArray = np.empty((0, 0, 3), np.uint8)
        # Warm-up run on a grey frame, which also checks the output shapes the graph really produces.
        side = self._side or 300
        _num, boxes, scores, classes = self._run(np.full((1, side, side, 3), PAD_VALUE, np.uint8))
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.shape != boxes.shape[:2] or classes.shape != scores.shape:
            raise ModelShapeError(
                "ssd model: expected detection_boxes [1, K, 4], detection_scores [1, K], detection_classes [1, K],"
                f" found {list(boxes.shape)}, {list(scores.shape)}, {list(classes.shape)}"
            )

    @property
    def input_size(self) -> tuple[int, int] | None:
        return None if self._side is None else (self._side, self._side)

    def _run(self, tensor: ImageArray) -> list[FloatArray]:
        outs = self._session.run(self._output_names, {self._input_name: tensor})
        return [np.asarray(o) for o in outs]

    def preprocess(self, frame_bgr: ImageArray) -> ImageArray:
        """The ``[1, H, W, 3]`` RGB uint8 tensor for ``frame_bgr`` (a view of a preallocated buffer)."""
        _check_frame(frame_bgr)
        src = frame_bgr
        if self._side is not None and frame_bgr.shape[:2] != (self._side, self._side):
            if self._resized.shape[:2] != (self._side, self._side):
                self._resized = np.empty((self._side, self._side, 3), np.uint8)
            src = self._resized
            cv2.resize(frame_bgr, (self._side, self._side), dst=src, interpolation=cv2.INTER_LINEAR)
        if self._rgb.shape != src.shape:
            self._rgb = np.empty(src.shape, np.uint8)
        cv2.cvtColor(src, cv2.COLOR_BGR2RGB, dst=self._rgb)
        return self._rgb[None]

    def postprocess(self, outs: Sequence[FloatArray], frame_hw: tuple[int, int]) -> Detections:
        num, boxes, scores, classes = outs
        n = min(int(num.reshape(-1)[0]), boxes.shape[1])
        s = scores[0, :n]
        keep = np.flatnonzero((s >= self.score_threshold) & (classes[0, :n] == self.person_class))
        if keep.size == 0:
            return Detections.empty()
        keep = keep[: self.max_detections]  # already sorted by score inside the graph
        h, w = frame_hw
        yxyx = boxes[0, keep]
        xyxy = yxyx[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
        xyxy = _clip_to_frame(xyxy.astype(np.float32, copy=False), frame_hw)
        return Detections(np.ascontiguousarray(xyxy, np.float32), np.ascontiguousarray(s[keep], np.float32))

    def detect(self, frame_bgr: ImageArray) -> Detections:
        outs = self._run(self.preprocess(frame_bgr))
        return self.postprocess(outs, (int(frame_bgr.shape[0]), int(frame_bgr.shape[1])))


# -------------------------------------------------------------------------------------------- config


class _DetectorConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: Path = Field(description="ONNX model file.")
    score_threshold: float = Field(0.3, ge=0.0, le=1.0, description="Minimum person score kept.")
    threads: int = Field(2, ge=1, le=64, description="onnxruntime intra-op threads (inter-op is 1).")
    spin: bool = Field(
        False, description="Let idle onnxruntime threads busy-wait: off, so a shared 2-core box is not starved."
    )
    max_detections: int = Field(100, ge=1, le=10_000, description="Most boxes returned per frame.")


def _check_yolo_size(value: int | tuple[int, int] | None) -> int | tuple[int, int] | None:
    sides = () if value is None else (value,) if isinstance(value, int) else value
    for side in sides:
        if side % 32:
            raise ValueError(f"must be a multiple of 32 (the largest stride), got {side}")
    return value


class YoloxConfig(_DetectorConfigBase):
    """``type: yolox``: YOLOX raw-head export (BGR 0..255, top-left letterbox)."""

    type: Literal["yolox"]
    model: Path = Field(SHIPPED_YOLOX_MODEL, description="ONNX model file; default: the shipped YOLOX-Nano.")
    nms_iou: float = Field(0.45, gt=0.0, le=1.0, description="NMS IoU above which the lower box is dropped.")
    input_size: int | tuple[int, int] | None = Field(
        None, description="Input side or [height, width]; default: the model's own (fixed) input size."
    )

    _size = field_validator("input_size")(_check_yolo_size)


class Yolov8Config(_DetectorConfigBase):
    """``type: yolov8``: Ultralytics YOLOv8/YOLO11 export (RGB 0..1, centred letterbox); Ultralytics defaults."""

    type: Literal["yolov8"]
    score_threshold: float = Field(0.25, ge=0.0, le=1.0, description="Minimum person score kept.")
    nms_iou: float = Field(0.7, gt=0.0, le=1.0, description="NMS IoU above which the lower box is dropped.")
    input_size: int | tuple[int, int] | None = Field(
        None, description="Input side or [height, width]; default: the model's own (fixed) input size."
    )

    _size = field_validator("input_size")(_check_yolo_size)


class SsdConfig(_DetectorConfigBase):
    """``type: ssd``: TF Object Detection API SSD with in-graph NMS (uint8 RGB, any size)."""

    type: Literal["ssd"]
    input_size: int | None = Field(
        300, ge=32, le=4096, description="Resize frames to this square before the graph (null: full frame)."
    )
    person_class: int = Field(1, ge=0, description="detection_classes value that means person.")


DetectorConfig = Annotated[YoloxConfig | SsdConfig | Yolov8Config, Field(discriminator="type")]
"""The ``detector:`` section of a camera: one of the detector configs, chosen by ``type``."""


@cache
def _config_adapter() -> TypeAdapter[YoloxConfig | SsdConfig | Yolov8Config]:
    return TypeAdapter(DetectorConfig)


def parse_detector_config(data: Mapping[str, Any]) -> YoloxConfig | SsdConfig | Yolov8Config:
    """Validate a ``detector:`` mapping; raises pydantic ``ValidationError`` whose locations name the field."""
    return _config_adapter().validate_python(dict(data))


def _build_yolox(cfg: YoloxConfig) -> PersonDetector:
    return YoloxDetector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        nms_iou=cfg.nms_iou,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        max_detections=cfg.max_detections,
    )


def _build_yolov8(cfg: Yolov8Config) -> PersonDetector:
    return Yolov8Detector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        nms_iou=cfg.nms_iou,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        max_detections=cfg.max_detections,
    )


def _build_ssd(cfg: SsdConfig) -> PersonDetector:
    return SsdDetector(
        cfg.model,
        score_threshold=cfg.score_threshold,
        threads=cfg.threads,
        spin=cfg.spin,
        input_size=cfg.input_size,
        person_class=cfg.person_class,
        max_detections=cfg.max_detections,
    )


_BUILDERS: dict[str, Callable[[Any], PersonDetector]] = {
    "yolox": _build_yolox,
    "yolov8": _build_yolov8,
    "ssd": _build_ssd,
}


def build_detector(config: YoloxConfig | SsdConfig | Yolov8Config | Mapping[str, Any]) -> PersonDetector:
    """Build the detector named by ``config.type`` (a config model, or a mapping validated first).

    Raises pydantic ``ValidationError`` for a bad mapping, :class:`ModelNotFoundError` for a missing file and
    :class:`ModelShapeError` when the model does not fit the type.
    """
    cfg = config if isinstance(config, BaseModel) else parse_detector_config(config)
    return _BUILDERS[cfg.type](cfg)
