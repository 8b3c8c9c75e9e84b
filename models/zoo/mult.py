"""MulT: Multimodal Transformer for unaligned sequences (Tsai et al., ACL 2019).

Pipeline (as in the authors' code): per-modality temporal Conv1d projection to a common width d;
six crossmodal transformers (text<-audio, text<-visual, audio<-text, audio<-visual, visual<-text,
visual<-audio) in which the target modality's sequence queries the source's; the two streams that
share a target are concatenated (2d) and passed through a self-attention transformer ("memory");
the last step of each memory is taken, the three are concatenated (6d) and a residual two-layer
MLP + linear output gives the score. Loss: L1 (the base class default; the authors' MOSI setup).

Paper / official-code defaults (MOSI): d 30, 5 heads, 5 crossmodal layers, memory layers
max(layers, 3), Conv1d kernel 1 (MMSA: d 50, 10 heads, 4 layers, kernel 5), embed dropout 0.25,
attention dropout 0.1, relu/res dropout 0.1, output dropout 0.0, Adam lr 1e-3, batch 24, grad clip
0.8. Small defaults here: d 32, 4 heads, 2 crossmodal layers.

Deviations, all about padding (our sequences are padded with masks; the authors fed fixed-length
arrays without masks):
* key-padding masks in every attention, so padded steps are never attended to;
* padded inputs are zeroed before the temporal Conv1d and the convolution uses 'same' padding, so
  the output length equals the input length and masks stay aligned;
* "last step" means the last *valid* step of the target modality (zeros when it has none);
* the authors' optional causal ("future") attention mask (attn_mask, on by default there and in
  MMSA) is not implemented: every step attends to all valid source steps.
Blocks come from models.zoo.layers (pre-norm, GELU feed-forward; the original used ReLU).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.common import MODALITY_KEYS, batch_modality, last_valid_step, zero_padded
from models.zoo.layers import CrossAttentionBlock, SinusoidalPositionalEmbedding, TransformerEncoder

DEFAULTS: dict[str, Any] = {
    "d_model": 32,
    "n_heads": 4,
    "n_layers": 2,  # crossmodal layers per direction
    "mem_layers": None,  # None -> max(n_layers, 3) as in the official code
    "conv_kernel": {"text": 1, "audio": 1, "visual": 1},
    "dropout": 0.1,  # attention / feed-forward / residual dropout inside blocks
    "embed_dropout": 0.25,
    "out_dropout": 0.0,
}


class ScaledEmbedding(nn.Module):
    """x * sqrt(d) + sinusoidal positions, then dropout (the MulT encoder's input stage)."""

    def __init__(self, d_model: int, dropout: float) -> None:
        super().__init__()
        self.scale = math.sqrt(d_model)
        self.pos = SinusoidalPositionalEmbedding(d_model)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.pos(x * self.scale))


class CrossmodalTransformer(nn.Module):
    """Target sequence attends to a source sequence through n CrossAttentionBlocks + final norm."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, dropout: float, embed_dropout: float) -> None:
        super().__init__()
        self.embed = ScaledEmbedding(d_model, embed_dropout)
        self.blocks = nn.ModuleList(CrossAttentionBlock(d_model, n_heads, dropout=dropout) for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, target: torch.Tensor, source: torch.Tensor, source_mask: torch.Tensor) -> torch.Tensor:
        q, kv = self.embed(target), self.embed(source)
        for block in self.blocks:
            q = block(q, kv, source_mask)
        return self.norm(q)


class SelfAttentionMemory(nn.Module):
    """The per-target self-attention transformer over the concatenated crossmodal streams."""

    def __init__(self, d_model: int, n_heads: int, n_layers: int, dropout: float, embed_dropout: float) -> None:
        super().__init__()
        self.embed = ScaledEmbedding(d_model, embed_dropout)
        self.encoder = TransformerEncoder(d_model, n_layers, n_heads, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(x), mask)


@register_model("mult")
class MulT(MSAModel):
    """MulT (Tsai et al. 2019): crossmodal transformers in all 6 directions + self-attention memories."""

    name = "mult"

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        kernels = {**DEFAULTS["conv_kernel"], **dict(cfg.get("conv_kernel") or {})}
        for m, k in kernels.items():
            if int(k) % 2 != 1:
                raise ValueError(f"MulT conv_kernel for {m} must be odd to keep sequence length, got {k}")
        cfg["conv_kernel"] = kernels
        super().__init__(spec, **cfg)
        d, heads, layers = int(cfg["d_model"]), int(cfg["n_heads"]), int(cfg["n_layers"])
        mem_layers = int(cfg["mem_layers"]) if cfg["mem_layers"] is not None else max(layers, 3)
        drop, edrop = float(cfg["dropout"]), float(cfg["embed_dropout"])
        self.input_dropout = nn.Dropout(edrop)  # the authors apply it to the text input only
        self.proj = nn.ModuleDict(
            {
                m: nn.Conv1d(spec.dims[m], d, int(kernels[m]), padding=(int(kernels[m]) - 1) // 2, bias=False)
                for m in MODALITY_KEYS
            }
        )
        self.cross = nn.ModuleDict(
            {
                f"{tgt}<-{src}": CrossmodalTransformer(d, heads, layers, drop, edrop)
                for tgt in MODALITY_KEYS
                for src in MODALITY_KEYS
                if src != tgt
            }
        )
        self.memory = nn.ModuleDict(
            {m: SelfAttentionMemory(2 * d, heads, mem_layers, drop, edrop) for m in MODALITY_KEYS}
        )
        combined = 6 * d
        self.proj1 = nn.Linear(combined, combined)
        self.proj2 = nn.Linear(combined, combined)
        self.out_dropout = nn.Dropout(float(cfg["out_dropout"]))
        self.out_layer = nn.Linear(combined, 1)

    def _project(self, batch: ModalityBatch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        streams = {}
        for m in MODALITY_KEYS:
            x, mask = batch_modality(batch, m)
            if m == "text":
                x = self.input_dropout(x)
            h = self.proj[m](zero_padded(x, mask).transpose(1, 2)).transpose(1, 2)
            streams[m] = (h, mask)
        return streams

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        streams = self._project(batch)
        pooled = []
        for tgt in MODALITY_KEYS:
            h_tgt, mask_tgt = streams[tgt]
            crossed = [
                self.cross[f"{tgt}<-{src}"](h_tgt, streams[src][0], streams[src][1])
                for src in MODALITY_KEYS
                if src != tgt
            ]
            mem = self.memory[tgt](torch.cat(crossed, dim=-1), mask_tgt)
            pooled.append(last_valid_step(mem, mask_tgt))
        h = torch.cat(pooled, dim=-1)
        proj = self.proj2(self.out_dropout(torch.relu(self.proj1(h))))
        score = self.out_layer(proj + h).squeeze(-1)
        return ModelOutput(score=score, extras={"last_hidden": h})
