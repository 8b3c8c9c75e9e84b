"""MSA Studio core, the bottom layer: media decoding, feature extraction (extractors + registry,
feature spec, pipeline, feature cache), segmentation, transcripts, types, results, sessions, atomic
writes and errors.

It imports nothing from the layers above it (models, analysis, app, cli) and never imports Qt;
`.importlinter` states both rules and `lint-imports` (scripts/test.sh, tests/test_architecture.py)
checks them, so the engine runs headless, in batch jobs and in worker processes.
"""

__version__ = "0.1.0"
