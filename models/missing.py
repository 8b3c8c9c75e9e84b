"""LNLN's missing-data protocol, and whole-modality masking built on the same representation.

LNLN ("Towards Robust Multimodal Sentiment Analysis with Incomplete Data", NeurIPS 2024) simulates
incomplete data at a *rate* r: every valid step of every modality is dropped independently with
probability r (the same r for text, audio and visual):

- audio / visual: the row is zeroed and its mask becomes False;
- text: the token id becomes [UNK] (CLS = first token, SEP = last valid token and padding are kept,
  the attention mask is unchanged because an [UNK] is still a token), then the sequence is
  re-encoded by the frozen text encoder so the features reflect the corrupted sentence.

Without a re-encoder (e.g. MMSA pickles that carry BERT features but we have no BERT here) the
dropped token *features* are zeroed instead; the ids are still replaced so that a later re-encode
is possible. This is an approximation of the protocol, documented here and in the CLI help.

Everything is driven by an explicit `torch.Generator` so that evaluation at a given (rate, seed) is
reproducible bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Iterable

import torch

from core.errors import MSAError
from core.feature_spec import MODALITIES
from models.base import ModalityBatch

#: (ids (B, T) long, attention_mask (B, T) long) -> features (B, T, Dt). Must not need gradients.
TextReencoder = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _uniform(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    # Draw on the generator's device (CPU generators are the norm) and move, so that results do
    # not depend on where the batch lives.
    gen_device = generator.device if hasattr(generator, "device") else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def _rates_per_sample(rate: float | torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    r = torch.as_tensor(rate, dtype=torch.float32, device=device)
    if r.ndim == 0:
        r = r.expand(batch_size)
    if r.shape != (batch_size,):
        raise ValueError(f"rate must be a scalar or shape ({batch_size},), got {tuple(r.shape)}")
    if bool(((r < 0) | (r > 1)).any()):
        raise ValueError("missing rates must lie in [0, 1]")
    return r


def droppable_text_positions(text_mask: torch.Tensor) -> torch.Tensor:
    """Valid text positions excluding the first (CLS) and the last valid one (SEP)."""
    lengths = text_mask.long().sum(dim=1)
    pos = torch.arange(text_mask.shape[1], device=text_mask.device).unsqueeze(0)
    return text_mask & (pos > 0) & (pos < (lengths - 1).unsqueeze(1))


def _drop_rows(x: torch.Tensor, mask: torch.Tensor, drop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    # Only valid rows are dropped; padding/invalid rows keep whatever they held so that rate 0 is
    # an exact identity.
    drop = mask & drop
    return x.masked_fill(drop.unsqueeze(-1), 0.0), mask & ~drop


def _drop_text(batch: ModalityBatch, drop: torch.Tensor, unk_id: int,
               reencode: TextReencoder | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Return (features, ids) with the `drop` positions turned into [UNK]."""
    changed_rows = drop.any(dim=1)
    if not bool(changed_rows.any()):
        return batch.text, batch.text_ids

    ids = batch.text_ids
    if ids is not None:
        ids = torch.where(drop, torch.full_like(ids, int(unk_id)), ids)

    if reencode is None or ids is None:
        return batch.text.masked_fill(drop.unsqueeze(-1), 0.0), ids

    # Only rows that changed are re-encoded: cheaper, and rate 0 stays an exact identity.
    rows = changed_rows.nonzero(as_tuple=True)[0]
    with torch.no_grad():
        new = reencode(ids[rows], batch.text_mask[rows].long())
    expected = (len(rows), batch.text.shape[1], batch.text.shape[2])
    if tuple(new.shape) != expected:
        raise MSAError(
            f"text re-encoder returned shape {tuple(new.shape)}, expected {expected}; "
            "the encoder does not match the features' spec"
        )
    feats = batch.text.clone()
    feats[rows] = new.to(device=feats.device, dtype=feats.dtype)
    return feats, ids


