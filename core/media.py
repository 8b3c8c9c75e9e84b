"""Media decoding with PyAV only (the FFmpeg libraries bundled in the wheel; no system ffmpeg).

Public API: `probe`, `load_audio`, `iter_frames`. Every user-facing failure is a `MediaError` with a
one-line message. Times are seconds from the container start, so audio sample 0 and the first
video frame share one timeline even when a stream starts late (common in MPEG-PS and webcam files).

Damaged files: per-packet decode errors are skipped; a demuxer error stops decoding. Either way, if
something was decoded we keep it and `ctx.warn(...)`; if nothing was, we raise. A file that ends
well before its declared duration (truncated download) also gets a warning.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from core.errors import MediaError
from core.progress import RunContext
from core.types import MediaInfo

# The file names batch folders, dataset extraction and the live file source look for. FFmpeg sniffs
# the container from the content, so this is about finding files, not decoding them; every entry is
# decoded in tests/test_batch.py (test_every_listed_container_is_really_decoded_by_the_media_layer).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".flv", ".f4v",
                    ".ts", ".mts", ".m2ts", ".3gp", ".3g2", ".wmv", ".asf", ".ogv", ".vob", ".mxf")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aiff",
                    ".aif", ".amr", ".mka", ".ac3", ".caf", ".au", ".w64", ".wv")
SUPPORTED_EXTENSIONS = VIDEO_EXTENSIONS + AUDIO_EXTENSIONS

# Demuxers FFmpeg accepts but that are never user media: "tty" renders text files as ANSI art.
_REJECTED_FORMATS = {"tty"}
# A decode that reaches less than this share of the declared duration is reported as truncated.
_TRUNCATION_RATIO = 0.9
_TRUNCATION_SLACK_S = 0.5
# Stop after this many undecodable packets in a row: the rest of the file is garbage.
_MAX_CONSECUTIVE_BAD_PACKETS = 50
# Audio timestamps further ahead of the samples decoded so far than this mean lost data.
_GAP_FILL_S = 0.1


# --------------------------------------------------------------------------------------- opening


def check_media_file(path: str | os.PathLike) -> Path:
    """Exists, is a file, is not empty (cheap; before models load). Raises MediaError."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"file not found: {p}")
    if p.is_dir():
        raise MediaError(f"not a file (a folder): {p}")
    if p.stat().st_size == 0:
        raise MediaError(f"file is empty (0 bytes): {p.name}")
    return p


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, Path]:
    p = check_media_file(path)
    try:
        container = av.open(str(p), mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError:
        raise MediaError(f"cannot read {p.name}: not a media file, or its header is corrupt or "
                         "truncated") from None
    except av.error.EOFError:
        raise MediaError(f"cannot read {p.name}: file ends inside its header (truncated)") from None
    except PermissionError:
        raise MediaError(f"permission denied: {p}") from None
    except (av.error.FFmpegError, OSError) as exc:
        raise MediaError(f"cannot open {p.name}: {_short(exc)}") from None
    if container.format.name in _REJECTED_FORMATS:
        container.close()
        raise MediaError(f"not a media file (looks like text): {p.name}")
    return container, p


def _short(exc: BaseException) -> str:
    """FFmpeg messages repeat the errno and path; keep the readable part on one line."""
    msg = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(msg).split())


def _is_cover_art(stream: av.stream.Stream) -> bool:
    # An MP3/FLAC/M4A cover image is exposed as a one-frame video stream; it is not video.
    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream | None:
    streams = [s for s in container.streams.video if not _is_cover_art(s) and s.codec_context is not None]
    return streams[0] if streams else None


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    # A file cut inside a stream header leaves a stream without codec parameters: not decodable.
    streams = [s for s in container.streams.audio if s.codec_context is not None]
    return streams[0] if streams else None


def _origin(container: av.container.InputContainer) -> float:
    """Container start time in seconds; 0 when unknown."""
    start = container.start_time
    return 0.0 if start is None else start / av.time_base


def _stream_seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _declared_duration(container: av.container.InputContainer) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    best = None
    for s in container.streams:
        d = _stream_seconds(s.duration, s.time_base)
        if d is not None and d > 0:
            best = d if best is None else max(best, d)
    return best


def _demuxed_duration(container: av.container.InputContainer) -> float:
    """Fallback when no header states a duration (e.g. live-recorded webm): scan packet times.
    Demuxing without decoding is cheap."""
    origin = _origin(container)
    end = 0.0
    try:
        for packet in container.demux():
            if packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.duration:
                t += float(packet.duration * packet.time_base)
            end = max(end, t - origin)
    except av.error.FFmpegError:
        pass  # damaged tail: the scanned part is the best estimate
    return end


