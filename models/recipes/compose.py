"""Stage 3: the composed multimodal corpus v2 (documented, seeded, versioned).

No multimodal sentiment corpus can be downloaded here, so samples are composed from real unimodal
data, every feature row made by the pipeline's own extractors (stages 1a-1c). v2 differs from v1 in
what a sample may be *anchored* on, and in saying which modalities carry evidence about its label:

* ``mosi`` — a real MOSI transcript with its human label (in train, one more pairing of each with
  audio and face absent, like a text-only input); audio and face each, independently:
  a RAVDESS clip / FER face whose valence agrees with the label's sign and strength (role
  "label"), a neutral clip/face for |label| < neutral_band ("neutral-label"), an uninformative one
  regardless of the label (RAVDESS/FER neutral, GRID talking heads; "uninformative"), or absent.
* ``voice`` — a RAVDESS clip with the valence of its acted emotion (EMOTION_LABEL x intensity;
  pleasant clips repeated so that pleasant and unpleasant voices are equally frequent)
  and *its own words as Whisper heard them* ("Kids are talking by the door"), face absent, an
  agreeing FER face, or an uninformative one. Without these, text always agreed with the voice,
  and the fusion models learnt to ignore a voice when the words are neutral — the case of every
  RAVDESS-style recording.
* ``face`` — a FER face with the valence of its expression (a third each pleasant, unpleasant and
  neutral, label 0), text of a neutral recording (GRID or
  RAVDESS words) or no words, audio absent or uninformative.
* ``neutral`` — RAVDESS neutral clips (own words) and GRID clips (own words, voice and video),
  label 0: uninformative input must score 0, not a learned offset.
* ``extra`` — SST sentences (when the text probe chose them on MOSI dev), audio/face absent or
  uninformative.

Evidence: each sample stores a bit set (models.missing.EVIDENCE_BITS) of the modalities that
carry evidence about its label (text for mosi/extra, audio for voice and for "label"/"neutral-label"
audio, visual likewise). The "coalition" training regime trains every coalition of modalities
towards the label when one of its modalities carries evidence and towards 0 otherwise.

Splits, disjoint in every source (people never cross from training to evaluation):
  RAVDESS actors 01-14 train, 15-16 dev (model selection, calibration), 17-20 never used here
  (held-out report); FER faces by the seeded image split of the face CNN (models/recipes/
  train_face_cnn.py: its held-out faces are the dev side); GRID clips 7 / 3; MOSI train
  videos minus a seeded CALIB_SHARE held out for interval calibration ("calib"), MOSI dev.

Face sequences: a FER face is a still; a sequence of T = round(audio duration x 10 Hz) frames adds
the temporal deviation from its mean of a real GRID talking-head sequence (speech motion) plus
Gaussian jitter (cfg.jitter x column std), and per-sequence head translation.

Known limit (stated in every card): pairing is by label, so there is no real cross-modal interplay
(no sarcasm, no timing between words and expressions).
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.recipes.common import (
    BASE_SEED, CORPUS_DEV_ACTORS, CORPUS_VERSION, EMOTION_VALENCE, HELDOUT_ACTORS, RAVDESS_EMOTIONS, Stopwatch,
    load_npz, log, read_json, unpack_ragged, write_json,
)

SPLITS = ("train", "dev", "calib")
SPLIT_CODE = {"train": 1, "dev": 2, "calib": 3}
GRID_DEV = ("pwij3p", "sbia1a", "swiz3n")  # 3 of the 10 GRID clips form the dev side
AUDIO_RATE_HZ = 50.0
N_BLENDSHAPES = 52
TRANSLATION_COLS = slice(55, 58)
EXPRESSION_COLS = slice(58, None)  # mediapipe-face-v2: the CNN's 7 class probabilities
EVIDENCE = {"text": 1, "audio": 2, "visual": 4}  # = models.missing.EVIDENCE_BITS
INFORMATIVE_ROLES = ("label", "neutral-label")
#: Sentiment of an acted emotion on MOSI's scale (normal intensity; strong x STRONG_FACTOR).
#: Assumed, not measured: RAVDESS and FER have no sentiment ratings; the signs follow
#: common.EMOTION_VALENCE and the sizes keep calm milder than happy.
EMOTION_LABEL = {"happy": 1.6, "calm": 1.0, "sad": -1.5, "angry": -1.8, "fearful": -1.6, "disgust": -1.6,
                 "fear": -1.6}
STRONG_FACTOR = 1.25
GRID_DRAWS = 3  # neutral GRID samples per training clip and replica (the only real talking-head video)


@dataclass(frozen=True)
class ComposeConfig:
    replicas_train: int = 2
    text_only_replicas: int = 2  # extra pairings of each MOSI train sample with audio and face absent
    calib_share: float = 0.12  # of MOSI train videos, held out for interval calibration
    p_uninformative: float = 0.3
    p_grid_in_uninformative: float = 0.3
    p_no_video: float = 0.2
    p_no_audio: float = 0.15
    neutral_band: float = 0.5
    strength_spread: float = 0.15
    voice_replicas: int = 1  # voice-anchored samples per RAVDESS train clip
    voice_p_face: float = 0.3  # ... with an agreeing face (else absent / uninformative)
    face_samples: int = 1200  # face-anchored samples in train (dev: a fifth)
    neutral_replicas: int = 3
    visual_rate_hz: float = 10.0
    min_frames: int = 10
    jitter: float = 0.05
    p_real_face_geometry: float = 0.5
    pose_tx: tuple[float, float] = (-0.3, 0.3)
    pose_ty: tuple[float, float] = (-0.4, 0.2)
    pose_tz: tuple[float, float] = (-0.8, -0.2)
    extra_text_cap: int = 1200  # SST sentences added to train (when chosen on dev)


# ----------------------------------------------------------------------------- sources


def mosi_calib_mask(ids: np.ndarray, split: np.ndarray, share: float) -> np.ndarray:
    """Seeded share of MOSI *train videos* (all their utterances) held out for calibration."""
    videos = sorted({str(i).rsplit("_", 1)[0] for i, s in zip(ids, split) if s == "train"})
    rng = np.random.default_rng(BASE_SEED + 21)
    held = set(rng.choice(videos, size=int(round(share * len(videos))), replace=False).tolist())
    return np.array([s == "train" and str(i).rsplit("_", 1)[0] in held for i, s in zip(ids, split)])


class Sources:
    """Every unimodal feature cache the corpus draws from, plus the probe scores."""

    def __init__(self, work: Path, cfg: ComposeConfig) -> None:
        self.work = work
        self.mosi = load_npz(work / "text" / "mosi.npz")
        self.extras = {n: load_npz(work / "text" / f"{n}.npz") for n in ("sst",) if (work / "text" / f"{n}.npz").exists()}
        self.spoken = load_npz(work / "text" / "spoken.npz")  # words of RAVDESS / GRID clips + "no words"
        self.rav = load_npz(work / "audio" / "ravdess.npz")
        self.grid_a = load_npz(work / "audio" / "grid.npz")
        self.fer = load_npz(work / "visual" / "fer.npz")
        self.grid_v = load_npz(work / "visual" / "grid.npz")
        self.a_scores = load_npz(work / "unimodal" / "audio_scores.npz")
        self.v_scores = load_npz(work / "unimodal" / "visual_scores.npz")
        self.text_choice = read_json(work / "unimodal" / "text_choice.json")
        self.mosi_split = np.where(mosi_calib_mask(self.mosi["id"], self.mosi["split"], cfg.calib_share),
                                   "calib", self.mosi["split"])
        self.spoken_index = {str(n): i for i, n in enumerate(self.spoken["name"])}
        self.fer_classes = [str(c) for c in self.fer["classes"]]
        self._fer_found = self.v_scores["found_index"]  # positions in fer.npz of found faces
        self.fer_col_std = self.fer["feats"][self._fer_found].std(0) + 1e-6
        self.dims = {"text": int(self.mosi["feats"].shape[1]), "audio": int(self.rav["feats"].shape[1]),
                     "visual": int(self.fer["feats"].shape[1])}
        has_speech = np.array([bool(unpack_ragged(self.rav["mask"], self.rav["offsets"], i).any())
                               for i in range(len(self.rav["name"]))])
        self.rav_usable = has_speech

    # ---- pools

    def rav_split(self, split: str) -> np.ndarray:
        actors = self.rav["actor"].astype(int)
        dev = np.isin(actors, CORPUS_DEV_ACTORS)
        ok = self.rav_usable & ~np.isin(actors, HELDOUT_ACTORS)
        return ok & (dev if split in ("dev", "calib") else ~dev)

    def rav_valence(self) -> np.ndarray:
        emo = [RAVDESS_EMOTIONS[int(e)] for e in self.rav["emotion"]]
        return np.array([EMOTION_VALENCE[e] if EMOTION_VALENCE[e] is not None else 99 for e in emo])

    def audio_pools(self, split: str) -> dict[str, np.ndarray]:
        in_split, val = self.rav_split(split), self.rav_valence()
        score = self.a_scores["valence_score"]
        pools = {"neutral": np.flatnonzero(in_split & (val == 0))}
        for name, s in (("positive", 1), ("negative", -1)):
            idx = np.flatnonzero(in_split & (val == s))
            pools[name] = idx[np.argsort(s * score[idx], kind="stable")]  # ascending strength
        return pools

    def visual_pools(self, split: str) -> dict[str, np.ndarray]:
        """Indices into the *found* faces (visual_scores order)."""
        dev = self.v_scores["dev"].astype(bool)
        in_split = dev if split in ("dev", "calib") else ~dev
        val = self.v_scores["valence"]
        score = self.v_scores["valence_score"]
        pools = {"neutral": np.flatnonzero(in_split & (val == 0))}
        for name, s in (("positive", 1), ("negative", -1)):
            idx = np.flatnonzero(in_split & (val == s))
            pools[name] = idx[np.argsort(s * score[idx], kind="stable")]
        return pools

    def grid_indices(self, split: str) -> np.ndarray:
        names = [str(n) for n in self.grid_a["name"]]
        return np.array([i for i, n in enumerate(names) if (n in GRID_DEV) == (split != "train")])

    # ---- features

    def text(self, source: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        src = {"mosi": self.mosi, "spoken": self.spoken}.get(source) or self.extras[source]
        return unpack_ragged(src["feats"], src["offsets"], i), unpack_ragged(src["ids"], src["offsets"], i)

    def audio(self, source: str, i: int) -> tuple[np.ndarray, np.ndarray, float]:
        src = self.rav if source == "ravdess" else self.grid_a
        return (unpack_ragged(src["feats"], src["offsets"], i), unpack_ragged(src["mask"], src["offsets"], i),
                float(src["duration"][i]))

    def grid_visual(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return (unpack_ragged(self.grid_v["feats"], self.grid_v["offsets"], i),
                unpack_ragged(self.grid_v["mask"], self.grid_v["offsets"], i))

    def fer_face(self, j: int) -> np.ndarray:
        return self.fer["feats"][self._fer_found[j]]

    def spoken_words(self, kind: str, i: int) -> int:
        """Index in spoken.npz of the words of RAVDESS clip / GRID clip i."""
        names = self.rav["name"] if kind == "ravdess" else self.grid_a["name"]
        return self.spoken_index[f"{kind}/{names[i]}"]


# ----------------------------------------------------------------------------- sampling


def _pick_by_strength(pool: np.ndarray, strength: float, cfg: ComposeConfig, rng: np.random.Generator) -> int:
    q = float(np.clip((abs(strength) - cfg.neutral_band) / (3.0 - cfg.neutral_band), 0.0, 1.0))
    n = len(pool)
    pos = q * (n - 1) + rng.normal(0.0, cfg.strength_spread * n)
    return int(pool[int(np.clip(round(pos), 0, n - 1))])


def _uninformative(kind: str, pools: dict[str, np.ndarray], grid: np.ndarray, cfg: ComposeConfig,
                   rng: np.random.Generator) -> dict[str, Any]:
    if rng.random() < cfg.p_grid_in_uninformative:
        return {"source": "grid", "index": int(rng.choice(grid)), "role": "uninformative"}
    return {"source": kind, "index": int(rng.choice(pools["neutral"])), "role": "uninformative"}


def _modality_plan(kind: str, label: float, pools: dict[str, np.ndarray], grid: np.ndarray,
                   cfg: ComposeConfig, rng: np.random.Generator) -> dict[str, Any]:
    """Which source item a modality uses and why ("role")."""
    if rng.random() < cfg.p_uninformative:
        return _uninformative(kind, pools, grid, cfg, rng)
    if abs(label) < cfg.neutral_band:
        return {"source": kind, "index": int(rng.choice(pools["neutral"])), "role": "neutral-label"}
    pool = pools["positive" if label > 0 else "negative"]
    return {"source": kind, "index": _pick_by_strength(pool, label, cfg, rng), "role": "label"}


ABSENT = {"source": "none", "index": -1, "role": "absent"}


def _sample(sid: str, split: str, label: float, anchor: str, text: dict, audio: dict, visual: dict,
            text_evidence: bool, rng: np.random.Generator) -> dict[str, Any]:
    evidence = (EVIDENCE["text"] if text_evidence else 0) \
        | (EVIDENCE["audio"] if audio["role"] in INFORMATIVE_ROLES else 0) \
        | (EVIDENCE["visual"] if visual["role"] in INFORMATIVE_ROLES else 0)
    return {"id": sid, "split": split, "label": float(label) if evidence else 0.0, "anchor": anchor,
            "evidence": evidence, "text": text, "audio": audio, "visual": {**visual, "seed": int(rng.integers(2**31))}}


def plan_mosi(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    """MOSI-anchored samples; in train, `text_only_replicas` more pairings have audio and face
    absent, as a transcript or a text-only input gives them (the case the MOSI-dev row measures)."""
    a_pools, v_pools, grid = src.audio_pools(split), src.visual_pools(split), src.grid_indices(split)
    replicas = cfg.replicas_train + cfg.text_only_replicas if split == "train" else 1
    out = []
    for r in range(replicas):
        text_only = split == "train" and r >= cfg.replicas_train
        for i in np.flatnonzero(src.mosi_split == split):
            rng = np.random.default_rng([BASE_SEED, SPLIT_CODE[split], r, int(i)])
            label = float(src.mosi["label"][i])
            audio = ABSENT if text_only or rng.random() < cfg.p_no_audio else _modality_plan("ravdess", label, a_pools, grid, cfg, rng)
            visual = ABSENT if text_only or rng.random() < cfg.p_no_video else _modality_plan("fer", label, v_pools, grid, cfg, rng)
            out.append(_sample(f"{split}/mosi/{r}/{src.mosi['id'][i]}", split, label, "mosi",
                               {"source": "mosi", "index": int(i)}, audio, visual, True, rng))
    return out


def emotion_label(emotion: str, strong: bool) -> float:
    return EMOTION_LABEL[emotion] * (STRONG_FACTOR if strong else 1.0)


def plan_voice(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    v_pools, grid = src.visual_pools(split), src.grid_indices(split)
    val = src.rav_valence()
    n_pos, n_neg = (int((src.rav_split(split) & (val == s)).sum()) for s in (1, -1))
    out = []
    for i in np.flatnonzero(src.rav_split(split) & np.isin(val, (-1, 1))):
        emotion = RAVDESS_EMOTIONS[int(src.rav["emotion"][i])]
        label = emotion_label(emotion, int(src.rav["intensity"][i]) == 2)
        # as many positive as negative voices (RAVDESS acts 2 pleasant and 4 unpleasant emotions):
        # an unbalanced pool teaches the audio branch a negative prior for any voice
        reps = cfg.voice_replicas if split == "train" else 1
        if val[i] > 0:
            reps = max(1, round(reps * n_neg / max(1, n_pos)))
        for r in range(reps):
            rng = np.random.default_rng([BASE_SEED, 30 + SPLIT_CODE[split], r, int(i)])
            u = rng.random()
            if u < cfg.voice_p_face:
                visual = _modality_plan("fer", label, v_pools, grid, cfg, rng)
            elif u < cfg.voice_p_face + 0.2:
                visual = _uninformative("fer", v_pools, grid, cfg, rng)
            else:
                visual = ABSENT
            out.append(_sample(f"{split}/voice/{r}/{src.rav['name'][i]}", split, label, "voice",
                               {"source": "spoken", "index": src.spoken_words("ravdess", int(i))},
                               {"source": "ravdess", "index": int(i), "role": "label"}, visual, False, rng))
    return out


def plan_face(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    v_pools, a_pools, grid = src.visual_pools(split), src.audio_pools(split), src.grid_indices(split)
    n = cfg.face_samples if split == "train" else cfg.face_samples // 5
    rng0 = np.random.default_rng([BASE_SEED, 40 + SPLIT_CODE[split]])
    # a third each of pleasant, unpleasant and neutral faces (FER has 1 pleasant class and 4
    # unpleasant ones): an unbalanced pool teaches the visual branch a prior for any face, and the
    # neutral faces (label 0) say where "no sentiment" lies in expression space
    chosen = np.sort(np.concatenate([rng0.choice(v_pools[k], size=min(n // 3, len(v_pools[k])), replace=False)
                                     for k in ("positive", "negative", "neutral")]))
    classes = src.fer_classes
    found_labels = src.fer["label"][src._fer_found]
    no_words = src.spoken_index["none/no-words"]
    out = []
    for j in chosen:
        rng = np.random.default_rng([BASE_SEED, 50 + SPLIT_CODE[split], int(j)])
        expression = classes[int(found_labels[j])]
        label = emotion_label(expression, False) if expression in EMOTION_LABEL else 0.0
        u = rng.random()
        if u < 0.4:
            text = {"source": "spoken", "index": no_words}
            audio = ABSENT
        else:
            audio = _uninformative("ravdess", a_pools, grid, cfg, rng)
            kind = "grid" if audio["source"] == "grid" else "ravdess"
            text = {"source": "spoken", "index": src.spoken_words(kind, audio["index"])}
        role = "label" if label else "neutral-label"
        out.append(_sample(f"{split}/face/{int(j)}", split, label, "face", text, audio,
                           {"source": "fer", "index": int(j), "role": role}, False, rng))
    return out


def plan_neutral(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    v_pools, a_pools, grid = src.visual_pools(split), src.audio_pools(split), src.grid_indices(split)
    out = []
    reps = cfg.neutral_replicas if split == "train" else 1
    for r in range(reps):
        for i in a_pools["neutral"]:
            rng = np.random.default_rng([BASE_SEED, 60 + SPLIT_CODE[split], r, int(i)])
            visual = ABSENT if rng.random() < 0.5 else _uninformative("fer", v_pools, grid, cfg, rng)
            out.append(_sample(f"{split}/neutral/{r}/{src.rav['name'][i]}", split, 0.0, "neutral",
                               {"source": "spoken", "index": src.spoken_words("ravdess", int(i))},
                               {"source": "ravdess", "index": int(i), "role": "uninformative"}, visual, False, rng))
        for g in grid:
            rng = np.random.default_rng([BASE_SEED, 70 + SPLIT_CODE[split], r, int(g)])
            for k in range(GRID_DRAWS if split == "train" else 1):  # GRID clips are few: several draws each
                out.append(_sample(f"{split}/grid/{r}/{k}/{src.grid_a['name'][g]}", split, 0.0, "neutral",
                                   {"source": "spoken", "index": src.spoken_words("grid", int(g))},
                                   {"source": "grid", "index": int(g), "role": "uninformative"},
                                   {"source": "grid", "index": int(g), "role": "uninformative"}, False, rng))
    return out


def plan_extras(src: Sources, cfg: ComposeConfig) -> list[dict[str, Any]]:
    chosen = [n for n in src.text_choice.get("extra", []) if n in src.extras]
    if not chosen or cfg.extra_text_cap <= 0:
        return []
    a_pools, v_pools, grid = src.audio_pools("train"), src.visual_pools("train"), src.grid_indices("train")
    per = cfg.extra_text_cap // len(chosen)
    out = []
    for k, name in enumerate(chosen):
        labels = src.extras[name]["label"]
        rng0 = np.random.default_rng([BASE_SEED, 9, k])
        for i in np.sort(rng0.choice(len(labels), size=min(per, len(labels)), replace=False)):
            rng = np.random.default_rng([BASE_SEED, 10 + k, int(i)])
            audio = ABSENT if rng.random() < 0.5 else _uninformative("ravdess", a_pools, grid, cfg, rng)
            visual = ABSENT if rng.random() < 0.5 else _uninformative("fer", v_pools, grid, cfg, rng)
            out.append(_sample(f"train/{name}/{int(i)}", "train", float(labels[i]), "extra",
                               {"source": name, "index": int(i)}, audio, visual, True, rng))
    return out


def plan_split(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    samples = plan_mosi(src, split, cfg)
    if split != "calib":
        samples += plan_voice(src, split, cfg) + plan_face(src, split, cfg) + plan_neutral(src, split, cfg)
    if split == "train":
        samples += plan_extras(src, cfg)
    return samples


# ----------------------------------------------------------------------------- materialising


def face_sequence(src: Sources, plan: dict[str, Any], n_frames: int, split: str, cfg: ComposeConfig
                  ) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(plan["seed"])
    grid = src.grid_indices(split)
    if plan["source"] == "grid":
        return src.grid_visual(plan["index"])
    g_feats, g_mask = src.grid_visual(int(rng.choice(grid)))
    g = g_feats[g_mask]
    motion = g - g.mean(0)
    start = int(rng.integers(len(g)))
    steps = motion[(start + np.arange(n_frames)) % len(g)]
    face = src.fer_face(plan["index"]).astype(np.float64)
    seq = np.repeat(face[None], n_frames, axis=0) + steps
    seq += rng.normal(0.0, cfg.jitter, size=seq.shape) * src.fer_col_std
    head = np.array([rng.uniform(*cfg.pose_tx), rng.uniform(*cfg.pose_ty), rng.uniform(*cfg.pose_tz)])
    seq[:, TRANSLATION_COLS] = head + steps[:, TRANSLATION_COLS]
    if rng.random() < cfg.p_real_face_geometry:
        # blendshapes + pose of the real talking head, expression of the FER face: real video and
        # the still faces differ in their geometry columns, and without this the models learnt
        # "real-video geometry = uninformative" and ignored the expression of real faces
        seq[:, :EXPRESSION_COLS.start] = g[(start + np.arange(n_frames)) % len(g), :EXPRESSION_COLS.start]
    seq[:, :N_BLENDSHAPES] = np.clip(seq[:, :N_BLENDSHAPES], 0.0, 1.0)
    if seq.shape[1] > EXPRESSION_COLS.start:  # class probabilities stay probabilities
        expr = np.clip(seq[:, EXPRESSION_COLS], 0.0, None)
        seq[:, EXPRESSION_COLS] = expr / np.maximum(expr.sum(1, keepdims=True), 1e-6)
    return seq.astype(np.float32), np.ones(n_frames, dtype=bool)


def materialise(src: Sources, sample: dict[str, Any], cfg: ComposeConfig):
    from core.types import SegmentFeatures

    text, ids = src.text(sample["text"]["source"], sample["text"]["index"])
    a = sample["audio"]
    if a["source"] == "none":
        audio, a_mask, duration = np.zeros((1, src.dims["audio"]), np.float32), np.zeros(1, bool), 3.0
    else:
        audio, a_mask, duration = src.audio(a["source"], a["index"])
    v = sample["visual"]
    if v["source"] == "none":
        visual, v_mask = np.zeros((1, src.dims["visual"]), np.float32), np.zeros(1, bool)
    else:
        n = int(np.clip(round(duration * cfg.visual_rate_hz), cfg.min_frames, 80))
        visual, v_mask = face_sequence(src, v, n, sample["split"], cfg)
    return SegmentFeatures(text=np.asarray(text, np.float32), text_ids=np.asarray(ids, np.int64),
                           audio=np.asarray(audio, np.float32), audio_mask=np.asarray(a_mask, bool),
                           visual=np.asarray(visual, np.float32), visual_mask=np.asarray(v_mask, bool))


# ----------------------------------------------------------------------------- corpus files


def manifest_hash(samples: list[dict[str, Any]]) -> str:
    blob = json.dumps(samples, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _counts(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


def corpus_stats(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples), "anchors": _counts([s["anchor"] for s in samples])}
    for m in ("audio", "visual"):
        out[m] = {"roles": _counts([s[m]["role"] for s in samples]), "sources": _counts([s[m]["source"] for s in samples])}
    out["text_sources"] = _counts([s["text"]["source"] for s in samples])
    out["evidence"] = {k: int(sum(1 for s in samples if s["evidence"] & bit)) for k, bit in EVIDENCE.items()}
    out["no_evidence"] = int(sum(1 for s in samples if not s["evidence"]))
    labels = np.array([s["label"] for s in samples]) if samples else np.zeros(1)
    out["labels"] = {"mean": float(labels.mean()), "share_positive": float((labels > 0).mean()),
                     "share_negative": float((labels < 0).mean()), "share_zero": float((labels == 0).mean())}
    return out


def compose(work: Path, cfg: ComposeConfig | None = None, force: bool = False) -> dict[str, Any]:
    cfg = cfg or ComposeConfig()
    out_dir = work / "corpus"
    info_path = out_dir / "corpus.json"
    if info_path.exists() and not force:
        info = read_json(info_path)
        if info.get("config") == _jsonable(asdict(cfg)) and info.get("version") == CORPUS_VERSION:
            log(f"compose: cached ({info['version']}, sha256 {info['sha256'][:12]})")
            return info
    watch = Stopwatch()
    src = Sources(work, cfg)
    samples = [s for split in SPLITS for s in plan_split(src, split, cfg)]
    from core.atomic_write import atomic_write_text

    atomic_write_text(out_dir / "manifest.jsonl", "".join(json.dumps(s, sort_keys=True) + "\n" for s in samples),
                      make_parents=True)
    info = {
        "version": CORPUS_VERSION, "seed": BASE_SEED, "config": _jsonable(asdict(cfg)), "sha256": manifest_hash(samples),
        "text_choice": src.text_choice, "emotion_label": EMOTION_LABEL, "strong_factor": STRONG_FACTOR,
        **{split: corpus_stats([s for s in samples if s["split"] == split]) for split in SPLITS},
        "seconds": watch.seconds,
    }
    write_json(info_path, info)
    sizes = ", ".join(f"{info[split]['n']} {split}" for split in SPLITS)
    log(f"compose: {sizes} samples, sha256 {info['sha256'][:12]}")
    return info


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d))


def load_manifest(work: Path) -> list[dict[str, Any]]:
    lines = (work / "corpus" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_split(work: Path, split: str, cfg: ComposeConfig | None = None, limit: int | None = None,
               anchors: tuple[str, ...] | None = None):
    """The composed samples of one split as a models.data.InMemoryDataset (with evidence flags)."""
    from core.feature_spec import default_spec
    from models.data import InMemoryDataset

    cfg = cfg or ComposeConfig(**_config_from_info(work))
    src = Sources(work, cfg)
    samples = [s for s in load_manifest(work) if s["split"] == split and (anchors is None or s["anchor"] in anchors)]
    if limit:
        samples = samples[:limit]
    items = [materialise(src, s, cfg) for s in samples]
    return InMemoryDataset(default_spec(), items, [s["label"] for s in samples], [s["id"] for s in samples],
                           evidence=[s["evidence"] for s in samples])


def _config_from_info(work: Path) -> dict[str, Any]:
    d = read_json(work / "corpus" / "corpus.json")["config"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    info = compose(Path(a.work).resolve(), force=a.force)
    print(json.dumps({k: info[k] for k in ("version", "sha256", *SPLITS)}, indent=2))


if __name__ == "__main__":
    main()
