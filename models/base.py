"""The contract every fusion model in the zoo implements.

Inputs are padded batches of the three modality sequences described by a FeatureSpec, with boolean
masks that are True on valid steps. A masked-out *modality* is represented exactly like LNLN's
missing data: audio/visual rows zeroed (and their mask False), text tokens replaced by [UNK] (ids)
and re-encoded, CLS/SEP kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec


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

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        super().__init__()
        self.spec = spec
        self.config: dict[str, Any] = dict(config)

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
