"""modelstats: exact receptive fields and per-layer costs of Keras models, from shapes alone.

Names are imported on first use, so ``import modelstats`` (and its pure-math modules
``formulas`` and ``geometry``) does not start TensorFlow until something needs Keras.

>>> import modelstats
>>> {"to_networkx", "receptive_field", "count_flops", "analyze"} <= set(modelstats.__all__)
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module defining it
_EXPORTS = {
    "to_networkx": "modelstats.graph",
    "receptive_field": "modelstats.report",
    "count_flops": "modelstats.report",
    "analyze": "modelstats.report",
    "compare": "modelstats.comparison",
    "load_model": "modelstats.loading",
    "effective_receptive_field": "modelstats.erf",
    "EffectiveReceptiveField": "modelstats.erf",
    "Report": "modelstats.report",
    "ReceptiveField": "modelstats.propagation",
    "Convention": "modelstats.cost",
    "Cost": "modelstats.registry",
    "ZERO": "modelstats.registry",
    "BACKEND": "modelstats.registry",
    "Unsupported": "modelstats.registry",
    "Registry": "modelstats.registry",
    "register_layer": "modelstats.rules",
    "supported_layers": "modelstats.rules",
    "ModelStatsError": "modelstats.errors",
    "NotAGraphModelError": "modelstats.errors",
    "ShapeError": "modelstats.errors",
    "UnsupportedLayerError": "modelstats.errors",
    "MisalignedMergeError": "modelstats.errors",
    "ModelLoadError": "modelstats.errors",
    "RuleError": "modelstats.errors",
    "OptionError": "modelstats.errors",
    "UnknownOptionError": "modelstats.errors",
    "UnsupportedLayerWarning": "modelstats.cost",
    "MisalignedMergeWarning": "modelstats.propagation",
    "MultipleSpatialInputsWarning": "modelstats.propagation",
    "Device": "modelstats.latency",
    "devices": "modelstats.latency",
    "measure_device": "modelstats.latency",
    "roofline": "modelstats.latency",
    "Roofline": "modelstats.latency",
    "measure_latency": "modelstats.latency",
    "Latency": "modelstats.latency",
}
_SUBMODULES = ("formulas", "geometry", "evaluation")

__all__ = [*_EXPORTS, "formulas", "geometry"]

if TYPE_CHECKING:  # pragma: no cover - static analysers see the eager imports
    from modelstats import formulas, geometry
    from modelstats.cost import Convention, UnsupportedLayerWarning
    from modelstats.erf import EffectiveReceptiveField, effective_receptive_field
    from modelstats.errors import (
        MisalignedMergeError,
        ModelLoadError,
        ModelStatsError,
        NotAGraphModelError,
        OptionError,
        RuleError,
        ShapeError,
        UnknownOptionError,
        UnsupportedLayerError,
    )
    from modelstats.graph import to_networkx
    from modelstats.loading import load_model
    from modelstats.propagation import (
        MisalignedMergeWarning,
        MultipleSpatialInputsWarning,
        ReceptiveField,
    )
    from modelstats.registry import BACKEND, ZERO, Cost, Registry, Unsupported
    from modelstats.latency import (
        Device,
        Latency,
        Roofline,
        devices,
        measure_device,
        measure_latency,
        roofline,
    )
    from modelstats.rules import register_layer, supported_layers
    from modelstats.comparison import compare
    from modelstats.report import Report, analyze, count_flops, receptive_field


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value: Any = importlib.import_module(f"modelstats.{name}")
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'modelstats' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
