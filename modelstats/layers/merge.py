"""Merge layers: elementwise combinations of several tensors, and concatenation."""

from __future__ import annotations

import keras

from modelstats.formulas import dim_size, numel
from modelstats.geometry import BREAKS, IDENTITY, Geometry
from modelstats.registry import Cost, RuleSet, ZERO, input_spatial_axes

L = keras.layers
RULES = RuleSet()


def merge_cost(layer, input_shapes, output_shapes) -> Cost:
    # n inputs combined pairwise: n - 1 binary ops per output element.
    return Cost(elementwise=(len(input_shapes) - 1) * numel(output_shapes[0]))


def average_cost(layer, input_shapes, output_shapes) -> Cost:
    # n - 1 adds and one divide per output element.
    return Cost(elementwise=len(input_shapes) * numel(output_shapes[0]))


def dot_cost(layer, input_shapes, output_shapes) -> Cost:
    # Batched dot product: one MAC per output element per contracted position; with
    # normalize=True, an L2 normalisation (square, add, divide: 3/element) of both inputs first.
    axes = layer.axes if isinstance(layer.axes, (list, tuple)) else (layer.axes, layer.axes)
    first = input_shapes[0]
    contracted = dim_size(first[axes[0] - 1 if axes[0] > 0 else axes[0]])
    cost = Cost(macs=numel(output_shapes[0]) * contracted)
    if layer.normalize:
        cost += Cost(elementwise=3 * sum(numel(s) for s in input_shapes))
    return cost


#: A concatenation along the channel axis keeps positions, but each element comes from one input.
JOINS_CHANNELS = Geometry("identity", note="joins channels")


def concatenate_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Positions are kept when the joined axis is the channel axis (not a spatial one, whatever
    the layout: channels_first models join on axis 1). Along a spatial axis the inputs are
    pieces of it in order (a ``join``): with one input that depends on the image and the
    others not (a class token made from a weight, before patch tokens), that input's units
    keep their field, shifted by the pieces before it."""
    rank = len(output_shapes[0]) + 1  # with the batch axis, as layer.axis counts
    axis = layer.axis % rank
    spatial = input_spatial_axes(rank)
    if axis == 0:
        return BREAKS
    if axis not in spatial:
        return JOINS_CHANNELS
    parts = tuple((i, shape[axis - 1]) for i, shape in enumerate(input_shapes))
    return Geometry("join", axis=spatial.index(axis), parts=parts)


def dot_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """``Dot(axes)``: a batched product of two tensors summing over one axis of each; the
    output holds the first input's other axes, then the second's (attention scores of tokens
    against tokens pair their positions; see ``layers.ops.matmul_geometry``)."""
    axes = layer.axes if isinstance(layer.axes, (list, tuple)) else (layer.axes, layer.axes)
    maps, contracted, k = [], [], 0
    for shape, axis in zip(input_shapes, axes):
        rank = len(shape) + 1  # with batch
        summed = axis % rank - 1  # without batch
        if summed < 0:
            return Geometry("product", note="Dot over the batch axis")
        mapping = []
        for q in range(rank - 1):
            mapping.append(None if q == summed else k)
            k += q != summed
        maps.append(tuple(mapping))
        contracted.append((summed,))
    return Geometry("product", axis_map=tuple(maps), contracted=tuple(contracted), note="Dot")


for cls in (L.Add, L.Subtract, L.Multiply, L.Maximum, L.Minimum):
    RULES.add(cls, cost=merge_cost, geometry=IDENTITY)
RULES.add(L.Average, cost=average_cost, geometry=IDENTITY)
RULES.add(L.Concatenate, cost=ZERO, geometry=concatenate_geometry)  # a copy
RULES.add(L.Dot, cost=dot_cost, geometry=dot_geometry)
