"""Shared pieces of the default-weights recipe: paths, label mappings, ragged feature storage.

Everything the recipe writes goes under a work directory *outside* the repository (features are
derived from licensed corpora and must not be committed); only checkpoints, reports and cards go to
``assets/``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from core.atomic_write import atomic_open, atomic_write_text

#: Bumped whenever the composed corpus recipe changes in a way that changes its samples.
CORPUS_VERSION = "composed-v2"

#: The one seed every stage derives its generators from (stage-specific offsets below).
BASE_SEED = 20240611

# ----------------------------------------------------------------------------- label mappings

RAVDESS_EMOTIONS = {
    1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust", 8: "surprised",
}
#: Valence sign per emotion (issue #4). "surprised" is excluded (None): in RAVDESS it is acted both
#: as pleasant and as startled surprise, so it has no reliable sign.
EMOTION_VALENCE: dict[str, int | None] = {
    "neutral": 0, "calm": 1, "happy": 1, "sad": -1, "angry": -1, "fearful": -1, "disgust": -1,
    "surprised": None, "fear": -1, "surprise": None,
}
#: Arousal (1 high, 0 low) on the circumplex; disgust sits between and is excluded (None).
EMOTION_AROUSAL: dict[str, int | None] = {
    "neutral": 0, "calm": 0, "sad": 0, "happy": 1, "angry": 1, "fearful": 1, "surprised": 1,
    "disgust": None, "fear": 1, "surprise": 1,
}

RAVDESS_ACTORS = tuple(range(1, 21))
#: RAVDESS actors never used to build a model: the held-out-speaker evaluation (the audio probe,
#: the held-out report). Odd actors are male, even female: two of each.
HELDOUT_ACTORS = (17, 18, 19, 20)
#: Actors of the composed corpus' dev and calibration side (model selection, intervals); the
#: corpus trains on the others (01-14).
CORPUS_DEV_ACTORS = (15, 16)


@dataclass(frozen=True)
class RavdessName:
    modality: int
    vocal: int
    emotion: int
    intensity: int  # 1 normal, 2 strong
    statement: int
    repetition: int
    actor: int

    @classmethod
    def parse(cls, stem: str) -> "RavdessName":
        parts = stem.split("-")
        if len(parts) != 7 or not all(p.isdigit() for p in parts):
            raise ValueError(f"not a RAVDESS file name: {stem!r}")
        return cls(*(int(p) for p in parts))

    @property
    def emotion_name(self) -> str:
        return RAVDESS_EMOTIONS[self.emotion]


# ----------------------------------------------------------------------------- ragged storage


def pack_ragged(seqs: Sequence[np.ndarray], dim: int, dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """List of (T_i, dim) arrays -> (concatenated (sum T, dim), offsets (N + 1,))."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate([np.asarray(s, dtype=dtype).reshape(len(s), dim) for s in seqs]) if len(seqs) else np.zeros((0, dim), dtype)
    return flat, offsets


def unpack_ragged(flat: np.ndarray, offsets: np.ndarray, i: int) -> np.ndarray:
    return flat[offsets[i] : offsets[i + 1]]


def save_npz(path: Path, **arrays: Any) -> None:
    """Atomic np.savez (a killed run never leaves a half-written cache that looks complete)."""
    with atomic_open(path, "wb", make_parents=True) as fh:
        np.savez(fh, **arrays)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean(obj), indent=2, sort_keys=False, allow_nan=False) + "\n",
                      make_parents=True)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ----------------------------------------------------------------------------- run helpers


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Stopwatch:
    def __init__(self) -> None:
        self.t0 = time.time()

    @property
    def seconds(self) -> float:
        return round(time.time() - self.t0, 1)


def limit_threads(n: int = 1) -> None:
    """Keep numeric libraries from oversubscribing the (shared, 2-core) machine."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(n))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a hard dependency of the project
        pass


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch with `n` threads inside the block, the previous count after it. For stages whose
    output must not depend on the caller's setting (a float sum's order follows the thread count):
    the face CNN trained inside train_all (2 threads) came out with other weights than the
    one-thread run its pinned checksum was made from."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def text_encoder():
    """The text extractor of the default spec (the pipeline's), for encoding and re-encoding."""
    from core.extractors import build_extractor
    from core.feature_spec import default_spec

    return build_extractor("text", default_spec().text)


REPO_ROOT = Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    """Where the shared training/test data lives: $MSA_DATA_DIR, else ../shared/data next to the
    repository (never a machine-specific path)."""
    env = os.environ.get("MSA_DATA_DIR")
    return Path(env).expanduser() if env else REPO_ROOT.parent / "shared" / "data"


def data_dir(arg: str | os.PathLike[str]) -> Path:
    p = Path(arg).expanduser().resolve()
    if not (p / "mosi" / "label_train_valid.csv").is_file():
        raise SystemExit(f"{p} does not look like the shared data folder (mosi/label_train_valid.csv missing)")
    return p
