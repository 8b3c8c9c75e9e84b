"""Cutting a recording into utterances (the unit that gets one sentiment score).

* `speech_regions`   — Silero VAD on 16 kHz audio -> [(start, end)] seconds.
* `segment_utterances` — turn ASR segments (or VAD regions, or fixed windows) into utterances of
  roughly min_len..max_len seconds, splitting at word gaps and merging short fragments.
* `align_transcript` — give an untimed (plain-text) user transcript times from ASR words or VAD.
* `fixed_windows`    — sliding windows for live mode and for files without speech.

VAD model: the batched "sequence" ONNX export that ships in the `silero_vad` wheel, run with
onnxruntime (offline, no torch at inference). It evaluates ~16 s of audio per ONNX call instead of
one Python call per 32 ms frame, bit-exact with the streaming model. If that file is missing
(older silero-vad) we fall back to `load_silero_vad(onnx=True)`, then to the TorchScript model.
"""
from __future__ import annotations

import difflib
import functools
import math
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from core.assets import resolve_asset
from core.errors import MSAError
from core.transcripts import is_untimed
from core.types import Segment, Word

VAD_SAMPLE_RATE = 16000
_SENTENCE_END = (".", "?", "!", ";", ":")
#: Speech not covered by any text segment becomes a segment of its own from this length (seconds).
MIN_UNCOVERED_SPEECH_S = 0.3
_CLAUSE_END = (",",)


# ------------------------------------------------------------------------------------------ VAD


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5  # speech probability above which a 32 ms frame is speech
    min_speech_s: float = 0.25  # shorter bursts (clicks, coughs) are dropped
    min_silence_s: float = 0.3  # pauses shorter than this do not split a region
    pad_s: float = 0.05  # regions grow by this on both sides (word onsets are soft)


_vad_lock = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load_vad(path: str) -> Callable[[np.ndarray, VadOptions], list[dict[str, float]]]:
    """Returns fn(wave16k, options) -> [{'start': s, 'end': s}] using the model at `path`."""
    import torch  # silero_vad imports torch and sets its thread count to 1 as a side effect

    threads = torch.get_num_threads()
    try:
        from silero_vad.utils_vad import get_speech_timestamps
    except ImportError:
        raise MSAError("voice activity detection needs `pip install silero-vad`") from None
    finally:
        torch.set_num_threads(threads)

    def kwargs(o: VadOptions) -> dict[str, Any]:
        return dict(threshold=o.threshold, sampling_rate=VAD_SAMPLE_RATE,
                    min_speech_duration_ms=int(o.min_speech_s * 1000),
                    min_silence_duration_ms=int(o.min_silence_s * 1000),
                    speech_pad_ms=int(o.pad_s * 1000), return_seconds=True, time_resolution=3)

    if "sequence" in path and path.endswith(".onnx"):
        from silero_vad.sequence_vad import SileroVADSequence, get_speech_timestamps_sequence
        model = SileroVADSequence(path, sampling_rate=VAD_SAMPLE_RATE)
        return lambda wave, o: get_speech_timestamps_sequence(wave, model, **kwargs(o))

    if path.endswith(".onnx"):
        from silero_vad.utils_vad import OnnxWrapper
        model = OnnxWrapper(path, force_onnx_cpu=True)
    else:
        from silero_vad.utils_vad import init_jit_model
        model = init_jit_model(path)

    def run(wave: np.ndarray, o: VadOptions) -> list[dict[str, float]]:
        # The streaming models keep LSTM state inside the object: one caller at a time.
        with _vad_lock:
            with torch.no_grad():
                return get_speech_timestamps(torch.from_numpy(wave), model, **kwargs(o))

    return run


def speech_regions(wave16k: np.ndarray, sr: int = VAD_SAMPLE_RATE,
                   options: VadOptions | None = None,
                   model_path: str | None = None) -> list[tuple[float, float]]:
    """Speech intervals in seconds, sorted and non-overlapping. Silence/empty input -> []."""
    if sr != VAD_SAMPLE_RATE:
        raise ValueError(f"speech_regions expects {VAD_SAMPLE_RATE} Hz audio, got {sr}")
    wave = np.ascontiguousarray(np.asarray(wave16k, dtype=np.float32).reshape(-1))
    if len(wave) < 512 or not np.any(wave):
        return []
    run = _load_vad(resolve_asset("silero-vad", model_path))
    stamps = run(wave, options or VadOptions())
    total = len(wave) / sr
    out = [(max(0.0, float(s["start"])), min(total, float(s["end"]))) for s in stamps]
    return [(a, b) for a, b in out if b > a]


# ------------------------------------------------------------------------------------ windows


