"""Generic building blocks shared by the zoo models.

Mask convention everywhere in this module: a boolean mask is True on *valid* steps (the
ModalityBatch convention). nn.MultiheadAttention wants the opposite (True = ignore), so the
conversion happens in one place, `masked_attention`, which also handles the case every MSA model hits under
missing-modality training: a sequence whose steps are *all* masked. Softmax over an all-masked row
is NaN; we instead let such a row attend to one dummy step and then zero the attention output, so
the block degrades to its residual path and padded values still cannot influence anything.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from models.base import ModalityBatch

# --------------------------------------------------------------------------------------- masks


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None, dim: int = 1) -> torch.Tensor:
    """Mean of x (B, T, D) over valid steps (mask (B, T), True = valid). All-masked rows give 0."""
    if mask is None:
        return x.mean(dim=dim)
    m = mask.to(x.dtype).unsqueeze(-1)
    total = (x * m).sum(dim=dim)
    count = m.sum(dim=dim).clamp_min(1.0)
    return total / count


def to_key_padding_mask(mask: torch.Tensor) -> torch.Tensor:
    """Our True=valid mask -> nn.MultiheadAttention's True=ignore key_padding_mask."""
    return ~mask.bool()


def masked_attention(
    attn: nn.MultiheadAttention,
    query: torch.Tensor,
    key_value: torch.Tensor,
    kv_mask: torch.Tensor | None,
) -> torch.Tensor:
    """Run a batch_first nn.MultiheadAttention with a True=valid key mask (B, Tk).

    Samples with no valid key get an all-zero output (not NaN), so a residual block reduces to
    its skip path for a fully-missing modality."""
    if kv_mask is None:
        out, _ = attn(query, key_value, key_value, need_weights=False)
        return out
    valid = kv_mask.bool()
    has_any = valid.any(dim=1)  # (B,)
    # Give all-masked rows one attendable dummy step so softmax stays finite; zeroed below.
    safe = valid.clone()
    safe[~has_any, 0] = True
    out, _ = attn(query, key_value, key_value, key_padding_mask=~safe, need_weights=False)
    return out * has_any.to(out.dtype).view(-1, 1, 1)


# ------------------------------------------------------------------------- positional embedding


