"""Stage 2: unimodal pretraining on our own features, with held-out metrics for the model cards.

What is trained here and why:

* audio (RAVDESS): a standardised multinomial logistic regression on utterance statistics (mean and
  std over valid frames of the 69 librosa-v1 columns) predicts valence class (negative / neutral /
  positive, mapping in common.EMOTION_VALENCE), a second one predicts arousal (high / low).
  Evaluation holds out *actors*: train on actors 01-16, test on HELDOUT_ACTORS (17-20), plus a 5-fold
  actor-grouped cross-validation over all 20 actors.
* visual (FER2013): the same classifier on the 58 face columns of each detected face; held-out =
  the seeded 20 % image split that also feeds the dev side of the composed corpus.
* text (MOSI): ridge regression on the mean of the MiniLM token features (exactly the features the
  pipeline gives the models), alpha and the optional extra corpora (SST root sentences mapped to
  valence, MELD sentiment) chosen on MOSI dev. Reported with MMSA's metrics on MOSI dev.

These are *probe* models: the fusion models do not inherit their weights (their encoders are
architecture-specific and are trained on the composed corpus). The probes (a) give honest
unimodal numbers for the cards and (b) score every RAVDESS clip / FER face out-of-fold, and
`compose.py` uses those scores to decide which clip or face goes with which MOSI label strength.

Output under WORK/unimodal/: audio_scores.npz, visual_scores.npz, text_choice.json, report.json.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from models.recipes.common import (
    BASE_SEED, HELDOUT_ACTORS, EMOTION_AROUSAL, EMOTION_VALENCE, RAVDESS_EMOTIONS, Stopwatch, limit_threads,
    load_npz, log, read_json, save_npz, write_json,
)

FER_DEV_SHARE = 0.2
#: Per-sample weight of SST/MELD sentences relative to MOSI in the text probe (tried on dev).
EXTRA_WEIGHTS = (1.0, 0.3)
N_FOLDS = 5


# ----------------------------------------------------------------------------- features


def pooled_stats(feats: np.ndarray, offsets: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per clip: mean and std over valid rows of every column -> (N, 2D)."""
    out = []
    for i in range(len(offsets) - 1):
        x = feats[offsets[i] : offsets[i + 1]].astype(np.float64)
        if mask is not None:
            x = x[mask[offsets[i] : offsets[i + 1]]]
        if len(x) == 0:
            out.append(np.zeros(2 * feats.shape[1]))
            continue
        out.append(np.concatenate([x.mean(0), x.std(0)]))
    return np.asarray(out, dtype=np.float64)


def _classifier(c: float = 0.5):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=3000))


def valence_score(clf, x: np.ndarray) -> np.ndarray:
    """P(positive) - P(negative) in [-1, 1] (the classes are -1, 0, 1)."""
    proba = clf.predict_proba(x)
    classes = list(clf.classes_)
    return proba[:, classes.index(1)] - proba[:, classes.index(-1)]


def sign_metrics(score: np.ndarray, valence: np.ndarray) -> dict[str, float]:
    """Accuracy of sign(score) on samples whose true valence is +-1, plus 3-class accuracy with a
    dead zone chosen nowhere (argmax is reported separately)."""
    polar = valence != 0
    acc = float(np.mean(np.sign(score[polar]) == valence[polar])) if polar.any() else float("nan")
    pos, neg = valence == 1, valence == -1
    bal = float(np.mean([np.mean(score[pos] > 0), np.mean(score[neg] < 0)])) if pos.any() and neg.any() else float("nan")
    return {"sign_acc": acc, "sign_balanced_acc": bal, "n_polar": int(polar.sum())}


# ----------------------------------------------------------------------------- audio


