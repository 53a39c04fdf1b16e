"""onnxruntime plumbing every detector shares: session options, opening a model, the base class and input checks.

Sessions use ``intra_op_num_threads = threads`` (default 2), ``inter_op_num_threads = 1``, sequential execution,
all graph optimisations and, by default, **no spinning** of idle intra-op threads (see :func:`session_options`);
``onnxruntime`` is imported lazily so config parsing stays cheap. A missing model file raises
:class:`~agents.footfall.detectors.base.ModelNotFoundError` naming the path, and a file onnxruntime cannot load a
:class:`~agents.footfall.detectors.base.ModelShapeError`; :func:`shape_str` and :func:`io_str` write the "found ..."
half of every shape error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.footfall.detectors.base import ModelNotFoundError, ModelShapeError


def session_options(threads: int, *, spin: bool = False) -> Any:
    """``onnxruntime.SessionOptions`` for a small CPU box: ``threads`` intra-op, 1 inter-op, all graph opts.

    ``spin=False`` stops idle intra-op threads from busy-waiting for work. On a 2-core box shared with the
    tracker and the other agents, spinning threads fight everything else for the cores: measured on vtest
    with YOLOX-Nano, 2 threads, while other processes were busy, 32 fps with spinning vs 62 fps without, at
    half the CPU time per frame. On an otherwise idle box spinning gains little (see the package docstring).
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


def shape_str(shape: Sequence[Any]) -> str:
    """``[1, 3, 416, 416]``; dynamic dimensions print as their symbolic name (or ``?``)."""
    return "[" + ", ".join(str(d) if isinstance(d, int) else (str(d) if d else "?") for d in shape) + "]"


def io_str(args: Sequence[Any]) -> str:
    """``images tensor(float) [1, 3, 416, 416]`` for each of a session's inputs or outputs, comma separated."""
    return ", ".join(f"{a.name} {a.type} {shape_str(a.shape)}" for a in args)


def static_dim(dim: Any) -> int | None:
    """A dimension of a model's declared shape as an int, or ``None`` when it is dynamic (symbolic or unknown)."""
    return dim if isinstance(dim, int) and dim > 0 else None


def check_frame(frame: Any) -> None:
    """Raise ``ValueError`` unless ``frame`` is an ``(H, W, 3)`` uint8 array, what every ``detect()`` takes."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        found = f"{frame.dtype} {list(frame.shape)}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"detect() needs an (H, W, 3) uint8 BGR frame, got {found}")


class OnnxDetector:
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
