"""Face v2: crop alignment geometry, the ONNX writer, the expression CNN and the v2 extractor."""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import FeatureSpecMismatch, MSAError
from core.extractors import EXTRACTORS
from core.extractors.face_align import (
    ANCHORS, CROP_SIZE, MIDLINE, MIRROR_PAIRS, TEMPLATE, align_face, crop_transform, similarity_transform,
    standardize_crops, symmetrize_template,
)
from core.extractors.face_cnn import (
    CLASSES, DEFAULT_WEIGHTS, ENV_VAR, WEIGHTS_SHA256, FaceCNNMissing, FaceExpressionCNN,
)
from core.extractors.visual import COLUMNS, MediaPipeFaceExtractor
from core.extractors.visual_v2 import (
    COLUMNS_V2, EXPRESSION_COLUMNS, MediaPipeFaceV2Extractor, detect_faces_in_images_v2, valence_readout,
    visual_spec_v2,
)
from core.feature_spec import default_spec, v1_spec
from models.recipes.common import default_data_dir

DATA = default_data_dir()  # $MSA_DATA_DIR or ../shared/data beside the repository


def _clips(folder: str, pattern: str) -> list[Path]:
    d = DATA / folder
    clips = sorted(d.glob(pattern)) if d.is_dir() else []
    if not clips:
        pytest.skip(f"no {pattern} in {d} (set MSA_DATA_DIR to the shared data folder)")
    return clips


