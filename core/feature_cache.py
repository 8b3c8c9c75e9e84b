"""On-disk cache of extracted features, keyed by file *content* + FeatureSpec fingerprint.

Extraction (ASR, face landmarks, acoustic features) is 95 % of the cost of an analysis; scoring the
cached features with a model takes milliseconds. So re-analysing the same recording (another model,
a rerun of a batch, the same file copied under another name) should never re-extract. The key is

    blake2b(file bytes) + spec.fingerprint() + transcript bytes (if any) + pipeline options

so renaming or moving a file still hits, while editing it, changing the feature spec (another
checkpoint) or supplying a different transcript misses. Entries are single files written
atomically (temp file + rename): a crash never leaves a half entry that would be read back, and an
unreadable entry is treated as a miss and removed. The folder is bounded (`max_bytes`), evicting
least recently used entries.

Hook: `extract_cached(pipeline, path, transcript, ctx, cache)` (bottom of this module) is a drop-in
for `pipeline.extract(...)`; `analysis.analyzer.Analyzer` puts it in front of every extraction.

Format of an entry (`<root>/<k[:2]>/<k>.msafeat`): a zip with `meta.json` (info, spec, segments,
warnings) and `arrays.npz` (per-segment inputs and whole-recording tracks); no pickle anywhere.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.atomic_write import atomic_write_bytes
from core.errors import MSAError
from core.feature_spec import FeatureSpec
from core.pipeline import RecordingFeatures
from core.types import AudioTrack, MediaInfo, Segment, SegmentFeatures, VisualTrack, Word

CACHE_FORMAT = 1
ENTRY_SUFFIX = ".msafeat"
DEFAULT_MAX_BYTES = 2 * 1024**3
_SEG_FIELDS = ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask")
_HASH_CHUNK = 1 << 20

# (realpath, size, mtime_ns) -> digest: hashing a 1 GB file costs ~1 s, do it once per process.
_digest_memo: dict[tuple[str, int, int], str] = {}
_digest_lock = threading.Lock()


def default_cache_dir() -> Path:
    """$MSA_CACHE_DIR, else $XDG_CACHE_HOME/msa-studio/features, else ~/.cache/msa-studio/features."""
    env = os.environ.get("MSA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "msa-studio" / "features"


def file_digest(path: str | os.PathLike) -> str:
    """Content hash (blake2b-160, hex) of a file, streamed in 1 MiB chunks (bounded memory)."""
    p = Path(path)
    try:
        st = p.stat()
        memo_key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError as exc:
        raise MSAError(f"cannot read {p}: {exc.strerror or exc}") from None
    with _digest_lock:
        if memo_key in _digest_memo:
            return _digest_memo[memo_key]
    h = hashlib.blake2b(digest_size=20)
    try:
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(_HASH_CHUNK), b""):
                h.update(chunk)
    except OSError as exc:
        raise MSAError(f"cannot read {p}: {exc.strerror or exc}") from None
    digest = h.hexdigest()
    with _digest_lock:
        _digest_memo[memo_key] = digest
    return digest


def cache_key(
    media_digest: str,
    spec: FeatureSpec,
    transcript: str | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """Key of one entry. `transcript` is a path (its bytes are hashed) or literal text; `options` are
    pipeline settings that change the output (ASR options, kept landmarks)."""
    parts: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "media": media_digest,
        "spec": spec.fingerprint(),
        "transcript": _transcript_digest(transcript),
        "options": options or {},
    }
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=20).hexdigest()


def pipeline_options(pipeline: Any) -> dict[str, Any]:
    """The FeaturePipeline settings that change what `extract` returns (beyond its spec)."""
    return {
        "keep_landmarks": bool(getattr(pipeline, "keep_landmarks", False)),
        "asr": dict(getattr(pipeline, "asr_options", {}) or {}),
    }


def _transcript_digest(transcript: str | None) -> str | None:
    if transcript is None:
        return None
    p = Path(transcript)
    try:
        if p.is_file():
            return "file:" + file_digest(p)
    except (OSError, ValueError):  # a long literal text is not a valid path on every OS
        pass
    return "text:" + hashlib.blake2b(transcript.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


# ---------------------------------------------------------------------------- serialisation


def encode_features(rec: RecordingFeatures) -> bytes:
    """RecordingFeatures -> bytes of one cache entry."""
    arrays: dict[str, np.ndarray] = {}
    for i, f in enumerate(rec.features):
        for name in _SEG_FIELDS:
            arrays[f"seg{i}_{name}"] = np.asarray(getattr(f, name))
    if rec.audio_track is not None:
        arrays["audio_times"] = rec.audio_track.times
        arrays["audio_features"] = rec.audio_track.features
    if rec.visual_track is not None:
        v = rec.visual_track
        arrays["visual_times"], arrays["visual_features"], arrays["visual_face_mask"] = v.times, v.features, v.face_mask
        if v.landmarks is not None:
            arrays["visual_landmarks"] = v.landmarks
    meta = {
        "cache_format": CACHE_FORMAT,
        "info": rec.info.to_dict(),
        "spec": rec.spec.to_dict(),
        "segments": [
            {"start": s.start, "end": s.end, "text": s.text, "source": s.source,
             "words": [dict(w.__dict__) for w in s.words]}
            for s in rec.segments
        ],
        "n_features": len(rec.features),
        "warnings": list(rec.warnings),
    }
    npz = io.BytesIO()
    # Uncompressed: feature floats barely compress, and a hit should cost milliseconds.
    np.savez(npz, **arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("arrays.npz", npz.getvalue())
    return out.getvalue()


def decode_features(blob: bytes | io.BufferedIOBase, path: str | None = None) -> RecordingFeatures:
    """Inverse of `encode_features`. Raises MSAError for anything that is not a valid entry."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob) if isinstance(blob, bytes) else blob) as zf:
            meta = json.loads(zf.read("meta.json"))
            with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        if meta.get("cache_format") != CACHE_FORMAT:
            raise ValueError(f"cache format {meta.get('cache_format')!r}")
        segments = [
            Segment(float(s["start"]), float(s["end"]), str(s["text"]),
                    [Word(**w) for w in s.get("words", [])], str(s.get("source", "asr")))
            for s in meta["segments"]
        ]
        features = [
            SegmentFeatures(**{name: arrays[f"seg{i}_{name}"] for name in _SEG_FIELDS})
            for i in range(int(meta["n_features"]))
        ]
        audio = AudioTrack(arrays["audio_times"], arrays["audio_features"]) if "audio_times" in arrays else None
        visual = (
            VisualTrack(arrays["visual_times"], arrays["visual_features"], arrays["visual_face_mask"],
                        arrays.get("visual_landmarks"))
            if "visual_times" in arrays
            else None
        )
        info = MediaInfo.from_dict(meta["info"])
        if path is not None:
            info.path = str(path)  # same content, possibly another name
        return RecordingFeatures(
            info=info,
            spec=FeatureSpec.from_dict(meta["spec"]),
            segments=segments,
            features=features,
            audio_track=audio,
            visual_track=visual,
            warnings=[str(w) for w in meta.get("warnings", [])],
        )
    except MSAError:
        raise
    except Exception as exc:  # zip/json/npz errors of every kind: the entry is unusable
        raise MSAError(f"corrupt feature cache entry ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------------ cache


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    writes: int = 0
    evictions: int = 0
    corrupt: int = 0


class FeatureCache:
    """Thread- and process-safe (atomic renames); one instance may be shared by threads."""

    def __init__(self, root: str | os.PathLike | None = None, max_bytes: int | None = DEFAULT_MAX_BYTES) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._lock = threading.Lock()

    # -- keys ------------------------------------------------------------------------------
    def key_for(
        self,
        path: str | os.PathLike,
        spec: FeatureSpec,
        transcript: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> str:
        return cache_key(file_digest(path), spec, transcript, options)

    def entry_path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}{ENTRY_SUFFIX}"

    # -- get / put -------------------------------------------------------------------------
    def get(
        self,
        path: str | os.PathLike,
        spec: FeatureSpec,
        transcript: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> RecordingFeatures | None:
        """Cached features for this file content + spec, or None (miss or unusable entry)."""
        return self.get_by_key(self.key_for(path, spec, transcript, options), spec, path=str(path))

    def get_by_key(self, key: str, spec: FeatureSpec, path: str | None = None) -> RecordingFeatures | None:
        entry = self.entry_path(key)
        try:
            blob = entry.read_bytes()
        except OSError:
            self._count("misses")
            return None
        try:
            rec = decode_features(blob, path=path)
            # The key already includes the fingerprint; this guards against a hash collision or a
            # hand-copied entry.
            if rec.spec.fingerprint() != spec.fingerprint():
                raise MSAError("feature cache entry was made with another feature spec")
        except MSAError:
            self._count("corrupt")
            self._count("misses")
            entry.unlink(missing_ok=True)
            return None
        try:
            os.utime(entry)  # LRU: eviction removes the least recently *used* entries
        except OSError:
            pass
        self._count("hits")
        return rec

    def put(
        self,
        path: str | os.PathLike,
        rec: RecordingFeatures,
        transcript: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> Path:
        return self.put_by_key(self.key_for(path, rec.spec, transcript, options), rec)

    def put_by_key(self, key: str, rec: RecordingFeatures) -> Path:
        entry = self.entry_path(key)
        blob = encode_features(rec)
        try:
            atomic_write_bytes(entry, blob, make_parents=True)
        except MSAError as exc:
            raise MSAError(f"cannot write the feature cache in {self.root}: {exc}") from None
        self._count("writes")
        self.evict(keep=entry)
        return entry

    # -- housekeeping ----------------------------------------------------------------------
    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(self.root.glob(f"*/*{ENTRY_SUFFIX}"))

    def size_bytes(self) -> int:
        total = 0
        for p in self.entries():
            try:
                total += p.stat().st_size
            except OSError:
                pass
        return total

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used entries until the folder fits `max_bytes`; returns count.
        `keep` (the entry just written) survives even when it alone exceeds the limit."""
        if self.max_bytes is None:
            return 0
        stats = []
        for p in self.entries():
            try:
                st = p.stat()
            except OSError:
                continue
            stats.append((st.st_mtime_ns, st.st_size, p))
        total = sum(s for _, s, _ in stats)
        removed = 0
        for _, size, p in sorted(stats):
            if total <= self.max_bytes:
                break
            if keep is not None and p == keep:
                continue
            p.unlink(missing_ok=True)
            total -= size
            removed += 1
        if removed:
            self._count("evictions", removed)
        return removed

    def clear(self) -> None:
        for p in self.entries():
            p.unlink(missing_ok=True)

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            setattr(self.stats, what, getattr(self.stats, what) + n)


# ------------------------------------------------------------------------------- the hook


def extract_cached(
    pipeline: Any,
    path: str,
    transcript: str | None = None,
    ctx: Any = None,
    cache: "FeatureCache | None" = None,
) -> tuple[RecordingFeatures, bool]:
    """`pipeline.extract(path, transcript, ctx)` behind the cache; returns (features, was_cached).

    The hook for callers: replace `rec = pipeline.extract(path, transcript=transcript, ctx=ctx)` with
    `rec, _ = extract_cached(pipeline, path, transcript, ctx, cache)`. `cache=None` extracts as
    before. The key is file content + pipeline.spec + transcript + pipeline options; a hit replays the
    stored warnings into `ctx` and reports stage "decode" once. A file that cannot be opened raises
    the usual MediaError before anything is hashed; a cache that cannot be written only warns."""
    from core.progress import RunContext

    ctx = ctx or RunContext()
    if cache is None:
        return pipeline.extract(path, transcript=transcript, ctx=ctx), False
    from core import media

    media.probe(path)  # bad files fail with the usual MediaError before anything is hashed
    options = pipeline_options(pipeline)
    key = cache.key_for(path, pipeline.spec, transcript, options)
    rec = cache.get_by_key(key, pipeline.spec, path=str(path))
    if rec is not None:
        ctx.report("decode", 1.0, "features from cache")
        for w in rec.warnings:
            ctx.warn(w)
        rec.warnings = ctx.warnings
        return rec, True
    rec = pipeline.extract(path, transcript=transcript, ctx=ctx)
    try:
        cache.put_by_key(key, rec)
    except MSAError as exc:
        ctx.warn(f"features not cached: {exc}")
    return rec, False
