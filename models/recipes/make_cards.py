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
    ("MiniLM-L6 text encoder (not in these files; from the wheel)", "Apache-2.0"),
]


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


def model_card(rep: dict[str, Any], uni: dict[str, Any], corpus: dict[str, Any], run: dict[str, Any],
               vis_info: dict[str, Any] | None) -> str:
    from models.registry import model_summary

    name = rep["model"]
    tr = rep["training"]
    masks = rep["composed_dev_masks"]
    a_h = uni["audio"]["heldout_actors"]
    v_h = uni["visual"]["heldout_images"]
    t_sel = uni["text"]["selected"]
    det = f"{vis_info['detection_rate']:.3f}" if vis_info else "n/a"
    return f"""# Model card: `{name}` (default weights of MSA Studio)

{model_summary(name)}

**Use:** the checkpoint `assets/checkpoints/{name}.safetensors` (+ `.json`) is what `msa-studio analyze
--model {name}` loads when no `--checkpoint` is given. It scores each utterance's sentiment on MOSI's
[-3, 3] scale from MiniLM-L6 text features, librosa-v1 audio features and MediaPipe face features.
**Licence of the weights: research / non-commercial only** (inherited from the training data below).

## Training data

The *composed corpus* `{corpus['version']}` (manifest sha256 `{corpus['sha256'][:16]}`…), described in
[README.md](README.md): real MOSI transcripts with their human labels, each paired with a real RAVDESS
speech clip and a real FER2013 face whose emotion valence agrees with the label's sign and strength;
{_f(100 * corpus['config']['p_uninformative'], 0)} % of audio and of visual inputs are neutral/uninformative
regardless of the label, {_f(100 * corpus['config']['p_no_video'], 0)} % of samples have no video and
{_f(100 * corpus['config'].get('p_no_audio', 0.0), 0)} % no audio.
{corpus['train']['n']} training samples, {corpus['dev']['n']} dev samples (= MOSI dev, one pairing each).

Sources and licences:
{_licenses(corpus)}

## Recipe

- command: `{run['command']}` (whole run: {_f(run['timings_s'].get('total', float('nan')) / 60, 1)} min on
  {run['cpu_count']} CPU cores, {len(run['worker_groups'])} worker process(es) x {run['threads_per_worker']} torch thread(s);
  this model: {_f(rep['seconds'], 0)} s including evaluation)
- trainer `models.train.train_model`: AdamW lr {tr['lr']}, weight decay {tr['weight_decay']}, batch {tr['batch_size']},
  up to {tr['epochs']} epochs (ran {tr['epochs_run']}, best epoch {tr['best_epoch']}, patience {tr['patience']}),
  selection on composed-dev {tr['select_metric']}, grad clip {tr['grad_clip']}
- missing-data regime: `{tr['missing']}` (LNLN: per-sample rate ~ U(0, 1), half the batch complete;
  dropped text tokens -> [UNK], {'re-encoded by MiniLM' if tr.get('text_reencoded') else 'features zeroed'})
- seed {tr['seed']}; corpus seed {corpus['seed']}; model config `{rep['config'] or 'defaults'}`
- size: {rep['parameters']:,} parameters, {rep['checkpoint_bytes'] / 1024:.0f} KiB on disk

## Dev metrics (measured by the recipe)

{metric_table([
    ("composed dev, all modalities", rep['composed_dev']),
    ("composed dev, text only (T__)", masks['T__']),
    ("composed dev, audio only (_A_)", masks['_A_']),
    ("composed dev, visual only (__V)", masks['__V']),
    ("composed dev, audio+visual (_AV)", masks['_AV']),
    ("MOSI dev transcripts, no audio/video", rep['mosi_dev_text_only']),
])}

"MOSI dev transcripts, no audio/video" feeds the 229 MOSI dev transcripts through the pipeline's
MiniLM encoder with audio and visual absent (exactly what a text-only input gives); it is the row
`tests/test_default_weights.py` re-computes from the shipped checkpoint.

### Robustness (LNLN protocol on composed dev, seeds {rep['robustness']['seeds']}, text re-encoded)

{robustness_table(rep['robustness'])}

![robustness curve](reports/{name}.robustness.png)

## Unimodal probes (same features, held-out data)

- audio (RAVDESS, train actors 01-16, held-out actors {a_h['actors']}): valence sign accuracy
  {_f(a_h['sign_acc'])} (balanced {_f(a_h['sign_balanced_acc'])}, {a_h['n_polar']} clips), 3-class valence
  {_f(a_h['valence_3class_acc'])}, arousal {_f(a_h['arousal_acc'])}; 5-fold actor CV sign accuracy
  {_f(uni['audio']['actor_cv']['sign_acc'])}
- visual (FER2013, face detection rate {det} after upscaling): held-out valence sign accuracy
  {_f(v_h['sign_acc'])} (balanced {_f(v_h['sign_balanced_acc'])}), 3-class {_f(v_h['valence_3class_acc'])}
  on {v_h['n_dev']} held-out faces
- text (ridge on mean MiniLM features, extra corpora {t_sel['extra'] or 'none'} chosen on dev): MOSI dev
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
- Only English, and text features are frozen MiniLM-L6 (fine-tuned BERT models score higher on MOSI).
- Dev numbers on composed data over-state real multimodal performance; the MOSI-dev text-only row is
  the honest number for real transcripts.
- For research use, retrain on real MOSI/MOSEI videos: `msa-studio extract-dataset` + `msa-studio train`.
"""


