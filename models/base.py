"""The contract every fusion model in the zoo implements.

Inputs are padded batches of the three modality sequences described by a FeatureSpec, with boolean
masks that are True on valid steps. A masked-out *modality* is represented exactly like LNLN's
missing data: audio/visual rows zeroed (and their mask False), text tokens replaced by [UNK] (ids)
and re-encoded, CLS/SEP kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch
from torch import nn

from core.feature_spec import MODALITIES, FeatureSpec


@dataclass
class ModalityBatch:
    text: torch.Tensor  # (B, Tt, Dt) float
    text_mask: torch.Tensor  # (B, Tt) bool
    audio: torch.Tensor  # (B, Ta, Da)
    audio_mask: torch.Tensor  # (B, Ta) bool
    visual: torch.Tensor  # (B, Tv, Dv)
    visual_mask: torch.Tensor  # (B, Tv) bool
    text_ids: torch.Tensor | None = None  # (B, Tt) long, for models that re-encode text

    def to(self, device: torch.device | str) -> "ModalityBatch":
        return ModalityBatch(
            **{
                f.name: (v.to(device) if isinstance(v, torch.Tensor) else v)
                for f in fields(self)
                for v in [getattr(self, f.name)]
            }
        )

    @property
    def batch_size(self) -> int:
        return int(self.text.shape[0])

    @classmethod
    def concat(cls, batches: "list[ModalityBatch]") -> "ModalityBatch":
        """Batches of the same padded shapes, one after the other along the batch axis."""
        if len(batches) == 1:
            return batches[0]
        values = {}
        for f in fields(cls):
            parts = [getattr(b, f.name) for b in batches]
            if any(p is None for p in parts):
                if not all(p is None for p in parts):
                    raise ValueError(f"cannot concatenate batches where only some have {f.name}")
                values[f.name] = None
            else:
                values[f.name] = torch.cat(parts, dim=0)
        return cls(**values)


@dataclass
class ModelOutput:
    score: torch.Tensor  # (B,) fused sentiment, unbounded regression target in [-3, 3]
    unimodal: dict[str, torch.Tensor] = field(default_factory=dict)  # "text"/"audio"/"visual" -> (B,)
    extras: dict[str, Any] = field(default_factory=dict)  # auxiliary tensors for the paper's losses


class MSAModel(nn.Module):
    """Base class. Subclasses set `name`, build layers from a FeatureSpec in __init__(spec, **cfg),
    implement forward(batch) -> ModelOutput and training_loss(...)."""

    name: str = "base"
    #: True when the model was designed for the LNLN missing-modality regime and needs the complete
    #: view in training_loss (LNLN, EMT-DLFR).
    uses_complete_view: bool = False
    #: True when training_loss also needs the model's output on the complete view (complete_out).
    needs_complete_forward: bool = False
    #: True when training_loss takes `modality_targets` (models.missing.ModalityTargets): what each
    #: unimodal head should say given the modalities a sample keeps and the evidence they carry.
    uses_modality_targets: bool = False

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        super().__init__()
        self.spec = spec
        self.config: dict[str, Any] = dict(config)
        # Per-column input standardisation. The extractors emit physical units (Hz, dB, degrees), so
        # the trainer sets these from training data (set_input_stats); they live in the state dict,
        # so a checkpoint carries its own normalisation. Identity until set.
        for m in MODALITIES:
            self.register_buffer(f"input_mean_{m}", torch.zeros(spec.modality(m).dim))
            self.register_buffer(f"input_std_{m}", torch.ones(spec.modality(m).dim))
        self.register_forward_pre_hook(_standardise_inputs)

    def set_input_stats(self, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> None:
        """stats[modality] = (mean (D,), std (D,)) over valid training steps; see input_stats()."""
        for m, (mean, std) in stats.items():
            getattr(self, f"input_mean_{m}").copy_(torch.as_tensor(mean, dtype=torch.float32))
            getattr(self, f"input_std_{m}").copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def standardise(self, batch: ModalityBatch) -> ModalityBatch:
        """(x - mean) / std on valid steps; invalid (missing/padded) steps stay exactly zero so that
        LNLN's "missing = zero" convention survives normalisation."""
        out = {}
        for m in MODALITIES:
            x = getattr(batch, m)
            mask = getattr(batch, f"{m}_mask")
            mean = getattr(self, f"input_mean_{m}")
            std = getattr(self, f"input_std_{m}")
            out[m] = ((x - mean) / std) * mask.unsqueeze(-1).to(x.dtype)
        return replace(batch, **out)

    def forward(self, batch: ModalityBatch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Default: L1 on the fused score (MMSA's regression loss). Papers override this.

        `batch` is the (possibly incomplete) input that produced `out`; `complete` is the same
        samples without missing data, given when `uses_complete_view` is True."""
        loss = nn.functional.l1_loss(out.score, labels)
        return loss, {"task": float(loss.detach())}

    def on_epoch_end(self, epoch: int) -> None:
        """Hook for models with state updated per epoch (Self-MM's ULGM)."""


def _standardise_inputs(module: MSAModel, args: tuple, kwargs: dict | None = None):
    # forward pre-hook: every subclass gets standardised inputs without having to remember it.
    if args and isinstance(args[0], ModalityBatch):
        return (module.standardise(args[0]),) + tuple(args[1:])
    return None


def input_stats(batches: list[ModalityBatch]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Mean/std per feature column over the valid steps of the given (complete) batches."""
    stats = {}
    for m in MODALITIES:
        rows = [getattr(b, m)[getattr(b, f"{m}_mask")] for b in batches]
        x = torch.cat([r.reshape(-1, r.shape[-1]) for r in rows]) if rows else torch.zeros(0)
        if x.numel() == 0:
            continue
        stats[m] = (x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6))
    return stats
