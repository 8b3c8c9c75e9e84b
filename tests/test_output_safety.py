"""Issue 10: no output ever destroys an input, a device node or a folder; every user error of every
subcommand is one line + exit 2 and comes before the long work; all files are written atomically
through core.atomic_write.

The long work (analysis, training, evaluation, extraction) is replaced by stand-ins that record
whether they were reached, so these tests are fast and can assert "refused *before* any work".
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from core.errors import MSAError
from core.feature_spec import default_spec
from core.result import AnalysisResult
from core.types import MediaInfo, ModelInfo, SegmentFeatures, SegmentResult

MODEL = "late-fusion"


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("msa-studio"), err
    return lines[0]


def make_device_node(path: Path) -> Path:
    """A character device like /dev/null (needs CAP_MKNOD), else a FIFO: both are not regular files
    and an os.replace over them would silently swap them for a plain file."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        os.mkfifo(path)
    return path


def is_special(path: Path) -> bool:
    mode = os.lstat(path).st_mode
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


# -------------------------------------------------------------------------------- analyze


class FakeAnalysis:
    """Stands in for analysis.analyzer.Analyzer (from_pretrained, then run): instant, loads no
    model, records its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.engine = None

    def from_pretrained(self, *args, **kwargs) -> "FakeAnalysis":
        return self

    def run(self, path, transcript=None, ctx=None):
        from analysis.analyzer import Analysis

        self.calls.append(str(path))
        seg = SegmentResult(0.0, 1.0, "hello", 1.0, contributions={"text": 0.5, "audio": 0.25, "visual": 0.25})
        result = AnalysisResult(recording=MediaInfo(str(path), 1.0, has_audio=True, has_video=False),
                                feature_spec=default_spec(), model=ModelInfo(MODEL, device="cpu"), segments=[seg])
        return Analysis(result, None)


@pytest.fixture()
def fake_analysis(monkeypatch) -> FakeAnalysis:
    fake = FakeAnalysis()
    monkeypatch.setattr("analysis.analyzer.Analyzer", fake)
    return fake


@pytest.fixture()
def recording(tmp_path: Path) -> Path:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42 precious recording bytes")
    return video


def analyze(media: Path, *extra: str) -> int:
    return main(["analyze", str(media), "--model", MODEL, "--quiet", *extra])


@pytest.mark.parametrize("flag", ["--json", "--csv"])
def test_output_that_is_the_input_is_refused_and_the_recording_kept(recording, tmp_path, flag, fake_analysis, capsys):
    before = recording.read_bytes()
    extra = [flag, str(recording)] + ([] if flag == "--json" else ["--json", str(tmp_path / "r.json")])
    assert analyze(recording, *extra) == 2
    assert "input" in one_line_error(capsys)
    assert recording.read_bytes() == before
    assert fake_analysis.calls == [], "refused after the analysis instead of before it"


def test_output_that_is_the_input_through_another_spelling_or_a_link(recording, tmp_path, fake_analysis, capsys):
    before = recording.read_bytes()
    link = tmp_path / "link.json"
    link.symlink_to(recording)
    hard = tmp_path / "hard.json"
    os.link(recording, hard)
    for target in (tmp_path / "sub" / ".." / "v.mp4", link, hard):
        (tmp_path / "sub").mkdir(exist_ok=True)
        assert analyze(recording, "--json", str(target)) == 2
        assert "input" in one_line_error(capsys)
    assert recording.read_bytes() == before and fake_analysis.calls == []


def test_output_that_is_the_transcript_or_checkpoint_is_refused(recording, tmp_path, fake_analysis, capsys):
    transcript = tmp_path / "subs.srt"
    transcript.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    before = transcript.read_bytes()
    assert analyze(recording, "--transcript", str(transcript), "--json", str(tmp_path / "r.json"),
                   "--csv", str(transcript)) == 2
    assert "input" in one_line_error(capsys)
    assert transcript.read_bytes() == before and fake_analysis.calls == []


def test_output_that_is_the_default_checkpoint_sidecar_is_refused(recording, tmp_path, fake_analysis, monkeypatch,
                                                                  capsys):
    sidecar = tmp_path / "shipped.json"
    sidecar.write_text('{"format_version": 2}')
    monkeypatch.setattr("analysis.engine.default_checkpoint", lambda model: str(tmp_path / "shipped.safetensors"))
    assert analyze(recording, "--json", str(sidecar)) == 2
    assert "input" in one_line_error(capsys)
    assert sidecar.read_text() == '{"format_version": 2}' and fake_analysis.calls == []


def test_device_node_output_is_refused_and_kept(recording, tmp_path, fake_analysis, capsys):
    node = make_device_node(tmp_path / "null")
    assert analyze(recording, "--json", str(node)) == 2
    assert "regular file" in one_line_error(capsys)
    assert is_special(node), "the device node was replaced by a plain file"
    assert fake_analysis.calls == []


def test_two_outputs_naming_the_same_file_are_refused(recording, tmp_path, fake_analysis, capsys):
    out = tmp_path / "r.out"
    assert analyze(recording, "--json", str(out), "--csv", str(tmp_path / "." / "r.out")) == 2
    assert "same file" in one_line_error(capsys)
    assert not out.exists() and fake_analysis.calls == []


def test_folder_output_is_refused_before_work_and_leaves_no_temp(recording, tmp_path, fake_analysis, capsys):
    folder = tmp_path / "some_dir"
    folder.mkdir()
    assert analyze(recording, "--json", str(folder)) == 2
    assert "folder" in one_line_error(capsys)
    assert folder.is_dir() and fake_analysis.calls == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["some_dir", "v.mp4"], "a temp file was left behind"


@pytest.mark.parametrize("target", ["/proc/x.json", "/proc/self/x.json"])
def test_unwritable_output_folder_is_refused_before_work(recording, target, fake_analysis, capsys):
    assert analyze(recording, "--json", target) == 2
    one_line_error(capsys)
    assert fake_analysis.calls == []


def test_missing_recording_or_transcript_is_refused_before_loading_models(recording, tmp_path, fake_analysis, capsys):
    assert analyze(tmp_path / "missing.mp4", "--json", str(tmp_path / "r.json")) == 2
    assert "not found" in one_line_error(capsys)
    assert analyze(recording, "--transcript", str(tmp_path / "nope.srt"), "--json", str(tmp_path / "r.json")) == 2
    assert "transcript not found" in one_line_error(capsys)
    assert fake_analysis.calls == []


def test_huge_transcript_is_refused_before_loading_models(recording, tmp_path, fake_analysis, capsys):
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(50_000_000)  # sparse: the size alone must decide
    assert analyze(recording, "--transcript", str(big), "--json", str(tmp_path / "r.json")) == 2
    assert "too large" in one_line_error(capsys)
    assert fake_analysis.calls == []


def test_good_outputs_are_written_atomically_and_replace_old_results(recording, tmp_path, fake_analysis, capsys):
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    out_json.write_text("old")
    assert analyze(recording, "--json", str(out_json), "--csv", str(out_csv)) == 0
    assert AnalysisResult.from_json(out_json).segments[0].text == "hello"
    assert out_csv.read_text().startswith("segment,start,end,text,score")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.json", "v.mp4"]


# ------------------------------------------------------------------------ train / eval / extract / batch


def _tiny_cache(directory: Path) -> Path:
    from models.data import DatasetCache

    spec = default_spec()
    cache = DatasetCache.create(directory, spec)
    rng = np.random.default_rng(0)
    for i, split in enumerate(["train", "train", "train", "valid", "valid", "test"]):
        cache.append(f"s{i}", SegmentFeatures(
            text=rng.standard_normal((3, spec.text.dim)).astype(np.float32),
            text_ids=np.array([101, 2000, 102]),
            audio=rng.standard_normal((4, spec.audio.dim)).astype(np.float32), audio_mask=np.ones(4, bool),
            visual=rng.standard_normal((2, spec.visual.dim)).astype(np.float32), visual_mask=np.ones(2, bool),
        ), float(i % 3) - 1.0, split)
    return directory


@pytest.fixture()
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started although the command line was invalid")

    monkeypatch.setattr("models.train.train_model", refuse)


@pytest.fixture()
def no_evaluation(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("evaluation started although the command line was invalid")

    monkeypatch.setattr("models.evaluate.evaluate_robustness", refuse)


@pytest.fixture()
def checkpoint(tmp_path: Path) -> Path:
    from models.checkpoint import save_checkpoint
    from models.registry import build_model

    spec = default_spec()
    return save_checkpoint(tmp_path / "ck", build_model(MODEL, spec), model_name=MODEL, config={}, spec=spec,
                           training={})


def _train(data: Path, out: Path, *extra: str) -> int:
    return main(["train", "--model", MODEL, "--data", str(data), "--out", str(out), "--missing", "none",
                 "--device", "cpu", "--quiet", *extra])


def test_train_out_that_is_a_file_fails_before_training(tmp_path, no_training, capsys):
    data = _tiny_cache(tmp_path / "fc")
    (tmp_path / "file").write_text("keep me")
    assert _train(data, tmp_path / "file") == 2
    assert "not a folder" in one_line_error(capsys)
    assert _train(data, tmp_path / "file" / "sub") == 2
    assert "not a folder" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "keep me"


def test_train_outputs_that_are_folders_fail_before_training(tmp_path, no_training, capsys):
    data = _tiny_cache(tmp_path / "fc")
    (tmp_path / "run" / f"{MODEL}.safetensors").mkdir(parents=True)
    assert _train(data, tmp_path / "run") == 2
    assert "folder" in one_line_error(capsys)


@pytest.mark.parametrize("extra, expected", [
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0"], "batch size"),
    (["--lr", "nan"], "learning rate"),
    (["--lr", "inf"], "learning rate"),
    (["--weight-decay", "-1"], "weight decay"),
    (["--patience", "0"], "patience"),
    (["--select", "nope"], "selection metric"),
    (["--lr-schedule", "linear"], "learning-rate schedule"),
    (["--config", "hidden=abc"], "cannot build model"),
    (["--config", "hidden=-5"], "cannot build model"),
])
def test_train_option_errors_come_before_loading_data_or_training(tmp_path, no_training, monkeypatch, capsys,
                                                                  extra, expected):
    data = _tiny_cache(tmp_path / "fc")

    def no_loading(*args, **kwargs):
        raise AssertionError("data loaded although the command line was invalid")

    monkeypatch.setattr("models.dataset_sources.load_splits", no_loading)
    assert _train(data, tmp_path / "run", *extra) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_eval_out_that_is_a_file_fails_before_evaluation(tmp_path, checkpoint, no_evaluation, capsys):
    data = _tiny_cache(tmp_path / "fc")
    (tmp_path / "file").write_text("keep me")
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path / "file"),
                 "--missing-rates", "0", "--device", "cpu", "--quiet"]) == 2
    assert "not a folder" in one_line_error(capsys)
    assert main(["eval", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(tmp_path / "ev"),
                 "--missing-rates", "0", "--batch-size", "0", "--device", "cpu", "--quiet"]) == 2
    assert "batch size" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "keep me"


def test_extract_dataset_out_that_is_a_file_is_one_line(tmp_path, capsys, monkeypatch):
    def no_extraction(*args, **kwargs):
        raise AssertionError("extraction started although the command line was invalid")

    monkeypatch.setattr("models.extract_dataset.extract_dataset", no_extraction)
    raw = tmp_path / "raw"
    raw.mkdir()
    labels = tmp_path / "label.csv"
    labels.write_text("video_id,clip_id,text,label,mode\n")
    (tmp_path / "file").write_text("keep me")
    assert main(["extract-dataset", str(raw), "--labels", str(labels), "--out", str(tmp_path / "file"),
                 "--quiet"]) == 2
    assert "not a folder" in one_line_error(capsys)
    assert main(["extract-dataset", str(raw), "--labels", str(labels), "--out", str(tmp_path / "fc"),
                 "--workers", "0", "--quiet"]) == 2
    assert "--workers" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "keep me"


def test_batch_out_that_is_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "file").write_text("keep me")
    assert main(["batch", str(tmp_path / "in"), "--out", str(tmp_path / "file"), "--no-ray", "--quiet"]) == 2
    assert "not a folder" in one_line_error(capsys)
    assert (tmp_path / "file").read_text() == "keep me"


# ------------------------------------------------------------------------------- argparse


@pytest.mark.parametrize("argv", [
    ["analyze"],
    ["analyze", "x.mp4"],  # --json is required
    ["train", "--model", MODEL],
    ["eval", "--checkpoint", "c"],
    ["batch"],
    ["extract-dataset", "raw"],
    ["train", "--model", MODEL, "--data", "d", "--out", "o", "--epochs", "many"],
    ["no-such-command"],
    ["models", "--bogus"],
])
def test_command_line_mistakes_are_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    one_line_error(capsys)


def test_help_still_works(capsys):
    with pytest.raises(SystemExit) as info:
        main(["analyze", "--help"])
    assert info.value.code == 0 and "--json" in capsys.readouterr().out


# ------------------------------------------------------------------------ the atomic writer


def test_atomic_write_replaces_whole_files_and_keeps_no_temp(tmp_path):
    from core.atomic_write import atomic_write_bytes, atomic_write_text

    target = tmp_path / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert target.read_text() == "two" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_atomic_write_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    from core.atomic_write import atomic_open

    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as fh:
            fh.write("half of the new cont")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_atomic_write_refuses_folders_and_devices(tmp_path):
    from core.atomic_write import atomic_write_text

    (tmp_path / "d").mkdir()
    with pytest.raises(MSAError, match="folder"):
        atomic_write_text(tmp_path / "d", "x")
    node = make_device_node(tmp_path / "node")
    with pytest.raises(MSAError, match="regular file"):
        atomic_write_text(node, "x")
    assert is_special(node)
    with pytest.raises(MSAError, match="cannot write"):
        atomic_write_text(Path("/proc/no_such_dir/x.json"), "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "node"]


def test_atomic_write_keeps_the_mode_of_the_file_it_replaces(tmp_path):
    from core.atomic_write import atomic_write_text

    target = tmp_path / "a.txt"
    target.write_text("old")
    os.chmod(target, 0o640)
    atomic_write_text(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    umask = os.umask(0)
    os.umask(umask)
    atomic_write_text(tmp_path / "fresh.txt", "x")
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o666 & ~umask


def test_no_hand_written_write_then_rename_is_left():
    """Every write-then-rename goes through core/atomic_write.py (one place to get it right)."""
    import re

    root = Path(__file__).resolve().parent.parent
    offenders = []
    for path in [*root.glob("core/**/*.py"), *root.glob("models/**/*.py"), *root.glob("cli/**/*.py"),
                 *root.glob("benchmarks/**/*.py"), *root.glob("analysis/**/*.py"), *root.glob("app/**/*.py"),
                 *root.glob("scripts/**/*.py")]:
        if path.name == "atomic_write.py":
            continue
        text = path.read_text(encoding="utf-8")
        if re.search(r"os\.replace\(|mkstemp\(|\.tmp\b[\"']|\btmp\.replace\(", text):
            offenders.append(path.relative_to(root).as_posix())
    assert not offenders, offenders
