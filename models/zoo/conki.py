"""ConKI: Contrastive Knowledge Injection for multimodal sentiment analysis (Yu et al., Findings
of ACL 2023).

For every modality ConKI keeps two representations:
* pan-knowledge (general knowledge of a pretrained encoder): text = frozen MiniLM token features
  (the paper: BERT) + trainable projection + a small Transformer, read at CLS; audio / visual =
  projection + Transformer over the frame features, masked-mean pooled;
* knowledge-specific (domain knowledge injected through adapters): a K-Adapter-style bottleneck
  adapter stack running beside the encoder. Adapter layer j reads the hidden state of encoder
  layer j plus the previous adapter output, and computes x + Up(Block(Down(x))) with a Transformer
  block at the bottleneck width; the last adapter output is pooled like the encoder output.
The six vectors are concatenated and regressed by an MLP. Loss = L1 task loss + `hcl_weight` x
hierarchical contrastive loss.

Hierarchical contrastive loss (one supervised-contrastive / InfoNCE objective over the 6B
L2-normalised vectors of a batch, cosine similarity / `temperature`), with pairs defined at three
levels:
* knowledge level (within one modality of one sample): pan vs. specific is a *negative* pair, so
  the adapter must learn knowledge the general encoder lacks;
* modality level (within a sample): the same knowledge type in two different modalities is a
  *positive* pair;
* sample level (across samples): the same knowledge type of two samples with the same sentiment
  polarity (sign of the label: negative / neutral / positive) is a *positive* pair; everything
  else is a negative.
For each anchor: -mean over its positives of log softmax over all other vectors; anchors without
a positive are skipped. The reported terms split this sum into modality- and sample-level
positives and add the mean pan/specific cosine (knowledge level; should fall during training).

Sources and choices: the architecture and the three contrast levels follow the paper. The
authors' code could not be consulted (it is not in our reference index), so these values are our
choices, not the official defaults: hcl_weight 0.1, temperature 0.1, adapter width d/2, adapters at
every encoder layer, contrast directly on the pooled vectors (no projection head), polarity by
label sign. Paper scale: BERT-base text, 768-d.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.common import MODALITY_KEYS, batch_modality, first_step
from models.zoo.layers import (
    Projector,
    SinusoidalPositionalEmbedding,
    TransformerBlock,
    TransformerEncoder,
    masked_mean,
    regression_head,
)

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "n_layers": 2,
    "n_heads": 4,
    "adapter_dim": 32,
    "adapter_heads": 2,
    "dropout": 0.1,
    "fusion_hidden": 64,
    "hcl_weight": 0.1,
    "temperature": 0.1,
}
KNOWLEDGE = ("pan", "specific")


class AdapterLayer(nn.Module):
    """Bottleneck adapter: x + Up(TransformerBlock(Down(x)))."""

    def __init__(self, d_model: int, d_adapter: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.down = nn.Linear(d_model, d_adapter)
        self.block = TransformerBlock(d_adapter, n_heads, dropout=dropout)
        self.up = nn.Linear(d_adapter, d_model)
        nn.init.zeros_(self.up.weight)  # start as identity, as adapters usually do
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return x + self.up(self.block(self.down(x), mask))


class KnowledgeEncoder(nn.Module):
    """Encoder (pan-knowledge) with a parallel adapter stack (knowledge-specific).

    Returns per-step (pan, specific) sequences of width d."""

    def __init__(self, in_dim: int, cfg: dict[str, Any]) -> None:
        super().__init__()
        d, drop = int(cfg["d_model"]), float(cfg["dropout"])
        self.proj = Projector(in_dim, d, drop)
        self.pos = SinusoidalPositionalEmbedding(d)
        self.encoder = TransformerEncoder(d, int(cfg["n_layers"]), int(cfg["n_heads"]), dropout=drop)
        n_layers, d_adapter, adapter_heads = int(cfg["n_layers"]), int(cfg["adapter_dim"]), int(cfg["adapter_heads"])
        self.adapters = nn.ModuleList(AdapterLayer(d, d_adapter, adapter_heads, drop) for _ in range(n_layers))
        self.adapter_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.pos(self.proj(x))
        adapter_out = torch.zeros_like(h)
        for layer, adapter in zip(self.encoder.layers, self.adapters):
            h = layer(h, mask)
            # The encoder's hidden state feeds the adapter; the adapter never feeds back.
            adapter_out = adapter(h + adapter_out, mask)
        return self.encoder.norm(h), self.adapter_norm(adapter_out)


def polarity(labels: torch.Tensor) -> torch.Tensor:
    """-1 / 0 / +1 sentiment polarity of regression labels."""
    return torch.sign(labels)


def hierarchical_contrastive_loss(
    reps: torch.Tensor, labels: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """reps: (B, M, K, d) for M modalities and K knowledge types; labels (B,).

    Positive pairs: same knowledge type and (same sample, other modality) or (other sample with
    the same polarity); every other vector is a negative (including the same sample's other
    knowledge type in the same modality). Returns the loss and a split of it by positive type."""
    b, n_mod, n_kn, d = reps.shape
    z = nn.functional.normalize(reps.reshape(-1, d), dim=-1)
    n = z.shape[0]
    dev = z.device
    sample = torch.arange(b, device=dev).repeat_interleave(n_mod * n_kn)
    knowledge = torch.arange(n_kn, device=dev).repeat(b * n_mod)
    pol = polarity(labels)[sample]
    eye = torch.eye(n, dtype=torch.bool, device=dev)
    same_sample = sample[:, None] == sample[None, :]
    same_kn = knowledge[:, None] == knowledge[None, :]
    modality_pos = same_sample & same_kn & ~eye  # same knowledge, other modality, same sample
    sample_pos = ~same_sample & same_kn & (pol[:, None] == pol[None, :])
    positives = modality_pos | sample_pos

    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(eye, 0.0)
    n_pos = positives.sum(dim=1)
    has_pos = n_pos > 0
    per_anchor = -(log_prob * positives).sum(dim=1) / n_pos.clamp_min(1)
    loss = per_anchor[has_pos].mean() if has_pos.any() else z.sum() * 0.0

    def part(mask: torch.Tensor) -> float:
        vals = -(log_prob * mask).sum(dim=1) / n_pos.clamp_min(1)
        return float(vals[has_pos].mean().detach()) if has_pos.any() else 0.0

    zz = z.reshape(b, n_mod, n_kn, d)
    knowledge_cos = (zz[:, :, 0] * zz[:, :, 1]).sum(-1).mean() if n_kn == 2 else torch.zeros(())
    return loss, {
        "hcl_modality": part(modality_pos),
        "hcl_sample": part(sample_pos),
        "knowledge_cos": float(knowledge_cos.detach()),
    }


@register_model("conki")
class ConKI(MSAModel):
    """ConKI (Yu et al. 2023): pan-knowledge + adapter knowledge per modality, hierarchical contrast."""

    name = "conki"

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        super().__init__(spec, **cfg)
        self.encoders = nn.ModuleDict({m: KnowledgeEncoder(spec.dims[m], cfg) for m in MODALITY_KEYS})
        d = int(cfg["d_model"])
        self.fusion = regression_head(6 * d, int(cfg["fusion_hidden"]), 1, float(cfg["dropout"]))

    def _pool(self, m: str, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return first_step(h, mask) if m == "text" else masked_mean(h, mask)

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        reps = []
        for m in MODALITY_KEYS:
            x, mask = batch_modality(batch, m)
            pan, specific = self.encoders[m](x, mask)
            reps.append(torch.stack([self._pool(m, pan, mask), self._pool(m, specific, mask)], dim=1))
        knowledge = torch.stack(reps, dim=1)  # (B, 3 modalities, 2 knowledge types, d)
        score = self.fusion(knowledge.flatten(1)).squeeze(-1)
        return ModelOutput(score=score, extras={"knowledge": knowledge})

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        task = nn.functional.l1_loss(out.score, labels)
        hcl, parts = hierarchical_contrastive_loss(out.extras["knowledge"], labels, float(self.config["temperature"]))
        loss = task + float(self.config["hcl_weight"]) * hcl
        return loss, {"task": float(task.detach()), "hcl": float(hcl.detach()), **parts}
