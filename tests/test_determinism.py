"""Same input, same answer (issue 10): a recording analysed again — in the same process, in a fresh
`msa-studio analyze` process, or from the feature cache — gives byte-identical JSON apart from its
creation time. The clip is the issue's case: one sentence said four times (it once gave 8, 8 and
4 segments in three runs, from Whisper's sampling fallback)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.media_factory import cached_speech, requires_espeak, write_media

ROOT = Path(__file__).resolve().parent.parent
SENTENCE = "I really love this wonderful movie, it makes me so happy."


def _canonical(result_dict: dict) -> str:
    d = dict(result_dict)
    d.pop("created", None)
    return json.dumps(d, indent=2, sort_keys=True)


@pytest.fixture(scope="module")
def repeated_clip(tmp_path_factory) -> Path:
    once = np.asarray(cached_speech(SENTENCE, 16000, pad=0.7), np.float32)
    wave = np.tile(once, 4)
    path = tmp_path_factory.mktemp("determinism") / "four_times.mp4"
    return write_media(path, len(wave) / 16000, wave_data=wave, sample_rate=16000, video=True)


@requires_espeak
def test_same_file_same_json_in_process_and_from_the_cache(repeated_clip, tmp_path):
    from analysis.analyzer import Analyzer
    from core.feature_cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    analyzer = Analyzer.from_pretrained("lnln", cache=cache)
    runs = [analyzer(str(repeated_clip)) for _ in range(2)]  # miss, hit
    assert cache.stats.hits == 1
    runs.append(Analyzer(analyzer.engine, analyzer.pipeline, cache=None)(str(repeated_clip)))  # extracted again, no cache
    texts = " ".join(s.text for s in runs[0].segments).lower()
    assert texts.count("movie") == 4, texts  # every repetition is heard and scored
    first = _canonical(runs[0].to_dict())
    for other in runs[1:]:
        assert _canonical(other.to_dict()) == first


@requires_espeak
def test_fresh_processes_write_identical_json(repeated_clip, tmp_path):
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        proc = subprocess.run([sys.executable, "-m", "cli.main", "analyze", str(repeated_clip), "--json", str(out)],
                              cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs.append(_canonical(json.loads(out.read_text(encoding="utf-8"))))
    assert outs[0] == outs[1]


def test_scores_do_not_depend_on_the_thread_count_set_since_loading():
    """With OMP_NUM_THREADS=1 a fresh extraction and a cache hit once wrote different last digits:
    CTranslate2 (the ASR) sets OpenMP's thread count for the whole process, so a model scored
    after an ASR pass summed its floats over another number of threads than one scored from the
    cache. The engine scores with the thread count it was loaded with."""
    import torch

    from analysis.engine import InferenceEngine
    from core.types import SegmentFeatures

    loaded_with = torch.get_num_threads()
    engine = InferenceEngine("emt-dlfr", device="cpu")
    spec = engine.spec
    rng = np.random.default_rng(3)
    feats = [SegmentFeatures(text=rng.normal(size=(20, spec.text.dim)).astype(np.float32),
                             text_ids=np.array([101, *range(2000, 2018), 102], dtype=np.int64),
                             audio=rng.normal(size=(200, spec.audio.dim)).astype(np.float32),
                             audio_mask=np.ones(200, bool),
                             visual=rng.normal(size=(60, spec.visual.dim)).astype(np.float32),
                             visual_mask=np.ones(60, bool)) for _ in range(12)]
    before = engine.score_masks(feats)
    try:
        torch.set_num_threads(1 if loaded_with > 1 else 2)  # what an ASR pass does behind our back
        after = engine.score_masks(feats)
    finally:
        torch.set_num_threads(loaded_with)
    for k in before:
        assert before[k].tobytes() == after[k].tobytes(), k
