"""A nested model kept as one node (``expand_nested=False``): the sum of its layers' costs."""

from __future__ import annotations

import keras

from modelstats.cost import nested_model_cost
from modelstats.errors import NotAGraphModelError
from modelstats.geometry import Geometry
from modelstats.registry import register_layer


def _inner_graph(layer, input_shapes):
    from modelstats.graph import to_networkx

    shape = input_shapes[0] if len(input_shapes) == 1 else list(input_shapes)
    try:
        return to_networkx(layer, input_shape=shape)
    except NotAGraphModelError as exc:
        raise LookupError(f"{type(layer).__name__} (no static graph)") from exc


def nested_geometry(layer, input_shapes, output_shapes) -> Geometry:
    # Fields through a collapsed model are not composed; expand it to see them.
    return Geometry("window", (), note="nested model kept as one node: expand_nested=True")


register_layer(keras.Model, cost=nested_model_cost(_inner_graph), geometry=nested_geometry)
