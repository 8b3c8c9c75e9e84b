"""TFN: Tensor Fusion Network (Zadeh et al., EMNLP 2017).

Each modality gets a subnetwork; the three embeddings are extended with a constant 1 and combined
by a 3-fold outer product, so the fused tensor holds every unimodal, bimodal and trimodal
interaction; an MLP regresses the sentiment from the flattened tensor.

Paper / MMSA sizes (MOSI): text LSTM 128 units -> text_out 32 (MMSA), audio/visual subnets
hidden 32/128 (MMSA `hidden_dims` [128, 32, 128] = text, audio, video), post-fusion 2 x 128
(paper) / 64 (MMSA), dropouts 0.3 (subnets) and 0.5 (post-fusion), Adam lr 1e-3, batch 32, L1
loss (MMSA). The fused tensor alone is (text_out+1)(a+1)(v+1) wide, so sizes are kept small.

Choices here:
* Audio/visual subnets average the valid frames (the paper averages COVAREP/FACET over the
  utterance) and then run BatchNorm + 3 x (Linear, ReLU), as in the authors' code.
* The text subnet is an LSTM over the valid MiniLM token features (packed) whose final hidden
  state goes through dropout + Linear (the paper used GloVe; our text features are frozen MiniLM
  token vectors, so the LSTM is the trainable text encoder).
* The output is sigmoid-bounded to [-3, 3] like the authors' code (`output_range` 6, `shift` -3);
  set bounded_output=False for a plain linear output.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.common import batch_modality, lstm_final_state
from models.zoo.layers import masked_mean

DEFAULTS: dict[str, Any] = {
    "text_hidden": 64,  # LSTM units (paper 128)
    "text_out": 16,  # MMSA mosi: 32
    "audio_hidden": 8,  # MMSA mosi: 32
    "visual_hidden": 16,  # MMSA mosi: 128
    "post_fusion_dim": 32,  # MMSA mosi: 64, paper 128
    "subnet_dropout": 0.3,
    "post_fusion_dropout": 0.5,
    "bounded_output": True,
}


class AveragedSubNet(nn.Module):
    """Mean over valid frames -> BatchNorm -> Dropout -> 3 x (Linear, ReLU)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_dim)
        self.drop = nn.Dropout(dropout)
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        pooled = masked_mean(x, mask)
        if self.training and pooled.shape[0] == 1:
            # Batch statistics of one sample are undefined; use the running ones for that step.
            bn = self.norm
            normed = nn.functional.batch_norm(
                pooled, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps
            )
        else:
            normed = self.norm(pooled)
        return self.mlp(self.drop(normed))


class TextSubNet(nn.Module):
    """LSTM over valid tokens -> final hidden -> Dropout -> Linear."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(lstm_final_state(self.lstm, x, mask)))


def tensor_fusion(h_text: torch.Tensor, h_audio: torch.Tensor, h_visual: torch.Tensor) -> torch.Tensor:
    """Flattened outer product of [1, h_a] x [1, h_v] x [1, h_t]: (B, (a+1)(v+1)(t+1))."""
    one = torch.ones(h_text.shape[0], 1, dtype=h_text.dtype, device=h_text.device)
    a, v, t = (torch.cat([one, h], dim=1) for h in (h_audio, h_visual, h_text))
    av = torch.einsum("ba,bv->bav", a, v).flatten(1)
    return torch.einsum("bx,bt->bxt", av, t).flatten(1)


@register_model("tfn")
class TFN(MSAModel):
    """TFN (Zadeh et al. 2017): subnetworks + 3-fold outer product with appended 1s + MLP."""

    name = "tfn"

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        super().__init__(spec, **cfg)
        dims = spec.dims
        drop = float(cfg["subnet_dropout"])
        self.text_net = TextSubNet(dims["text"], int(cfg["text_hidden"]), int(cfg["text_out"]), drop)
        self.audio_net = AveragedSubNet(dims["audio"], int(cfg["audio_hidden"]), drop)
        self.visual_net = AveragedSubNet(dims["visual"], int(cfg["visual_hidden"]), drop)
        fused = (int(cfg["text_out"]) + 1) * (int(cfg["audio_hidden"]) + 1) * (int(cfg["visual_hidden"]) + 1)
        hid = int(cfg["post_fusion_dim"])
        self.post_fusion = nn.Sequential(
            nn.Dropout(float(cfg["post_fusion_dropout"])),
            nn.Linear(fused, hid),
            nn.ReLU(),
            nn.Linear(hid, hid),
            nn.ReLU(),
            nn.Linear(hid, 1),
        )
        self.bounded_output = bool(cfg["bounded_output"])

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        h_t = self.text_net(*batch_modality(batch, "text"))
        h_a = self.audio_net(*batch_modality(batch, "audio"))
        h_v = self.visual_net(*batch_modality(batch, "visual"))
        z = tensor_fusion(h_t, h_a, h_v)
        out = self.post_fusion(z).squeeze(-1)
        if self.bounded_output:
            out = torch.sigmoid(out) * 6.0 - 3.0
        return ModelOutput(score=out, extras={"fusion_tensor": z})