def fixed_windows(duration: float, window: float = 4.0, hop: float = 1.0) -> list[Segment]:
    """Windows [k*hop, k*hop + window] covering [0, duration]; the last one is aligned to end at
    `duration` so the tail is never dropped. A file shorter than `window` gets one window."""
    if window <= 0 or hop <= 0:
        raise ValueError("window and hop must be positive")
    if duration <= 0:
        return []
    if duration <= window:
        return [Segment(0.0, float(duration), source="window")]
    out = []
    n = int(math.floor((duration - window) / hop + 1e-9)) + 1
    for k in range(n):
        start = k * hop
        out.append(Segment(round(start, 6), round(start + window, 6), source="window"))
    if out[-1].end < duration - 1e-6:
        out.append(Segment(round(duration - window, 6), float(duration), source="window"))
    return out


# ------------------------------------------------------------------------------- segmentation


def segment_utterances(asr_segments: Sequence[Segment], duration: float,
                       speech_regions: Sequence[tuple[float, float]] | None = None,
                       min_len: float = 1.0, max_len: float = 8.0,
                       merge_gap: float = 1.5) -> list[Segment]:
    """Utterances of about min_len..max_len seconds.

    * ASR/transcript segments are clipped to [0, duration], split at word boundaries when longer
      than max_len (largest pause first, sentence punctuation breaks ties) and merged with the
      nearer neighbour when shorter than min_len (only across pauses <= merge_gap and if the
      result stays <= max_len; otherwise they are widened to min_len around their centre).
    * Speech that VAD found but no text segment covers (Whisper heard no words, a subtitle file
      skips it) becomes its own segment with empty text (source "vad"), so every speech region is
      scored; stretches shorter than `MIN_UNCOVERED_SPEECH_S` are edge slivers and are ignored.
      Text and text-less segments are never merged into each other.
    * Nothing at all and duration > 0 -> non-overlapping windows of ~4 s (source "window").
    """
    if min_len < 0 or max_len <= 0 or min_len > max_len:
        raise ValueError("need 0 <= min_len <= max_len and max_len > 0")
    if duration <= 0:
        return []
    segs = [s for s in (_clip_segment(s, duration) for s in asr_segments) if s is not None]
    segs = [s for s in segs if s.text.strip() or s.words]
    if speech_regions:
        uncovered = _subtract(speech_regions, [(s.start, s.end) for s in segs])
        vad = [Segment(a, b, source="vad") for a, b in uncovered if b - a >= MIN_UNCOVERED_SPEECH_S]
        segs += [s for s in (_clip_segment(s, duration) for s in vad) if s is not None]
    if not segs:
        window = min(max(4.0, min_len), max_len)
        return fixed_windows(duration, window=window, hop=window)

    segs = _resolve_overlaps(sorted(segs, key=lambda s: (s.start, s.end)))
    split: list[Segment] = []
    for s in segs:
        split.extend(_split_long(s, max_len, min_len))
    merged = _merge_short(split, min_len, max_len, merge_gap)
    return _widen_short(merged, min_len, duration)


