"""Frame-level acoustic features ("librosa-v1"): 69 columns at 25 Hz for a whole recording.

Computed once per recording; `core.extractors.slicing.slice_track` cuts per-segment windows later.

Columns (n_mfcc = 20 gives 3 * 20 + 9 = 69), all float32, in physical units (models are expected to
standardise per column with training statistics):

====================  ======================================================================
mfcc_0..19            MFCCs of a 40-band log-mel spectrogram (dB, floor -100 dB, no top_db clip)
d_mfcc_0..19          first temporal derivative (librosa.feature.delta, width 9, edge 'nearest')
dd_mfcc_0..19         second temporal derivative (same)
f0_hz                 fundamental frequency from librosa.yin (fmin 65, fmax 400 Hz); 0 if unvoiced
voiced                1.0 when the frame is voiced, else 0.0 (rule below)
log_rms_db            20*log10(RMS) of the frame, floored at -100 dB (digital silence = -100)
zcr                   zero-crossing rate, crossings per sample (0..1)
spectral_centroid_hz  magnitude-weighted mean frequency (0 for silence)
spectral_bandwidth_hz magnitude-weighted spread around the centroid (0 for silence)
spectral_rolloff_hz   frequency below which 85 % of the energy lies (0 for silence)
spectral_flatness     geometric / arithmetic mean of the power spectrum (1 for digital silence)
spectral_flux_db      mean over mel bands of the positive log-mel increase from the previous
                      frame (dB); 0 for the first frame
====================  ======================================================================

Voicing rule: YIN always returns *some* period, so each frame is also scored by the normalised
cross-correlation of the frame with itself shifted by that period (1 = perfectly periodic, about 0
for noise). A frame is voiced when periodicity >= 0.55, log_rms_db >= -65 dB and zcr <= 0.3.

Framing: frame i is centred on sample i * hop (librosa ``center=True`` with zero padding), so a wave
of n samples gives 1 + n // hop frames with times i * hop / sr. Empty input gives 0 rows; input
shorter than one window is zero-padded to one window and still gives 1 + n // hop rows (>= 1).

Long input is processed in chunks (default 60 s) that overlap by a few frames of context, so memory
stays bounded for multi-hour files and the result equals the one-shot computation (up to float
rounding): every kept frame sees exactly the samples it would see in a whole-file run, and the
deltas are taken once over the stitched MFCCs.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from core.errors import FeatureSpecMismatch, MediaError, UnknownNameError
from core.extractors import register_extractor
from core.feature_spec import ModalitySpec
from core.progress import RunContext
from core.types import AudioTrack

EXTRACTOR_NAME = "librosa-v1"

_DB_FLOOR = -100.0  # dB; also the value reported for digital silence
_POWER_AMIN = 10.0 ** (_DB_FLOOR / 10.0)
_RMS_AMIN = 10.0 ** (_DB_FLOOR / 20.0)
_VOICING_MIN_PERIODICITY = 0.55
_VOICING_MIN_DB = -65.0  # absolute; low because many corpora are recorded quietly (RAVDESS peaks near -35 dBFS)
_VOICING_MAX_ZCR = 0.3
_DELTA_WIDTH = 9
_SCALAR_COLUMNS = [
    "f0_hz",
    "voiced",
    "log_rms_db",
    "zcr",
    "spectral_centroid_hz",
    "spectral_bandwidth_hz",
    "spectral_rolloff_hz",
    "spectral_flatness",
    "spectral_flux_db",
]


@register_extractor(EXTRACTOR_NAME)
class LibrosaAudioExtractor:
    """Stateless and thread-safe: one instance can serve several recordings."""

    name = EXTRACTOR_NAME
    modality = "audio"
    uses_speech_pass = False

    def __init__(
        self,
        sr: int = 16000,
        hop: int = 640,
        win: int = 1024,
        n_mfcc: int = 20,
        f0: str = "yin",
        n_mels: int = 40,
        fmin: float = 65.0,
        fmax: float = 400.0,
        chunk_seconds: float | None = 60.0,
    ) -> None:
        if f0 != "yin":
            raise UnknownNameError(f"unknown f0 method {f0!r}; known: yin")
        if hop <= 0 or win <= 0 or sr <= 0 or n_mfcc <= 0:
            raise ValueError("sr, hop, win and n_mfcc must be positive")
        if sr / fmin >= win // 2:
            raise ValueError(f"win={win} is too short for fmin={fmin} Hz at {sr} Hz")
        self.sr, self.hop, self.win, self.n_mfcc = int(sr), int(hop), int(win), int(n_mfcc)
        self.n_mels, self.fmin, self.fmax = int(n_mels), float(fmin), float(fmax)
        # Chunks are whole numbers of hops so chunk frame grids line up with the global grid.
        self.chunk_frames = None if not chunk_seconds else max(1, int(round(chunk_seconds * sr / hop)))
        self.columns: list[str] = (
            [f"mfcc_{i}" for i in range(n_mfcc)]
            + [f"d_mfcc_{i}" for i in range(n_mfcc)]
            + [f"dd_mfcc_{i}" for i in range(n_mfcc)]
            + list(_SCALAR_COLUMNS)
        )

    @classmethod
    def from_spec(cls, spec: ModalitySpec, asr: Any = None, **overrides: Any) -> "LibrosaAudioExtractor":
        # `asr`: the pipeline's Whisper, which only the Whisper-state extractor needs
        if spec.extractor.lower() != EXTRACTOR_NAME:
            raise FeatureSpecMismatch(f"audio extractor {spec.extractor!r} is not {EXTRACTOR_NAME!r}")
        ext = cls(**{**spec.params, **overrides})
        if ext.dim != spec.dim:
            raise FeatureSpecMismatch(f"audio.dim: spec says {spec.dim}, {EXTRACTOR_NAME} gives {ext.dim}")
        if spec.rate_hz is not None and abs(ext.rate_hz - spec.rate_hz) > 1e-6:
            raise FeatureSpecMismatch(f"audio.rate_hz: spec says {spec.rate_hz}, extractor gives {ext.rate_hz}")
        return ext

    @property
    def dim(self) -> int:
        return len(self.columns)

    @property
    def rate_hz(self) -> float:
        return self.sr / self.hop

    # ------------------------------------------------------------------ public
    def extract(self, wave: np.ndarray, ctx: RunContext | None = None, *, speech: Any = None,
                offset: float = 0.0) -> AudioTrack:
        """Features for a whole mono recording sampled at `self.sr`, times + `offset` (`speech`, a
        Whisper pass over the same wave, is not needed here: the audio extractors share one call)."""
        y = self._validated(wave)
        n = len(y)
        if n == 0:
            return AudioTrack(times=np.zeros(0, np.float64), features=np.zeros((0, self.dim), np.float32))
        n_frames = 1 + n // self.hop
        if n < self.win:
            y = np.pad(_clean(y), (0, self.win - n))  # trailing zeros; frame count stays 1 + n // hop

        step = self.chunk_frames or n_frames
        # Context on each side: half a window for the frame itself, plus one frame for the flux lag.
        ctx_frames = -(-(self.win // 2) // self.hop) + 2
        base_parts = []
        for first in range(0, n_frames, step):
            if ctx is not None:
                ctx.report("audio features", first / n_frames)
            last = min(n_frames, first + step)
            lo = max(0, first - ctx_frames)
            hi = min(len(y), (last + ctx_frames) * self.hop)
            part = self._base_features(_clean(y[lo * self.hop : hi]))
            base_parts.append(part[:, first - lo : last - lo])
        base = np.concatenate(base_parts, axis=1)[:, :n_frames]
        if ctx is not None:
            ctx.report("audio features", 1.0)

        mfcc, scalars = base[: self.n_mfcc], base[self.n_mfcc :]
        d1, d2 = self._deltas(mfcc)
        feats = np.concatenate([mfcc, d1, d2, scalars], axis=0).T
        feats = np.nan_to_num(feats, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
        times = offset + np.arange(n_frames, dtype=np.float64) * self.hop / self.sr
        return AudioTrack(times=times, features=np.ascontiguousarray(feats))

    # ----------------------------------------------------------------- helpers
    def _validated(self, wave: np.ndarray) -> np.ndarray:
        y = np.asarray(wave)
        if y.ndim == 2 and 1 in y.shape:
            y = y.reshape(-1)
        if y.ndim != 1:
            raise MediaError(f"audio must be a mono 1-D waveform, got shape {tuple(y.shape)}")
        if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
            raise MediaError(f"audio must be real-valued samples, got dtype {y.dtype}")
        return y  # converted chunk by chunk (see _clean): no full-length copy of a 3-hour wave

    def _base_features(self, y: np.ndarray) -> np.ndarray:
        """(n_mfcc + 9, frames): MFCCs + scalar columns (no deltas) for one chunk; frame j at j * hop."""
        import librosa

        hop, win, sr = self.hop, self.win, self.sr
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")  # librosa warns on silent / very short frames
            spec = np.abs(librosa.stft(y, n_fft=win, hop_length=hop, win_length=win, center=True))
            power = spec**2
            mel = librosa.feature.melspectrogram(S=power, sr=sr, n_fft=win, n_mels=self.n_mels, fmax=sr / 2)
            # Fixed reference and no top_db: a per-call max would make chunked != whole-file output.
            log_mel = librosa.power_to_db(mel, ref=1.0, amin=_POWER_AMIN, top_db=None)
            mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=self.n_mfcc)

            rms = librosa.feature.rms(S=spec, frame_length=win)[0]
            log_rms = 20.0 * np.log10(np.maximum(rms, _RMS_AMIN))
            zcr = librosa.feature.zero_crossing_rate(y, frame_length=win, hop_length=hop, center=True)[0]
            centroid = librosa.feature.spectral_centroid(S=spec, sr=sr, n_fft=win)[0]
            bandwidth = librosa.feature.spectral_bandwidth(S=spec, sr=sr, n_fft=win, centroid=centroid[None])[0]
            rolloff = librosa.feature.spectral_rolloff(S=spec, sr=sr, n_fft=win, roll_percent=0.85)[0]
            flatness = librosa.feature.spectral_flatness(S=spec, amin=_POWER_AMIN)[0]
            flux = np.zeros(log_mel.shape[1], dtype=np.float32)
            flux[1:] = np.maximum(np.diff(log_mel, axis=1), 0.0).mean(axis=0)

            f0 = librosa.yin(y, fmin=self.fmin, fmax=self.fmax, sr=sr, frame_length=win, hop_length=hop, center=True)
            f0 = np.nan_to_num(f0, nan=0.0, posinf=0.0, neginf=0.0)
            periodicity = self._periodicity(y, f0)

        n = min(spec.shape[1], len(f0), len(zcr))
        voiced = (
            (periodicity[:n] >= _VOICING_MIN_PERIODICITY)
            & (log_rms[:n] >= _VOICING_MIN_DB)
            & (zcr[:n] <= _VOICING_MAX_ZCR)
            & (f0[:n] > 0)
        )
        rows = [
            *mfcc[:, :n],
            np.where(voiced, f0[:n], 0.0),
            voiced.astype(np.float32),
            log_rms[:n],
            zcr[:n],
            centroid[:n],
            bandwidth[:n],
            rolloff[:n],
            flatness[:n],
            flux[:n],
        ]
        return np.stack(rows).astype(np.float32, copy=False)

    def _periodicity(self, y: np.ndarray, f0: np.ndarray) -> np.ndarray:
        """Normalised cross-correlation of each frame's first half with itself one period later."""
        import librosa

        half = self.win // 2
        frames = librosa.util.frame(np.pad(y, half), frame_length=self.win, hop_length=self.hop)
        n = min(frames.shape[1], len(f0))
        frames = frames[:, :n]
        max_lag = self.win - half
        lag = np.clip(np.rint(self.sr / np.maximum(f0[:n], 1e-3)), 1, max_lag).astype(np.int64)
        idx = np.arange(half)[:, None] + lag[None, :]
        a = frames[:half]
        b = np.take_along_axis(frames, idx, axis=0)
        num = np.einsum("ij,ij->j", a, b, dtype=np.float64)
        den = np.sqrt(np.einsum("ij,ij->j", a, a, dtype=np.float64) * np.einsum("ij,ij->j", b, b, dtype=np.float64))
        return np.where(den > 1e-12, num / np.maximum(den, 1e-12), 0.0)

    def _deltas(self, mfcc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import librosa

        if mfcc.shape[1] < 2:
            zeros = np.zeros_like(mfcc)
            return zeros, zeros.copy()
        # 'nearest' edges work for any length and do not depend on chunking.
        d1 = librosa.feature.delta(mfcc, width=_DELTA_WIDTH, order=1, mode="nearest")
        d2 = librosa.feature.delta(mfcc, width=_DELTA_WIDTH, order=2, mode="nearest")
        return d1, d2


def _clean(y: np.ndarray) -> np.ndarray:
    """float32 copy in [-1, 1] units; NaN/inf (corrupt packets) become silence."""
    if np.issubdtype(y.dtype, np.integer):  # PCM integers, e.g. int16 from a WAV reader
        return (y.astype(np.float32) / float(-np.iinfo(y.dtype).min)).astype(np.float32)
    return np.nan_to_num(y.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
