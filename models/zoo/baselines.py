"""Late fusion: the simplest useful multimodal baseline (and a fast model for unit tests).

Each modality is masked-mean pooled, LayerNorm-ed (our raw audio features mix Hz, dB and MFCC
scales) and scored by its own small MLP; the fused score is a learned affine combination of the
three unimodal scores (decision-level fusion). Loss: L1 on the fused score plus
`unimodal_weight` x the mean L1 of the unimodal heads, so each head stays a meaningful
per-modality predictor. Under the coalition regime each head is trained only on samples that keep
its modality, towards the label where that modality carries the label's evidence and towards 0
where it does not (models.missing.modality_targets); otherwise against the fused label.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.missing import ModalityTargets
from models.registry import register_model
from models.zoo.common import MODALITY_KEYS, batch_modality
from models.zoo.layers import masked_mean

DEFAULTS: dict[str, Any] = {"hidden": 32, "dropout": 0.1, "unimodal_weight": 0.5}


class PooledScorer(nn.Module):
    """Masked mean -> LayerNorm -> Linear -> ReLU -> Dropout -> Linear(1)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.LayerNorm(in_dim), nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.net(masked_mean(x, mask)).squeeze(-1)


@register_model("late-fusion")
class LateFusion(MSAModel):
    """Late fusion baseline: masked-mean pooling, one MLP score per modality, learned fusion."""

    name = "late-fusion"
    uses_modality_targets = True

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        super().__init__(spec, **cfg)
        self.scorers = nn.ModuleDict(
            {m: PooledScorer(spec.dims[m], int(cfg["hidden"]), float(cfg["dropout"])) for m in MODALITY_KEYS}
        )
        self.fusion = nn.Linear(len(MODALITY_KEYS), 1)
        # Start as an average of the three heads; the weights are learned from there.
        nn.init.constant_(self.fusion.weight, 1.0 / len(MODALITY_KEYS))
        nn.init.zeros_(self.fusion.bias)
        self.unimodal_weight = float(cfg["unimodal_weight"])

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        uni = {m: self.scorers[m](*batch_modality(batch, m)) for m in MODALITY_KEYS}
        stacked = torch.stack([uni[m] for m in MODALITY_KEYS], dim=-1)
        return ModelOutput(score=self.fusion(stacked).squeeze(-1), unimodal=uni)

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
        modality_targets: ModalityTargets | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        task = nn.functional.l1_loss(out.score, labels)
        if modality_targets is None:
            uni = {m: nn.functional.l1_loss(out.unimodal[m], labels) for m in MODALITY_KEYS}
        else:
            uni = {m: _kept_l1(out.unimodal[m], modality_targets.target[m], modality_targets.kept[m])
                   for m in MODALITY_KEYS}
        loss = task + self.unimodal_weight * torch.stack(list(uni.values())).mean()
        terms = {"task": float(task.detach()), **{m: float(v.detach()) for m, v in uni.items()}}
        return loss, terms


def _kept_l1(pred: torch.Tensor, target: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """Mean L1 over the kept samples (0, still differentiable, when none is kept)."""
    w = kept.to(pred.dtype)
    return ((pred - target).abs() * w).sum() / w.sum().clamp(min=1.0)
