"""Facial extractor ("mediapipe-face-v1") on synthetic frames, a GRID clip and FER2013 crops."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import FeatureSpecMismatch, MediaError, MSAError
from core.extractors import EXTRACTORS
from core.extractors.slicing import slice_track
from core.extractors.visual import (
    BLENDSHAPE_NAMES,
    COLUMNS,
    ExtractorClosedError,
    MediaPipeFaceExtractor,
    detect_faces_in_images,
    find_face_landmarker_model,
    pose_features,
    rotation_to_euler_deg,
)
from core.feature_spec import v1_spec
from tests.media_factory import DATA_DIR, GRID_DIR

FER_FILE = DATA_DIR / "fer2013" / "train.npz"


def _grid_frames(n: int, fps: float = 10.0) -> list[tuple[float, np.ndarray]]:
    av = pytest.importorskip("av")
    clips = sorted(GRID_DIR.glob("*.mpg")) if GRID_DIR.is_dir() else []
    if not clips:
        pytest.skip(f"GRID clips not found in {GRID_DIR}")
    out: list[tuple[float, np.ndarray]] = []
    next_t = 0.0
    with av.open(str(clips[0])) as container:
        for frame in container.decode(video=0):
            t = float(frame.time)
            if t + 1e-6 >= next_t:
                out.append((t, frame.to_ndarray(format="rgb24")))
                next_t += 1.0 / fps
            if len(out) == n:
                break
    return out


@pytest.fixture(scope="module")
def grid_frames() -> list[tuple[float, np.ndarray]]:
    return _grid_frames(8)


def _no_face_frames(n: int) -> list[tuple[float, np.ndarray]]:
    rng = np.random.default_rng(0)
    frames = []
    for i in range(n):
        img = np.zeros((120, 160, 3), np.uint8)
        img[..., 0] = np.linspace(0, 255, 160, dtype=np.uint8)[None, :]  # gradient + noise, no face
        img[..., 1] = rng.integers(0, 255, (120, 160), dtype=np.uint8)
        frames.append((i * 0.1, img))
    return frames


def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = map(math.radians, (yaw, pitch, roll))
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


# ------------------------------------------------------------------ contract
def test_columns_match_the_v1_spec() -> None:
    """The v1 columns (also the first 58 of the default v2 face features, tests/test_face_v2.py)."""
    spec = v1_spec().visual
    assert EXTRACTORS.get("mediapipe-face-v1") is MediaPipeFaceExtractor
    assert len(COLUMNS) == len(set(COLUMNS)) == spec.dim == 58
    assert len(BLENDSHAPE_NAMES) == 52
    with MediaPipeFaceExtractor.from_spec(spec) as ext:
        assert ext.dim == 58 and ext.columns == COLUMNS
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceExtractor.from_spec(v1_spec().with_modality("visual", dim=60).visual)
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceExtractor(landmarks=True)


def test_model_file_is_found() -> None:
    assert Path(find_face_landmarker_model()).is_file()
    with pytest.raises(MSAError):
        MediaPipeFaceExtractor(model_path="/nonexistent/face.task")


@pytest.mark.parametrize("angles", [(0, 0, 0), (30, 0, 0), (0, -20, 0), (0, 0, 45), (25, 10, -15)])
def test_euler_round_trip(angles: tuple[float, float, float]) -> None:
    np.testing.assert_allclose(rotation_to_euler_deg(_rot(*angles)), angles, atol=1e-6)


def test_pose_scaling() -> None:
    m = np.eye(4)
    m[:3, :3] = _rot(45, -9, 90)
    m[:3, 3] = [4.0, -2.0, -50.0]
    np.testing.assert_allclose(pose_features(m), [0.5, -0.1, 1.0, 0.2, -0.1, -0.5], atol=1e-6)


# ---------------------------------------------------------------- no face
def test_no_face_frames_give_masked_zero_rows() -> None:
    frames = _no_face_frames(5)
    with MediaPipeFaceExtractor(keep_landmarks=True) as ext:
        track = ext.extract(iter(frames), total=len(frames))
    assert track.features.shape == (5, 58) and track.features.dtype == np.float32
    assert not track.features.any()
    assert track.face_mask.shape == (5,) and not track.face_mask.any()
    np.testing.assert_allclose(track.times, [t for t, _ in frames])
    assert track.landmarks is not None and track.landmarks.shape == (5, 478, 2)
    # and the segment slicer then reports the modality as missing
    feats, mask = slice_track(track.times, track.features, 0, 1, 80, track.face_mask)
    assert not mask.any() and not feats.any()


def test_empty_frame_stream() -> None:
    with MediaPipeFaceExtractor() as ext:
        track = ext.extract([])
    assert track.features.shape == (0, 58) and track.face_mask.shape == (0,) and track.landmarks is None


def test_bad_frames_raise_media_error() -> None:
    with MediaPipeFaceExtractor() as ext:
        with pytest.raises(MediaError):
            ext.process_frame(np.zeros((10, 10, 3), np.float32), 0.0)
        with pytest.raises(MediaError):
            ext.process_frame(np.zeros((10, 10, 2), np.uint8), 0.0)
        feats, found, _ = ext.process_frame(np.zeros((64, 64), np.uint8), 0.1)  # gray is fine
        assert not found and feats.shape == (58,)


# ------------------------------------------------------------- timestamps
def test_video_timestamps_equal_or_decreasing_are_guarded() -> None:
    frame = _no_face_frames(1)[0][1]
    with MediaPipeFaceExtractor() as ext:
        for t in (0.5, 0.5, 0.2, 0.5004, float("nan"), 3.0):
            ext.process_frame(frame, t)  # mediapipe itself rejects non-increasing timestamps
        assert ext._last_ts_ms == 3000
    with MediaPipeFaceExtractor() as ext:
        stamps = [ext._next_timestamp_ms(t) for t in (0.0, 0.0, 0.0004, -1.0, 0.01, 0.0105)]
    assert stamps == [0, 1, 2, 3, 10, 11]


# ------------------------------------------------------------------ close
def test_close_releases_and_blocks_further_use() -> None:
    frame = _no_face_frames(1)[0][1]
    ext = MediaPipeFaceExtractor()
    ext.process_frame(frame, 0.0)
    assert ext._landmarker is not None
    ext.close()
    assert ext._landmarker is None
    ext.close()  # idempotent
    with pytest.raises(ExtractorClosedError, match="after close"):
        ext.process_frame(frame, 0.1)
    with pytest.raises(MSAError):
        ext.extract([(0.2, frame)])

    with MediaPipeFaceExtractor() as ctx_ext:
        ctx_ext.process_frame(frame, 0.0)
    assert ctx_ext._landmarker is None
    with pytest.raises(ExtractorClosedError):
        ctx_ext.process_frame(frame, 0.1)


def test_close_on_error_inside_context() -> None:
    with pytest.raises(MediaError):
        with MediaPipeFaceExtractor() as ext:
            ext.process_frame(np.zeros(5, np.uint8), 0.0)
    assert ext._landmarker is None and ext._closed


# -------------------------------------------------------------- real faces
def test_grid_clip_face_blendshapes_and_pose(grid_frames: list[tuple[float, np.ndarray]]) -> None:
    with MediaPipeFaceExtractor(keep_landmarks=True) as ext:
        track = ext.extract(grid_frames, total=len(grid_frames))
    assert track.face_mask.all()
    f = track.features
    blend, pose = f[:, :52], f[:, 52:]
    assert np.all((blend >= 0) & (blend <= 1))
    assert blend.max() > 0.2  # some expression is active (talking)
    assert np.all(np.abs(pose[:, :3]) < 30 / 90)  # GRID speakers face the camera
    assert np.all(pose[:, 5] < 0) and np.all(np.abs(pose) <= 1.5)  # face in front of the camera
    lm = track.landmarks
    assert lm is not None and lm.shape == (len(grid_frames), 478, 2)
    assert np.all((lm > 0) & (lm < 1))
    # the talking mouth moves between frames: jawOpen is not constant
    assert np.ptp(blend[:, BLENDSHAPE_NAMES.index("jawOpen")]) > 0.01


def test_blendshape_order_matches_mediapipe(grid_frames: list[tuple[float, np.ndarray]]) -> None:
    import mediapipe as mp

    with MediaPipeFaceExtractor(running_mode="IMAGE") as ext:
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(grid_frames[0][1]))
        result = ext._ensure_open().detect(image)
    assert [c.category_name for c in result.face_blendshapes[0]] == BLENDSHAPE_NAMES


def test_in_plane_rotation_shows_as_roll(grid_frames: list[tuple[float, np.ndarray]]) -> None:
    cv2 = pytest.importorskip("cv2")
    img = grid_frames[0][1]
    h, w = img.shape[:2]
    roll_col = COLUMNS.index("head_roll")
    with MediaPipeFaceExtractor(running_mode="IMAGE") as ext:
        base, ok0, _ = ext.process_frame(img, 0)
        turned = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h))
        rot, ok1, _ = ext.process_frame(turned, 0)
    assert ok0 and ok1
    # counter-clockwise on screen = positive roll about z (towards the viewer)
    assert (rot[roll_col] - base[roll_col]) * 90 == pytest.approx(15, abs=5)


def test_fer_faces_are_detected() -> None:
    if not FER_FILE.is_file():
        pytest.skip(f"FER2013 not found at {FER_FILE}")
    with np.load(FER_FILE) as data:
        images = data["images"][:40]
    feats, found = detect_faces_in_images(images)
    assert feats.shape == (40, 58) and found.shape == (40,)
    assert found.mean() >= 0.8  # 95 % on the first 500 faces
    assert not feats[~found].any()
    with pytest.raises(MediaError):
        detect_faces_in_images(images.astype(np.float32))
