"""Real media files for tests, written with PyAV (and espeak-ng for speech).

Everyone's tests import from here: `from tests.media_factory import make_video, requires_espeak`.
Generated files are deterministic; `cached_video` / `cached_audio` / `cached_speech` build each
distinct file once per test session in one temp folder, so a test suite pays the encode cost once.

Synthetic video: a dark gradient with a bright square whose x position encodes the frame time
(`square_x(t, duration, width)`), so tests can check which source frame a sampler picked.
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from models.recipes.common import default_data_dir

DATA_DIR = default_data_dir()  # $MSA_DATA_DIR or ../shared/data beside the repository
GRID_DIR = Path(os.environ.get("MSA_GRID_DIR", DATA_DIR / "grid"))

requires_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                     reason="espeak-ng is not installed (apt install espeak-ng)")
requires_grid = pytest.mark.skipif(not any(GRID_DIR.glob("*.mpg")) if GRID_DIR.is_dir() else True,
                                   reason=f"GRID clips not found in {GRID_DIR} (set MSA_GRID_DIR)")

SQUARE = 40  # side of the moving square, pixels

# Container extension -> (video codec, audio codec, audio sample rate or None = keep)
_CONTAINERS: dict[str, tuple[str | None, str | None, int | None]] = {
    ".mp4": ("libx264", "aac", None),
    ".mov": ("libx264", "aac", None),
    ".mkv": ("libx264", "flac", None),
    ".webm": ("libvpx", "libopus", 48000),  # Opus only runs at 48 kHz (and a few lower rates)
    ".avi": ("mpeg4", "pcm_s16le", None),
    ".mpg": ("mpeg1video", "mp2", 44100),
    ".wav": (None, "pcm_s16le", None),
    ".flac": (None, "flac", None),
    ".mp3": (None, "libmp3lame", 44100),
    ".ogg": (None, "libopus", 48000),
    ".m4a": (None, "aac", None),
}
_VIDEO_OPTIONS = {"libx264": {"preset": "ultrafast", "tune": "zerolatency"},
                  "libvpx": {"deadline": "realtime", "cpu-used": "8"}}


# ------------------------------------------------------------------------------------- speech


def speak(text: str, path_wav: str | os.PathLike, voice: str = "en-us", rate: int = 150) -> Path:
    """Synthesize `text` with espeak-ng into a WAV file (22.05 kHz mono s16)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed")
    path_wav = Path(path_wav)
    subprocess.run([exe, "-v", voice, "-s", str(rate), "-w", str(path_wav), text],
                   check=True, capture_output=True, timeout=60)
    return path_wav


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """16-bit PCM WAV -> (float32 mono in [-1, 1], sample rate). stdlib only, so it does not
    depend on the code under test."""
    with wave.open(str(path), "rb") as w:
        sr, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError("only 16-bit WAV is supported")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    return data.reshape(-1, ch).mean(axis=1), sr


