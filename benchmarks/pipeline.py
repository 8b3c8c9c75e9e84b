"""Pipeline benchmark: per-stage time, real-time factor, peak memory and live lag, next to a naive
MMSA-FET-style baseline run in the same invocation.

    .venv/bin/python benchmarks/pipeline.py            # 10 s, 60 s and 10 min clips (~15 min)
    .venv/bin/python benchmarks/pipeline.py --quick    # 10 s and 60 s only (~3 min)

Clips are made from the GRID talking-head corpus (real faces + speech, looped and letterboxed to
1280x720 H.264/AAC, like a webcam or phone recording), or from synthetic frames + espeak speech when
GRID is absent. They are cached in --clips-dir. Every measurement runs in a fresh subprocess so peak
RSS is per run; models are loaded and warmed up on a 3 s clip first (startup is reported apart):
the RTF is that of analysing a file in an app that is already running.

Targets (issue #6): whole-file RTF <= 0.25 on 2 CPU cores, live lag <= 1.5 s, peak RSS <= 2.5 GB.
Stages of the optimised pipeline overlap (video decode + MediaPipe run in a thread next to
decode/ASR/audio), so their sum can exceed the wall time; the naive baseline is sequential.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.naive_baseline import StageClock, instrument_engine  # noqa: E402
from core.atomic_write import atomic_open  # noqa: E402
from models.recipes.common import default_data_dir  # noqa: E402
from models.defaults import DEFAULT_MODEL  # noqa: E402

TARGET_RTF = 0.25
TARGET_LAG_S = 0.5
#: FeatureSpec v2 (Whisper-state audio, face CNN) may cost at most this much more CPU time than v1.
TARGET_V2_CPU_GROWTH = 0.15
TARGET_RSS_GB = 2.5
STAGES = ["decode", "vad+segment", "asr", "text", "audio", "video decode", "visual", "model", "shapley"]
DEFAULT_DURATIONS = (10.0, 60.0, 600.0)
QUICK_DURATIONS = (10.0, 60.0)
GRID_DIR = Path(os.environ.get("MSA_GRID_DIR", default_data_dir() / "grid"))


# ---------------------------------------------------------------------------------- clips


def _letterbox(rgb, size: tuple[int, int]):
    import cv2
    import numpy as np

    w, h = size
    scale = min(w / rgb.shape[1], h / rgb.shape[0])
    tw, th = max(2, int(round(rgb.shape[1] * scale))), max(2, int(round(rgb.shape[0] * scale)))
    small = cv2.resize(rgb, (tw, th), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    y0, x0 = (h - th) // 2, (w - tw) // 2
    out[y0:y0 + th, x0:x0 + tw] = small
    return out


def make_grid_clip(path: Path, duration: float, size: tuple[int, int], fps: int = 25) -> Path:
    """Loop GRID clips (3 s each: face + one sentence) into one H.264/AAC mp4, streaming."""
    import av

    sources = sorted(GRID_DIR.glob("*.mpg"))
    audio_rate = 44100
    n_frames = int(round(duration * fps))
    with atomic_open(path, "wb") as fh:  # an interrupted run never leaves a clip that looks complete
        _write_grid_clip(av.open(fh, mode="w", format="mp4"), sources, n_frames, size, fps, audio_rate)
    return path


def _write_grid_clip(out, sources: list[Path], n_frames: int, size: tuple[int, int], fps: int,
                     audio_rate: int) -> None:
    import av
    import numpy as np

    from core.media import iter_frames, load_audio

    try:
        vs = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "23"})
        vs.width, vs.height = size
        vs.pix_fmt = "yuv420p"
        as_ = out.add_stream("aac", rate=audio_rate, layout="mono")
        written, audio_pos, k = 0, 0, 0
        while written < n_frames:
            src = sources[k % len(sources)]
            k += 1
            frames = [img for _, img in iter_frames(src, fps=fps, max_side=4096)]
            frames = frames[: n_frames - written]
            for img in frames:
                vf = av.VideoFrame.from_ndarray(_letterbox(img, size), format="rgb24")
                vf.pts = written
                written += 1
                for pkt in vs.encode(vf):
                    out.mux(pkt)
            # Audio exactly as long as the frames taken, so sync holds across the loop.
            wave = load_audio(src, sr=audio_rate)
            need = int(round(len(frames) / fps * audio_rate))
            wave = np.pad(wave[:need], (0, max(0, need - len(wave))))
            pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
            for i in range(0, len(pcm), 1024):
                chunk = pcm[i:i + 1024]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
                af.sample_rate = audio_rate
                af.pts = audio_pos
                af.time_base = Fraction(1, audio_rate)
                audio_pos += len(chunk)
                for pkt in as_.encode(af):
                    out.mux(pkt)
        for stream in (vs, as_):
            for pkt in stream.encode(None):
                out.mux(pkt)
    finally:
        out.close()


def make_synthetic_clip(path: Path, duration: float, size: tuple[int, int]) -> Path:
    """No GRID: moving-square frames + espeak speech (no face: MediaPipe still runs its detector)."""
    from tests.media_factory import make_video

    sentence = "The film was wonderful and I loved every minute of it. "
    words_needed = int(duration * 2.2)
    text = (sentence * (words_needed // 12 + 1)).strip()
    return make_video(path, duration, fps=25, size=size, speech_text=text)


def clip_path(clips_dir: Path, duration: float, size: tuple[int, int], source: str) -> Path:
    return clips_dir / f"{source}-{int(duration)}s-{size[0]}x{size[1]}.mp4"


def ensure_clip(clips_dir: Path, duration: float, size: tuple[int, int], source: str) -> tuple[Path, float]:
    """(path, seconds spent generating; 0 when cached)."""
    clips_dir.mkdir(parents=True, exist_ok=True)
    path = clip_path(clips_dir, duration, size, source)
    if path.exists():
        return path, 0.0
    t0 = time.perf_counter()
    if source == "grid":
        make_grid_clip(path, duration, size)
    else:
        make_synthetic_clip(path, duration, size)
    return path, time.perf_counter() - t0


# -------------------------------------------------------------------------------- workers


def _rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _timed_pipeline_class():
    """FeaturePipeline subclass that times each stage without changing what it does."""
    from core.pipeline import FeaturePipeline

    class _Proxy:
        def __init__(self, inner, method: str, stage: str, clock: StageClock) -> None:
            self._inner, self._method, self._stage, self._clock = inner, method, stage, clock

        def __getattr__(self, name):
            attr = getattr(self._inner, name)
            if name != self._method:
                return attr

            def timed(*args, **kwargs):
                with self._clock(self._stage):
                    return attr(*args, **kwargs)

            return timed

    class TimedPipeline(FeaturePipeline):
        clock: StageClock

        def __init__(self, *args, clock: StageClock, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.clock = clock
            # "asr" is the whole Whisper pass: encoder (whose states are the v2 audio features)
            # and decoder; "audio" is what the audio extractor adds on top of it.
            self.asr = _Proxy(self.asr, "run", "asr", self.clock)
            self.text_encoder = _Proxy(self.text_encoder, "encode", "text", self.clock)
            self.audio_extractor = _Proxy(self.audio_extractor, "extract", "audio", self.clock)

    return TimedPipeline


def _timed_generator(original, stage: str, clock: StageClock):
    """Wrap a generator function so the time spent inside each `next()` goes to `stage`."""

    def wrapper(*args, **kwargs):
        it = iter(original(*args, **kwargs))
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                clock.add(stage, t0, time.perf_counter())
                return
            clock.add(stage, t0, time.perf_counter())
            yield item

    return wrapper


def _timed_function(original, stage: str, clock: StageClock):
    def wrapper(*args, **kwargs):
        with clock(stage):
            return original(*args, **kwargs)

    return wrapper


def _instrument_modules(clock: StageClock) -> None:
    """Time the module-level functions the pipeline looks up at call time: video frames and audio
    blocks (decode) from core.media, VAD and segmentation from core.segmentation. Benchmark only:
    the wrappers change no behaviour. Idempotent (keeps the originals)."""
    import core.media as media
    import core.segmentation as segmentation
    from core.extractors.visual import MediaPipeFaceExtractor

    targets = [
        (media, "iter_frames", "video decode", True),
        (MediaPipeFaceExtractor, "process_frame", "visual", False),
        (media, "iter_audio_blocks", "decode", True),
        (segmentation, "speech_regions", "vad+segment", False),
        (segmentation, "segment_utterances", "vad+segment", False),
    ]
    for module, name, stage, is_generator in targets:
        if not hasattr(module, name):
            continue  # an older/newer pipeline without this function: that stage shows 0
        key = f"_bench_original_{name}"
        original = getattr(module, key, None) or getattr(module, name)
        setattr(module, key, original)
        wrap = _timed_generator if is_generator else _timed_function
        setattr(module, name, wrap(original, stage, clock))


def _stage_table(clock: StageClock) -> dict[str, float]:
    t = clock.totals()
    out = {
        "decode": t.get("decode", 0.0),
        "asr": t.get("asr", 0.0),
        "vad+segment": t.get("vad+segment", 0.0),
        "text": t.get("text", 0.0),
        "audio": t.get("audio", 0.0),
        "video decode": t.get("video decode", 0.0),
        "model": max(0.0, t.get("model", 0.0)),
        "shapley": t.get("shapley", 0.0),
    }
    out["visual"] = t.get("visual", 0.0)
    return out


def worker_optimised(clip: str, warmup: str, model: str, result_path: str,
                     asr_options: dict[str, Any] | None = None, spec_version: int | None = None) -> None:
    from analysis.analyzer import Analyzer
    from analysis.engine import InferenceEngine
    from core.feature_cache import FeatureCache, pipeline_options
    from core.media import probe
    from core.progress import RunContext

    clock = StageClock()
    t0 = time.perf_counter()
    if spec_version == 1:  # the v1 pipeline with an untrained v1 model: same work, no v1 weights ship
        from core.feature_spec import v1_spec

        engine = InferenceEngine(model, device="cpu", spec=v1_spec(), untrained=True)
    else:
        engine = InferenceEngine(model, device="cpu", allow_untrained=True)
    pipeline = _timed_pipeline_class()(engine.spec, device="cpu", asr_options=asr_options, clock=clock)
    instrument_engine(engine, clock)
    _instrument_modules(clock)
    analyzer = Analyzer(engine, pipeline, cache=None)  # timed runs extract: no feature cache
    analyzer.run(warmup, ctx=RunContext())  # loads every model
    startup = time.perf_counter() - t0
    rss_loaded = _rss_bytes()

    clock.reset()
    cpu0, w0 = _cpu_seconds(), time.perf_counter()
    run = analyzer.run(clip, ctx=RunContext())
    result, rec = run.result, run.features
    wall = time.perf_counter() - w0
    cpu = _cpu_seconds() - cpu0
    stages = _stage_table(clock)

    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        cache.put(clip, rec, options=pipeline_options(pipeline))
        c0 = time.perf_counter()
        cached_result = Analyzer(engine, pipeline, cache=cache)(clip)
        cached_wall = time.perf_counter() - c0
        assert cache.stats.hits == 1, "feature cache did not hit"
    duration = probe(clip).duration
    _write_json(result_path, {
        "mode": "optimised", "clip": clip, "duration": duration, "startup_s": startup, "wall_s": wall,
        "cpu_s": cpu, "stages": stages, "segments": len(result.segments),
        "scores": [s.score for s in result.segments], "texts": [s.text for s in result.segments],
        "warnings": result.warnings, "rss_loaded": rss_loaded, "peak_rss": _peak_rss_bytes(),
        "cached_rerun_s": cached_wall, "cached_same": [s.score for s in cached_result.segments]
        == [s.score for s in result.segments],
    })


def worker_naive(clip: str, warmup: str, model: str, result_path: str) -> None:
    from benchmarks.naive_baseline import load_naive_models, naive_analyze
    from core.media import probe

    t0 = time.perf_counter()
    models = load_naive_models(model)
    naive_analyze(warmup, models, StageClock())
    startup = time.perf_counter() - t0
    rss_loaded = _rss_bytes()
    clock = StageClock()
    cpu0, w0 = _cpu_seconds(), time.perf_counter()
    results = naive_analyze(clip, models, clock)
    wall = time.perf_counter() - w0
    cpu = _cpu_seconds() - cpu0
    t = clock.totals()
    stages = {s: t.get(s, 0.0) for s in STAGES}
    _write_json(result_path, {
        "mode": "naive", "clip": clip, "duration": probe(clip).duration, "startup_s": startup, "wall_s": wall,
        "cpu_s": cpu, "stages": stages, "segments": len(results), "scores": [r.score for r in results],
        "texts": [r.text for r in results], "rss_loaded": rss_loaded, "peak_rss": _peak_rss_bytes(),
    })


def worker_live(clip: str, warmup: str, model: str, result_path: str, seconds: float) -> None:
    """Real-time playback of the clip through the live sources into LiveAnalyzer (4 s window, 1 s
    hop, the app's defaults); lag = emit time - capture time of the window's last sample."""
    import numpy as np

    from analysis.analyzer import Analyzer
    from analysis.live import LiveAnalyzer
    from core.live_sources import ArrayAudioSource, CameraSource

    analyzer = LiveAnalyzer.from_analyzer(Analyzer.from_pretrained(model, device="cpu", cache=None),
                                          window=4.0, hop=1.0)
    analyzer.components.warm_up()
    asr_parts = _time_asr_parts(analyzer.components.pipeline.asr)
    camera = CameraSource(clip, analyzer.push_frame)
    mic = ArrayAudioSource.from_media(clip, analyzer.push_audio, loop=True)
    analyzer.start()
    camera.start()
    mic.start()
    try:
        time.sleep(seconds)
    finally:
        camera.stop()
        mic.stop()
        analyzer.stop(timeout=5.0)
    results = list(analyzer.results)[2:]  # the first hops see a partly filled window
    lags = np.array([r.lag_seconds for r in results]) if results else np.zeros(0)
    timings: dict[str, list[float]] = {}
    for r in results:
        for k, v in r.timings.items():
            timings.setdefault(k, []).append(v)
    hops = max(1, sum(r.has_speech for r in analyzer.results))  # every hop the wrappers timed
    _write_json(result_path, {
        "mode": "live", "clip": clip, "seconds": seconds, "results": len(results),
        "asr_parts_per_speech_hop": {k: sum(v) / hops for k, v in asr_parts.items()},
        "lag_mean": float(lags.mean()) if lags.size else None,
        "lag_p95": float(np.percentile(lags, 95)) if lags.size else None,
        "lag_max": float(lags.max()) if lags.size else None,
        "timings_mean": {k: float(np.mean(v)) for k, v in timings.items()},
        "frames_seen": analyzer.frames_seen, "frames_featurized": analyzer.frames_featurized,
        "speech_hops": sum(r.has_speech for r in results), "face_hops": sum(r.has_face for r in results),
        "peak_rss": _peak_rss_bytes(), "last_error": analyzer.last_error,
    })


def _time_asr_parts(asr) -> dict[str, list[float]]:
    """Wall seconds of each call to the ASR's VAD, log-mel and encoder (the rest of its time is
    decoding), recorded by wrapping them on this instance: where a live hop's ASR time goes."""
    import core.segmentation as segmentation

    parts: dict[str, list[float]] = {"vad": [], "mel": [], "encode": []}

    def timed(fn, name):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name].append(time.perf_counter() - t)
        return wrapper

    segmentation.speech_regions = timed(segmentation.speech_regions, "vad")
    asr._mel = timed(asr._mel, "mel")
    asr._encode_mels = timed(asr._encode_mels, "encode")
    return parts


