"""Batch analysis: discovery, resume after cancel/crash, failures, CLI, and a 2-worker local Ray run.

The resume logic is tested with a stand-in analyzer (fast, exact call counts); the CLI and Ray tests
run the real pipeline with the cheap untrained "late-fusion" model on short generated clips.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from analysis.batch import (
    BatchOptions,
    BatchState,
    choose_backend,
    find_media,
    plan_batch,
    ray_available,
    run_batch,
)
from core.errors import Cancelled, MediaError
from core.progress import RunContext
from core.feature_spec import default_spec
from core.result import AnalysisResult
from core.types import MediaInfo, ModelInfo, SegmentResult
from tests.media_factory import cached_audio, cached_video, requires_espeak

MODEL = "late-fusion"


class FakeAnalyzer:
    """Returns a small real AnalysisResult per file and records which files it analysed."""

    def __init__(self, fail: set[str] = frozenset(), interrupt_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail = set(fail)
        self.interrupt_on = interrupt_on

    def analyze(self, path: str, ctx: RunContext | None = None):
        name = Path(path).name
        self.calls.append(name)
        if ctx is not None:
            ctx.report("audio", 0.5, "")
        if name == self.interrupt_on:
            raise KeyboardInterrupt  # the process is killed in the middle of this file
        if name in self.fail:
            raise MediaError(f"cannot read {name}: not a media file")
        score = float(len(name) % 5) - 2.0
        seg = SegmentResult(0.0, 1.0, "hello", score, contributions={"text": 0.5, "audio": 0.25, "visual": 0.0})
        result = AnalysisResult(recording=MediaInfo(path, 1.0, has_audio=True, has_video=False),
                                feature_spec=default_spec(), model=ModelInfo(MODEL, untrained=True),
                                segments=[seg], warnings=[])
        return result, False


def _inputs(root: Path, names: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"fake media " + n.encode())
    return root


def test_find_media_recursive_sorted_and_filtered(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["b.MP4", "a.wav", "sub/c.mkv", "notes.txt", ".hidden/d.mp4", "sub/.e.wav"])
    assert [p.relative_to(root).as_posix() for p in find_media(root)] == ["a.wav", "b.MP4", "sub/c.mkv"]
    assert [p.name for p in find_media(root, recursive=False)] == ["a.wav", "b.MP4"]
    with pytest.raises(Exception, match="input folder not found"):
        find_media(tmp_path / "missing")


def test_cancel_after_first_file_then_resume_processes_only_the_rest(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4", "b.mp4", "c.wav"])
    out = tmp_path / "out"
    opts = BatchOptions(model=MODEL, write_csv=True)
    ctx = RunContext()
    first = FakeAnalyzer()

    def cancel_after_first(event: str, name: str, outcome) -> None:
        if event == "done":
            ctx.cancel.cancel()

    with pytest.raises(Cancelled):
        run_batch(root, out, opts, ctx=ctx, on_event=cancel_after_first, analyzer=first)
    assert first.calls == ["a.mp4"]
    assert (out / "a.mp4.json").is_file() and (out / "a.mp4.csv").is_file()
    assert not (out / "b.mp4.json").exists()

    second = FakeAnalyzer()
    summary = run_batch(root, out, opts, analyzer=second)
    assert second.calls == ["b.mp4", "c.wav"]
    assert summary.skipped == ["a.mp4"] and summary.done == ["b.mp4", "c.wav"]
    assert AnalysisResult.from_json(out / "c.wav.json").segments[0].text == "hello"
    rows = list(csv.DictReader((out / "batch_summary.csv").open()))
    assert [r["file"] for r in rows] == ["a.mp4", "b.mp4", "c.wav"]

    third = FakeAnalyzer()
    summary = run_batch(root, out, opts, analyzer=third)
    assert third.calls == [] and summary.skipped == ["a.mp4", "b.mp4", "c.wav"]


def test_crash_mid_file_leaves_no_marker_and_no_partial_output(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4", "b.mp4", "c.mp4"])
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_batch(root, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer(interrupt_on="b.mp4"))
    assert (out / "a.mp4.json").exists() and not (out / "b.mp4.json").exists()
    assert not [p for p in out.rglob("*.tmp")]
    again = FakeAnalyzer()
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=again)
    assert again.calls == ["b.mp4", "c.mp4"]


def test_changed_input_model_or_deleted_output_is_redone(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer())
    time.sleep(0.01)
    (root / "a.mp4").write_bytes(b"edited content")  # size + mtime change
    again = FakeAnalyzer()
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=again)
    assert again.calls == ["a.mp4"]
    (out / "b.mp4.json").unlink()
    again = FakeAnalyzer()
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=again)
    assert again.calls == ["b.mp4"]
    other_model = FakeAnalyzer()
    run_batch(root, out, BatchOptions(model="tfn"), analyzer=other_model)
    assert other_model.calls == ["a.mp4", "b.mp4"]


def test_damaged_marker_means_not_done(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4"])
    out = tmp_path / "out"
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer())
    (marker,) = (out / ".msa-batch" / "done").glob("*.json")
    marker.write_text('{"version": 1, "name": "a.mp')  # torn write on a non-atomic filesystem
    again = FakeAnalyzer()
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=again)
    assert again.calls == ["a.mp4"]


def test_failures_are_recorded_skipped_on_rerun_and_retried_on_request(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4", "bad.mp4", "c.mp4"])
    out = tmp_path / "out"
    summary = run_batch(root, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer(fail={"bad.mp4"}))
    assert summary.done == ["a.mp4", "c.mp4"] and summary.failed == ["bad.mp4"]
    assert [o.error for o in summary.outcomes if o.status == "failed"] == ["cannot read bad.mp4: not a media file"]
    todo, done, failed = plan_batch(root, out, BatchOptions(model=MODEL))
    assert todo == [] and len(done) == 2 and [f[0] for f in failed] == ["bad.mp4"]
    again = FakeAnalyzer()
    summary = run_batch(root, out, BatchOptions(model=MODEL), analyzer=again)
    assert again.calls == [] and summary.previously_failed == ["bad.mp4"]
    retry = FakeAnalyzer()
    summary = run_batch(root, out, BatchOptions(model=MODEL, retry_failed=True), analyzer=retry)
    assert retry.calls == ["bad.mp4"] and summary.done == ["bad.mp4"]
    assert not list((out / ".msa-batch" / "failed").glob("*.json"))


def test_output_folder_rules(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["a.mp4"])
    with pytest.raises(Exception, match="must differ"):
        run_batch(root, root, BatchOptions(model=MODEL), analyzer=FakeAnalyzer())
    (tmp_path / "file").write_text("x")
    with pytest.raises(Exception, match="is a file"):
        run_batch(root, tmp_path / "file", BatchOptions(model=MODEL), analyzer=FakeAnalyzer())


def test_same_stem_different_extension_do_not_collide(tmp_path: Path) -> None:
    root = _inputs(tmp_path / "in", ["x.mp4", "x.wav", "sub/x.mp4"])
    out = tmp_path / "out"
    run_batch(root, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer())
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json") if ".msa-batch" not in p.parts) == [
        "sub/x.mp4.json", "x.mp4.json", "x.wav.json"]


def test_backend_choice() -> None:
    assert choose_backend("ray://head:10001", False, 5) == "ray://head:10001"
    assert choose_backend(None, True, 50, cpus=16) is None  # --no-ray
    assert choose_backend(None, False, 1, cpus=16) is None  # one file: no cluster start-up
    assert choose_backend(None, False, 50, cpus=2) is None  # one pipeline already fills 2 cores
    assert choose_backend(None, False, 50, cpus=16) == ("local" if ray_available() else None)


# ---------------------------------------------------------------------- real pipeline


def _real_inputs(root: Path) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "talk.mp4": cached_video(".mp4", duration=2.5, speech_text="I really love this movie"),
        "tone.wav": cached_audio(".wav", duration=2.0),
        "sub/clip.mkv": cached_video(".mkv", duration=2.0, speech_text="this is terrible"),
    }
    for name, src in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / name)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(300))
    return sorted(files)


@pytest.mark.slow
@requires_espeak
def test_cli_batch_real_pipeline_resume_and_exit_codes(tmp_path: Path, capsys) -> None:
    from cli.main import main

    root = tmp_path / "in"
    names = _real_inputs(root)
    out = tmp_path / "out"
    argv = ["batch", str(root), "--model", MODEL, "--out", str(out), "--csv", "--quiet", "--no-ray",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 1  # broken.mp4 failed: non-zero exit, everything else analysed
    err = capsys.readouterr().err
    assert "3 analysed" in err and "1 failed" in err
    for name in names:
        result = AnalysisResult.from_json(out / f"{name}.json")
        assert result.model.name == MODEL and result.segments
        assert (out / f"{name}.csv").is_file()
    assert "tone.wav" in names and any("visual" in w for w in AnalysisResult.from_json(out / "tone.wav.json").warnings)
    assert main(argv) == 0  # the failure is remembered, not retried
    err = capsys.readouterr().err
    assert "3 already done, 1 failed before" in err and "0 analysed" in err
    assert main(["batch", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "input folder not found" in capsys.readouterr().err


@pytest.mark.slow
@requires_espeak
@pytest.mark.skipif(not ray_available(), reason="ray is not installed (pip install 'msa-studio[ray]')")
def test_ray_two_local_workers_match_in_process_results(tmp_path: Path) -> None:
    import ray

    root = tmp_path / "in"
    names = _real_inputs(root)
    local_out, ray_out = tmp_path / "local", tmp_path / "ray"
    opts = BatchOptions(model=MODEL, use_cache=False)
    local = run_batch(root, local_out, opts)
    assert local.done == names and local.failed == ["broken.mp4"]

    events: list[tuple[str, str]] = []
    summary = run_batch(root, ray_out, opts, on_event=lambda e, n, o: events.append((e, n)),
                        ray_address="local", workers=2)
    assert not ray.is_initialized(), "run_batch must shut down the Ray instance it started"
    assert summary.backend == "ray"
    assert sorted(summary.done) == names and summary.failed == ["broken.mp4"]
    workers = {o.worker for o in summary.outcomes}
    assert len(workers) == 2 and all(w.startswith("ray:") for w in workers), workers
    assert {n for e, n in events if e == "start"} == set(names) | {"broken.mp4"}
    for name in names:
        a = AnalysisResult.from_json(local_out / f"{name}.json")
        b = AnalysisResult.from_json(ray_out / f"{name}.json")
        assert [s.text for s in a.segments] == [s.text for s in b.segments]
        assert [s.score for s in a.segments] == pytest.approx([s.score for s in b.segments], abs=1e-5)
    # Resume on Ray: nothing left to do, so no cluster is even started.
    again = run_batch(root, ray_out, opts, ray_address="local", workers=2)
    assert again.done == [] and sorted(again.skipped) == names
    state = json.loads(next((ray_out / ".msa-batch" / "failed").glob("*.json")).read_text())
    assert state["name"] == "broken.mp4" and state["error"]
    assert BatchState(ray_out).output_json("talk.mp4").is_file()


# -------------------------------------------------------------- containers and the --out lock (issue 10)


def test_every_container_the_media_layer_lists_is_found_and_no_second_list_exists(tmp_path: Path) -> None:
    import models.extract_dataset as extract
    from core.media import AUDIO_EXTENSIONS, SUPPORTED_EXTENSIONS, VIDEO_EXTENSIONS

    for ext in (".flv", ".ts", ".m4v", ".3gp", ".mts", ".wmv", ".aac", ".opus"):
        assert ext in SUPPORTED_EXTENSIONS, ext
    assert set(SUPPORTED_EXTENSIONS) == set(VIDEO_EXTENSIONS) | set(AUDIO_EXTENSIONS)
    names = [f"clip{i}{ext if i % 2 else ext.upper()}" for i, ext in enumerate(SUPPORTED_EXTENSIONS)]
    root = _inputs(tmp_path / "in", names + ["notes.txt", "x.json"])
    assert sorted(p.name for p in find_media(root)) == sorted(names)
    assert getattr(extract, "MEDIA_EXTENSIONS", SUPPORTED_EXTENSIONS) is SUPPORTED_EXTENSIONS


_LOCK_HOLDER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from analysis.batch import BatchOptions, run_batch
from core.result import AnalysisResult
from core.types import SegmentResult

class Slow:
    def analyze(self, path, ctx=None):
        Path({started!r}).write_text("analysing")
        time.sleep(120)  # killed by the test long before
        raise SystemExit(1)

run_batch({inp!r}, {out!r}, BatchOptions(model="late-fusion"), analyzer=Slow())
"""