def corpus_card(corpus: dict[str, Any], uni: dict[str, Any], vis_info: dict[str, Any] | None,
                run: dict[str, Any], audio_info: dict[str, Any] | None = None) -> str:
    from models.recipes import compose as compose_mod

    cfg = corpus["config"]
    gain = (audio_info or {}).get("gain_check", {})

    def stats(split: str) -> str:
        s = corpus[split]
        lines = [f"- samples: {s['n']}; text sources {s['text_sources']}; labels: "
                 f"{_f(100 * s['labels']['share_positive'], 1)} % positive, {_f(100 * s['labels']['share_negative'], 1)} % negative, "
                 f"{_f(100 * s['labels']['share_zero'], 1)} % zero"]
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

Roles: `label` = chosen to agree with the label's sign/strength; `neutral-label` = neutral item
because |label| < {cfg['neutral_band']}; `uninformative` = neutral item or GRID clip regardless of the
label; `absent` = no such modality.

## Feature extraction facts

- FER2013: {vis_info['fer_images'] if vis_info else 'n/a'} faces (class-balanced seeded subset, surprise
  excluded), upscaled to {vis_info['upscale_to'] if vis_info else 'n/a'} px with a {vis_info['pad_frac'] if vis_info else 'n/a'}
  border; MediaPipe detection rate {_f(vis_info['detection_rate']) if vis_info else 'n/a'}
  (per class: {vis_info['detection_rate_per_class'] if vis_info else 'n/a'}).
- RAVDESS: all 1200 speech clips of actors 01-20, one segment per clip, librosa-v1 at 25 Hz.
- Feature-space gain model (`compose.apply_gain`) vs re-extraction at {_f(gain.get('gain_db'), 0)} dB on
  {len(gain.get('clips', []))} clips: mean error {_f(gain.get('level_columns', {}).get('gain_model'))} column-std on
  mfcc_0/log_rms_db ({_f(gain.get('level_columns', {}).get('no_adjustment'))} without adjustment),
  {_f(gain.get('all_columns', {}).get('gain_model'))} over all 69 columns.
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
    written = []
    for path in sorted(reports.glob("*.json")):
        rep = read_json(path)
        if not isinstance(rep, dict) or "composed_dev" not in rep or "model" not in rep:
            continue
        card = cards / f"{rep['model']}.md"
        card.write_text(model_card(rep, uni, corpus, run, vis_info), encoding="utf-8")
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
