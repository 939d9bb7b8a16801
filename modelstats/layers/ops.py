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

from modelstats.adapters import call_arguments_of, is_graph_tensor, is_static_argument
from modelstats.formulas import dim_size, einsum_macs, numel
from modelstats.geometry import BREAKS, GLOBAL, IDENTITY, Geometry, Window, reshape_axis_map
from modelstats.layers._common import ACTIVATION_FLOPS, elementwise
from modelstats.layers.reshaping import reshape_geometry
from modelstats.registry import Cost, RuleSet, Unsupported, ZERO, input_spatial_axes

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
                  "BroadcastTo")
# Same shape, but the values are constants: positions kept (as before), not the dependence.
_CONSTANT_LIKE = ("ZerosLike", "OnesLike", "FullLike", "EmptyLike")
# Copies along one axis (``op.axis``): positions are kept when that axis is not spatial.
_COPY_ALONG_AXIS = ("Split", "ArraySplit", "Flip", "Roll", "Repeat", "Take", "TakeAlongAxis")
# Rearrangements of one tensor: no arithmetic, spatial correspondence not kept (``Reshape``
# has its own rule: a flatten of the spatial axes into tokens keeps the grid).
_COPY_BREAKS = ("Transpose", "Moveaxis", "Swapaxes", "Ravel", "ExpandDims",
                "Squeeze", "Fliplr", "Flipud", "Rot90", "Tile", "Unstack", "View", "Diagonal",
                "DepthToSpace", "SpaceToDepth")
# Stacking several tensors (or constants): each element comes from one of them.
_STACKS = ("Stack", "Hstack", "Vstack", "Dstack")
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
        kept = ()
        if len(output_shapes[0]) == len(input_shapes[0]):  # the other axes stay as they are
            kept = (tuple(None if q + 1 in axes else q for q in range(rank - 1)),)
        return Geometry("breaks", note=f"{name} along spatial axis {touched[0]}", complete=True,
                        axis_map=kept)
    return IDENTITY


def rearrange_geometry(op, input_shapes, output_shapes) -> Geometry:
    """Transpose, swapaxes, moveaxis, expand/squeeze, unstack, ravel, tile...: positions are
    rearranged (the field breaks), each element a copy. Where an axis stays intact (the
    tokens of ``q``, ``k``, ``v`` split into heads and transposed), ``axis_map`` says where it
    goes, so a later product summing over it is known to see every token."""
    name = type(op).__name__
    source, target = tuple(input_shapes[0]), tuple(output_shapes[0])
    rank = len(source) + 1  # with batch
    mapping = ()
    try:
        if name in ("Transpose", "Swapaxes", "Moveaxis"):
            mapping = _permutation_map(op, name, rank)
        elif name in ("ExpandDims", "Squeeze", "Ravel"):
            mapping = reshape_axis_map(source, target)
        elif name == "Unstack":
            axis = op.axis % rank
            if axis:
                mapping = tuple(None if q + 1 == axis else q if q + 1 < axis else q - 1
                                for q in range(rank - 1))
    except (TypeError, ValueError, AttributeError):
        mapping = ()
    return Geometry("breaks", complete=True, axis_map=(mapping,) if mapping else ())


def _permutation_map(op, name: str, rank: int) -> tuple:
    """Where each axis (without batch) goes under a transpose, swapaxes or moveaxis; empty
    when the batch axis moves. numpy applies the op to a view whose axis sizes name them."""
    import numpy as np

    probe = np.broadcast_to(np.empty(()), tuple(range(2, rank + 2)))
    if name == "Transpose":
        moved = np.transpose(probe, op.axes)
    elif name == "Swapaxes":
        moved = np.swapaxes(probe, op.axis1, op.axis2)
    else:
        moved = np.moveaxis(probe, op.source, op.destination)
    order = [n - 2 for n in moved.shape]  # output axis k holds input axis order[k]
    if order[0] != 0:
        return ()
    return tuple(order.index(q + 1) - 1 for q in range(rank - 1))