def test_a_second_batch_on_the_same_out_refuses_while_the_first_runs(tmp_path: Path) -> None:
    """Two real processes: the first holds <out>'s lock while analysing; the second (the real CLI)
    stops at once with one line and exit 2, analyses nothing; a killed holder leaves no stale lock."""
    import subprocess
    import sys

    root_dir = Path(__file__).resolve().parent.parent
    inp = _inputs(tmp_path / "in", ["a.mp4", "b.mp4"])
    out, started = tmp_path / "out", tmp_path / "started"
    holder = subprocess.Popen([sys.executable, "-c", _LOCK_HOLDER.format(
        root=str(root_dir), started=str(started), inp=str(inp), out=str(out))], cwd=root_dir)
    try:
        deadline = time.time() + 120
        while not started.exists():
            assert holder.poll() is None, "the first batch process ended early"
            assert time.time() < deadline, "the first batch process never started analysing"
            time.sleep(0.1)
        t0 = time.time()
        second = subprocess.run([sys.executable, "-m", "cli.main", "batch", str(inp), "--out", str(out),
                                 "--model", MODEL, "--no-ray", "--quiet"],
                                cwd=root_dir, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr[-2000:]
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "another msa-studio batch" in lines[0], second.stderr
        assert str(holder.pid) in lines[0]
        assert time.time() - t0 < 60
        assert not list(out.glob("*.json")), "the second process analysed files"
    finally:
        holder.kill()
        holder.wait(timeout=30)
    summary = run_batch(inp, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer())  # the lock died with it
    assert summary.done == ["a.mp4", "b.mp4"]


def test_the_lock_is_reentrant_in_one_process_and_released_after_the_run(tmp_path: Path) -> None:
    from analysis.batch import BatchBusy, hold_out_lock

    inp = _inputs(tmp_path / "in", ["a.mp4"])
    out = tmp_path / "out"
    with hold_out_lock(out):
        assert run_batch(inp, out, BatchOptions(model=MODEL), analyzer=FakeAnalyzer()).done == ["a.mp4"]
    with hold_out_lock(out):
        pass
    assert issubclass(BatchBusy, Exception)


# ext -> (FFmpeg muxer, video encoder or None, audio encoder, audio rate, muxer options). One row per
# entry of core.media.SUPPORTED_EXTENSIONS, so a new extension cannot be listed without being decoded.
_CONTAINER_WRITERS: dict[str, tuple[str, str | None, str, int, dict[str, str]]] = {
    ".mp4": ("mp4", "libx264", "aac", 16000, {}), ".m4v": ("mp4", "libx264", "aac", 16000, {}),
    ".mov": ("mov", "libx264", "aac", 16000, {}), ".mkv": ("matroska", "libx264", "flac", 16000, {}),
    ".webm": ("webm", "libvpx", "libopus", 48000, {}), ".avi": ("avi", "mpeg4", "pcm_s16le", 16000, {}),
    ".mpg": ("mpeg", "mpeg1video", "mp2", 44100, {}), ".mpeg": ("mpeg", "mpeg1video", "mp2", 44100, {}),
    ".flv": ("flv", "flv", "mp3", 44100, {}), ".f4v": ("f4v", "libx264", "aac", 16000, {}),
    ".ts": ("mpegts", "mpeg2video", "mp2", 48000, {}),
    ".mts": ("mpegts", "libx264", "ac3", 48000, {"mpegts_m2ts_mode": "1"}),
    ".m2ts": ("mpegts", "libx264", "ac3", 48000, {"mpegts_m2ts_mode": "1"}),
    ".3gp": ("3gp", "h263", "aac", 16000, {}), ".3g2": ("3g2", "h263", "aac", 16000, {}),
    ".wmv": ("asf", "wmv2", "wmav2", 16000, {}), ".asf": ("asf", "wmv2", "wmav2", 16000, {}),
    ".ogv": ("ogg", "vp8", "libopus", 48000, {}), ".vob": ("vob", "mpeg2video", "mp2", 48000, {}),
    ".mxf": ("mxf", "mpeg2video", "pcm_s16le", 48000, {}),
    ".wav": ("wav", None, "pcm_s16le", 16000, {}), ".flac": ("flac", None, "flac", 16000, {}),
    ".mp3": ("mp3", None, "libmp3lame", 44100, {}), ".ogg": ("ogg", None, "libopus", 48000, {}),
    ".oga": ("ogg", None, "libopus", 48000, {}), ".opus": ("opus", None, "libopus", 48000, {}),
    ".m4a": ("ipod", None, "aac", 16000, {}), ".aac": ("adts", None, "aac", 16000, {}),
    ".wma": ("asf", None, "wmav2", 16000, {}), ".aiff": ("aiff", None, "pcm_s16be", 16000, {}),
    ".aif": ("aiff", None, "pcm_s16be", 16000, {}), ".amr": ("amr", None, "libopencore_amrnb", 8000, {}),
    ".mka": ("matroska", None, "flac", 16000, {}), ".ac3": ("ac3", None, "ac3", 48000, {}),
    ".caf": ("caf", None, "pcm_s16le", 16000, {}), ".au": ("au", None, "pcm_s16be", 16000, {}),
    ".w64": ("w64", None, "pcm_s16le", 16000, {}), ".wv": ("wv", None, "wavpack", 16000, {}),
}


def _write_container(path: Path, muxer: str, vcodec: str | None, acodec: str, rate: int,
                     options: dict[str, str], seconds: float = 1.0) -> None:
    """One second of a 440 Hz tone (and 25 fps of flat frames) in the given container."""
    import av
    import numpy as np

    with av.open(str(path), "w", format=muxer, options=options) as container:
        video = None
        if vcodec:
            video = container.add_stream(vcodec, rate=25)
            video.width, video.height, video.pix_fmt = 176, 144, "yuv420p"
        audio = container.add_stream(acodec, rate=rate)
        audio.layout = "mono"
        if acodec == "wmav2":
            audio.bit_rate = 32000  # its default (0) is refused at 16 kHz
        audio.codec_context.open(strict=False)
        fmt = audio.codec_context.format.name
        step = audio.codec_context.frame_size or 1024
        if step > 4096:  # wavpack asks for 64000 but takes any size; a padded frame would be 4 s long
            step = 1024
        tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(rate * seconds)) / rate)
        for start in range(0, len(tone), step):
            chunk = np.zeros(step)
            chunk[: len(tone[start:start + step])] = tone[start:start + step]
            if fmt.startswith("s16"):
                data = (chunk * 32767).astype(np.int16)
            elif fmt.startswith("u8"):  # wavpack's default
                data = (chunk * 127 + 128).astype(np.uint8)
            elif fmt.startswith("s32"):
                data = (chunk * 2**31 * 0.99).astype(np.int32)
            else:
                data = chunk.astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data[None, :], format=fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
        if video is not None:
            for k in range(int(25 * seconds)):
                image = np.full((144, 176, 3), (k * 9) % 255, np.uint8)
                for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in video.encode(None):
                container.mux(packet)


def test_every_listed_container_is_really_decoded_by_the_media_layer(tmp_path: Path) -> None:
    from core import media

    assert set(_CONTAINER_WRITERS) == set(media.SUPPORTED_EXTENSIONS)
    problems = []
    for ext, (muxer, vcodec, acodec, rate, options) in _CONTAINER_WRITERS.items():
        path = tmp_path / f"clip{ext}"
        _write_container(path, muxer, vcodec, acodec, rate, options)
        try:
            info = media.probe(path)
            wave = media.load_audio(path, 16000)
            frames = sum(1 for _ in media.iter_frames(path)) if vcodec else 0
        except Exception as exc:  # collected so that one run names every failing container
            problems.append(f"{ext}: {type(exc).__name__}: {exc}")
            continue
        if info.has_video != bool(vcodec) or not 0.9 < len(wave) / 16000 < 1.2 or (vcodec and frames < 9):
            problems.append(f"{ext}: video={info.has_video} audio={len(wave) / 16000:.2f}s frames={frames}")
    assert not problems, problems
    assert sorted(p.name for p in find_media(tmp_path)) == sorted(f"clip{e}" for e in _CONTAINER_WRITERS)
