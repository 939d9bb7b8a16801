"""Non-layer Keras 3 operations that appear as nodes of functional graphs (``keras.ops`` calls,
e.g. ``TrueDivide`` and ``Subtract`` from ``mobilenet_v2.preprocess_input``).

Only operations whose cost follows from shapes alone are registered; any other operation is
reported as unsupported, never guessed.
"""

from __future__ import annotations

from typing import Optional

import keras.src.ops.core as core_ops
import keras.src.ops.math as math_ops
import keras.src.ops.nn as nn_ops
import keras.src.ops.numpy as numpy_ops

from modelstats.adapters import call_arguments_of, is_static_argument
from modelstats.formulas import dim_size, einsum_macs, numel
from modelstats.geometry import BREAKS, GLOBAL, IDENTITY, Geometry, Window
from modelstats.layers._common import ACTIVATION_FLOPS, elementwise
from modelstats.registry import Cost, RuleSet, ZERO, input_spatial_axes

RULES = RuleSet()

# One FLOP per output element; the shapes broadcast, the geometry is elementwise.
_ELEMENTWISE_1 = (
    "Abs", "Absolute", "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "FloorDivide",
    "DivideNoNan", "Power", "Maximum", "Minimum", "Fmax", "Fmin", "Negative", "Square", "Sqrt",
    "Exp", "Exp2", "Expm1", "Log", "Log10", "Log1p", "Log2", "Sin", "Cos", "Tan", "Sinh", "Cosh",
    "Tanh", "Arcsin", "Arccos", "Arctan", "Arctan2", "Arcsinh", "Arccosh", "Arctanh", "Sign",
    "Floor", "Ceil", "Round", "Trunc", "Reciprocal", "Mod", "Fmod", "Where", "Equal",
    "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr",
    "LogicalXor", "LogicalNot", "Hypot", "Heaviside", "Cbrt", "Fabs", "NanToNum", "Logaddexp",
    "Deg2rad", "Rad2deg", "Select",
)
_ELEMENTWISE_MATH_1 = ("Erf", "Erfc", "Erfinv", "Rsqrt")
# Copies and views: no arithmetic, position by position.
_COPY_IDENTITY = ("Copy", "Cast", "SaturateCast", "StopGradient", "ConvertToTensor",
                  "ZerosLike", "OnesLike", "FullLike", "EmptyLike", "BroadcastTo")
# Copies along one axis (``op.axis``): positions are kept when that axis is not spatial.
_COPY_ALONG_AXIS = ("Split", "ArraySplit", "Flip", "Roll", "Repeat", "Take", "TakeAlongAxis",
                    "Concatenate", "Append")
# Rearrangements: no arithmetic, spatial correspondence not kept.
_COPY_BREAKS = ("Reshape", "Transpose", "Moveaxis", "Swapaxes", "Ravel", "ExpandDims",
                "Squeeze", "Fliplr", "Flipud", "Rot90", "Tile", "Stack", "Hstack", "Vstack",
                "Dstack", "Unstack", "View", "Diagonal", "DepthToSpace", "SpaceToDepth")
_REDUCTIONS = ("Sum", "Mean", "Max", "Min", "Amax", "Amin", "Prod", "Any", "All", "Nansum",
               "Nanmean", "Nanmax", "Nanmin", "Logsumexp")


def reduction_cost(op, input_shapes, output_shapes) -> Cost:
    # One op per input element (TensorFlow profiler: reduce 1, finalise folded in).
    return Cost(elementwise=numel(input_shapes[0]))


def reduction_geometry(op, input_shapes, output_shapes) -> Geometry:
    """Reducing only the channel axis keeps positions; reducing any spatial axis sees all."""
    rank = len(input_shapes[0]) + 1  # with batch
    axis = getattr(op, "axis", None)
    if axis is None:
        return GLOBAL
    axes = {a % rank for a in (axis if isinstance(axis, (tuple, list)) else (axis,))}
    return GLOBAL if axes & set(_spatial_axes(rank)) or 0 in axes else IDENTITY


# -- copies that index: which axes they touch --------------------------------------------------
# Axis 0 is the batch; which of the others are spatial follows the layout the graph records.

def _spatial_axes(rank: int) -> tuple[int, ...]:
    """Axes (counted with the batch) that are spatial in the call's input of ``rank``: from
    the layout the graph records (channels last unless the layers around say otherwise)."""
    return input_spatial_axes(rank)


