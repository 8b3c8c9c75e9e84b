"""Face v2 expression CNN: trained on aligned FER2013 crops, shipped as ONNX under assets/face/.

    nice -n 10 python -m models.recipes.train_face_cnn --data ../shared/data --work /tmp/msa_face --out assets/face

Steps (each cached under WORK/face/ where it is expensive):

1. landmarks: every FER2013 train.npz image through `core.extractors.visual.detect_faces_and_landmarks`
   (the exact settings `prepare_visual` uses: 192 px bicubic upscale, black border 0.25, IMAGE
   mode, confidence 0.3), `--workers` processes. Images where MediaPipe finds no face (3 %) are
   left out of training *and* evaluation: at run time such a frame is a zero row with mask False,
   so the CNN never sees an unlandmarked face.
2. split: held-out = the composed corpus' FER dev faces (`prepare_visual.select_fer` +
   `unimodal.fer_split`, reproduced exactly, so the CNN never trains on them) + a seeded
   HELDOUT_SHARE of the images the composed corpus never uses (this adds "surprise", which the
   corpus skips, and natural class frequencies). Everything else is training data. The composed
   corpus' *train* faces are in the CNN's training data: the CNN's outputs on them are
   training-set outputs (`report.json` gives both sides' accuracy so the gap is visible).
3. template: `face_align.TEMPLATE` re-derived from the training faces; the run stops if it no
   longer matches the constant in the code.
4. crops: `visual_v2.still_face_crop`: `face_align.align_face` (the function the extractor uses at
   run time) on each image upscaled with `prepare_small_face(fill="replicate")`, the geometry
   MediaPipe saw.
5. train `FaceExpressionNet` (below) with one torch thread: AdamW + one-cycle schedule, label
   smoothing, random flips and small rotations / scalings / shifts of the crops.
6. evaluate on the held-out faces; export to ONNX (BatchNorm folded into the convolutions,
   `models.onnx_writer`), check onnxruntime against torch, write OUT/face_expression_cnn.onnx and
   OUT/report.json.

`--val` trains on 90 % of the training faces and scores the other 10 % instead (design choices were
made with this; the held-out faces are only scored by the final recipe).
"""
from __future__ import annotations

import argparse
import hashlib
import math
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from models.recipes.common import (
    BASE_SEED, EMOTION_VALENCE, Stopwatch, data_dir, limit_threads, log, save_npz, torch_threads, write_json,
)

HELDOUT_SEED = BASE_SEED + 9
TRAIN_SEED = BASE_SEED + 10
VAL_SEED = BASE_SEED + 11
HELDOUT_SHARE = 0.1
VAL_SHARE = 0.1
TEMPLATE_TOLERANCE_PX = 0.05
ONNX_NAME = "face_expression_cnn.onnx"

#: Training hyper-parameters of the shipped weights.
DEFAULTS: dict[str, Any] = {
    "widths": (16, 32, 64, 128),
    "stem_stride": 2,
    "epochs": 8,
    "batch_size": 128,
    "lr": 3e-3,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "dropout": 0.3,
    "max_rotate_deg": 10.0,
    "max_scale": 0.08,
    "max_shift": 0.06,  # fraction of the crop's half-width
}


# ----------------------------------------------------------------------------- data


