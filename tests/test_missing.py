"""LNLN missing-data protocol and whole-modality masking."""
from __future__ import annotations

import pytest
import torch

from core.errors import MSAError
from models.base import ModalityBatch
from models.missing import apply_missing, droppable_text_positions, mask_modalities, training_rates

UNK, CLS, SEP, PAD = 100, 101, 102, 0


def make_batch(B: int = 4, Tt: int = 12, Ta: int = 30, Tv: int = 20, D: int = 6, seed: int = 0,
               text_lengths: list[int] | None = None) -> ModalityBatch:
    g = torch.Generator().manual_seed(seed)
    lengths = text_lengths or [Tt - (i % 4) for i in range(B)]
    ids = torch.full((B, Tt), PAD, dtype=torch.long)
    tmask = torch.zeros(B, Tt, dtype=torch.bool)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1000, 2000, (n,), generator=g)
        ids[i, 0], ids[i, n - 1] = CLS, SEP
        tmask[i, :n] = True
    amask = torch.ones(B, Ta, dtype=torch.bool)
    amask[:, Ta - 3:] = False  # padding
    vmask = torch.rand(B, Tv, generator=g) > 0.2  # frames without a face
    return ModalityBatch(
        text=torch.randn(B, Tt, D, generator=g) * tmask.unsqueeze(-1),
        text_mask=tmask,
        audio=torch.randn(B, Ta, D, generator=g) * amask.unsqueeze(-1),
        audio_mask=amask,
        visual=torch.randn(B, Tv, D, generator=g) * vmask.unsqueeze(-1),
        visual_mask=vmask,
        text_ids=ids,
    )


