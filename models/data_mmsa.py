"""Reader for MMSA-format feature pickles (aligned_50.pkl / unaligned_50.pkl of MOSI/MOSEI/SIMS).

SECURITY: these files are Python pickles, and unpickling runs arbitrary code embedded in the file.
Only load a pickle the user explicitly pointed to and trusts (the official MMSA release, or one
they made). Nothing in MSA Studio ever loads such a file on its own.

File layout: {"train"|"valid"|"test": {"text" (N, 50, 768) BERT features, "text_bert" (N, 3, 50)
token ids / attention mask / segment ids, "audio" (N, Ta, Da), "vision" (N, Tv, Dv),
"audio_lengths", "vision_lengths", "regression_labels" (N,), "id", "raw_text"}}.

The resulting FeatureSpec is named "mmsa-<dataset>" with dims taken from the data. It never equals
our own pipeline's spec, so checkpoints trained on MMSA features are refused for our features (and
vice versa) with a message naming the differing fields.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MSAError
from core.feature_spec import FeatureSpec, ModalitySpec
from models.data import SPLITS, InMemoryDataset

# MMSA's BERT is bert-base-uncased: same special-token ids as our MiniLM vocabulary.
_BERT_TOKEN_IDS = {"pad_id": 0, "unk_id": 100, "cls_id": 101, "sep_id": 102}


def _field(split: dict[str, Any], key: str, where: str) -> Any:
    if key not in split:
        raise MSAError(f"MMSA pickle split {where!r} lacks {key!r} (found: {', '.join(sorted(map(str, split)))})")
    return split[key]


def _finite(x: Any) -> np.ndarray:
    # MOSI's COVAREP audio contains -inf; MMSA zeroes it the same way before training
    arr = np.asarray(x, dtype=np.float32)
    return np.where(np.isfinite(arr), arr, 0.0).astype(np.float32)


def mmsa_spec(text_dim: int, audio_dim: int, visual_dim: int, text_len: int, audio_len: int,
              visual_len: int, dataset: str = "mosi") -> FeatureSpec:
    return FeatureSpec(
        name=f"mmsa-{dataset}",
        text=ModalitySpec("mmsa-bert-base-uncased", text_dim, None, text_len, dict(_BERT_TOKEN_IDS)),
        audio=ModalitySpec("mmsa-audio", audio_dim, None, audio_len, {"source": f"MMSA {dataset}"}),
        visual=ModalitySpec("mmsa-vision", visual_dim, None, visual_len, {"source": f"MMSA {dataset}"}),
    )


def _split_dataset(spec: FeatureSpec, split: dict[str, Any], name: str) -> InMemoryDataset:
    text = _finite(_field(split, "text", name))
    audio = _finite(_field(split, "audio", name))
    vision = _finite(_field(split, "vision", name))
    labels = np.asarray(_field(split, "regression_labels", name), dtype=np.float32).reshape(-1)
    n = len(labels)
    if text.ndim != 3:
        raise MSAError(
            f"MMSA split {name!r}: 'text' has shape {text.shape}; expected BERT features (N, T, 768). "
            "Pickles with GloVe or token ids only are not supported"
        )
    text_ids, text_len = None, None
    if "text_bert" in split:
        tb = np.asarray(split["text_bert"])
        if tb.ndim != 3 or tb.shape[1] < 2 or tb.shape[0] != n:
            raise MSAError(f"MMSA split {name!r}: 'text_bert' has shape {tb.shape}, expected (N, 3, T)")
        text_ids = tb[:, 0, : text.shape[1]].astype(np.int64)
        text_len = np.maximum(1, tb[:, 1, : text.shape[1]].astype(np.int64).sum(axis=1))
    ids = [str(i) for i in split.get("id", range(n))]
    try:
        ds = InMemoryDataset.from_arrays(
            spec, text=text, audio=audio, visual=vision, labels=labels, text_ids=text_ids,
            text_lengths=text_len,
            audio_lengths=None if "audio_lengths" not in split else np.minimum(np.asarray(split["audio_lengths"]), audio.shape[1]),
            visual_lengths=None if "vision_lengths" not in split else np.minimum(np.asarray(split["vision_lengths"]), vision.shape[1]),
            ids=ids,
        )
    except ValueError as exc:
        raise MSAError(f"MMSA split {name!r} is inconsistent: {exc}") from None
    ds.texts = [str(t) for t in split.get("raw_text", [""] * n)]  # type: ignore[attr-defined]
    return ds


def load_mmsa_pickle(path: str | os.PathLike[str], dataset: str | None = None
                     ) -> tuple[FeatureSpec, dict[str, InMemoryDataset]]:
    """Load an MMSA pickle the user explicitly chose (see SECURITY above).

    Returns the FeatureSpec and one InMemoryDataset per split present (train/valid/test).
    `dataset` names the spec ("mmsa-<dataset>"); default: guessed from the path, else "mosi"."""
    p = Path(path)
    if not p.is_file():
        raise MSAError(f"MMSA pickle not found: {p}")
    try:
        with open(p, "rb") as f:
            data = pickle.load(f)  # noqa: S301 - explicit user choice, documented above
    except Exception as exc:  # unpickling can fail in many ways (truncated, wrong numpy, not a pickle)
        raise MSAError(f"cannot read MMSA pickle {p.name}: {type(exc).__name__}: {exc}") from None
    if not isinstance(data, dict) or not any(s in data for s in SPLITS):
        raise MSAError(f"{p.name} is not an MMSA feature pickle (expected a dict with train/valid/test)")
    if dataset is None:
        low = str(p).lower()
        dataset = next((d for d in ("mosei", "mosi", "sims") if d in low), "mosi")

    first = next(data[s] for s in SPLITS if s in data)
    shapes = {k: np.asarray(_field(first, k, "first")).shape for k in ("text", "audio", "vision")}
    if any(len(s) != 3 for s in shapes.values()):
        raise MSAError(f"MMSA pickle arrays must be (N, T, D); got {shapes}")
    spec = mmsa_spec(shapes["text"][2], shapes["audio"][2], shapes["vision"][2],
                     shapes["text"][1], shapes["audio"][1], shapes["vision"][1], dataset)
    out = {}
    for s in SPLITS:
        if s in data:
            if not isinstance(data[s], dict):
                raise MSAError(f"MMSA split {s!r} is not a dict")
            out[s] = _split_dataset(spec, data[s], s)
    return spec, out
