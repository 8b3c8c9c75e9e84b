"""Exception hierarchy. `MSAError` subclasses are *user* errors: the CLI prints their message on one
line and exits non-zero instead of showing a traceback."""


class MSAError(Exception):
    """Base class for errors caused by user input (files, options, checkpoints)."""


class MediaError(MSAError):
    """The file is missing, not a media file, corrupt, or lacks the needed streams."""


class FeatureSpecMismatch(MSAError):
    """A checkpoint or feature cache was built with a different FeatureSpec."""


class CheckpointError(MSAError):
    """A checkpoint is unreadable, tampered with, or for another model."""


class UnknownNameError(MSAError):
    """A registry lookup (model, extractor) failed."""


class Cancelled(MSAError):
    """The user cancelled a long-running operation."""


class OutputError(MSAError):
    """An output path that cannot or must not be written (a folder, a device, an input, no access)."""