def audio_probe(work: Path) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score

    rav = load_npz(work / "audio" / "ravdess.npz")
    x = pooled_stats(rav["feats"], rav["offsets"], rav["mask"])
    emo = [RAVDESS_EMOTIONS[int(e)] for e in rav["emotion"]]
    val = np.array([EMOTION_VALENCE[e] if EMOTION_VALENCE[e] is not None else 99 for e in emo])
    aro = np.array([EMOTION_AROUSAL[e] if EMOTION_AROUSAL[e] is not None else 99 for e in emo])
    actor = rav["actor"].astype(int)
    has_val, has_aro = val != 99, aro != 99
    held = np.isin(actor, HELDOUT_ACTORS)
    # Regularisation chosen by actor-grouped cross-validation on the training actors only.
    c = _choose_c(x, val, actor, has_val & ~held)

    # Held-out actors 17-20 (never used by the composed corpus either).
    clf_v = _classifier(c).fit(x[has_val & ~held], val[has_val & ~held])
    clf_a = _classifier(c).fit(x[has_aro & ~held], aro[has_aro & ~held])
    sv = valence_score(clf_v, x[held & has_val])
    heldout = {
        "actors": list(HELDOUT_ACTORS),
        "n_clips": int((held & has_val).sum()),
        **sign_metrics(sv, val[held & has_val]),
        "valence_3class_acc": float(accuracy_score(val[held & has_val], clf_v.predict(x[held & has_val]))),
        "valence_3class_balanced_acc": float(balanced_accuracy_score(val[held & has_val], clf_v.predict(x[held & has_val]))),
        "arousal_acc": float(accuracy_score(aro[held & has_aro], clf_a.predict(x[held & has_aro]))),
        "arousal_balanced_acc": float(balanced_accuracy_score(aro[held & has_aro], clf_a.predict(x[held & has_aro]))),
    }

    # Out-of-fold scores for every clip: folds are groups of 4 actors (dev actors = one fold), so no
    # clip is ever scored by a probe that saw its actor.
    folds = [tuple(HELDOUT_ACTORS)] + [tuple(range(1 + 4 * k, 5 + 4 * k)) for k in range(4)]
    oof_val = np.zeros(len(x))
    oof_aro = np.zeros(len(x))
    for fold in folds:
        test = np.isin(actor, fold)
        cv = _classifier(c).fit(x[has_val & ~test], val[has_val & ~test])
        ca = _classifier(c).fit(x[has_aro & ~test], aro[has_aro & ~test])
        oof_val[test] = valence_score(cv, x[test])
        oof_aro[test] = ca.predict_proba(x[test])[:, list(ca.classes_).index(1)]
    cv_metrics = {
        "folds": [list(f) for f in folds],
        **sign_metrics(oof_val[has_val], val[has_val]),
        "arousal_acc": float(np.mean((oof_aro[has_aro] > 0.5) == (aro[has_aro] == 1))),
    }
    save_npz(work / "unimodal" / "audio_scores.npz", valence_score=oof_val, arousal_prob=oof_aro,
             valence=np.where(val == 99, 0, val), valence_defined=has_val)
    return {"heldout_actors": heldout, "actor_cv": cv_metrics,
            "features": "mean+std over valid frames of the audio columns (FeatureSpec v2: Whisper encoder states)",
            "classifier": f"StandardScaler + LogisticRegression(C={c}, class_weight=balanced)",
            "c_selection": "4-fold actor-grouped CV on actors 01-16, sign accuracy"}


AUDIO_C = (0.003, 0.01, 0.03, 0.1, 0.5)


def _choose_c(x: np.ndarray, val: np.ndarray, actor: np.ndarray, rows: np.ndarray) -> float:
    from sklearn.model_selection import GroupKFold

    idx = np.flatnonzero(rows)
    best, best_acc = AUDIO_C[0], -1.0
    for c in AUDIO_C:
        accs = []
        for a, b in GroupKFold(4).split(idx, val[idx], actor[idx]):
            clf = _classifier(c).fit(x[idx[a]], val[idx[a]])
            polar = val[idx[b]] != 0
            accs.append(np.mean(np.sign(valence_score(clf, x[idx[b]][polar])) == val[idx[b]][polar]))
        if np.mean(accs) > best_acc:
            best, best_acc = c, float(np.mean(accs))
    return best


# ----------------------------------------------------------------------------- visual


def fer_split(n: int, seed: int = BASE_SEED + 4) -> np.ndarray:
    """Boolean dev mask over the found FER faces (seeded, FER_DEV_SHARE of them)."""
    rng = np.random.default_rng(seed)
    dev = np.zeros(n, dtype=bool)
    dev[rng.choice(n, size=int(round(FER_DEV_SHARE * n)), replace=False)] = True
    return dev


