"""Checkpoint save/load: round trip, integrity, spec checks, and a short fuzz of the loader."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from core.errors import CheckpointError, FeatureSpecMismatch, MSAError
from core.feature_spec import default_spec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.checkpoint import checkpoint_paths, load_checkpoint, read_checkpoint_meta, save_checkpoint
from models.registry import MODELS, model_names

TEST_MODEL = "test-ckpt-tiny"


class TinyModel(MSAModel):
    name = TEST_MODEL

    def __init__(self, spec, hidden: int = 8, **cfg):
        super().__init__(spec, hidden=hidden, **cfg)
        self.proj = nn.ModuleDict({m: nn.Linear(spec.dims[m], hidden) for m in ("text", "audio", "visual")})
        self.head = nn.Linear(3 * hidden, 1)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        pooled = []
        for m in ("text", "audio", "visual"):
            x, mask = getattr(batch, m), getattr(batch, f"{m}_mask").float().unsqueeze(-1)
            pooled.append(self.proj[m]((x * mask).sum(1) / mask.sum(1).clamp(min=1)))
        return ModelOutput(score=self.head(torch.cat(pooled, -1)).squeeze(-1) * self.scale)


@pytest.fixture(scope="module")
def registered():
    model_names()  # load the zoo first so our test entry cannot collide with a later import
    MODELS.register(TEST_MODEL)(TinyModel)
    yield TEST_MODEL
    MODELS._items.pop(TEST_MODEL, None)


def batch_for(spec, B=3, seed=0) -> ModalityBatch:
    g = torch.Generator().manual_seed(seed)
    d = spec.dims
    return ModalityBatch(
        text=torch.randn(B, 7, d["text"], generator=g), text_mask=torch.ones(B, 7, dtype=torch.bool),
        audio=torch.randn(B, 9, d["audio"], generator=g), audio_mask=torch.ones(B, 9, dtype=torch.bool),
        visual=torch.randn(B, 5, d["visual"], generator=g), visual_mask=torch.ones(B, 5, dtype=torch.bool),
    )


@pytest.fixture()
def saved(tmp_path, registered):
    spec = default_spec()
    torch.manual_seed(0)
    model = TinyModel(spec, hidden=8)
    path = save_checkpoint(tmp_path, model, model_name=TEST_MODEL, config={"hidden": 8}, spec=spec,
                           training={"epochs": 3, "seed": 1}, metrics={"MAE": 0.5, "Corr": float("nan")})
    return model, path, spec


def test_round_trip_gives_identical_outputs(saved) -> None:
    model, path, spec = saved
    assert path.suffix == ".safetensors" and path.with_suffix(".json").is_file()
    loaded, meta = load_checkpoint(path, expected_spec=spec)
    assert meta.model_name == TEST_MODEL and meta.config == {"hidden": 8}
    assert meta.spec == spec and meta.training["epochs"] == 3
    assert meta.metrics == {"MAE": 0.5, "Corr": None}  # NaN stored as null: strict JSON
    assert not loaded.training
    b = batch_for(spec)
    model.eval()
    assert torch.equal(model(b).score, loaded(b).score)
    # the stem and the .json path work too
    load_checkpoint(path.with_suffix(""))
    load_checkpoint(path.with_suffix(".json"))


def test_tampered_weights_are_refused(saved) -> None:
    _, path, _ = saved
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash"):
        load_checkpoint(path)


def test_spec_mismatch_names_fields(saved) -> None:
    _, path, spec = saved
    other = spec.with_modality("audio", dim=33)
    with pytest.raises(FeatureSpecMismatch, match=rf"audio\.dim: {spec.audio.dim} != 33"):
        load_checkpoint(path, expected_spec=other)


def test_truncated_json(saved) -> None:
    _, path, _ = saved
    meta = path.with_suffix(".json")
    meta.write_text(meta.read_text()[:50])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_missing_files(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nothing.safetensors")


def _edit_meta(path: Path, reseal: bool = True, **changes) -> None:
    """Edit the sidecar; with `reseal` also renew its digest, as `seal_checkpoints --accept-edits`
    does, so that the checks behind the digest are reached."""
    from models.checkpoint import seal_sidecar

    meta_path = path.with_suffix(".json")
    d = json.loads(meta_path.read_text())
    d.update(changes)
    meta_path.write_text(json.dumps(d))
    if reseal:
        seal_sidecar(path, accept_edits=True)


def test_unknown_model_is_a_clear_error(saved) -> None:
    _, path, _ = saved
    _edit_meta(path, model_name="no-such-model")
    with pytest.raises(CheckpointError, match="no-such-model"):
        load_checkpoint(path)


def test_state_dict_mismatch_lists_keys(saved) -> None:
    _, path, _ = saved
    _edit_meta(path, config={"hidden": 16})  # the hash still matches: weights untouched
    with pytest.raises(CheckpointError, match=r"shape mismatch .*head\.weight"):
        load_checkpoint(path)


def test_read_meta_only(saved) -> None:
    _, path, spec = saved
    meta = read_checkpoint_meta(path)
    assert meta.spec.fingerprint() == spec.fingerprint()
    assert checkpoint_paths(path)[0] == path


# ------------------------------------------------------------------------------------ fuzzing


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, registered):
    d = tmp_path_factory.mktemp("pristine")
    spec = default_spec()
    path = save_checkpoint(d, TinyModel(spec), model_name=TEST_MODEL, config={"hidden": 8}, spec=spec,
                           training={}, metrics=None)
    return path.read_bytes(), path.with_suffix(".json").read_bytes()


def _write_pair(root: Path, weights: bytes, meta: bytes) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "m.safetensors").write_bytes(weights)
    (root / "m.json").write_bytes(meta)
    return root / "m.safetensors"


def _expect_msa_error_or_success(path: Path) -> None:
    try:
        load_checkpoint(path)
    except MSAError:
        pass  # anything else (KeyError, SafetensorError, ...) fails the test


def _resealed(raw: bytes) -> bytes:
    """The sidecar with its digest renewed (when it can be computed at all)."""
    from models.checkpoint import sidecar_digest

    try:
        d = json.loads(raw)
        d["meta_sha256"] = sidecar_digest(d)
        return json.dumps(d).encode()
    except (ValueError, TypeError, RecursionError):
        return raw


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.data())
def test_fuzz_meta_json(tmp_path, pristine, data) -> None:
    weights, meta = pristine
    d = json.loads(meta)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=6)
    mode = data.draw(st.sampled_from(["bytes", "flip", "value", "nested"]))
    if mode == "bytes":
        raw = data.draw(st.binary(max_size=200))
    elif mode == "flip":
        pos = data.draw(st.integers(0, len(meta) - 1))
        raw = meta[:pos] + bytes([data.draw(st.integers(0, 255))]) + meta[pos + 1:]
    elif mode == "value":
        d[data.draw(st.sampled_from(sorted(d)))] = data.draw(json_values)
        raw = json.dumps(d).encode()
    else:
        m = data.draw(st.sampled_from(["text", "audio", "visual"]))
        d["spec"][m][data.draw(st.sampled_from(sorted(d["spec"][m])))] = data.draw(json_values)
        raw = json.dumps(d).encode()
    if mode in ("value", "nested") and data.draw(st.booleans()):
        raw = _resealed(raw)  # also fuzz what lies behind the digest check
    _expect_msa_error_or_success(_write_pair(tmp_path / "f", weights, raw))


@FUZZ
@given(data=st.data())
def test_fuzz_weights_with_matching_hash(tmp_path, pristine, data) -> None:
    """Corrupt weights whose hash was updated too, so the safetensors parser itself is exercised."""
    import hashlib

    weights, meta = pristine
    if data.draw(st.booleans()):
        blob = data.draw(st.binary(max_size=300))
    else:
        blob = bytearray(weights)
        for _ in range(data.draw(st.integers(1, 4))):
            blob[data.draw(st.integers(0, min(len(blob) - 1, 400)))] = data.draw(st.integers(0, 255))
        blob = bytes(blob[: data.draw(st.integers(0, len(blob)))])
    d = json.loads(meta)
    d["sha256"] = hashlib.sha256(blob).hexdigest()
    _expect_msa_error_or_success(_write_pair(tmp_path / "w", blob, _resealed(json.dumps(d).encode())))
    shutil.rmtree(tmp_path / "w")


# ------------------------------------------------------------------- sealed sidecars (issue 10)


def _edit_spec(path: Path, modality: str, key: str, value) -> None:
    meta_path = path.with_suffix(".json")
    d = json.loads(meta_path.read_text())
    d["spec"][modality][key] = value
    meta_path.write_text(json.dumps(d, indent=2))


def _one_line(exc: BaseException) -> str:
    assert "\n" not in str(exc) and str(exc)
    return str(exc)


def test_sidecar_edited_to_another_frame_rate_is_refused(saved) -> None:
    _, path, _ = saved
    _edit_spec(path, "visual", "rate_hz", 5.0)  # weights and their sha256 untouched
    with pytest.raises(CheckpointError, match="edited") as info:
        load_checkpoint(path)
    _one_line(info.value)
    with pytest.raises(CheckpointError, match="edited"):
        read_checkpoint_meta(path)  # the cheap spec check before extraction sees it too


@pytest.mark.parametrize("change", [
    {"config": {"hidden": 16}},
    {"model_name": "other"},
    {"training": {"epochs": 300}},
    {"metrics": {"MAE": 0.01}},
    {"sha256": "0" * 64},
])
def test_any_edit_of_the_sidecar_is_refused(saved, change) -> None:
    _, path, _ = saved
    _edit_meta(path, reseal=False, **change)
    with pytest.raises(CheckpointError, match="edited") as info:
        load_checkpoint(path)
    _one_line(info.value)


def test_reformatting_the_sidecar_is_not_an_edit(saved) -> None:
    _, path, spec = saved
    meta_path = path.with_suffix(".json")
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()), indent=None, sort_keys=True))
    load_checkpoint(path, expected_spec=spec)


def test_unsealed_sidecar_names_the_command_that_seals_it(saved) -> None:
    import subprocess
    import sys

    model, path, spec = saved
    meta_path = path.with_suffix(".json")
    d = json.loads(meta_path.read_text())
    d.pop("meta_sha256")
    d["format_version"] = 1  # written by an earlier version
    meta_path.write_text(json.dumps(d, indent=2))
    with pytest.raises(CheckpointError, match="seal_checkpoints") as info:
        load_checkpoint(path)
    _one_line(info.value)
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "models.recipes.seal_checkpoints", str(path)]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sealed = meta_path.read_bytes()
    loaded, meta = load_checkpoint(path, expected_spec=spec)
    model.eval()
    b = batch_for(spec)
    assert torch.equal(model(b).score, loaded(b).score)
    # repeatable: a second run changes nothing
    assert subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=120).returncode == 0
    assert meta_path.read_bytes() == sealed


def test_sealing_refuses_edits_and_bad_weights_unless_asked(saved) -> None:
    from models.checkpoint import seal_sidecar

    _, path, _ = saved
    _edit_spec(path, "visual", "rate_hz", 5.0)
    with pytest.raises(CheckpointError, match="accept"):
        seal_sidecar(path)
    seal_sidecar(path, accept_edits=True)  # the user's explicit decision
    assert read_checkpoint_meta(path).spec.visual.rate_hz == 5.0
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="hash"):
        seal_sidecar(path, accept_edits=True)  # never bless damaged weights


def test_shipped_checkpoints_are_sealed_and_load() -> None:
    from models.checkpoint import seal_sidecar

    shipped = sorted((Path(__file__).resolve().parent.parent / "assets" / "checkpoints").glob("*.safetensors"))
    if not shipped:
        pytest.skip("no shipped checkpoints in assets/checkpoints")
    for path in shipped:
        meta = read_checkpoint_meta(path)
        assert meta.format_version >= 2, path.name
        load_checkpoint(path)
        before = path.with_suffix(".json").read_bytes()
        assert seal_sidecar(path) is False and path.with_suffix(".json").read_bytes() == before  # already sealed
