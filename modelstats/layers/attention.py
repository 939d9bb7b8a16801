"""Attention layers: projections, scores, softmax, weighted sum and output projection.

Every query position attends to every key position, so the geometry is global.
"""

from __future__ import annotations

import keras

from modelstats.adapters import attention_masks, inbound_calls
from modelstats.formulas import attention_macs, dim_size, numel
from modelstats.geometry import GLOBAL, Geometry
from modelstats.registry import Cost, RuleSet

L = keras.layers
RULES = RuleSet()
SOFTMAX = 5  # FLOPs per score, as the TensorFlow profiler counts Softmax


def _kernel_size(dense) -> int:
    return numel(dense.kernel.shape)


def _projection_bias(dense, positions: int) -> int:
    bias = getattr(dense, "bias", None)
    return positions * numel(bias.shape) if bias is not None else 0


def _attention_positions(layer, key_shape: tuple) -> int:
    """Key positions each query attends to (all non-feature axes unless attention_axes)."""
    axes = getattr(layer, "_attention_axes", None)
    if axes is None:
        return numel(key_shape[:-1])
    return numel(key_shape[a - 1] for a in axes)  # attention_axes count the batch axis


def _projected_attention(layer, query_positions, key_positions, attended, heads, key_dim,
                         value_dim) -> Cost:
    q, k, v, o = layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense
    projections = (
        query_positions * _kernel_size(q)  # Q = query W_q
        + key_positions * _kernel_size(k)  # K = key W_k
        + key_positions * _kernel_size(v)  # V = value W_v
        + query_positions * _kernel_size(o)  # output = heads W_o
    )
    scores = query_positions * attended * heads
    attention = attention_macs(query_positions, attended, heads, key_dim, value_dim)
    bias = (
        _projection_bias(q, query_positions) + _projection_bias(k, key_positions)
        + _projection_bias(v, key_positions) + _projection_bias(o, query_positions)
    )
    elementwise = query_positions * heads * key_dim  # scale Q by 1/sqrt(key_dim)
    elementwise += SOFTMAX * scores
    return Cost(macs=projections + attention, bias=bias, elementwise=elementwise,
                pair_macs=attention)


def _value_shape(layer, input_shapes) -> tuple:
    """Shape of the ``value`` tensor among a (Grouped)MultiHeadAttention call's inputs.

    Only the value's positions matter beyond the query's (which the output shape gives): the
    key must have the value's positions, and the projection widths come from the kernels. The
    other inputs are the key (same positions as the value, its own feature size) and masks
    (``attention_mask`` is ``(T, S)``: its last axis is the key length, not a feature axis;
    ``query_mask`` / ``value_mask`` / ``key_mask`` are ``(T,)`` / ``(S,)``).

    The rule gets shapes only, and masks and keys passed by keyword land anywhere in them
    (see :func:`modelstats.adapters.argument_names`), so which input is the value is read from the structure of
    the layer's own calls (its inbound nodes), while the sizes come from ``input_shapes``: a
    graph re-inferred at another input size (``input_shape=``) keeps the call structure but
    not the shapes. Calls of the same layer with a different structure but as many inputs are
    told apart by their shapes. Without any call to read (a rule called by hand) the
    signature's positional order applies: ``call(query, value, key=None, ...)``.
    """
    candidates = []  # (value index, that call's input shapes)
    for names, shapes in inbound_calls(layer):
        if names is None or len(names) != len(input_shapes) or "value" not in names:
            continue
        candidates.append((names.index("value"), shapes))
    indices = {index for index, _ in candidates}
    if len(indices) > 1:  # the same layer called with differently ordered inputs
        given = [tuple(s) for s in input_shapes]
        indices = {index for index, shapes in candidates if shapes == given} or indices
    if indices:
        # Still ambiguous only for such calls re-inferred at new sizes: take the first.
        return tuple(input_shapes[min(indices)])
    return tuple(input_shapes[1] if len(input_shapes) > 1 else input_shapes[0])


