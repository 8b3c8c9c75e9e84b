"""LNLN: Language-dominated Noise-resistant Learning Network.

Zhang et al., "Towards Robust Multimodal Sentiment Analysis with Incomplete Data", NeurIPS 2024;
official code github.com/Haoyu-ha/LNLN (structure and defaults followed; written from scratch).

Pipeline (paper section 3, official `models/lnln.py`):

1. Input construction and embedding: each modality is projected to d_model, n_tokens (8) learnable
   tokens are prepended, a Transformer runs, and the first n_tokens outputs are kept:
   H_l, H_a, H_v of shape (B, 8, d).
2. Dominant Modality Correction (DMC):
   - completeness check: a Transformer with one prepended token over H_l, then an MLP + sigmoid,
     predicts w = language completeness. L_cc = MSE(w, 1 - missing rate).
   - proxy dominant feature generator: a Transformer over [H_p (learnable), H_a, H_v] with 8
     prepended tokens; its first 8 outputs are H_proxy. (The official code feeds audio+visual only;
     `proxy_uses_language=True` also feeds H_l.)
   - corrected dominant feature H_dc = w * H_l + (1 - w) * H_proxy.
   - effectiveness discriminator (MLP, 2 classes) tells H_dc tokens (label 1) from the
     complete-view language tokens (label 0), L_adv = cross-entropy. The proxy generator is trained
     adversarially through a gradient-reversal layer (GRL, scale 1).
3. Dominant-modality-based multimodal learning (ALMT-style):
   - a language Transformer over H_dc; its input and every layer output (depth+1 levels) each drive
     one adaptive hyper-modality layer (AHL): learnable hyper tokens are updated by attention with
     the dominant feature as query and audio / visual as keys/values (summed);
   - a cross-modality fusion Transformer (dominant stream attends to the hyper tokens, a shared
     learnable token prepended to both), mean over its non-extra outputs, Linear -> score.
4. Reconstructor: one Transformer per modality maps the incomplete-view tokens to the complete-view
   tokens (the same encoders run on the complete batch); L_rec = MSE.

Total loss (official `core/losses.py` and configs for MOSI/MOSEI):
    L = sigma * L_sp + alpha * L_cc + beta * L_adv + gamma * L_rec,
    sigma = 1.0, alpha = 0.9, beta = 0.8, gamma = 0.1, L_sp = MSE(score, label).
(Official training: AdamW lr 1e-4, weight decay 1e-4, batch 64, 200 epochs; the trainer owns that.)

Deviations, all deliberate and configurable where it matters:
- Text: the paper fine-tunes BERT-base. We take *frozen* text-encoder token features (MiniLM, CLS at
  position 0) and the trainable text part is the text encoder Transformer stack on top
  (`text_encoder_depth`). Which tokens are missing comes from the incomplete/complete views.
- Completeness label: the official loader uses the *sampled* missing rate of each sample. We
  compute the *realised* rate from the two views (`layers.text_completeness`: share of droppable
  text tokens, i.e. not CLS/SEP, whose id - or, without ids, whose features - are unchanged), so
  the trainer passes nothing extra.
- GRL placement: the official code reverses the gradient of H_proxy *before* the mixing, so the
  proxy generator also receives the reversed gradient of L_sp. We reverse only on the
  discriminator path, which is the paper's adversarial intent; `official_grl=True` restores the
  official placement.
- Masks: the official code uses no attention masks (padding participates). Ours masks padded and
  dropped steps in the input encoders; everything after them works on fixed 8-token sequences.
- AHL residual adds to the un-normalised hyper tokens (paper formula); the official code adds the
  update to the LayerNorm-ed tokens. Attention head size is d_model / heads (official: 64 per
  head regardless of d_model). Positional tables are learned (as official) but initialised with
  std 0.02 instead of N(0, 1). Input projections are Linear + LayerNorm (official: Linear).

Sizes: paper/official d_model 128, 8 heads, depth 2 everywhere, AHL 3 layers, fusion depth 2 (MOSI)
or 4 (MOSEI), FF hidden 128, discriminator hidden 64. Defaults here are CPU-sized: d_model 64,
4 heads, depth 1 (so AHL 2 layers), fusion depth 1.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from core.feature_spec import FeatureSpec
from models.base import ModalityBatch, ModelOutput, MSAModel
from models.registry import register_model
from models.zoo.layers import (
    CrossAttentionBlock,
    LearnedPositionalEmbedding,
    TokenEncoder,
    TransformerEncoder,
    grad_reverse,
    resolve_config,
    text_completeness,
)

LNLN_DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "n_heads": 4,
    "n_tokens": 8,
    "encoder_depth": 1,  # audio/visual input encoders (official 2)
    "text_encoder_depth": None,  # trainable text stack on the frozen features; None = encoder_depth
    "dmc_depth": 1,  # completeness check and proxy generator Transformers (official 2)
    "reconstructor_depth": 1,  # (official 2)
    "language_depth": 1,  # dominant-stream Transformer; AHL gets language_depth + 1 layers (official 2)
    "fusion_depth": 1,  # (official 2 MOSI, 4 MOSEI)
    "ff_mult": 1,  # official FF hidden = d_model
    "dropout": 0.0,  # official 0
    "discriminator_hidden": None,  # None = d_model // 2 (official 64 for d_model 128)
    "proxy_uses_language": False,
    "official_grl": False,
    "grl_scale": 1.0,
    "sigma": 1.0,
    "alpha": 0.9,
    "beta": 0.8,
    "gamma": 0.1,
}


class TokenTransformer(nn.Module):
    """Learned positions + optional prepended learnable tokens + Transformer over a short, always
    valid token sequence (the official `Transformer(token_len=...)` building block)."""

    def __init__(self, d: int, n_in: int, n_extra: int, depth: int, heads: int, ff_mult: int, dropout: float,
                 final_norm: bool = True) -> None:
        super().__init__()
        self.n_extra = n_extra
        self.extra = nn.Parameter(torch.zeros(1, n_extra, d)) if n_extra else None
        self.pos = LearnedPositionalEmbedding(d, n_in + n_extra)
        self.encoder = TransformerEncoder(d, depth, heads, ff_mult, dropout, final_norm=final_norm)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.extra is not None:
            x = torch.cat([self.extra.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._embed(x))

    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder.hidden_states(self._embed(x))


class HyperModalityLayer(nn.Module):
    """ALMT's adaptive hyper-modality layer: the dominant stream queries audio and visual with
    separate key/value maps; the two attention results are summed, projected and added to the
    hyper-modality tokens."""

    def __init__(self, d: int, heads: int, dropout: float) -> None:
        super().__init__()
        if d % heads:
            raise ValueError(f"d_model {d} is not divisible by {heads} heads")
        self.heads = heads
        self.norm_d, self.norm_a, self.norm_v = (nn.LayerNorm(d) for _ in range(3))
        self.to_q = nn.Linear(d, d, bias=False)
        self.to_k_a, self.to_v_a = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.to_k_v, self.to_v_v = nn.Linear(d, d, bias=False), nn.Linear(d, d, bias=False)
        self.to_out = nn.Sequential(nn.Linear(d, d), nn.Dropout(dropout))

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def forward(self, h_dom: torch.Tensor, h_a: torch.Tensor, h_v: torch.Tensor, h_hyper: torch.Tensor) -> torch.Tensor:
        h_dom, h_a, h_v = self.norm_d(h_dom), self.norm_a(h_a), self.norm_v(h_v)
        q = self._split(self.to_q(h_dom))
        out_a = F.scaled_dot_product_attention(q, self._split(self.to_k_a(h_a)), self._split(self.to_v_a(h_a)))
        out_v = F.scaled_dot_product_attention(q, self._split(self.to_k_v(h_v)), self._split(self.to_v_v(h_v)))
        out = (out_a + out_v).transpose(1, 2).flatten(2)
        return h_hyper + self.to_out(out)


class CrossModalityFusion(nn.Module):
    """Target stream (dominant) attends to the source stream (hyper tokens); one shared learnable
    token is prepended to both, each gets its own learned positions."""

    def __init__(self, d: int, n_tokens: int, depth: int, heads: int, ff_mult: int, dropout: float) -> None:
        super().__init__()
        self.extra = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_source = LearnedPositionalEmbedding(d, n_tokens + 1)
        self.pos_target = LearnedPositionalEmbedding(d, n_tokens + 1)
        self.blocks = nn.ModuleList(CrossAttentionBlock(d, heads, ff_mult, dropout) for _ in range(depth))

    def forward(self, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        extra = self.extra.expand(source.shape[0], -1, -1)
        source = self.pos_source(torch.cat([extra, source], dim=1))
        target = self.pos_target(torch.cat([extra, target], dim=1))
        for block in self.blocks:
            target = block(target, source)
        return target


@register_model("lnln")
class LNLN(MSAModel):
    """LNLN (NeurIPS 2024): language-dominated, noise-resistant fusion for incomplete data."""

    name = "lnln"
    uses_complete_view = True
    # The loss only needs the complete view's *input embeddings*; training_loss computes them
    # itself, which is far cheaper than a full forward pass on the complete batch.
    needs_complete_forward = False

    def __init__(self, spec: FeatureSpec, **config: Any) -> None:
        super().__init__(spec, **config)
        cfg = resolve_config(self.name, LNLN_DEFAULTS, config)
        self.cfg = cfg
        d, heads, n, ff, drop = cfg["d_model"], cfg["n_heads"], cfg["n_tokens"], cfg["ff_mult"], cfg["dropout"]
        text_depth = cfg["text_encoder_depth"] or cfg["encoder_depth"]
        dims = spec.dims

        def input_encoder(m: str, depth: int) -> TokenEncoder:
            return TokenEncoder(dims[m], d, n, depth, heads, max_len=spec.modality(m).max_len,
                                dropout=drop, ff_mult=ff, pos="learned")

        self.encode_text = input_encoder("text", text_depth)
        self.encode_audio = input_encoder("audio", cfg["encoder_depth"])
        self.encode_visual = input_encoder("visual", cfg["encoder_depth"])

        # Dominant modality correction
        self.completeness_encoder = TokenTransformer(d, n, 1, cfg["dmc_depth"], heads, ff, drop)
        self.completeness_head = nn.Sequential(
            nn.Linear(d, d // 2), nn.LeakyReLU(0.1), nn.Linear(d // 2, 1), nn.Sigmoid()
        )
        self.proxy_seed = nn.Parameter(torch.ones(1, n, d))  # official H_p init: ones
        n_proxy_in = n * (4 if cfg["proxy_uses_language"] else 3)
        self.proxy_generator = TokenTransformer(d, n_proxy_in, n, cfg["dmc_depth"], heads, ff, drop)
        disc_hidden = cfg["discriminator_hidden"] or d // 2
        self.discriminator = nn.Sequential(nn.Linear(d, disc_hidden), nn.LeakyReLU(0.1), nn.Linear(disc_hidden, 2))

        # Dominant-modality-based multimodal learning
        self.language_encoder = TokenTransformer(d, n, 0, cfg["language_depth"], heads, ff, drop, final_norm=False)
        self.hyper_seed = nn.Parameter(torch.ones(1, n, d))  # official H_hyper init: ones
        self.hyper_layers = nn.ModuleList(HyperModalityLayer(d, heads, drop) for _ in range(cfg["language_depth"] + 1))
        self.fusion = CrossModalityFusion(d, n, cfg["fusion_depth"], heads, ff, drop)
        self.head = nn.Linear(d, 1)

        # Reconstructor (audio, visual, text)
        self.reconstructors = nn.ModuleDict(
            {m: TokenTransformer(d, n, 0, cfg["reconstructor_depth"], heads, ff, drop)
             for m in ("audio", "visual", "text")}
        )

    # ----------------------------------------------------------------------------- forward

    def encode(self, batch: ModalityBatch) -> dict[str, torch.Tensor]:
        """Input construction: (B, n_tokens, d) per modality."""
        return {
            "text": self.encode_text(batch.text, batch.text_mask),
            "audio": self.encode_audio(batch.audio, batch.audio_mask),
            "visual": self.encode_visual(batch.visual, batch.visual_mask),
        }

    def forward(self, batch: ModalityBatch) -> ModelOutput:
        h = self.encode(batch)
        h_l, h_a, h_v = h["text"], h["audio"], h["visual"]
        b = h_l.shape[0]

        w = self.completeness_head(self.completeness_encoder(h_l)[:, 0])  # (B, 1)
        parts = [self.proxy_seed.expand(b, -1, -1), h_a, h_v] + ([h_l] if self.cfg["proxy_uses_language"] else [])
        h_proxy = self.proxy_generator(torch.cat(parts, dim=1))[:, : self.cfg["n_tokens"]]
        h_proxy_main = grad_reverse(h_proxy, self.cfg["grl_scale"]) if self.cfg["official_grl"] else h_proxy
        w3 = w.unsqueeze(-1)
        h_dc = w3 * h_l + (1.0 - w3) * h_proxy_main

        levels = self.language_encoder.hidden_states(h_dc)
        h_hyper = self.hyper_seed.expand(b, -1, -1)
        for layer, h_dom in zip(self.hyper_layers, levels):
            h_hyper = layer(h_dom, h_a, h_v, h_hyper)
        fused = self.fusion(h_hyper, levels[-1])
        score = self.head(fused[:, 1:].mean(dim=1)).squeeze(-1)

        extras = {"completeness": w.squeeze(-1), "h_text": h_l, "h_audio": h_a, "h_visual": h_v,
                  "h_proxy": h_proxy, "h_dominant": h_dc}
        return ModelOutput(score=score, extras=extras)

    # ------------------------------------------------------------------------------- loss

    def training_loss(
        self,
        out: ModelOutput,
        batch: ModalityBatch,
        labels: torch.Tensor,
        complete: ModalityBatch | None = None,
        complete_out: ModelOutput | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """sigma*L_sp + alpha*L_cc + beta*L_adv + gamma*L_rec. Without `complete` (e.g. evaluation)
        only L_sp can be computed and the other terms are reported as 0."""
        cfg = self.cfg
        l_sp = F.mse_loss(out.score, labels.to(out.score.dtype))
        if complete is None:
            return cfg["sigma"] * l_sp, {"sp": float(l_sp.detach()), "cc": 0.0, "adv": 0.0, "rec": 0.0}

        ex = out.extras
        w = ex["completeness"]
        l_cc = F.mse_loss(w, text_completeness(batch, complete).to(w.dtype))

        # encode() bypasses forward's standardising pre-hook, so standardise the complete view here.
        target = self.encode(self.standardise(complete))
        rec = torch.cat([self.reconstructors[m](ex[f"h_{m}"]) for m in ("audio", "visual", "text")], dim=1)
        l_rec = F.mse_loss(rec, torch.cat([target[m] for m in ("audio", "visual", "text")], dim=1))

        if cfg["official_grl"]:
            h_dc_adv = ex["h_dominant"]  # already built from the reversed proxy
        else:
            w3 = w.view(-1, 1, 1)
            h_dc_adv = w3 * ex["h_text"] + (1.0 - w3) * grad_reverse(ex["h_proxy"], cfg["grl_scale"])
        d = h_dc_adv.shape[-1]
        disc_in = torch.cat([h_dc_adv, target["text"]], dim=0).reshape(-1, d)
        n_tok = h_dc_adv.shape[0] * h_dc_adv.shape[1]
        disc_labels = torch.cat([torch.ones(n_tok), torch.zeros(n_tok)]).long().to(disc_in.device)
        l_adv = F.cross_entropy(self.discriminator(disc_in), disc_labels)

        loss = cfg["sigma"] * l_sp + cfg["alpha"] * l_cc + cfg["beta"] * l_adv + cfg["gamma"] * l_rec
        terms = {"sp": l_sp, "cc": l_cc, "adv": l_adv, "rec": l_rec}
        return loss, {k: float(v.detach()) for k, v in terms.items()}