def resample_linear(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Good enough for test signals (espeak has little energy near Nyquist)."""
    if sr_in == sr_out or len(x) == 0:
        return x.astype(np.float32)
    n_out = int(round(len(x) * sr_out / sr_in))
    t_out = np.arange(n_out) / sr_out
    return np.interp(t_out, np.arange(len(x)) / sr_in, x).astype(np.float32)


def speech_wave(text: str, sample_rate: int = 16000, voice: str = "en-us",
                rate: int = 150) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        data, sr = read_wav(speak(text, Path(tmp) / "s.wav", voice=voice, rate=rate))
    return resample_linear(data, sr, sample_rate)


def build_wave(duration: float, sample_rate: int = 16000, speech_text: str | None = None,
               tone_hz: float | None = 440.0, speech_start: float = 0.3) -> np.ndarray:
    """Audio track of exactly `duration` s: espeak speech starting at `speech_start` (trimmed to
    fit) if `speech_text`, else a quiet tone (or silence when tone_hz is None)."""
    n = int(round(duration * sample_rate))
    out = np.zeros(n, dtype=np.float32)
    if speech_text:
        speech = speech_wave(speech_text, sample_rate)
        i0 = min(n, int(round(speech_start * sample_rate)))
        chunk = speech[: n - i0]
        out[i0:i0 + len(chunk)] = chunk
    elif tone_hz:
        t = np.arange(n) / sample_rate
        out[:] = 0.2 * np.sin(2 * np.pi * tone_hz * t)
    return out


# -------------------------------------------------------------------------------------- video


def square_x(t: float, duration: float, width: int) -> int:
    """Left edge of the moving square at time t (moves linearly across the frame)."""
    span = max(1, width - SQUARE)
    return int(round(min(max(t / max(duration, 1e-9), 0.0), 1.0) * span))


def estimate_time_from_frame(img: np.ndarray, duration: float, src_width: int = 320) -> float:
    """Inverse of `square_x` on a decoded (possibly downscaled) RGB frame."""
    gray = img.astype(np.float32).mean(axis=2)
    cols = (gray > 180).sum(axis=0)
    xs = np.flatnonzero(cols >= max(1, cols.max() // 2))
    if len(xs) == 0:
        return float("nan")
    left_src = xs[0] * src_width / img.shape[1]
    return float(left_src / max(1, src_width - SQUARE) * duration)


def synthetic_frame(t: float, duration: float, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    grad = np.linspace(0, 90, w, dtype=np.float32)[None, :].repeat(h, axis=0)
    img = np.stack([grad, grad * 0.5 + 20, 90 - grad], axis=2).astype(np.uint8)
    x = square_x(t, duration, w)
    y = (h - SQUARE) // 2
    img[y:y + SQUARE, x:x + SQUARE] = 255
    return img


def frame_times(duration: float, fps: float, vfr: bool) -> list[float]:
    """Constant rate, or for VFR alternating short/long gaps plus a slow middle third."""
    if not vfr:
        return [i / fps for i in range(int(round(duration * fps)))]
    times, t, i = [], 0.0, 0
    while t < duration - 1e-9:
        times.append(round(t, 3))
        base = 1.0 / fps
        slow = duration / 3 <= t < 2 * duration / 3
        t += base * (3.0 if slow else (0.5 if i % 2 == 0 else 1.5))
        i += 1
    return times


def _s16_frames(x: np.ndarray, sample_rate: int, layout: str, block: int = 1024):
    channels = 2 if layout == "stereo" else 1
    pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
    if channels == 2:
        # Right channel quieter so a downmix differs from either channel.
        pcm = np.stack([pcm, (pcm // 2)], axis=1).reshape(-1)
    for start in range(0, len(x), block):
        chunk = pcm[start * channels:(start + block) * channels]
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def write_media(path: str | os.PathLike, duration: float, *, fps: float = 25,
                size: tuple[int, int] = (320, 240), wave_data: np.ndarray | None = None,
                sample_rate: int = 16000, video: bool = True, vfr: bool = False,
                channels: int = 1, video_codec: str | None = None,
                audio_codec: str | None = None,
                container_options: dict[str, str] | None = None) -> Path:
    """Low-level writer: container chosen by the extension (see `_CONTAINERS`)."""
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _CONTAINERS:
        raise ValueError(f"unsupported test container {ext}")
    default_v, default_a, forced_rate = _CONTAINERS[ext]
    vcodec = video_codec or default_v
    acodec = audio_codec or default_a
    if video and vcodec is None:
        raise ValueError(f"{ext} cannot hold video")
    layout = "stereo" if channels == 2 else "mono"
    out_rate = forced_rate or sample_rate

    container = av.open(str(path), mode="w", options=container_options or {})
    try:
        vstream = astream = None
        if video:
            vstream = container.add_stream(vcodec, rate=Fraction(fps).limit_denominator(1001),
                                           options=_VIDEO_OPTIONS.get(vcodec, {}))
            vstream.width, vstream.height = size
            vstream.pix_fmt = "yuv420p"
            if vfr:
                vstream.codec_context.time_base = Fraction(1, 1000)
        if wave_data is not None:
            astream = container.add_stream(acodec, rate=out_rate, layout=layout)
        if vstream is not None:
            for i, t in enumerate(frame_times(duration, fps, vfr)):
                frame = av.VideoFrame.from_ndarray(synthetic_frame(t, duration, size),
                                                   format="rgb24")
                if vfr:
                    frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
                else:
                    frame.pts = i
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode(None):
                container.mux(packet)
        if astream is not None:
            data = resample_linear(wave_data, sample_rate, out_rate)
            for frame in _s16_frames(data, out_rate, layout):
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    finally:
        container.close()
    return path


def make_video(path: str | os.PathLike, duration: float, fps: float = 25,
               size: tuple[int, int] = (320, 240), speech_text: str | None = None,
               audio: bool = True, video: bool = True, sample_rate: int = 16000,
               vfr: bool = False, tone_hz: float | None = 440.0, channels: int = 1,
               faststart: bool = False) -> Path:
    """A real video file: moving-square frames + (speech | tone | silence) audio.
    `faststart` puts the MP4/MOV index first (web-style), so a truncated copy stays readable."""
    wave_data = build_wave(duration, sample_rate, speech_text, tone_hz) if audio else None
    options = {"movflags": "+faststart"} if faststart else None
    return write_media(path, duration, fps=fps, size=size, wave_data=wave_data,
                       sample_rate=sample_rate, video=video, vfr=vfr, channels=channels,
                       container_options=options)


def make_audio(path: str | os.PathLike, duration: float, speech_text: str | None = None,
               sample_rate: int = 16000, tone_hz: float | None = 440.0,
               channels: int = 1) -> Path:
    """An audio-only file (.wav/.flac/.mp3/.ogg/.m4a, or any video container without video)."""
    wave_data = build_wave(duration, sample_rate, speech_text, tone_hz)
    return write_media(path, duration, wave_data=wave_data, sample_rate=sample_rate,
                       video=False, channels=channels)


def truncate_file(src: str | os.PathLike, dst: str | os.PathLike, fraction: float) -> Path:
    """Copy the first `fraction` of the bytes (an interrupted download / copy)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


# ------------------------------------------------------------------------------------ caching


@functools.lru_cache(maxsize=1)
def media_cache_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="msa-test-media-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def _key(prefix: str, **kwargs) -> str:
    blob = json.dumps(kwargs, sort_keys=True, default=str).encode()
    return f"{prefix}-{hashlib.sha1(blob).hexdigest()[:12]}"


@functools.lru_cache(maxsize=None)
def _cached(kind: str, ext: str, frozen: tuple) -> Path:
    kwargs = dict(frozen)
    path = media_cache_dir() / f"{_key(kind, **kwargs)}{ext}"
    if kind == "video":
        return make_video(path, **kwargs)
    return make_audio(path, **kwargs)


def cached_video(ext: str = ".mp4", **kwargs) -> Path:
    """`make_video(<tmp>/<hash><ext>, **kwargs)`, built once per session. Treat as read-only."""
    kwargs.setdefault("duration", 2.0)
    return _cached("video", ext, tuple(sorted(kwargs.items())))


def cached_audio(ext: str = ".wav", **kwargs) -> Path:
    """`make_audio(<tmp>/<hash><ext>, **kwargs)`, built once per session. Treat as read-only."""
    kwargs.setdefault("duration", 2.0)
    return _cached("audio", ext, tuple(sorted(kwargs.items())))


@functools.lru_cache(maxsize=None)
def cached_speech(text: str, sample_rate: int = 16000, pad: float = 0.3) -> np.ndarray:
    """espeak speech as float32 at `sample_rate` with `pad` s of silence on both sides.
    Returns the shared cached array: copy before modifying."""
    speech = speech_wave(text, sample_rate)
    silence = np.zeros(int(pad * sample_rate), dtype=np.float32)
    out = np.concatenate([silence, speech, silence])
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------------------- GRID

_GRID_WORDS = {
    0: {"b": "bin", "l": "lay", "p": "place", "s": "set"},
    1: {"b": "blue", "g": "green", "r": "red", "w": "white"},
    2: {"a": "at", "b": "by", "i": "in", "w": "with"},
    4: {"z": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
        "6": "six", "7": "seven", "8": "eight", "9": "nine"},
    5: {"a": "again", "n": "now", "p": "please", "s": "soon"},
}


def grid_sentence(stem: str) -> str:
    """GRID file name -> spoken sentence, e.g. 'bbaf2n' -> 'bin blue at f two now'."""
    stem = Path(stem).stem.lower()
    if len(stem) != 6:
        raise ValueError(f"not a GRID clip name: {stem}")
    words = []
    for i, ch in enumerate(stem):
        words.append(ch if i == 3 else _GRID_WORDS[i][ch])
    return " ".join(words)


def grid_clips() -> list[Path]:
    return sorted(GRID_DIR.glob("*.mpg")) if GRID_DIR.is_dir() else []
