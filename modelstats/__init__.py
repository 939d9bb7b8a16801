"""modelstats: exact receptive fields and per-layer costs of Keras models, from shapes alone.

>>> import modelstats
>>> {"to_networkx", "receptive_field", "count_flops", "analyze"} <= set(modelstats.__all__)
True
"""

from modelstats import formulas, geometry
from modelstats.cost import Convention, UnsupportedLayerWarning
from modelstats.errors import (
    MisalignedMergeError,
    ModelStatsError,
    NotAGraphModelError,
    ShapeError,
    UnsupportedLayerError,
)
from modelstats.graph import to_networkx
from modelstats.receptive_field import MisalignedMergeWarning, ReceptiveField
from modelstats.registry import ZERO, Cost, register_layer, supported_layers
from modelstats.report import Report, analyze, count_flops, receptive_field

__version__ = "0.1.0"

__all__ = [
    "to_networkx",
    "receptive_field",
    "count_flops",
    "analyze",
    "Report",
    "ReceptiveField",
    "Convention",
    "Cost",
    "ZERO",
    "register_layer",
    "supported_layers",
    "formulas",
    "geometry",
    "ModelStatsError",
    "NotAGraphModelError",
    "ShapeError",
    "UnsupportedLayerError",
    "MisalignedMergeError",
    "UnsupportedLayerWarning",
    "MisalignedMergeWarning",
]
