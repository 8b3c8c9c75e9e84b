"""Audio features from Whisper's encoder ("whisper-tiny-enc-v2", FeatureSpec v2): 384 columns at 50 Hz.

The rows are the final encoder states (after the encoder's last layer norm) of Whisper tiny.en,
taken from the *same* encoder pass that transcribes the speech (core.extractors.asr): each speech
piece (VAD regions, padded 0.2 s, joined across pauses < 0.6 s, at most 20 s) is brought to -20 dBFS
loudness and encoded once with a short context (the piece + silence, at least 12 s); row i of a
piece covers [piece.start + i / 50, piece.start + (i + 1) / 50) and is timed at its centre. Outside
speech pieces there are no rows, so a segment without speech gets the audio modality masked out.

Why these features (measured, `models/recipes/audio_probe.py` reproduces it): a logistic probe on
the mean + std of the states separates RAVDESS valence (calm/happy vs sad/angry/fearful/disgust)
of unseen actors 17-20 at 0.83-0.86 when trained on actors 01-16, against 0.73 for the 69
hand-crafted librosa-v1 columns with the same probe. Adding prosodic columns (f0 mean/std, voicing
rate, level mean/std) moved it by +0.005, within noise, so v2 has none: level is normalised away on
purpose (it measures the microphone more than the speaker), and Whisper's states already carry pitch.

Words leak into these states (Whisper's decoder reads them), so the audio branch is only trained
on speech whose words carry no sentiment (RAVDESS's two neutral sentences, GRID commands); the
held-out report measures the audio-only score gap between flat positive and negative espeak-ng
sentences next to the gap between emotional voices.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from core.errors import FeatureSpecMismatch
from core.extractors import register_extractor
from core.extractors.asr import STATE_DIM, STATE_RATE_HZ, SpeechPass, WhisperASR
from core.feature_spec import ModalitySpec
from core.progress import RunContext
from core.types import AudioTrack

EXTRACTOR_NAME = "whisper-tiny-enc-v2"


@register_extractor(EXTRACTOR_NAME)
class WhisperStateAudio:
    """Turns the encoder states of a SpeechPass into an AudioTrack. Stateless apart from the
    shared WhisperASR (thread-safe), so one instance serves every recording."""

    name = EXTRACTOR_NAME
    modality = "audio"
    dim = STATE_DIM
    #: the pipeline runs the Whisper pass over every speech region for this extractor, decoding
    #: only when it also needs the words
    uses_speech_pass = True

    def __init__(self, asr: WhisperASR | None = None) -> None:
        self.asr = asr or WhisperASR()

    @classmethod
    def from_spec(cls, spec: ModalitySpec, asr: WhisperASR | None = None, **_runtime: Any) -> "WhisperStateAudio":
        if spec.extractor != EXTRACTOR_NAME:
            raise FeatureSpecMismatch(f"audio.extractor: {spec.extractor!r} is not {EXTRACTOR_NAME!r}")
        if spec.dim != STATE_DIM:
            raise FeatureSpecMismatch(f"audio.dim: the spec says {spec.dim}, {EXTRACTOR_NAME} gives {STATE_DIM}")
        if spec.rate_hz != STATE_RATE_HZ:
            raise FeatureSpecMismatch(f"audio.rate_hz: the spec says {spec.rate_hz}, {EXTRACTOR_NAME} gives {STATE_RATE_HZ}")
        return cls(asr)

    def extract(self, wave16k: np.ndarray, ctx: RunContext | None = None, *,
                speech: SpeechPass | None = None, offset: float = 0.0) -> AudioTrack:
        """Encoder states of every speech piece of the wave; `speech`: a pass already run over
        this wave (its states are reused, nothing is encoded twice)."""
        if speech is None:
            speech = self.asr.run(wave16k, offset=offset, decode=False, ctx=ctx)
        return self.track(speech)

    @staticmethod
    def track(speech: SpeechPass) -> AudioTrack:
        if not speech.pieces:
            return AudioTrack(np.zeros(0, np.float64), np.zeros((0, STATE_DIM), np.float32))
        return AudioTrack(np.concatenate([p.times for p in speech.pieces]),
                          np.concatenate([p.states for p in speech.pieces]).astype(np.float32, copy=False))


def audio_spec_v2() -> ModalitySpec:
    from core.extractors.asr import CONTEXT_PAD_S, MIN_CONTEXT_S, PIECE_JOIN_GAP_S, PIECE_MAX_S, PIECE_PAD_S, TARGET_LEVEL_DB

    return ModalitySpec(
        extractor=EXTRACTOR_NAME, dim=STATE_DIM, rate_hz=STATE_RATE_HZ, max_len=200,
        params={"model": "whisper-tiny.en", "states": "encoder output", "level_dbfs": TARGET_LEVEL_DB,
                "piece": {"pad_s": PIECE_PAD_S, "join_gap_s": PIECE_JOIN_GAP_S, "max_s": PIECE_MAX_S},
                "context": {"pad_s": CONTEXT_PAD_S, "min_s": MIN_CONTEXT_S}},
    )
