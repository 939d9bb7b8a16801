"""Exceptions raised by modelstats.

Every error names what was expected, what was received and, where there is one, the way out.
"""

from __future__ import annotations

__all__ = [
    "ModelStatsError",
    "NotAGraphModelError",
    "ShapeError",
    "UnsupportedLayerError",
    "MisalignedMergeError",
    "ModelLoadError",
]


class ModelStatsError(ValueError):
    """Base class of every error modelstats raises on purpose."""


class NotAGraphModelError(ModelStatsError, TypeError):
    """The object has no static graph of layer calls (subclassed model, not a model, unbuilt)."""


class ShapeError(ModelStatsError):
    """A shape is unknown, invalid or does not fit the model at a named layer."""


class UnsupportedLayerError(ModelStatsError):
    """``strict=True`` and at least one layer has no rule; the message lists every such class."""


class MisalignedMergeError(ModelStatsError):
    """``strict=True`` and a merge joins paths whose receptive fields are not aligned."""


class ModelLoadError(ModelStatsError):
    """A model file or application name could not be loaded; the message is one line."""
