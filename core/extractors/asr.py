"""Speech recognition with Whisper tiny.en (faster-whisper / CTranslate2, int8 on CPU), one encoder
pass per speech piece whose states are also the audio features (FeatureSpec v2, `whisper_audio.py`).

Flow for a stretch of 16 kHz audio (`WhisperASR.run`):

1. speech pieces: the Silero VAD regions, padded by `PIECE_PAD_S`, joined across pauses shorter
   than `PIECE_JOIN_GAP_S` and cut at the quietest 100 ms into pieces of at most `PIECE_MAX_S`
   (`plan_pieces`). Pieces depend only on the audio, never on what the decoder says.
2. one encoder pass per piece with a *short context*: the piece plus silence up to
   `MIN_CONTEXT_S` (at least `CONTEXT_PAD_S`), in whole seconds, instead of Whisper's fixed 30 s
   window (whisper.cpp's "audio_ctx"; CTranslate2 slices the positional embeddings). A 4 s piece
   costs ~80 ms instead of ~640 ms, and the states of
   a piece are the same whether the caller decodes it (file analysis, live mode) or not (a
   user-supplied timed transcript, dataset building), so the audio features never depend on the
   transcription path.
3. decoding from that same encoder output: beam search (5) at temperature 0 with timestamp
   tokens, never sampling, so the same audio always gives the same words. A degenerate result (gzip compression ratio above
   2.4, Whisper's own test) is decoded once more with 3-gram repetition blocked — also
   deterministic. Word times come from the cross-attention alignment (`find_alignment`).
   Whisper's "nothing was said" rule (no-speech probability > 0.6 and mean log-prob < -1) gives a
   piece without words; the caller still scores the region (segmentation keeps VAD regions).

Measured (word accuracy on 10 GRID clips / 6 espeak sentences / 50 RAVDESS clips / a 162 s
concatenation; CPU seconds for the short items and for the long clip; `benchmarks/asr_vad.py`):
faster-whisper's own 30 s windows with its VAD and sampling fallback 0.883 / 0.896 / 0.963 / 0.820,
40.1 s / 7.8 s; this pass with beam 1 0.833 / 0.924 / 0.983 / 0.877, 19.6 s / 14.7 s; with beam 5
0.883 / 0.924 / 0.983 / 0.907, 18.8 s / 15.4 s (the default). Initial prompts and hotwords are off
by default (a generic prompt lowered GRID accuracy) and exposed for users with a known vocabulary.
"""
from __future__ import annotations

import os
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from core.assets import resolve_asset
from core.errors import MSAError
from core.extractors import register_extractor
from core.progress import RunContext
from core.types import Segment, Word

SAMPLE_RATE = 16000
#: Whisper's encoder emits one state per 20 ms (two 10 ms mel frames).
STATE_RATE_HZ = 50.0
STATE_DIM = 384  # tiny.en's d_model
#: Speech-piece planning (seconds): pad VAD regions (word onsets are soft), join regions separated
#: by short pauses (one decoder context for a phrase), cap a piece so its context stays short.
PIECE_PAD_S = 0.2
PIECE_JOIN_GAP_S = 0.6
PIECE_MAX_S = 20.0
#: Encoder context: the piece plus at least CONTEXT_PAD_S of silence, and never less than
#: MIN_CONTEXT_S in all (seconds). Measured on 10 GRID clips + 60 RAVDESS clips, greedy decoding
#: (word accuracy GRID / RAVDESS; CPU seconds for the set): 30 s context 0.867 / 0.973 (39 s);
#: piece + 2 s 0.80 / 0.907 (10 s); piece + 8 s ~ 12 s context 0.85 / 0.983 (14 s). Very short
#: contexts mishear short commands; 12 s costs ~80 ms per piece against ~640 ms for 30 s.
CONTEXT_PAD_S = 2.0
MIN_CONTEXT_S = 12.0
#: Decoding budget per second of speech (tokens incl. timestamps): fast speech is ~4 words/s;
#: the cap stops a decoder that keeps "hearing" words in the silent context padding.
TOKENS_PER_S = 8.0
#: Each piece is brought to this loudness before the mel spectrogram: Whisper's log-mel is not
#: gain-invariant (a +20 dB gain moved the pooled states by ~30 % of the distance between two
#: RAVDESS clips), and recording level says more about the microphone than about the speaker.
#: Loudness = RMS over the 20 ms frames within 30 dB of the loudest; gain at most +40 dB.
TARGET_LEVEL_DB = -20.0
_MAX_GAIN_DB = 40.0
_MAX_MEL_FRAMES = 3000  # Whisper's positional embeddings cover 30 s
_COMPRESSION_RATIO_MAX = 2.4
#: A piece decoded with a mean log-prob below this is decoded once more from a 30 s-context
#: encoding, and the likelier text wins (deterministic, like Whisper's temperature fallback but
#: with context instead of sampling). On 10 GRID + 45 RAVDESS pieces the 4 worst-scored texts
#: (-0.65 .. -0.99) held 3 of the 5 misheard ones; correct ones scored -0.27 .. -0.62. The audio
#: features always come from the short-context pass.
_FALLBACK_LOGPROB = -0.6
_NO_SPEECH_PROB = 0.6
_LOW_LOGPROB = -1.0
_PREPEND_PUNCT = "\"'“¿([{-"
_APPEND_PUNCT = "\"'.。,，!！?？:：”)]}、"


