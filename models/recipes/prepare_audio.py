"""Stage 1b: acoustic features of RAVDESS (and GRID) clips with the pipeline's own extractor.

Each clip is treated exactly like `FeaturePipeline.extract_utterance` treats a one-utterance file:
decode with `core.media.load_audio` at the spec's rate, run `LibrosaAudioExtractor.from_spec(
default_spec().audio)` on the whole wave and cut the segment [0, duration) with `slice_track` (which
pools to at most `max_len` rows). So the rows a model sees here are the rows it sees at inference.

Output (under WORK/audio/):
  ravdess.npz  feats (sum T, 69) + offsets (N + 1), name, actor, emotion, intensity, statement,
               repetition, duration
  grid.npz     the same for the GRID talking-head clips (neutral read speech; used as
               "uninformative" audio in the composed corpus)
"""
from __future__ import annotations

import argparse
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from models.recipes.common import (
    RavdessName, Stopwatch, data_dir, limit_threads, log, pack_ragged, save_npz, write_json,
)

_EXTRACTOR = None


def _extractor():
    global _EXTRACTOR
    if _EXTRACTOR is None:
        from core.extractors.audio import LibrosaAudioExtractor
        from core.feature_spec import default_spec

        _EXTRACTOR = LibrosaAudioExtractor.from_spec(default_spec().audio)
    return _EXTRACTOR


def clip_features(path: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(features (T, 69), mask (T,), duration s) for one clip as a single segment."""
    from core import media
    from core.extractors.slicing import slice_track
    from core.feature_spec import default_spec

    spec = default_spec().audio
    sr = int(spec.params["sr"])
    wave = media.load_audio(path, sr=sr)
    track = _extractor().extract(wave)
    duration = max(len(wave) / sr, 1e-3)
    feats, mask = slice_track(track.times, track.features, 0.0, duration, spec.max_len)
    return feats, mask, duration


def _worker(path: str) -> tuple[str, np.ndarray, np.ndarray, float]:
    limit_threads(1)
    feats, mask, dur = clip_features(path)
    return path, feats, mask, dur


def _extract_many(paths: list[str], jobs: int) -> list[tuple[str, np.ndarray, np.ndarray, float]]:
    if jobs <= 1:
        return [_worker(p) for p in paths]
    with get_context("spawn").Pool(jobs) as pool:  # spawn: no forked torch/numba state
        return pool.map(_worker, paths, chunksize=8)


GAIN_CHECK_DB = 12.0
GAIN_CHECK_CLIPS = ("03-01-03-02-01-01-05", "03-01-05-02-02-01-12", "03-01-01-01-01-02-17")


def gain_check(data: Path) -> dict:
    """How well compose.apply_gain (a feature-space gain model) matches re-extraction at +12 dB.

    Reports, over the given clips, the mean |predicted - re-extracted| in units of each column's
    std, for the gain model and for doing nothing (the error the model removes)."""
    from core import media
    from core.extractors.slicing import slice_track
    from core.feature_spec import default_spec
    from models.recipes.compose import apply_gain

    spec = default_spec().audio
    sr = int(spec.params["sr"])
    errs_model, errs_none, rows = [], [], []
    for stem in GAIN_CHECK_CLIPS:
        path = data / "ravdess" / f"{stem}.flac"
        if not path.exists():
            continue
        wave = media.load_audio(path, sr=sr)
        dur = len(wave) / sr
        base = _extractor().extract(wave)
        louder = _extractor().extract(wave * np.float32(10 ** (GAIN_CHECK_DB / 20)))
        a, m = slice_track(base.times, base.features, 0.0, dur, spec.max_len)
        b, _ = slice_track(louder.times, louder.features, 0.0, dur, spec.max_len)
        rows.append(b)
        errs_model.append(np.abs(apply_gain(a, m, GAIN_CHECK_DB) - b))
        errs_none.append(np.abs(a - b))
    if not rows:
        return {}
    std = np.concatenate(rows).std(0) + 1e-6
    em, en = np.concatenate(errs_model) / std, np.concatenate(errs_none) / std
    level = [0, 62]  # mfcc_0 and log_rms_db: the columns a gain moves
    return {"gain_db": GAIN_CHECK_DB, "clips": list(GAIN_CHECK_CLIPS),
            "all_columns": {"gain_model": float(em.mean()), "no_adjustment": float(en.mean())},
            "level_columns": {"gain_model": float(em[:, level].mean()), "no_adjustment": float(en[:, level].mean())},
            "unit": "mean |predicted - re-extracted| / column std"}


def prepare_audio(data: Path, work: Path, jobs: int = 2, limit: int | None = None, force: bool = False) -> dict:
    out_dir = work / "audio"
    rav_out, grid_out = out_dir / "ravdess.npz", out_dir / "grid.npz"
    if rav_out.exists() and grid_out.exists() and not force:
        log(f"audio: cached ({rav_out})")
        return {"cached": True}
    watch = Stopwatch()
    files = sorted((data / "ravdess").glob("*.flac"))
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    log(f"audio: extracting {len(files)} RAVDESS clips with {jobs} worker(s)")
    results = _extract_many([str(f) for f in files], jobs)
    names = [RavdessName.parse(Path(p).stem) for p, *_ in results]
    feats, offsets = pack_ragged([r[1] for r in results], 69)
    masks, _ = pack_ragged([r[2][:, None] for r in results], 1, dtype=bool)
    save_npz(
        rav_out,
        feats=feats, offsets=offsets, mask=masks[:, 0],
        name=np.array([Path(p).stem for p, *_ in results]),
        actor=np.array([n.actor for n in names]), emotion=np.array([n.emotion for n in names]),
        intensity=np.array([n.intensity for n in names]), statement=np.array([n.statement for n in names]),
        repetition=np.array([n.repetition for n in names]), duration=np.array([r[3] for r in results]),
    )
    grid_files = sorted((data / "grid").glob("*.mpg"))
    log(f"audio: extracting {len(grid_files)} GRID clips")
    g = _extract_many([str(f) for f in grid_files], 1)
    g_feats, g_offsets = pack_ragged([r[1] for r in g], 69)
    g_masks, _ = pack_ragged([r[2][:, None] for r in g], 1, dtype=bool)
    save_npz(grid_out, feats=g_feats, offsets=g_offsets, mask=g_masks[:, 0],
             name=np.array([Path(p).stem for p, *_ in g]), duration=np.array([r[3] for r in g]))
    info = {"ravdess_clips": len(results), "grid_clips": len(g),
            "frames_mean": float(np.diff(offsets).mean()) if len(results) else 0.0, "gain_check": gain_check(data),
            "seconds": watch.seconds}
    write_json(out_dir / "info.json", info)
    log(f"audio: done in {watch.seconds} s")
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