def axis_geometry(op, input_shapes, output_shapes) -> Geometry:
    """A copy along ``op.axis`` (split, flip, roll, repeat, take, concatenate along one axis):
    positions are kept when that axis is the channel (or batch) axis; along a spatial axis
    they move, and ``axis=None`` (work on the flattened tensor) mixes them."""
    name = type(op).__name__
    axis = getattr(op, "axis", None)
    if axis is None:
        return Geometry("breaks", note=f"{name} of the flattened tensor")
    rank = len(input_shapes[0]) + 1  # with batch
    axes = {a % rank for a in (axis if isinstance(axis, (tuple, list)) else (axis,))}
    touched = sorted(axes & set(_spatial_axes(rank)))
    if touched:
        return Geometry("breaks", note=f"{name} along spatial axis {touched[0]}")
    return IDENTITY


def _crop_axis(start: int, step: int = 1) -> Window:
    """Output unit o reads input position ``start + o*step``: a window of one."""
    return Window(1, step, 1, -start)


def getitem_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``x[key]``: positions are kept when the key leaves every spatial axis whole (indexing
    the channel axis, as ``x[..., :8]``); a spatial axis sliced with a positive step is a
    crop (a window of one); anything else on a spatial axis (an int, a list, a reversed or
    tensor-valued slice, a new axis) rearranges positions and breaks the field."""
    args = call_arguments_of(op)
    if args is None or len(args) < 2 or not is_static_argument(args[1]):
        return Geometry("breaks", note="GetItem with a key that is not known statically")
    key = args[1]
    key = tuple(key) if isinstance(key, (tuple, list)) else (key,)
    if any(k is None for k in key):
        return Geometry("breaks", note="GetItem adds an axis")
    shape = (None, *input_shapes[0])
    rank = len(shape)
    if key.count(Ellipsis) > 1:
        return Geometry("breaks", note="GetItem with several ellipses")
    if Ellipsis in key:
        at = key.index(Ellipsis)
        key = key[:at] + (slice(None),) * (rank - len(key) + 1) + key[at + 1:]
    key = key + (slice(None),) * (rank - len(key))
    if len(key) != rank:
        return Geometry("breaks", note="GetItem key longer than the tensor's rank")
    axes = []
    for axis in _spatial_axes(rank):
        part, n = key[axis], shape[axis]
        if not isinstance(part, slice):
            return Geometry("breaks", note=f"GetItem indexes spatial axis {axis} with {part!r}")
        step = 1 if part.step is None else part.step
        if step < 0:
            return Geometry("breaks", note=f"GetItem reverses spatial axis {axis}")
        if n is not None:
            start = part.indices(n)[0]
        elif part.start is None or part.start >= 0:
            start = part.start or 0  # the stop only bounds the extent, not the map
        else:
            return Geometry("breaks", note=f"GetItem slices spatial axis {axis} from its end, "
                            "of unknown size")
        axes.append(_crop_axis(start, step))
    if all(a == _crop_axis(0) for a in axes):
        return IDENTITY
    return Geometry("window", tuple(axes))


def slice_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``ops.slice(x, start_indices, shape)``: a crop of every spatial axis."""
    args = call_arguments_of(op)
    starts = args[1] if args is not None and len(args) >= 2 else None
    rank = len(input_shapes[0]) + 1
    if not isinstance(starts, (tuple, list)) or len(starts) != rank or not all(
        isinstance(s, int) for s in starts
    ):
        return Geometry("breaks", note="Slice with start indices not known statically")
    axes = tuple(_crop_axis(starts[a]) for a in _spatial_axes(rank))
    return IDENTITY if all(a == _crop_axis(0) for a in axes) else Geometry("window", axes)


def pad_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``ops.pad``: constant padding of spatial axes shifts them like ZeroPadding; reflecting
    or edge modes read mirrored positions (not an interval map) unless no spatial axis is
    padded."""
    rank = len(input_shapes[0]) + 1
    try:
        widths = [[int(w) for w in pair] for pair in _broadcast_pad(op.pad_width, rank)]
    except (TypeError, ValueError):
        return Geometry("breaks", note="Pad with widths not known statically")
    lefts = [widths[a][0] for a in _spatial_axes(rank)]
    padded = any(any(widths[a]) for a in _spatial_axes(rank))
    if not padded:
        return IDENTITY
    if getattr(op, "mode", "constant") != "constant":
        return Geometry("breaks", note=f"Pad in {op.mode!r} mode on a spatial axis")
    return Geometry("window", tuple(Window(1, 1, 1, left) for left in lefts))


def _broadcast_pad(pad_width, rank: int) -> list:
    """numpy's pad_width forms: ``n``, ``(before, after)``, or one pair per axis."""
    if isinstance(pad_width, int):
        return [(pad_width, pad_width)] * rank
    pad_width = list(pad_width)
    if len(pad_width) == 2 and all(isinstance(w, int) for w in pad_width):
        return [tuple(pad_width)] * rank
    if len(pad_width) == 1:
        return [tuple(pad_width[0])] * rank
    if len(pad_width) != rank:
        raise ValueError("one pair per axis expected")
    return [tuple(pair) for pair in pad_width]