def apply_missing(
    batch: ModalityBatch,
    rate: float | torch.Tensor,
    generator: torch.Generator,
    unk_id: int,
    reencode: TextReencoder | None = None,
) -> ModalityBatch:
    """LNLN random missingness at `rate` (scalar or per-sample (B,)); returns a new batch.

    Random numbers are drawn in a fixed order (text, audio, visual; full padded shapes) so the
    outcome depends only on the generator state, the shapes and the rates.
    """
    device = batch.text.device
    r = _rates_per_sample(rate, batch.batch_size, device).unsqueeze(1)

    u_text = _uniform(tuple(batch.text_mask.shape), generator, device)
    u_audio = _uniform(tuple(batch.audio_mask.shape), generator, device)
    u_visual = _uniform(tuple(batch.visual_mask.shape), generator, device)

    text_drop = droppable_text_positions(batch.text_mask) & (u_text < r)
    text, text_ids = _drop_text(batch, text_drop, unk_id, reencode)
    audio, audio_mask = _drop_rows(batch.audio, batch.audio_mask, u_audio < r)
    visual, visual_mask = _drop_rows(batch.visual, batch.visual_mask, u_visual < r)
    return replace(batch, text=text, text_ids=text_ids, audio=audio, audio_mask=audio_mask,
                   visual=visual, visual_mask=visual_mask)


