"""Stage 3: the composed multimodal corpus (documented, seeded, versioned).

No multimodal sentiment corpus is available offline, so each sample pairs a real MOSI transcript
(label = its human sentiment label) with a real RAVDESS speech clip and a real FER2013 face whose
emotion valence *agrees* with the label's sign and strength, plus a stated share of neutral or
uninformative modalities. All features are real outputs of the pipeline's extractors; nothing is
synthesised except the temporal layout of the face sequence (see below).

Rules (per sample, all random draws from ``np.random.default_rng([BASE_SEED, split, replica, i])``):

* text: the MOSI transcript's MiniLM features; label = the MOSI label. Train samples come from
  MOSI train (cfg.replicas_train pairings each), dev samples from MOSI dev (one pairing each). Optional
  text-only extras (SST / MELD, chosen on MOSI dev by unimodal.text_probe) are added to train only,
  with absent or uninformative audio/visual.
* audio / visual, each independently:
  - with cfg.p_uninformative: an *uninformative* input regardless of the label: a RAVDESS "neutral"
    clip / FER "neutral" face, or (share cfg.p_grid_in_uninformative) a GRID talking-head clip
    (neutral read speech, real video);
  - with p_no_video (visual) / p_no_audio (audio): the modality is absent (one zero row, mask
    False), as the pipeline gives for audio-only files or video without sound; LNLN's per-step
    dropping alone almost never removes a whole modality, but the app's Shapley coalitions and
    audio-only inputs do;
  - otherwise label-driven: |label| < cfg.neutral_band -> a neutral clip/face; else a clip/face of the
    label's valence sign (RAVDESS: calm/happy vs sad/angry/fearful/disgust, surprised unused;
    FER: happy vs angry/disgust/fear/sad). Within the sign pool, items are sorted by the
    out-of-fold probe score (unimodal.py) and the item is drawn around the quantile
    q = (|label| - cfg.neutral_band) / (3 - cfg.neutral_band) with spread cfg.strength_spread, so strong labels
    get clearly expressive clips and weak labels ambiguous ones.
* splits are disjoint in every source: RAVDESS actors 01-16 / 17-20, FER images by a seeded 80/20
  split, GRID clips 7 / 3, MOSI train / dev.
* audio trimming: each clip keeps the frames from the first to the last one within 35 dB of its
  loudest frame, plus 3 frames (0.12 s) each side: RAVDESS clips begin and end with noise-gated
  digital silence, while pipeline segments are cut around speech.
* audio gain: RAVDESS is recorded quietly (peaks near -25 dBFS) while user recordings are louder, so
  each audio input gets a random gain G ~ U(cfg.gain_db). Applied in feature space, which is exact for
  librosa-v1 except at digital-silence floor frames and voicing-threshold frames: mfcc_0 +=
  G * sqrt(n_mels) (orthonormal DCT of a constant dB shift) and log_rms_db += G; every other
  column is scale-invariant (prepare_audio.gain_check measures the error against re-extraction).
* face sequence: one FER face (a still) becomes T = round(trimmed audio duration x 10 Hz) frames
  (10..80). FER crops are static and framed identically, so to avoid a "static face = informative,
  moving face = GRID" shortcut, each frame adds the *temporal deviation from its mean* of a real
  GRID talking-head sequence (blendshapes and rotation; mouth movement of speech), plus Gaussian
  jitter (cfg.jitter x column std). The head translation columns (tx, ty, tz) of FER crops only
  reflect the crop framing, so they are replaced by a per-sequence random head position
  (cfg.pose_tx / pose_ty / pose_tz ranges) plus the GRID deviation.

Known limit (stated in every card): the pairing is by label only, so there is no real cross-modal
interplay (no sarcasm, no timing between words and expressions); models trained here learn
"each modality carries some evidence", not how people actually combine channels.
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
    BASE_SEED, CORPUS_VERSION, DEV_ACTORS, EMOTION_VALENCE, RAVDESS_EMOTIONS, Stopwatch, load_npz, log,
    read_json, unpack_ragged, write_json,
)

SPLIT_CODE = {"train": 1, "dev": 2}
GRID_DEV = ("pwij3p", "sbia1a", "swiz3n")  # 3 of the 10 GRID clips form the dev side
MFCC0_COL, LOG_RMS_COL, N_MELS = 0, 62, 40
AUDIO_RATE_HZ = 25.0
N_BLENDSHAPES = 52
TRANSLATION_COLS = slice(55, 58)


@dataclass(frozen=True)
class ComposeConfig:
    replicas_train: int = 2
    p_uninformative: float = 0.2
    p_grid_in_uninformative: float = 0.3
    p_no_video: float = 0.15
    p_no_audio: float = 0.1
    neutral_band: float = 0.5
    strength_spread: float = 0.15
    gain_db: tuple[float, float] = (-6.0, 20.0)
    trim_margin_db: float = 35.0
    trim_pad_frames: int = 3
    visual_rate_hz: float = 10.0
    min_frames: int = 10
    jitter: float = 0.05
    pose_tx: tuple[float, float] = (-0.3, 0.3)
    pose_ty: tuple[float, float] = (-0.4, 0.2)
    pose_tz: tuple[float, float] = (-0.8, -0.2)
    extra_text_cap: int = 1500  # text-only SST/MELD samples added to train (when chosen on dev)
    p_extra_no_audio: float = 0.5


# ----------------------------------------------------------------------------- sources


class Sources:
    """Every unimodal feature cache the corpus draws from, plus the probe scores."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.mosi = load_npz(work / "text" / "mosi.npz")
        self.extras = {n: load_npz(work / "text" / f"{n}.npz") for n in ("sst", "meld") if (work / "text" / f"{n}.npz").exists()}
        self.rav = load_npz(work / "audio" / "ravdess.npz")
        self.grid_a = load_npz(work / "audio" / "grid.npz")
        self.fer = load_npz(work / "visual" / "fer.npz")
        self.grid_v = load_npz(work / "visual" / "grid.npz")
        self.a_scores = load_npz(work / "unimodal" / "audio_scores.npz")
        self.v_scores = load_npz(work / "unimodal" / "visual_scores.npz")
        self.text_choice = read_json(work / "unimodal" / "text_choice.json")
        self.fer_classes = [str(c) for c in self.fer["classes"]]
        self._fer_found = self.v_scores["found_index"]  # positions in fer.npz of found faces
        fer_feats = self.fer["feats"][self._fer_found]
        self.fer_col_std = fer_feats.std(0) + 1e-6

    # ---- pools

    def audio_pools(self, split: str) -> dict[str, np.ndarray]:
        actors = self.rav["actor"].astype(int)
        in_split = np.isin(actors, DEV_ACTORS) if split == "dev" else ~np.isin(actors, DEV_ACTORS)
        emo = np.array([RAVDESS_EMOTIONS[int(e)] for e in self.rav["emotion"]])
        val = np.array([EMOTION_VALENCE[e] if EMOTION_VALENCE[e] is not None else 99 for e in emo])
        score = self.a_scores["valence_score"]
        pools = {"neutral": np.flatnonzero(in_split & (val == 0))}
        for name, s in (("positive", 1), ("negative", -1)):
            idx = np.flatnonzero(in_split & (val == s))
            pools[name] = idx[np.argsort(s * score[idx], kind="stable")]  # ascending strength
        return pools

    def visual_pools(self, split: str) -> dict[str, np.ndarray]:
        """Indices into the *found* faces (visual_scores order)."""
        dev = self.v_scores["dev"].astype(bool)
        in_split = dev if split == "dev" else ~dev
        val = self.v_scores["valence"]
        score = self.v_scores["valence_score"]
        pools = {"neutral": np.flatnonzero(in_split & (val == 0))}
        for name, s in (("positive", 1), ("negative", -1)):
            idx = np.flatnonzero(in_split & (val == s))
            pools[name] = idx[np.argsort(s * score[idx], kind="stable")]
        return pools

    def grid_indices(self, split: str) -> np.ndarray:
        names = [str(n) for n in self.grid_a["name"]]
        return np.array([i for i, n in enumerate(names) if (n in GRID_DEV) == (split == "dev")])

    # ---- features

    def text(self, source: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        src = self.mosi if source == "mosi" else self.extras[source]
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


# ----------------------------------------------------------------------------- sampling


def _pick_by_strength(pool: np.ndarray, label: float, cfg: ComposeConfig, rng: np.random.Generator) -> int:
    q = float(np.clip((abs(label) - cfg.neutral_band) / (3.0 - cfg.neutral_band), 0.0, 1.0))
    n = len(pool)
    pos = q * (n - 1) + rng.normal(0.0, cfg.strength_spread * n)
    return int(pool[int(np.clip(round(pos), 0, n - 1))])


def _modality_plan(kind: str, label: float | None, pools: dict[str, np.ndarray], grid: np.ndarray,
                   cfg: ComposeConfig, rng: np.random.Generator, force_uninformative: bool = False) -> dict[str, Any]:
    """Which source item a modality uses and why ("role")."""
    if force_uninformative or rng.random() < cfg.p_uninformative or label is None:
        if rng.random() < cfg.p_grid_in_uninformative:
            return {"source": "grid", "index": int(rng.choice(grid)), "role": "uninformative"}
        return {"source": kind, "index": int(rng.choice(pools["neutral"])), "role": "uninformative"}
    if abs(label) < cfg.neutral_band:
        return {"source": kind, "index": int(rng.choice(pools["neutral"])), "role": "neutral-label"}
    pool = pools["positive" if label > 0 else "negative"]
    return {"source": kind, "index": _pick_by_strength(pool, label, cfg, rng), "role": "label"}


def plan_split(src: Sources, split: str, cfg: ComposeConfig) -> list[dict[str, Any]]:
    mosi_idx = np.flatnonzero(src.mosi["split"] == split)
    a_pools, v_pools, grid = src.audio_pools(split), src.visual_pools(split), src.grid_indices(split)
    replicas = cfg.replicas_train if split == "train" else 1
    samples = []
    for r in range(replicas):
        for i in mosi_idx:
            rng = np.random.default_rng([BASE_SEED, SPLIT_CODE[split], r, int(i)])
            label = float(src.mosi["label"][i])
            if rng.random() < cfg.p_no_audio:
                audio = {"source": "none", "index": -1, "role": "absent"}
            else:
                audio = _modality_plan("ravdess", label, a_pools, grid, cfg, rng)
            audio["gain_db"] = float(rng.uniform(*cfg.gain_db))
            if rng.random() < cfg.p_no_video:
                visual = {"source": "none", "index": -1, "role": "absent"}
            else:
                visual = _modality_plan("fer", label, v_pools, grid, cfg, rng)
            visual["seed"] = int(rng.integers(2**31))
            samples.append({"id": f"{split}/{r}/{src.mosi['id'][i]}", "split": split, "label": label,
                            "text": {"source": "mosi", "index": int(i)}, "audio": audio, "visual": visual})
    if split == "train":
        samples += _plan_extras(src, cfg, a_pools, v_pools, grid)
    return samples


def _plan_extras(src: Sources, cfg: ComposeConfig, a_pools, v_pools, grid) -> list[dict[str, Any]]:
    chosen = [n for n in src.text_choice.get("extra", []) if n in src.extras]
    if not chosen or cfg.extra_text_cap <= 0:
        return []
    per = cfg.extra_text_cap // len(chosen)
    out = []
    for k, name in enumerate(chosen):
        labels = src.extras[name]["label"]
        rng0 = np.random.default_rng([BASE_SEED, 9, k])
        idx = np.sort(rng0.choice(len(labels), size=min(per, len(labels)), replace=False))
        for i in idx:
            rng = np.random.default_rng([BASE_SEED, 10 + k, int(i)])
            if rng.random() < cfg.p_extra_no_audio:
                audio = {"source": "none", "index": -1, "role": "absent"}
            else:
                audio = _modality_plan("ravdess", None, a_pools, grid, cfg, rng, force_uninformative=True)
            audio["gain_db"] = float(rng.uniform(*cfg.gain_db))
            if rng.random() < 0.5:
                visual = {"source": "none", "index": -1, "role": "absent"}
            else:
                visual = _modality_plan("fer", None, v_pools, grid, cfg, rng, force_uninformative=True)
            visual["seed"] = int(rng.integers(2**31))
            out.append({"id": f"train/{name}/{int(i)}", "split": "train", "label": float(labels[i]),
                        "text": {"source": name, "index": int(i)}, "audio": audio, "visual": visual})
    return out


# ----------------------------------------------------------------------------- materialising


def apply_gain(feats: np.ndarray, mask: np.ndarray, gain_db: float) -> np.ndarray:
    """librosa-v1 rows as if the wave had been scaled by gain_db (see module docstring)."""
    out = feats.copy()
    live = mask & (feats[:, LOG_RMS_COL] > -99.0)  # floor frames (digital silence) stay at the floor
    out[live, MFCC0_COL] += gain_db * np.sqrt(N_MELS)
    out[live, LOG_RMS_COL] = np.minimum(out[live, LOG_RMS_COL] + gain_db, 0.0)
    return out


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
    seq[:, :N_BLENDSHAPES] = np.clip(seq[:, :N_BLENDSHAPES], 0.0, 1.0)
    return seq.astype(np.float32), np.ones(n_frames, dtype=bool)


def trim_silence(feats: np.ndarray, mask: np.ndarray, margin_db: float, pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep the rows from the first to the last frame within `margin_db` of the loudest, plus `pad`
    rows each side. RAVDESS clips start and end with noise-gated digital silence (-100 dB) that
    never occurs inside a pipeline segment (segments are cut around speech by VAD/ASR)."""
    level = np.where(mask, feats[:, LOG_RMS_COL], -np.inf)
    if not np.isfinite(level).any():
        return feats, mask
    loud = np.flatnonzero(level >= level.max() - margin_db)
    lo, hi = max(0, loud[0] - pad), min(len(feats), loud[-1] + 1 + pad)
    return feats[lo:hi], mask[lo:hi]


def materialise(src: Sources, sample: dict[str, Any], cfg: ComposeConfig):
    from core.types import SegmentFeatures

    text, ids = src.text(sample["text"]["source"], sample["text"]["index"])
    a = sample["audio"]
    if a["source"] == "none":
        audio, a_mask, duration = np.zeros((1, 69), np.float32), np.zeros(1, bool), 3.0
    else:
        feats, a_mask, _ = src.audio(a["source"], a["index"])
        feats, a_mask = trim_silence(feats, a_mask, cfg.trim_margin_db, cfg.trim_pad_frames)
        duration = len(feats) / AUDIO_RATE_HZ
        audio = apply_gain(feats, a_mask, a["gain_db"])
    v = sample["visual"]
    if v["source"] == "none":
        visual, v_mask = np.zeros((1, 58), np.float32), np.zeros(1, bool)
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


def corpus_stats(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples)}
    for m in ("audio", "visual"):
        roles: dict[str, int] = {}
        sources: dict[str, int] = {}
        for s in samples:
            roles[s[m]["role"]] = roles.get(s[m]["role"], 0) + 1
            sources[s[m]["source"]] = sources.get(s[m]["source"], 0) + 1
        out[m] = {"roles": roles, "sources": sources,
                  "share_label_driven": roles.get("label", 0) / max(1, len(samples))}
    texts: dict[str, int] = {}
    for s in samples:
        texts[s["text"]["source"]] = texts.get(s["text"]["source"], 0) + 1
    out["text_sources"] = texts
    labels = np.array([s["label"] for s in samples])
    out["labels"] = {"mean": float(labels.mean()), "share_positive": float((labels > 0).mean()),
                     "share_negative": float((labels < 0).mean()), "share_zero": float((labels == 0).mean())}
    return out


def compose(work: Path, cfg: ComposeConfig | None = None, force: bool = False) -> dict[str, Any]:
    cfg = cfg or ComposeConfig()
    out_dir = work / "corpus"
    info_path = out_dir / "corpus.json"
    if info_path.exists() and not force:
        info = read_json(info_path)
        if info.get("config") == _jsonable(asdict(cfg)):
            log(f"compose: cached ({info['version']}, sha256 {info['sha256'][:12]})")
            return info
    watch = Stopwatch()
    src = Sources(work)
    samples = plan_split(src, "train", cfg) + plan_split(src, "dev", cfg)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "manifest.jsonl").write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in samples), encoding="utf-8")
    info = {
        "version": CORPUS_VERSION, "seed": BASE_SEED, "config": _jsonable(asdict(cfg)), "sha256": manifest_hash(samples),
        "text_choice": src.text_choice,
        "train": corpus_stats([s for s in samples if s["split"] == "train"]),
        "dev": corpus_stats([s for s in samples if s["split"] == "dev"]),
        "seconds": watch.seconds,
    }
    write_json(info_path, info)
    log(f"compose: {info['train']['n']} train / {info['dev']['n']} dev samples, sha256 {info['sha256'][:12]}")
    return info


def _jsonable(d: Any) -> Any:
    return json.loads(json.dumps(d))


def load_manifest(work: Path) -> list[dict[str, Any]]:
    lines = (work / "corpus" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def load_split(work: Path, split: str, cfg: ComposeConfig | None = None, limit: int | None = None):
    """The composed samples of one split as a models.data.InMemoryDataset (features built on the fly)."""
    from core.feature_spec import default_spec
    from models.data import InMemoryDataset

    cfg = cfg or ComposeConfig(**_config_from_info(work))
    src = Sources(work)
    samples = [s for s in load_manifest(work) if s["split"] == split]
    if limit:
        samples = samples[:limit]
    items = [materialise(src, s, cfg) for s in samples]
    return InMemoryDataset(default_spec(), items, [s["label"] for s in samples], [s["id"] for s in samples])


def _config_from_info(work: Path) -> dict[str, Any]:
    d = read_json(work / "corpus" / "corpus.json")["config"]
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", required=True)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    info = compose(Path(a.work).resolve(), force=a.force)
    print(json.dumps({k: info[k] for k in ("version", "sha256", "train", "dev")}, indent=2))


if __name__ == "__main__":
    main()
