"""The face-expression CNN at run time: ONNX weights, sha256-checked, one onnxruntime thread.

Weights: ``assets/face/face_expression_cnn.onnx`` (model card: ``assets/face/README.md``; recipe:
``models/recipes/train_face_cnn.py``). Another file can be used through the `weights` argument or
the environment variable ``MSA_ASSET_FACE_EXPRESSION``; its sha256 must match the one the feature
spec names (features from other weights are other features), otherwise construction fails with a
one-line `FeatureSpecMismatch`. A missing file gives a one-line `FaceCNNMissing`.

Input: 48x48 grey uint8 crops from `core.extractors.face_align.align_face`; they are standardised
here exactly as in training (`face_align.standardize_crops`). Output: the 7 FER2013 class
probabilities (`CLASSES` order). The session uses one intra-op thread and no inter-op pool, so the
visual threads of the pipeline never wait on each other's thread pools (about 0.4 ms of CPU per
face, assets/face/diagnostics.json).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from core.errors import FeatureSpecMismatch, MSAError
from core.extractors.face_align import CROP_SIZE, standardize_crops

CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
WEIGHTS_FILE = "face_expression_cnn.onnx"
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "face" / WEIGHTS_FILE
ENV_VAR = "MSA_ASSET_FACE_EXPRESSION"
#: sha256 of the shipped weights (assets/face/report.json "onnx_sha256").
WEIGHTS_SHA256 = "56fa3decf1f7e0f6bb6a1d75731345f481e81546712f639361593843795d560d"


class FaceCNNMissing(MSAError):
    """The face-expression CNN weights cannot be found or read."""


def resolve_weights(weights: str | os.PathLike[str] | None = None) -> Path:
    """`weights`, else $MSA_ASSET_FACE_EXPRESSION, else the shipped file; must exist."""
    chosen = weights if weights else os.environ.get(ENV_VAR, "").strip() or DEFAULT_WEIGHTS
    path = Path(chosen).expanduser()
    if not path.is_file():
        source = "argument" if weights else (ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "default path")
        raise FaceCNNMissing(f"face expression CNN weights not found: {path} ({source})")
    return path


class FaceExpressionCNN:
    """Loads and checks the weights on construction; the onnxruntime session starts on first use."""

    def __init__(self, weights: str | os.PathLike[str] | None = None, sha256: str | None = WEIGHTS_SHA256) -> None:
        self.path = resolve_weights(weights)
        try:
            self._blob = self.path.read_bytes()
        except OSError as exc:
            raise FaceCNNMissing(f"cannot read face expression CNN weights {self.path}: {exc}") from None
        self.sha256 = hashlib.sha256(self._blob).hexdigest()
        if sha256 and self.sha256 != sha256:
            raise FeatureSpecMismatch(
                f"face expression CNN weights {self.path} have sha256 {self.sha256[:16]}..., "
                f"the feature spec expects {sha256[:16]}..."
            )
        self._session = None

    def _ensure_session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            try:
                self._session = ort.InferenceSession(self._blob, opts, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types for a corrupt file
                raise FaceCNNMissing(f"cannot load face expression CNN {self.path}: {exc}".splitlines()[0]) from None
            meta = self._session.get_modelmeta().custom_metadata_map
            if meta.get("classes", ",".join(CLASSES)) != ",".join(CLASSES):
                raise FeatureSpecMismatch(f"face expression CNN {self.path} predicts {meta['classes']}, not {CLASSES}")
        return self._session

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """(N, 48, 48) uint8 crops -> (N, 7) float32 class probabilities."""
        x = np.asarray(crops)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != (CROP_SIZE, CROP_SIZE):
            raise ValueError(f"crops must be (N, {CROP_SIZE}, {CROP_SIZE}), got {x.shape}")
        if len(x) == 0:
            return np.zeros((0, len(CLASSES)), np.float32)
        probs = self._ensure_session().run(["probs"], {"crops": standardize_crops(x)})[0]
        return np.asarray(probs, dtype=np.float32)

    def close(self) -> None:
        self._session = None