# ------------------------------------------------------------------ alignment geometry
def _crop_to_image(angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    """2x3 similarity from crop (template) coordinates into an image."""
    a = math.radians(angle_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.hstack([r, np.array(shift, dtype=np.float64)[:, None]])


def _landmarks_for(m: np.ndarray, width: int, height: int) -> np.ndarray:
    """478 normalised landmarks whose ANCHORS are the template mapped into the image by m."""
    lm = np.full((478, 2), 0.5, dtype=np.float32)
    pts = TEMPLATE @ m[:, :2].T + m[:, 2]
    lm[list(ANCHORS)] = pts / np.array([width, height])
    return lm


def _dots_image(m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Dark RGB frame with a bright disc (radius 1.2 crop pixels) at each mapped anchor."""
    import cv2

    img = np.full((height, width, 3), 30, np.uint8)
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
    for x, y in TEMPLATE @ m[:, :2].T + m[:, 2]:
        # cv2 draws in pixel-centre coordinates; ours are edge coordinates (centre = edge - 0.5).
        cv2.circle(img, (int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16))), int(round(1.2 * scale * 16)),
                   (250, 250, 250), thickness=-1, lineType=cv2.LINE_AA, shift=4)
    return img


def test_template_is_symmetric_and_anchors_are_unique() -> None:
    assert len(set(ANCHORS)) == len(ANCHORS) == len(TEMPLATE) == 2 * len(MIRROR_PAIRS) + len(MIDLINE)
    np.testing.assert_allclose(symmetrize_template(TEMPLATE), TEMPLATE, atol=1e-9)
    assert ((TEMPLATE > 0) & (TEMPLATE < CROP_SIZE)).all()
    assert not TEMPLATE.flags.writeable


@pytest.mark.parametrize("angle,scale,shift", [(0, 1, (0, 0)), (17, 3.5, (180.0, 40.0)), (-30, 0.8, (20.0, 90.0))])
def test_similarity_recovers_known_transform(angle, scale, shift) -> None:
    m = _crop_to_image(angle, scale, shift)
    lm = _landmarks_for(m, 640, 360)
    inv = crop_transform(lm, 640, 360)
    back = (TEMPLATE @ m[:, :2].T + m[:, 2]) @ inv[:, :2].T + inv[:, 2]
    np.testing.assert_allclose(back, TEMPLATE, atol=1e-4)
    # the fitted transform is a similarity: equal singular values, no reflection
    sv = np.linalg.svd(inv[:, :2], compute_uv=False)
    assert sv[0] == pytest.approx(sv[1]) and sv[0] == pytest.approx(1 / scale, rel=1e-4)
    assert np.linalg.det(inv[:, :2]) > 0


def test_similarity_rejects_coincident_points() -> None:
    with pytest.raises(ValueError):
        similarity_transform(np.ones((12, 2)), TEMPLATE)


@pytest.mark.parametrize("angle,scale", [(0, 1.0), (25, 4.0), (-12, 7.5)])
def test_aligned_crop_puts_anchors_on_the_template(angle, scale) -> None:
    width, height = 640, 360
    shift = (320 - 24 * scale, 180 - 24 * scale)
    m = _crop_to_image(angle, scale, shift)
    crop = align_face(_dots_image(m, width, height), _landmarks_for(m, width, height))
    assert crop.shape == (CROP_SIZE, CROP_SIZE) and crop.dtype == np.uint8
    for x, y in TEMPLATE:
        assert crop[int(y), int(x)] > 150, (x, y)  # the pixel containing each anchor is bright
    assert crop[40, 8] < 60 and crop[44, 40] < 60  # away from the anchors it stays dark
    again = align_face(_dots_image(m, width, height), _landmarks_for(m, width, height))
    assert again.tobytes() == crop.tobytes()


@pytest.mark.parametrize("angle,scale", [(0, 1.0), (33, 2.5), (-8, 5.5)])
def test_crop_samples_the_source_where_the_transform_says(angle, scale) -> None:
    """On a linear ramp image every crop pixel must equal the ramp at its mapped source point
    (bilinear interpolation and block averaging reproduce a ramp exactly). The ramp is steep,
    ~4 grey levels per crop pixel, so that a half-pixel slip in the warp or the supersampling
    shows."""
    width, height = 640, 360
    v, u = np.mgrid[0:height, 0:width] + 0.5  # pixel centres in edge coordinates

    def ramp(x, y):
        return 128.0 + (2.0 / scale) * ((x - 320.0) + 0.8 * (y - 180.0))

    image = np.clip(np.round(ramp(u, v)), 0, 255).astype(np.uint8)
    m = _crop_to_image(angle, scale, (320 - 24 * scale, 180 - 24 * scale))  # crop inside the frame
    crop = align_face(image, _landmarks_for(m, width, height)).astype(np.float64)
    y, x = np.mgrid[0:CROP_SIZE, 0:CROP_SIZE] + 0.5
    expected = ramp(m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2])
    assert expected.min() > 5 and expected.max() < 250
    assert np.abs(crop - expected).max() <= 1.0


def test_crop_does_not_depend_on_rotation_or_size_of_the_face() -> None:
    crops = []
    for angle, scale in [(0, 2.0), (20, 2.0), (-15, 5.0)]:
        m = _crop_to_image(angle, scale, (320 - 24 * scale, 180 - 24 * scale))
        crops.append(align_face(_dots_image(m, 640, 360), _landmarks_for(m, 640, 360)).astype(float))
    assert np.abs(crops[0] - crops[1]).mean() < 6 and np.abs(crops[0] - crops[2]).mean() < 6


def test_grey_and_rgb_frames_give_the_same_crop() -> None:
    m = _crop_to_image(10, 3.0, (200.0, 60.0))
    rgb = _dots_image(m, 640, 360)
    lm = _landmarks_for(m, 640, 360)
    np.testing.assert_array_equal(align_face(rgb, lm), align_face(rgb[:, :, 0].copy(), lm))
    with pytest.raises(ValueError):
        align_face(rgb.astype(np.float32), lm)


def test_standardize_crops() -> None:
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 255, (3, 48, 48), dtype=np.uint8)
    crops[2] = 7  # flat crop: stays finite (std floor)
    x = standardize_crops(crops)
    assert x.shape == (3, 1, 48, 48) and x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_allclose(x[:2].mean(axis=(1, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(x[:2].std(axis=(1, 2, 3)), 1, atol=1e-4)
    assert not x[2].any()


# ------------------------------------------------------------------ ONNX export
def test_onnx_export_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from models.recipes.train_face_cnn import build_net, export_onnx

    torch.manual_seed(0)
    net = build_net((4, 6, 8, 10), 7, 0.3, stem_stride=2)
    for mod in net.modules():  # non-trivial BatchNorm statistics so that folding is exercised
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.5, 0.5)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
    net.eval()
    blob = export_onnx(net, list(CLASSES), {"note": "test"})
    assert blob == export_onnx(net, list(CLASSES), {"note": "test"})  # deterministic bytes
    sess = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((5, 1, 48, 48)).astype(np.float32)
    probs, emb = sess.run(["probs", "embedding"], {"crops": x})
    with torch.no_grad():
        ref = torch.softmax(net(torch.from_numpy(x)), 1).numpy()
        ref_emb = net.embed(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(probs, ref, atol=1e-5)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["classes"] == ",".join(CLASSES) and meta["note"] == "test"


# ------------------------------------------------------------------ shipped CNN
def test_shipped_weights_match_the_recorded_sha256() -> None:
    import json

    assert DEFAULT_WEIGHTS.is_file(), f"{DEFAULT_WEIGHTS} missing"
    report = json.loads((DEFAULT_WEIGHTS.parent / "report.json").read_text())
    assert hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest() == WEIGHTS_SHA256 == report["onnx_sha256"]
    assert visual_spec_v2().params["expression_sha256"] == WEIGHTS_SHA256
    assert DEFAULT_WEIGHTS.stat().st_size < 2_000_000


def test_cnn_outputs_probabilities() -> None:
    cnn = FaceExpressionCNN()
    rng = np.random.default_rng(0)
    probs = cnn.predict(rng.integers(0, 255, (4, 48, 48), dtype=np.uint8))
    assert probs.shape == (4, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert cnn.predict(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    with pytest.raises(ValueError):
        cnn.predict(np.zeros((2, 32, 32), np.uint8))


def test_missing_or_foreign_weights_fail_with_one_line(tmp_path, monkeypatch) -> None:
    with pytest.raises(FaceCNNMissing) as missing:
        FaceExpressionCNN(tmp_path / "none.onnx")
    assert "none.onnx" in str(missing.value) and "\n" not in str(missing.value)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.onnx"))
    with pytest.raises(FaceCNNMissing, match=ENV_VAR):
        FaceExpressionCNN()
    monkeypatch.delenv(ENV_VAR)
    other = tmp_path / "other.onnx"
    other.write_bytes(DEFAULT_WEIGHTS.read_bytes() + b"\0")
    with pytest.raises(FeatureSpecMismatch, match="sha256"):
        FaceExpressionCNN(other)
    monkeypatch.setenv(ENV_VAR, str(DEFAULT_WEIGHTS))
    assert FaceExpressionCNN().path == DEFAULT_WEIGHTS
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(MSAError) as bad:
        FaceExpressionCNN(broken, sha256=None).predict(np.zeros((1, 48, 48), np.uint8))
    assert "\n" not in str(bad.value)


# ------------------------------------------------------------------ v2 extractor contract
def test_v2_spec_and_registry() -> None:
    spec = visual_spec_v2()
    assert spec.extractor == "mediapipe-face-v2" and spec.rate_hz == 10.0 and spec.max_len == 80
    assert spec.dim == len(COLUMNS_V2) == len(set(COLUMNS_V2)) == 65
    assert COLUMNS_V2[:58] == COLUMNS and EXPRESSION_COLUMNS == [f"expr_{c}" for c in CLASSES]
    assert EXTRACTORS.get("mediapipe-face-v2") is MediaPipeFaceV2Extractor
    with MediaPipeFaceExtractor.from_spec(spec) as ext:
        assert isinstance(ext, MediaPipeFaceV2Extractor) and ext.dim == 65 and ext.columns == COLUMNS_V2
    with MediaPipeFaceExtractor.from_spec(v1_spec().visual) as ext:
        assert type(ext) is MediaPipeFaceExtractor and ext.dim == 58
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceExtractor.from_spec(v1_spec().with_modality("visual", extractor="mediapipe-face-v9").visual)
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceV2Extractor.from_spec(v1_spec().visual)  # v2 class never builds v1
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceExtractor.from_spec(spec.__class__(**{**spec.to_dict(), "dim": 58}))
    with pytest.raises(FeatureSpecMismatch, match="sha256"):
        MediaPipeFaceExtractor.from_spec(visual_spec_v2("0" * 64))
    with pytest.raises(FeatureSpecMismatch):
        MediaPipeFaceV2Extractor(expression="fer-embedding")


def test_pipeline_and_live_path_build_v2_from_the_spec() -> None:
    from analysis.live import PipelineLiveComponents
    from core.pipeline import FeaturePipeline

    pipeline = FeaturePipeline(replace(default_spec(), visual=visual_spec_v2()))
    with pipeline.new_visual_extractor() as ext:
        assert isinstance(ext, MediaPipeFaceV2Extractor)
    live = PipelineLiveComponents(pipeline)
    try:
        row, found, marks = live.frame_features(np.zeros((120, 160, 3), np.uint8))
    finally:
        live.close()
    assert row.shape == (65,) and not found and marks is None and not row.any()


def test_valence_readout() -> None:
    rows = np.zeros((3, 65), np.float32)
    rows[0, 58 + CLASSES.index("happy")] = 1.0
    rows[1, [58 + CLASSES.index(c) for c in ("angry", "sad")]] = 0.5
    rows[2, 58 + CLASSES.index("surprise")] = 1.0
    np.testing.assert_allclose(valence_readout(rows), [1.0, -1.0, 0.0])


def test_no_face_video_gives_masked_zero_rows() -> None:
    from core import media
    from tests.media_factory import cached_video

    path = cached_video(duration=1.0, fps=25, size=(320, 240), audio=False)
    with MediaPipeFaceExtractor.from_spec(visual_spec_v2(), keep_landmarks=True) as ext:
        track = ext.extract(media.iter_frames(path, fps=10.0))
    assert track.features.shape == (10, 65) and track.features.dtype == np.float32
    assert not track.features.any() and not track.face_mask.any()
    assert track.landmarks is not None and track.landmarks.shape == (10, 478, 2)
    with MediaPipeFaceV2Extractor() as ext:
        assert ext.extract([]).features.shape == (0, 65)


# ------------------------------------------------------------------ real faces (shared data)
@pytest.fixture(scope="module")
def grid_frames() -> list[tuple[float, np.ndarray]]:
    from core import media

    clip = _clips("grid", "*.mpg")[0]
    return [f for _, f in zip(range(20), media.iter_frames(clip, fps=10.0))]


@pytest.mark.needs_data
def test_v2_rows_on_a_real_face(grid_frames) -> None:
    with MediaPipeFaceExtractor() as v1, MediaPipeFaceV2Extractor() as v2:
        a = v1.extract(iter(grid_frames))
        b = v2.extract(iter(grid_frames))
    assert b.face_mask.all() and (a.face_mask == b.face_mask).all()
    np.testing.assert_array_equal(b.features[:, :58], a.features)  # v1 columns unchanged
    np.testing.assert_allclose(b.features[:, 58:].sum(1), 1.0, atol=1e-5)
    assert (b.features[:, 58:] >= 0).all()


@pytest.mark.needs_data
def test_v2_rows_for_still_face_images() -> None:
    from core.extractors.visual import detect_faces_in_images

    fer = DATA / "fer2013" / "train.npz"
    if not fer.is_file():
        pytest.skip(f"{fer} not found (set MSA_DATA_DIR to the shared data folder)")
    with np.load(fer) as z:
        images = z["images"][:12].copy()
    images[-1] = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)  # no face
    rows, found = detect_faces_in_images_v2(images)
    v1, found_v1 = detect_faces_in_images(images)
    assert rows.shape == (12, 65) and (found == found_v1).all() and found[:-1].sum() >= 9 and not found[-1]
    np.testing.assert_array_equal(rows[:, :58], v1)
    np.testing.assert_allclose(rows[found, 58:].sum(1), 1.0, atol=1e-5)
    assert not rows[~found].any()


@pytest.mark.needs_data
def test_cost_per_face_is_under_2_ms(grid_frames) -> None:
    # Thread CPU time, so that other jobs on a shared machine do not count.
    with MediaPipeFaceV2Extractor() as ext:
        marks = []
        for t, rgb in grid_frames:
            _, ok, lm = ext.process_frame(rgb, t)
            if ok:
                marks.append((rgb, lm))
        costs = []
        for rgb, lm in marks:
            c0 = time.thread_time()
            ext.expression(rgb, lm)
            costs.append(time.thread_time() - c0)
    assert len(costs) >= 10
    assert 1000 * float(np.median(costs)) < 2.0


@pytest.mark.needs_data
@pytest.mark.slow
def test_readout_sign_on_real_acted_clips() -> None:
    """A check on one real actor (RAVDESS actor 05; not used to train or choose anything)."""
    from core import media
    from models.recipes.common import RavdessName

    clips = _clips("ravdess_video", "*.mp4")
    means: dict[str, list[float]] = {"happy": [], "negative": []}
    for path in clips:
        emotion = RavdessName.parse(path.stem).emotion_name
        group = "happy" if emotion == "happy" else "negative" if emotion in ("sad", "fearful") else None
        if group is None:
            continue
        with MediaPipeFaceV2Extractor() as ext:
            track = ext.extract(media.iter_frames(path, fps=10.0))
        assert track.face_mask.mean() > 0.9
        means[group].append(float(valence_readout(track.features[track.face_mask]).mean()))
    assert len(means["happy"]) == 1 and len(means["negative"]) == 11
    assert means["happy"][0] > 0
    assert sum(m < 0 for m in means["negative"]) >= 9, means


def test_the_face_cnn_trains_with_one_thread_whatever_the_caller_set(tmp_path, monkeypatch) -> None:
    """Its pinned checksum was made with one torch thread; train_all runs the stage in a process
    with two, which wrote other weights (the float sums follow the thread count)."""
    import torch

    from models.recipes import train_face_cnn as recipe

    (tmp_path / "fer2013").mkdir()
    np.savez(tmp_path / "fer2013" / "train.npz", images=np.zeros((4, 48, 48), np.uint8),
             labels=np.zeros(4, np.int64), classes=np.array(["angry"]))
    monkeypatch.setattr(recipe, "landmark_fer", lambda images, work, workers: (np.ones(4, bool), np.zeros((4, 478, 2))))
    monkeypatch.setattr(recipe, "split_fer", lambda labels, classes, found: {k: np.ones(4, bool) for k in ("train", "heldout", "heldout_composed_dev", "heldout_unused", "composed_train")})
    monkeypatch.setattr(recipe, "derive_template", lambda marks: None)
    monkeypatch.setattr(recipe, "check_template", lambda template: None)
    monkeypatch.setattr(recipe, "cached_crops", lambda *a: np.zeros((4, 48, 48), np.uint8))
    seen = []

    class Stop(Exception):
        pass

    def train_net(*a, **k):
        seen.append(torch.get_num_threads())
        raise Stop

    monkeypatch.setattr(recipe, "train_net", train_net)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(Stop):
            recipe.run(tmp_path, tmp_path / "work", None, dict(recipe.DEFAULTS), workers=2, val=False)
        assert seen == [1]
        assert torch.get_num_threads() == 2  # the caller's setting is back
    finally:
        torch.set_num_threads(before)


def _fake_rebuild(monkeypatch, sha: str, diff: dict | None = None) -> None:
    """train_face_cnn.run writes a file whose report says `sha`; compare_weights returns `diff`."""
    from models.recipes import train_face_cnn as recipe

    def run(data, work, out, cfg, workers, val):
        out.mkdir(parents=True, exist_ok=True)
        (out / recipe.ONNX_NAME).write_bytes(b"rebuilt")
        (out / "report.json").write_text("{}")
        return {"onnx_sha256": sha}

    monkeypatch.setattr(recipe, "run", run)
    monkeypatch.setattr(recipe, "compare_weights", lambda data, work, a, b: diff)


def _diff(same_class: float, acc7: tuple[float, float], valence: tuple[float, float]) -> dict:
    return {"n": 100, "max_abs_prob_diff": 0.4, "same_class": same_class,
            "acc7": dict(zip("ab", acc7)), "valence_sign_acc": dict(zip("ab", valence))}


def test_recipe_copies_a_byte_identical_face_cnn(tmp_path, monkeypatch) -> None:
    from models.recipes.train_all import train_face_cnn

    _fake_rebuild(monkeypatch, WEIGHTS_SHA256)
    assert train_face_cnn(tmp_path, tmp_path / "work", tmp_path / "out", 1)["identical"]
    assert (tmp_path / "out" / "face" / "face_expression_cnn.onnx").read_bytes() == b"rebuilt"


def test_recipe_keeps_the_pinned_face_cnn_when_another_cpu_trains_other_bytes(tmp_path, monkeypatch) -> None:
    """Float kernels differ between CPU kinds: the rebuild is the same recipe's network but not the
    same bytes. The pinned file in OUT must survive (the shipped extractor refuses other weights)
    and the run goes on; a rebuild that is another network stops it."""
    from models.recipes.train_all import train_face_cnn

    pinned = tmp_path / "out" / "face" / "face_expression_cnn.onnx"
    pinned.parent.mkdir(parents=True)
    pinned.write_bytes(b"pinned")
    _fake_rebuild(monkeypatch, "0" * 64, _diff(0.88, (0.617, 0.620), (0.928, 0.922)))
    result = train_face_cnn(tmp_path, tmp_path / "work", tmp_path / "out", 1)
    assert result["kept"] == "pinned" and not result["identical"]
    assert pinned.read_bytes() == b"pinned"
    report = json.loads((tmp_path / "out" / "model_cards" / "reports" / "face_cnn_rebuild.json").read_text())
    assert report["rebuilt_sha256"] == "0" * 64
    for bad in (_diff(0.6, (0.617, 0.620), (0.928, 0.922)), _diff(0.88, (0.617, 0.55), (0.928, 0.922)),
                _diff(0.88, (0.617, 0.620), (0.928, 0.85))):
        _fake_rebuild(monkeypatch, "0" * 64, bad)
        with pytest.raises(SystemExit, match="not the pinned network"):
            train_face_cnn(tmp_path, tmp_path / "work", tmp_path / "out", 1)
        assert pinned.read_bytes() == b"pinned"


def test_compare_weights_of_a_file_with_itself(tmp_path, monkeypatch) -> None:
    from models.recipes import train_face_cnn as recipe

    rng = np.random.default_rng(0)
    (tmp_path / "fer2013").mkdir()
    labels = np.arange(8) % 7
    np.savez(tmp_path / "fer2013" / "train.npz", images=np.zeros((8, 48, 48), np.uint8), labels=labels,
             classes=np.array(list(CLASSES)))
    monkeypatch.setattr(recipe, "landmark_fer", lambda images, work, workers: (np.ones(8, bool), np.zeros((8, 478, 2))))
    monkeypatch.setattr(recipe, "split_fer", lambda labels, classes, found: {"heldout": np.arange(8) < 6})
    monkeypatch.setattr(recipe, "cached_crops", lambda *a: rng.integers(0, 256, (8, 48, 48)).astype(np.uint8))
    diff = recipe.compare_weights(tmp_path, tmp_path / "work", DEFAULT_WEIGHTS, DEFAULT_WEIGHTS)
    assert diff["n"] == 6 and diff["max_abs_prob_diff"] == 0.0 and diff["same_class"] == 1.0
    assert diff["acc7"]["a"] == diff["acc7"]["b"]