# ----------------------------------------------------------------------------------------- probe


def probe(path: str | os.PathLike) -> MediaInfo:
    """Describe a media file without decoding it. Raises MediaError when it has neither audio
    nor video."""
    container, p = _open(path)
    try:
        video = _video_stream(container)
        audio = _audio_stream(container)
        if video is None and audio is None:
            raise MediaError(f"no audio or video stream in {p.name}")
        duration = _declared_duration(container)
        if duration is None:
            duration = _demuxed_duration(container)
        info = MediaInfo(
            path=str(p),
            duration=float(duration),
            has_audio=audio is not None,
            has_video=video is not None,
            container=container.format.name,
            size_bytes=p.stat().st_size,
        )
        if video is not None:
            rate = video.average_rate or video.guessed_rate or video.base_rate
            info.video_fps = float(rate) if rate else None
            info.width = video.codec_context.width or None
            info.height = video.codec_context.height or None
        if audio is not None:
            info.audio_sample_rate = audio.codec_context.sample_rate or None
            info.audio_channels = audio.codec_context.channels or None
        return info
    finally:
        container.close()


# ----------------------------------------------------------------------------------------- audio


class _GrowingBuffer:
    """float32 buffer that doubles when full, so long files need O(log n) copies, not O(n)."""

    def __init__(self, capacity: int) -> None:
        self._data = np.empty(max(capacity, 1024), dtype=np.float32)  # every slot is written
        self.size = 0

    def append(self, chunk: np.ndarray) -> None:
        need = self.size + len(chunk)
        if need > len(self._data):
            bigger = np.empty(max(need, 2 * len(self._data)), dtype=np.float32)
            bigger[: self.size] = self._data[: self.size]
            self._data = bigger
        self._data[self.size:need] = chunk
        self.size = need

    def result(self, limit: int | None = None) -> np.ndarray:
        n = self.size if limit is None else min(self.size, limit)
        if len(self._data) - n <= max(16000, n // 20):
            return self._data[:n]  # nearly full (the usual case): skip a second full-size copy
        return self._data[:n].copy()


def load_audio(path: str | os.PathLike, sr: int = 16000, ctx: RunContext | None = None,
               max_seconds: float | None = None) -> np.ndarray:
    """Decode the first audio stream to mono float32 at `sr` Hz, streaming frame by frame.

    Progress goes to ctx stage "decode". Raises MediaError("no audio stream ...") for video-only
    files so callers can decide whether audio is optional.
    """
    stream = _AudioDecode(path, sr, ctx, max_seconds)
    buf = _GrowingBuffer(int(stream.expected_seconds * sr) + sr)
    for chunk in stream:
        buf.append(chunk)
    wave = buf.result(stream.limit)
    stream.finish(len(wave))
    return wave


def iter_audio_blocks(path: str | os.PathLike, sr: int = 16000, block_seconds: float = 300.0,
                      ctx: RunContext | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (start_seconds, mono float32 block) of `block_seconds` each (the last may be shorter),
    so that hour-long recordings never sit in memory whole. Same samples as `load_audio`."""
    if block_seconds <= 0:
        raise ValueError("block_seconds must be positive")
    stream = _AudioDecode(path, sr, ctx, None)
    block = int(round(block_seconds * sr))
    pending: list[np.ndarray] = []
    n_pending = emitted = 0
    for chunk in stream:
        pending.append(chunk)
        n_pending += len(chunk)
        while n_pending >= block:
            joined = np.concatenate(pending)
            yield emitted / sr, joined[:block]
            emitted += block
            rest = joined[block:]
            pending, n_pending = ([rest] if len(rest) else []), len(rest)
    if n_pending:
        yield emitted / sr, np.concatenate(pending)
        emitted += n_pending
    stream.finish(emitted)


class _AudioDecode:
    """The decode loop shared by load_audio and iter_audio_blocks: iterating yields float32 chunks
    (decoded audio, or zeros that keep sample i at time i/sr); `finish(n)` raises or warns."""

    def __init__(self, path: str | os.PathLike, sr: int, ctx: RunContext | None,
                 max_seconds: float | None) -> None:
        if sr <= 0:
            raise ValueError("sr must be positive")
        self.sr, self.ctx = sr, ctx
        self.container, self.path = _open(path)
        self.stream = _audio_stream(self.container)
        if self.stream is None:
            self.container.close()
            raise MediaError(f"no audio stream in {self.path.name}")
        self.stream.thread_type = "AUTO"
        self.declared = _declared_duration(self.container)
        self.max_seconds = max_seconds
        self.limit = None if max_seconds is None else max(0, int(round(max_seconds * sr)))
        expect = self.declared if self.declared is not None else 60.0
        self.expected_seconds = min(expect, max_seconds) if max_seconds is not None else expect
        self.bad_packets = 0
        self.gap_s = 0.0
        self.stop_reason = ""

    def __iter__(self) -> Iterator[np.ndarray]:
        sr, ctx, limit, container = self.sr, self.ctx, self.limit, self.container
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sr)
        origin = _origin(container)
        placed_start = False
        pos = consecutive_bad = 0
        last_report = -1.0
        try:
            try:
                for packet in container.demux(self.stream):
                    try:
                        decoded = packet.decode()
                        consecutive_bad = 0
                    except (av.error.InvalidDataError, av.error.PatchWelcomeError,
                            av.error.UndefinedError) as exc:
                        self.bad_packets += 1
                        consecutive_bad += 1
                        if consecutive_bad >= _MAX_CONSECUTIVE_BAD_PACKETS:
                            self.stop_reason = _short(exc)
                            break
                        continue
                    for frame in decoded:
                        if frame.time is not None:
                            # Keep sample i at time i/sr on the container timeline: a stream that
                            # starts late gets leading silence, and a hole (lost packets) is filled
                            # with silence instead of pulling later audio out of sync with video.
                            expected = int(round((frame.time - origin) * sr))
                            gap = expected - pos
                            if (not placed_start and expected > sr // 1000) or (
                                placed_start and gap > _GAP_FILL_S * sr
                            ):
                                if placed_start:
                                    self.gap_s += gap / sr
                                yield np.zeros(gap, dtype=np.float32)
                                pos = expected
                        placed_start = True
                        for out in resampler.resample(frame):
                            chunk = out.to_ndarray().reshape(-1)
                            pos += len(chunk)
                            yield chunk
                        t = pos / sr
                        if ctx is not None and self.declared and t - last_report >= 0.5:
                            ctx.report("decode", t / (self.max_seconds or self.declared), f"audio {t:.1f} s")
                            last_report = t
                    if limit is not None and pos >= limit:
                        break
            except av.error.FFmpegError as exc:  # demuxer gave up: damaged or truncated container
                self.stop_reason = _short(exc)
            if not self.stop_reason and (limit is None or pos < limit):
                try:
                    for out in resampler.resample(None):  # flush the resampler's delay line
                        yield out.to_ndarray().reshape(-1)
                except av.error.FFmpegError:
                    pass
        finally:
            container.close()

    def finish(self, n_samples: int) -> None:
        decoded_s = n_samples / self.sr
        ctx, name = self.ctx, self.path.name
        if n_samples == 0:
            detail = f" ({self.stop_reason})" if self.stop_reason else ""
            raise MediaError(f"could not decode any audio from {name}{detail}")
        if ctx is None:
            return
        if self.stop_reason or self.bad_packets or self.gap_s:
            ctx.warn(f"{name}: audio is damaged ({self.bad_packets} bad packet(s), "
                     f"{self.gap_s:.1f} s of gaps filled with silence"
                     f"{'; stopped: ' + self.stop_reason if self.stop_reason else ''}); "
                     f"kept {decoded_s:.1f} s")
        elif self.limit is None and _looks_truncated(decoded_s, self.declared):
            ctx.warn(f"{name}: audio ends at {decoded_s:.1f} s but the file declares "
                     f"{self.declared:.1f} s (truncated or damaged)")
        ctx.report("decode", 1.0, f"audio {decoded_s:.1f} s")


def _looks_truncated(decoded_s: float, declared: float | None) -> bool:
    return declared is not None and decoded_s < _TRUNCATION_RATIO * declared - _TRUNCATION_SLACK_S


# ----------------------------------------------------------------------------------------- video


def iter_frames(path: str | os.PathLike, fps: float = 10.0, max_side: int = 640,
                ctx: RunContext | None = None, start: float = 0.0,
                end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (t, RGB uint8 HxWx3) on the regular grid t = k/fps, each the decoded frame nearest t.

    Opening and stream checks happen now (so bad files raise here, not on first `next`); decoding
    happens lazily. Variable frame rate is handled through pts; a slower source repeats frames, a
    faster one drops them. Frames are downscaled so the longer side is <= max_side and rotated
    upright when the file carries a display-rotation tag (phone videos). Progress: ctx "frames".

    `start`/`end` restrict the output to grid times in [start, end) (the same times and frames a
    full pass gives there), seeking to the keyframe before `start`, so that parts of one file can
    be decoded in parallel. A range past the end of the video yields nothing instead of raising.
    """
    if fps <= 0:
        raise ValueError("fps must be positive")
    if max_side <= 0:
        raise ValueError("max_side must be positive")
    if start < 0 or (end is not None and end <= start):
        raise ValueError("need 0 <= start < end")
    container, stream, p = _open_video(path)
    return _frame_generator(container, stream, p, fps, max_side, ctx, start, end)


def _open_video(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, Path]:
    container, p = _open(path)
    stream = _video_stream(container)
    if stream is None:
        container.close()
        raise MediaError(f"no video stream in {p.name}")
    stream.thread_type = "AUTO"  # frame/slice threads: ~2x faster decode on multi-core
    return container, stream, p


def _to_rgb(frame: av.VideoFrame, max_side: int) -> np.ndarray:
    w, h = frame.width, frame.height
    scale = min(1.0, max_side / max(w, h))
    tw, th = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    img = _yuv420_to_rgb(frame, tw, th)
    if img is None:
        img = frame.to_ndarray(format="rgb24", width=tw, height=th)
    rotation = getattr(frame, "rotation", 0) or 0
    quarter_turns = int(round(rotation / 90.0)) % 4  # counter-clockwise display rotation
    if quarter_turns:
        img = np.ascontiguousarray(np.rot90(img, k=quarter_turns))
    return img


# Limited-range yuv420p, as H.264/MPEG video almost always is. Full-range ("yuvj") frames and other
# layouts go through swscale, which knows their conversion.
_FAST_YUV_FORMATS = {"yuv420p"}
_FULL_RANGE = 2  # AVCOL_RANGE_JPEG


def _yuv420_to_rgb(frame: av.VideoFrame, tw: int, th: int) -> np.ndarray | None:
    """Scale the Y and chroma planes separately, then convert with OpenCV: ~0.7 ms for a 720p frame
    against ~5 ms for swscale's scale+convert to rgb24 (profiled; it was a tenth of the visual
    stage). Both use BT.601 limited-range coefficients, so the pictures agree to a few levels.
    None when the frame is not plain even-sized yuv420p."""
    w, h = frame.width, frame.height
    if frame.format.name not in _FAST_YUV_FORMATS or w % 2 or h % 2 or frame.color_range == _FULL_RANGE:
        return None
    try:
        import cv2
    except ImportError:
        return None
    planes = frame.to_ndarray()  # (h * 3/2, w): Y, then U and V at half resolution
    if planes.shape != (h * 3 // 2, w):
        return None
    tw, th = max(2, tw - tw % 2), max(2, th - th % 2)
    chroma = planes[h:].reshape(2, h // 2, w // 2)
    if (tw, th) == (w, h):
        i420 = planes
    else:
        # INTER_AREA averages the source pixels a target pixel covers: no aliasing when shrinking.
        y = cv2.resize(planes[:h], (tw, th), interpolation=cv2.INTER_AREA)
        u = cv2.resize(chroma[0], (tw // 2, th // 2), interpolation=cv2.INTER_AREA)
        v = cv2.resize(chroma[1], (tw // 2, th // 2), interpolation=cv2.INTER_AREA)
        i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(th * 3 // 2, tw)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def _native_step(stream: av.video.stream.VideoStream) -> float:
    """Seconds per frame at the stream's nominal rate (25 fps when none is declared)."""
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return 1.0 / float(rate) if rate else 1.0 / 25.0


def _frame_duration(frame: av.VideoFrame) -> float | None:
    dur, tb = getattr(frame, "duration", None), frame.time_base
    if not dur or tb is None:
        return None
    return float(dur * tb)


def _seek_before(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 t: float, origin: float) -> bool:
    """Position the demuxer on the keyframe at or before container time t; False when impossible."""
    if stream.time_base is None:
        return False
    try:
        container.seek(int((t + origin) / stream.time_base), stream=stream, backward=True, any_frame=False)
    except (av.error.FFmpegError, OSError, ValueError):
        return False
    return True


class _SeekOvershoot(Exception):
    """The first frame after a seek lies after the range start (inexact index)."""


def _frame_generator(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                     p: Path, fps: float, max_side: int, ctx: RunContext | None,
                     start: float = 0.0, end: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    if start > 0:
        origin = _origin(container)
        # Two frames of lead: the frame just before `start` is needed to pick the nearest frame.
        if _seek_before(container, stream, max(0.0, start - 2 * _native_step(stream)), origin):
            try:
                yield from _decode_range(container, stream, p, fps, max_side, ctx, start, end, True)
                return
            except _SeekOvershoot:
                pass  # nothing was yielded yet: decode from the top instead
        # No usable seek (some MPEG-PS/AVI files): decode from the top, dropping frames before start.
        container.close()
        container, stream, _ = _open_video(p)
    yield from _decode_range(container, stream, p, fps, max_side, ctx, start, end, False)


def _decode_range(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  p: Path, fps: float, max_side: int, ctx: RunContext | None, start: float,
                  end: float | None, seeked: bool) -> Iterator[tuple[float, np.ndarray]]:
    origin = _origin(container)
    declared = _declared_duration(container)
    native_step = _native_step(stream)
    step = 1.0 / fps
    first_k = math.ceil(start / step - 1e-9)  # first grid index in the range
    k = None  # index of the next target time k/fps
    prev: tuple[float, av.VideoFrame] | None = None
    prev_rgb: tuple[av.VideoFrame, np.ndarray] | None = None  # conversion cache for repeats
    yielded = bad_packets = consecutive_bad = corrupt_frames = 0
    stop_reason = ""
    last_report = -1.0
    reached_end = False

    def in_range(kk: int) -> bool:
        return end is None or kk * step < end - 1e-9

    def rgb_of(frame: av.VideoFrame) -> np.ndarray:
        nonlocal prev_rgb
        if prev_rgb is None or prev_rgb[0] is not frame:
            prev_rgb = (frame, _to_rgb(frame, max_side))
        return prev_rgb[1].copy()

    try:
        try:
            for packet in container.demux(stream):
                try:
                    decoded = packet.decode()
                    consecutive_bad = 0
                except (av.error.InvalidDataError, av.error.PatchWelcomeError,
                        av.error.UndefinedError) as exc:
                    bad_packets += 1
                    consecutive_bad += 1
                    if consecutive_bad >= _MAX_CONSECUTIVE_BAD_PACKETS:
                        stop_reason = _short(exc)
                        break
                    continue
                for frame in decoded:
                    corrupt_frames += bool(getattr(frame, "is_corrupt", False))
                    if frame.time is not None:
                        t = frame.time - origin
                    else:  # no pts: assume constant rate after the previous frame
                        t = (prev[0] + native_step) if prev else 0.0
                    if prev is not None and t <= prev[0]:
                        continue  # duplicate / out-of-order timestamp: keep the first
                    if k is None:
                        if seeked and prev is None and t > start + native_step / 2 + 1e-6:
                            raise _SeekOvershoot
                        # Start at the first grid point this frame can stand for.
                        k = max(first_k, math.ceil((t - native_step / 2) / step - 1e-9))
                    while k * step <= t + 1e-9 and in_range(k):
                        target = k * step
                        use_prev = prev is not None and (target - prev[0]) < (t - target)
                        chosen = prev[1] if use_prev else frame
                        yield round(target, 6), rgb_of(chosen)
                        yielded += 1
                        k += 1
                    prev = (t, frame)
                    reached_end = not in_range(k)
                    if reached_end:
                        break
                    if ctx is not None and declared and t - last_report >= 0.5:
                        ctx.report("frames", t / declared, f"video {t:.1f} s")
                        last_report = t
                if reached_end:
                    break
        except av.error.FFmpegError as exc:
            stop_reason = _short(exc)

        if prev is not None and k is not None:
            # Targets after the last frame's timestamp but before it ends still map to it.
            last_end = prev[0] + (_frame_duration(prev[1]) or native_step)
            while k * step < last_end - 1e-9 and in_range(k):
                yield round(k * step, 6), rgb_of(prev[1])
                yielded += 1
                k += 1

        if yielded == 0 and start == 0:
            detail = f" ({stop_reason})" if stop_reason else ""
            raise MediaError(f"could not decode any video frame from {p.name}{detail}")
        if ctx is not None:
            last_t = prev[0] if prev else 0.0
            if stop_reason or bad_packets or corrupt_frames:
                ctx.warn(f"{p.name}: video is damaged ({bad_packets} bad packet(s), "
                         f"{corrupt_frames} corrupt frame(s)"
                         f"{'; stopped: ' + stop_reason if stop_reason else ''}); "
                         f"kept {last_t:.1f} s")
            elif end is None and _looks_truncated(last_t + native_step, declared):
                ctx.warn(f"{p.name}: video ends at {last_t:.1f} s but the file declares "
                         f"{declared:.1f} s (truncated or damaged)")
            ctx.report("frames", 1.0, f"video {last_t:.1f} s")
    finally:
        container.close()