class SinusoidalPositionalEmbedding(nn.Module):
    """Adds the fixed sine/cosine table of Vaswani et al.; works for any length (table grows)."""

    def __init__(self, d_model: int, max_len: int = 512) -> None:
        super().__init__()
        self.d_model = d_model
        self.register_buffer("table", self._make(max_len), persistent=False)

    def _make(self, length: int) -> torch.Tensor:
        pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
        div = torch.exp(torch.arange(0, self.d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / self.d_model))
        table = torch.zeros(length, self.d_model)
        table[:, 0::2] = torch.sin(pos * div)
        table[:, 1::2] = torch.cos(pos * div[: self.d_model // 2])
        return table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.table.shape[0]:
            self.table = self._make(t).to(self.table.device)
        return x + self.table[:t].to(x.dtype).unsqueeze(0)


class LearnedPositionalEmbedding(nn.Module):
    """Adds a trainable (max_len, d_model) table; longer inputs are a configuration error."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(max_len, d_model))
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        if t > self.table.shape[0]:
            raise ValueError(f"sequence length {t} exceeds learned positional table {self.table.shape[0]}")
        return x + self.table[:t].unsqueeze(0)


def make_positional_embedding(kind: str, d_model: int, max_len: int) -> nn.Module:
    """"sinusoidal" (any length) or "learned" (at most max_len steps)."""
    if kind == "sinusoidal":
        return SinusoidalPositionalEmbedding(d_model, max_len)
    if kind == "learned":
        return LearnedPositionalEmbedding(d_model, max_len)
    raise ValueError(f"unknown positional embedding {kind!r}; use 'sinusoidal' or 'learned'")


# ------------------------------------------------------------------------------------ blocks


class Projector(nn.Module):
    """Per-step Linear(in_dim -> d_model) + LayerNorm: brings every modality to a shared width."""

    def __init__(self, in_dim: int, d_model: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.norm(self.linear(x)))


class GEGLU(nn.Module):
    """Gated GELU (Shazeer 2020): split the last dim in two halves x, g and return x * gelu(g)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * nn.functional.gelu(gate)


class FeedForward(nn.Module):
    """Position-wise MLP d -> d*ff_mult -> d; activation "gelu" or "geglu" (Perceiver/EMT style)."""

    def __init__(self, d_model: int, ff_mult: int = 4, dropout: float = 0.0, activation: str = "gelu") -> None:
        super().__init__()
        hidden = d_model * ff_mult
        if activation == "gelu":
            first, act = nn.Linear(d_model, hidden), nn.GELU()
        elif activation == "geglu":
            first, act = nn.Linear(d_model, hidden * 2), GEGLU()
        else:
            raise ValueError(f"unknown feed-forward activation {activation!r}; use 'gelu' or 'geglu'")
        self.net = nn.Sequential(first, act, nn.Dropout(dropout), nn.Linear(hidden, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TransformerBlock(nn.Module):
    """Pre-norm self-attention block: x + MHA(LN(x)) then x + FF(LN(x)). mask: True = valid."""

    def __init__(
        self, d_model: int, n_heads: int = 4, ff_mult: int = 4, dropout: float = 0.0, activation: str = "gelu"
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_mult, dropout, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.drop(masked_attention(self.attn, h, h, mask))
        return x + self.ff(self.norm2(x))


class TransformerEncoder(nn.Module):
    """A stack of pre-norm TransformerBlocks with a final LayerNorm. forward(x, mask) -> same shape."""

    def __init__(
        self,
        d_model: int,
        n_layers: int = 1,
        n_heads: int = 4,
        ff_mult: int = 4,
        dropout: float = 0.0,
        activation: str = "gelu",
        final_norm: bool = True,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerBlock(d_model, n_heads, ff_mult, dropout, activation) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model) if final_norm else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)

    def hidden_states(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """[input, after layer 1, ..., after layer n] (no final norm): ALMT/LNLN feed each level
        of the language stream to a different hyper-modality layer."""
        states = [x]
        for layer in self.layers:
            x = layer(x, mask)
            states.append(x)
        return states


class CrossAttentionBlock(nn.Module):
    """Pre-norm cross-attention: query stream q attends to key/value stream kv (kv_mask True =
    valid), then a feed-forward. Returns the updated query stream (same shape as q). If kv has no
    valid step for a sample, that sample's attention term is 0 (residual only)."""

    def __init__(
        self, d_model: int, n_heads: int = 4, ff_mult: int = 4, dropout: float = 0.0, activation: str = "gelu"
    ) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(d_model)
        self.norm_kv = nn.LayerNorm(d_model)
        self.attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.norm_ff = nn.LayerNorm(d_model)
        self.ff = FeedForward(d_model, ff_mult, dropout, activation)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor, kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        q = q + self.drop(masked_attention(self.attn, self.norm_q(q), self.norm_kv(kv), kv_mask))
        return q + self.ff(self.norm_ff(q))


# ---------------------------------------------------------------------- fixed-length tokens


class FixedLengthTokens(nn.Module):
    """Learned-query attention pooling: n trainable queries cross-attend to x (mask True = valid)
    and return (B, n, d). Padded steps never contribute; an all-masked input gives the queries
    passed through the residual/FF path only (finite)."""

    def __init__(self, d_model: int, n_tokens: int = 8, n_heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(1, n_tokens, d_model))
        nn.init.trunc_normal_(self.queries, std=0.02)
        self.block = CrossAttentionBlock(d_model, n_heads, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.queries.expand(x.shape[0], -1, -1)
        return self.block(q, x, mask)


def fixed_length_tokens(
    x: torch.Tensor, mask: torch.Tensor | None, n: int, pooler: FixedLengthTokens | None = None
) -> torch.Tensor:
    """Reduce a variable-length (B, T, d) sequence to n tokens (B, n, d).

    With `pooler` (a FixedLengthTokens module, which owns the learned queries) this is learned-query
    attention pooling. Without one it is the parameter-free fallback: the valid steps of each sample
    are split into n contiguous, equally long chunks (by valid-step rank) and each chunk is averaged,
    so padding never contributes and empty chunks are 0."""
    if pooler is not None:
        if pooler.queries.shape[1] != n:
            raise ValueError(f"pooler makes {pooler.queries.shape[1]} tokens, asked for {n}")
        return pooler(x, mask)
    b, t, _ = x.shape
    valid = torch.ones(b, t, dtype=torch.bool, device=x.device) if mask is None else mask.bool()
    rank = valid.long().cumsum(dim=1) - 1  # index among valid steps
    count = valid.sum(dim=1, keepdim=True).clamp_min(1)
    chunk = (rank * n) // count  # (B, T) in [0, n)
    chunk = chunk.clamp(0, n - 1)
    onehot = nn.functional.one_hot(chunk, n).to(x.dtype) * valid.unsqueeze(-1).to(x.dtype)  # (B, T, n)
    sums = torch.einsum("btn,btd->bnd", onehot, x)
    sizes = onehot.sum(dim=1).clamp_min(1.0).unsqueeze(-1)
    return sums / sizes


class TokenEncoder(nn.Module):
    """Project -> positional embedding -> prepend n learnable tokens -> Transformer -> first n
    outputs. This is how ALMT/LNLN turn each modality into a fixed 8-token summary. The prepended
    tokens are always valid, so an all-masked modality still yields finite tokens."""

    def __init__(
        self,
        in_dim: int,
        d_model: int,
        n_tokens: int = 8,
        n_layers: int = 1,
        n_heads: int = 4,
        max_len: int = 512,
        dropout: float = 0.0,
        ff_mult: int = 4,
        pos: str = "sinusoidal",
    ) -> None:
        super().__init__()
        self.n_tokens = n_tokens
        self.proj = Projector(in_dim, d_model)
        self.pos = make_positional_embedding(pos, d_model, max_len + n_tokens)
        self.tokens = nn.Parameter(torch.zeros(1, n_tokens, d_model))
        nn.init.trunc_normal_(self.tokens, std=0.02)
        self.encoder = TransformerEncoder(d_model, n_layers, n_heads, ff_mult=ff_mult, dropout=dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b = x.shape[0]
        h = torch.cat([self.tokens.expand(b, -1, -1), self.proj(x)], dim=1)
        h = self.pos(h)
        full_mask = None
        if mask is not None:
            ones = torch.ones(b, self.n_tokens, dtype=torch.bool, device=mask.device)
            full_mask = torch.cat([ones, mask.bool()], dim=1)
        return self.encoder(h, full_mask)[:, : self.n_tokens]


# --------------------------------------------------------------------------------- heads / misc


def regression_head(d: int, hidden: int, out_dim: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """Linear(d, hidden) -> GELU -> Dropout -> Linear(hidden, out_dim). Callers squeeze(-1)."""
    return nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim))


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.scale * grad, None


def grad_reverse(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by -scale backward (Ganin & Lempitsky 2015)."""
    return _GradReverse.apply(x, scale)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ------------------------------------------------------- complete vs incomplete view helpers
# Models trained under LNLN's missing protocol (models/missing.py) receive the incomplete batch and
# the complete batch of the same samples. These helpers recover, per sample and per step, what the
# protocol removed, so no extra bookkeeping has to travel from the trainer to the loss.


def _check_views(incomplete: "ModalityBatch", complete: "ModalityBatch") -> None:
    for m in ("text", "audio", "visual"):
        a, b = getattr(incomplete, m), getattr(complete, m)
        if a.shape != b.shape:
            raise ValueError(f"incomplete and complete {m} differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def dropped_steps(incomplete: "ModalityBatch", complete: "ModalityBatch", modality: str) -> torch.Tensor:
    """(B, T) bool: steps valid in the complete view that the incomplete view lost.

    Audio/visual: the step was masked out or its features changed (the protocol zeroes the row and
    clears the mask). Text: the token id changed (-> [UNK]) when both views carry ids; otherwise
    the token features changed (the protocol zeroes them when it cannot re-encode). Comparing ids
    matters because a contextual encoder changes *every* token's features once one is [UNK]."""
    _check_views(incomplete, complete)
    base = getattr(complete, f"{modality}_mask").bool()
    lost = ~getattr(incomplete, f"{modality}_mask").bool()
    if modality == "text" and incomplete.text_ids is not None and complete.text_ids is not None:
        changed = incomplete.text_ids != complete.text_ids
    else:
        changed = (getattr(incomplete, modality) != getattr(complete, modality)).any(dim=-1)
    return base & (lost | changed)


def text_completeness(incomplete: "ModalityBatch", complete: "ModalityBatch") -> torch.Tensor:
    """(B,) fraction of droppable text tokens (valid, not CLS, not SEP) that survived: the realised
    1 - missing rate, i.e. LNLN's completeness label. Samples with no droppable token count as 1."""
    from models.missing import droppable_text_positions  # local: keeps layers importable alone

    droppable = droppable_text_positions(complete.text_mask.bool())
    kept = droppable & ~dropped_steps(incomplete, complete, "text")
    n = droppable.sum(dim=1)
    frac = kept.sum(dim=1).to(complete.text.dtype) / n.clamp_min(1).to(complete.text.dtype)
    return torch.where(n > 0, frac, torch.ones_like(frac))


def resolve_config(model: str, defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """defaults updated by given; an unknown key is a user error naming the valid keys."""
    from core.errors import MSAError

    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise MSAError(f"unknown {model} option(s) {', '.join(unknown)}; valid: {', '.join(sorted(defaults))}")
    return {**defaults, **given}