def _write_json(path: str, data: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(data, indent=1, default=float))


# --------------------------------------------------------------------------------- driver


def _run_worker(mode: str, clip: Path, warmup: Path, model: str, timeout: float,
                extra: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--clip", str(clip),
               "--warmup", str(warmup), "--model", model, "--result", str(out), *(extra or [])]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            return {"mode": mode, "error": f"worker exited {proc.returncode}:\n{tail}", "elapsed": elapsed}
        data = json.loads(out.read_text())
        data["elapsed"] = elapsed
        return data


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else (f"{x:7.2f}" if x < 1000 else f"{x:7.0f}")


def _gb(b: int | float) -> str:
    return f"{b / 1024**3:5.2f}"


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def print_report(runs: list[dict[str, Any]], live: dict[str, Any] | None, info: dict[str, Any]) -> bool:
    print()
    print(f"MSA Studio pipeline benchmark — model {info['model']}, ASR {info['asr']}, {info['cores']} CPU cores, "
          f"clips: {info['source']} {info['size']}, load average before/after: {info['load_before']} / "
          f"{_loadavg()}")
    print("Stage wall times in seconds (optimised stages overlap: visual runs in threads beside the audio side).")
    ok = True
    for run in runs:
        opt, naive = run["optimised"], run.get("naive")
        dur = run["duration"]
        print()
        print(f"== clip {dur:.0f} s ({Path(run['clip']).name})")
        if "error" in opt:
            print(f"optimised FAILED: {opt['error']}")
            ok = False
            continue
        header = f"{'stage':<14}{'optimised':>10}{'RTF':>8}"
        if naive and "error" not in naive:
            header += f"{'naive':>10}{'RTF':>8}{'ratio':>8}"
        print(header)
        for stage in STAGES:
            o = opt["stages"].get(stage, 0.0)
            line = f"{stage:<14}{_fmt_s(o):>10}{o / dur:8.3f}"
            if naive and "error" not in naive:
                n = naive["stages"].get(stage, 0.0)
                ratio = f"{n / o:7.1f}x" if o > 1e-3 and n > 1e-3 else "      -"
                line += f"{_fmt_s(n):>10}{n / dur:8.3f}{ratio:>8}"
            print(line)
        line = f"{'WHOLE (wall)':<14}{_fmt_s(opt['wall_s']):>10}{opt['wall_s'] / dur:8.3f}"
        if naive and "error" not in naive:
            line += f"{_fmt_s(naive['wall_s']):>10}{naive['wall_s'] / dur:8.3f}{naive['wall_s'] / opt['wall_s']:7.1f}x"
        print(line)
        line = f"{'CPU time':<14}{_fmt_s(opt['cpu_s']):>10}{opt['cpu_s'] / dur:8.3f}"
        if naive and "error" not in naive:
            line += f"{_fmt_s(naive['cpu_s']):>10}{naive['cpu_s'] / dur:8.3f}{naive['cpu_s'] / max(opt['cpu_s'], 1e-9):7.1f}x"
        print(line)
        line = f"{'peak RSS GB':<14}{_gb(opt['peak_rss']):>10}{'':8}"
        if naive and "error" not in naive:
            line += f"{_gb(naive['peak_rss']):>10}"
        print(line)
        print(f"segments: optimised {opt['segments']}" + (f", naive {naive['segments']}" if naive and "error" not in naive else "")
              + f"; startup (load + 3 s warm-up) {opt['startup_s']:.1f} s; rerun with feature cache hit "
              f"{opt['cached_rerun_s']:.2f} s (RTF {opt['cached_rerun_s'] / dur:.4f}, identical scores: {opt['cached_same']})")
        if naive and "error" in naive:
            print(f"naive baseline FAILED: {naive['error']}")
        elif not naive:
            print("naive baseline: not run for this clip (see --naive-max-duration)")
        rtf = opt["wall_s"] / dur
        rss_gb = opt["peak_rss"] / 1024**3
        ok_rtf, ok_rss = rtf <= TARGET_RTF, rss_gb <= TARGET_RSS_GB
        ok = ok and ok_rtf and ok_rss
        v1 = run.get("v1")
        if v1 and "error" not in v1:
            growth = opt["cpu_s"] / max(v1["cpu_s"], 1e-9) - 1.0
            ok_growth = growth <= TARGET_V2_CPU_GROWTH
            ok = ok and ok_growth
            print(f"CPU-time RTF FeatureSpec v2 {opt['cpu_s'] / dur:.3f} vs v1 {v1['cpu_s'] / dur:.3f} in this run "
                  f"({growth:+.1%}; wall RTF v1 {v1['wall_s'] / dur:.3f}); target growth <= "
                  f"{TARGET_V2_CPU_GROWTH:.0%}: {'MET' if ok_growth else 'MISSED'}")
        elif v1:
            print(f"FeatureSpec v1 run FAILED: {v1['error']}")
        print(f"target RTF <= {TARGET_RTF}: {'MET' if ok_rtf else 'MISSED'} ({rtf:.3f}; CPU-time RTF "
              f"{opt['cpu_s'] / dur:.3f}, i.e. >= {opt['cpu_s'] / dur / info['cores']:.3f} on {info['cores']} idle cores)"
              f"   target peak RSS <= {TARGET_RSS_GB} GB: {'MET' if ok_rss else 'MISSED'} ({rss_gb:.2f} GB)")
    print()
    if live is None:
        print("live mode: not measured (--no-live)")
    elif "error" in live:
        print(f"live mode FAILED: {live['error']}")
        ok = False
    else:
        p95 = live["lag_p95"]
        ok_lag = p95 is not None and p95 <= TARGET_LAG_S
        ok = ok and ok_lag
        tm = ", ".join(f"{k} {v:.2f}" for k, v in live["timings_mean"].items())
        parts = live.get("asr_parts_per_speech_hop") or {}
        if parts:
            tm += " (ASR of a hop with speech: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items()) + ", the rest decoding)"
        print(f"live mode ({live['seconds']:.0f} s real-time playback, 4 s window, 1 s hop, {live['results']} hops, "
              f"{live['speech_hops']} with speech, {live['face_hops']} with a face): lag mean "
              f"{live['lag_mean']:.2f} s, p95 {p95:.2f} s, max {live['lag_max']:.2f} s; per hop: {tm} s; "
              f"frames featurised {live['frames_featurized']}/{live['frames_seen']}; peak RSS {_gb(live['peak_rss'])} GB")
        print(f"target live lag (p95) <= {TARGET_LAG_S} s: {'MET' if ok_lag else 'MISSED'}")
    print()
    print("ALL TARGETS MET" if ok else "SOME TARGETS MISSED (see above)")
    return ok


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 s and 60 s clips only")
    ap.add_argument("--durations", help="comma-separated clip lengths in seconds (overrides --quick)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"model to score with (default {DEFAULT_MODEL}; untrained is fine)")
    ap.add_argument("--source", choices=["auto", "grid", "synthetic"], default="auto")
    ap.add_argument("--size", default="1280x720", help="clip frame size WxH (default 1280x720)")
    ap.add_argument("--clips-dir", default=str(Path(tempfile.gettempdir()) / "msa-bench-clips"))
    ap.add_argument("--naive-max-duration", type=float, default=600.0,
                    help="run the naive baseline only on clips up to this length (s)")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-live", action="store_true")
    ap.add_argument("--live-seconds", type=float, default=30.0)
    ap.add_argument("--json", help="also write all measurements to this JSON file")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per-worker timeout (s)")
    ap.add_argument("--asr-beam", type=int, help="optimised pipeline only: Whisper beam size (default: the "
                    "pipeline's own); e.g. 1 to measure a faster ASR setting")
    ap.add_argument("--no-v1", action="store_true", help="skip the FeatureSpec v1 pipeline run on each clip")
    ap.add_argument("--spec-version", type=int, help=argparse.SUPPRESS)
    # internal: worker mode
    ap.add_argument("--worker", choices=["optimised", "naive", "live"], help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    ap.add_argument("--warmup", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        if args.worker == "optimised":
            asr = {"beam_size": args.asr_beam} if args.asr_beam else None
            worker_optimised(args.clip, args.warmup, args.model, args.result, asr, args.spec_version)
        elif args.worker == "naive":
            worker_naive(args.clip, args.warmup, args.model, args.result)
        else:
            worker_live(args.clip, args.warmup, args.model, args.result, args.live_seconds)
        return 0

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        ap.error("--size must look like 1280x720")
    size = (w, h)
    if args.durations:
        durations = tuple(float(d) for d in args.durations.split(","))
    else:
        durations = QUICK_DURATIONS if args.quick else DEFAULT_DURATIONS
    source = args.source
    if source == "auto":
        source = "grid" if any(GRID_DIR.glob("*.mpg")) else "synthetic"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"model": args.model, "cores": cores, "source": source, "size": args.size, "load_before": _loadavg(),
            "asr": f"beam {args.asr_beam}" if args.asr_beam else "pipeline default"}
    clips_dir = Path(args.clips_dir)
    t_start = time.perf_counter()
    warmup, _ = ensure_clip(clips_dir, 3.0, size, source)
    runs = []
    for d in durations:
        clip, gen = ensure_clip(clips_dir, d, size, source)
        if gen:
            print(f"generated {clip.name} in {gen:.0f} s", file=sys.stderr)
        print(f"[{time.perf_counter() - t_start:6.0f} s] optimised on {d:.0f} s clip ...", file=sys.stderr)
        extra = ["--asr-beam", str(args.asr_beam)] if args.asr_beam else []
        run = {"clip": str(clip), "duration": d,
               "optimised": _run_worker("optimised", clip, warmup, args.model, args.timeout, extra)}
        if "duration" in run["optimised"]:
            run["duration"] = run["optimised"]["duration"]
        if not args.no_v1:
            print(f"[{time.perf_counter() - t_start:6.0f} s] FeatureSpec v1 pipeline on {d:.0f} s clip ...", file=sys.stderr)
            run["v1"] = _run_worker("optimised", clip, warmup, args.model, args.timeout, extra + ["--spec-version", "1"])
        if not args.no_naive and d <= args.naive_max_duration:
            print(f"[{time.perf_counter() - t_start:6.0f} s] naive baseline on {d:.0f} s clip ...", file=sys.stderr)
            run["naive"] = _run_worker("naive", clip, warmup, args.model, args.timeout)
        runs.append(run)
    live = None
    if not args.no_live:
        live_clip, _ = ensure_clip(clips_dir, 60.0, size, source)
        print(f"[{time.perf_counter() - t_start:6.0f} s] live mode for {args.live_seconds:.0f} s ...", file=sys.stderr)
        live = _run_worker("live", live_clip, warmup, args.model, args.live_seconds + 300,
                           ["--live-seconds", str(args.live_seconds)])
    ok = print_report(runs, live, info)
    print(f"(benchmark took {time.perf_counter() - t_start:.0f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "runs": runs, "live": live}, indent=1, default=float))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