def matmul_cost(op, input_shapes, output_shapes) -> Cost:
    # Batched matmul: one MAC per output element per contracted position.
    a = input_shapes[0]
    contracted = dim_size(a[-1]) if len(a) else 1
    return Cost(macs=numel(output_shapes[0]) * contracted)


def matmul_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``x @ W`` with a weight matrix W (a hand-written dense layer: one tensor input, the
    other operand a variable) mixes only the channels of each position; a product of two
    tensors (attention scores) mixes positions."""
    args = call_arguments_of(op)
    weight = args is not None and len(args) == 2 and len(input_shapes) == 1 \
        and len(getattr(args[1], "shape", ())) == 2 and not hasattr(args[1], "_keras_history")
    return IDENTITY if weight else GLOBAL


def einsum_cost(op, input_shapes, output_shapes) -> Cost:
    if len(input_shapes) != 2:
        return Cost(macs=numel(output_shapes[0]))
    return Cost(macs=einsum_macs(op.subscripts, [(1, *s) for s in input_shapes]))


def _register(module, names, **rules):
    for name in names:
        cls = getattr(module, name, None)
        if cls is not None:  # the set of operations differs between Keras versions
            RULES.add(cls, **rules)


_register(numpy_ops, _ELEMENTWISE_1, cost=elementwise(1), geometry=IDENTITY)
_register(math_ops, _ELEMENTWISE_MATH_1, cost=elementwise(1), geometry=IDENTITY)
_register(numpy_ops, ("Clip",), cost=elementwise(2), geometry=IDENTITY)  # max, min
_register(numpy_ops, _COPY_IDENTITY, cost=ZERO, geometry=IDENTITY)
_register(core_ops, _COPY_IDENTITY, cost=ZERO, geometry=IDENTITY)
_register(numpy_ops, _COPY_BREAKS, cost=ZERO, geometry=BREAKS)
_register(core_ops, _COPY_BREAKS, cost=ZERO, geometry=BREAKS)
_register(nn_ops, _COPY_BREAKS, cost=ZERO, geometry=BREAKS)
_register(numpy_ops, _COPY_ALONG_AXIS, cost=ZERO, geometry=axis_geometry)
_register(core_ops, _COPY_ALONG_AXIS, cost=ZERO, geometry=axis_geometry)
_register(numpy_ops, ("GetItem",), cost=ZERO, geometry=getitem_geometry)
_register(core_ops, ("Slice",), cost=ZERO, geometry=slice_geometry)
_register(numpy_ops, ("Pad",), cost=ZERO, geometry=pad_geometry)
_register(numpy_ops, _REDUCTIONS, cost=reduction_cost, geometry=reduction_geometry)
_register(math_ops, ("Logsumexp",), cost=elementwise(3, of="input"), geometry=GLOBAL)
_register(numpy_ops, ("Matmul",), cost=matmul_cost, geometry=matmul_geometry)
_register(numpy_ops, ("Einsum",), cost=einsum_cost, geometry=GLOBAL)

# Activation operations: ops.relu, ops.sigmoid, ... per the activation table.
_ACTIVATION_OPS = {
    "Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Softmax": "softmax",
    "LogSoftmax": "log_softmax", "Gelu": "gelu", "Silu": "silu", "HardSigmoid": "hard_sigmoid",
    "HardSilu": "hard_silu", "Elu": "elu", "Selu": "selu", "Celu": "celu",
    "LeakyRelu": "leaky_relu", "Softplus": "softplus", "Softsign": "softsign",
    "LogSigmoid": "log_sigmoid", "HardTanh": "hard_tanh", "HardShrink": "hard_shrink",
    "SoftShrink": "soft_shrink", "TanhShrink": "tanh_shrink", "Squareplus": "squareplus",
    "SparsePlus": "sparse_plus", "Sparsemax": "sparsemax", "Threshold": "threshold",
    "Glu": "glu",
}
for _cls_name, _fn in _ACTIVATION_OPS.items():
    _register(nn_ops, (_cls_name,), cost=elementwise(ACTIVATION_FLOPS[_fn]), geometry=IDENTITY)
