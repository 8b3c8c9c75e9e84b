"""Feature cache (models/data.py) and dataset extraction with an injected fake pipeline."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from core.errors import FeatureSpecMismatch, MSAError
from core.feature_spec import default_spec
from core.types import SegmentFeatures
from models.data import DatasetCache
from models.extract_dataset import extract_dataset, read_label_csv
from tests.media_factory import requires_espeak

SPEC = default_spec()


def fake_features(path: str, text: str | None) -> SegmentFeatures:
    """Deterministic features that encode the clip so tests can check what was stored where."""
    seed = sum(path.encode()) + len(text or "")
    rng = np.random.default_rng(seed)
    n_tok = 2 + len((text or "").split())
    d = SPEC.dims
    return SegmentFeatures(
        text=rng.standard_normal((n_tok, d["text"])).astype(np.float32),
        text_ids=np.array([101] + [2000 + i for i in range(n_tok - 2)] + [102], dtype=np.int64),
        audio=rng.standard_normal((5, d["audio"])).astype(np.float32),
        audio_mask=np.ones(5, dtype=bool),
        visual=rng.standard_normal((3, d["visual"])).astype(np.float32),
        visual_mask=np.array([True, False, True]),
    )


class FakePipeline:
    """Stands in for core.pipeline.FeaturePipeline: clips whose file contains b'BAD' fail, b'CRASH'
    kills the worker process, b'NOFACE' warns."""

    calls: list[tuple[str, str | None]] = []

    def extract_utterance(self, path, text=None, ctx=None):
        content = Path(path).read_bytes()
        FakePipeline.calls.append((path, text))
        if b"CRASH" in content:
            os._exit(3)
        if b"BAD" in content:
            raise ValueError("undecodable clip")
        if b"NOFACE" in content and ctx is not None:
            ctx.warn("no face detected")
        return fake_features(path, text)


def fake_factory() -> FakePipeline:  # module level: picklable for worker processes
    return FakePipeline()


def failing_factory() -> FakePipeline:
    raise RuntimeError("weights missing")


def make_raw(tmp_path: Path, clips: dict[tuple[str, str], bytes], rows: list[str]) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    for (vid, cid), content in clips.items():
        (raw / vid).mkdir(parents=True, exist_ok=True)
        (raw / vid / f"{cid}.mp4").write_bytes(content)
    raw.mkdir(exist_ok=True)
    csv = tmp_path / "label.csv"
    csv.write_text("video_id,clip_id,text,label,mode\n" + "\n".join(rows) + "\n")
    return raw, csv


# ------------------------------------------------------------------------------ feature cache


def test_cache_round_trip_and_splits(tmp_path) -> None:
    cache = DatasetCache.create(tmp_path / "fc", SPEC)
    f = fake_features("a", "hello world")
    cache.append("v1$_$1", f, 1.5, "train", text="hello world", source="transcript", warnings=["w"])
    cache.append("weird/id with space", fake_features("b", None), -2.0, "test")
    again = DatasetCache(tmp_path / "fc")
    assert again.spec == SPEC
    assert again.ids("train") == ["v1$_$1"] and again.ids("test") == ["weird/id with space"]
    loaded = again.load("v1$_$1")
    for k in ("text", "text_ids", "audio", "audio_mask", "visual", "visual_mask"):
        np.testing.assert_array_equal(getattr(loaded, k), getattr(f, k))
    rec = again.record("v1$_$1")
    assert (rec.label, rec.text, rec.source, rec.warnings) == (1.5, "hello world", "transcript", ["w"])
    # ids with path separators never escape the features folder
    assert all(p.parent.name == "features" for p in (tmp_path / "fc").rglob("*.npz"))
    ds = again.dataset("train", preload=True)
    feats, label, idx = ds[0]
    assert label == 1.5 and idx == 0 and feats.text.shape == f.text.shape


def test_cache_survives_partial_index_line(tmp_path) -> None:
    cache = DatasetCache.create(tmp_path / "fc", SPEC)
    cache.append("a", fake_features("a", "x"), 0.5, "train")
    with open(tmp_path / "fc" / "index.jsonl", "a") as f:
        f.write('{"id": "b", "label": 1.0, "spl')  # killed mid-write
    cache = DatasetCache(tmp_path / "fc")
    assert cache.ids() == ["a"] and cache.skipped_lines == 1
    cache.append("c", fake_features("c", "y"), 0.1, "valid")
    reread = DatasetCache(tmp_path / "fc")
    assert reread.ids() == ["a", "c"] and reread.skipped_lines == 1


def test_cache_rejects_other_specs_and_bad_input(tmp_path) -> None:
    DatasetCache.create(tmp_path / "fc", SPEC)
    with pytest.raises(FeatureSpecMismatch, match="visual.dim"):
        DatasetCache.create(tmp_path / "fc", SPEC.with_modality("visual", dim=10))
    cache = DatasetCache(tmp_path / "fc")
    bad = fake_features("a", "x")
    bad.audio = np.zeros((5, 12), np.float32)
    with pytest.raises(FeatureSpecMismatch, match="audio"):
        cache.append("a", bad, 0.0, "train")
    with pytest.raises(MSAError, match="split"):
        cache.append("a", fake_features("a", "x"), 0.0, "training")
    with pytest.raises(MSAError, match="not a feature cache"):
        DatasetCache(tmp_path / "nothing")


# ---------------------------------------------------------------------------------- extraction


def test_extract_records_failures_and_resumes(tmp_path) -> None:
    clips = {("v1", "1"): b"ok", ("v1", "2"): b"ok NOFACE", ("v2", "1"): b"BAD", ("v2", "2"): b"ok"}
    rows = ["v1,1,great movie,2.0,train", "v1,2,so so,0.0,valid", "v2,1,broken,1.0,test",
            "v2,2,bad label,abc,train", "v3,9,no file,1.0,test", "v2,2,,-1.0,test"]
    raw, csv = make_raw(tmp_path, clips, rows)
    FakePipeline.calls.clear()
    reports = []
    from core.progress import RunContext

    ctx = RunContext(progress=lambda s, f, m: reports.append((s, f)))
    out = tmp_path / "fc"
    s = extract_dataset(raw, csv, out, fake_factory, spec=SPEC, workers=1, ctx=ctx)
    assert s.total == 5  # the duplicated v2,2 row is ignored
    assert s.extracted == 2 and s.skipped == 0
    assert set(s.failed) == {"v2$_$1", "v2$_$2", "v3$_$9"}
    assert "undecodable" in s.failed["v2$_$1"] and "label" in s.failed["v2$_$2"]
    assert "not found" in s.failed["v3$_$9"]
    # CSV text replaces ASR
    assert (str(raw / "v1" / "1.mp4"), "great movie") in FakePipeline.calls
    cache = DatasetCache(out)
    assert cache.ids("train") == ["v1$_$1"] and cache.ids("valid") == ["v1$_$2"]
    assert cache.record("v1$_$2").warnings == ["no face detected"]
    assert cache.record("v1$_$1").source == "transcript"
    assert set(cache.failures()) == set(s.failed)
    assert reports and reports[-1] == ("extract", 1.0)

    FakePipeline.calls.clear()
    s2 = extract_dataset(raw, csv, out, fake_factory, spec=SPEC, workers=1)
    assert s2.skipped == 2 and s2.extracted == 0
    assert [c[0] for c in FakePipeline.calls] == [str(raw / "v2" / "1.mp4")]  # only the failed clip retried


def test_id_only_csv_and_dev_mode(tmp_path) -> None:
    raw = tmp_path / "raw"
    (raw / "abc").mkdir(parents=True)
    (raw / "abc" / "3.WAV").write_bytes(b"ok")
    (raw / "xyz_7.mkv").write_bytes(b"ok")
    csv = tmp_path / "l.csv"
    csv.write_text("id,text,label,mode\nabc_3,hi there,1.2,dev\nxyz_7,yo,-0.4,train\n")
    jobs = {j.sample_id: j for j in read_label_csv(raw, csv)}
    assert jobs["abc_3"].split == "valid" and jobs["abc_3"].path.endswith("3.WAV")
    assert jobs["xyz_7"].path.endswith("xyz_7.mkv") and jobs["xyz_7"].label == -0.4
    bad = tmp_path / "bad.csv"
    bad.write_text("name,score\nx,1\n")
    with pytest.raises(MSAError, match="video_id"):
        read_label_csv(raw, bad)


def test_pipeline_that_cannot_start_is_one_clear_error(tmp_path) -> None:
    raw, csv = make_raw(tmp_path, {("v", "1"): b"ok"}, ["v,1,t,1.0,train"])
    with pytest.raises(MSAError, match="weights missing"):
        extract_dataset(raw, csv, tmp_path / "fc", failing_factory, spec=SPEC, workers=1)


def test_parallel_workers_survive_a_crashing_clip(tmp_path) -> None:
    clips = {("v", str(i)): b"ok" for i in range(6)}
    clips[("v", "3")] = b"CRASH"
    rows = [f"v,{i},words {i},{i - 3}.0,train" for i in range(6)]
    raw, csv = make_raw(tmp_path, clips, rows)
    s = extract_dataset(raw, csv, tmp_path / "fc", fake_factory, spec=SPEC, workers=2)
    assert set(s.failed) == {"v$_$3"} and "crashed" in s.failed["v$_$3"]
    cache = DatasetCache(tmp_path / "fc")
    assert sorted(cache.ids()) == ["v$_$%d" % i for i in range(6) if i != 3]
    # features came from the workers' pipelines, computed from the clip path and the CSV text
    np.testing.assert_array_equal(cache.load("v$_$1").audio,
                                  fake_features(str(raw / "v" / "1.mp4"), "words 1").audio)


@requires_espeak
def test_real_pipeline_extracts_a_clip(tmp_path) -> None:
    from core.pipeline import FeaturePipeline

    try:
        FeaturePipeline(SPEC, "cpu")
    except NotImplementedError:
        pytest.skip("core.pipeline.FeaturePipeline is not implemented yet")
    except MSAError as exc:
        pytest.skip(f"feature pipeline unavailable here: {exc}")
    import importlib.util

    if importlib.util.find_spec("core.extractors.text") is None:
        pytest.skip("the text extractor (core/extractors/text.py) is not written yet")
    from models.extract_dataset import make_default_factory
    from tests.media_factory import make_video

    raw = tmp_path / "raw" / "vid"
    raw.mkdir(parents=True)
    # speech: FeatureSpec v2's audio rows are Whisper encoder states of speech pieces (a tone has none)
    make_video(raw / "1.mp4", 2.5, speech_text="a fine test clip", tone_hz=None)
    csv = tmp_path / "label.csv"
    csv.write_text("video_id,clip_id,text,label,mode\nvid,1,a fine test clip,1.0,train\n")
    s = extract_dataset(tmp_path / "raw", csv, tmp_path / "fc", make_default_factory(SPEC), spec=SPEC, workers=1)
    assert s.extracted == 1, s.failed
    f = DatasetCache(tmp_path / "fc").load("vid$_$1")
    assert f.text.shape[1] == SPEC.text.dim and f.audio.shape[1] == SPEC.audio.dim
    assert f.audio_mask.any()
    assert json.loads((tmp_path / "fc" / "spec.json").read_text())["name"] == SPEC.name


def test_extract_command_user_errors(tmp_path, capsys) -> None:
    from cli.main import main

    assert main(["extract-dataset", str(tmp_path / "missing"), "--labels", str(tmp_path / "l.csv"),
                 "--out", str(tmp_path / "fc"), "--quiet"]) == 2
    assert "clip folder not found" in capsys.readouterr().err


# ------------------------------------------------------------------- hostile label files (issue 10)


def test_clip_ids_cannot_reach_outside_the_clip_folder(tmp_path) -> None:
    outside = tmp_path / "secret" / "dir"
    outside.mkdir(parents=True)
    (outside / "clip.mp4").write_bytes(b"ok but not yours")
    raw = tmp_path / "deep" / "er" / "raw"
    (raw / "v").mkdir(parents=True)
    (raw / "v" / "1.mp4").write_bytes(b"ok")
    (raw / "v" / "..clip.mp4").write_bytes(b"ok")  # dots inside a name are fine
    pair = tmp_path / "pair.csv"
    pair.write_text("video_id,clip_id,text,label,mode\n"
                    "../../../secret/dir,clip,a,1.0,train\n"
                    "v,../../../../secret/dir/clip,b,1.0,train\n"
                    f"{outside},clip,c,1.0,train\n"
                    "v,1,d,1.0,train\n"
                    "v,..clip,e,1.0,train\n")
    single = tmp_path / "single.csv"
    single.write_text(f"id,text,label,mode\n../../../secret/dir/clip,f,1.0,train\n{outside}/clip,g,1.0,train\n")
    for csv in (pair, single):
        FakePipeline.calls.clear()
        s = extract_dataset(raw, csv, tmp_path / f"fc-{csv.stem}", fake_factory, spec=SPEC, workers=1)
        assert not any("secret" in path for path, _ in FakePipeline.calls), FakePipeline.calls
        escaped = [sid for sid in s.failed if "secret" in sid]
        assert len(escaped) == (3 if csv is pair else 2), s.failed
        assert all("outside the clip folder" in s.failed[sid] for sid in escaped), s.failed
    assert {Path(p).name for p, _ in FakePipeline.calls} == set()  # single.csv has no legitimate row
    s = extract_dataset(raw, pair, tmp_path / "fc-pair", fake_factory, spec=SPEC, workers=1)
    assert DatasetCache(tmp_path / "fc-pair").ids() == ["v$_$1", "v$_$..clip"]


def test_non_finite_labels_are_refused_naming_the_line(tmp_path) -> None:
    clips = {("v", str(i)): b"ok" for i in range(5)}
    rows = ["v,0,a,nan,train", "v,1,b,inf,train", "v,2,c,-Infinity,test", "v,3,d,1.5,train", "v,4,e,1e999,valid"]
    raw, csv = make_raw(tmp_path, clips, rows)
    s = extract_dataset(raw, csv, tmp_path / "fc", fake_factory, spec=SPEC, workers=1)
    assert set(s.failed) == {"v$_$0", "v$_$1", "v$_$2", "v$_$4"}
    for sample_id, line in (("v$_$0", 2), ("v$_$1", 3), ("v$_$2", 4), ("v$_$4", 6)):
        assert f"line {line}" in s.failed[sample_id] and "finite" in s.failed[sample_id], s.failed
    cache = DatasetCache(tmp_path / "fc")
    assert cache.ids() == ["v$_$3"]
    for bad in (float("nan"), float("inf")):
        with pytest.raises(MSAError, match="finite"):
            cache.append("x", fake_features("x", "y"), bad, "train")
    assert DatasetCache(tmp_path / "fc").ids() == ["v$_$3"]


LATIN1 = "video_id,clip_id,text,label,mode\nv,1,un café très bon,1.0,train\n".encode("latin-1")


@pytest.mark.parametrize("content, expected", [
    (LATIN1, r"not UTF-8 .*line 2"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, "not a text"),
    (bytes(range(256)) * 40, "not a text"),
    ("video_id,clip_id,text,label,mode\nv,1,".encode() + b"x" * 200_000 + b",1.0,train\n", "line 2"),
])
def test_label_files_that_are_not_utf8_text_are_one_clear_error(tmp_path, capsys, content, expected) -> None:
    from cli.main import main

    raw = tmp_path / "raw"
    (raw / "v").mkdir(parents=True)
    (raw / "v" / "1.mp4").write_bytes(b"ok")
    csv = tmp_path / "label.csv"
    csv.write_bytes(content)
    with pytest.raises(MSAError, match=expected) as info:
        read_label_csv(raw, csv)
    assert "\n" not in str(info.value)
    assert main(["extract-dataset", str(raw), "--labels", str(csv), "--out", str(tmp_path / "fc"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


def test_utf16_label_file_with_bom_is_read(tmp_path) -> None:
    raw = tmp_path / "raw"
    (raw / "v").mkdir(parents=True)
    (raw / "v" / "1.mp4").write_bytes(b"ok")
    csv = tmp_path / "label.csv"
    csv.write_bytes("video_id,clip_id,text,label,mode\nv,1,un café,1.0,train\n".encode("utf-16"))
    (job,) = read_label_csv(raw, csv)
    assert job.text == "un café" and job.label == 1.0 and not job.problem