def fake_reencoder(dim: int):
    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    def reencode(ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        calls.append((ids.clone(), attention_mask.clone()))
        return ids.float().unsqueeze(-1).expand(*ids.shape, dim) / 1000.0

    reencode.calls = calls  # type: ignore[attr-defined]
    return reencode


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def assert_batches_equal(a: ModalityBatch, b: ModalityBatch) -> None:
    for name in ("text", "text_mask", "audio", "audio_mask", "visual", "visual_mask", "text_ids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_rate_zero_is_identity() -> None:
    b = make_batch()
    assert_batches_equal(apply_missing(b, 0.0, gen(1), UNK, fake_reencoder(6)), b)


def test_drop_fraction_matches_rate_on_big_tensors() -> None:
    b = make_batch(B=64, Tt=60, Ta=400, Tv=300, D=2, text_lengths=[60] * 64)
    for rate in (0.1, 0.5, 0.9):
        out = apply_missing(b, rate, gen(7), UNK)
        for m in ("audio", "visual"):
            valid = getattr(b, f"{m}_mask")
            dropped = valid & ~getattr(out, f"{m}_mask")
            assert float(dropped.sum() / valid.sum()) == pytest.approx(rate, abs=0.015), (m, rate)
            # dropped rows are zero, kept rows untouched
            assert torch.all(getattr(out, m)[dropped] == 0)
            kept = getattr(out, f"{m}_mask")
            assert torch.equal(getattr(out, m)[kept], getattr(b, m)[kept])
        interior = droppable_text_positions(b.text_mask)
        unk_frac = float(((out.text_ids == UNK) & interior).sum() / interior.sum())
        assert unk_frac == pytest.approx(rate, abs=0.015)


def test_per_sample_rates() -> None:
    b = make_batch(B=3, Ta=2000, Tv=10, Tt=10)
    out = apply_missing(b, torch.tensor([0.0, 0.5, 1.0]), gen(3), UNK)
    kept = out.audio_mask.float().sum(1) / b.audio_mask.float().sum(1)
    assert kept[0] == 1.0 and kept[2] == 0.0 and kept[1] == pytest.approx(0.5, abs=0.05)
    with pytest.raises(ValueError):
        apply_missing(b, torch.tensor([0.1, 0.2]), gen(3), UNK)
    with pytest.raises(ValueError):
        apply_missing(b, 1.5, gen(3), UNK)


def test_rate_one_removes_every_valid_step_but_keeps_cls_sep_and_padding() -> None:
    b = make_batch()
    rec = fake_reencoder(6)
    out = apply_missing(b, 1.0, gen(5), UNK, rec)
    assert not out.audio_mask.any() and not out.visual_mask.any()
    assert torch.all(out.audio == 0) and torch.all(out.visual == 0)
    lengths = b.text_mask.sum(1)
    for i, n in enumerate(lengths.tolist()):
        assert out.text_ids[i, 0] == CLS and out.text_ids[i, n - 1] == SEP
        assert torch.all(out.text_ids[i, 1 : n - 1] == UNK)
        assert torch.all(out.text_ids[i, n:] == PAD)
    assert torch.equal(out.text_mask, b.text_mask)  # an [UNK] is still a token
    # re-encoded with the corrupted ids and the attention mask
    ids, att = rec.calls[-1]
    assert torch.equal(ids, out.text_ids) and torch.equal(att, b.text_mask.long())
    assert torch.allclose(out.text, out.text_ids.float().unsqueeze(-1).expand_as(out.text) / 1000.0)


def test_without_reencoder_dropped_token_features_are_zeroed() -> None:
    b = make_batch(B=2, Tt=40, text_lengths=[40, 30])
    out = apply_missing(b, 0.5, gen(9), UNK)
    dropped = out.text_ids != b.text_ids
    assert dropped.any()
    assert torch.all(out.text[dropped] == 0)
    assert torch.equal(out.text[~dropped], b.text[~dropped])


def test_only_changed_rows_are_reencoded() -> None:
    b = make_batch(B=3)
    rec = fake_reencoder(6)
    out = apply_missing(b, torch.tensor([0.0, 1.0, 0.0]), gen(2), UNK, rec)
    assert rec.calls[-1][0].shape[0] == 1
    assert torch.equal(out.text[0], b.text[0]) and torch.equal(out.text[2], b.text[2])


def test_seeded_and_deterministic() -> None:
    b = make_batch()
    a1 = apply_missing(b, 0.4, gen(1111), UNK)
    a2 = apply_missing(b, 0.4, gen(1111), UNK)
    a3 = apply_missing(b, 0.4, gen(1112), UNK)
    assert_batches_equal(a1, a2)
    assert not torch.equal(a1.audio_mask, a3.audio_mask)


def test_wrong_reencoder_shape_is_a_clear_error() -> None:
    b = make_batch()
    with pytest.raises(MSAError, match="re-encoder"):
        apply_missing(b, 1.0, gen(1), UNK, lambda ids, m: torch.zeros(ids.shape[0], ids.shape[1], 3))


def test_training_rates_half_complete() -> None:
    r = training_rates(64, gen(4))
    assert int((r == 0).sum()) == 32
    assert torch.all((r[r > 0] > 0) & (r[r > 0] < 1))
    assert torch.equal(r, training_rates(64, gen(4)))
    assert not torch.equal(r, training_rates(64, gen(5)))
    odd = [int((training_rates(5, gen(s)) == 0).sum()) for s in range(20)]
    assert set(odd) == {2, 3}


def test_mask_modalities() -> None:
    b = make_batch()
    assert_batches_equal(mask_modalities(b, {"text", "audio", "visual"}, UNK), b)
    t_only = mask_modalities(b, {"text"}, UNK)
    assert not t_only.audio_mask.any() and torch.all(t_only.audio == 0)
    assert not t_only.visual_mask.any() and torch.all(t_only.visual == 0)
    assert torch.equal(t_only.text, b.text)
    rec = fake_reencoder(6)
    none = mask_modalities(b, set(), UNK, rec)
    for i, n in enumerate(b.text_mask.sum(1).tolist()):
        assert none.text_ids[i, :n].tolist() == [CLS] + [UNK] * (n - 2) + [SEP]
    assert torch.equal(none.text_mask, b.text_mask)
    av = mask_modalities(b, {"audio", "visual"}, UNK)
    assert torch.equal(av.audio, b.audio) and torch.equal(av.visual_mask, b.visual_mask)
    with pytest.raises(MSAError, match="unknown modality"):
        mask_modalities(b, {"speech"}, UNK)


def test_default_reencoder() -> None:
    from models.missing import default_text_reencoder

    none, reason = default_text_reencoder("mmsa-bert-base-uncased")
    assert none is None and "zeroed" in reason
    reencode, reason = default_text_reencoder("minilm-l6")
    if reencode is None:
        pytest.skip(reason)
    ids = torch.tensor([[CLS, 2307, 3185, SEP, PAD], [CLS, 2307, SEP, PAD, PAD]])
    mask = ids != PAD
    b = ModalityBatch(text=reencode(ids, mask.long()), text_mask=mask, audio=torch.zeros(2, 1, 2),
                      audio_mask=torch.zeros(2, 1, dtype=torch.bool), visual=torch.zeros(2, 1, 2),
                      visual_mask=torch.zeros(2, 1, dtype=torch.bool), text_ids=ids)
    assert b.text.shape == (2, 5, 384)
    out = mask_modalities(b, set(), UNK, reencode)
    assert out.text_ids[0].tolist() == [CLS, UNK, UNK, SEP, PAD]
    # contextual features: every valid position changes once the words are gone, CLS included
    assert not torch.allclose(out.text[0, 0], b.text[0, 0])
    assert torch.allclose(out.text, reencode(out.text_ids, mask.long()))


# ------------------------------------------------------------------------ coalition regime

def test_coalition_regime_draws_every_coalition_and_the_stated_shares() -> None:
    from models.missing import CoalitionRegime

    regime = CoalitionRegime(complete=0.35, lnln=0.30)
    keep, rate = regime.draw(20000, torch.Generator().manual_seed(3))
    full = keep.all(dim=1)
    assert abs(float((full & (rate == 0)).float().mean()) - 0.35) < 0.02  # complete
    assert abs(float((rate > 0).float().mean()) - 0.30) < 0.02  # LNLN drops, all modalities kept
    assert bool(keep[rate > 0].all())
    codes = (keep.long() * torch.tensor([1, 2, 4])).sum(dim=1)[~full]
    share = torch.bincount(codes, minlength=7)[:7].float() / len(codes)
    expected = torch.tensor(regime.weights) / sum(regime.weights)
    assert torch.allclose(share, expected, atol=0.02)  # every proper coalition, the empty one included


def test_per_sample_masking_equals_whole_batch_masking_row_by_row() -> None:
    from models.missing import mask_modalities_per_sample

    batch = make_batch(B=3)
    keep = torch.tensor([[True, False, True], [False, True, False], [False, False, False]])
    reenc = fake_reencoder(batch.text.shape[-1])
    out = mask_modalities_per_sample(batch, keep, UNK, reenc)
    for i, row in enumerate(keep.tolist()):
        one = ModalityBatch(**{k: (v[i:i + 1] if isinstance(v, torch.Tensor) else v) for k, v in vars(batch).items()})
        kept = {m for m, k in zip(("text", "audio", "visual"), row) if k}
        ref = mask_modalities(one, kept, UNK, reenc)
        for name in ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask"):
            assert torch.equal(getattr(out, name)[i:i + 1], getattr(ref, name)), (i, name)


def test_coalition_targets_are_zero_without_evidence() -> None:
    from models.missing import EVIDENCE_BITS, coalition_targets

    labels = torch.tensor([2.0, -1.5, 1.0, 0.7])
    keep = torch.tensor([[False, True, False], [False, True, False], [True, False, False], [False, False, False]])
    evidence = torch.tensor([EVIDENCE_BITS["text"], EVIDENCE_BITS["audio"], EVIDENCE_BITS["text"], 7])
    assert coalition_targets(labels, keep, evidence).tolist() == [0.0, -1.5, 1.0, 0.0]
    assert coalition_targets(labels, keep, None).tolist() == [2.0, -1.5, 1.0, 0.0]


def test_modality_targets_follow_each_modalitys_own_evidence() -> None:
    from models.missing import EVIDENCE_BITS, modality_targets

    labels = torch.tensor([2.0, -1.5, 1.0])
    # sample 0: MOSI sentence (text evidence) with a neutral voice kept and the face masked;
    # sample 1: an emotional voice (audio evidence) under its neutral words, everything kept;
    # sample 2: no evidence bits given at all -> the fused label for every kept modality.
    keep = torch.tensor([[True, True, False], [True, True, True], [True, False, True]])
    evidence = torch.tensor([EVIDENCE_BITS["text"], EVIDENCE_BITS["audio"], 0])
    t = modality_targets(labels, keep, evidence)
    assert t.target["text"].tolist() == [2.0, 0.0, 0.0]
    assert t.target["audio"].tolist() == [0.0, -1.5, 0.0]
    assert t.kept["visual"].tolist() == [False, True, True]
    no_ev = modality_targets(labels, keep, None)
    assert no_ev.target["audio"].tolist() == [2.0, -1.5, 0.0]


def test_late_fusion_heads_ignore_samples_that_mask_their_modality() -> None:
    from models.missing import ModalityTargets
    from models.zoo.baselines import LateFusion
    from models.base import ModelOutput
    from core.feature_spec import default_spec

    model = LateFusion(default_spec())
    out = ModelOutput(score=torch.zeros(2), unimodal={m: torch.tensor([0.0, 5.0]) for m in ("text", "audio", "visual")})
    labels = torch.zeros(2)
    kept_first = {m: torch.tensor([True, False]) for m in ("text", "audio", "visual")}
    zero = {m: torch.zeros(2) for m in ("text", "audio", "visual")}
    loss, terms = model.training_loss(out, make_batch(B=2), labels,
                                      modality_targets=ModalityTargets(target=zero, kept=kept_first))
    assert terms["text"] == 0.0 and float(loss) == 0.0  # the 5.0 of the masked sample does not count
    loss_all, _ = model.training_loss(out, make_batch(B=2), labels)
    assert float(loss_all) > 0.0