def _subtract(regions: Sequence[tuple[float, float]], covered: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of `regions` outside every `covered` interval."""
    cover = sorted((float(a), float(b)) for a, b in covered if b > a)
    out = []
    for a, b in sorted((float(a), float(b)) for a, b in regions if b > a):
        for c, d in cover:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = max(a, d)
            if a >= b:
                break
        if b > a:
            out.append((a, b))
    return out


def _clip_segment(s: Segment, duration: float) -> Segment | None:
    start, end = max(0.0, float(s.start)), min(float(duration), float(s.end))
    if end <= start:
        return None
    words = [replace(w, start=min(max(w.start, start), end), end=min(max(w.end, start), end))
             for w in s.words if w.end > start and w.start < end]
    text = s.text if len(words) == len(s.words) else _join(words)
    return Segment(start, end, text=text, words=words, source=s.source)


def _resolve_overlaps(segs: list[Segment]) -> list[Segment]:
    """Subtitle cues of two speakers often overlap; utterances must not (features are sliced
    per segment). A cue starting inside the previous one starts where that one ends; a cue fully
    inside it is merged into it."""
    out: list[Segment] = []
    for s in segs:
        if out and s.start < out[-1].end:
            if s.end <= out[-1].end:
                out[-1] = _merge_two(out[-1], s)
                continue
            words = [replace(w, start=max(w.start, out[-1].end)) for w in s.words]
            words = [replace(w, end=max(w.end, w.start)) for w in words]
            s = replace(s, start=out[-1].end, words=words)
        out.append(s)
    return out


def _join(words: Sequence[Word]) -> str:
    return " ".join(w.text for w in words if w.text).strip()


def _split_long(s: Segment, max_len: float, min_len: float) -> list[Segment]:
    if s.duration <= max_len:
        return [s]
    if len(s.words) >= 2:
        cut = _best_word_cut(s, max_len, min_len)
        if cut is not None:
            left_words, right_words = s.words[:cut], s.words[cut:]
            mid = (left_words[-1].end + right_words[0].start) / 2
            mid = min(max(mid, left_words[-1].end), right_words[0].start)
            left = Segment(s.start, mid, _join(left_words), list(left_words), s.source)
            right = Segment(mid, s.end, _join(right_words), list(right_words), s.source)
            return _split_long(left, max_len, min_len) + _split_long(right, max_len, min_len)
    return _split_evenly(s, max_len)


def _best_word_cut(s: Segment, max_len: float, min_len: float) -> int | None:
    """Index i to cut before words[i]: biggest pause, + bonus for punctuation, - distance from the
    middle (so recursion converges in few steps). Both sides must be >= min_len if possible."""
    best, best_score = None, -math.inf
    mid_t = (s.start + s.end) / 2
    for i in range(1, len(s.words)):
        prev, nxt = s.words[i - 1], s.words[i]
        boundary = (prev.end + nxt.start) / 2
        left_len, right_len = boundary - s.start, s.end - boundary
        gap = max(0.0, nxt.start - prev.end)
        score = gap
        if prev.text.endswith(_SENTENCE_END):
            score += 0.5
        elif prev.text.endswith(_CLAUSE_END):
            score += 0.2
        score -= 0.05 * abs(boundary - mid_t) / max(1e-6, s.duration)
        if min(left_len, right_len) < min_len:
            score -= 100.0  # allowed only when nothing better exists
        if score > best_score:
            best, best_score = i, score
    return best


def _split_evenly(s: Segment, max_len: float) -> list[Segment]:
    """No usable word times: cut into equal parts and share the words/tokens by position."""
    n = int(math.ceil(s.duration / max_len - 1e-9))
    if n <= 1:
        return [s]
    bounds = [s.start + s.duration * k / n for k in range(n + 1)]
    out = []
    if s.words:
        for a, b in zip(bounds[:-1], bounds[1:]):
            ws = [w for w in s.words if a <= (w.start + w.end) / 2 < b or
                  (b == bounds[-1] and (w.start + w.end) / 2 >= b)]
            out.append(Segment(a, b, _join(ws), ws, s.source))
    else:
        tokens = s.text.split()
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            part = tokens[round(len(tokens) * k / n): round(len(tokens) * (k + 1) / n)]
            out.append(Segment(a, b, " ".join(part), [], s.source))
    return out


def _has_text(s: Segment) -> bool:
    return bool(s.text.strip() or s.words)


def _merge_two(a: Segment, b: Segment) -> Segment:
    text = " ".join(t for t in (a.text.strip(), b.text.strip()) if t)
    source = a.source if a.source == b.source else a.source
    return Segment(a.start, max(a.end, b.end), text, list(a.words) + list(b.words), source)


def _merge_short(segs: list[Segment], min_len: float, max_len: float,
                 merge_gap: float) -> list[Segment]:
    segs = list(segs)
    changed = True
    while changed:
        changed = False
        order = sorted(range(len(segs)), key=lambda i: segs[i].duration)
        for i in order:
            s = segs[i]
            if s.duration >= min_len:
                break
            options = []
            for j in (i - 1, i + 1):
                if 0 <= j < len(segs) and _has_text(segs[j]) == _has_text(s):
                    a, b = (segs[j], s) if j < i else (s, segs[j])
                    gap = max(0.0, b.start - a.end)
                    if gap <= merge_gap and (b.end - a.start) <= max_len:
                        options.append((gap, j))
            if not options:
                continue
            _, j = min(options)
            lo, hi = min(i, j), max(i, j)
            segs[lo:hi + 1] = [_merge_two(segs[lo], segs[hi])]
            changed = True
            break
    return segs


def _widen_short(segs: list[Segment], min_len: float, duration: float) -> list[Segment]:
    """Too-short leftovers get context around their centre, without overlapping neighbours."""
    out = list(segs)
    for i, s in enumerate(out):
        if s.duration >= min_len:
            continue
        lo = out[i - 1].end if i > 0 else 0.0
        hi = out[i + 1].start if i + 1 < len(out) else float(duration)
        need = min_len - s.duration
        start = max(lo, s.start - need / 2)
        end = min(hi, start + max(min_len, s.duration))
        start = max(lo, min(start, end - min_len))
        out[i] = replace(s, start=start, end=max(end, s.end))
    return out


# ------------------------------------------------------------------------------------- align


def align_transcript(transcript_segments: Sequence[Segment],
                     asr_words: Sequence[Word] | None = None,
                     speech_regions: Sequence[tuple[float, float]] | None = None,
                     duration: float | None = None) -> list[Segment]:
    """Give untimed transcript segments (start = end = -1) times and per-word times.

    With ASR words: transcript words are matched to ASR words (difflib on normalised text); a
    matched word takes the ASR word's time, the others are spread proportionally between matches,
    so the placement follows the real speaking rate. Without ASR words: words are spread
    proportionally over the VAD speech regions, else over [0, duration].
    Timed segments (SRT/VTT) are returned unchanged.
    """
    segs = [replace(s, words=list(s.words)) for s in transcript_segments]
    untimed = [i for i, s in enumerate(segs) if is_untimed(s)]
    if not untimed:
        return segs
    tokens: list[tuple[int, str]] = [(i, tok) for i in untimed for tok in segs[i].text.split()]
    if not tokens:
        return [s for s in segs if not is_untimed(s)]

    start_at, end_at = _boundary_times(tokens, asr_words, speech_regions, duration)
    per_seg: dict[int, list[Word]] = {i: [] for i in untimed}
    for k, (i, tok) in enumerate(tokens):
        per_seg[i].append(Word(tok, float(start_at[k]), float(end_at[k + 1]), probability=1.0))
    for i in untimed:
        words = per_seg[i]
        if words:
            segs[i] = replace(segs[i], start=words[0].start, end=words[-1].end, words=words)
    return [s for s in segs if not is_untimed(s)]


def _boundary_times(tokens: list[tuple[int, str]], asr_words: Sequence[Word] | None,
                    regions: Sequence[tuple[float, float]] | None,
                    duration: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Times of the len(tokens)+1 word boundaries, as (used as a word start, used as a word end):
    they differ only where a boundary falls on a pause between speech regions."""
    n = len(tokens)
    if asr_words:
        words = sorted(asr_words, key=lambda w: w.start)
        # ASR boundary k = start of ASR word k; the last boundary = end of the last word.
        asr_bounds = np.array([w.start for w in words] + [words[-1].end], dtype=np.float64)
        asr_bounds = np.maximum.accumulate(asr_bounds)
        t_norm = [_norm(tok) for _, tok in tokens]
        a_norm = [_norm(w.text) for w in words]
        anchors_t, anchors_a = [0.0], [0.0]
        matcher = difflib.SequenceMatcher(None, t_norm, a_norm, autojunk=False)
        for block in matcher.get_matching_blocks():
            for d in range(block.size):
                for off in (0, 1):  # both edges of a matched word are anchors
                    ti, ai = block.a + d + off, block.b + d + off
                    # Non-strict in ASR index: unmatched transcript words before the first
                    # match collapse onto its start instead of dropping the match.
                    if ti > anchors_t[-1] and ai >= anchors_a[-1]:
                        anchors_t.append(float(ti))
                        anchors_a.append(float(ai))
        if anchors_t[-1] < n and anchors_a[-1] < len(words):
            anchors_t.append(float(n))
            anchors_a.append(float(len(words)))
        elif anchors_t[-1] < n:  # transcript words after the last ASR word: squeeze at the end
            anchors_t.append(float(n))
            anchors_a.append(anchors_a[-1])
        x = np.interp(np.arange(n + 1), anchors_t, anchors_a)
        times = np.interp(x, np.arange(len(asr_bounds)), asr_bounds)
        return times, times

    if regions:
        spans = sorted((float(a), float(b)) for a, b in regions if b > a)
    elif duration and duration > 0:
        spans = [(0.0, float(duration))]
    else:
        raise MSAError("cannot place an untimed transcript: no ASR words, speech or duration")
    # Concatenate the speech spans into one "speech clock" and map word counts onto it.
    lengths = np.array([b - a for a, b in spans])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    speech_pos = np.linspace(0.0, cum[-1], n + 1)
    region_start = np.array([a for a, _ in spans])

    def to_time(side: str) -> np.ndarray:
        # side="right": a position on a region edge maps to the next region's start (word
        # starts); "left": to the previous region's end (word ends).
        idx = np.clip(np.searchsorted(cum, speech_pos, side=side) - 1, 0, len(spans) - 1)
        return region_start[idx] + (speech_pos - cum[idx])

    return to_time("right"), to_time("left")


def _norm(token: str) -> str:
    return "".join(ch for ch in token.lower() if ch.isalnum())
