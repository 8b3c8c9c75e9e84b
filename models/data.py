"""Datasets of extracted features and batching.

Feature cache layout (one directory, written by `msa-studio extract-dataset`):

    spec.json            FeatureSpec.to_dict() of every sample in the cache
    index.jsonl          one JSON object per successfully extracted sample:
                         {"id", "label", "split", "text", "source", "warnings", "file"}
    failed.jsonl         one JSON object per clip that failed: {"id", "error"} (retried on resume)
    features/<file>.npz  text, text_ids, audio, audio_mask, visual, visual_mask

Appends are crash-safe: the .npz is written atomically (core.atomic_write), and only then is the
index line appended in a single write. A run killed at any point leaves at worst an orphan .npz or
a partial last line, both ignored on reading, so the next run simply resumes.

Labels are finite numbers: `append` refuses NaN/inf, and an index line with one (written by an
older version) makes the sample not extracted (resume redoes it) and `dataset()` / `models.dataset_sources.load_splits`
raise a one-line error naming the sample and its line, instead of training failing later with a
misleading "lower the learning rate".
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.atomic_write import atomic_write_bytes
from core.errors import FeatureSpecMismatch, MSAError
from core.feature_spec import FeatureSpec
from core.types import SegmentFeatures
from models.base import ModalityBatch

SPLITS: tuple[str, ...] = ("train", "valid", "test")
FEATURE_KEYS: tuple[str, ...] = ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,100}$")

# Token ids of the BERT-uncased vocabulary used by MiniLM-L6 (the default text extractor). A spec
# may override them in text.params ("pad_id", "unk_id", "cls_id", "sep_id").
_DEFAULT_TOKEN_IDS = {"pad_id": 0, "unk_id": 100, "cls_id": 101, "sep_id": 102}


def token_id(spec: FeatureSpec, which: str) -> int:
    """`which` in pad_id/unk_id/cls_id/sep_id, from spec.text.params or the BERT-vocab default."""
    return int(spec.text.params.get(which, _DEFAULT_TOKEN_IDS[which]))


# ----------------------------------------------------------------------------------- batching


def collate(items: Sequence[SegmentFeatures], spec: FeatureSpec, pad_id: int | None = None) -> ModalityBatch:
    """Pad a list of samples to the longest one per modality (at least one step, so that models
    never see zero-length tensors). Text is padded with `pad_id` and mask False."""
    if not items:
        raise ValueError("cannot collate an empty list")
    pad = token_id(spec, "pad_id") if pad_id is None else int(pad_id)
    B = len(items)

    def stack(name: str, dim: int, mask_name: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        arrays = [np.asarray(getattr(it, name), dtype=np.float32) for it in items]
        T = max(1, max(a.shape[0] for a in arrays))
        x = np.zeros((B, T, dim), dtype=np.float32)
        m = np.zeros((B, T), dtype=bool)
        for i, a in enumerate(arrays):
            if a.ndim != 2 or (a.shape[0] and a.shape[1] != dim):
                raise FeatureSpecMismatch(f"{name} features of shape {a.shape} do not match spec dim {dim}")
            n = a.shape[0]
            x[i, :n] = a
            m[i, :n] = True if mask_name is None else np.asarray(getattr(items[i], mask_name), dtype=bool)[:n]
        return torch.from_numpy(x), torch.from_numpy(m)

    text, text_mask = stack("text", spec.text.dim, None)
    ids = np.full(tuple(text_mask.shape), pad, dtype=np.int64)
    for i, it in enumerate(items):
        tid = np.asarray(it.text_ids, dtype=np.int64)
        if len(tid) != np.asarray(it.text).shape[0]:
            raise MSAError(f"sample has {len(tid)} token ids but {np.asarray(it.text).shape[0]} text features")
        ids[i, : len(tid)] = tid
    audio, audio_mask = stack("audio", spec.audio.dim, "audio_mask")
    visual, visual_mask = stack("visual", spec.visual.dim, "visual_mask")
    return ModalityBatch(
        text=text, text_mask=text_mask, audio=audio, audio_mask=audio_mask,
        visual=visual, visual_mask=visual_mask, text_ids=torch.from_numpy(ids),
    )


# ----------------------------------------------------------------------------------- datasets


class MSADataset(Dataset):
    """Common interface of every dataset the trainer/evaluator accepts.

    Items are (SegmentFeatures, label: float, index: int). `index` is the position in this dataset
    (what models with per-sample state, e.g. Self-MM, key on)."""

    spec: FeatureSpec
    ids: list[str]
    labels: np.ndarray  # (N,) float32
    #: (N,) uint8 bit set of the modalities that carry evidence about the label (EVIDENCE_BITS),
    #: or None when every modality does. The "coalition" training regime trains a coalition
    #: without any of them towards 0: no evidence, no sentiment.
    evidence: np.ndarray | None = None

    def features(self, i: int) -> SegmentFeatures:  # pragma: no cover - abstract
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[SegmentFeatures, float, int]:
        return self.features(i), float(self.labels[i]), int(i)

    def collate_fn(self, items: list[tuple[SegmentFeatures, float, int]]) -> tuple[ModalityBatch, torch.Tensor, torch.Tensor]:
        """DataLoader collate: (batch, labels (B,) float32, indices (B,) long)."""
        feats, labels, idx = zip(*items)
        return (
            collate(list(feats), self.spec),
            torch.tensor(labels, dtype=torch.float32),
            torch.tensor(idx, dtype=torch.long),
        )


class InMemoryDataset(MSADataset):
    """Samples held in memory (MMSA pickles, pretraining scripts, tests)."""

    def __init__(self, spec: FeatureSpec, items: Sequence[SegmentFeatures], labels: Sequence[float],
                 ids: Sequence[str] | None = None, evidence: Sequence[int] | None = None) -> None:
        if len(items) != len(labels):
            raise ValueError(f"{len(items)} samples but {len(labels)} labels")
        self.spec = spec
        self.items = list(items)
        self.labels = np.asarray(labels, dtype=np.float32).reshape(-1)
        self.ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(len(self.items))]
        if len(self.ids) != len(self.items):
            raise ValueError(f"{len(self.items)} samples but {len(self.ids)} ids")
        self.evidence = None if evidence is None else np.asarray(evidence, dtype=np.uint8).reshape(-1)
        if self.evidence is not None and len(self.evidence) != len(self.items):
            raise ValueError(f"{len(self.items)} samples but {len(self.evidence)} evidence flags")

    def features(self, i: int) -> SegmentFeatures:
        return self.items[i]

    @classmethod
    def from_arrays(
        cls,
        spec: FeatureSpec,
        *,
        text: np.ndarray,  # (N, Tt, Dt)
        audio: np.ndarray,  # (N, Ta, Da)
        visual: np.ndarray,  # (N, Tv, Dv)
        labels: np.ndarray,  # (N,)
        text_ids: np.ndarray | None = None,  # (N, Tt); zeros when absent
        text_lengths: np.ndarray | None = None,  # (N,) valid tokens; all Tt when absent
        audio_mask: np.ndarray | None = None,  # (N, Ta) bool; or audio_lengths
        visual_mask: np.ndarray | None = None,
        audio_lengths: np.ndarray | None = None,
        visual_lengths: np.ndarray | None = None,
        ids: Sequence[str] | None = None,
    ) -> "InMemoryDataset":
        """Build from padded arrays, e.g. numpy exports of a pretraining corpus."""
        n = len(labels)

        def mask_for(x: np.ndarray, mask: np.ndarray | None, lengths: np.ndarray | None) -> np.ndarray:
            if mask is not None:
                return np.asarray(mask, dtype=bool)
            T = x.shape[1]
            if lengths is not None:
                return np.arange(T)[None, :] < np.asarray(lengths).reshape(-1, 1)
            return np.ones((n, T), dtype=bool)

        for name, arr in (("text", text), ("audio", audio), ("visual", visual)):
            if arr.ndim != 3 or arr.shape[0] != n:
                raise ValueError(f"{name} must be (N={n}, T, D), got {arr.shape}")
            if arr.shape[2] != spec.dims[name]:
                raise FeatureSpecMismatch(f"{name} dim {arr.shape[2]} != spec {spec.dims[name]}")
        a_mask = mask_for(audio, audio_mask, audio_lengths)
        v_mask = mask_for(visual, visual_mask, visual_lengths)
        t_len = np.full(n, text.shape[1]) if text_lengths is None else np.asarray(text_lengths).reshape(-1)
        tids = np.zeros(text.shape[:2], dtype=np.int64) if text_ids is None else np.asarray(text_ids, dtype=np.int64)
        items = []
        for i in range(n):
            k = int(t_len[i])
            items.append(SegmentFeatures(
                text=np.asarray(text[i, :k], dtype=np.float32),
                text_ids=tids[i, :k],
                audio=np.asarray(audio[i], dtype=np.float32),
                audio_mask=a_mask[i],
                visual=np.asarray(visual[i], dtype=np.float32),
                visual_mask=v_mask[i],
            ))
        return cls(spec, items, labels, ids)

    def subset(self, indices: Iterable[int]) -> "InMemoryDataset":
        idx = list(indices)
        return InMemoryDataset(self.spec, [self.items[i] for i in idx], self.labels[idx], [self.ids[i] for i in idx],
                               None if self.evidence is None else self.evidence[idx])


# -------------------------------------------------------------------------------- feature cache


@dataclass
class IndexRecord:
    id: str
    label: float
    split: str
    file: str
    text: str = ""
    source: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "split": self.split, "text": self.text,
                "source": self.source, "warnings": list(self.warnings), "file": self.file}


def _file_name(sample_id: str) -> str:
    """A filesystem-safe, collision-free name for a sample id (ids may contain '/', '$', ...)."""
    if _SAFE_NAME.match(sample_id):
        return sample_id
    digest = hashlib.sha1(sample_id.encode()).hexdigest()[:12]
    return re.sub(r"[^A-Za-z0-9._-]", "_", sample_id)[:60] + "-" + digest


def _append_line(path: Path, obj: dict[str, Any]) -> None:
    line = json.dumps(obj, ensure_ascii=False) + "\n"
    with open(path, "ab+") as f:
        # a run killed mid-write can leave a partial line without newline: start a fresh line so
        # the partial one stays isolated (and is skipped by the reader)
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                line = "\n" + line
        f.write(line.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], int]:
    """(line number, parsed object) pairs and the number of unreadable lines (partial writes)."""
    if not path.exists():
        return [], 0
    out, bad = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(obj, dict) and "id" in obj:
            out.append((number, obj))
        else:
            bad += 1
    return out, bad


def require_finite_label(label: float, sample_id: str, where: str = "") -> float:
    if not math.isfinite(label):
        raise MSAError(f"sample {sample_id!r}{where}: label {label} is not a finite number")
    return label


class DatasetCache:
    """A directory of extracted features (layout in the module docstring)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)
        spec_path = self.dir / "spec.json"
        if not spec_path.is_file():
            raise MSAError(f"{self.dir} is not a feature cache (no spec.json); create it with `msa-studio extract-dataset`")
        try:
            self.spec = FeatureSpec.from_dict(json.loads(spec_path.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise MSAError(f"{spec_path} is not valid JSON: {exc}") from None
        self._records: dict[str, IndexRecord] = {}
        self.nonfinite_labels: dict[str, int] = {}  # id -> index.jsonl line whose label is NaN/inf
        self.skipped_lines = 0
        self.reload()

    @classmethod
    def create(cls, directory: str | os.PathLike[str], spec: FeatureSpec) -> "DatasetCache":
        """Open `directory`, creating it with `spec`; an existing cache must have the same spec."""
        d = Path(directory)
        spec_path = d / "spec.json"
        if spec_path.is_file():
            cache = cls(d)
            cache.spec.require_compatible(spec, what=f"feature cache {d}")
            return cache
        try:
            (d / "features").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MSAError(f"cannot create the feature cache {d}: {exc.strerror or exc}") from None
        atomic_write_bytes(spec_path, json.dumps(spec.to_dict(), indent=2).encode())
        return cls(d)

    # --- reading

    def reload(self) -> None:
        rows, bad = _read_jsonl(self.dir / "index.jsonl")
        self.skipped_lines = bad
        self._records = {}
        self.nonfinite_labels = {}
        for number, r in rows:
            try:
                rec = IndexRecord(id=str(r["id"]), label=float(r["label"]), split=str(r["split"]),
                                  file=str(r.get("file") or _file_name(str(r["id"]))),
                                  text=str(r.get("text", "")), source=str(r.get("source", "")),
                                  warnings=list(r.get("warnings", [])))
            except (KeyError, TypeError, ValueError):
                self.skipped_lines += 1
                continue
            # a later line for the same id (re-extraction) wins
            if math.isfinite(rec.label):
                self._records[rec.id] = rec
                self.nonfinite_labels.pop(rec.id, None)
            else:
                self._records.pop(rec.id, None)
                self.nonfinite_labels[rec.id] = number

    def ids(self, split: str | None = None) -> list[str]:
        if split is not None and split not in SPLITS:
            raise MSAError(f"unknown split {split!r}; use {', '.join(SPLITS)}")
        return [i for i, r in self._records.items() if split is None or r.split == split]

    def record(self, sample_id: str) -> IndexRecord:
        try:
            return self._records[sample_id]
        except KeyError:
            raise MSAError(f"sample {sample_id!r} is not in feature cache {self.dir}") from None

    def __contains__(self, sample_id: str) -> bool:
        return sample_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    def failures(self) -> dict[str, str]:
        """id -> error message of clips that failed and were not extracted later."""
        rows, _ = _read_jsonl(self.dir / "failed.jsonl")
        return {str(r["id"]): str(r.get("error", "")) for _, r in rows if str(r["id"]) not in self._records}

    def load(self, sample_id: str) -> SegmentFeatures:
        rec = self.record(sample_id)
        path = self.dir / "features" / f"{rec.file}.npz"
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in FEATURE_KEYS}
        except FileNotFoundError:
            raise MSAError(f"feature file missing for {sample_id!r}: {path}") from None
        except (KeyError, ValueError, OSError, EOFError) as exc:
            raise MSAError(f"feature file for {sample_id!r} is corrupt ({exc}); delete it and re-extract") from None
        feats = SegmentFeatures(
            text=arrays["text"].astype(np.float32, copy=False),
            text_ids=arrays["text_ids"].astype(np.int64, copy=False),
            audio=arrays["audio"].astype(np.float32, copy=False),
            audio_mask=arrays["audio_mask"].astype(bool, copy=False),
            visual=arrays["visual"].astype(np.float32, copy=False),
            visual_mask=arrays["visual_mask"].astype(bool, copy=False),
        )
        _check_dims(feats, self.spec, sample_id)
        return feats

    def dataset(self, split: str | None = None, preload: bool = False) -> "CacheDataset":
        self.require_finite_labels()
        return CacheDataset(self, split, preload=preload)

    def require_finite_labels(self) -> None:
        if self.nonfinite_labels:
            sample_id, line = next(iter(self.nonfinite_labels.items()))
            more = len(self.nonfinite_labels) - 1
            raise MSAError(
                f"feature cache {self.dir}: sample {sample_id!r} has a label that is not a finite number "
                f"(index.jsonl line {line}{f'; {more} more' if more else ''}); fix label.csv and run "
                "extract-dataset again"
            )

    # --- writing

    def append(self, sample_id: str, features: SegmentFeatures, label: float, split: str,
               text: str = "", source: str = "", warnings: Sequence[str] = ()) -> IndexRecord:
        if split not in SPLITS:
            raise MSAError(f"unknown split {split!r} for {sample_id!r}; use {', '.join(SPLITS)}")
        _check_dims(features, self.spec, sample_id)
        require_finite_label(float(label), str(sample_id))
        rec = IndexRecord(id=str(sample_id), label=float(label), split=split, file=_file_name(str(sample_id)),
                          text=text, source=source, warnings=list(warnings))
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(getattr(features, k)) for k in FEATURE_KEYS})
        (self.dir / "features").mkdir(exist_ok=True)
        atomic_write_bytes(self.dir / "features" / f"{rec.file}.npz", buf.getvalue())
        _append_line(self.dir / "index.jsonl", rec.to_dict())
        self._records[rec.id] = rec
        return rec

    def append_failure(self, sample_id: str, error: str) -> None:
        _append_line(self.dir / "failed.jsonl", {"id": str(sample_id), "error": str(error)})


