"""Small helpers used by Self-MM, CENet, ConKI, TFN, MulT and the late-fusion baseline that
models/zoo/layers.py does not provide (it owns attention, Transformer stacks and pooling).

Mask convention: True = valid step. Masks may have holes (the visual mask is False on frames
without a face), so nothing here assumes the valid steps form a prefix.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from core.errors import MSAError
from models.base import ModalityBatch

MODALITY_KEYS = ("text", "audio", "visual")


class ModelNotReadyError(MSAError):
    """The model needs a preparation step (e.g. CENet's k-means vocabularies) before use."""


def batch_modality(batch: ModalityBatch, m: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, bool mask) of modality m ("text", "audio" or "visual")."""
    return getattr(batch, m), getattr(batch, f"{m}_mask").bool()


def zero_padded(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x with padded steps set to 0, so convolutions/means cannot see what padding contained."""
    return x * mask.to(x.dtype).unsqueeze(-1)


def compact_valid(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move each row's valid steps to the front (order kept) and return (x', lengths).

    Lets a recurrent net run over exactly the valid steps even when the mask has holes."""
    valid = mask.bool()
    # A stable sort on "is padding" keeps the valid steps in their original order.
    order = torch.sort((~valid).to(torch.int8), dim=1, stable=True).indices
    xs = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return xs, valid.sum(dim=1)


def lstm_final_state(lstm: nn.LSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Final hidden state of the last LSTM layer after reading only the valid steps (packed).

    Returns (B, H * directions). Rows with no valid step give zeros: the LSTM is run on one
    dummy step (packing needs length >= 1) and its output is discarded."""
    xs, lengths = compact_valid(zero_padded(x, mask), mask)
    has_any = lengths > 0
    packed = pack_padded_sequence(xs, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False)
    _, (h_n, _) = lstm(packed)
    dirs = 2 if lstm.bidirectional else 1
    last = h_n[-dirs:]  # (dirs, B, H): last layer, every direction
    out = last.transpose(0, 1).reshape(x.shape[0], -1)
    return out * has_any.to(out.dtype).unsqueeze(-1)


def last_valid_step(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x[b, t_last(b)] where t_last is the last valid step; zeros for rows with none. (B, D)."""
    valid = mask.bool()
    t = torch.arange(x.shape[1], device=x.device).expand_as(valid)
    idx = torch.where(valid, t, torch.zeros_like(t)).max(dim=1).values
    out = x[torch.arange(x.shape[0], device=x.device), idx]
    return out * valid.any(dim=1).to(out.dtype).unsqueeze(-1)


def first_step(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The CLS position (step 0) of a token sequence, zeroed for rows whose step 0 is padding."""
    return x[:, 0] * mask[:, 0].to(x.dtype).unsqueeze(-1)