def landmark_fer(images: np.ndarray, work: Path, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(found (N,), landmarks (N, 478, 2)) for every image, cached in WORK/face/fer_landmarks.npz."""
    out = work / "face" / "fer_landmarks.npz"
    digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
    if out.exists():
        with np.load(out) as z:
            if str(z["images_sha"]) == digest:
                log(f"face: landmarks cached ({out})")
                return z["found"], z["landmarks"]
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing

    chunks = [(lo, min(len(images), lo + 1000)) for lo in range(0, len(images), 1000)]
    found = np.zeros(len(images), dtype=bool)
    marks = np.zeros((len(images), 478, 2), dtype=np.float32)
    watch = Stopwatch()
    log(f"face: landmarking {len(images)} FER2013 images in {workers} processes")
    # spawn: a forked MediaPipe graph is not safe; each worker builds its own landmarker.
    with ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_landmark_chunk, images[lo:hi]) for lo, hi in chunks]
        for (lo, hi), job in zip(chunks, jobs):
            found[lo:hi], marks[lo:hi] = job.result()
            if lo % 5000 == 0:
                log(f"face: {hi}/{len(images)} landmarked ({watch.seconds} s)")
    save_npz(out, found=found, landmarks=marks, images_sha=np.array(digest))
    log(f"face: found {found.mean():.3f} of the faces in {watch.seconds} s")
    return found, marks


def _landmark_chunk(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from core.extractors.visual import detect_faces_and_landmarks
    from models.recipes.prepare_visual import PAD, UPSCALE

    limit_threads(1)
    _, found, marks = detect_faces_and_landmarks(images, upscale_to=UPSCALE, pad_frac=PAD)
    return found, marks


def split_fer(labels: np.ndarray, classes: list[str], found: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean masks over all images: heldout, composed_dev, composed_train, train (see docstring)."""
    from models.recipes.prepare_visual import HAPPY_PER_CLASS, PER_CLASS, select_fer
    from models.recipes.unimodal import fer_split

    n = len(labels)
    selected = select_fer(labels, classes, PER_CLASS, HAPPY_PER_CLASS, BASE_SEED + 3)
    sel_found = selected[found[selected]]  # prepare_visual keeps these, in this order
    dev_of_found = fer_split(len(sel_found))
    composed_dev = np.zeros(n, dtype=bool)
    composed_dev[sel_found[dev_of_found]] = True
    composed_train = np.zeros(n, dtype=bool)
    composed_train[sel_found[~dev_of_found]] = True
    unused = np.ones(n, dtype=bool)
    unused[selected] = False
    rng = np.random.default_rng(HELDOUT_SEED)
    pool = np.flatnonzero(unused)
    extra = np.zeros(n, dtype=bool)
    extra[rng.choice(pool, size=int(round(HELDOUT_SHARE * len(pool))), replace=False)] = True
    heldout = composed_dev | extra
    return {
        "heldout": heldout & found,
        "heldout_composed_dev": composed_dev & found,
        "heldout_unused": extra & found,
        "composed_train": composed_train & found,
        "train": ~heldout & found,
    }


def derive_template(landmarks: np.ndarray) -> np.ndarray:
    """Symmetrised mean ANCHORS position, in 48x48 FER crop pixels, of landmarks found on the
    prepared (upscaled + bordered) images."""
    from core.extractors.face_align import ANCHORS, symmetrize_template
    from models.recipes.prepare_visual import PAD, UPSCALE

    side = UPSCALE + 2 * int(round(PAD * UPSCALE))
    pts = landmarks[:, list(ANCHORS)].astype(np.float64) * side
    pts = (pts - int(round(PAD * UPSCALE))) * (48.0 / UPSCALE)
    return np.round(symmetrize_template(pts.mean(0)), 2)


def check_template(derived: np.ndarray) -> None:
    from core.extractors.face_align import TEMPLATE

    diff = float(np.abs(derived - TEMPLATE).max())
    if diff > TEMPLATE_TOLERANCE_PX:
        raise SystemExit(
            f"face_align.TEMPLATE differs from the template derived from the training faces by {diff:.3f} px; "
            f"update it to:\n{np.array2string(derived, separator=', ')}"
        )


def aligned_crops(images: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The run-time crop function on each FER image (upscaled the way it was landmarked)."""
    from core.extractors.visual_v2 import still_face_crop
    from models.recipes.prepare_visual import PAD, UPSCALE

    out = np.zeros((len(images), 48, 48), dtype=np.uint8)
    for i, (img, lm) in enumerate(zip(images, landmarks)):
        out[i] = still_face_crop(img, lm, UPSCALE, PAD)
    return out


def cached_crops(images: np.ndarray, landmarks: np.ndarray, found: np.ndarray, work: Path) -> np.ndarray:
    """`aligned_crops` of the found faces (zeros elsewhere), cached per images + template."""
    from core.extractors.face_align import TEMPLATE

    key = hashlib.sha256(images.tobytes() + found.tobytes() + TEMPLATE.tobytes()).hexdigest()[:16]
    path = work / "face" / "fer_crops.npz"
    if path.exists():
        with np.load(path) as z:
            if str(z["key"]) == key:
                return z["crops"]
    crops = np.zeros((len(images), 48, 48), dtype=np.uint8)
    idx = np.flatnonzero(found)
    crops[idx] = aligned_crops(images[idx], landmarks[idx])
    save_npz(path, crops=crops, key=np.array(key))
    return crops


# ----------------------------------------------------------------------------- model


def build_net(widths: tuple[int, int, int, int] = DEFAULTS["widths"], n_classes: int = 7, dropout: float = 0.3,
              stem_stride: int = DEFAULTS["stem_stride"]):
    """FaceExpressionNet: 5 conv3x3-BN-ReLU layers, 48 -> 24 px by the first (stride 2, or stride 1
    + max-pooling), then 24 -> 12 -> 6 px by max-pooling; global average pooling, dropout, linear.
    Both stems cost about the same multiply-adds (13.4 M vs 13.6 M per image), but the stride-2 one
    never holds 48x48x16 activations, whose memory-bound BatchNorm/ReLU/pooling passes dominate a
    CPU training step: `--time-steps` measures about 1.5 vs 2.0 CPU-ms per training image."""
    from torch import nn

    w0, w1, w2, w3 = widths

    def block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    stem = block(1, w0, 2) if stem_stride == 2 else [*block(1, w0), nn.MaxPool2d(2)]

    class FaceExpressionNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                *stem, *block(w0, w1), nn.MaxPool2d(2),
                *block(w1, w2), *block(w2, w2), nn.MaxPool2d(2), *block(w2, w3),
            )
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.drop = nn.Dropout(dropout)
            self.head = nn.Linear(w3, n_classes)

        def embed(self, x):
            return self.pool(self.features(x)).flatten(1)

        def forward(self, x):
            return self.head(self.drop(self.embed(x)))

    return FaceExpressionNet()


def export_onnx(model, classes: list[str], metadata: dict[str, str]) -> bytes:
    """FaceExpressionNet -> ONNX bytes: input "crops" (N, 1, 48, 48) standardised, outputs "probs"
    (N, 7) softmax and "embedding" (N, widths[-1]); BatchNorm folded into the preceding conv."""
    import torch
    from torch import nn

    from models.onnx_writer import OnnxGraph

    g = OnnxGraph("face-expression-cnn")
    cur = g.input("crops", ["n", 1, 48, 48])
    mods = list(model.features)
    i = k = 0
    while i < len(mods):
        m = mods[i]
        if isinstance(m, nn.Conv2d):
            bn = mods[i + 1]
            s = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
            w = (m.weight.detach() * s[:, None, None, None]).numpy()
            b = (bn.bias.detach() - bn.running_mean * s).numpy()
            cur = g.node("Conv", [cur, g.initializer(f"conv{k}.weight", w), g.initializer(f"conv{k}.bias", b)],
                         kernel_shape=list(m.kernel_size), pads=[m.padding[0], m.padding[1]] * 2, strides=list(m.stride))
            i, k = i + 2, k + 1
            continue
        if isinstance(m, nn.ReLU):
            cur = g.node("Relu", [cur])
        elif isinstance(m, nn.MaxPool2d):
            cur = g.node("MaxPool", [cur], kernel_shape=[2, 2], strides=[2, 2])
        else:
            raise TypeError(f"cannot export {type(m).__name__}")
        i += 1
    emb = g.node("Flatten", [g.node("GlobalAveragePool", [cur])], output="embedding", axis=1)
    head_w = g.initializer("head.weight", model.head.weight.detach().numpy())
    head_b = g.initializer("head.bias", model.head.bias.detach().numpy())
    g.node("Softmax", [g.node("Gemm", [emb, head_w, head_b], transB=1)], output="probs", axis=1)
    g.output("probs", ["n", len(classes)])
    g.output("embedding", ["n", model.head.in_features])
    g.metadata("classes", ",".join(classes))
    for key, value in metadata.items():
        g.metadata(key, value)
    return g.to_bytes()


# ----------------------------------------------------------------------------- training


def augment(batch, rng: np.random.Generator, cfg: dict[str, Any]):
    """Random flip + rotation/scale/shift of (B, 1, 48, 48) float crops (edge pixels repeat)."""
    import torch
    import torch.nn.functional as F

    b = batch.shape[0]
    angle = np.deg2rad(rng.uniform(-cfg["max_rotate_deg"], cfg["max_rotate_deg"], b))
    scale = 1.0 + rng.uniform(-cfg["max_scale"], cfg["max_scale"], b)
    shift = rng.uniform(-cfg["max_shift"], cfg["max_shift"], (b, 2))
    flip = np.where(rng.random(b) < 0.5, -1.0, 1.0)
    theta = np.zeros((b, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = np.cos(angle) / scale * flip
    theta[:, 0, 1] = -np.sin(angle) / scale
    theta[:, 1, 0] = np.sin(angle) / scale * flip
    theta[:, 1, 1] = np.cos(angle) / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(torch.from_numpy(theta), list(batch.shape), align_corners=False)
    return F.grid_sample(batch, grid, mode="bilinear", padding_mode="border", align_corners=False)


def train_net(crops: np.ndarray, labels: np.ndarray, cfg: dict[str, Any], seed: int = TRAIN_SEED):
    import torch

    from core.extractors.face_align import standardize_crops

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_net(tuple(cfg["widths"]), 7, cfg["dropout"], cfg["stem_stride"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    steps_per_epoch = math.ceil(len(crops) / cfg["batch_size"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg["label_smoothing"])
    y_all = torch.from_numpy(labels.astype(np.int64))
    raw = torch.from_numpy(crops.astype(np.float32)[:, None])
    watch = Stopwatch()
    for epoch in range(cfg["epochs"]):
        model.train()
        order = rng.permutation(len(crops))
        total = 0.0
        for s in range(steps_per_epoch):
            idx = order[s * cfg["batch_size"] : (s + 1) * cfg["batch_size"]]
            x = augment(raw[idx], rng, cfg)
            x = torch.from_numpy(standardize_crops(x.numpy()))
            loss = loss_fn(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"face: epoch {epoch + 1}/{cfg['epochs']} loss {total / len(crops):.4f} ({watch.seconds} s)")
    model.eval()
    return model


def predict_torch(model, crops: np.ndarray, batch: int = 512) -> np.ndarray:
    import torch

    from core.extractors.face_align import standardize_crops

    out = []
    with torch.no_grad():
        for lo in range(0, len(crops), batch):
            x = torch.from_numpy(standardize_crops(crops[lo : lo + batch]))
            out.append(torch.softmax(model(x), dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 7), np.float32)


# ----------------------------------------------------------------------------- metrics


def fer_metrics(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, Any]:
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix

    from core.extractors.face_cnn import CLASSES
    from core.extractors.visual_v2 import expression_valence

    if tuple(classes) != CLASSES:
        raise SystemExit(f"FER classes {classes} are not the CNN's {CLASSES}")

    pred = probs.argmax(1)
    with warnings.catch_warnings():
        # Sets without a class (e.g. no "surprise" in the composed corpus) make sklearn warn that the
        # prediction has a class the truth lacks; the mean recall over present classes is still right.
        warnings.simplefilter("ignore", UserWarning)
        balanced_acc = balanced_accuracy_score(labels, pred)
    valence = np.array([EMOTION_VALENCE.get(classes[int(c)]) for c in labels], dtype=object)
    polar = np.array([v in (1, -1) for v in valence])
    score = expression_valence(probs)
    sign_true = np.array([v for v in valence[polar]], dtype=np.float64)
    pos, neg = sign_true > 0, sign_true < 0
    s = score[polar]
    return {
        "n": int(len(labels)),
        "acc7": float(np.mean(pred == labels)),
        "balanced_acc7": float(balanced_acc),
        "per_class_recall": {c: float(np.mean(pred[labels == k] == k)) for k, c in enumerate(classes) if np.any(labels == k)},
        "valence_sign_n": int(polar.sum()),
        "valence_sign_acc": float(np.mean(np.sign(s) == sign_true)),
        "valence_sign_balanced_acc": float(np.mean([np.mean(s[pos] > 0), np.mean(s[neg] < 0)])),
        "confusion": confusion_matrix(labels, pred, labels=list(range(len(classes)))).tolist(),
    }


# ----------------------------------------------------------------------------- recipe


def run(data: Path, work: Path, out: Path | None, cfg: dict[str, Any], workers: int, val: bool) -> dict[str, Any]:
    from core.extractors.face_cnn import FaceExpressionCNN

    watch = Stopwatch()
    with np.load(data / "fer2013" / "train.npz") as z:
        images, labels, classes = z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classes"]]
    found, landmarks = landmark_fer(images, work, workers)
    t_landmarks = watch.seconds
    masks = split_fer(labels, classes, found)
    template = derive_template(landmarks[masks["train"]])
    check_template(template)
    crops = cached_crops(images, landmarks, found, work)
    t_crops = watch.seconds
    train_idx = np.flatnonzero(masks["train"])
    if val:
        rng = np.random.default_rng(VAL_SEED)
        is_val = np.zeros(len(train_idx), dtype=bool)
        is_val[rng.choice(len(train_idx), size=int(round(VAL_SHARE * len(train_idx))), replace=False)] = True
        eval_sets = {"val": train_idx[is_val]}
        train_idx = train_idx[~is_val]
    else:
        eval_sets = {name: np.flatnonzero(masks[name])
                     for name in ("heldout", "heldout_composed_dev", "heldout_unused", "composed_train")}
    log(f"face: training on {len(train_idx)} crops ({t_crops} s so far)")
    with torch_threads(1):  # float sums depend on the thread count: 2 threads write other weights
        model = train_net(crops[train_idx], labels[train_idx], cfg)
    t_train = watch.seconds
    report: dict[str, Any] = {
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
        "seed": TRAIN_SEED,
        "classes": classes,
        "n_images": int(len(images)),
        "landmark_found_rate": float(found.mean()),
        "n_train": int(len(train_idx)),
        "template": template.tolist(),
        "metrics": {},
    }
    for name, idx in eval_sets.items():
        probs = predict_torch(model, crops[idx])
        flipped = predict_torch(model, crops[idx][:, :, ::-1].copy())
        report["metrics"][name] = fer_metrics(probs, labels[idx], classes)
        report["metrics"][name + "_flip_tta"] = fer_metrics((probs + flipped) / 2, labels[idx], classes)
        m = report["metrics"][name]
        log(f"face: {name}: acc7 {m['acc7']:.3f}, valence sign {m['valence_sign_acc']:.3f} (n={m['n']})")
    if out is not None and not val:
        meta = {"recipe": "models/recipes/train_face_cnn.py", "seed": str(TRAIN_SEED), "data": "FER2013 train.npz"}
        blob = export_onnx(model, classes, meta)
        out.mkdir(parents=True, exist_ok=True)
        (out / ONNX_NAME).write_bytes(blob)
        # Checked through the run-time loader, so the shipped file is tested the way it is used.
        idx = eval_sets["heldout"][:512]
        onnx_probs = FaceExpressionCNN(out / ONNX_NAME, sha256=None).predict(crops[idx])
        report["onnx_max_abs_diff"] = float(np.abs(onnx_probs - predict_torch(model, crops[idx])).max())
        if report["onnx_max_abs_diff"] > 1e-4:
            (out / ONNX_NAME).unlink()
            raise SystemExit(f"ONNX export disagrees with torch by {report['onnx_max_abs_diff']}")
        report["onnx_sha256"] = hashlib.sha256(blob).hexdigest()
        report["onnx_bytes"] = len(blob)
    report["seconds"] = {"landmarks": t_landmarks, "crops": round(t_crops - t_landmarks, 1),
                         "train": round(t_train - t_crops, 1), "total": watch.seconds}
    report["cpu_seconds"] = round(_cpu_seconds(), 1)
    report["threads"] = {"torch": 1, "landmark_workers": workers}
    report["load_average_at_end"] = list(os.getloadavg())
    if val:
        tag = f"e{cfg['epochs']}_s{cfg['stem_stride']}_w{'-'.join(map(str, cfg['widths']))}"
        write_json(work / "face" / f"val_{tag}.json", report)
    elif out is not None:
        write_json(out / "report.json", report)
    log(f"face: done in {watch.seconds} s")
    return report


def compare_weights(data: Path, work: Path, a: Path, b: Path) -> dict[str, Any]:
    """How two ONNX files of this network differ on the held-out faces (crops from the work cache):
    largest probability difference, share of faces given the same class, and each file's metrics."""
    from core.extractors.face_cnn import FaceExpressionCNN

    with np.load(data / "fer2013" / "train.npz") as z:
        images, labels, classes = z["images"], z["labels"].astype(np.int64), [str(c) for c in z["classes"]]
    found, landmarks = landmark_fer(images, work, workers=1)
    idx = np.flatnonzero(split_fer(labels, classes, found)["heldout"])
    crops = cached_crops(images, landmarks, found, work)[idx]
    pa, pb = (FaceExpressionCNN(path, sha256=None).predict(crops) for path in (a, b))
    metric = {name: fer_metrics(p, labels[idx], classes) for name, p in (("a", pa), ("b", pb))}
    return {"n": int(len(idx)), "max_abs_prob_diff": float(np.abs(pa - pb).max()),
            "same_class": float(np.mean(pa.argmax(1) == pb.argmax(1))),
            "acc7": {k: m["acc7"] for k, m in metric.items()},
            "valence_sign_acc": {k: m["valence_sign_acc"] for k, m in metric.items()}}


def training_step_cost(cfg: dict[str, Any], steps: int = 8) -> float:
    """Thread CPU milliseconds per image of a training step (augmentation included), random data."""
    import time

    import torch

    from core.extractors.face_align import standardize_crops

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = build_net(tuple(cfg["widths"]), 7, cfg["dropout"], cfg["stem_stride"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"])
    raw = torch.from_numpy(rng.integers(0, 256, (cfg["batch_size"], 1, 48, 48)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 7, cfg["batch_size"]))
    spent = 0.0
    for step in range(steps + 2):
        t0 = time.thread_time()
        x = torch.from_numpy(standardize_crops(augment(raw, rng, cfg).numpy()))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step >= 2:  # the first steps include one-off allocations
            spent += time.thread_time() - t0
    return 1000.0 * spent / (steps * cfg["batch_size"])


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the landmarking workers)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True, help="cache folder outside the repository")
    ap.add_argument("--out", default="assets/face", help="where the ONNX weights and report.json go")
    ap.add_argument("--workers", type=int, default=2, help="landmarking processes")
    ap.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    ap.add_argument("--widths", type=int, nargs=4, default=list(DEFAULTS["widths"]))
    ap.add_argument("--stem-stride", type=int, choices=(1, 2), default=DEFAULTS["stem_stride"])
    ap.add_argument("--val", action="store_true", help="score a 10 %% validation part of the training faces")
    ap.add_argument("--time-steps", action="store_true", help="only print CPU ms per training image")
    a = ap.parse_args()
    limit_threads(1)
    cfg = {**DEFAULTS, "epochs": a.epochs, "widths": tuple(a.widths), "stem_stride": a.stem_stride}
    if a.time_steps:
        print(f"{training_step_cost(cfg):.2f} CPU-ms per training image (1 thread)")
        return
    report = run(data_dir(a.data), Path(a.work).resolve(), None if a.val else Path(a.out), cfg, a.workers, a.val)
    if a.val:
        print(report["metrics"])


if __name__ == "__main__":
    main()
