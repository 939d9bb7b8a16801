"""A nested model kept as one node (``expand_nested=False``).

Its cost is :data:`~modelstats.registry.NESTED`: the cost engine sums the inner graph with the
caller's convention and registry, so every choice (folding included) applies identically inside.
"""

from __future__ import annotations

import keras

from modelstats.geometry import Geometry
from modelstats.registry import NESTED, RuleSet

RULES = RuleSet()


def nested_geometry(layer, input_shapes, output_shapes) -> Geometry:
    # Fields through a collapsed model are not composed; expand it to see them.
    return Geometry("window", (), note="nested model kept as one node: expand_nested=True")


RULES.add(keras.Model, cost=NESTED, geometry=nested_geometry)
