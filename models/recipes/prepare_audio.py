"""Stage 1b: audio features and transcripts of RAVDESS (and GRID) clips, made by the pipeline itself.

Each clip goes through `FeaturePipeline.utterance_audio` — Silero VAD, speech pieces, one Whisper
encoder pass per piece (the FeatureSpec v2 audio rows) decoded into words — and the segment
[0, duration) is cut with `slice_track` (pooling to at most `max_len` rows), exactly as
`extract_utterance` and file analysis do. So the rows and the words a model is trained on are the
ones the app computes for the same recording; the words are those Whisper hears (RAVDESS says
"Kids are talking by the door" / "Dogs are sitting by the door", GRID reads commands).

Clips where VAD finds no speech get no audio rows (mask all False), as in the app; the corpus
leaves them out of its audio pools.

Output (under WORK/audio/):
  ravdess.npz  feats (sum T, D) + offsets (N + 1), mask, name, actor, emotion, intensity,
               statement, repetition, duration, transcript
  grid.npz     the same fields for the GRID talking-head clips (neutral read speech)
"""
from __future__ import annotations

import argparse
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from models.recipes.common import (
    RavdessName, Stopwatch, data_dir, limit_threads, log, pack_ragged, save_npz, write_json,
)

_PIPELINE = None


def _pipeline():
    global _PIPELINE
    if _PIPELINE is None:
        from core.feature_spec import default_spec
        from core.pipeline import FeaturePipeline

        _PIPELINE = FeaturePipeline(default_spec(), asr_options={"cpu_threads": 1}, visual_workers=1)
    return _PIPELINE


def clip_features(path: str) -> tuple[np.ndarray, np.ndarray, float, str]:
    """(rows (T, D), mask (T,), duration s, transcript) for one clip as a single segment."""
    from core import media
    from core.extractors.slicing import slice_track

    pipeline = _pipeline()
    spec = pipeline.spec.audio
    wave = media.load_audio(path, sr=16000)
    track, text = pipeline.utterance_audio(wave, decode=True)
    duration = max(len(wave) / 16000, 1e-3)
    feats, mask = slice_track(track.times, track.features, 0.0, duration, spec.max_len)
    return feats, mask, duration, text


def _worker(path: str) -> tuple[str, np.ndarray, np.ndarray, float, str]:
    limit_threads(1)
    return (path, *clip_features(path))


def _extract_many(paths: list[str], jobs: int) -> list[tuple[str, np.ndarray, np.ndarray, float, str]]:
    if jobs <= 1:
        return [_worker(p) for p in paths]
    with get_context("spawn").Pool(jobs) as pool:  # spawn: no forked torch/CTranslate2 state
        return pool.map(_worker, paths, chunksize=8)


def _save(path: Path, results: list, dim: int, **extra: np.ndarray) -> None:
    feats, offsets = pack_ragged([r[1] for r in results], dim)
    masks, _ = pack_ragged([r[2][:, None] for r in results], 1, dtype=bool)
    save_npz(path, feats=feats, offsets=offsets, mask=masks[:, 0],
             name=np.array([Path(r[0]).stem for r in results]), duration=np.array([r[3] for r in results]),
             transcript=np.array([r[4] for r in results]), **extra)


def prepare_audio(data: Path, work: Path, jobs: int = 2, limit: int | None = None, force: bool = False) -> dict:
    from core.feature_spec import default_spec

    out_dir = work / "audio"
    rav_out, grid_out = out_dir / "ravdess.npz", out_dir / "grid.npz"
    if rav_out.exists() and grid_out.exists() and not force:
        log(f"audio: cached ({rav_out})")
        return {"cached": True}
    watch = Stopwatch()
    dim = default_spec().audio.dim
    files = sorted((data / "ravdess").glob("*.flac"))
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    log(f"audio: {len(files)} RAVDESS clips through VAD + Whisper with {jobs} worker(s)")
    results = _extract_many([str(f) for f in files], jobs)
    names = [RavdessName.parse(Path(r[0]).stem) for r in results]
    _save(rav_out, results, dim, actor=np.array([n.actor for n in names]),
          emotion=np.array([n.emotion for n in names]), intensity=np.array([n.intensity for n in names]),
          statement=np.array([n.statement for n in names]), repetition=np.array([n.repetition for n in names]))
    grid_files = sorted((data / "grid").glob("*.mpg"))
    log(f"audio: {len(grid_files)} GRID clips")
    g = _extract_many([str(f) for f in grid_files], 1)
    _save(grid_out, g, dim)
    no_speech = int(sum(1 for r in results if not r[2].any()))
    info = {"ravdess_clips": len(results), "grid_clips": len(g), "ravdess_without_speech": no_speech,
            "frames_mean": float(np.mean([r[2].sum() for r in results])) if results else 0.0,
            "seconds": watch.seconds}
    write_json(out_dir / "info.json", info)
    log(f"audio: done in {watch.seconds} s ({no_speech} RAVDESS clips without detected speech)")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only this many clips (smoke runs)")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    limit_threads(1)
    prepare_audio(data_dir(a.data), Path(a.work).resolve(), a.jobs, a.limit, a.force)


if __name__ == "__main__":
    main()
