"""Recurrent layers and the wrappers that run a layer over time (TimeDistributed, Bidirectional).

A recurrent layer computes every step whatever ``return_sequences`` says, so its cost is
``time steps x step cost``; its geometry is global over the time axis.
"""

from __future__ import annotations

import keras

from modelstats.formulas import (
    conv_macs,
    dim_size,
    gru_step_macs,
    lstm_step_macs,
    numel,
    simple_rnn_step_macs,
)
from modelstats.geometry import GLOBAL, IDENTITY, Geometry, Window
from modelstats.registry import Cost, RuleSet, Unsupported, dispatching

L = keras.layers
RULES = RuleSet()


def simple_rnn_step(cell, input_dim: int) -> Cost:
    u = cell.units
    return Cost(
        macs=simple_rnn_step_macs(input_dim, u),
        state_macs=u * u,  # h U
        bias=u if cell.use_bias else 0,
        elementwise=u + u,  # add the two projections, activation (tanh: 1)
    )


def lstm_step(cell, input_dim: int) -> Cost:
    u = cell.units
    return Cost(
        macs=lstm_step_macs(input_dim, u),
        state_macs=4 * u * u,  # h U, four gates
        bias=4 * u if cell.use_bias else 0,
        # add projections (4u), three sigmoid gates (3 * 4u), tanh candidate (u),
        # c = f*c + i*g (3u), h = o * tanh(c) (2u)
        elementwise=4 * u + 12 * u + u + 3 * u + 2 * u,
    )


def gru_step(cell, input_dim: int) -> Cost:
    u = cell.units
    bias_terms = (6 if getattr(cell, "reset_after", True) else 3) * u
    return Cost(
        macs=gru_step_macs(input_dim, u),
        state_macs=3 * u * u,  # h U, three gates
        bias=bias_terms if cell.use_bias else 0,
        # add projections (3u), two sigmoid gates (2 * 4u), reset product (u), tanh (u),
        # h = z*h + (1-z)*h~ (4u)
        elementwise=3 * u + 8 * u + u + u + 4 * u,
    )


def conv_lstm_step(cell, input_shape: tuple, output_shape: tuple) -> Cost:
    """One ConvLSTM step: input conv (C_in -> 4F) and recurrent conv (F -> 4F, same padding)."""
    spatial_out, filters = tuple(output_shape[:-1]), dim_size(output_shape[-1])
    c_in = dim_size(input_shape[-1])
    recurrent = conv_macs(spatial_out, cell.kernel_size, filters, 4 * filters)
    macs = conv_macs(spatial_out, cell.kernel_size, c_in, 4 * filters) + recurrent
    u = numel(output_shape)
    return Cost(
        macs=macs,
        state_macs=recurrent,
        bias=4 * u if cell.use_bias else 0,
        elementwise=4 * u + 12 * u + u + 3 * u + 2 * u,  # as for LSTM, per output element
    )


_STEP = {}


def _cell_step(cell, input_dim: int) -> Cost:
    for klass in type(cell).__mro__:
        if klass in _STEP:
            return _STEP[klass](cell, input_dim)
    if isinstance(cell, L.StackedRNNCells):
        total, dim = Cost(), input_dim
        for inner in cell.cells:
            total += _cell_step(inner, dim)
            dim = inner.units
        return total
    raise Unsupported(f"no step rule for RNN cell {type(cell).__name__}")


def rnn_cost(layer, input_shapes, output_shapes) -> Cost:
    steps = dim_size(input_shapes[0][0])
    cell = layer.cell
    if hasattr(cell, "kernel_size"):  # ConvLSTM cells
        per_step_out = output_shapes[0][1:] if layer.return_sequences else output_shapes[0]
        return conv_lstm_step(cell, input_shapes[0][1:], per_step_out).scaled(steps)
    return _cell_step(cell, dim_size(input_shapes[0][-1])).scaled(steps)


def cell_cost(layer, input_shapes, output_shapes) -> Cost:
    return _cell_step(layer, dim_size(input_shapes[0][-1]))


def _wrapped_cost(inner, input_shapes, output_shapes) -> Cost:
    # The inner layer is counted by the registry running this rule, so a user's rule for
    # the inner class applies inside the wrapper too.
    try:
        return dispatching().cost(inner, input_shapes, output_shapes)
    except Unsupported as exc:
        raise Unsupported(f"wrapped {type(inner).__name__}: {exc.reason}") from None


def _wrapped_geometry(inner, input_shapes, output_shapes) -> Geometry:
    try:
        return dispatching().geometry(inner, input_shapes, output_shapes)
    except Unsupported as exc:
        raise Unsupported(f"wrapped {type(inner).__name__}: {exc.reason}") from None


def bidirectional_cost(layer, input_shapes, output_shapes) -> Cost:
    forward = layer.forward_layer
    # Each direction outputs half the channels when merged by concatenation.
    units = dim_size(output_shapes[0][-1]) // (2 if layer.merge_mode == "concat" else 1)
    direction_out = [(*output_shapes[0][:-1], units)]
    cost = _wrapped_cost(forward, input_shapes[:1], direction_out)
    cost += _wrapped_cost(layer.backward_layer, input_shapes[:1], direction_out)
    if layer.merge_mode in ("sum", "mul"):
        cost += Cost(elementwise=numel(output_shapes[0]))
    elif layer.merge_mode == "ave":
        cost += Cost(elementwise=2 * numel(output_shapes[0]))  # add, halve
    return cost


def time_distributed_cost(layer, input_shapes, output_shapes) -> Cost:
    steps = dim_size(input_shapes[0][0])
    return _wrapped_cost(layer.layer, [input_shapes[0][1:]], [output_shapes[0][1:]]).scaled(steps)


def time_distributed_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """The time axis is kept position by position; the inner layer maps the remaining axes."""
    inner = _wrapped_geometry(layer.layer, [input_shapes[0][1:]], [output_shapes[0][1:]])
    if inner.kind == "window" and inner.axes:
        return Geometry("window", (Window(1), *inner.axes))
    if inner.kind == "identity":
        return IDENTITY
    return Geometry("breaks", note="TimeDistributed over a layer that is not spatial")


def spectral_norm_cost(layer, input_shapes, output_shapes) -> Cost:
    # At inference the power iteration does not run: the wrapped layer's own cost.
    return _wrapped_cost(layer.layer, input_shapes, output_shapes)


def spectral_norm_geometry(layer, input_shapes, output_shapes) -> Geometry:
    return _wrapped_geometry(layer.layer, input_shapes, output_shapes)


_STEP.update({L.SimpleRNNCell: simple_rnn_step, L.LSTMCell: lstm_step, L.GRUCell: gru_step})
for cls in (L.RNN, L.SimpleRNN, L.LSTM, L.GRU, L.ConvLSTM1D, L.ConvLSTM2D, L.ConvLSTM3D):
    RULES.add(cls, cost=rnn_cost, geometry=GLOBAL)
for cls in (L.SimpleRNNCell, L.LSTMCell, L.GRUCell, L.StackedRNNCells):
    RULES.add(cls, cost=cell_cost, geometry=GLOBAL)
RULES.add(L.Bidirectional, cost=bidirectional_cost, geometry=GLOBAL)
RULES.add(L.TimeDistributed, cost=time_distributed_cost, geometry=time_distributed_geometry)
RULES.add(L.SpectralNormalization, cost=spectral_norm_cost, geometry=spectral_norm_geometry)