def training_rates(batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """LNLN training regime: per-sample rate ~ U(0, 1), with a random half of the samples complete
    (rate 0). For odd batch sizes the middle sample is complete with probability 1/2."""
    rates = torch.rand(batch_size, generator=generator)
    order = torch.randperm(batch_size, generator=generator)
    n_complete = batch_size // 2
    if batch_size % 2 and float(torch.rand(1, generator=generator)) < 0.5:
        n_complete += 1
    rates[order[:n_complete]] = 0.0
    return rates


def mask_modalities(
    batch: ModalityBatch,
    keep: Iterable[str],
    unk_id: int,
    reencode: TextReencoder | None = None,
) -> ModalityBatch:
    """Remove whole modalities (Shapley coalitions, UI toggles): audio/visual zeroed with mask False;
    text becomes CLS + [UNK]*n + SEP (same length, re-encoded). Equivalent to missing rate 1 for
    the removed modalities."""
    keep = set(keep)
    unknown = keep - set(MODALITIES)
    if unknown:
        raise MSAError(f"unknown modality {sorted(unknown)}; use {', '.join(MODALITIES)}")
    out = batch
    if "text" not in keep:
        text, text_ids = _drop_text(batch, droppable_text_positions(batch.text_mask), unk_id, reencode)
        out = replace(out, text=text, text_ids=text_ids)
    for m in ("audio", "visual"):
        if m not in keep:
            x = getattr(batch, m)
            mask = getattr(batch, f"{m}_mask")
            out = replace(out, **{m: torch.zeros_like(x), f"{m}_mask": torch.zeros_like(mask)})
    return out


def default_text_reencoder(spec_text_extractor: str, device: str = "cpu") -> tuple[TextReencoder | None, str]:
    """The frozen text encoder matching a spec's text extractor, as a TextReencoder.

    Returns (reencoder, "") or (None, reason) when it is unavailable (MMSA BERT features, encoder
    module or weights missing): callers then fall back to zeroing dropped token features and should
    tell the user `reason`."""
    if spec_text_extractor != "minilm-l6":
        return None, (f"no local re-encoder for text features from {spec_text_extractor!r}: "
                      "dropped tokens are zeroed instead of re-encoded")
    try:
        from core.extractors.text import MiniLMTextEncoder

        encoder = MiniLMTextEncoder(device=device)
        encoder.model  # noqa: B018 - load now: a missing model should fail here, not mid-training
    except (ImportError, MSAError, OSError) as exc:
        return None, f"text re-encoder unavailable ({exc}); dropped tokens are zeroed instead of re-encoded"
    return encoder.encode_ids, ""


# ------------------------------------------------------------------------ coalition training

#: Bit of each modality in a dataset's `evidence` flags (models.data.MSADataset.evidence).
EVIDENCE_BITS = {"text": 1, "audio": 2, "visual": 4}
ALL_EVIDENCE = 7


@dataclass(frozen=True)
class CoalitionRegime:
    """Shares of a training batch: complete samples, LNLN random-rate samples (the robustness
    curve), and samples with whole modalities removed exactly as the engine removes them for the
    Shapley coalitions and the UI toggles (each of the 7 proper coalitions, the empty one included,
    weighted by `weights`). Without the last group the coalitions that Shapley values are computed from
    (`_A_`, `__V`, `_AV`, `___`) never occur in training, so their scores are extrapolations."""

    complete: float = 0.35
    lnln: float = 0.30  # the rest removes whole modalities
    #: Relative frequency of the proper coalitions, by code (bit 0 text, 1 audio, 2 visual): the
    #: single-modality ones are what users meet most (text-only inputs, audio-only files, the
    #: Shapley terms) and what the held-out checks measure, and the empty one is the Shapley
    #: baseline that must stay at 0, so these come two to four times as often as the pairs.
    weights: tuple[float, ...] = (3.0, 4.0, 2.0, 1.0, 2.0, 1.0, 1.0)  # ___, T__, _A_, TA_, __V, T_V, _AV

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(keep (B, 3) bool in MODALITIES order, lnln_rate (B,) float: 0 = no random drops)."""
        u = torch.rand(batch_size, generator=generator)
        rate = torch.rand(batch_size, generator=generator)
        probs = torch.tensor(self.weights, dtype=torch.float64)
        proper = torch.multinomial(probs, batch_size, replacement=True, generator=generator)  # codes 0..6 (7 = all)
        code = torch.where(u < self.complete + self.lnln, torch.full_like(proper, 7), proper)
        keep = torch.stack([(code >> k) & 1 for k in range(3)], dim=1).bool()
        is_lnln = (u >= self.complete) & (u < self.complete + self.lnln)
        return keep, torch.where(is_lnln, rate, torch.zeros_like(rate))


def mask_modalities_per_sample(batch: ModalityBatch, keep: torch.Tensor, unk_id: int,
                               reencode: TextReencoder | None = None) -> ModalityBatch:
    """`mask_modalities` with its own keep set per sample: keep (B, 3) bool in MODALITIES order."""
    keep = keep.to(batch.text.device)
    drop_text = droppable_text_positions(batch.text_mask) & ~keep[:, 0:1]
    text, text_ids = _drop_text(batch, drop_text, unk_id, reencode)
    out = replace(batch, text=text, text_ids=text_ids)
    for k, m in ((1, "audio"), (2, "visual")):
        gone = ~keep[:, k]
        x, mask = getattr(batch, m), getattr(batch, f"{m}_mask")
        out = replace(out, **{m: x.masked_fill(gone[:, None, None], 0.0), f"{m}_mask": mask & ~gone[:, None]})
    return out


def coalition_targets(labels: torch.Tensor, keep: torch.Tensor, evidence: torch.Tensor | None) -> torch.Tensor:
    """The label where a kept modality carries evidence about it, else 0 (nothing to go on)."""
    if evidence is None:
        has = keep.any(dim=1)
    else:
        bits = torch.tensor([EVIDENCE_BITS[m] for m in MODALITIES], device=keep.device)
        has = ((keep.long() * bits).sum(dim=1) & evidence.to(keep.device).long()) != 0
    return torch.where(has, labels, torch.zeros_like(labels))


@dataclass(frozen=True)
class ModalityTargets:
    """What each unimodal head should say for one batch: `target[m]` is the label where modality m
    is kept and carries the label's evidence, 0 where it is kept without evidence (a neutral voice
    under a sad MOSI sentence says nothing), and `kept[m]` marks the samples that count at all — a
    masked modality's head sees no input, so training it towards anything only teaches a bias."""

    target: dict[str, torch.Tensor]
    kept: dict[str, torch.Tensor]


def modality_targets(labels: torch.Tensor, keep: torch.Tensor, evidence: torch.Tensor | None) -> ModalityTargets:
    """Per-modality targets of one batch (keep: (B, 3) bool in MODALITIES order)."""
    target, kept = {}, {}
    for k, m in enumerate(MODALITIES):
        on = keep[:, k].to(labels.device)
        if evidence is not None:
            carries = (evidence.to(labels.device).long() & EVIDENCE_BITS[m]) != 0
            target[m] = torch.where(on & carries, labels, torch.zeros_like(labels))
        else:
            target[m] = torch.where(on, labels, torch.zeros_like(labels))
        kept[m] = on
    return ModalityTargets(target=target, kept=kept)
