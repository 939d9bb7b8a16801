"""Exceptions raised by modelstats.

Every error names what was expected, what was received and, where there is one, the way out.
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "ModelStatsError",
    "NotAGraphModelError",
    "ShapeError",
    "UnsupportedLayerError",
    "MisalignedMergeError",
    "ModelLoadError",
    "RuleError",
    "OptionError",
    "UnknownOptionError",
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


class RuleError(ModelStatsError, RuntimeError):
    """A cost or geometry rule failed on a call; the message names the layer and the rule."""


class OptionError(ModelStatsError):
    """An argument has a value modelstats does not accept (a convention preset, a column to rank
    by, an option that must be a bool); the message names the value and the valid choices."""


class UnknownOptionError(OptionError, TypeError):
    """A keyword option modelstats does not know. Also a ``TypeError``, what Python raises for an
    unexpected keyword, so code written against that keeps working."""


class ModelLoadError(ModelStatsError):
    """A model file or application name could not be loaded; the message is one line."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first caller outside modelstats
    (the user's line), however deep inside the library it is raised."""
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level
