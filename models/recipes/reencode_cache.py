"""A memoising text re-encoder for LNLN missing-data training of several models on the same data.

`models.train.train_model` draws the missing pattern from a generator seeded by the run's seed and
shuffles with another one, so with the same seed, data and batch size every model sees the *same*
sequence of corrupted sentences. Re-encoding them with MiniLM dominates the CPU cost of training
small fusion models, so the first model pays and the others hit this cache. Results are exactly
the encoder's output at the valid positions (rounded to float16 for every caller alike, so a
cached and a fresh answer are identical); padded positions are returned as zeros, which the
models never read (their text mask is False there and inputs are zeroed by the standardiser).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch


class CachedReencoder:
    def __init__(self, encode_ids, dim: int = 384, max_entries: int = 200_000) -> None:
        self.encode_ids = encode_ids
        self.dim = int(dim)
        self.max_entries = int(max_entries)
        self._cache: dict[bytes, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _key(ids: np.ndarray, mask: np.ndarray) -> bytes:
        n = int(mask.sum())
        return hashlib.blake2b(ids[mask.astype(bool)].tobytes() + n.to_bytes(4, "little"), digest_size=16).digest()

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids_np = ids.detach().cpu().numpy()
        mask_np = attention_mask.detach().cpu().numpy().astype(bool)
        keys = [self._key(ids_np[i], mask_np[i]) for i in range(len(ids_np))]
        missing = [i for i, k in enumerate(keys) if k not in self._cache]
        fresh_by_row: dict[int, np.ndarray] = {}
        if missing:
            self.misses += len(missing)
            rows = torch.as_tensor(missing, dtype=torch.long)
            fresh = self.encode_ids(ids[rows], attention_mask[rows]).detach().float().cpu().numpy()
            for j, i in enumerate(missing):
                valid = fresh[j][mask_np[i]].astype(np.float16)  # every caller gets the rounded values
                fresh_by_row[i] = valid
                if len(self._cache) < self.max_entries:
                    self._cache[keys[i]] = valid
        self.hits += len(keys) - len(missing)
        out = np.zeros((len(ids_np), ids_np.shape[1], self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            valid = fresh_by_row[i] if i in fresh_by_row else self._cache[k]
            out[i][mask_np[i]] = valid.astype(np.float32)
        return torch.from_numpy(out)

    def stats(self) -> dict[str, int]:
        return {"entries": len(self._cache), "hits": self.hits, "misses": self.misses}