def concatenate_op_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``ops.concatenate(xs, axis)`` / ``ops.append(x, values, axis)``: along the channel axis
    positions are kept (each element from one operand); along a spatial axis the operands
    are pieces of it in order, graph tensors and constants alike (``ops.concatenate([
    ops.tile(class_token, ...), patches], axis=1)``): a ``join``, whose pieces' lengths are
    read from the call's arguments."""
    name = type(op).__name__
    axis = getattr(op, "axis", None)
    if axis is None:
        return Geometry("breaks", note=f"{name} of the flattened tensor")
    rank = len(input_shapes[0]) + 1  # with batch
    axis %= rank
    spatial = _spatial_axes(rank)
    if axis == 0:
        return Geometry("breaks", note=f"{name} along the batch axis")
    if axis not in spatial:
        return Geometry("identity", note=f"{name} joins channels")
    args = call_arguments_of(op)
    operands = None
    if args is not None:
        operands = list(args[0]) if name == "Concatenate" and len(args) >= 1 \
            and isinstance(args[0], (list, tuple)) else list(args[:2])
    if not operands:
        return Geometry("breaks", note=f"{name} along spatial axis {axis} with operands not "
                        "known statically")
    parts, graph_index = [], 0
    for value in operands:
        shape = getattr(value, "shape", None)
        if is_graph_tensor(value):
            length = input_shapes[graph_index][axis - 1] if graph_index < len(input_shapes) \
                else None
            parts.append((graph_index, length))
            graph_index += 1
            continue
        try:
            length = int(shape[axis]) if shape is not None and len(shape) == rank else None
        except (TypeError, ValueError):
            length = None
        parts.append((None, length))
    if graph_index != len(input_shapes):
        return Geometry("breaks", note=f"{name} along spatial axis {axis}: its operands do "
                        "not match its graph inputs")
    return Geometry("join", axis=spatial.index(axis), parts=tuple(parts),
                    note=f"{name} along spatial axis {axis}")


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
    picks = _picked_positions(key, shape, _spatial_axes(rank))
    if picks is not None:
        return picks
    axes = []
    for axis in _spatial_axes(rank):
        part, n = key[axis], shape[axis]
        if not isinstance(part, slice):
            return Geometry("breaks", note=f"GetItem indexes spatial axis {axis} with {part!r}",
                            complete=True, axis_map=_key_axis_map(key, shape))
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
    return Geometry("window", tuple(axes), complete=True)  # every element is a copy


def _key_axis_map(key: tuple, shape: tuple) -> tuple:
    """Axes (without batch) that a key of ints and slices leaves whole, and where they go: an
    int removes its axis, a whole slice keeps it. Empty when the batch axis is indexed."""
    if not (isinstance(key[0], slice) and key[0] == slice(None)):
        return ()
    mapping, k = [], 0
    for part, n in zip(key[1:], shape[1:]):
        if isinstance(part, int) and not isinstance(part, bool):
            mapping.append(None)
            continue
        if not isinstance(part, slice):
            return ()
        whole = part.step in (None, 1) and part.start in (None, 0) and (
            part.stop is None or (n is not None and part.stop >= n))
        mapping.append(k if whole else None)
        k += 1
    return (tuple(mapping),)


