"""core.media on real files written by tests.media_factory (PyAV encoders, espeak speech)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.errors import Cancelled, MediaError
from core.media import iter_frames, load_audio, probe
from core.progress import RunContext
from tests.media_factory import (GRID_DIR, cached_audio, cached_video, estimate_time_from_frame,
                                 frame_times, requires_grid, truncate_file)

VIDEO_EXTS = [".mp4", ".mkv", ".webm", ".avi", ".mpg", ".mov"]
AUDIO_EXTS = [".wav", ".flac", ".mp3", ".ogg", ".m4a"]


def dominant_hz(wave: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / sr)[np.argmax(spec)])


# ------------------------------------------------------------------------------ containers


@pytest.mark.parametrize("ext", VIDEO_EXTS)
def test_video_containers_decode_audio_and_frames(ext):
    path = cached_video(ext, duration=2.0)
    info = probe(path)
    assert info.has_audio and info.has_video
    assert info.duration == pytest.approx(2.0, abs=0.1)
    assert info.video_fps == pytest.approx(25.0)
    assert (info.width, info.height) == (320, 240)

    wave = load_audio(path)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert len(wave) / 16000 == pytest.approx(2.0, abs=0.06)
    # The tone survives encode/decode/resample at the right pitch and level.
    assert dominant_hz(wave[4000:28000], 16000) == pytest.approx(440, abs=5)
    assert 0.1 < np.abs(wave[4000:28000]).max() < 0.4

    frames = list(iter_frames(path, fps=10))
    # MPEG-PS: the mp2 audio starts ~11 ms before the video, so the shared timeline is 11 ms
    # longer, the video is shifted by that much and t=2.0 still falls inside the last frame.
    mpg = ext == ".mpg"
    assert len(frames) == (21 if mpg else 20)
    for t, img in frames:
        assert img.dtype == np.uint8 and img.shape == (240, 320, 3)
        # The chosen frame is the source frame nearest the grid time (25 fps: <= 20 ms away;
        # +10 ms for the square-position readout).
        assert abs(estimate_time_from_frame(img, 2.0) - t) <= (0.05 if mpg else 0.03)


@pytest.mark.parametrize("ext", AUDIO_EXTS)
def test_audio_containers_decode_and_downmix(ext):
    path = cached_audio(ext, duration=2.0, channels=2)
    info = probe(path)
    assert info.has_audio and not info.has_video
    assert info.audio_channels == 2
    wave = load_audio(path, sr=16000)
    assert len(wave) / 16000 == pytest.approx(2.0, abs=0.06)
    assert dominant_hz(wave[4000:28000], 16000) == pytest.approx(440, abs=5)
    # Stereo (0.2 and 0.1 amplitude) is mixed down, not one channel picked.
    peak = np.abs(wave[4000:28000]).max()
    assert 0.15 < peak < 0.3


def test_resample_rate_and_max_seconds():
    path = cached_audio(".flac", duration=2.0)
    wave8k = load_audio(path, sr=8000)
    assert len(wave8k) == pytest.approx(16000, abs=40)
    assert dominant_hz(wave8k[2000:14000], 8000) == pytest.approx(440, abs=5)
    head = load_audio(path, max_seconds=0.5)
    assert len(head) == 8000


def test_progress_and_cancel():
    path = cached_video(".mkv", duration=2.0)
    seen = []
    ctx = RunContext(progress=lambda stage, frac, msg: seen.append((stage, frac)))
    load_audio(path, ctx=ctx)
    list(iter_frames(path, ctx=ctx))
    decode = [f for s, f in seen if s == "decode"]
    frames = [f for s, f in seen if s == "frames"]
    assert decode and decode[-1] == 1.0 and decode == sorted(decode)
    assert frames and frames[-1] == 1.0 and frames == sorted(frames)

    ctx = RunContext()
    ctx.cancel.cancel()
    with pytest.raises(Cancelled):
        load_audio(path, ctx=ctx)


# ---------------------------------------------------------------------------- frame sampling


@pytest.mark.parametrize("fps,expected", [(10, 20), (5, 10), (25, 50), (3, 6)])
def test_fps_sampling_counts_and_grid(fps, expected):
    path = cached_video(".mkv", duration=2.0)
    frames = list(iter_frames(path, fps=fps))
    assert len(frames) == expected
    times = np.array([t for t, _ in frames])
    np.testing.assert_allclose(times, np.arange(expected) / fps, atol=1e-5)


def test_slow_source_repeats_nearest_frames():
    path = cached_video(".mp4", duration=2.0, fps=5)
    frames = list(iter_frames(path, fps=10))
    assert len(frames) == 20
    for t, img in frames:
        assert abs(estimate_time_from_frame(img, 2.0) - t) <= 0.1 + 0.01


def test_variable_frame_rate_uses_timestamps():
    duration = 3.0
    path = cached_video(".mkv", duration=duration, vfr=True)
    src = np.array(frame_times(duration, 25, vfr=True))
    frames = list(iter_frames(path, fps=10))
    assert 30 <= len(frames) <= 31
    for t, img in frames:
        nearest = src[np.argmin(np.abs(src - t))]
        # The picked frame is *the* nearest source frame (ties: either neighbour).
        picked = estimate_time_from_frame(img, duration)
        assert abs(picked - t) <= abs(nearest - t) + 0.015


def test_vfr_mp4_timeline():
    path = cached_video(".mp4", duration=3.0, vfr=True)
    times = [t for t, _ in iter_frames(path, fps=10)]
    assert times[0] == 0.0 and times[-1] <= 3.0
    assert 30 <= len(times) <= 31


def test_downscale_longer_side():
    path = cached_video(".mp4", duration=1.0, size=(1280, 720))
    t, img = next(iter_frames(path, fps=10, max_side=640))
    assert img.shape == (360, 640, 3)
    t, img = next(iter_frames(path, fps=10, max_side=2000))
    assert img.shape == (720, 1280, 3)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="system ffmpeg needed to tag rotation")
def test_rotation_tag_is_applied(tmp_path):
    src = cached_video(".mp4", duration=1.0)
    rotated = tmp_path / "rot.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(rotated)], check=True, timeout=60)
    _, img = next(iter_frames(rotated))
    assert img.shape == (320, 240, 3)


# ------------------------------------------------------------------------------- bad inputs


def test_missing_file():
    with pytest.raises(MediaError, match="not found"):
        probe("/nonexistent/clip.mp4")
    with pytest.raises(MediaError, match="not found"):
        load_audio("/nonexistent/clip.mp4")
    with pytest.raises(MediaError, match="not found"):
        iter_frames("/nonexistent/clip.mp4")


def test_zero_byte_and_folder(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.touch()
    for fn in (probe, load_audio, iter_frames):
        with pytest.raises(MediaError, match="empty"):
            fn(empty)
        with pytest.raises(MediaError, match="folder"):
            fn(tmp_path)


def test_text_file_renamed_mp4(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("This is not a video, just some meeting notes.\n" * 50)
    for fn in (probe, load_audio, iter_frames):
        with pytest.raises(MediaError) as err:
            fn(fake)
        assert "not a media file" in str(err.value) and "\n" not in str(err.value)


def test_subtitle_file_has_no_media_streams(tmp_path):
    srt = tmp_path / "subs.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nhello\n")
    with pytest.raises(MediaError, match="no audio or video stream"):
        probe(srt)


def test_truncated_mp4_index_at_end_is_rejected(tmp_path):
    # A default MP4 keeps its index (moov) at the end; cut it off and nothing is decodable.
    bad = truncate_file(cached_video(".mp4", duration=4.0), tmp_path / "cut.mp4", 0.5)
    with pytest.raises(MediaError, match="truncated"):
        load_audio(bad)


@pytest.mark.parametrize("ext,kwargs", [(".mp4", {"faststart": True}), (".mkv", {}),
                                        (".webm", {})])
def test_truncated_file_keeps_decoded_part_and_warns(tmp_path, ext, kwargs):
    bad = truncate_file(cached_video(ext, duration=4.0, **kwargs), tmp_path / f"cut{ext}", 0.5)
    ctx = RunContext()
    wave = load_audio(bad, ctx=ctx)
    frames = list(iter_frames(bad, ctx=ctx))
    assert 1.0 < len(wave) / 16000 < 3.0
    assert 10 <= len(frames) < 30
    assert any("audio" in w for w in ctx.warnings)
    assert any("video" in w for w in ctx.warnings)


def test_garbage_in_the_middle_is_survived(tmp_path):
    src = cached_video(".mp4", duration=4.0, faststart=True)
    data = bytearray(src.read_bytes())
    lo, hi = int(len(data) * 0.4), int(len(data) * 0.6)
    data[lo:hi] = np.random.default_rng(1).integers(0, 256, hi - lo, dtype=np.uint8).tobytes()
    bad = tmp_path / "garbled.mp4"
    bad.write_bytes(bytes(data))
    ctx = RunContext()
    wave = load_audio(bad, ctx=ctx)
    # Lost audio is replaced by silence so the rest stays in sync with the video.
    assert len(wave) / 16000 == pytest.approx(4.0, abs=0.1)
    assert ctx.warnings and "damaged" in ctx.warnings[0]


def test_tiny_prefix_of_file_raises(tmp_path):
    bad = truncate_file(cached_video(".avi", duration=2.0), tmp_path / "stub.avi", 0.02)
    with pytest.raises(MediaError):
        load_audio(bad)


def test_audio_only_and_video_only(tmp_path):
    audio_only = cached_audio(".mp3", duration=1.0)
    with pytest.raises(MediaError, match="no video stream"):
        iter_frames(audio_only)
    video_only = cached_video(".mp4", duration=1.0, audio=False)
    info = probe(video_only)
    assert info.has_video and not info.has_audio and info.audio_sample_rate is None
    with pytest.raises(MediaError, match="no audio stream"):
        load_audio(video_only)
    assert len(list(iter_frames(video_only))) == 10


def test_bad_arguments():
    path = cached_video(".mkv", duration=2.0)
    with pytest.raises(ValueError):
        iter_frames(path, fps=0)
    with pytest.raises(ValueError):
        load_audio(path, sr=0)


# -------------------------------------------------------------------------------------- GRID


@requires_grid
def test_grid_mpeg_ps_clip():
    clip = sorted(Path(GRID_DIR).glob("*.mpg"))[0]
    info = probe(clip)
    assert info.has_audio and info.has_video and info.duration == pytest.approx(3.0, abs=0.1)
    wave = load_audio(clip)
    assert len(wave) / 16000 == pytest.approx(info.duration, abs=0.1)
    frames = list(iter_frames(clip, fps=10))
    assert len(frames) == pytest.approx(30, abs=1)


def test_fast_yuv_conversion_matches_swscale():
    """The OpenCV plane-wise path (yuv420p) gives the same picture as swscale's rgb24 conversion
    to within a few grey levels; other pixel formats take the swscale path."""
    import av

    from core.media import _yuv420_to_rgb

    path = cached_video(ext=".mp4", duration=1.0, size=(640, 480))
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    assert frame.format.name == "yuv420p"
    for tw, th in ((640, 480), (320, 240)):
        fast = _yuv420_to_rgb(frame, tw, th)
        ref = frame.to_ndarray(format="rgb24", width=tw, height=th)
        assert fast.shape == ref.shape == (th, tw, 3)
        diff = np.abs(fast.astype(np.int16) - ref.astype(np.int16))
        assert diff.mean() < 3.0 and np.percentile(diff, 99) <= 16
    assert _yuv420_to_rgb(frame.reformat(format="yuvj420p"), 320, 240) is None
    assert _yuv420_to_rgb(frame.reformat(format="rgb24"), 320, 240) is None


@pytest.mark.parametrize("ext", [".mp4", ".mkv", ".avi"])
def test_time_ranges_reassemble_the_full_pass(ext):
    """Parallel visual workers decode [0, cut) and [cut, end) separately (seeking): together they
    must give exactly the times and pixels of one full pass, wherever the cut falls."""
    path = cached_video(ext, duration=6.0, size=(320, 240))
    full = list(iter_frames(path, fps=10))
    for cut in (1.0, 2.95, 3.0, 5.5):
        parts = list(iter_frames(path, fps=10, end=cut)) + list(iter_frames(path, fps=10, start=cut))
        assert [t for t, _ in parts] == [t for t, _ in full]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(parts, full))
    assert list(iter_frames(path, fps=10, start=60.0)) == []  # past the end: nothing, no error
    with pytest.raises(ValueError):
        iter_frames(path, fps=10, start=3.0, end=2.0)


def test_pipeline_visual_workers_give_the_same_track():
    from core.pipeline import FeaturePipeline
    from core.types import MediaInfo

    path = cached_video(".mp4", duration=9.0, size=(320, 240))
    info = probe(path)
    tracks = []
    for n in (1, 2):
        box: dict = {}
        FeaturePipeline(visual_workers=n)._visual_worker(str(path), info, RunContext(), box)
        assert "error" not in box, box.get("error")
        tracks.append(box["track"])
    one, two = tracks
    np.testing.assert_array_equal(one.times, two.times)
    np.testing.assert_array_equal(one.face_mask, two.face_mask)
    assert isinstance(info, MediaInfo) and len(one.times) == 90
