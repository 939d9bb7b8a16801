"""modelstats: exact receptive fields and per-layer costs of Keras models, from shapes alone."""

from modelstats.errors import (
    MisalignedMergeError,
    ModelStatsError,
    NotAGraphModelError,
    ShapeError,
    UnsupportedLayerError,
)
from modelstats.graph import to_networkx

__version__ = "0.1.0"

__all__ = [
    "to_networkx",
    "ModelStatsError",
    "NotAGraphModelError",
    "ShapeError",
    "UnsupportedLayerError",
    "MisalignedMergeError",
]