def _picked_positions(key: tuple, shape: tuple, spatial: tuple) -> Optional[Geometry]:
    """``x[:, 0]`` on tokens (the class token), ``x[:, 3, 4]`` on an image: an integer on
    every spatial axis takes one position and leaves none (a ``pick``). None for other keys."""
    if not spatial or not all(isinstance(key[a], int) and not isinstance(key[a], bool)
                              for a in spatial):
        return None
    index = []
    for axis in spatial:
        value, n = key[axis], shape[axis]
        if value < 0:
            if n is None:
                return Geometry("breaks", note=f"GetItem indexes spatial axis {axis} from its "
                                "end, of unknown size")
            value += n
        index.append(value)
    first = spatial[0]
    return Geometry("pick", index=tuple(index), complete=True,
                    note=f"GetItem indexes spatial axis {first} with {key[first]!r}")


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
    return IDENTITY if all(a == _crop_axis(0) for a in axes) \
        else Geometry("window", axes, complete=True)


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
        # Padding the channels adds constant elements: positions kept, not every element.
        return IDENTITY if not any(any(pair) for pair in widths) else \
            Geometry("identity", note="Pad of non-spatial axes")
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
    # Batched matmul: one MAC per output element per contracted position, the last axis of
    # the first operand (a weight's own shape when the first operand is one: W @ x).
    args = call_arguments_of(op)
    first = args[0] if args else None
    if first is not None and not is_graph_tensor(first) and len(getattr(first, "shape", ())):
        return Cost(macs=numel(output_shapes[0]) * int(first.shape[-1]))
    a = input_shapes[0]
    contracted = dim_size(a[-1]) if len(a) else 1
    return Cost(macs=numel(output_shapes[0]) * contracted)


def matmul_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``x @ W`` with a weight matrix W (a hand-written dense layer: one tensor input, the
    other operand a variable) mixes only the channels of each position. Otherwise a product
    (``a[..., m, k] @ b[..., k, n]``): ``a`` sums over its last axis, ``b`` over its
    second-to-last; the propagation decides from the operands whether that is every token
    (global: attention weights times values) or pairs of positions (attention scores)."""
    args = call_arguments_of(op)
    weight = args is not None and len(args) == 2 and len(input_shapes) == 1 \
        and len(getattr(args[1], "shape", ())) == 2 and not is_graph_tensor(args[1])
    if weight:
        return IDENTITY
    if args is None or len(args) != 2:
        return Geometry("product", note="Matmul with operands not known")
    out_rank = len(output_shapes[0]) + 1  # with batch
    maps, contracted = [], []
    for side, value in enumerate(args):
        if not is_graph_tensor(value):
            continue
        rank = len(value.shape)  # with batch
        if rank < 3 or rank != out_rank:
            return Geometry("product", note="Matmul of operands whose axes are not followed")
        # Without batch: a sums over its last axis and keeps m; b sums over its
        # second-to-last and keeps n; the leading axes are batched, kept in place.
        summed, kept = (rank - 2, rank - 3) if side == 0 else (rank - 3, rank - 2)
        maps.append(tuple(q if q < rank - 3 or q == kept else None for q in range(rank - 1)))
        contracted.append((summed,))
    return Geometry("product", axis_map=tuple(maps), contracted=tuple(contracted),
                    note="Matmul")


def einsum_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``ops.einsum``: per graph operand, the letters missing from the output are summed over;
    the others go where the output has them. The first letter of each operand and of the
    output must be the batch axis (else the axes are not followed)."""
    subscripts = str(getattr(op, "subscripts", "")).replace(" ", "")
    args = call_arguments_of(op)
    if "->" not in subscripts or "." in subscripts or args is None:
        return Geometry("product", note="Einsum with an implicit output or an ellipsis")
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    operands = list(args[1:]) if args and isinstance(args[0], str) else list(args)
    if len(terms) != len(operands) or not output:
        return Geometry("product", note="Einsum with operands not known")
    maps, contracted = [], []
    for term, value in zip(terms, operands):
        if not is_graph_tensor(value):
            continue
        if not term or term[0] != output[0]:
            return Geometry("product", note="Einsum that moves the batch axis")
        letters = term[1:]
        maps.append(tuple(output.index(c) - 1 if c in output[1:] else None for c in letters))
        contracted.append(tuple(q for q, c in enumerate(letters) if c not in output))
    return Geometry("product", axis_map=tuple(maps), contracted=tuple(contracted),
                    note="Einsum")


