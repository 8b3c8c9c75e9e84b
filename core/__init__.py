"""MSA Studio core: media decoding, feature extraction, segmentation, inference and analysis.

Nothing in this package may import Qt (tests/test_architecture.py enforces it) so that the
engine runs headless, in batch jobs and in worker processes.
"""

__version__ = "0.1.0"
