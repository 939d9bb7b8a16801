"""Non-layer Keras 3 operations that appear as nodes of functional graphs (``keras.ops`` calls,
e.g. ``TrueDivide`` and ``Subtract`` from ``mobilenet_v2.preprocess_input``).

Only operations whose cost follows from shapes alone are registered; any other operation is
reported as unsupported, never guessed.
"""

from __future__ import annotations

import keras.src.ops.core as core_ops
import keras.src.ops.math as math_ops
import keras.src.ops.nn as nn_ops
import keras.src.ops.numpy as numpy_ops

from modelstats.formulas import einsum_macs, numel
from modelstats.geometry import BREAKS, GLOBAL, IDENTITY, Geometry
from modelstats.layers._common import ACTIVATION_FLOPS, elementwise
from modelstats.registry import Cost, RuleSet, ZERO

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
                  "ZerosLike", "OnesLike", "FullLike", "EmptyLike", "BroadcastTo", "Split",
                  "ArraySplit")
# Rearrangements: no arithmetic, spatial correspondence not kept.
_COPY_BREAKS = ("Reshape", "Transpose", "Moveaxis", "Swapaxes", "Ravel", "ExpandDims",
                "Squeeze", "Flip", "Fliplr", "Flipud", "Roll", "Rot90", "Tile", "Repeat",
                "Stack", "Hstack", "Vstack", "Dstack", "GetItem", "Take", "TakeAlongAxis",
                "Slice", "Unstack", "View", "Pad", "Concatenate", "Append", "Diagonal",
                "DepthToSpace", "SpaceToDepth")
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
    return IDENTITY if axes == {rank - 1} else GLOBAL


def matmul_cost(op, input_shapes, output_shapes) -> Cost:
    # Batched matmul: one MAC per output element per contracted position.
    a = input_shapes[0]
    contracted = int(a[-1]) if len(a) else 1
    return Cost(macs=numel(output_shapes[0]) * contracted)


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
_register(numpy_ops, _REDUCTIONS, cost=reduction_cost, geometry=reduction_geometry)
_register(math_ops, ("Logsumexp",), cost=elementwise(3, of="input"), geometry=GLOBAL)
_register(numpy_ops, ("Matmul",), cost=matmul_cost, geometry=GLOBAL)
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
