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
from pathlib import Path

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


# ----------------------------------------------------------------------------- precomputation


class _Recorder:
    """A stand-in re-encoder that only records which rows would be re-encoded (returns zeros)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.rows: dict[bytes, tuple[np.ndarray, int]] = {}

    def __call__(self, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids_np, mask_np = ids.cpu().numpy(), attention_mask.cpu().numpy().astype(bool)
        for i in range(len(ids_np)):
            key = CachedReencoder._key(ids_np[i], mask_np[i])
            if key not in self.rows:
                self.rows[key] = (ids_np[i][mask_np[i]].copy(), int(mask_np[i].sum()))
        return torch.zeros((*ids.shape, self.dim), dtype=torch.float32)


def planned_rows(train_ds, dev_ds, *, epochs: int, batch_size: int, seed: int, eval_seeds, eval_rates,
                 unk_id: int, missing: str = "coalition", eval_batch_size: int = 64,
                 dim: int = 384) -> dict[bytes, tuple[np.ndarray, int]]:
    """Every corrupted sentence `train_model` (`missing` regime, `epochs` epochs) and the recipe's
    evaluation (evaluate_robustness + whole-modality masks) will ask to re-encode.

    This *replays* the trainer's random draws with the trainer's own function
    (`models.train.training_inputs`): generators seeded seed (shuffle) and seed + 1 (missing
    pattern), one DataLoader per epoch; and evaluate_robustness's per-(rate, seed) generator over
    unshuffled batches. If the trainer ever draws differently the replay simply predicts other rows:
    the cache then misses and the encoder is called as usual, so results never depend on this
    function being right."""
    from torch.utils.data import DataLoader

    from models.missing import apply_missing, mask_modalities
    from models.train import training_inputs

    rec = _Recorder(dim)
    shuffle_gen = torch.Generator().manual_seed(seed)
    missing_gen = torch.Generator().manual_seed(seed + 1)
    for _ in range(epochs):
        loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, generator=shuffle_gen,
                            collate_fn=train_ds.collate_fn, num_workers=0)
        for batch, labels, idx in loader:
            evidence = None if train_ds.evidence is None else torch.as_tensor(train_ds.evidence[idx.numpy()])
            training_inputs(batch, labels, evidence, missing, missing_gen, unk_id, rec)
    eval_batches = [b for b, _, _ in DataLoader(dev_ds, batch_size=eval_batch_size, shuffle=False,
                                                collate_fn=dev_ds.collate_fn, num_workers=0)]
    for rate in eval_rates:
        if rate <= 0:
            continue
        for s in eval_seeds:
            gen = torch.Generator().manual_seed(int(s))
            for batch in eval_batches:
                apply_missing(batch, rate, gen, unk_id, rec)
    for batch in eval_batches:
        mask_modalities(batch, {"audio", "visual"}, unk_id, rec)
    return rec.rows


def _encode_rows(args: tuple) -> list[tuple[bytes, np.ndarray]]:
    rows, threads, batch = args
    from models.recipes.common import limit_threads, text_encoder

    limit_threads(threads)
    enc = text_encoder()
    out = []
    order = sorted(range(len(rows)), key=lambda i: rows[i][2])  # rows: (key, valid ids, n)
    for b in range(0, len(order), batch):
        chunk = [rows[i] for i in order[b : b + batch]]
        width = max(r[2] for r in chunk)
        ids = torch.full((len(chunk), width), enc.pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for j, (_, valid, n) in enumerate(chunk):
            ids[j, :n] = torch.from_numpy(valid)
            mask[j, :n] = 1
        hidden = enc.encode_ids(ids, mask).float().cpu().numpy()
        out.extend((key, hidden[j, :n].astype(np.float16)) for j, (key, _, n) in enumerate(chunk))
    return out


def precompute(cache: CachedReencoder, rows: dict[bytes, tuple[np.ndarray, int]], workers: int = 2,
               batch: int = 64) -> int:
    """Encode the planned rows not yet cached (in `workers` processes, length-sorted batches)."""
    from multiprocessing import get_context

    todo = [(k, v[0], v[1]) for k, v in rows.items() if k not in cache._cache]
    if not todo:
        return 0
    parts = [todo[i::workers] for i in range(workers)] if workers > 1 else [todo]
    if workers > 1:
        with get_context("spawn").Pool(workers) as pool:
            results = pool.map(_encode_rows, [(p, 1, batch) for p in parts])
    else:
        results = [_encode_rows((todo, torch.get_num_threads(), batch))]
    for res in results:
        for key, value in res:
            cache._cache[key] = value
    return len(todo)


def save_cache(cache: CachedReencoder, path) -> None:
    from models.recipes.common import pack_ragged, save_npz

    keys = list(cache._cache)
    flat, offsets = pack_ragged([cache._cache[k] for k in keys], cache.dim, dtype=np.float16)
    save_npz(Path(path), keys=np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), -1), flat=flat,
             offsets=offsets)


def load_cache(encode_ids, path, dim: int = 384) -> CachedReencoder:
    from models.recipes.common import load_npz

    cache = CachedReencoder(encode_ids, dim=dim)
    z = load_npz(Path(path))
    for i, k in enumerate(z["keys"]):
        cache._cache[k.tobytes()] = z["flat"][z["offsets"][i] : z["offsets"][i + 1]]
    return cache
