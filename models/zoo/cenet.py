"""CENet: Cross-modal Enhancement Network (Wang et al., IEEE TMM 2022), after the authors' code
(github.com/Say2L/CENet: networks/subnet/CEmodule.py, config/global_configs.py, train.py).

* Feature-to-index transform: acoustic and visual frames are quantised with k-means vocabularies
  fitted on training frames (the official data ships precomputed ids with `label_size` = 16
  clusters); each id has a learned embedding of the text width (index k = padding).
* Cross-modal enhancement (CE) module, injected before text-encoder layer `injection_index`
  (official ROBERTA_INJECTION_INDEX = 1, i.e. after the first layer): for each of audio and
  visual, the text hidden states query the modality's embedded ids with single-head attention
  (Wq/Wk/Wv, scores multiplied by `attn_scale` = 8 as in the official code rather than divided by
  sqrt(d)); the two attended streams are concatenated, mapped back to the text width by a Linear
  and added to the text hidden states (a learned shift of each token).
* Head: the RoBERTa classification head on the CLS/<s> position (Dropout -> Linear -> tanh ->
  Dropout -> Linear(1)); loss MSE (official train.py).

Text: the paper fine-tunes SentiLARE (RoBERTa-base, 12 layers, hidden 768; lr 6e-5, batch 64,
40 epochs, warm-up 0.4, grad clip 2). Our text input is frozen MiniLM token features, so the text
stack is a trainable Projector + `text_layers` Transformer layers on top of them, and CE is
injected between those layers (injection_index 1 needs text_layers >= 2).

Deviations: attention in CE uses key-padding masks (the official code attends to padded ids, we
never do; a modality with no valid frame contributes a zero shift), and frames are z-scored with
training statistics before k-means (`standardize`; our raw features mix Hz, dB and MFCC scales,
and the official clustering preprocessing is not published).

Before training or inference call ``model.fit_vocabularies(audio_frames, visual_frames)`` with
(N, D) arrays of *valid* training frames; the centroids (and scaling) are buffers, so they are
saved in and restored from the state dict. Using an unfitted model raises ModelNotReadyError.
"""
from __future__ import annotations

import warnings

from typing import Any

import numpy as np
import torch
from torch import nn

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.common import ModelNotReadyError, batch_modality
from models.zoo.layers import Projector, SinusoidalPositionalEmbedding, TransformerEncoder

DEFAULTS: dict[str, Any] = {
    "d_model": 64,  # paper: 768
    "text_layers": 2,  # paper: 12 (pretrained)
    "text_heads": 4,
    "injection_index": 1,
    "k_audio": 16,  # official label_size
    "k_visual": 16,
    "attn_scale": 8.0,
    "dropout": 0.1,  # RoBERTa hidden_dropout_prob
    "standardize": True,
    "kmeans_max_frames": 200_000,
    "seed": 0,
}
VOCAB_MODALITIES = ("audio", "visual")


