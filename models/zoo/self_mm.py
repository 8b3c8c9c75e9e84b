"""Self-MM: self-supervised multi-task multimodal sentiment analysis (Yu et al., AAAI 2021),
following the authors' MMSA implementation (models/multiTask/SELF_MM.py + trains/.../SELF_MM.py).

Network: text subnet -> CLS vector; audio / visual subnets = LSTM over the valid frames (packed)
-> final hidden -> Linear. Fusion head: concat -> Dropout -> Linear+ReLU (fusion feature) ->
Linear+ReLU -> Linear(1). Each modality has the same 3-layer head on its own vector; the output
of its first Linear+ReLU is that modality's feature used by the label generator.

Text: the paper fine-tunes BERT-base (text_out 768). Our text input is frozen MiniLM token
features, so the text subnet is a trainable Projector + Transformer on top of them, read at the
CLS position (step 0); `text_layers` = 0 gives a projection-only text encoder.

ULGM (unimodal label generation module), as in MMSA:
* labels: fused labels are the ground truth; unimodal labels start equal to it;
* after every training batch the (detached) features of the batch are stored in a per-sample
  memory and the positive / negative class centres of each modality are recomputed over the whole
  memory (positive = label > 0 with `exclude_zero`, else >= 0; negative = label < 0);
* from the second epoch on (`warmup_epochs` = 1), before storing, each unimodal label of the batch
  is regenerated from the relative distance of the sample to its modality's centres vs. the fused
  representation's, clamped to [-H, H], and merged with momentum:
  y_u <- (n-1)/(n+1) * y_u + 2/(n+1) * y_u_new, n = current epoch (1-based);
* loss = L1(fused, y) + sum_u mean(tanh(|y_u - y_m|) * |pred_u - y_u|)  (MMSA's weighted_loss).
  In epoch 1 the unimodal weights are tanh(0) = 0, exactly as in MMSA.

Trainer hooks (optional; a trainer that does not call them gets fused-L1 training only):
* ``model.init_dataset(n_samples, labels)`` once before training: allocates the label/feature
  memory for training samples 0..n_samples-1 (labels: (n_samples,) ground truth).
* ``model.set_sample_ids(ids)`` before each *training* step: the dataset indices (LongTensor (B,))
  of the batch's samples, in batch order. They are consumed by the next training_loss call (so a
  later validation call cannot reuse them); the memory is only read and updated in train() mode.
* ``model.on_epoch_end(epoch)`` after each training epoch advances the epoch counter that drives
  warm-up and momentum.
Validation/eval loss (no ids, or eval mode) is L1 on the fused score, as MMSA reports it.

MMSA MOSI defaults: LSTM hidden audio 16 / visual 32, audio_out 16, video_out 32, post dims
fusion 128 / text 32 / audio 16 / video 32, dropouts fusion 0.0 / text 0.1 / audio 0.1 / video
0.0, H 3.0, exclude_zero true, batch 16, lr: BERT 5e-5, audio/video 5e-3, other 1e-3, weight decay
1e-3. The memory is not part of the state dict: it is training state, rebuilt by init_dataset.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.common import MODALITY_KEYS, batch_modality, first_step, lstm_final_state
from models.zoo.layers import Projector, TransformerEncoder

DEFAULTS: dict[str, Any] = {
    "text_dim": 64,  # paper: BERT hidden 768
    "text_layers": 1,
    "text_heads": 4,
    "text_dropout": 0.1,
    "audio_lstm_hidden": 16,
    "audio_out": 16,
    "visual_lstm_hidden": 32,
    "visual_out": 32,
    "post_fusion_dim": 64,  # MMSA: 128
    "post_text_dim": 32,
    "post_audio_dim": 16,
    "post_visual_dim": 32,
    "post_fusion_dropout": 0.0,
    "post_text_dropout": 0.1,
    "post_audio_dropout": 0.1,
    "post_visual_dropout": 0.0,
    "H": 3.0,
    "exclude_zero": True,
    "warmup_epochs": 1,
}

HEADS = ("fusion",) + MODALITY_KEYS
_EPS = 1e-8  # MMSA's MIN


class TextSubNet(nn.Module):
    """Projector + Transformer over frozen token features; returns the CLS vector (B, d)."""

    def __init__(self, in_dim: int, d: int, n_layers: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.proj = Projector(in_dim, d, dropout)
        self.encoder = TransformerEncoder(d, n_layers, n_heads, dropout=dropout) if n_layers > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if self.encoder is not None:
            h = self.encoder(h, mask)
        return first_step(h, mask)


class AuViSubNet(nn.Module):
    """LSTM over valid frames -> final hidden state -> Dropout -> Linear (MMSA's AuViSubNet)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(lstm_final_state(self.lstm, x, mask)))


class PostHead(nn.Module):
    """Dropout -> Linear+ReLU (= the feature ULGM uses) -> Linear+ReLU -> Linear(1)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.layer1 = nn.Linear(in_dim, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.layer3 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = torch.relu(self.layer1(self.drop(x)))
        return self.layer3(torch.relu(self.layer2(feature))).squeeze(-1), feature


class UnimodalLabelMemory:
    """Per-sample labels and features plus class centres for ULGM (plain tensors, no grads)."""

    def __init__(self, labels: torch.Tensor, feature_dims: dict[str, int], H: float, exclude_zero: bool) -> None:
        n = int(labels.shape[0])
        self.n_samples = n
        self.H = H
        self.exclude_zero = exclude_zero
        self.labels = {m: labels.detach().float().clone() for m in HEADS}
        self.features = {m: torch.zeros(n, feature_dims[m]) for m in HEADS}
        self.centres = {m: {"pos": torch.zeros(feature_dims[m]), "neg": torch.zeros(feature_dims[m])} for m in HEADS}

    def to(self, device: torch.device) -> None:
        if self.labels["fusion"].device == device:
            return
        self.labels = {m: t.to(device) for m, t in self.labels.items()}
        self.features = {m: t.to(device) for m, t in self.features.items()}
        self.centres = {m: {k: t.to(device) for k, t in c.items()} for m, c in self.centres.items()}

    def update_features(self, ids: torch.Tensor, feats: dict[str, torch.Tensor]) -> None:
        for m in HEADS:
            self.features[m][ids] = feats[m]

    def update_centres(self) -> None:
        for m in HEADS:
            lab = self.labels[m]
            pos = lab > 0 if self.exclude_zero else lab >= 0
            neg = lab < 0
            # MMSA would produce NaN for an empty class; keep the previous centre instead.
            if pos.any():
                self.centres[m]["pos"] = self.features[m][pos].mean(dim=0)
            if neg.any():
                self.centres[m]["neg"] = self.features[m][neg].mean(dim=0)

    def _relative_distance(self, m: str, f: torch.Tensor) -> torch.Tensor:
        d_pos = torch.norm(f - self.centres[m]["pos"], dim=-1)
        d_neg = torch.norm(f - self.centres[m]["neg"], dim=-1)
        return (d_neg - d_pos) / (d_pos + _EPS)

    def update_labels(self, ids: torch.Tensor, feats: dict[str, torch.Tensor], epoch: int) -> None:
        delta_f = self._relative_distance("fusion", feats["fusion"])
        y_f = self.labels["fusion"][ids]
        for m in MODALITY_KEYS:
            delta_s = self._relative_distance(m, feats[m])
            alpha = delta_s / (delta_f + _EPS)
            new = 0.5 * alpha * y_f + 0.5 * (y_f + delta_s - delta_f)
            new = new.clamp(-self.H, self.H)
            n = float(epoch)
            self.labels[m][ids] = (n - 1) / (n + 1) * self.labels[m][ids] + 2 / (n + 1) * new


@register_model("self-mm")
class SelfMM(MSAModel):
    """Self-MM (Yu et al. 2021): multi-task heads with self-supervised unimodal labels (ULGM)."""

    name = "self-mm"

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        super().__init__(spec, **cfg)
        dims = spec.dims
        text_out = int(cfg["text_dim"])
        self.text_net = TextSubNet(
            dims["text"], text_out, int(cfg["text_layers"]), int(cfg["text_heads"]), float(cfg["text_dropout"])
        )
        self.audio_net = AuViSubNet(dims["audio"], int(cfg["audio_lstm_hidden"]), int(cfg["audio_out"]))
        self.visual_net = AuViSubNet(dims["visual"], int(cfg["visual_lstm_hidden"]), int(cfg["visual_out"]))
        outs = {"text": text_out, "audio": int(cfg["audio_out"]), "visual": int(cfg["visual_out"])}
        self.heads = nn.ModuleDict(
            {
                "fusion": PostHead(sum(outs.values()), int(cfg["post_fusion_dim"]), float(cfg["post_fusion_dropout"])),
                **{
                    m: PostHead(outs[m], int(cfg[f"post_{m}_dim"]), float(cfg[f"post_{m}_dropout"]))
                    for m in MODALITY_KEYS
                },
            }
        )
        self.feature_dims = {m: int(cfg[f"post_{m}_dim"]) for m in HEADS}
        self.memory: UnimodalLabelMemory | None = None
        self.current_ids: torch.Tensor | None = None
        self.epoch = 1  # 1-based, as MMSA counts

    # ------------------------------------------------------------------ trainer hooks

    def init_dataset(self, n_samples: int, labels: torch.Tensor) -> None:
        """Allocate the ULGM memory for training samples 0..n_samples-1 and reset the epoch."""
        labels = torch.as_tensor(labels, dtype=torch.float32).flatten()
        if labels.shape[0] != n_samples:
            raise ValueError(f"init_dataset: got {labels.shape[0]} labels for {n_samples} samples")
        self.memory = UnimodalLabelMemory(
            labels, self.feature_dims, float(self.config["H"]), bool(self.config["exclude_zero"])
        )
        self.epoch = 1
        self.current_ids = None

    def set_sample_ids(self, ids: torch.Tensor) -> None:
        """Dataset indices of the next training batch (consumed by the next training_loss)."""
        self.current_ids = torch.as_tensor(ids, dtype=torch.long).flatten()

    def on_epoch_end(self, epoch: int) -> None:
        self.epoch += 1

    def unimodal_labels(self) -> dict[str, torch.Tensor]:
        """Current generated labels per modality (copies), for inspection and tests."""
        if self.memory is None:
            return {}
        return {m: self.memory.labels[m].detach().clone() for m in MODALITY_KEYS}

    # -------------------------------------------------------------------------- model

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        h = {
            "text": self.text_net(*batch_modality(batch, "text")),
            "audio": self.audio_net(*batch_modality(batch, "audio")),
            "visual": self.visual_net(*batch_modality(batch, "visual")),
        }
        fused_in = torch.cat([h[m] for m in MODALITY_KEYS], dim=-1)
        preds, feats = {}, {}
        preds["fusion"], feats["fusion"] = self.heads["fusion"](fused_in)
        for m in MODALITY_KEYS:
            preds[m], feats[m] = self.heads[m](h[m])
        return ModelOutput(
            score=preds["fusion"],
            unimodal={m: preds[m] for m in MODALITY_KEYS},
            extras={f"feature_{m}": feats[m] for m in HEADS},
        )

    def _take_ids(self, batch_size: int) -> torch.Tensor | None:
        ids, self.current_ids = self.current_ids, None
        if ids is None or self.memory is None or not self.training:
            return None
        if ids.shape[0] != batch_size:
            raise ValueError(f"set_sample_ids got {ids.shape[0]} ids for a batch of {batch_size}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.memory.n_samples:
            raise ValueError(f"sample ids must lie in [0, {self.memory.n_samples}) as given to init_dataset")
        return ids

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        ids = self._take_ids(out.score.shape[0])
        task = nn.functional.l1_loss(out.score, labels)
        if ids is None:
            return task, {"task": float(task.detach())}

        mem = self.memory
        assert mem is not None
        mem.to(out.score.device)
        ids = ids.to(out.score.device)
        y_f = mem.labels["fusion"][ids]
        loss = task
        terms = {"task": float(task.detach())}
        for m in MODALITY_KEYS:
            y_u = mem.labels[m][ids]
            weight = torch.tanh(torch.abs(y_u - y_f))
            term = torch.mean(weight * torch.abs(out.unimodal[m] - y_u))
            loss = loss + term
            terms[m] = float(term.detach())

        with torch.no_grad():
            feats = {m: out.extras[f"feature_{m}"].detach() for m in HEADS}
            if self.epoch > int(self.config["warmup_epochs"]):
                mem.update_labels(ids, feats, self.epoch)
            mem.update_features(ids, feats)
            mem.update_centres()
        return loss, terms
