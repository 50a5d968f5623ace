"""The project's error hierarchy.

Every message says what was wrong, the value received, what was expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "CommitteeError",
    "ConfigError",
    "DataError",
    "ModelFileError",
    "NonFiniteError",
    "ScaleLinkError",
    "SpeciesError",
    "UnitsError",
]


class ScaleLinkError(Exception):
    """Base class of every error raised by ScaleLink on bad input."""


class ModelFileError(ScaleLinkError):
    """A model file is missing, corrupt, of an unknown format version or lacks metadata."""


class SpeciesError(ScaleLinkError):
    """A chemical species is not known to a model."""


class UnitsError(ScaleLinkError):
    """Units of a model and of the engine running it do not match or are unknown."""


class CommitteeError(ScaleLinkError):
    """The members of a committee do not agree (species, cutoff, message-passing layers)."""


class ConfigError(ScaleLinkError):
    """A configuration file or flag has an unknown key or an invalid value."""


class DataError(ScaleLinkError):
    """A data set cannot be read or lacks the labels a task needs."""


class NonFiniteError(ScaleLinkError):
    """NaN or infinite numbers where finite ones are needed: atom positions, a model's output,
    a network's weights or a training loss."""
