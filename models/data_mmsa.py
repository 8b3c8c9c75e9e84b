"""Reader for MMSA-format feature pickles (aligned_50.pkl / unaligned_50.pkl of MOSI/MOSEI/SIMS).

SECURITY: these files are Python pickles, and a plain `pickle.load` runs whatever callable the file
names (`os.system`, ...). They are read with `SafeUnpickler`, which resolves only the globals the
format needs (numpy arrays, dtypes and scalars, and a few builtin containers; `ALLOWED_GLOBALS`) and
refuses anything else with a one-line MSAError before it is called. Containers, strings and numbers
need no globals at all. Nothing in MSA Studio loads such a file unless the user points to it.

File layout: {"train"|"valid"|"test": {"text" (N, 50, 768) BERT features, "text_bert" (N, 3, 50)
token ids / attention mask / segment ids, "audio" (N, Ta, Da), "vision" (N, Tv, Dv),
"audio_lengths", "vision_lengths", "regression_labels" (N,), "id", "raw_text"}}.

The resulting FeatureSpec is named "mmsa-<dataset>" with dims taken from the data. It never equals
our own pipeline's spec, so checkpoints trained on MMSA features are refused for our features (and
vice versa) with a message naming the differing fields.
"""
from __future__ import annotations

import io
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

# (module, name) a genuine MMSA pickle refers to: how numpy (1.x: numpy.core, 2.x: numpy._core)
# rebuilds arrays, dtypes and scalars, how protocol 2 stores bytes (_codecs.encode), and containers
# that protocol 2 writes by name. None of them can run code or touch files.
ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [("numpy", "ndarray"), ("numpy", "dtype")]
    + [(f"numpy.{core}.{mod}", name) for core in ("core", "_core")
       for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))]
    + [("_codecs", "encode"), ("collections", "OrderedDict")]
    # protocols < 3 spell builtins the Python 2 way
    + [(module, name) for module in ("builtins", "__builtin__") for name in ("set", "frozenset", "bytearray")]
)


class SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only ALLOWED_GLOBALS; any other global (a payload) is refused."""

    def find_class(self, module: str, name: str):  # type: ignore[override]
        if (module, name) not in ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of the MMSA format "
                                         "(a pickle naming it could run code)")
        return super().find_class(module, name)


def safe_load(fh: io.BufferedIOBase) -> Any:
    return SafeUnpickler(fh).load()


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
    ids = [str(i) for i in split.get("id", range(n))]
    bad = np.flatnonzero(~np.isfinite(labels))
    if bad.size:
        i = int(bad[0])
        sample = ids[i] if i < len(ids) else str(i)
        raise MSAError(f"MMSA split {name!r}: sample {sample!r} (index {i}) has label {labels[i]}, not a finite "
                       f"number{f' ({bad.size - 1} more)' if bad.size > 1 else ''}")
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
            data = safe_load(f)
    except pickle.UnpicklingError as exc:
        if str(exc).startswith("refused"):
            raise MSAError(f"MMSA pickle {p.name}: {exc}") from None
        raise MSAError(f"cannot read MMSA pickle {p.name}: {type(exc).__name__}: {exc}") from None
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
