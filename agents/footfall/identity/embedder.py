"""Person crops in, L2-normalised appearance embeddings out: :class:`ReidEmbedder`.

The two model families differ only in what they expect of the pixels (:data:`REID_MODELS`), and getting that
wrong does not crash, it quietly makes every embedding worse, so the contract is written down once per family:

========  ==================================  =================================================================
type      input                               output
========  ==================================  =================================================================
omz       ``[batch, 3, 256, 128]`` float32     ``[batch, 256]``, not normalised (the graph starts with instance
          **RGB 0..255**, no mean/std          normalisation, so it wants raw pixels)
osnet     ``[batch, 3, 256, 128]`` float32     ``[batch, 512]`` after a ReLU (cosines sit high), not normalised
          RGB ``/255`` then ImageNet mean/std
========  ==================================  =================================================================

A crop is resized (bilinear, aspect not kept: both models were trained on crops stretched to 256x128) straight
into a preallocated batch tensor. The model is checked when it is loaded, and a model whose inputs or outputs do
not fit raises :class:`~agents.footfall.detectors.ModelShapeError` naming what was expected and what was found;
a missing file raises :class:`~agents.footfall.detectors.ModelNotFoundError`. A model with a fixed batch of 1
works, one crop per run.

Thread safety: ``InferenceSession.run`` may be called from several threads; the batch buffer is per call, so one
embedder can serve every camera. Measured on the 2-core dev VM (Xeon; the shared data README's 1.4 / 3.6 ms come
from another machine), per crop: OSNet x0.25 12.6 ms alone on 1 thread, 7.8 ms in batches of 8 on 2 threads; the
OMZ model 20.3 and 13.6 ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from agents.footfall.detectors import ModelNotFoundError, ModelShapeError, session_options

EmbeddingArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ReidModelSpec:
    """What a model family wants: input size, pixel scaling, and the embedding size it returns."""

    type: str
    input_hw: tuple[int, int]
    scale: float  # pixels (RGB 0..255) are multiplied by this, then ``(x - mean) / std``
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    embedding_dim: int


REID_MODELS: dict[str, ReidModelSpec] = {
    "omz": ReidModelSpec("omz", (256, 128), 1.0, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 256),
    "osnet": ReidModelSpec("osnet", (256, 128), 1.0 / 255.0, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 512),
}


def _shape(shape: Sequence[Any]) -> str:
    return "[" + ", ".join(str(d) if d not in (None, "") else "?" for d in shape) + "]"


def _io(args: Sequence[Any]) -> str:
    return ", ".join(f"{a.name} {a.type} {_shape(a.shape)}" for a in args) or "none"


class ReidEmbedder:
    """One re-identification ONNX model: :meth:`embed` turns BGR crops into unit vectors (``[n, d]`` float32)."""

    def __init__(self, model: Path | str, type: str, *, threads: int = 1, batch_size: int = 8) -> None:
        if type not in REID_MODELS:
            raise ValueError(f"unknown re-identification type {type!r}: expected one of {', '.join(REID_MODELS)}")
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be >= 1")
        import onnxruntime as ort

        self.spec = REID_MODELS[type]
        self.model_path = Path(model).expanduser()
        self.batch_size = int(batch_size)
        if not self.model_path.is_file():
            raise ModelNotFoundError(f"re-identification model file not found: {self.model_path.resolve()}")
        opts = session_options(threads)
        opts.log_severity_level = 3  # OSNet exports carry unused BatchNorm counters; onnxruntime warns per tensor
        try:
            self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types for bad files
            raise ModelShapeError(
                f"{type} re-identification model {self.model_path} could not be loaded: {exc}"
            ) from exc
        self._check_io()
        self.embedding_dim = self._warm_up()
        scale = np.float32(self.spec.scale)
        std = np.asarray(self.spec.std, np.float32)
        # (x * scale - mean) / std == x * a + b, per channel (RGB order)
        self._a = (scale / std).reshape(1, 3, 1, 1).astype(np.float32)
        self._b = (-np.asarray(self.spec.mean, np.float32) / std).reshape(1, 3, 1, 1).astype(np.float32)

    @property
    def name(self) -> str:
        return f"{self.spec.type}:{self.model_path.name}"

    def _expected(self) -> str:
        h, w = self.spec.input_hw
        return (
            f"one float input [batch, 3, {h}, {w}] and one float output [batch, {self.spec.embedding_dim}]"
            f" ({self.spec.type})"
        )

    def _check_io(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        found = f"found inputs {_io(inputs)}; outputs {_io(outputs)}"
        problem = f"{self.spec.type} re-identification model {self.model_path.name}: expected {self._expected()},"
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelShapeError(f"{problem} {found}")
        shape = list(inputs[0].shape)
        h, w = self.spec.input_hw
        static = [d if isinstance(d, int) and d > 0 else None for d in shape]
        if (
            inputs[0].type != "tensor(float)"
            or len(shape) != 4
            or static[1] not in (3, None)
            or static[2] not in (h, None)
            or static[3] not in (w, None)
        ):
            hint = ""
            if len(shape) == 4 and static[3] == 3:
                hint = " (channels last: this is not a [batch, 3, H, W] model)"
            raise ModelShapeError(f"{problem} {found}{hint}")
        out = list(outputs[0].shape)
        if len(out) != 2 or outputs[0].type != "tensor(float)":
            raise ModelShapeError(f"{problem} {found}")
        self._input_name: str = inputs[0].name
        self._output_name: str = outputs[0].name
        self._fixed_batch = static[0]

    def _warm_up(self) -> int:
        """One run on two grey crops (one if the batch is fixed at 1): the output shape the graph really gives."""
        n = 1 if self._fixed_batch == 1 else 2
        h, w = self.spec.input_hw
        out = self._run(np.full((n, 3, h, w), 0.5, np.float32))
        if out.ndim != 2 or out.shape[0] != n or out.shape[1] != self.spec.embedding_dim:
            raise ModelShapeError(
                f"{self.spec.type} re-identification model {self.model_path.name}: expected output"
                f" [{n}, {self.spec.embedding_dim}] for {n} crops, found {list(out.shape)}"
            )
        return int(out.shape[1])

    def _run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self._fixed_batch is not None and tensor.shape[0] != self._fixed_batch:
            outs = [self._run(tensor[i : i + 1]) for i in range(tensor.shape[0])]
            return np.concatenate(outs, axis=0)
        (out,) = self._session.run([self._output_name], {self._input_name: tensor})
        return np.asarray(out, np.float32)

    def preprocess(self, crops: Sequence[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """The ``[n, 3, H, W]`` input tensor for ``crops`` (BGR uint8, any sizes)."""
        h, w = self.spec.input_hw
        batch = np.empty((len(crops), h, w, 3), np.uint8)
        for i, crop in enumerate(crops):
            if not isinstance(crop, np.ndarray) or crop.ndim != 3 or crop.shape[2] != 3 or crop.dtype != np.uint8:
                found = f"{crop.dtype} {list(crop.shape)}" if isinstance(crop, np.ndarray) else type(crop).__name__
                raise ValueError(f"embed() needs (H, W, 3) uint8 BGR crops, got {found}")
            if crop.shape[0] < 1 or crop.shape[1] < 1:
                raise ValueError(f"embed() got an empty crop {list(crop.shape)}")
            cv2.resize(crop, (w, h), dst=batch[i], interpolation=cv2.INTER_LINEAR)
        # BGR -> RGB and HWC -> CHW in one transposed copy, then scale and normalise per channel.
        tensor = batch[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32)
        tensor *= self._a
        tensor += self._b
        return tensor

    def embed(self, crops: Sequence[npt.NDArray[np.uint8]]) -> EmbeddingArray:
        """L2-normalised embeddings ``[len(crops), d]`` of BGR uint8 crops, run ``batch_size`` at a time."""
        if not crops:
            return np.zeros((0, self.embedding_dim), np.float32)
        parts = []
        for start in range(0, len(crops), self.batch_size):
            parts.append(self._run(self.preprocess(crops[start : start + self.batch_size])))
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        return normalise(out)


def normalise(vectors: npt.NDArray[np.float32]) -> EmbeddingArray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out: EmbeddingArray = (vectors / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)
    return out