@dataclass
class EncodedPiece:
    """One encoder pass: `states` (T, 384) at 50 Hz, state i covering [start + i/50, start + (i+1)/50)."""

    start: float
    end: float
    states: np.ndarray
    encoder_output: Any = None  # ctranslate2.StorageView, kept for decoding
    mel_frames: int = 0  # 10 ms mel frames of real audio (the rest is context padding)
    wave: np.ndarray | None = None  # the level-normalised samples, kept for a fallback decode

    @property
    def times(self) -> np.ndarray:
        return self.start + (np.arange(len(self.states)) + 0.5) / STATE_RATE_HZ


@dataclass
class SpeechPass:
    """What one pass over a stretch of audio gives: transcript segments and encoder states."""

    segments: list[Segment]
    pieces: list[EncodedPiece]


# ------------------------------------------------------------------------------ speech pieces


def plan_pieces(wave: np.ndarray, regions: Sequence[tuple[float, float]],
                pad: float = PIECE_PAD_S, join_gap: float = PIECE_JOIN_GAP_S,
                max_len: float = PIECE_MAX_S) -> list[tuple[float, float]]:
    """Speech regions (seconds) -> disjoint pieces of at most `max_len` seconds inside the wave."""
    total = len(wave) / SAMPLE_RATE
    joined: list[list[float]] = []
    for a, b in sorted((float(a), float(b)) for a, b in regions if b > a):
        a, b = max(0.0, a - pad), min(total, b + pad)
        if joined and a - joined[-1][1] < join_gap:
            joined[-1][1] = max(joined[-1][1], b)
        else:
            joined.append([a, b])
    pieces: list[tuple[float, float]] = []
    for a, b in joined:
        while b - a > max_len:
            cut = _quietest_point(wave, a + max_len / 2, a + max_len)
            pieces.append((a, cut))
            a = cut
        if b - a >= 0.1:
            pieces.append((a, b))
    return pieces


def _quietest_point(wave: np.ndarray, lo: float, hi: float, frame_s: float = 0.1) -> float:
    """Centre of the quietest `frame_s` frame in [lo, hi] (a long region is cut in a pause or,
    failing that, in its softest sound, rather than mid-word at a fixed time)."""
    n = int(frame_s * SAMPLE_RATE)
    seg = wave[int(lo * SAMPLE_RATE): int(hi * SAMPLE_RATE)]
    k = len(seg) // n
    if k < 1:
        return hi
    energy = np.square(seg[: k * n].astype(np.float64)).reshape(k, n).mean(1)
    return lo + (int(np.argmin(energy)) + 0.5) * frame_s