def visual_probe(work: Path) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold

    fer = load_npz(work / "visual" / "fer.npz")
    classes = [str(c) for c in fer["classes"]]
    found = fer["found"].astype(bool)
    x = fer["feats"][found].astype(np.float64)
    val = np.array([EMOTION_VALENCE[classes[int(c)]] for c in fer["label"][found]])
    dev = fer_split(len(x))
    clf = _classifier().fit(x[~dev], val[~dev])
    s_dev = valence_score(clf, x[dev])
    pred = clf.predict(x[dev])
    heldout = {
        "n_train": int((~dev).sum()), "n_dev": int(dev.sum()),
        **sign_metrics(s_dev, val[dev]),
        "valence_3class_acc": float(accuracy_score(val[dev], pred)),
        "valence_3class_balanced_acc": float(balanced_accuracy_score(val[dev], pred)),
    }
    oof = np.zeros(len(x))
    oof[dev] = s_dev
    skf = StratifiedKFold(N_FOLDS, shuffle=True, random_state=BASE_SEED % (2**31))
    tr_idx = np.flatnonzero(~dev)
    for a, b in skf.split(tr_idx, val[tr_idx]):
        c = _classifier().fit(x[tr_idx[a]], val[tr_idx[a]])
        oof[tr_idx[b]] = valence_score(c, x[tr_idx[b]])
    save_npz(work / "unimodal" / "visual_scores.npz", valence_score=oof, valence=val, dev=dev,
             found_index=np.flatnonzero(found))
    return {"heldout_images": heldout, "train_cv": sign_metrics(oof[~dev], val[~dev]),
            "features": "the 58 mediapipe-face-v1 columns of the single upscaled face",
            "classifier": "StandardScaler + LogisticRegression(C=0.5, class_weight=balanced)"}


# ----------------------------------------------------------------------------- text


def _pooled_text(feats: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.stack([feats[offsets[i] : offsets[i + 1]].mean(0) for i in range(len(offsets) - 1)]).astype(np.float64)


def text_probe(work: Path) -> dict[str, Any]:
    """Ridge on mean-pooled MiniLM features; choose alpha and extra corpora on MOSI dev (MAE)."""
    from sklearn.linear_model import Ridge

    from models.metrics import regression_metrics

    mosi = load_npz(work / "text" / "mosi.npz")
    x = _pooled_text(mosi["feats"], mosi["offsets"])
    y = mosi["label"].astype(np.float64)
    train, dev = mosi["split"] == "train", mosi["split"] == "dev"
    extras: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("sst", "meld"):
        path = work / "text" / f"{name}.npz"
        if path.exists():
            e = load_npz(path)
            extras[name] = (_pooled_text(e["feats"], e["offsets"]), e["label"].astype(np.float64))
    variants = [()] + [(n,) for n in extras] + ([tuple(extras)] if len(extras) > 1 else [])
    results = []
    for combo in variants:
        xs = [x[train]] + [extras[n][0] for n in combo]
        ys = [y[train]] + [extras[n][1] for n in combo]
        for weight in ((1.0,) if not combo else EXTRA_WEIGHTS):
            w = np.concatenate([np.ones(int(train.sum()))] + [np.full(len(extras[n][1]), weight) for n in combo])
            for alpha in (1.0, 3.0, 10.0, 30.0):
                reg = Ridge(alpha=alpha).fit(np.concatenate(xs), np.concatenate(ys), sample_weight=w)
                m = regression_metrics(reg.predict(x[dev]), y[dev])
                results.append({"extra": list(combo), "extra_weight": weight if combo else 0.0, "alpha": alpha, "dev": m})
    best = min(results, key=lambda r: (r["dev"]["MAE"], -r["dev"]["Non0_acc_2"]))
    mosi_only = min((r for r in results if not r["extra"]), key=lambda r: r["dev"]["MAE"])
    choice = {"extra": best["extra"], "extra_weight": best["extra_weight"], "alpha": best["alpha"]}
    write_json(work / "unimodal" / "text_choice.json", choice)
    return {"selected": best, "mosi_only": mosi_only, "all": results,
            "features": "mean over tokens of MiniLM-L6 last_hidden_state (the pipeline's text encoder)",
            "regressor": "Ridge", "selection": "lowest MOSI-dev MAE"}


def run_unimodal(work: Path, force: bool = False) -> dict[str, Any]:
    out = work / "unimodal" / "report.json"
    if out.exists() and not force:
        log("unimodal: cached")
        return read_json(out)
    watch = Stopwatch()
    report = {"audio": audio_probe(work)}
    log(f"unimodal: audio held-out-actor sign acc {report['audio']['heldout_actors']['sign_acc']:.3f}")
    report["visual"] = visual_probe(work)
    log(f"unimodal: visual held-out sign acc {report['visual']['heldout_images']['sign_acc']:.3f}")
    report["text"] = text_probe(work)
    log(f"unimodal: text (ridge) MOSI dev {report['text']['selected']['dev']}")
    report["seconds"] = watch.seconds
    write_json(out, report)
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    limit_threads(1)
    run_unimodal(Path(a.work).resolve(), a.force)


if __name__ == "__main__":
    main()
