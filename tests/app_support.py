"""Helpers for the app and live-mode tests: fake camera (ffmpeg -> local TCP), fake microphone
(private PulseAudio server + module-pipe-source fed with espeak-ng speech), an Xvfb display, and
screenshot checks. Every process is started and stopped by the fixture that needs it.

Fake camera: ``ffmpeg -re -stream_loop -1 -i CLIP -f mpegts tcp://127.0.0.1:PORT?listen=1`` serves
one client; OpenCV reads it as ``tcp://127.0.0.1:PORT``. A GRID clip is used when present so the
face tracker finds a face; otherwise a synthetic clip.

Fake microphone: a PulseAudio daemon on a private socket (PULSE_SERVER points clients at it, so the
user's own audio setup is untouched), with
``module-pipe-source source_name=fakemic file=FIFO format=s16le rate=16000 channels=1`` as the
default source. A feeder thread writes espeak-ng speech (and silence between sentences) into the
FIFO at real-time pace, exactly like a microphone would deliver it.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.media_factory import cached_speech, grid_clips, make_video

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = ROOT / "artifacts" / "screenshots"
MIC_SENTENCES = (
    "I really love this wonderful movie, it makes me so happy.",
    "This is terrible, I hate it, what an awful boring day.",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop_process(proc: subprocess.Popen | None, timeout: float = 3.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# ------------------------------------------------------------------------------- fake camera


@dataclass
class FakeCamera:
    url: str
    clip: Path
    has_face: bool
    proc: subprocess.Popen


def face_clip(tmp_dir: Path) -> tuple[Path, bool]:
    clips = grid_clips()
    if clips:
        return clips[0], True
    return make_video(tmp_dir / "camera.mp4", duration=3.0, audio=False), False


def start_fake_camera(tmp_dir: Path, clip: Path | None = None, audio: bool = False) -> FakeCamera:
    """`audio`: stream the clip's sound too (a camera with its own microphone), else picture only."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (apt install ffmpeg): needed for the fake camera")
    has_face = True
    if clip is None:
        clip, has_face = face_clip(tmp_dir)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    sound = ["-c:a", "mp2", "-ar", "16000", "-ac", "1"] if audio else ["-an"]
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip), *sound,
           "-c:v", "mpeg2video", "-q:v", "4", "-g", "5", "-f", "mpegts", f"{url}?listen=1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    # Connecting to probe would use up ffmpeg's single accept(); look for the listen socket instead.
    wait_for(lambda: _port_listening(port) or proc.poll() is not None, 5.0)
    if proc.poll() is not None:
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        pytest.skip(f"fake camera (ffmpeg tcp listen) did not start: {err.strip()[:200]}")
    return FakeCamera(url, Path(clip), has_face, proc)


def _port_listening(port: int) -> bool:
    hexport = f"{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 3 and parts[1].endswith(":" + hexport) and parts[3] == "0A":  # 0A = LISTEN
                return True
    return False


# --------------------------------------------------------------------------- fake microphone


@dataclass
class FakeMic:
    server: str  # PULSE_SERVER value
    source: str
    fifo: Path
    daemon: subprocess.Popen
    sentences: tuple[str, ...]
    speech_onsets: list[float] = field(default_factory=list)  # monotonic time each sentence starts
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def env(self) -> dict[str, str]:
        return {"PULSE_SERVER": self.server}

    def start_feeding(self, gap_s: float = 0.8) -> None:
        """Write speech + silence into the FIFO at real-time pace, looping over the sentences."""
        waves = [cached_speech(s, 16000, pad=0.0) for s in self.sentences]

        def feed() -> None:
            chunk = 320  # 20 ms
            # Opening the FIFO for writing blocks until PulseAudio has it open for reading.
            with open(self.fifo, "wb", buffering=0) as fh:
                start = time.monotonic()
                written = 0
                i = 0
                while not self._stop.is_set():
                    speech = waves[i % len(waves)]
                    gap = np.zeros(int(gap_s * 16000), np.float32)
                    block = np.concatenate([gap, speech, gap])
                    onset = start + (written + len(gap)) / 16000
                    self.speech_onsets.append(onset)
                    pcm = (np.clip(block, -1, 1) * 32767).astype("<i2")
                    for j in range(0, len(pcm), chunk):
                        if self._stop.is_set():
                            return
                        due = start + written / 16000
                        delay = due - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        part = pcm[j:j + chunk]
                        try:
                            fh.write(part.tobytes())
                        except (BrokenPipeError, OSError):
                            return
                        written += len(part)
                    i += 1

        self._thread = threading.Thread(target=feed, name="fakemic-feeder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        stop_process(self.daemon)


def start_fake_mic(tmp_dir: Path, sentences: tuple[str, ...] = MIC_SENTENCES) -> FakeMic:
    for exe in ("pulseaudio", "pactl", "parec", "espeak-ng"):
        if shutil.which(exe) is None:
            pytest.skip(f"{exe} is not installed: needed for the fake PulseAudio microphone")
    run_dir = Path(tempfile.mkdtemp(prefix="msa-pulse-", dir=tmp_dir))
    sock = run_dir / "native"
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(run_dir), "PULSE_STATE_PATH": str(run_dir), "HOME": str(run_dir)}
    cmd = ["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
           "--disable-shm=yes", "-L", f"module-native-protocol-unix socket={sock} auth-anonymous=1",
           "-L", "module-null-sink"]
    daemon = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = f"unix:{sock}"
    penv = {**os.environ, "PULSE_SERVER": server}

    def ready() -> bool:
        if daemon.poll() is not None:
            return True
        return subprocess.run(["pactl", "info"], env=penv, capture_output=True).returncode == 0

    wait_for(ready, 10.0, 0.1)
    if daemon.poll() is not None:
        err = daemon.stderr.read().decode(errors="replace") if daemon.stderr else ""
        pytest.skip(f"PulseAudio could not start here: {err.strip()[-300:]}")
    fifo = run_dir / "fakemic"
    out = subprocess.run(["pactl", "load-module", "module-pipe-source", "source_name=fakemic", f"file={fifo}",
                          "format=s16le", "rate=16000", "channels=1"], env=penv, capture_output=True, text=True)
    if out.returncode != 0:
        stop_process(daemon)
        pytest.skip(f"module-pipe-source not available: {out.stderr.strip()}")
    subprocess.run(["pactl", "set-default-source", "fakemic"], env=penv, check=True, capture_output=True)
    return FakeMic(server, "fakemic", fifo, daemon, tuple(sentences))


