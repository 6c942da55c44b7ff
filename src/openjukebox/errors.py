"""Every failure a user can cause, as one exception family.

The CLI prints these on one line and exits non-zero; anything else escaping is a bug in openjukebox.
"""


class OpenJukeboxError(Exception):
    """A user-facing failure: the message names the thing and the reason."""


class AudioError(OpenJukeboxError):
    """An audio file that is missing, unreadable, empty or holds non-finite samples."""


class DataError(OpenJukeboxError):
    """A dataset folder or metadata table that cannot be used."""


class CheckpointError(OpenJukeboxError):
    """A model or run directory that is missing, truncated, from another version or unsafe."""


class CodesError(OpenJukeboxError):
    """A codes file that does not belong to the model or holds invalid codes."""


class ConfigError(OpenJukeboxError):
    """An invalid option: unknown preset, impossible sizes, bad numbers."""


class DownloadError(OpenJukeboxError):
    """A released file that could not be fetched, or that arrived incomplete or corrupt."""