def normalise_level(wave: np.ndarray) -> np.ndarray:
    """`wave` scaled so that its active part has TARGET_LEVEL_DB RMS (see above), clipped to +-1."""
    n = int(0.02 * SAMPLE_RATE)
    k = len(wave) // n
    if k < 1:
        return wave
    power = np.square(wave[: k * n].astype(np.float64)).reshape(k, n).mean(1)
    if power.max() <= 0:
        return wave
    active = power[power >= power.max() * 1e-3]
    level_db = 10.0 * np.log10(active.mean())
    gain_db = min(TARGET_LEVEL_DB - level_db, _MAX_GAIN_DB)
    return np.clip(wave * np.float32(10.0 ** (gain_db / 20.0)), -1.0, 1.0).astype(np.float32)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data)))


# -------------------------------------------------------------------------------------- model


@register_extractor("whisper-tiny.en")
class WhisperASR:
    name = "whisper-tiny.en"
    modality = "speech"  # not a FeatureSpec modality: it gives the words and the audio states

    def __init__(self, model_path: str | None = None, device: str = "cpu",
                 compute_type: str = "int8", beam_size: int = 5,
                 initial_prompt: str | None = None, hotwords: str | None = None,
                 cpu_threads: int | None = None, max_new_tokens: int = 220) -> None:
        self.model_path = model_path
        self.device = device
        self.compute_type = compute_type
        self.beam_size = int(beam_size)
        self.initial_prompt = initial_prompt
        self.hotwords = hotwords
        self.cpu_threads = cpu_threads if cpu_threads is not None else min(4, os.cpu_count() or 1)
        self.max_new_tokens = int(max_new_tokens)
        self._model: Any = None
        self._tokenizer: Any = None
        self._prompt: list[int] | None = None
        self._suppress: list[int] = []
        self._lock = threading.Lock()  # loading only; CTranslate2 calls are thread-safe

    @classmethod
    def from_spec(cls, spec: Any = None, **options: Any) -> "WhisperASR":
        """No FeatureSpec entry describes the ASR (`spec` is None); `options` are the constructor's."""
        return cls(**options)

    def extract(self, wave16k: np.ndarray, ctx: RunContext | None = None, **options: Any) -> SpeechPass:
        """The FeatureExtractor form of `run`: the speech pass over `wave16k`."""
        return self.run(wave16k, ctx=ctx, **options)

    # ---------------------------------------------------------------------------------- loading

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
            from faster_whisper.tokenizer import Tokenizer
            from faster_whisper.transcribe import get_suppressed_tokens
        except ImportError:
            raise MSAError("speech recognition needs `pip install faster-whisper`") from None
        path = resolve_asset("whisper-tiny.en", self.model_path)
        local = os.path.exists(path)
        try:
            model = WhisperModel(str(path), device=self.device, compute_type=self.compute_type,
                                 cpu_threads=self.cpu_threads, local_files_only=local)
        except (RuntimeError, ValueError, OSError) as exc:
            msg = " ".join(str(exc).split())
            raise MSAError(f"cannot load Whisper model from {path}: {msg}") from None
        multilingual = model.model.is_multilingual
        tok = Tokenizer(model.hf_tokenizer, multilingual, task="transcribe", language="en" if multilingual else None)
        prompt: list[int] = []
        if self.initial_prompt or self.hotwords:
            hint = " " + " ".join(t.strip() for t in (self.hotwords, self.initial_prompt) if t)
            prompt = [tok.sot_prev] + tok.encode(hint)[-(model.max_length // 2 - 1):]
        self._tokenizer = tok
        self._prompt = prompt + list(tok.sot_sequence)
        self._suppress = list(get_suppressed_tokens(tok, [-1]))
        return model

    # --------------------------------------------------------------------------------- encoding

    def encode(self, wave16k: np.ndarray, start: float = 0.0, full_context: bool = False) -> EncodedPiece:
        """One short-context encoder pass over `wave16k` (at most ~28 s); `full_context`: Whisper's
        own 30 s window (the decoding fallback)."""
        wave, mel, real = self._mel(wave16k, full_context)
        output = self._encode_mels([mel])
        return _piece(start, wave, real, _to_numpy(output)[0], output)

    def _mel(self, wave16k: np.ndarray, full_context: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """(level-normalised wave, log-mel of the wave + its context padding, mel frames of real audio)."""
        model = self.model
        wave = normalise_level(np.asarray(wave16k, dtype=np.float32).reshape(-1))
        hop = model.feature_extractor.hop_length
        real = int(np.ceil(len(wave) / hop))
        frames = int(np.ceil(max(real + CONTEXT_PAD_S * 100, MIN_CONTEXT_S * 100) / 100.0)) * 100
        frames = _MAX_MEL_FRAMES if full_context else min(_MAX_MEL_FRAMES, frames)
        if real > frames:
            raise ValueError(f"a speech piece may last at most {frames / 100 - CONTEXT_PAD_S:.0f} s")
        padded = np.zeros(frames * hop, dtype=np.float32)
        padded[: len(wave)] = wave
        return wave, model.feature_extractor(padded)[:, :frames], real

    def _encode_mels(self, mels: list[np.ndarray]) -> Any:
        """One encoder call over log-mels of the same length (a batch of pieces)."""
        import ctranslate2

        storage = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(mels), dtype=np.float32))
        return self.model.model.encode(storage, to_cpu=False)

    # --------------------------------------------------------------------------------- decoding

    def decode(self, piece: EncodedPiece, word_timestamps: bool = True, live: bool = False) -> Segment | None:
        """Text (and word times) of one encoded piece; None when Whisper hears no words. `live`:
        greedy decoding and no 30 s-context fallback, so a live hop stays short (the encoder
        states, i.e. the audio features, are the same either way)."""
        beam = 1 if live else self.beam_size
        duration = piece.end - piece.start
        encoder_output = piece.encoder_output
        tokens, avg_logprob, no_speech = self._decode_tokens(encoder_output, duration, beam)
        if (not live and avg_logprob < _FALLBACK_LOGPROB and piece.wave is not None
                and piece.mel_frames < _MAX_MEL_FRAMES):
            wide = self.encode(piece.wave, piece.start, full_context=True).encoder_output
            retry = self._decode_tokens(wide, duration, beam)
            if retry[1] > avg_logprob:
                (tokens, avg_logprob, no_speech), encoder_output = retry, wide
        return self._segment(piece, tokens, avg_logprob, no_speech, encoder_output if word_timestamps else None)

    def _segment(self, piece: EncodedPiece, tokens: list[int], avg_logprob: float, no_speech: float,
                 align_with: Any = None) -> Segment | None:
        """The Segment of a decoded piece, None when Whisper heard nothing; word times aligned on
        the encoder output `align_with` (none without it)."""
        model = self.model
        tok = self._tokenizer
        duration = piece.end - piece.start
        text = tok.decode(tokens).strip()
        if not text or (no_speech > _NO_SPEECH_PROB and avg_logprob < _LOW_LOGPROB):
            return None
        words: list[Word] = []
        if align_with is not None:
            from faster_whisper.transcribe import merge_punctuations

            alignment = model.find_alignment(tok, [tokens], align_with, piece.mel_frames)[0]
            merge_punctuations(alignment, _PREPEND_PUNCT, _APPEND_PUNCT)
            for w in alignment:
                if w["word"].strip():
                    a = piece.start + min(max(float(w["start"]), 0.0), duration)
                    b = piece.start + min(max(float(w["end"]), 0.0), duration)
                    words.append(Word(w["word"].strip(), a, max(a, b), float(w["probability"])))
        start = min([piece.start] + [w.start for w in words])
        end = max([piece.end] + [w.end for w in words])
        return Segment(start=start, end=end, text=text, words=words, source="asr")

    def _decode_tokens(self, encoder_output: Any, duration: float, beam: int) -> tuple[list[int], float, float]:
        found = self._generate(encoder_output, duration, beam, block_repeats=False)
        if self._repetitive(found[0]):
            found = self._generate(encoder_output, duration, beam, block_repeats=True)
        return found

    def _repetitive(self, tokens: list[int]) -> bool:
        """Whisper's test for a degenerate decode (text that compresses too well)."""
        return compression_ratio(self._tokenizer.decode(tokens)) > _COMPRESSION_RATIO_MAX

    def _generate(self, encoder_output: Any, duration: float, beam: int,
                  block_repeats: bool) -> tuple[list[int], float, float]:
        """Greedy decoding *with* timestamp tokens: predicting where speech ends is what makes
        Whisper stop; without them it kept repeating the sentence into the padding (RAVDESS word
        accuracy 0.65 -> 0.91 at equal context). Text after a timestamp past the piece's end
        is heard in the padding and dropped."""
        result = self.model.model.generate(
            encoder_output, [self._prompt], beam_size=beam, max_length=self._budget(duration),
            return_scores=True, return_no_speech_prob=True, suppress_blank=True,
            suppress_tokens=self._suppress, no_repeat_ngram_size=3 if block_repeats else 0,
        )[0]
        return self._read_tokens(result.sequences_ids[0], result.scores, result.no_speech_prob, duration)

    def _budget(self, duration: float) -> int:
        return min(self.max_new_tokens, int(TOKENS_PER_S * duration) + 16)

    def _read_tokens(self, ids: list[int], scores: list[float], no_speech_prob: float,
                     duration: float) -> tuple[list[int], float, float]:
        """Text tokens of a decoded sequence (timestamps dropped, text past the piece cut), the
        mean log-probability and the no-speech probability."""
        tok = self._tokenizer
        tokens: list[int] = []
        for t in ids:
            if t >= tok.timestamp_begin:
                if (t - tok.timestamp_begin) * 0.02 > duration + 0.5:
                    break
                continue
            if t >= tok.eot:
                continue
            tokens.append(t)
        # faster-whisper's mean log-probability: scores are length-normalised sums
        avg_logprob = float(scores[0]) * len(ids) / (len(ids) + 1) if scores else 0.0
        return tokens, avg_logprob, float(no_speech_prob)

    # ---------------------------------------------------------------------------- whole passes

    def run(self, wave16k: np.ndarray, regions: Sequence[tuple[float, float]] | None = None,
            offset: float = 0.0, decode: bool = True, ctx: RunContext | None = None,
            word_timestamps: bool = True, live: bool = False) -> SpeechPass:
        """Encode every speech piece of `wave16k` once; decode it too when `decode`. Times are in
        seconds + `offset`. `regions` (VAD, seconds within the wave): computed when None. Live mode
        passes word_timestamps=False (a window only needs its text) and live=True (see decode)."""
        wave = np.asarray(wave16k, dtype=np.float32).reshape(-1)
        self.model  # noqa: B018 - a missing model is a user error even for audio without speech
        if len(wave) < SAMPLE_RATE // 10 or not np.any(wave):
            return SpeechPass([], [])
        if regions is None:
            from core.segmentation import speech_regions

            regions = speech_regions(wave)
        plan = plan_pieces(wave, regions)
        if live and decode and len(plan) > 1:
            return self._live_pass(wave, plan, offset)
        return self._piece_by_piece(wave, plan, offset, decode, ctx, word_timestamps, live)

    def _piece_by_piece(self, wave: np.ndarray, plan: list[tuple[float, float]], offset: float = 0.0,
                        decode: bool = True, ctx: RunContext | None = None, word_timestamps: bool = True,
                        live: bool = False) -> SpeechPass:
        segments: list[Segment] = []
        pieces: list[EncodedPiece] = []
        total = len(wave) / SAMPLE_RATE
        if ctx is not None and decode:
            ctx.report("asr", 0.0, "transcribing")
        for a, b in plan:
            if ctx is not None:
                ctx.check()
            piece = self.encode(wave[int(round(a * SAMPLE_RATE)): int(round(b * SAMPLE_RATE))], start=offset + a)
            pieces.append(piece)
            if decode:
                seg = self.decode(piece, word_timestamps=word_timestamps, live=live)
                if seg is not None:
                    segments.append(seg)
                if ctx is not None:
                    ctx.report("asr", min(1.0, b / total), seg.text if seg else "")
            piece.encoder_output = piece.wave = None  # decoded: free the StorageView and samples
        if ctx is not None and decode:
            ctx.report("asr", 1.0, f"{len(segments)} segments")
        return SpeechPass(segments, pieces)

    def _live_pass(self, wave: np.ndarray, plan: list[tuple[float, float]], offset: float) -> SpeechPass:
        """`run` for a live window of several pieces: one batched encoder call and one batched
        greedy decode instead of one of each per piece (a live hop's largest cost). The pieces and
        their states are those of the one-by-one pass (every live piece gets the same short
        context, and batching does not change a piece's encoder states). The batch decodes with
        the largest budget; a piece whose text may have run into its own, smaller budget — a
        call capped at max_length gives max_length // 2 ids (CTranslate2, measured in
        tests/test_batched_scoring.py) — or came out degenerate is decoded again on its own,
        exactly as `decode` would, so every piece gets the words of the one-by-one pass."""
        prepared = [self._mel(wave[int(round(a * SAMPLE_RATE)): int(round(b * SAMPLE_RATE))]) for a, b in plan]
        if len({mel.shape[1] for _, mel, _ in prepared}) != 1:  # pieces > ~10 s: contexts differ
            return self._piece_by_piece(wave, plan, offset, word_timestamps=False, live=True)
        output = self._encode_mels([mel for _, mel, _ in prepared])
        states = _to_numpy(output)
        durations = [b - a for a, b in plan]
        budgets = [self._budget(d) for d in durations]
        results = self.model.model.generate(
            output, [self._prompt] * len(plan), beam_size=1, max_length=max(budgets),
            return_scores=True, return_no_speech_prob=True, suppress_blank=True, suppress_tokens=self._suppress,
        )
        pieces: list[EncodedPiece] = []
        segments: list[Segment] = []
        for i, ((a, _b), (w, _mel, real), found) in enumerate(zip(plan, prepared, results)):
            piece = _piece(offset + a, w, real, states[i], None)
            ids = found.sequences_ids[0]
            tokens = self._read_tokens(ids, found.scores, found.no_speech_prob, durations[i])
            capped_alone = budgets[i] < max(budgets) and len(ids) >= budgets[i] // 2
            if capped_alone or self._repetitive(tokens[0]):  # rare: this piece on its own
                tokens = self._decode_tokens(self.encode(w, piece.start).encoder_output, durations[i], 1)
            seg = self._segment(piece, *tokens)
            if seg is not None:
                segments.append(seg)
            piece.wave = None
            pieces.append(piece)
        return SpeechPass(segments, pieces)

    def transcribe(self, wave16k: np.ndarray, ctx: RunContext | None = None,
                   offset: float = 0.0, regions: Sequence[tuple[float, float]] | None = None) -> list[Segment]:
        """Segments with word timestamps, times in seconds + `offset`. Silence/no speech -> []."""
        return self.run(wave16k, regions=regions, offset=offset, decode=True, ctx=ctx).segments

    def __call__(self, wave16k: np.ndarray, ctx: RunContext | None = None,
                 offset: float = 0.0) -> list[Segment]:
        return self.transcribe(wave16k, ctx=ctx, offset=offset)


def _piece(start: float, wave: np.ndarray, mel_frames: int, encoded: np.ndarray, output: Any) -> EncodedPiece:
    """An EncodedPiece from one row of an encoder call: the states of the real audio only (the
    context padding's states are dropped)."""
    n_states = min(len(encoded), int(np.ceil(mel_frames / 2)))
    return EncodedPiece(start=float(start), end=float(start) + len(wave) / SAMPLE_RATE,
                        states=np.asarray(encoded[:n_states], dtype=np.float32),
                        encoder_output=output, mel_frames=mel_frames, wave=wave)


def _to_numpy(storage: Any) -> np.ndarray:
    """A CTranslate2 StorageView as a float32 array (on the GPU it is copied to the host first)."""
    if getattr(storage, "device", "cpu") != "cpu":
        storage = storage.to_device(__import__("ctranslate2").Device.cpu)
    return np.asarray(storage)


# ------------------------------------------------------------------------ scoring (eval, tests)

_NUMBER_WORDS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
                 "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}


def normalize_words(text: str) -> list[str]:
    """Lower-case, drop punctuation, split letter/digit runs ('F2' -> 'f two'), spell digits."""
    import re

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
