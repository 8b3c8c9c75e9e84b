"""Face v2 on real video: per-clip valence readouts on ravdess_video and GRID, and the cost per face.

    nice -n 10 python -m models.recipes.face_cnn_report --data ../shared/data --work /tmp/msa_face \
        --out assets/face/diagnostics.json

Every clip goes through `MediaPipeFaceV2Extractor` at the spec's 10 fps with `core.media.iter_frames`
(the pipeline's own frame path). Per clip, the mean over face frames of two readouts in [-1, 1]
(x3 for the -3..3 sentiment scale):

* "simple": `visual_v2.expression_valence`, P(happy) - P(angry+disgust+fear+sad);
* "fer_head" (with --work, the recipe's cache): P(positive) - P(negative) of a 3-class (negative /
  neutral / positive) logistic regression on the log CNN probabilities, fitted on the CNN's FER2013
  *training* faces only (class-balanced). The simple readout puts FER's own neutral faces well
  below 0 (FER's prior holds four negative classes and one positive); the head is the smallest
  model that knows where "neutral" is, i.e. roughly what a fusion model can learn.

For scale, "fer_heldout" gives each readout's mean per class and sign accuracy on the held-out FER
faces. ravdess_video (actor 05, acted emotions) and GRID (neutral read speech) are *checks*: nothing
in the CNN, its recipe or these readouts was chosen by looking at them.

Cost per face (one thread): `align_face` + CNN and the whole `process_frame` including MediaPipe,
both as thread CPU time and wall time per face frame.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from models.recipes.common import EMOTION_VALENCE, RavdessName, data_dir, limit_threads, log, write_json

Readout = Callable[[np.ndarray], np.ndarray]  # (N, 7) class probabilities -> (N,) valence in [-1, 1]


def fer_head(data: Path, work: Path) -> tuple[Readout, dict[str, Any]]:
    """The logistic valence head on the training faces, and both readouts on the held-out faces."""
    from sklearn.linear_model import LogisticRegression

    from core.extractors.face_cnn import CLASSES, FaceExpressionCNN
    from core.extractors.visual_v2 import expression_valence
    from models.recipes.train_face_cnn import cached_crops, landmark_fer, split_fer

    with np.load(data / "fer2013" / "train.npz") as z:
        images, labels, classes = z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classes"]]
    if tuple(classes) != CLASSES:
        raise SystemExit(f"FER classes {classes} are not the CNN's {CLASSES}")
    found, landmarks = landmark_fer(images, work, workers=2)
    crops = cached_crops(images, landmarks, found, work)
    masks = split_fer(labels, classes, found)
    cnn = FaceExpressionCNN()
    probs = np.zeros((len(labels), len(CLASSES)), np.float32)
    idx = np.flatnonzero(found)
    for lo in range(0, len(idx), 1024):
        probs[idx[lo : lo + 1024]] = cnn.predict(crops[idx[lo : lo + 1024]])
    valence = np.array([99 if EMOTION_VALENCE[c] is None else EMOTION_VALENCE[c] for c in classes])[labels]
    fit = masks["train"] & (valence != 99)
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    model.fit(np.log(np.clip(probs[fit], 1e-6, 1.0)), valence[fit])
    order = list(model.classes_)

    def head(p: np.ndarray) -> np.ndarray:
        q = model.predict_proba(np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0)))
        return q[:, order.index(1)] - q[:, order.index(-1)]

    held = masks["heldout"]
    polar = held & np.isin(valence, (-1, 1))
    context: dict[str, Any] = {"n_fit": int(fit.sum()), "coef": model.coef_.tolist(),
                               "intercept": model.intercept_.tolist(), "classes": [int(c) for c in order]}
    for name, readout in (("simple", expression_valence), ("fer_head", head)):
        score = readout(probs)
        context[name] = {
            "heldout_sign_acc": float(np.mean(np.sign(score[polar]) == valence[polar])),
            "heldout_mean_by_class": {c: float(score[held & (labels == k)].mean()) for k, c in enumerate(classes)},
        }
    return head, context


def clip_probs(path: Path) -> tuple[np.ndarray, int]:
    """(expr_* probabilities of the face frames, number of frames) of one clip."""
    from core import media
    from core.extractors.visual_v2 import EXPRESSION_COLUMNS, MediaPipeFaceV2Extractor, visual_spec_v2

    spec = visual_spec_v2()
    with MediaPipeFaceV2Extractor.from_spec(spec) as ext:
        track = ext.extract(media.iter_frames(path, fps=float(spec.rate_hz or 10.0)))
    return track.features[track.face_mask][:, -len(EXPRESSION_COLUMNS):], len(track.features)


def clip_summary(path: Path, readouts: dict[str, Readout]) -> dict[str, Any]:
    from core.extractors.visual_v2 import EXPRESSION_COLUMNS

    probs, frames = clip_probs(path)
    out: dict[str, Any] = {"clip": path.name, "frames": frames, "face_frames": int(len(probs))}
    for name, readout in readouts.items():
        out[name] = float(readout(probs).mean()) if len(probs) else None
    out["mean_probs"] = {c: float(v) for c, v in zip(EXPRESSION_COLUMNS, probs.mean(0))} if len(probs) else None
    return out


def ravdess_summary(clips: list[dict[str, Any]], readouts: list[str]) -> dict[str, Any]:
    for c in clips:
        c["emotion"] = RavdessName.parse(Path(c["clip"]).stem).emotion_name
    negative = [c for c in clips if c["emotion"] in ("sad", "fearful")]
    happy = [c for c in clips if c["emotion"] == "happy"]
    summary: dict[str, Any] = {}
    for r in readouts:
        summary[r] = {"happy_positive": f"{sum(c[r] > 0 for c in happy)}/{len(happy)}",
                      "sad_fearful_negative": f"{sum(c[r] < 0 for c in negative)}/{len(negative)}"}
    return {**summary, "clips": clips}


def grid_summary(clips: list[dict[str, Any]], readouts: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for r in readouts:
        means = np.array([c[r] for c in clips], dtype=np.float64)
        summary[r] = {"mean_x3": float(3.0 * means.mean()), "mean_abs_x3": float(3.0 * np.abs(means).mean()),
                      "max_abs_x3": float(3.0 * np.abs(means).max())}
    return {**summary, "clips": clips}


def cost_per_face(path: Path, n_frames: int = 60) -> dict[str, Any]:
    """Thread CPU and wall ms per face frame: alignment + CNN, and the whole v2 process_frame."""
    from core import media
    from core.extractors.face_align import align_face
    from core.extractors.face_cnn import FaceExpressionCNN
    from core.extractors.visual_v2 import MediaPipeFaceV2Extractor, visual_spec_v2

    frames = []
    for i, (t, rgb) in enumerate(media.iter_frames(path, fps=10.0)):
        if i >= n_frames:
            break
        frames.append((t, rgb))
    align_cpu, align_wall, cnn_cpu, cnn_wall, frame_cpu, frame_wall = [], [], [], [], [], []
    cnn = FaceExpressionCNN()
    cnn.predict(np.zeros((1, 48, 48), np.uint8))  # session set-up is not per-face cost
    with MediaPipeFaceV2Extractor.from_spec(visual_spec_v2()) as ext:
        ext.process_frame(frames[0][1], frames[0][0])  # graph and session set-up is not per-face cost
        for t, rgb in frames[1:]:
            c0, w0 = time.thread_time(), time.perf_counter()
            _, found, marks = ext.process_frame(rgb, t)
            frame_cpu.append(time.thread_time() - c0)
            frame_wall.append(time.perf_counter() - w0)
            if not found:
                continue
            c0, w0 = time.thread_time(), time.perf_counter()
            crop = align_face(rgb, marks)
            c1, w1 = time.thread_time(), time.perf_counter()
            cnn.predict(crop[None])
            align_cpu.append(c1 - c0)
            align_wall.append(w1 - w0)
            cnn_cpu.append(time.thread_time() - c1)
            cnn_wall.append(time.perf_counter() - w1)

    def ms(values: list[float]) -> dict[str, float]:
        v = 1000.0 * np.asarray(values)
        return {"median": float(np.median(v)), "mean": float(v.mean()), "p90": float(np.percentile(v, 90))}

    total_cpu = np.asarray(align_cpu) + np.asarray(cnn_cpu)
    total_wall = np.asarray(align_wall) + np.asarray(cnn_wall)
    return {
        "clip": path.name,
        "frame_size": list(frames[0][1].shape),
        "faces": len(align_cpu),
        "align_plus_cnn_cpu_ms": ms(list(total_cpu)),
        "align_plus_cnn_wall_ms": ms(list(total_wall)),
        "align_cpu_ms": ms(align_cpu),
        "cnn_cpu_ms": ms(cnn_cpu),
        "whole_process_frame_cpu_ms": ms(frame_cpu),
        "whole_process_frame_wall_ms": ms(frame_wall),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", default=None, help="train_face_cnn's cache folder: adds the fer_head readout")
    ap.add_argument("--out", default="assets/face/diagnostics.json")
    a = ap.parse_args()
    limit_threads(1)
    data = data_dir(a.data)
    from core.extractors.visual_v2 import expression_valence

    readouts: dict[str, Readout] = {"simple": expression_valence}
    report: dict[str, Any] = {"readouts": {"simple": "P(happy) - P(angry+disgust+fear+sad)"}}
    if a.work:
        head, context = fer_head(data, Path(a.work).resolve())
        readouts["fer_head"] = head
        report["readouts"]["fer_head"] = "P(pos) - P(neg) of a logistic head on log CNN probs, FER train faces"
        report["fer_heldout"] = context
    ravdess = sorted((data / "ravdess_video").glob("*.mp4"))
    grid = sorted((data / "grid").glob("*.mpg"))
    log(f"face report: {len(ravdess)} ravdess_video clips, {len(grid)} GRID clips")
    report["ravdess_video"] = ravdess_summary([clip_summary(p, readouts) for p in ravdess], list(readouts))
    report["grid"] = grid_summary([clip_summary(p, readouts) for p in grid], list(readouts))
    report["cost_per_face"] = [cost_per_face(p) for p in (ravdess[:1] + grid[:1])]
    write_json(Path(a.out), report)
    for r in readouts:
        log(f"face report [{r}]: ravdess happy>0 {report['ravdess_video'][r]['happy_positive']}, "
            f"sad/fearful<0 {report['ravdess_video'][r]['sad_fearful_negative']}, "
            f"GRID mean x3 {report['grid'][r]['mean_x3']:.3f}")


if __name__ == "__main__":
    main()
