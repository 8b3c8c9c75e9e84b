"""Stage 1c: facial features of FER2013 faces (and GRID videos) with the pipeline's own extractor.

FER2013 crops are 48x48 grey; MediaPipe's face detector needs more context, so each crop goes
through `core.extractors.visual_v2.detect_faces_in_images_v2(upscale_to=UPSCALE, pad_frac=PAD)`
(bicubic upscale + border, IMAGE mode, then the expression CNN on the aligned crop: the 65
mediapipe-face-v2 columns). The detection rate is reported; faces that are not
found are dropped (a no-face row carries no expression).

A class-balanced, seeded subset is used (the full 28.7k images would cost ~15 CPU-minutes for
little gain): up to PER_CLASS images per class (happy gets HAPPY_PER_CLASS because it is the only
positive class), "surprise" is skipped (no valence sign, see common.EMOTION_VALENCE).

GRID talking-head videos are run through `MediaPipeFaceExtractor` at the spec's 10 Hz exactly like
the pipeline does for a video (VIDEO mode, `core.media.iter_frames`): real face *sequences* with
neutral read speech, used as "uninformative" visual input in the composed corpus.

Output (under WORK/visual/): fer.npz (feats (N, 58), found, label, fer_index, classes),
grid.npz (feats (sum T, 58) + offsets, mask, name), info.json (detection rate per class).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from models.recipes.common import (
    BASE_SEED, EMOTION_VALENCE, Stopwatch, data_dir, limit_threads, log, pack_ragged, save_npz, write_json,
)

UPSCALE = 192
PAD = 0.25
PER_CLASS = 1000
HAPPY_PER_CLASS = 1500


def select_fer(labels: np.ndarray, classes: list[str], per_class: int, happy: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = []
    for c, name in enumerate(classes):
        if EMOTION_VALENCE.get(name) is None:
            continue
        idx = np.flatnonzero(labels == c)
        k = min(len(idx), happy if name == "happy" else per_class)
        chosen.append(np.sort(rng.choice(idx, size=k, replace=False)))
    return np.sort(np.concatenate(chosen))


def grid_sequences(data: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    from core import media
    from core.extractors.slicing import slice_track
    from core.extractors.visual import MediaPipeFaceExtractor
    from core.feature_spec import default_spec

    spec = default_spec().visual
    feats, masks, names = [], [], []
    for path in sorted((data / "grid").glob("*.mpg")):
        info = media.probe(path)
        with MediaPipeFaceExtractor.from_spec(spec) as ext:
            track = ext.extract(media.iter_frames(path, fps=float(spec.rate_hz or 10.0)))
        f, m = slice_track(track.times, track.features, 0.0, max(info.duration, 1e-3), spec.max_len,
                           mask=track.face_mask)
        feats.append(f)
        masks.append(m)
        names.append(path.stem)
    return feats, masks, names


def prepare_visual(data: Path, work: Path, limit: int | None = None, force: bool = False) -> dict:
    from core.extractors.visual_v2 import detect_faces_in_images_v2
    from core.feature_spec import default_spec

    out_dir = work / "visual"
    fer_out, grid_out = out_dir / "fer.npz", out_dir / "grid.npz"
    if fer_out.exists() and grid_out.exists() and not force:
        log(f"visual: cached ({fer_out})")
        return {"cached": True}
    watch = Stopwatch()
    with np.load(data / "fer2013" / "train.npz") as z:
        images, labels, classes = z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classes"]]
    per_class, happy = PER_CLASS, HAPPY_PER_CLASS
    if limit:
        per_class = happy = max(1, limit // 6)
    idx = select_fer(labels, classes, per_class, happy, BASE_SEED + 3)
    log(f"visual: running the face landmarker on {len(idx)} FER2013 faces (upscaled to {UPSCALE}px, pad {PAD})")
    feats, found = detect_faces_in_images_v2(images[idx], upscale_to=UPSCALE, pad_frac=PAD)
    save_npz(fer_out, feats=feats, found=found, label=labels[idx], fer_index=idx, classes=np.array(classes))
    rate = {classes[c]: float(found[labels[idx] == c].mean()) for c in np.unique(labels[idx])}
    log(f"visual: detection rate {found.mean():.3f}; GRID videos next")
    g_feats, g_masks, g_names = grid_sequences(data)
    gf, go = pack_ragged(g_feats, default_spec().visual.dim)
    gm, _ = pack_ragged([m[:, None] for m in g_masks], 1, dtype=bool)
    save_npz(grid_out, feats=gf, offsets=go, mask=gm[:, 0], name=np.array(g_names))
    info = {
        "fer_images": int(len(idx)), "upscale_to": UPSCALE, "pad_frac": PAD,
        "detection_rate": float(found.mean()), "detection_rate_per_class": rate,
        "grid_videos": len(g_names), "grid_face_rate": float(gm.mean()) if len(gm) else 0.0,
        "seconds": watch.seconds,
    }
    write_json(out_dir / "info.json", info)
    log(f"visual: done in {watch.seconds} s")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--limit", type=int, default=None, help="only about this many faces (smoke runs)")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    limit_threads(1)
    prepare_visual(data_dir(a.data), Path(a.work).resolve(), a.limit, a.force)


if __name__ == "__main__":
    main()