def einsum_cost(op, input_shapes, output_shapes) -> Cost:
    """Every index of the equation, multiplied out. An operand that is not a graph tensor (a
    weight: a mixture of experts' ``einsum("th,ehm->etm", x, W)``, a table of relative
    positions) brings its own full shape, read from the call; a graph tensor its node's shape
    behind its leading axis, whose size the call gives (1 for the model's batch). The count
    is per unit of the output's leading axis, which the caller multiplies back."""
    args = call_arguments_of(op)
    if args is None:
        if len(input_shapes) == len(str(op.subscripts).split("->")[0].split(",")):
            return Cost(macs=einsum_macs(op.subscripts, [(1, *s) for s in input_shapes]))
        raise Unsupported("Einsum with an operand that is not a graph tensor, in calls whose "
                          "arguments differ: its size cannot be read")
    operands = list(args[1:]) if args and isinstance(args[0], str) else list(args)
    graph_shapes = iter(input_shapes)
    # A graph operand's leading axis: the batch (None: 1 sample), or inside a traced call
    # what the call folded into it (tokens of a batch, windows), read from the call.
    shapes = [(_leading(value), *next(graph_shapes)) if is_graph_tensor(value)
              else tuple(int(d) for d in value.shape) for value in operands]
    macs = einsum_macs(op.subscripts, shapes)
    subscripts = str(op.subscripts).replace(" ", "")
    if "->" not in subscripts or "." in subscripts:
        return Cost(macs=macs)
    # The count is read per unit of the output's leading axis: the caller multiplies by its
    # size (a traced call's windows, experts), so that index is taken out of the product.
    (inputs, output), lead = subscripts.split("->"), 1
    for term, shape in zip(inputs.split(","), shapes):
        if output[:1] and output[0] in term:
            lead = dim_size(shape[term.index(output[0])]) or 1
            break
    return Cost(macs=macs // lead)


def _leading(tensor) -> int:
    size = tensor.shape[0] if len(tensor.shape) else 1
    return size if isinstance(size, int) and size > 0 else 1


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
_register(numpy_ops, _CONSTANT_LIKE, cost=ZERO, geometry=Geometry("identity"))
_register(core_ops, _CONSTANT_LIKE, cost=ZERO, geometry=Geometry("identity"))
_register(numpy_ops, _COPY_BREAKS, cost=ZERO, geometry=rearrange_geometry)
_register(core_ops, _COPY_BREAKS, cost=ZERO, geometry=rearrange_geometry)
_register(nn_ops, _COPY_BREAKS, cost=ZERO, geometry=rearrange_geometry)
_register(numpy_ops, _STACKS, cost=ZERO, geometry=BREAKS)
_register(numpy_ops, ("Reshape",), cost=ZERO, geometry=reshape_geometry)
_register(numpy_ops, _COPY_ALONG_AXIS, cost=ZERO, geometry=axis_geometry)
_register(core_ops, _COPY_ALONG_AXIS, cost=ZERO, geometry=axis_geometry)
_register(numpy_ops, ("Concatenate", "Append"), cost=ZERO, geometry=concatenate_op_geometry)
_register(numpy_ops, ("GetItem",), cost=ZERO, geometry=getitem_geometry)
_register(core_ops, ("Slice",), cost=ZERO, geometry=slice_geometry)
_register(numpy_ops, ("Pad",), cost=ZERO, geometry=pad_geometry)
_register(numpy_ops, _REDUCTIONS, cost=reduction_cost, geometry=reduction_geometry)
_register(math_ops, ("Logsumexp",), cost=elementwise(3, of="input"), geometry=GLOBAL)
_register(numpy_ops, ("Matmul",), cost=matmul_cost, geometry=matmul_geometry)
_register(numpy_ops, ("Einsum",), cost=einsum_cost, geometry=einsum_geometry)

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
