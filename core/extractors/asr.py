"""Speech recognition with Whisper tiny.en through faster-whisper (CTranslate2, int8 on CPU).

The model loads lazily on first use, so registering/constructing is free. `transcribe` takes a
16 kHz float32 array (no temp files) and works on any length, including the few-second windows of
live mode; `offset` shifts the returned times onto the caller's timeline.

Decoding defaults, chosen by measurement (10 GRID clips + espeak sentences):
* beam 1 (greedy, as openai-whisper's `transcribe`): word accuracy equal to beam 5 on the 10 GRID
  clips (0.883 both) and on 60 RAVDESS clips (0.956 vs 0.958, `benchmarks/asr_vad.py --sweep`
  and a RAVDESS run), one word fewer on the espeak sentences. Beam 5 cost up to 4x the time on
  repetitive speech: its temperature-0 result failed the compression-ratio check more often and
  fell back to sampling (looped GRID clip: 3.8 s vs 0.96 s for 10 s of audio). Pass
  beam_size=5 for the last bit of accuracy.
* temperature 0 first, Whisper's fallback ladder only when a segment looks degenerate.
* vad_filter=True: faster-whisper's bundled Silero VAD drops non-speech before decoding. Without
  it a 4 s tone took ~39 s (every temperature retried) and near-silence produced "." segments;
  with it both return [] at once, and GRID accuracy went 0.867 -> 0.883.
* initial_prompt / hotwords: off by default. A generic prompt ("Commands with colours, letters
  and digits.") lowered GRID accuracy (0.833); a prompt listing in-domain sentences raised it to
  0.95, so they are exposed for users with a known vocabulary.
"""
from __future__ import annotations

import os
import re
import threading
from typing import Any, Sequence

import numpy as np

from core.assets import resolve_asset
from core.errors import MSAError
from core.extractors import register_extractor
from core.progress import RunContext
from core.types import Segment, Word

SAMPLE_RATE = 16000
# Whisper's own fallback: retry a segment at higher temperature only when the greedy/beam result
# is repetitive (compression ratio) or unlikely (log-prob); 0.0 first keeps output deterministic.
_TEMPERATURE_FALLBACK = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


@register_extractor("whisper-tiny.en")
class WhisperASR:
    name = "whisper-tiny.en"

    def __init__(self, model_path: str | None = None, device: str = "cpu",
                 compute_type: str = "int8", beam_size: int = 1,
                 temperature: float | Sequence[float] = _TEMPERATURE_FALLBACK,
                 vad_filter: bool = True, initial_prompt: str | None = None,
                 hotwords: str | None = None, condition_on_previous_text: bool = False,
                 cpu_threads: int | None = None, language: str = "en") -> None:
        self.model_path = model_path
        self.device = device
        self.compute_type = compute_type
        self.beam_size = int(beam_size)
        self.temperature = temperature
        self.vad_filter = vad_filter
        self.initial_prompt = initial_prompt
        self.hotwords = hotwords
        # Off by default: carrying text over segment boundaries lets one hallucination spread
        # into the following segments of long recordings.
        self.condition_on_previous_text = condition_on_previous_text
        self.cpu_threads = cpu_threads if cpu_threads is not None else min(4, os.cpu_count() or 1)
        self.language = language
        self._model: Any = None
        self._lock = threading.Lock()  # the live worker and a batch job may share one instance

    # ---------------------------------------------------------------------------------- model

    @property
    def model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise MSAError("speech recognition needs `pip install faster-whisper`") from None
        path = resolve_asset("whisper-tiny.en", self.model_path)
        local = os.path.exists(path)
        try:
            return WhisperModel(str(path), device=self.device, compute_type=self.compute_type,
                                cpu_threads=self.cpu_threads, local_files_only=local)
        except (RuntimeError, ValueError, OSError) as exc:
            msg = " ".join(str(exc).split())
            raise MSAError(f"cannot load Whisper model from {path}: {msg}") from None

    # ----------------------------------------------------------------------------- transcribe

    def transcribe(self, wave16k: np.ndarray, ctx: RunContext | None = None,
                   offset: float = 0.0) -> list[Segment]:
        """Segments with word timestamps, times in seconds + `offset`. Empty/silent input -> []."""
        wave = np.asarray(wave16k, dtype=np.float32).reshape(-1)
        total = len(wave) / SAMPLE_RATE
        if total < 0.1 or not np.any(wave):
            return []
        if ctx is not None:
            ctx.report("asr", 0.0, "transcribing")
        segments_iter, _info = self.model.transcribe(
            wave,
            language=self.language,
            beam_size=self.beam_size,
            temperature=self.temperature,
            vad_filter=self.vad_filter,
            initial_prompt=self.initial_prompt,
            hotwords=self.hotwords,
            condition_on_previous_text=self.condition_on_previous_text,
            word_timestamps=True,
        )
        out: list[Segment] = []
        for seg in segments_iter:  # decoding happens while iterating
            converted = _convert(seg, offset, total)
            if converted is not None:
                out.append(converted)
            if ctx is not None:
                ctx.report("asr", min(1.0, seg.end / total), converted.text if converted else "")
        if ctx is not None:
            ctx.report("asr", 1.0, f"{len(out)} segments")
        return out

    def __call__(self, wave16k: np.ndarray, ctx: RunContext | None = None,
                 offset: float = 0.0) -> list[Segment]:
        return self.transcribe(wave16k, ctx=ctx, offset=offset)


def _convert(seg: Any, offset: float, total: float) -> Segment | None:
    words = [
        Word(text=w.word.strip(), start=offset + _clip(w.start, total),
             end=offset + _clip(w.end, total), probability=float(w.probability))
        for w in (seg.words or []) if w.word.strip()
    ]
    text = seg.text.strip()
    if not text and not words:
        return None
    start = offset + _clip(seg.start, total)
    end = offset + _clip(seg.end, total)
    if words:  # word times are tighter than Whisper's 20 ms segment grid
        start, end = min(start, words[0].start), max(end, words[-1].end)
    return Segment(start=start, end=end, text=text, words=words, source="asr")


def _clip(t: float, total: float) -> float:
    return float(min(max(t, 0.0), total))


# ------------------------------------------------------------------------ scoring (eval, tests)

_NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
                 "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}


def normalize_words(text: str) -> list[str]:
    """Lower-case, drop punctuation, split letter/digit runs ('F2' -> 'f two'), spell digits."""
    text = re.sub(r"[^a-z0-9' ]+", " ", text.lower())
    tokens: list[str] = []
    for tok in text.split():
        for part in re.findall(r"[a-z']+|\d", tok):
            part = part.strip("'")
            if part:
                tokens.append(_NUMBER_WORDS.get(part, part))
    return tokens


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, on `normalize_words`."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def word_accuracy(reference: str, hypothesis: str) -> float:
    """1 - WER, floored at 0 (insertions can push WER above 1)."""
    return max(0.0, 1.0 - word_error_rate(reference, hypothesis))
