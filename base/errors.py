"""Errors that the CLI reports as one clear line instead of a traceback."""


class VidtrackError(Exception):
    """A user-facing error: bad input, a missing file, a bad config value."""


class ConfigError(VidtrackError):
    """A config value is missing, of the wrong type, or out of range. The message names the key."""


class SourceError(VidtrackError):
    """A video source cannot be opened or read."""


class ModelError(VidtrackError):
    """A model file cannot be loaded or is malformed."""
