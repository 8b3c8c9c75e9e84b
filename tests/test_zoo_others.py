"""Tests for Self-MM, CENet, ConKI, TFN, MulT and the late-fusion baseline (models/zoo)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.feature_spec import FeatureSpec, ModalitySpec, default_spec
from models.base import ModalityBatch, ModelOutput
from models.registry import build_model
from models.zoo.common import ModelNotReadyError, compact_valid, last_valid_step, lstm_final_state

torch.set_num_threads(1)

MODELS = ("self-mm", "cenet", "conki", "tfn", "mult", "late-fusion")
EXPECTED_TERMS = {
    "self-mm": {"task", "text", "audio", "visual"},
    "cenet": {"task", "l1"},
    "conki": {"task", "hcl", "hcl_modality", "hcl_sample", "knowledge_cos"},
    "tfn": {"task"},
    "mult": {"task"},
    "late-fusion": {"task", "text", "audio", "visual"},
}
HAS_UNIMODAL = {"self-mm", "late-fusion"}


def mosi_spec() -> FeatureSpec:
    """MMSA's MOSI feature shapes (BERT 768, COVAREP-5, FACET-20, all length 50)."""
    return FeatureSpec(
        text=ModalitySpec("bert-base", 768, None, 50),
        audio=ModalitySpec("covarep-mmsa", 5, None, 50),
        visual=ModalitySpec("facet-mmsa", 20, None, 50),
        name="mmsa-mosi",
    )


SPECS = {"default": default_spec, "mosi": mosi_spec}