# -------------------------------------------------------------------------------------- Xvfb


@dataclass
class XDisplay:
    display: str
    proc: subprocess.Popen


def start_xvfb(size: str = "1400x940x24") -> XDisplay:
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.skip("Xvfb is not installed (apt install xvfb): the real-window screenshot test needs it")
    for n in range(90, 140):
        if Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists():
            continue
        proc = subprocess.Popen([exe, f":{n}", "-screen", "0", size, "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if wait_for(lambda: Path(f"/tmp/.X11-unix/X{n}").exists() or proc.poll() is not None, 5.0):
            if proc.poll() is None:
                return XDisplay(f":{n}", proc)
    pytest.skip("could not start Xvfb on any display :90-:139")


# ------------------------------------------------------------------------------- screenshots


def image_stats(path: Path) -> dict[str, float]:
    """Pixel statistics of a PNG (read with OpenCV, independent of Qt)."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise AssertionError(f"{path} is not a readable image")
    gray = img.astype(np.float32).mean(axis=2)
    return {
        "width": float(img.shape[1]),
        "height": float(img.shape[0]),
        "std": float(gray.std()),
        "distinct": float(len(np.unique(img.reshape(-1, 3)[:: max(1, img.size // 3 // 20000)], axis=0))),
    }


def assert_not_blank(path: Path, min_std: float = 3.0, min_distinct: int = 8) -> dict[str, float]:
    stats = image_stats(path)
    assert stats["width"] > 50 and stats["height"] > 50, f"{path.name} is tiny: {stats}"
    assert stats["std"] >= min_std, f"{path.name} looks blank (pixel std {stats['std']:.2f}): {stats}"
    assert stats["distinct"] >= min_distinct, f"{path.name} has almost no distinct colours: {stats}"
    return stats


# ------------------------------------------------------------------------- shared analysis

CLIP_SENTENCES = ("I really love this wonderful movie, it is great.", "This is terrible, I hate it, what an awful day.")


def two_sentence_clip(folder: Path | None = None, gap_s: float = 1.2) -> Path:
    """A real video (moving square + espeak speech): two sentences with a pause between them, so
    ASR/VAD give more than one segment."""
    from tests.media_factory import cached_speech, write_media

    from tests.media_factory import media_cache_dir

    path = (folder or media_cache_dir()) / "two_sentences.mp4"
    if path.exists():
        return path
    parts = [np.zeros(int(0.3 * 16000), np.float32)]
    for s in CLIP_SENTENCES:
        parts += [np.array(cached_speech(s, 16000, pad=0.0)), np.zeros(int(gap_s * 16000), np.float32)]
    wave = np.concatenate(parts)
    return write_media(path, duration=len(wave) / 16000, wave_data=wave, sample_rate=16000, fps=15, size=(320, 240))


_SHARED: dict[str, object] = {}


def shared_model_cache():
    """One app.workers.ModelCache per test process: Whisper, MiniLM, MediaPipe and the model load once."""
    from app.workers import ModelCache

    if "cache" not in _SHARED:
        _SHARED["cache"] = ModelCache()
    return _SHARED["cache"]


def shared_analysis():
    """(clip path, AnalysisResult, RecordingFeatures, engine, pipeline) for the two-sentence clip,
    analysed once per test process with the real pipeline and the default model."""
    from analysis.analyzer import Analyzer
    from models.defaults import DEFAULT_MODEL

    if "analysis" not in _SHARED:
        clip = two_sentence_clip()
        cache = shared_model_cache()
        engine = cache.engine(DEFAULT_MODEL, "cpu")
        pipeline = cache.pipeline(engine.spec, engine.device)
        run = Analyzer(engine, pipeline, cache=None).run(str(clip))
        result, rec = run.result, run.features
        _SHARED["analysis"] = (clip, result, rec, engine, pipeline)
    return _SHARED["analysis"]
