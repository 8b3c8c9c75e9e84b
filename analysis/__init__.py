"""The analysis layer (above core/ and models/, below app/ and cli/): everything that runs a model
on features.

* `analysis.analyzer.Analyzer`: the one entry point, file(s) -> AnalysisResult (engine + pipeline +
  feature-cache policy + scoring and re-scoring);
* `analysis.engine`: model + checkpoint -> per-segment scores and exact Shapley contributions;
* `analysis.robustness`: mask degradation, random-missing curves, recording-level scores;
* `analysis.batch`: folders of files, local or on Ray; `analysis.live`: rolling webcam+mic analysis;
* `analysis.report`: the shareable HTML reports; `analysis.session_model`: the GUI's Qt-free view-model
  of one analysed recording.

Never imports Qt (`.importlinter`).
"""