def make_batch(spec: FeatureSpec, b: int = 3, seed: int = 0, lengths: dict[str, int] | None = None) -> ModalityBatch:
    """Random features with prefix masks (text, audio) and a holey visual mask (faceless frames)."""
    g = torch.Generator().manual_seed(seed)
    lens = lengths or {m: spec.modality(m).max_len for m in ("text", "audio", "visual")}
    feats, masks = {}, {}
    for m in ("text", "audio", "visual"):
        t, d = lens[m], spec.dims[m]
        feats[m] = torch.randn(b, t, d, generator=g)
        valid = torch.randint(max(2, t // 3), t + 1, (b,), generator=g)
        mask = torch.arange(t).unsqueeze(0) < valid.unsqueeze(1)
        if m == "visual":
            mask &= torch.rand(b, t, generator=g) > 0.25
            mask[:, 0] = True
        masks[m] = mask
    return ModalityBatch(
        text=feats["text"], text_mask=masks["text"],
        audio=feats["audio"], audio_mask=masks["audio"],
        visual=feats["visual"], visual_mask=masks["visual"],
    )


def build(name: str, spec: FeatureSpec, seed: int = 0, **cfg) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model(name, spec, **cfg)
    if name == "cenet":
        rng = np.random.default_rng(seed)
        model.fit_vocabularies(rng.normal(size=(400, spec.dims["audio"])), rng.normal(size=(400, spec.dims["visual"])))
    return model


def corrupt_padding(batch: ModalityBatch, extra: int = 7, seed: int = 1) -> ModalityBatch:
    """Same valid content; padded steps filled with large garbage and `extra` garbage steps appended."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m in ("text", "audio", "visual"):
        x, mask = getattr(batch, m), getattr(batch, f"{m}_mask")
        garbage = 100.0 * torch.randn(x.shape, generator=g)
        x = torch.where(mask.unsqueeze(-1), x, garbage)
        tail = 100.0 * torch.randn(x.shape[0], extra, x.shape[2], generator=g)
        out[m] = torch.cat([x, tail], dim=1)
        out[f"{m}_mask"] = torch.cat([mask, torch.zeros(x.shape[0], extra, dtype=torch.bool)], dim=1)
    return ModalityBatch(**out)


def drop_modality(batch: ModalityBatch, m: str) -> ModalityBatch:
    kw = {f: getattr(batch, f) for f in ("text", "text_mask", "audio", "audio_mask", "visual", "visual_mask")}
    kw[m] = torch.zeros_like(kw[m])
    kw[f"{m}_mask"] = torch.zeros_like(kw[f"{m}_mask"])
    return ModalityBatch(**kw)


# ------------------------------------------------------------------------------ contract


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes_and_loss_terms(name: str, spec_name: str) -> None:
    spec = SPECS[spec_name]()
    model = build(name, spec)
    model.train()
    batch = make_batch(spec, b=3)
    labels = torch.tensor([-1.5, 0.4, 2.2])
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.score.shape == (3,)
    if name in HAS_UNIMODAL:
        assert set(out.unimodal) == {"text", "audio", "visual"}
        assert all(v.shape == (3,) for v in out.unimodal.values())
    else:
        assert out.unimodal == {}
    loss, terms = model.training_loss(out, batch, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert set(terms) == EXPECTED_TERMS[name] or (name == "self-mm" and set(terms) == {"task"})
    assert all(np.isfinite(v) for v in terms.values())
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


@pytest.mark.parametrize("name", MODELS)
def test_padding_does_not_influence_outputs(name: str) -> None:
    spec = mosi_spec()
    model = build(name, spec).eval()
    batch = make_batch(spec, b=3, seed=3)
    with torch.no_grad():
        ref = model(batch)
        got = model(corrupt_padding(batch))
    torch.testing.assert_close(got.score, ref.score, atol=1e-4, rtol=1e-4)
    for m in ref.unimodal:
        torch.testing.assert_close(got.unimodal[m], ref.unimodal[m], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("missing", ["text", "audio", "visual"])
@pytest.mark.parametrize("name", MODELS)
def test_fully_masked_modality_is_finite(name: str, missing: str) -> None:
    spec = mosi_spec()
    model = build(name, spec).train()
    batch = drop_modality(make_batch(spec, b=3, seed=5), missing)
    out = model(batch)
    assert torch.isfinite(out.score).all()
    assert all(torch.isfinite(v).all() for v in out.unimodal.values())
    loss, _ = model.training_loss(out, batch, torch.tensor([1.0, -1.0, 0.0]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # The missing modality's content is irrelevant: garbage under a False mask changes nothing.
    model.eval()
    with torch.no_grad():
        noisy = drop_modality(batch, missing)
        setattr(noisy, missing, 50.0 * torch.randn_like(getattr(noisy, missing)))
        torch.testing.assert_close(model(noisy).score, model(batch).score, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", MODELS)
def test_batch_of_one_trains(name: str) -> None:
    """Last batches of an epoch can hold one sample (TFN's BatchNorm must not fail on them)."""
    spec = mosi_spec()
    model = build(name, spec).train()
    batch = make_batch(spec, b=1, seed=9)
    out = model(batch)
    assert out.score.shape == (1,)
    loss, _ = model.training_loss(out, batch, torch.tensor([0.7]))
    loss.backward()
    assert torch.isfinite(loss)


# ---------------------------------------------------------------------------- helpers


def test_compact_valid_and_lstm_use_exactly_the_valid_steps() -> None:
    x = torch.arange(12, dtype=torch.float32).view(2, 6, 1)
    mask = torch.tensor([[True, False, True, False, False, True], [False] * 6])
    xs, lengths = compact_valid(x, mask)
    assert lengths.tolist() == [3, 0]
    assert xs[0, :3, 0].tolist() == [0.0, 2.0, 5.0]
    lstm = torch.nn.LSTM(1, 4, batch_first=True)
    h = lstm_final_state(lstm, x, mask)
    _, (ref, _) = lstm(torch.tensor([[[0.0], [2.0], [5.0]]]))
    torch.testing.assert_close(h[0], ref[-1, 0])
    assert torch.all(h[1] == 0)
    last = last_valid_step(x, mask)
    assert last[:, 0].tolist() == [5.0, 0.0]


# ------------------------------------------------------------------------------ CENet


def test_cenet_requires_fitted_vocabularies() -> None:
    spec = mosi_spec()
    model = build_model("cenet", spec)
    with pytest.raises(ModelNotReadyError, match="fit_vocabularies"):
        model(make_batch(spec))


def test_cenet_vocabulary_fitting_quantizes_clusters_and_round_trips() -> None:
    spec = mosi_spec()
    rng = np.random.default_rng(0)
    centres_a = rng.normal(scale=10.0, size=(4, 5))
    centres_v = rng.normal(scale=10.0, size=(3, 20))
    which_a = rng.integers(0, 4, 600)
    which_v = rng.integers(0, 3, 600)
    frames_a = centres_a[which_a] + rng.normal(scale=0.1, size=(600, 5))
    frames_v = centres_v[which_v] + rng.normal(scale=0.1, size=(600, 20))
    model = build_model("cenet", spec, k_audio=4)
    model.fit_vocabularies(frames_a, frames_v, k_visual=3)  # k_visual differs from config: table rebuilt
    assert model.config["k_visual"] == 3 and model.ce.embeddings["visual"].num_embeddings == 4
    frames = torch.tensor(frames_a[None], dtype=torch.float32)
    ids = model.quantize("audio", frames, torch.ones(1, 600, dtype=torch.bool))[0]
    # One id per true cluster and a bijection between clusters and ids.
    mapping = {int(c): {int(i) for i in ids[torch.from_numpy(which_a == c)]} for c in range(4)}
    assert all(len(v) == 1 for v in mapping.values())
    assert len(set.union(*mapping.values())) == 4
    mask = torch.ones(1, 600, dtype=torch.bool)
    mask[0, 10:] = False
    padded = model.quantize("audio", frames, mask)[0]
    assert torch.all(padded[10:] == 4)  # padding id = k

    clone = build_model("cenet", spec, **model.config)
    clone.load_state_dict(model.state_dict())
    batch = make_batch(spec)
    model.eval()
    clone.eval()
    with torch.no_grad():
        torch.testing.assert_close(clone(batch).score, model(batch).score)


# ----------------------------------------------------------------------------- Self-MM


def test_self_mm_label_memory_updates_unimodal_labels() -> None:
    spec = mosi_spec()
    n = 8
    labels = torch.tensor([-2.0, -1.0, -0.5, 0.5, 1.0, 2.0, 2.5, -2.5])
    model = build("self-mm", spec, seed=1).train()
    model.init_dataset(n, labels)
    batch = make_batch(spec, b=n, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step() -> dict[str, float]:
        model.set_sample_ids(torch.arange(n))
        out = model(batch)
        loss, terms = model.training_loss(out, batch, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return terms

    terms = step()  # epoch 1: warm-up, memory filled, labels unchanged, unimodal weight tanh(0)=0
    assert set(terms) == {"task", "text", "audio", "visual"}
    assert all(terms[m] == 0.0 for m in ("text", "audio", "visual"))
    before = model.unimodal_labels()
    for m in before:
        torch.testing.assert_close(before[m], labels)
    model.on_epoch_end(0)
    step()  # epoch 2: labels regenerated from centre distances
    after = model.unimodal_labels()
    changed = [m for m in after if not torch.allclose(after[m], labels)]
    assert changed == ["text", "audio", "visual"]
    assert all(after[m].abs().max() <= 3.0 + 1e-6 for m in after)
    terms = step()  # unimodal losses now carry weight
    assert any(terms[m] > 0 for m in ("text", "audio", "visual"))

    # ids are consumed: an eval call afterwards cannot touch the memory.
    model.eval()
    model.set_sample_ids(torch.arange(n))
    snapshot = model.unimodal_labels()
    with torch.no_grad():
        _, terms = model.training_loss(model(batch), batch, labels)
    assert set(terms) == {"task"}
    for m in snapshot:
        torch.testing.assert_close(model.unimodal_labels()[m], snapshot[m])


def test_self_mm_rejects_bad_sample_ids() -> None:
    spec = mosi_spec()
    model = build("self-mm", spec).train()
    model.init_dataset(4, torch.zeros(4))
    batch = make_batch(spec, b=3)
    model.set_sample_ids(torch.tensor([0, 1, 9]))
    with pytest.raises(ValueError, match="sample ids"):
        model.training_loss(model(batch), batch, torch.zeros(3))


# ------------------------------------------------------------------------------ ConKI


def test_conki_contrastive_pairs() -> None:
    from models.zoo.conki import hierarchical_contrastive_loss

    torch.manual_seed(0)
    labels = torch.tensor([1.0, 2.0, -1.0, -2.0])
    # Representations laid out exactly as the positives prescribe give a lower loss than noise.
    base = torch.nn.functional.normalize(torch.randn(2, 2, 16), dim=-1)  # (polarity, knowledge, d)
    pol_index = torch.tensor([0, 0, 1, 1])
    ideal = base[pol_index].unsqueeze(1).expand(4, 3, 2, 16)
    good, _ = hierarchical_contrastive_loss(ideal, labels, 0.1)
    noise, _ = hierarchical_contrastive_loss(torch.randn(4, 3, 2, 16), labels, 0.1)
    assert good < noise
    # Pulling pan and specific together (a knowledge-level negative) raises the loss.
    collapsed = base[pol_index][:, :1].expand(4, 2, 16).unsqueeze(1).expand(4, 3, 2, 16)
    worse, parts = hierarchical_contrastive_loss(collapsed, labels, 0.1)
    assert worse > good and parts["knowledge_cos"] > 0.99


# ------------------------------------------------------------------------- tiny overfit


# Shallower stacks keep the two slowest models' overfit runs within the test-time budget; without
# dropout their 40-step curves are smooth enough for a fixed threshold.
OVERFIT_CONFIG = {
    "mult": {"n_layers": 1, "mem_layers": 1, "dropout": 0.0, "embed_dropout": 0.0},
    "conki": {"n_layers": 1, "dropout": 0.0},
}


@pytest.mark.parametrize("name", MODELS)
def test_tiny_overfit(name: str) -> None:
    spec = mosi_spec()
    lengths = {"text": 12, "audio": 16, "visual": 16}
    batch = make_batch(spec, b=8, seed=11, lengths=lengths)
    labels = torch.linspace(-2.5, 2.5, 8)
    model = build(name, spec, seed=0, **OVERFIT_CONFIG.get(name, {})).train()
    if name == "self-mm":
        model.init_dataset(8, labels)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)

    def task_loss() -> float:
        model.eval()
        with torch.no_grad():
            loss = torch.nn.functional.l1_loss(model(batch).score, labels)
        model.train()
        return float(loss)

    start = task_loss()
    for _ in range(40):
        if name == "self-mm":
            model.set_sample_ids(torch.arange(8))
        out = model(batch)
        loss, _ = model.training_loss(out, batch, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    end = task_loss()
    assert end < 0.5 * start, f"{name}: L1 {start:.3f} -> {end:.3f}"


def test_cenet_fits_on_data_without_any_face_frames() -> None:
    """Audio-only training clips (found by training on real RAVDESS clips) have no valid visual
    frame: CENet must still train, with a one-word visual vocabulary, not crash."""
    spec = default_spec()
    model = build_model("cenet", spec)
    rng = np.random.default_rng(0)
    with pytest.warns(UserWarning, match="no valid visual frames"):
        model.fit_vocabularies(rng.normal(size=(200, spec.dims["audio"])), np.zeros((0, spec.dims["visual"])))
    assert model.visual_centroids.shape[0] == 1
    model.fit_vocabularies(rng.normal(size=(5, spec.dims["audio"])), rng.normal(size=(3, spec.dims["visual"])),
                           k_audio=16, k_visual=16)
    assert model.audio_centroids.shape[0] == 5 and model.visual_centroids.shape[0] == 3
