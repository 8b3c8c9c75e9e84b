"""Per-frame facial features v2 ("mediapipe-face-v2"): the 58 v1 columns + 7 expression columns.

The v1 columns (MediaPipe blendshapes + head pose) describe a face in terms MediaPipe learned from
its own training faces; on people it has not seen they carry little of the expression. v2 adds the
class probabilities of a small CNN trained on real expression photos (FER2013), run on a 48x48 grey
crop cut around the same MediaPipe landmarks the same way at training and at run time.

Columns, all float32:

=================  =========================================================================
0..57              exactly the mediapipe-face-v1 columns (`core.extractors.visual.COLUMNS`:
                   52 blendshape scores, head_yaw/pitch/roll, head_tx/ty/tz)
expr_angry         P(angry) from the expression CNN, in [0, 1]
expr_disgust       P(disgust)
expr_fear          P(fear)
expr_happy         P(happy)
expr_neutral       P(neutral)
expr_sad           P(sad)
expr_surprise      P(surprise); the 7 expr_* columns sum to 1 on a face frame
=================  =========================================================================

The crop is `core.extractors.face_align.align_face(frame, landmarks)`; the CNN is
`core.extractors.face_cnn.FaceExpressionCNN` (ONNX weights in assets/face/, sha256-checked against
the spec's ``expression_sha256``), one crop per face (averaging with the mirrored crop gained
nothing on validation faces: assets/face/README.md). A simple valence readout is
``expr_happy - (expr_angry + expr_disgust + expr_fear + expr_sad)`` (`valence_readout`).

Frames without a face give an all-zero row (expr_* included) and face_mask False, as in v1.
One extractor per thread (the landmarker is not thread-safe).
"""
from __future__ import annotations

import os
import numpy as np

from core.errors import FeatureSpecMismatch
from core.extractors import register_extractor
from core.extractors.face_align import align_face
from core.extractors.face_cnn import CLASSES, WEIGHTS_SHA256, FaceExpressionCNN
from core.extractors.visual import (
    COLUMNS, N_BLENDSHAPES, POSE_NAMES, MediaPipeFaceExtractor, as_rgb_uint8, detect_faces_and_landmarks,
    prepare_small_face,
)
from core.feature_spec import ModalitySpec

EXTRACTOR_NAME_V2 = "mediapipe-face-v2"
EXPRESSION_KIND = "fer2013-7class-probs"
EXPRESSION_COLUMNS: list[str] = [f"expr_{c}" for c in CLASSES]
COLUMNS_V2: list[str] = COLUMNS + EXPRESSION_COLUMNS
_NEGATIVE = [CLASSES.index(c) for c in ("angry", "disgust", "fear", "sad")]
_HAPPY = CLASSES.index("happy")


def visual_spec_v2(expression_sha256: str = WEIGHTS_SHA256) -> ModalitySpec:
    """The ModalitySpec of features made by this extractor with the shipped CNN weights."""
    return ModalitySpec(
        extractor=EXTRACTOR_NAME_V2,
        dim=len(COLUMNS_V2),
        rate_hz=10.0,
        max_len=80,
        params={
            "blendshapes": N_BLENDSHAPES,
            "pose": len(POSE_NAMES),
            "landmarks": False,
            "expression": EXPRESSION_KIND,
            "expression_sha256": expression_sha256,
        },
    )


def expression_valence(probs: np.ndarray) -> np.ndarray:
    """P(happy) - P(angry + disgust + fear + sad) of CNN probabilities (..., 7) -> (...,), in [-1, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    return p[..., _HAPPY] - p[..., _NEGATIVE].sum(-1)


def valence_readout(rows: np.ndarray) -> np.ndarray:
    """`expression_valence` of the expr_* columns of v2 rows (..., 65) -> (...,)."""
    return expression_valence(np.asarray(rows)[..., len(COLUMNS):])


@register_extractor(EXTRACTOR_NAME_V2)
class MediaPipeFaceV2Extractor(MediaPipeFaceExtractor):
    """v1's landmarker and columns, plus the expression CNN on the aligned crop of each face."""

    name = EXTRACTOR_NAME_V2
    columns: list[str] = COLUMNS_V2

    def __init__(
        self,
        model_path: str | None = None,
        *,
        expression: str = EXPRESSION_KIND,
        expression_sha256: str = WEIGHTS_SHA256,
        expression_weights: str | os.PathLike[str] | None = None,
        **v1_options: Any,
    ) -> None:
        """`v1_options` are MediaPipeFaceExtractor's (keep_landmarks, running_mode, min_confidence and
        the spec's blendshapes / pose / landmarks); `expression_weights` overrides the CNN file."""
        if expression != EXPRESSION_KIND:
            raise FeatureSpecMismatch(f"{EXTRACTOR_NAME_V2} gives expression={EXPRESSION_KIND!r}, spec asked for {expression!r}")
        super().__init__(model_path, **v1_options)
        # Checked now (file + sha256, ~1 ms) so a bad spec or a missing file fails before any work.
        self._cnn = FaceExpressionCNN(expression_weights, expression_sha256)

    @property
    def dim(self) -> int:
        return len(COLUMNS_V2)

    def process_frame(self, rgb: np.ndarray, t: float) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """(features (65,), face_found, landmarks (478, 2) normalised x/y or None) for one frame."""
        image = as_rgb_uint8(rgb)
        feats, found, marks = super().process_frame(image, t)
        row = np.zeros(len(COLUMNS_V2), dtype=np.float32)
        if not found or marks is None:
            return row, False, marks
        row[: len(COLUMNS)] = feats
        row[len(COLUMNS):] = self.expression(image, marks)
        return row, True, marks

    def expression(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The 7 expr_* values (CNN class probabilities) for the face with these landmarks."""
        return self._cnn.predict(align_face(image, landmarks)[None])[0]

    def close(self) -> None:
        super().close()
        cnn = getattr(self, "_cnn", None)
        if cnn is not None:
            cnn.close()


def still_face_crop(image: np.ndarray, landmarks: np.ndarray, upscale_to: int = 192, pad_frac: float = 0.25) -> np.ndarray:
    """48x48 crop of a still face image whose landmarks came from `detect_faces_and_landmarks` (same
    upscale_to / pad_frac): cut from the upscaled image with an edge-replicated border."""
    return align_face(prepare_small_face(image, upscale_to, pad_frac, fill="replicate"), landmarks)


def detect_faces_in_images_v2(
    images: np.ndarray,
    upscale_to: int = 192,
    pad_frac: float = 0.25,
    expression_weights: str | os.PathLike[str] | None = None,
    expression_sha256: str = WEIGHTS_SHA256,
    **detect_options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """v2 rows for still face crops (e.g. FER2013): (features (N, 65), found (N,)).

    The v1 part is `core.extractors.visual.detect_faces_in_images` (same arguments: `detect_options`
    are its min_confidence, model_path, ctx); the crop is `still_face_crop`, exactly as the CNN's
    training crops were cut (models/recipes/train_face_cnn.py).
    """
    cnn = FaceExpressionCNN(expression_weights, expression_sha256)
    feats, found, marks = detect_faces_and_landmarks(images, upscale_to, pad_frac, **detect_options)
    rows = np.zeros((len(feats), len(COLUMNS_V2)), dtype=np.float32)
    rows[:, : len(COLUMNS)] = feats
    idx = np.flatnonzero(found)
    for lo in range(0, len(idx), 256):
        part = idx[lo : lo + 256]
        crops = np.stack([still_face_crop(images[i], marks[i], upscale_to, pad_frac) for i in part])
        rows[part, len(COLUMNS):] = cnn.predict(crops)
    return rows, found
