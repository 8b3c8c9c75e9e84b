"""LNLN, EMT-DLFR and the shared zoo layers: shapes, masking, losses, gradients, a tiny overfit."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from core.errors import MSAError
from core.feature_spec import FeatureSpec, ModalitySpec, default_spec
from models.base import ModalityBatch
from models.missing import apply_missing, mask_modalities
from models.registry import build_model
from models.zoo import layers
from models.zoo.emt_dlfr import EMTDLFR
from models.zoo.lnln import LNLN

UNK = 100
MODELS = ("lnln", "emt-dlfr")


def mosi_spec() -> FeatureSpec:
    """MMSA MOSI (unaligned_50) shapes: BERT 768, COVAREP-lite 5, Facet 20, all 50 steps."""
    return FeatureSpec(
        text=ModalitySpec("bert-base", 768, None, 50),
        audio=ModalitySpec("mmsa-audio", 5, None, 50),
        visual=ModalitySpec("mmsa-visual", 20, None, 50),
        name="mmsa-mosi",
    )


def tiny_spec() -> FeatureSpec:
    """Short sequences so the overfit test trains in seconds on a shared CPU."""
    return FeatureSpec(
        text=ModalitySpec("tiny-text", 32, None, 12),
        audio=ModalitySpec("tiny-audio", 5, None, 16),
        visual=ModalitySpec("tiny-visual", 8, None, 12),
        name="tiny",
    )


SPECS = {"default": default_spec, "mosi": mosi_spec}


def random_batch(spec: FeatureSpec, b: int, seed: int = 0) -> ModalityBatch:
    """Random features with per-sample lengths between half and full max_len; ids for the text."""
    g = torch.Generator().manual_seed(seed)

    def part(m: str) -> tuple[torch.Tensor, torch.Tensor]:
        ms = spec.modality(m)
        lengths = torch.randint(max(3, ms.max_len // 2), ms.max_len + 1, (b, 1), generator=g)
        mask = torch.arange(ms.max_len).unsqueeze(0) < lengths
        x = torch.randn(b, ms.max_len, ms.dim, generator=g) * mask.unsqueeze(-1)
        return x, mask

    t, tm = part("text")
    a, am = part("audio")
    v, vm = part("visual")
    ids = torch.randint(1000, 5000, tm.shape, generator=g) * tm
    return ModalityBatch(t, tm, a, am, v, vm, text_ids=ids)


def incomplete(batch: ModalityBatch, rate: float = 0.5, seed: int = 1) -> ModalityBatch:
    return apply_missing(batch, rate, torch.Generator().manual_seed(seed), UNK)


def loss_of(model, inc: ModalityBatch, full: ModalityBatch, labels: torch.Tensor):
    out = model(inc)
    cout = model(full) if getattr(model, "needs_complete_forward", False) else None
    return model.training_loss(out, inc, labels, full, cout)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The CPU is shared by several processes; one thread each is faster than oversubscription.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------- layers


def test_masked_attention_all_masked_rows_are_zero_not_nan():
    attn = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [False] * 5])
    out = layers.masked_attention(attn, q, kv, mask)
    assert torch.isfinite(out).all()
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    assert out[0].abs().sum() > 0


@pytest.mark.parametrize("module", ["encoder", "cross", "pool", "chunks", "tokens"])
def test_layers_ignore_padded_values(module):
    x = torch.randn(3, 10, 16)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 4:] = False
    mask[2] = False
    x2 = x.clone()
    x2[~mask] = 1e3
    q = torch.randn(3, 4, 16)
    fns = {
        "encoder": lambda t: layers.TransformerEncoder(16, 2, 4)(t, mask)[mask],
        "cross": lambda t: layers.CrossAttentionBlock(16, 4)(q, t, mask),
        "pool": lambda t: layers.fixed_length_tokens(t, mask, 4, layers.FixedLengthTokens(16, 4, 4)),
        "chunks": lambda t: layers.fixed_length_tokens(t, mask, 4),
        "tokens": lambda t: layers.TokenEncoder(16, 32, 8, 1, 4, max_len=10, pos="learned")(t, mask),
    }
    torch.manual_seed(3)
    a = fns[module](x)
    torch.manual_seed(3)
    b = fns[module](x2)
    assert torch.isfinite(a).all()
    assert torch.allclose(a, b, atol=1e-5)


def test_masked_mean_and_chunk_pooling_values():
    x = torch.arange(12.0).view(1, 6, 2)
    mask = torch.tensor([[True, True, True, True, False, False]])
    assert torch.allclose(layers.masked_mean(x, mask), torch.tensor([[3.0, 4.0]]))
    chunks = layers.fixed_length_tokens(x, mask, 2)
    assert torch.allclose(chunks, torch.tensor([[[1.0, 2.0], [5.0, 6.0]]]))
    assert torch.equal(layers.masked_mean(x, torch.zeros_like(mask)), torch.zeros(1, 2))


def test_grad_reverse_flips_gradient():
    x = torch.ones(3, requires_grad=True)
    layers.grad_reverse(x, 0.5).sum().backward()
    assert torch.allclose(x.grad, torch.full((3,), -0.5))


def test_view_helpers_recover_protocol():
    spec = mosi_spec()
    full = random_batch(spec, 6)
    assert torch.allclose(layers.text_completeness(incomplete(full, 0.0), full), torch.ones(6))
    assert torch.allclose(layers.text_completeness(incomplete(full, 1.0), full), torch.zeros(6))
    inc = incomplete(full, 0.5)
    dropped = layers.dropped_steps(inc, full, "audio")
    assert torch.equal(dropped, full.audio_mask & ~inc.audio_mask)
    # Without ids the zeroed text features identify the dropped tokens just as well.
    no_ids = apply_missing(replace(full, text_ids=None), 0.5, torch.Generator().manual_seed(1), UNK)
    with_ids = layers.dropped_steps(inc, full, "text")
    assert torch.equal(layers.dropped_steps(no_ids, replace(full, text_ids=None), "text"), with_ids)
    rate = 1 - layers.text_completeness(inc, full)
    assert 0.2 < float(rate.mean()) < 0.8


def test_unknown_option_is_a_user_error():
    with pytest.raises(MSAError, match="unknown lnln option"):
        build_model("lnln", mosi_spec(), d_modle=32)
    with pytest.raises(MSAError, match="unknown emt-dlfr option"):
        build_model("emt-dlfr", mosi_spec(), layers=3)


# --------------------------------------------------------------------------------- models


@pytest.mark.parametrize("spec_name", list(SPECS))
@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_shapes(name, spec_name):
    spec = SPECS[spec_name]()
    model = build_model(name, spec)
    assert model.uses_complete_view
    batch = random_batch(spec, 4)
    out = model(incomplete(batch))
    assert out.score.shape == (4,)
    assert torch.isfinite(out.score).all()
    out.score.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", MODELS)
def test_padding_values_do_not_change_score(name):
    spec = mosi_spec()
    model = build_model(name, spec).eval()
    batch = incomplete(random_batch(spec, 4))
    noisy = {}
    for m in ("text", "audio", "visual"):
        x, mask = getattr(batch, m), getattr(batch, f"{m}_mask")
        assert (~mask).any(), "test batch must contain padding"
        noisy[m] = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x) * 50)
    with torch.no_grad():
        a = model(batch).score
        b = model(replace(batch, **noisy)).score
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("gone", [("audio",), ("visual",), ("audio", "visual"), ("text",), ("text_mask",)])
def test_fully_missing_modality_is_finite(name, gone):
    spec = mosi_spec()
    model = build_model(name, spec)
    full = random_batch(spec, 4)
    if gone == ("text_mask",):  # harsher than the protocol: no valid text step at all
        inc = replace(full, text_mask=torch.zeros_like(full.text_mask))
    else:
        keep = [m for m in ("text", "audio", "visual") if m not in gone]
        inc = mask_modalities(full, keep, UNK)
    loss, terms = loss_of(model, inc, full, torch.randn(4))
    assert torch.isfinite(loss)
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


EXPECTED_TERMS = {"lnln": {"sp", "cc", "adv", "rec"}, "emt-dlfr": {"pred_m", "pred", "attra", "recon"}}


@pytest.mark.parametrize("name", MODELS)
def test_training_loss_terms_and_gradients_reach_every_parameter(name):
    spec = mosi_spec()
    model = build_model(name, spec).train()
    full = random_batch(spec, 4)
    inc = incomplete(full, 0.5)
    loss, terms = loss_of(model, inc, full, torch.empty(4).uniform_(-3, 3))
    assert torch.isfinite(loss)
    assert EXPECTED_TERMS[name] <= set(terms)
    assert all(abs(v) > 0 for k, v in terms.items() if k in EXPECTED_TERMS[name])
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    for child_name, child in model.named_children():
        norm = sum(float(p.grad.abs().sum()) for p in child.parameters())
        assert norm > 0, f"zero gradient for {child_name}"


@pytest.mark.parametrize("name", MODELS)
def test_without_complete_view_only_the_task_loss(name):
    spec = mosi_spec()
    model = build_model(name, spec)
    batch = random_batch(spec, 3)
    out = model(batch)
    loss, terms = model.training_loss(out, batch, torch.zeros(3))
    assert torch.isfinite(loss) and loss > 0


def test_lnln_completeness_and_adversarial_details():
    spec = mosi_spec()
    model: LNLN = build_model("lnln", spec)
    full = random_batch(spec, 4)
    out = model(incomplete(full, 0.5))
    w = out.extras["completeness"]
    assert w.shape == (4,) and bool(((w > 0) & (w < 1)).all())
    # The proxy generator must be pushed *against* the discriminator: with the GRL, the proxy
    # gradient of L_adv alone is the negative of the plain gradient.
    inc = incomplete(full, 0.5)
    h = model.encode(inc)
    proxy_in = torch.cat([model.proxy_seed.expand(4, -1, -1), h["audio"], h["visual"]], dim=1)
    h_p = model.proxy_generator(proxy_in)[:, :8]

    def disc_grad(reverse: bool) -> torch.Tensor:
        model.zero_grad()
        x = layers.grad_reverse(h_p) if reverse else h_p
        logits = model.discriminator(x.reshape(-1, x.shape[-1]))
        torch.nn.functional.cross_entropy(logits, torch.ones(logits.shape[0], dtype=torch.long)).backward(
            retain_graph=True)
        return model.proxy_seed.grad.clone()

    assert torch.allclose(disc_grad(True), -disc_grad(False), atol=1e-6)
    official = build_model("lnln", spec, official_grl=True, proxy_uses_language=True)
    loss, _ = loss_of(official, inc, full, torch.zeros(4))
    assert torch.isfinite(loss)


def test_emt_sharing_switches_and_batch_of_one():
    spec = mosi_spec()
    shared: EMTDLFR = build_model("emt-dlfr", spec, fusion_layers=3)
    unshared: EMTDLFR = build_model("emt-dlfr", spec, fusion_layers=3, mpu_share=False, modality_share=False,
                                    layer_share=False)
    assert len(shared.emt.mpus) == 1 and len(shared.emt.pools) == 1
    assert len(unshared.emt.mpus) == 3 * 3 * 2 and len(unshared.emt.pools) == 3
    full = random_batch(spec, 1)
    loss, terms = loss_of(unshared.train(), incomplete(full), full, torch.zeros(1))
    assert torch.isfinite(loss) and terms["attra"] == 0.0


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_has_no_aliased_tensors(name):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    model = build_model(name, mosi_spec())
    blob = safetensors_torch.save({k: v.contiguous() for k, v in model.state_dict().items()})
    restored = build_model(name, mosi_spec())
    restored.load_state_dict(safetensors_torch.load(blob))
    batch = random_batch(mosi_spec(), 2)
    with torch.no_grad():
        assert torch.allclose(model.eval()(batch).score, restored.eval()(batch).score)


@pytest.mark.parametrize("name", MODELS)
def test_paper_sizes_build(name):
    paper = {
        "lnln": dict(d_model=128, n_heads=8, encoder_depth=2, dmc_depth=2, reconstructor_depth=2,
                     language_depth=2, fusion_depth=2, discriminator_hidden=64),
        "emt-dlfr": dict(d_model=128, n_heads=4, fusion_layers=3, ff_expansion=4, attn_dropout=0.3,
                         ff_dropout=0.1, post_fusion_dim=256, post_fusion_dropout=0.3),
    }[name]
    model = build_model(name, mosi_spec(), **paper).eval()
    with torch.no_grad():
        assert model(random_batch(mosi_spec(), 2)).score.shape == (2,)


@pytest.mark.parametrize("name", MODELS)
def test_tiny_overfit(name):
    """16 samples, fixed incomplete view: the supervised term must fall by more than half."""
    spec = tiny_spec()
    model = build_model(name, spec, d_model=32).train()
    full = random_batch(spec, 16, seed=5)
    inc = incomplete(full, 0.3, seed=6)
    labels = torch.empty(16).uniform_(-3, 3, generator=torch.Generator().manual_seed(7))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    task_key = {"lnln": "sp", "emt-dlfr": "pred_m"}[name]
    history = []
    for _ in range(60):
        loss, terms = loss_of(model, inc, full, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append((float(loss.detach()), terms[task_key]))
    first_task = history[0][1]
    last_task = sum(t for _, t in history[-5:]) / 5
    assert last_task < 0.5 * first_task, history[::10]
    assert sum(v for v, _ in history[-5:]) / 5 < history[0][0]