class MaskedSingleHeadAttention(nn.Module):
    """Text queries attend to a modality's embeddings: softmax(scale * QK^T) V over valid keys."""

    def __init__(self, d: int, scale: float) -> None:
        super().__init__()
        self.wq, self.wk, self.wv = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.scale = scale

    def forward(self, text: torch.Tensor, other: torch.Tensor, other_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.wq(text), self.wk(other), self.wv(other)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        valid = other_mask.bool().unsqueeze(1)  # (B, 1, T)
        scores = scores.masked_fill(~valid, float("-inf"))
        has_any = other_mask.bool().any(dim=1)
        # Rows with no valid key would be all -inf (NaN softmax); give them a finite row, then zero.
        scores = torch.where(has_any.view(-1, 1, 1), scores, torch.zeros_like(scores))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        return out * has_any.to(out.dtype).view(-1, 1, 1)


class CrossModalEnhancement(nn.Module):
    """CE module: embedded acoustic/visual ids -> text-guided attention -> additive token shift."""

    def __init__(self, d: int, k_audio: int, k_visual: int, scale: float) -> None:
        super().__init__()
        self.embeddings = nn.ModuleDict(
            {
                "audio": nn.Embedding(k_audio + 1, d, padding_idx=k_audio),
                "visual": nn.Embedding(k_visual + 1, d, padding_idx=k_visual),
            }
        )
        self.attn = nn.ModuleDict({m: MaskedSingleHeadAttention(d, scale) for m in VOCAB_MODALITIES})
        self.cat_connect = nn.Linear(2 * d, d)

    def forward(
        self, text_h: torch.Tensor, ids: dict[str, torch.Tensor], masks: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        # Official order of concatenation: visual, then acoustic.
        attended = [self.attn[m](text_h, self.embeddings[m](ids[m]), masks[m]) for m in ("visual", "audio")]
        return text_h + self.cat_connect(torch.cat(attended, dim=-1))


@register_model("cenet")
class CENet(MSAModel):
    """CENet (Wang et al. 2022): k-means audio/visual vocabularies + cross-modal enhancement of text."""

    name = "cenet"

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        cfg = {**DEFAULTS, **config}
        super().__init__(spec, **cfg)
        d, n_layers = int(cfg["d_model"]), int(cfg["text_layers"])
        self.injection_index = int(cfg["injection_index"])
        if not 0 <= self.injection_index < max(n_layers, 1):
            raise ValueError(f"CENet injection_index {self.injection_index} needs 0 <= i < text_layers ({n_layers})")
        self.text_proj = Projector(spec.dims["text"], d, float(cfg["dropout"]))
        self.text_pos = SinusoidalPositionalEmbedding(d, spec.text.max_len)
        self.text_encoder = TransformerEncoder(d, n_layers, int(cfg["text_heads"]), dropout=float(cfg["dropout"]))
        self.ce = CrossModalEnhancement(d, int(cfg["k_audio"]), int(cfg["k_visual"]), float(cfg["attn_scale"]))
        drop = float(cfg["dropout"])
        self.head = nn.Sequential(nn.Dropout(drop), nn.Linear(d, d), nn.Tanh(), nn.Dropout(drop), nn.Linear(d, 1))
        for m in VOCAB_MODALITIES:
            k, dim = int(cfg[f"k_{m}"]), spec.dims[m]
            self.register_buffer(f"{m}_centroids", torch.zeros(k, dim))
            self.register_buffer(f"{m}_mean", torch.zeros(dim))
            self.register_buffer(f"{m}_std", torch.ones(dim))
        self.register_buffer("vocab_fitted", torch.tensor(False))

    # ------------------------------------------------------------------ vocabularies

    def fit_vocabularies(
        self,
        audio_frames: np.ndarray,
        visual_frames: np.ndarray,
        k_audio: int | None = None,
        k_visual: int | None = None,
    ) -> None:
        """Fit the k-means vocabularies on (N, D) arrays of valid training frames.

        A k different from the configured one rebuilds that embedding table (and updates
        self.config), so create the optimizer after fitting."""
        from sklearn.cluster import KMeans

        frames = {"audio": audio_frames, "visual": visual_frames}
        ks = {"audio": k_audio, "visual": k_visual}
        rng = np.random.default_rng(int(self.config["seed"]))
        device = self.audio_centroids.device
        for m in VOCAB_MODALITIES:
            x = np.asarray(frames[m], dtype=np.float64)
            dim = self.spec.dims[m]
            if x.ndim != 2 or x.shape[1] != dim:
                raise ValueError(f"CENet.fit_vocabularies: {m} frames must be (N, {dim}), got {x.shape}")
            x = x[np.isfinite(x).all(axis=1)]
            k = int(ks[m] if ks[m] is not None else self.config[f"k_{m}"])
            if x.shape[0] == 0:
                # No valid frame of this modality in the training data (e.g. audio-only clips): a
                # one-word vocabulary at the origin; the modality then adds a constant, learnt shift.
                warnings.warn(f"CENet: no valid {m} frames to fit a vocabulary on; using a single word")
                x, k = np.zeros((1, dim)), 1
            elif x.shape[0] < k:
                k = int(x.shape[0])  # fewer frames than words: one word per frame
            if x.shape[0] > int(self.config["kmeans_max_frames"]):
                x = x[rng.choice(x.shape[0], int(self.config["kmeans_max_frames"]), replace=False)]
            mean = x.mean(axis=0) if self.config["standardize"] else np.zeros(dim)
            std = x.std(axis=0) if self.config["standardize"] else np.ones(dim)
            std = np.where(std < 1e-8, 1.0, std)
            km = KMeans(n_clusters=k, n_init=4, random_state=int(self.config["seed"])).fit((x - mean) / std)
            if k != int(self.config[f"k_{m}"]):
                self.config[f"k_{m}"] = k
                self.ce.embeddings[m] = nn.Embedding(k + 1, self.ce.cat_connect.out_features, padding_idx=k).to(device)
            setattr(self, f"{m}_centroids", torch.as_tensor(km.cluster_centers_, dtype=torch.float32, device=device))
            setattr(self, f"{m}_mean", torch.as_tensor(mean, dtype=torch.float32, device=device))
            setattr(self, f"{m}_std", torch.as_tensor(std, dtype=torch.float32, device=device))
        self.vocab_fitted = torch.tensor(True, device=device)

    def quantize(self, m: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Nearest-centroid ids (B, T); padded steps get the padding id k."""
        if not bool(self.vocab_fitted):
            raise ModelNotReadyError(
                "CENet needs its acoustic/visual vocabularies: call model.fit_vocabularies(audio_frames, "
                "visual_frames) on training frames before training or inference"
            )
        centroids = getattr(self, f"{m}_centroids")
        z = (x - getattr(self, f"{m}_mean")) / getattr(self, f"{m}_std")
        dist = torch.cdist(z.reshape(-1, z.shape[-1]), centroids).reshape(*z.shape[:2], -1)
        ids = dist.argmin(dim=-1)
        return torch.where(mask.bool(), ids, torch.full_like(ids, centroids.shape[0]))

    # -------------------------------------------------------------------------- model

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        ids, masks = {}, {}
        for m in VOCAB_MODALITIES:
            x, mask = batch_modality(batch, m)
            ids[m], masks[m] = self.quantize(m, x, mask), mask
        text, text_mask = batch_modality(batch, "text")
        h = self.text_pos(self.text_proj(text))
        for i, layer in enumerate(self.text_encoder.layers):
            if i == self.injection_index:
                h = self.ce(h, ids, masks)
            h = layer(h, text_mask)
        h = self.text_encoder.norm(h)
        score = self.head(h[:, 0]).squeeze(-1)
        return ModelOutput(score=score, extras={"audio_ids": ids["audio"], "visual_ids": ids["visual"]})

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss = nn.functional.mse_loss(out.score, labels)
        return loss, {"task": float(loss.detach()), "l1": float(nn.functional.l1_loss(out.score, labels).detach())}
