"""The typed AnalysisResult: recording, feature spec and model are dataclasses in memory and dicts only
in the JSON. tests/fixtures/result_before_typed.json was written by the dict-based result (commit
482bf2a) from the result `_fixture_result` builds: the typed code must write the same bytes, read
files of that format (and older ones) back, and refuse malformed ones with one line."""
from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path

import pytest

from core.errors import MSAError
from core.feature_cache import encode_features
from core.feature_spec import FeatureSpec, default_spec
from core.result import AnalysisResult
from core.session import SESSION_VERSION, load_session, save_session
from core.types import MediaInfo, ModelInfo, SegmentResult
from core.uncertainty import PredictionInterval

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "result_before_typed.json"


def _fixture_result() -> AnalysisResult:
    """The result the fixture was written from, built with the typed API."""
    info = MediaInfo(path="/data/talk <1>.mp4", duration=6.48, has_audio=True, has_video=True, video_fps=29.97,
                     width=1280, height=720, audio_sample_rate=48000, audio_channels=2,
                     container="mov,mp4,m4a,3gp,3g2,mj2", size_bytes=1234567,
                     transcript={"source": "sidecar", "path": "/data/talk <1>.srt", "format": "srt"})
    segs = [
        SegmentResult(start=0.0, end=2.5, text="I really liked it.", score=1.25,
                      unimodal={"text": 1.5, "audio": 0.25, "visual": -0.125},
                      contributions={"text": 0.875, "audio": 0.125, "visual": 0.0625}, base_score=0.1875,
                      mask_scores={"TAV": 1.25, "TA_": 1.0, "T_V": 1.125, "_AV": 0.5, "T__": 0.75, "_A_": 0.25,
                                   "__V": 0.375, "___": 0.1875},
                      confidence=PredictionInterval(0.8, 0.5, 2.0)),
        SegmentResult(start=2.5, end=4.0, text="Then nothing.", score=-0.5,
                      unimodal={"text": -0.25, "audio": -0.75},
                      contributions={"text": -0.25, "audio": -0.4375, "visual": float("nan")}, base_score=0.1875,
                      mask_scores={"TAV": -0.5, "TA_": -0.5, "___": 0.1875}, confidence=None,
                      warnings=["no face found in this segment; visual modality is missing"]),
        SegmentResult(start=4.0, end=6.48, text="", score=0.0),
    ]
    return AnalysisResult(
        recording=info,
        feature_spec=default_spec(),
        model=ModelInfo(name="lnln", checkpoint="/models/lnln.safetensors", untrained=False, device="cpu",
                        training={"dataset": "compose-v2", "epochs": 30, "seed": 7,
                                  "valid": {"mae": 0.71, "corr": 0.62}}),
        segments=segs,
        warnings=["no face found in the video: visual modality is missing (scored as masked)"],
        created="2025-01-02T03:04:05+00:00",
        version="0.1.0",
    )


def _fixture_dict() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_typed_result_writes_the_bytes_the_dict_based_result_wrote(tmp_path: Path) -> None:
    _fixture_result().to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_bytes() == FIXTURE.read_bytes()


def test_a_file_of_the_old_format_reads_back_typed_and_writes_the_same_bytes(tmp_path: Path) -> None:
    result = AnalysisResult.from_json(FIXTURE)
    assert isinstance(result.recording, MediaInfo) and isinstance(result.model, ModelInfo)
    assert isinstance(result.feature_spec, FeatureSpec) and result.feature_spec == default_spec()
    assert result.recording == _fixture_result().recording and result.model == _fixture_result().model
    assert result.recording.transcript == {"source": "sidecar", "path": "/data/talk <1>.srt", "format": "srt"}
    assert result.model.training["valid"] == {"mae": 0.71, "corr": 0.62} and not result.untrained
    result.to_json(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == FIXTURE.read_bytes()


def test_older_files_without_optional_keys_load_with_defaults() -> None:
    d = _fixture_dict()
    del d["recording"]["transcript"], d["recording"]["size_bytes"], d["recording"]["container"]
    del d["model"]["training"], d["model"]["device"]
    d["recording"]["written_by_a_newer_version"] = 1  # an unknown key is ignored, not an error
    d["model"]["quantised"] = True
    result = AnalysisResult.from_dict(d)
    assert result.recording.transcript is None and result.recording.size_bytes == 0 and result.recording.container == ""
    assert result.model.training == {} and result.model.device == ""
    assert result.recording.path == "/data/talk <1>.mp4" and result.model.name == "lnln"
    untrained = _fixture_dict()
    untrained["model"] = {"name": "tfn", "checkpoint": None, "untrained": True}
    assert AnalysisResult.from_dict(untrained).untrained


@pytest.mark.parametrize("damage, named", [
    (lambda d: d["recording"].pop("path"), "recording.path"),
    (lambda d: d["recording"].pop("has_video"), "recording.has_video"),
    (lambda d: d.update(recording=[1, 2]), "recording is not a mapping"),
    (lambda d: d["model"].pop("name"), "model.name"),
    (lambda d: d.update(model="lnln"), "model is not a mapping"),
    (lambda d: d["feature_spec"].pop("audio"), "malformed feature spec"),
    (lambda d: d.update(feature_spec=None), "feature_spec is not a mapping"),
    (lambda d: d["feature_spec"]["text"].update(dim="many"), "malformed feature spec"),
    (lambda d: d.pop("model"), "'model'"),
])
def test_malformed_entries_are_one_line_errors(damage, named) -> None:
    d = _fixture_dict()
    damage(d)
    with pytest.raises(MSAError) as info:
        AnalysisResult.from_dict(d)
    message = str(info.value)
    assert message.startswith("not an MSA Studio result file") and named in message and "\n" not in message


def test_a_session_written_before_typing_loads_and_saves_again(tmp_path: Path) -> None:
    from tests.test_feature_cache import _recording

    rec = _recording("/data/talk <1>.mp4")
    old = tmp_path / "old.msasession"
    with zipfile.ZipFile(old, "w") as zf:  # core.session's format, the result entry from the fixture
        zf.writestr("session.json", json.dumps({"session_version": SESSION_VERSION, "result": _fixture_dict()}))
        zf.writestr("features.bin", encode_features(rec))
    result, features = load_session(old)
    assert result.to_dict() == _fixture_dict() and isinstance(result.model, ModelInfo)
    assert len(features.segments) == len(rec.segments)
    save_session(tmp_path / "new.msasession", result, features)
    again, _ = load_session(tmp_path / "new.msasession")
    assert again.to_dict() == _fixture_dict()


def test_engine_describes_its_model_typed_and_results_own_their_recording() -> None:
    from tests.report_support import real_scored_recording

    result, rec, engine = real_scored_recording("/data/talk.mp4", n_segments=2)
    info = engine.describe()
    assert isinstance(info, ModelInfo) and result.model == info
    assert (info.name, info.checkpoint, info.untrained, info.device) == \
           (engine.model_name, engine.checkpoint_path, engine.untrained, engine.device)
    assert result.feature_spec == rec.spec and result.recording == rec.info
    before = copy.deepcopy(rec.info)
    result.recording.path = "shown.mp4"  # what the batch runner does for a shipped temp copy
    result.recording.transcript["path"] = "shown.srt"
    assert rec.info == before  # the features (shared by later re-scores) are untouched
    assert result.to_dict()["recording"]["path"] == "shown.mp4"