def _check_dims(f: SegmentFeatures, spec: FeatureSpec, sample_id: str) -> None:
    for name, arr in (("text", f.text), ("audio", f.audio), ("visual", f.visual)):
        a = np.asarray(arr)
        dim = spec.dims[name]
        if a.ndim != 2 or (a.shape[0] > 0 and a.shape[1] != dim):
            raise FeatureSpecMismatch(f"{sample_id}: {name} features {a.shape} do not match the spec's dim {dim}")
    if len(f.text_ids) != np.asarray(f.text).shape[0]:
        raise MSAError(f"{sample_id}: {len(f.text_ids)} token ids for {np.asarray(f.text).shape[0]} text steps")
    if len(f.audio_mask) != np.asarray(f.audio).shape[0] or len(f.visual_mask) != np.asarray(f.visual).shape[0]:
        raise MSAError(f"{sample_id}: a mask length differs from its feature length")


class CacheDataset(MSADataset):
    """A split of a DatasetCache; loads .npz files lazily unless `preload`."""

    def __init__(self, cache: DatasetCache, split: str | None = None, preload: bool = False) -> None:
        self.cache = cache
        self.spec = cache.spec
        self.split = split
        self.ids = cache.ids(split)
        self.labels = np.asarray([cache.record(i).label for i in self.ids], dtype=np.float32)
        self._items: list[SegmentFeatures] | None = [cache.load(i) for i in self.ids] if preload else None

    def features(self, i: int) -> SegmentFeatures:
        if self._items is not None:
            return self._items[i]
        return self.cache.load(self.ids[i])


def holdout_split(ds: MSADataset, fraction: float, seed: int) -> tuple[InMemoryDataset, InMemoryDataset]:
    """Deterministically split off `fraction` of `ds` (e.g. a validation set when a cache has none)."""
    n = len(ds)
    k = max(1, int(round(n * fraction)))
    if n < 2:
        raise MSAError(f"need at least 2 samples to hold out a validation set, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    everything = InMemoryDataset(ds.spec, [ds.features(i) for i in range(n)], ds.labels, ds.ids)
    return everything.subset(sorted(order[k:])), everything.subset(sorted(order[:k]))
