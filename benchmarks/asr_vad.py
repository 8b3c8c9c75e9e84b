"""ASR word accuracy and ASR/VAD real-time factors.

    .venv/bin/python benchmarks/asr_vad.py                 # default decoding options
    .venv/bin/python benchmarks/asr_vad.py --sweep         # compare decoding options

Accuracy: the 10 GRID clips (reference sentence from the file name, e.g. bbaf2n = "bin blue at f
two now") and espeak-ng sentences with known text. Word accuracy = 1 - WER after normalisation
(lower case, no punctuation, "F2" -> "f two"). RTF = processing seconds / audio seconds, as wall
time and as process CPU time (the CPU figure is steadier on a shared machine; with several
threads it can exceed wall time).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from core.extractors.asr import WhisperASR, word_accuracy  # noqa: E402
from core.media import load_audio  # noqa: E402
from core.segmentation import speech_regions  # noqa: E402
from tests.media_factory import grid_clips, grid_sentence, speech_wave  # noqa: E402

SENTENCES = [
    "I love this wonderful movie",
    "The acting was terrible and the plot made no sense at all",
    "Honestly it was fine but a little too long",
    "What a beautiful and moving story",
    "I would not recommend this film to anyone",
    "The music was great and the actors did a good job",
]

SWEEP = [
    {"beam_size": 1, "vad_filter": False},
    {"beam_size": 5, "vad_filter": False},
    {"beam_size": 5, "vad_filter": False, "temperature": 0.0},
    {"beam_size": 1, "vad_filter": True},
    {"beam_size": 5, "vad_filter": True},
    {"beam_size": 5, "vad_filter": True, "condition_on_previous_text": True},
    {"beam_size": 5, "vad_filter": True,
     "initial_prompt": "Commands with colours, letters and digits."},
    {"beam_size": 5, "vad_filter": True,
     "initial_prompt": "Bin blue at F two now. Set white in Z three soon. Lay red with P nine "
                       "again. Place green by A one please."},
]


def timed(fn, *args):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w0, time.process_time() - c0


def corpus() -> list[tuple[str, np.ndarray]]:
    items = [(grid_sentence(c.stem), load_audio(c)) for c in grid_clips()]
    gap = np.zeros(8000, np.float32)
    items += [(s, np.concatenate([gap, speech_wave(s), gap])) for s in SENTENCES]
    return items


def evaluate(options: dict, items: list[tuple[str, np.ndarray]], n_grid: int) -> dict:
    asr = WhisperASR(**options)
    asr.model  # load before timing
    accs, wall, cpu, secs = [], 0.0, 0.0, 0.0
    for ref, wave in items:
        segs, w, c = timed(asr.transcribe, wave)
        accs.append(word_accuracy(ref, " ".join(s.text for s in segs)))
        wall, cpu, secs = wall + w, cpu + c, secs + len(wave) / 16000
    return {"options": options, "grid_acc": round(float(np.mean(accs[:n_grid])), 3),
            "espeak_acc": round(float(np.mean(accs[n_grid:])), 3),
            "rtf_wall": round(wall / secs, 3), "rtf_cpu": round(cpu / secs, 3)}


def long_clip(items: list[tuple[str, np.ndarray]], seconds: float = 60.0) -> np.ndarray:
    wave = np.concatenate([w for _, w in items])
    reps = int(np.ceil(seconds * 16000 / len(wave)))
    return np.tile(wave, reps)[: int(seconds * 16000)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", action="store_true", help="compare decoding options")
    args = ap.parse_args()
    items = corpus()
    n_grid = len(grid_clips())
    print(f"{n_grid} GRID clips + {len(SENTENCES)} espeak sentences; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for options in (SWEEP if args.sweep else [{}]):
        print(json.dumps(evaluate(options, items, n_grid)))

    wave = long_clip(items)
    asr = WhisperASR()
    asr.model
    _, w, c = timed(asr.transcribe, wave)
    print(json.dumps({"asr_60s_default": {"rtf_wall": round(w / 60, 3), "rtf_cpu": round(c / 60, 3)}}))
    speech_regions(wave[:16000])  # load VAD
    regions, w, c = timed(speech_regions, wave)
    print(json.dumps({"vad_60s": {"regions": len(regions), "rtf_wall": round(w / 60, 4),
                                  "rtf_cpu": round(c / 60, 4)}}))


if __name__ == "__main__":
    main()