def multi_head_attention_cost(layer, input_shapes, output_shapes) -> Cost:
    query_positions = numel(output_shapes[0][:-1])  # the output keeps the query's positions
    key_shape = _value_shape(layer, input_shapes)  # value and key share their positions
    key_positions = numel(key_shape[:-1])
    cost = _projected_attention(
        layer, query_positions, key_positions, _attention_positions(layer, key_shape),
        layer._num_heads, layer._key_dim, layer._value_dim,
    )
    if getattr(layer, "_use_gate", False):
        gate = layer._gate_dense
        # gate = sigmoid(query W_g) multiplied onto the heads
        cost += Cost(macs=query_positions * _kernel_size(gate),
                     elementwise=query_positions * numel(gate.kernel.shape[1:]) * 5)
    return cost


def grouped_query_attention_cost(layer, input_shapes, output_shapes) -> Cost:
    query_positions = numel(output_shapes[0][:-1])  # the output keeps the query's positions
    # same call signature as MultiHeadAttention (masks and key by keyword land anywhere)
    key_positions = numel(_value_shape(layer, input_shapes)[:-1])
    return _projected_attention(
        layer, query_positions, key_positions, key_positions, layer.num_query_heads,
        layer.head_dim, layer.head_dim,
    )


def dot_attention_cost(layer, input_shapes, output_shapes) -> Cost:
    # call(inputs=[query, value, key?], mask=[query_mask, value_mask]): positional arguments
    # flatten first and keywords by sorted name ("inputs" < "mask"), so the masks always come
    # after the inputs and input_shapes[0] / [1] are the query / value however it is called.
    query_positions = numel(input_shapes[0][:-1])
    key_positions = numel(input_shapes[1][:-1])
    dim = dim_size(input_shapes[0][-1])
    value_dim = dim_size(output_shapes[0][-1])
    scores = query_positions * key_positions
    macs = attention_macs(query_positions, key_positions, 1, dim, value_dim)  # one head
    elementwise = SOFTMAX * scores + (scores if layer.use_scale else 0)
    if layer.score_mode == "concat":
        # tanh(q + k) summed over features: add, tanh, add per feature
        macs = scores * value_dim
        elementwise += 3 * scores * dim
    return Cost(macs=macs, elementwise=elementwise, pair_macs=macs)


def additive_attention_cost(layer, input_shapes, output_shapes) -> Cost:
    # inputs then masks, as for dot_attention_cost
    query_positions = numel(input_shapes[0][:-1])
    key_positions = numel(input_shapes[1][:-1])
    dim = dim_size(input_shapes[0][-1])
    value_dim = dim_size(output_shapes[0][-1])
    scores = query_positions * key_positions
    # per score: q + k (dim adds), tanh (dim), optional scale (dim muls), sum (dim adds)
    per_score = dim * (3 + int(layer.use_scale))
    return Cost(macs=scores * value_dim, elementwise=scores * per_score + SOFTMAX * scores,
                pair_macs=scores * value_dim)


def attention_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Global: every query attends to every key position. Unless a call passes a mask that
    can restrict that (``use_causal_mask=True``, an ``attention_mask``): then the field is
    what the mask allows, which the propagation reads on a full-length input when it can."""
    mask = attention_masks(layer)
    if mask is None:
        return GLOBAL
    return Geometry("masked", note=f"attention under {mask}; each query sees the positions "
                    "its mask allows, which modelstats cannot read on a full-length input")


RULES.add(L.MultiHeadAttention, cost=multi_head_attention_cost, geometry=attention_geometry)
RULES.add(L.GroupQueryAttention, cost=grouped_query_attention_cost,
          geometry=attention_geometry)
RULES.add(L.Attention, cost=dot_attention_cost, geometry=attention_geometry)
RULES.add(L.AdditiveAttention, cost=additive_attention_cost, geometry=attention_geometry)
