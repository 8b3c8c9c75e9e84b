"""Pluggable capture sources for live mode (Qt-free).

Camera: `CameraSource(spec)` where spec is a device index ("0"), a stream URL
(``tcp://127.0.0.1:5000`` — e.g. ``ffmpeg -re ... -f mpegts tcp://127.0.0.1:5000?listen=1``) or a
video file (played at its native frame rate, so a recording can stand in for a webcam).

Camera with its own audio: `CameraAudioSource(spec)` decodes the video and the audio of one file or
stream together (one connection, which a single-client stream needs); the app's "Audio of the
camera file or stream" microphone choice.

Microphone: `MicSource(device, backend)` with backends
  - "sounddevice": PortAudio (needs the libportaudio2 system library);
  - "parec": PulseAudio's `parec` command (works in containers with a PulseAudio server, including
    a module-pipe-source fake microphone);
  - "auto": sounddevice when PortAudio loads, else parec.
`ArrayAudioSource` plays a waveform (or the audio of a media file) in real time.

Every source calls its sink from its own thread with a capture timestamp from `clock`
(time.monotonic), which is what the live lag is measured against. `stop()` returns within ~1 s.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
import wave
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import MSAError
from core.media import VIDEO_EXTENSIONS

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FrameSink = Callable[[np.ndarray, float], None]  # (BGR uint8 frame, capture time)
AudioSink = Callable[[np.ndarray, float], None]  # (float32 mono samples, capture time of last one)
VIDEO_FILE_EXTENSIONS = VIDEO_EXTENSIONS  # the media layer's list: one place decides what a video file is


class LiveSourceError(MSAError):
    """A camera or microphone could not be opened or stopped delivering data."""


class _ThreadedSource:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _start_thread(self, name: str) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._guarded_run, name=name, daemon=True)
        self._thread.start()

    def _guarded_run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # surfaced through .error; the UI polls it
            self.error = str(exc) or exc.__class__.__name__
            log.warning("%s stopped: %s", self.__class__.__name__, self.error)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self, timeout: float = 1.0) -> bool:
        self._stop.set()
        self._on_stop()
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.running

    def _on_stop(self) -> None:
        """Unblock the worker thread (close a pipe, ...)."""


# -------------------------------------------------------------------------------------- camera


def _is_video_file(spec: int | str) -> bool:
    """A camera spec naming a video file (paced to its frame rate and looped), not a stream URL."""
    return isinstance(spec, str) and Path(spec).suffix.lower() in VIDEO_FILE_EXTENSIONS


def _check_camera_file(spec: int | str) -> None:
    if _is_video_file(spec) and not Path(str(spec)).exists():
        raise LiveSourceError(f"camera file not found: {spec}")


def parse_camera_spec(spec: str | int) -> int | str:
    """'0' -> 0 (device index); URLs and file paths stay strings."""
    if isinstance(spec, int):
        return spec
    s = str(spec).strip()
    if not s:
        raise LiveSourceError("no camera given")
    return int(s) if s.isdigit() else s


class CameraSource(_ThreadedSource):
    """OpenCV VideoCapture on a device index, a stream URL or a video file (paced in real time)."""

    def __init__(
        self,
        spec: str | int,
        on_frame: FrameSink,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
        loop_file: bool = True,
    ) -> None:
        super().__init__(clock)
        self.spec = parse_camera_spec(spec)
        self.on_frame = on_frame
        self.open_timeout = open_timeout
        self.loop_file = loop_file
        self.is_file = _is_video_file(self.spec)
        self.frames = 0
        self.fps = 0.0
        self.opened = threading.Event()

    def start(self) -> None:
        _check_camera_file(self.spec)
        self._start_thread("camera")

    def _open(self):
        import cv2

        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.open_timeout * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, 2000]
        if isinstance(self.spec, int):
            cap = cv2.VideoCapture(self.spec)
        else:
            cap = cv2.VideoCapture(self.spec, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise LiveSourceError(f"cannot open camera {self.spec!r}")
        return cap

    def _run(self) -> None:
        cap = self._open()
        try:
            self.fps = float(cap.get(5) or 0.0)  # CAP_PROP_FPS
            self.opened.set()
            period = 1.0 / self.fps if (self.is_file and self.fps > 0) else 0.0
            next_due = self.clock()
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok:
                    if self.is_file and self.loop_file:
                        cap.set(1, 0)  # CAP_PROP_POS_FRAMES: rewind
                        continue
                    raise LiveSourceError(f"camera {self.spec!r} stopped sending frames")
                if period:
                    # A file has no natural pace: sleep to its frame rate like a real camera.
                    next_due += period
                    wait = next_due - self.clock()
                    if wait > 0 and self._stop.wait(wait):
                        break
                self.frames += 1
                self.on_frame(frame, self.clock())
        finally:
            cap.release()


class CameraAudioSource(_ThreadedSource):
    """The frames and the audio of one video file or stream, decoded together with PyAV.

    One connection serves both, so a stream that accepts a single client (ffmpeg
    ``tcp://…?listen=1``) still gives picture and sound. A file is paced by its timestamps, like a
    camera and a microphone, and loops; a stream arrives at its own pace. Without an audio track
    it delivers frames only (`has_audio` is False once `opened` is set)."""

    def __init__(
        self,
        spec: str,
        on_frame: FrameSink,
        on_audio: AudioSink,
        clock: Callable[[], float] = time.monotonic,
        open_timeout: float = 10.0,
        read_timeout: float = 2.0,
        loop_file: bool = True,
    ) -> None:
        super().__init__(clock)
        self.spec = parse_camera_spec(spec)
        if isinstance(self.spec, int):
            raise LiveSourceError(f"camera {self.spec} is a device, not a file or stream: it has no audio to read")
        self.on_frame = on_frame
        self.on_audio = on_audio
        self.timeouts = (open_timeout, read_timeout)
        self.loop_file = loop_file
        self.is_file = _is_video_file(self.spec)
        self.frames = 0
        self.samples = 0
        self.passes = 0  # times a file was played to its end
        self.fps = 0.0
        self.has_audio = False
        self.opened = threading.Event()

    def start(self) -> None:
        _check_camera_file(self.spec)
        self._start_thread("camera-audio")

    def _open(self):
        import av

        try:
            return av.open(str(self.spec), timeout=self.timeouts, metadata_errors="ignore")
        except (av.FFmpegError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)  # without PyAV repeating the URL
            raise LiveSourceError(f"cannot open camera {self.spec!r}: {reason}") from None

    def _run(self) -> None:
        # A file loops by opening it again: seeking MPEG program streams back to 0 lands on the
        # second group of pictures, which would drop half a second of video each time round.
        while not self._stop.is_set():
            container = self._open()
            try:
                if not self._play(container):
                    return
            finally:
                container.close()
            self.passes += 1
            if not (self.is_file and self.loop_file):
                raise LiveSourceError(f"camera {self.spec!r} stopped sending frames")

    def _play(self, container) -> bool:
        """Deliver everything once; False when stopped, True at the end of the file or stream."""
        import av

        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise LiveSourceError(f"camera {self.spec!r} has neither video nor audio")
        self.has_audio = audio is not None
        self.fps = float(video.average_rate or 0.0) if video is not None else 0.0
        self.opened.set()
        streams = [s for s in (video, audio) if s is not None]

        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        origin: float | None = None  # clock time of media time 0 in this pass (files only)
        for packet in container.demux(*streams):
            if self._stop.is_set():
                return False
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:  # a damaged packet, or a stream joined mid-GOP
                continue
            for frame in frames:
                is_video = isinstance(frame, av.VideoFrame)
                if self.is_file and frame.time is not None:
                    # Sound is due once its last sample has "happened", like a microphone block.
                    due_at = frame.time if is_video else frame.time + frame.samples / frame.sample_rate
                    if origin is None:
                        origin = self.clock() - due_at
                    wait = origin + due_at - self.clock()
                    if wait > 0 and self._stop.wait(wait):
                        return False
                if is_video:
                    self.frames += 1
                    self.on_frame(frame.to_ndarray(format="bgr24"), self.clock())
                    continue
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
                    self.samples += samples.size
                    self.on_audio(samples, self.clock())
        return not self._stop.is_set()


# ---------------------------------------------------------------------------------- microphone


def portaudio_available() -> bool:
    try:
        import sounddevice  # noqa: F401  (raises OSError when the PortAudio library is missing)
    except (ImportError, OSError):
        return False
    return True


def portaudio_inputs() -> list[str]:
    """Names of the capture devices PortAudio finds; [] without PortAudio or without any.

    With none, PortAudio still answers for a "default" input (device -1) that fails to open
    ("Error querying device -1"), so only a listed device counts as a microphone."""
    try:
        import sounddevice as sd

        devices = sd.query_devices()
    except Exception:  # ImportError, OSError (no PortAudio library), sounddevice.PortAudioError
        return []
    return [str(d["name"]) for d in devices if int(d.get("max_input_channels", 0)) > 0]


def pulseaudio_available() -> bool:
    if shutil.which("parec") is None or shutil.which("pactl") is None:
        return False
    try:
        return subprocess.run(["pactl", "info"], capture_output=True, timeout=3).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def list_pulse_sources() -> list[str]:
    """Names of PulseAudio capture sources (monitors of outputs excluded)."""
    if shutil.which("pactl") is None:
        return []
    try:
        out = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [line.split("\t")[1] for line in out.stdout.splitlines() if "\t" in line]
    return [n for n in names if not n.endswith(".monitor")]


class MicSource(_ThreadedSource):
    """16 kHz mono microphone capture in blocks of `block_s` seconds."""

    def __init__(
        self,
        on_audio: AudioSink,
        device: str | None = None,
        backend: str = "auto",
        sample_rate: int = SAMPLE_RATE,
        block_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.on_audio = on_audio
        self.device = device or None
        self.sample_rate = int(sample_rate)
        self.block = max(1, int(block_s * sample_rate))
        self.backend = self._pick_backend(backend)
        self._proc: subprocess.Popen | None = None
        self._stream = None
        self.samples = 0

    @staticmethod
    def _pick_backend(backend: str) -> str:
        if backend == "auto":
            if portaudio_available():
                return "sounddevice"
            if pulseaudio_available():
                return "parec"
            raise LiveSourceError(
                "no microphone backend: install the PortAudio library (libportaudio2) or run PulseAudio"
            )
        if backend not in ("sounddevice", "parec"):
            raise LiveSourceError(f"unknown microphone backend {backend!r}; use auto, sounddevice or parec")
        return backend

    def start(self) -> None:
        if self.backend == "sounddevice":
            self._start_sounddevice()
        else:
            self._start_parec()

    # -- sounddevice: PortAudio calls us back on its own thread
    def _start_sounddevice(self) -> None:
        import sounddevice as sd

        def callback(indata, frames, time_info, status):  # noqa: ARG001
            self.samples += frames
            self.on_audio(indata[:, 0].astype(np.float32, copy=True), self.clock())

        try:
            self._stream = sd.InputStream(
                samplerate=self.sample_rate, channels=1, dtype="float32", blocksize=self.block,
                device=self.device, callback=callback,
            )
            self._stream.start()
        except Exception as exc:
            raise LiveSourceError(f"cannot open microphone {self.device or '(default)'}: {exc}") from None

    # -- parec: raw s16le on stdout, read in a thread
    def _start_parec(self) -> None:
        exe = shutil.which("parec")
        if exe is None:
            raise LiveSourceError("parec (PulseAudio) is not installed")
        cmd = [exe, "--format=s16le", f"--rate={self.sample_rate}", "--channels=1", "--raw", "--latency-msec=30"]
        if self.device:
            cmd.append(f"--device={self.device}")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self._start_thread("mic-parec")

    def _run(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        nbytes = self.block * 2
        pending = b""
        while not self._stop.is_set():
            chunk = self._proc.stdout.read(nbytes - len(pending))
            if not chunk:
                if self._stop.is_set():
                    break
                err = (self._proc.stderr.read() or b"").decode(errors="replace").strip() if self._proc.stderr else ""
                raise LiveSourceError(f"microphone stopped: {err or 'parec exited'}")
            pending += chunk
            if len(pending) < nbytes:
                continue
            samples = np.frombuffer(pending, dtype="<i2").astype(np.float32) / 32768.0
            pending = b""
            self.samples += samples.size
            self.on_audio(samples, self.clock())

    def _on_stop(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(1.0)
            except subprocess.TimeoutExpired:
                self._proc.kill()

    def stop(self, timeout: float = 1.0) -> bool:
        ok = super().stop(timeout)
        if self._proc is not None:
            for pipe in (self._proc.stdout, self._proc.stderr):
                if pipe is not None:
                    pipe.close()
        return ok


class ArrayAudioSource(_ThreadedSource):
    """Plays a float32 16 kHz waveform into the sink in real time (a microphone stand-in)."""

    def __init__(
        self,
        wave_data: np.ndarray,
        on_audio: AudioSink,
        sample_rate: int = SAMPLE_RATE,
        block_s: float = 0.05,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(clock)
        self.wave = np.asarray(wave_data, dtype=np.float32).reshape(-1)
        self.on_audio = on_audio
        self.sample_rate = int(sample_rate)
        self.block = max(1, int(block_s * sample_rate))
        self.loop = loop
        self.samples = 0

    @classmethod
    def from_media(cls, path: str, on_audio: AudioSink, **kwargs) -> "ArrayAudioSource":
        from core.media import load_audio

        return cls(load_audio(path, sr=SAMPLE_RATE), on_audio, **kwargs)

    def start(self) -> None:
        self._start_thread("mic-array")

    def _run(self) -> None:
        pos, n = 0, len(self.wave)
        start = self.clock()
        while not self._stop.is_set():
            if pos >= n:
                if not self.loop or n == 0:
                    break
                pos = 0
            chunk = self.wave[pos : pos + self.block]
            pos += len(chunk)
            self.samples += len(chunk)
            due = start + self.samples / self.sample_rate
            wait = due - self.clock()
            if wait > 0 and self._stop.wait(wait):
                break
            self.on_audio(chunk, self.clock())


# ------------------------------------------------------------------------------------ recorder


class LiveRecorder:
    """Optional recording of a live session: frames to an MJPG .avi, audio to a .wav, muxed into
    `path` with ffmpeg when it is installed (else the two files are kept side by side)."""

    def __init__(self, path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, fps: float = 25.0) -> None:
        self.path = Path(path)
        self.sample_rate = sample_rate
        self.fps = fps
        self.video_path = self.path.with_suffix(".video.avi")
        self.audio_path = self.path.with_suffix(".audio.wav")
        self._writer = None
        self._wav = wave.open(str(self.audio_path), "wb")
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(sample_rate)
        self._lock = threading.Lock()
        self.closed = False
        self.frames = 0

    def add_frame(self, frame: np.ndarray, t: float) -> None:  # noqa: ARG002 - sink signature
        import cv2

        with self._lock:
            if self.closed:
                return
            if self._writer is None:
                h, w = frame.shape[:2]
                self._writer = cv2.VideoWriter(str(self.video_path), cv2.VideoWriter_fourcc(*"MJPG"), self.fps, (w, h))
            self._writer.write(frame)
            self.frames += 1

    def add_audio(self, samples: np.ndarray, t: float) -> None:  # noqa: ARG002
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        with self._lock:
            if not self.closed:
                self._wav.writeframes(pcm)

    def close(self) -> list[Path]:
        """Finish the files; returns the paths written."""
        with self._lock:
            if self.closed:
                return []
            self.closed = True
            if self._writer is not None:
                self._writer.release()
            self._wav.close()
        parts = [p for p in (self.video_path, self.audio_path) if p.exists() and p.stat().st_size > 44]
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg and self.frames and len(parts) == 2:
            cmd = [ffmpeg, "-y", "-loglevel", "error", "-i", str(self.video_path), "-i", str(self.audio_path),
                   "-c:v", "copy" if self.path.suffix.lower() in (".avi", ".mkv") else "libx264",
                   "-c:a", "pcm_s16le" if self.path.suffix.lower() in (".avi", ".mkv") else "aac",
                   "-shortest", str(self.path)]
            if subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0:
                for p in parts:
                    p.unlink(missing_ok=True)
                return [self.path]
        return parts
