"""Costs as exact formulas of the input size: ``input_shape=("H", "W", 3)``.

A string in ``input_shape`` names a size. :func:`count_flops` and :func:`analyze` (also reached
through :func:`modelstats.count_flops` and :func:`modelstats.analyze`) then give every node's
``macs``, ``flops``, ``activations`` and ``activation_bytes``, and the totals, as sympy
expressions in those sizes, exact at every size the model accepts: the floors and ceilings of
strided and padded layers are kept, so ``97 x 131`` is counted as exactly as ``224 x 224``.

How, in four steps:

1. **Probes.** Keras builds the graph at a few *probe* sizes (every symbol replaced by an
   integer; the default probes differ in their residues modulo 2, 4, 8, 16, 32 and 3).
2. **Symbolic shapes.** In topological order, each node's output shape is derived from its
   inputs' symbolic shapes. Operations that change sizes have a *shape rule* (convolutions and
   pooling: ``floor((n - d*(k-1) - 1)/s) + 1`` for "valid", ``ceiling(n/s)`` for "same" or
   "causal"; transposed convolutions; upsampling; zero padding; cropping; ``ops.pad``;
   concatenation; flatten and reshape). Every other size is a constant or one of the node's
   input sizes, whichever the probe graphs show (the input at the same position from the right
   first: elementwise operations, dense layers, normalisation, attention, global pooling and
   fixed-size resizing all fall here). A size that is neither raises :class:`ShapeError` naming
   the layer, as does a choice the probes cannot make.
3. **Verification.** Every derived size, at every probe (including one held out of step 2),
   must equal the size Keras inferred there; otherwise :class:`ShapeError` names the layer.
   Parameters must not depend on the symbols (a symbol on a channel axis would change the
   weights): :class:`ShapeError` names the layer whose weights do.
4. **Costs.** The cost rules run on the symbolic shapes (they add and multiply sizes), and each
   node's formula must equal the numeric count at every probe. A rule that cannot take symbolic
   sizes (a logarithm, a comparison) or whose formula disagrees leaves its node ``unsupported``
   with the reason: ``<NA>``, never 0.

The receptive-field columns of a symbolic :class:`~modelstats.Report` hold the value the probes
agree on (sizes and strides of convolutional nets do not depend on the input size) and are
missing where the probes differ (the padding of TensorFlow "same" layers with a stride depends
on the parity of the size). :meth:`Report.at` evaluates a symbolic report at given sizes: the
formulas are substituted and the receptive fields propagated at those sizes, without Keras,
giving the report :func:`modelstats.analyze` gives at that size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, Optional

import networkx as nx
import pandas as pd

from modelstats.errors import (
    OptionError,
    RuleError,
    ShapeError,
    UnsupportedLayerError,
    user_stacklevel,
)
from modelstats.graph import InputShapes, is_symbol

__all__ = [
    "is_symbolic",
    "count_flops",
    "analyze",
    "register_shape",
    "window_size",
    "transposed_size",
    "SymbolicSizes",
    "DEFAULT_PROBES",
]

#: Probe value of the i-th symbol in the j-th probe: ``DEFAULT_PROBES[j] + 12 * i``. The
#: residues of 97, 131, 160 and 203 modulo 2, 4, 8, 16, 32 and 3 differ, so the floors and
#: ceilings of strided layers are exercised both ways; the last probe is held out of the
#: derivation and only verifies it.
DEFAULT_PROBES = (97, 131, 160, 203)
_SYMBOL_SPACING = 12


def _sympy():
    import sympy  # imported on the symbolic path only: numeric analyses never pay for it

    return sympy


def is_symbolic(input_shape: Any) -> bool:
    """True when ``input_shape`` names a size with a string (``("H", "W", 3)``, ``("T",)``).

    >>> is_symbolic(("H", "W", 3)), is_symbolic((224, 224, 3)), is_symbolic(None)
    (True, False, False)
    >>> is_symbolic({"image": ("H", "W", 3), "mask": (8,)})
    True
    """
    if input_shape is None or isinstance(input_shape, (str, bytes)):
        return False
    values = list(input_shape.values()) if isinstance(input_shape, Mapping) else input_shape
    if not isinstance(values, Sequence):
        return False
    for item in values:
        if is_symbol(item):
            return True
        if isinstance(item, Sequence) and not isinstance(item, (str, bytes)) \
                and any(is_symbol(d) for d in item):
            return True
    return False


# -- sizes as sympy expressions -------------------------------------------------------------------

def _tidy(value: Any) -> Any:
    """A size that is a number as a plain int; a symbolic size unchanged."""
    if getattr(value, "is_Integer", False):
        return int(value)
    return value


def _has_symbols(value: Any) -> bool:
    return bool(getattr(value, "free_symbols", None))


def _rounded_div(num: Any, s: int, rounding: Any) -> Any:
    """``rounding(num / s)`` (sympy's ``floor`` or ``ceiling``) for a positive integer ``s``.
    Nested roundings of one kind are merged, since ``floor((floor(z) + c) / s) =
    floor((z + c) / s)`` for an integer c (and likewise for ceilings): the sizes of a chain of
    strided layers stay one rounding deep (``floor(ceiling(H/2)/4)``, not three floors)."""
    sympy = _sympy()
    if s == 1:
        return num
    num = sympy.sympify(num)
    c, rest = num.as_coeff_Add()
    if isinstance(rest, rounding) and c.is_integer:
        return rounding((rest.args[0] + c) / s)
    return rounding(num / s)


def _floor_div(num: Any, s: int) -> Any:
    """``floor(num / s)``, nested floors merged (:func:`_rounded_div`)."""
    return _rounded_div(num, s, _sympy().floor)


def _ceil_div(num: Any, s: int) -> Any:
    """``ceiling(num / s)``, nested ceilings merged (:func:`_rounded_div`)."""
    return _rounded_div(num, s, _sympy().ceiling)


def window_size(n: Any, kernel: int, stride: int, dilation: int, padding: str) -> Any:
    """Output positions of a convolution or pooling window along one axis (Keras' rules).

    "valid": ``floor((n - d*(k-1) - 1)/s) + 1``; "same" and "causal": ``ceiling(n/s)``.

    >>> import sympy
    >>> H = sympy.Symbol("H", integer=True, positive=True)
    >>> window_size(H, 3, 2, 1, "valid"), window_size(H, 3, 2, 1, "same")
    (floor(H/2 - 3/2) + 1, ceiling(H/2))
    >>> window_size(97, 3, 2, 1, "valid")
    48
    """
    padding = str(padding).lower()
    if padding == "valid":
        return _tidy(_floor_div(n - (dilation * (kernel - 1) + 1), stride) + 1)
    if padding in ("same", "causal"):
        return _tidy(_ceil_div(n, stride))
    raise ShapeError(f"no size formula for padding {padding!r}")


def transposed_size(n: Any, kernel: int, stride: int, dilation: int, padding: str,
                    output_padding: Optional[int] = None) -> Any:
    """Output positions of a transposed convolution along one axis (Keras' rules).

    >>> transposed_size(5, 3, 2, 1, "valid"), transposed_size(5, 3, 2, 1, "same")
    (11, 10)
    """
    k_eff = dilation * (kernel - 1) + 1
    if str(padding).lower() == "valid":
        extra = max(k_eff, stride) - k_eff if output_padding is None else output_padding
        return _tidy((n - 1) * stride + k_eff + extra)
    if output_padding is None:
        return _tidy(n * stride)
    return _tidy((n - 1) * stride + k_eff % 2 + output_padding)


# -- shape rules: operations that change sizes ----------------------------------------------------

ShapeRule = Callable[[Any, list, dict], Optional[list]]
_SHAPE_RULES: dict[type, ShapeRule] = {}
_USER_SHAPE_RULES: dict[type, ShapeRule] = {}


def register_shape(cls: type, rule: ShapeRule) -> None:
    """Register how a layer (or operation) class changes sizes, for symbolic sizes.

    Needed only for a class whose output sizes are neither constants nor its input sizes (those
    are found without a rule) and that modelstats does not trace into ``keras.ops`` calls.

    Parameters
    ----------
    cls : type
        The class; its subclasses use the rule too.
    rule : callable
        ``rule(layer, input_shapes, node) -> list of output shapes``: ``input_shapes`` are
        tuples of ints and sympy expressions, ``node`` the graph node's attributes at a probe
        size (``data_format``, ``output_shapes``, ...). An entry None in a returned shape (or
        None instead of the list) leaves that size to be found as described above.

    Examples
    --------
    >>> import keras
    >>> from modelstats import symbolic
    >>> class Twice(keras.layers.Layer):
    ...     def call(self, x):
    ...         return keras.ops.repeat(x, 2, axis=1)
    >>> symbolic.register_shape(Twice, lambda layer, ins, node: [(2 * ins[0][0], None)])
    """
    if not isinstance(cls, type) or not callable(rule):
        raise TypeError("register_shape needs a class and a callable rule(layer, ins, node).")
    _USER_SHAPE_RULES[cls] = rule


def _shape_rule(cls: type) -> Optional[ShapeRule]:
    for klass in cls.__mro__:
        for table in (_USER_SHAPE_RULES, _SHAPE_RULES):
            if klass in table:
                return table[klass]
    return None


def _spatial_positions(rank: int, data_format: Optional[str]) -> range:
    """Positions of the spatial axes in a shape of ``rank`` axes without batch."""
    return range(1, rank) if data_format == "channels_first" else range(rank - 1)


def _per_axis(value: Any, rank: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def _windowed(shape: tuple, data_format: Optional[str], size_of: Callable) -> list:
    """The output shape of a windowed operation: ``size_of(axis, n)`` on every spatial axis,
    the channel axis left to the probes (a constant)."""
    out: list = [None] * len(shape)
    for axis, position in enumerate(_spatial_positions(len(shape), data_format)):
        out[position] = size_of(axis, shape[position])
    return [tuple(out)]


def _conv_layer_shape(layer, ins, node) -> list:
    rank = len(ins[0]) - 1
    kernel = _per_axis(layer.kernel_size, rank)
    strides = _per_axis(layer.strides, rank)
    dilation = _per_axis(getattr(layer, "dilation_rate", 1), rank)
    return _windowed(ins[0], layer.data_format, lambda a, n: window_size(
        n, kernel[a], strides[a], dilation[a], layer.padding))


def _pool_layer_shape(layer, ins, node) -> list:
    rank = len(ins[0]) - 1
    pool = _per_axis(layer.pool_size, rank)
    strides = pool if layer.strides is None else _per_axis(layer.strides, rank)
    return _windowed(ins[0], layer.data_format, lambda a, n: window_size(
        n, pool[a], strides[a], 1, layer.padding))


def _transposed_layer_shape(layer, ins, node) -> list:
    rank = len(ins[0]) - 1
    kernel = _per_axis(layer.kernel_size, rank)
    strides = _per_axis(layer.strides, rank)
    dilation = _per_axis(layer.dilation_rate, rank)
    extra = None if layer.output_padding is None else _per_axis(layer.output_padding, rank)
    return _windowed(ins[0], layer.data_format, lambda a, n: transposed_size(
        n, kernel[a], strides[a], dilation[a], layer.padding,
        None if extra is None else extra[a]))


def _upsampling_shape(layer, ins, node) -> list:
    factors = _per_axis(layer.size, len(ins[0]) - 1)
    return _windowed(ins[0], getattr(layer, "data_format", None),
                     lambda a, n: _tidy(n * int(factors[a])))


def _pairs(value: Any, rank: int) -> tuple:
    """Keras stores paddings and croppings as ((left, right), ...), or (left, right) in 1-D."""
    if rank == 1 and not isinstance(value[0], (tuple, list)):
        return (tuple(value),)
    return tuple(tuple(v) for v in value)


def _zero_padding_shape(layer, ins, node) -> list:
    pairs = _pairs(layer.padding, len(ins[0]) - 1)
    return _windowed(ins[0], getattr(layer, "data_format", None),
                     lambda a, n: _tidy(n + sum(int(p) for p in pairs[a])))


def _cropping_shape(layer, ins, node) -> list:
    pairs = _pairs(layer.cropping, len(ins[0]) - 1)
    return _windowed(ins[0], getattr(layer, "data_format", None),
                     lambda a, n: _tidy(n - sum(int(p) for p in pairs[a])))


def _concatenate_shape(op, ins, node) -> list:
    """The joined axis is the sum of the inputs' sizes; the other sizes are the inputs'."""
    rank = len(ins[0])
    axis = int(op.axis) % (rank + 1)  # counted with the batch axis
    if axis == 0:
        return None
    out: list = [None] * rank
    out[axis - 1] = _tidy(sum(shape[axis - 1] for shape in ins))
    return [tuple(out)]


def _op_layout(op) -> Optional[str]:
    from modelstats.layers.ops_extra import _layout

    return _layout(op).data_format


def _op_kernel(op, node) -> tuple:
    from modelstats.layers.ops_extra import _operand

    return _operand(op, node["input_shapes"], 1, "kernel")


def _op_conv_shape(op, ins, node) -> list:
    kernel = _op_kernel(op, node)
    rank = len(kernel) - 2
    strides = _per_axis(op.strides, rank)
    dilation = _per_axis(op.dilation_rate, rank)
    return _windowed(ins[0], _op_layout(op), lambda a, n: window_size(
        n, int(kernel[a]), strides[a], dilation[a], op.padding))


def _op_transposed_shape(op, ins, node) -> list:
    kernel = _op_kernel(op, node)
    rank = len(kernel) - 2
    strides = _per_axis(op.strides, rank)
    dilation = _per_axis(op.dilation_rate, rank)
    extra = None if op.output_padding is None else _per_axis(op.output_padding, rank)
    return _windowed(ins[0], _op_layout(op), lambda a, n: transposed_size(
        n, int(kernel[a]), strides[a], dilation[a], op.padding,
        None if extra is None else extra[a]))


def _op_pool_shape(op, ins, node) -> list:
    rank = len(ins[0]) - 1
    pool = _per_axis(op.pool_size, rank)
    strides = pool if op.strides is None else _per_axis(op.strides, rank)
    return _windowed(ins[0], _op_layout(op), lambda a, n: window_size(
        n, pool[a], strides[a], 1, op.padding))


def _op_patches_shape(op, ins, node) -> list:
    rank = len(ins[0]) - 1
    size = _per_axis(op.size, rank)
    strides = size if op.strides is None else _per_axis(op.strides, rank)
    dilation = _per_axis(op.dilation_rate, rank)
    return _windowed(ins[0], _op_layout(op), lambda a, n: window_size(
        n, size[a], strides[a], dilation[a], op.padding))


def _op_pad_shape(op, ins, node) -> list:
    from modelstats.layers.ops import _broadcast_pad

    pairs = _broadcast_pad(op.pad_width, len(ins[0]) + 1)  # with the batch axis
    return [tuple(_tidy(n + int(left) + int(right)) for n, (left, right) in zip(ins[0], pairs[1:]))]


_RESHAPE = object()  # marker: the output sizes of a reshape, found by _Deriver.reshaped


def _reshape_shape(op, ins, node) -> list:
    """A reshape keeps the number of elements: each output size is a constant, an input size
    or a product of neighbouring input sizes, whichever the probes show (a Flatten is the
    product of all); one size left over is the element count divided by the others."""
    return [_RESHAPE]  # resolved by _Deriver, which has the probe values


def _builtin_shape_rules() -> None:
    import keras
    import keras.src.ops.image as image_ops
    import keras.src.ops.nn as nn_ops
    import keras.src.ops.numpy as numpy_ops

    L = keras.layers
    for cls in (L.Conv1D, L.Conv2D, L.Conv3D, L.DepthwiseConv1D, L.DepthwiseConv2D,
                L.SeparableConv1D, L.SeparableConv2D):
        _SHAPE_RULES[cls] = _conv_layer_shape
    for cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
        _SHAPE_RULES[cls] = _transposed_layer_shape
    for cls in (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D, L.AveragePooling1D,
                L.AveragePooling2D, L.AveragePooling3D):
        _SHAPE_RULES[cls] = _pool_layer_shape
    for cls in (L.UpSampling1D, L.UpSampling2D, L.UpSampling3D):
        _SHAPE_RULES[cls] = _upsampling_shape
    for cls in (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D):
        _SHAPE_RULES[cls] = _zero_padding_shape
    for cls in (L.Cropping1D, L.Cropping2D, L.Cropping3D):
        _SHAPE_RULES[cls] = _cropping_shape
    _SHAPE_RULES[L.Concatenate] = _concatenate_shape
    for cls in (L.Flatten, L.Reshape):
        _SHAPE_RULES[cls] = _reshape_shape
    ops = {
        nn_ops: {"Conv": _op_conv_shape, "DepthwiseConv": _op_conv_shape,
                 "SeparableConv": _op_conv_shape, "ConvTranspose": _op_transposed_shape,
                 "MaxPool": _op_pool_shape, "AveragePool": _op_pool_shape},
        numpy_ops: {"Pad": _op_pad_shape, "Concatenate": _concatenate_shape,
                    "Append": _concatenate_shape, "Reshape": _reshape_shape,
                    "Ravel": _reshape_shape},
        image_ops: {"ExtractPatches": _op_patches_shape},
    }
    for module, rules in ops.items():
        for name, rule in rules.items():
            cls = getattr(module, name, None)
            if cls is not None:  # the set of operations differs between Keras versions
                _SHAPE_RULES[cls] = rule


# -- step 1: probes -------------------------------------------------------------------------------

@dataclass
class _Probe:
    values: dict  # symbol name -> int
    graph: nx.DiGraph


def _symbols(parsed: InputShapes) -> dict:
    """Symbol name -> sympy Symbol (a positive integer), in order of first appearance."""
    sympy = _sympy()
    names: dict = {}
    for shape in parsed.shapes():
        for dim in shape:
            if not is_symbol(dim):
                continue
            name = str(dim)
            if not name.isidentifier():
                raise ShapeError(
                    f"input_shape={parsed.text}: {name!r} is not a symbol name; name a size with "
                    "an identifier such as 'H', 'W' or 'T'."
                )
            names.setdefault(name, sympy.Symbol(name, integer=True, positive=True))
    return names


def _probe_values(names: Sequence[str], probes: Optional[Sequence[Mapping]]) -> list[dict]:
    if probes is None:
        return [{name: base + _SYMBOL_SPACING * i for i, name in enumerate(names)}
                for base in DEFAULT_PROBES]
    chosen = []
    for probe in probes:
        if not isinstance(probe, Mapping) or set(probe) != set(names) or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in probe.values()
        ):
            raise OptionError(
                f"probes: each probe is a dict giving every symbol {list(names)} a positive "
                f"integer size; received {probe!r}."
            )
        chosen.append(dict(probe))
    # The formulas are derived from all probes but the last: there, every symbol must vary
    # (a size that does not vary looks constant) and differ from every other symbol somewhere
    # (else their sizes cannot be told apart).
    series = {name: tuple(p[name] for p in chosen[:-1]) for name in names}
    if len(chosen) < 3 or any(len(set(v)) < 2 for v in series.values()) \
            or len(set(series.values())) < len(series):
        raise OptionError(
            f"probes: give at least 3 probes (all but the last derive the formulas, the last "
            "verifies them); in those that derive, every symbol must take two sizes or more "
            f"and no two symbols the same sizes. Received {chosen}."
        )
    return chosen


def _build_probes(model: Any, parsed: InputShapes, values: list[dict],
                  expand_nested: bool) -> list[_Probe]:
    from modelstats.graph import to_networkx

    found = []
    for probe in values:
        try:
            graph = to_networkx(model, expand_nested=expand_nested,
                                input_shape=parsed.substituted(probe))
        except ShapeError as exc:
            raise ShapeError(
                f"input_shape={parsed.text} at the probe sizes {probe}: "
                f"{str(exc).rstrip('.')}. (A model that "
                "needs particular sizes, e.g. multiples of 32, takes probes=[{...}, ...] in "
                "modelstats.symbolic.count_flops and analyze.)"
            ) from None
        found.append(_Probe(probe, graph))
    return found


def _aligned(probes: list[_Probe]) -> None:
    """Name every probe graph's nodes as the first's, checking the graphs are the same but for
    sizes. A clone built per probe (an unbuilt Sequential) numbers its input layer anew, so
    nodes are matched by position and type."""
    first = probes[0].graph
    for probe in probes[1:]:
        graph = probe.graph
        types = [d["type"] for _, d in graph.nodes(data=True)]
        if types != [d["type"] for _, d in first.nodes(data=True)]:
            raise ShapeError(
                f"The model's graph differs between the probe sizes {probes[0].values} and "
                f"{probe.values}: its structure depends on the input size, so no single formula "
                "describes it."
            )
        mapping = dict(zip(graph.nodes, first.nodes))
        renamed = nx.relabel_nodes(graph, mapping, copy=True)
        for _, data in renamed.nodes(data=True):
            data["inputs"] = [(mapping[src], index) for src, index in data["inputs"]]
        for key in ("inputs", "outputs"):
            renamed.graph[key] = [mapping[n] for n in graph.graph.get(key, [])]
        if set(renamed.edges) != set(first.edges):
            raise ShapeError(
                f"The model's graph is wired differently at the probe sizes {probe.values} than "
                f"at {probes[0].values}, so no single formula describes it."
            )
        probe.graph = renamed
        for node_id, data in renamed.nodes(data=True):
            base = first.nodes[node_id]
            for key in ("params", "trainable_params", "batch_factor"):
                if data.get(key) != base.get(key):
                    what = "weights" if key != "batch_factor" else "samples on the leading axis"
                    raise ShapeError(
                        f"Layer '{node_id}' ({data['type']}) has {key}={base.get(key)} at "
                        f"{probes[0].values} but {data.get(key)} at {probe.values}: its {what} "
                        "depend on a size symbol. Symbols can stand only for sizes the weights "
                        "do not depend on (spatial sizes, sequence lengths), not for a channel "
                        "axis."
                    )


def _check_fixed(model: Any, parsed: InputShapes) -> None:
    """A symbol on a size the model's input fixes is an error, said before any probe."""
    try:
        tensors = list(model.inputs)
    except (AttributeError, ValueError, TypeError):  # unbuilt or subclassed: probes tell
        return
    from modelstats.adapters import adapter_for

    adapter = adapter_for(model)
    ids = [adapter.producer_name(t) for t in tensors]
    given = parsed.for_inputs(ids, ids)
    for node_id, tensor in zip(ids, tensors):
        fixed = tuple(tensor.shape[1:])
        for axis, (dim, size) in enumerate(zip(given.get(node_id, ()), fixed)):
            if is_symbol(dim) and size is not None:
                raise ShapeError(
                    f"input_shape={parsed.text}: the symbol {str(dim)!r} names axis {axis} of "
                    f"input '{node_id}', which the model fixes at {size} (its shape is {fixed}). "
                    "Symbols can stand only for sizes the model leaves None, such as "
                    "keras.Input((None, None, 3))."
                )


# -- step 2 and 3: symbolic shapes, derived and verified -------------------------------------------

class _Deriver:
    """Derives every node's symbolic output shapes from its inputs' (see the module docstring),
    with ``derive`` probes; :meth:`verify` checks them at every probe."""

    def __init__(self, probes: list[_Probe], symbols: dict, derive: int):
        self.probes = probes
        self.symbols = symbols
        self.derive = probes[:derive]
        self.graph = probes[0].graph
        self.shapes: dict[str, list] = {}
        self.constraints: list[tuple[str, Any, Any]] = []  # (node, a, b): a == b is required
        self.source: dict[str, str] = {}  # node -> "rule" or "probes": how its sizes were found
        self.evaluators: dict[int, _Evaluator] = {}

    def evaluator(self, probe: _Probe) -> "_Evaluator":
        """Evaluates formulas at ``probe``'s sizes (one per probe, remembering)."""
        key = id(probe)
        if key not in self.evaluators:
            self.evaluators[key] = _Evaluator(
                {self.symbols[name]: value for name, value in probe.values.items()})
        return self.evaluators[key]

    def probe_sizes(self, node_id: str, output: int, position: int, probes=None) -> tuple:
        return tuple(p.graph.nodes[node_id]["output_shapes"][output][position]
                     for p in (probes or self.derive))

    def run(self) -> dict[str, list]:
        for node_id in self.graph.nodes:
            self.shapes[node_id] = self.node_shapes(node_id)
        return self.shapes

    def node_shapes(self, node_id: str) -> list:
        data = self.graph.nodes[node_id]
        inputs = [self.shapes[src][index] for src, index in data["inputs"]]
        sources = data["inputs"]
        rule = _shape_rule(type(data["operation"])) if inputs else None
        given = None
        if rule is not None:
            try:
                given = rule(data["operation"], inputs, data)
            except ShapeError as exc:
                raise ShapeError(f"Layer '{node_id}' ({data['type']}): {exc}") from None
            self.source[node_id] = "rule"
        outputs = []
        for k, probe_shape in enumerate(data["output_shapes"]):
            partial = given[k] if given is not None and k < len(given) else None
            if partial is _RESHAPE:
                outputs.append(self.reshaped(node_id, k, inputs[0], sources[0]))
                continue
            shape = []
            for p in range(len(probe_shape)):
                known = partial[p] if partial is not None and p < len(partial) else None
                shape.append(known if known is not None
                             else self.size(node_id, k, p, inputs, sources))
            outputs.append(tuple(shape))
        return outputs

    def input_sizes(self, source: tuple, position: int) -> tuple:
        src, index = source
        return self.probe_sizes(src, index, position)

    def size(self, node_id: str, k: int, p: int, inputs: list, sources: list) -> Any:
        """One output size without a rule: a model input's symbol, an input size (at the same
        position from the right first), or a constant, as the probes show."""
        data = self.graph.nodes[node_id]
        wanted = self.probe_sizes(node_id, k, p)
        if any(v is None for v in wanted):
            return None  # unknown at the probes too: counting it asks for a size
        if not inputs:
            for name, symbol in self.symbols.items():
                if wanted == tuple(probe.values[name] for probe in self.derive):
                    return symbol
        rank = len(data["output_shapes"][k])
        aligned = []
        for shape, source in zip(inputs, sources):
            q = p - (rank - len(shape))
            if 0 <= q < len(shape) and self.input_sizes(source, q) == wanted:
                aligned.append(shape[q])
        constant = len(set(wanted)) == 1
        if aligned:
            chosen = aligned[0]
            if constant and _has_symbols(chosen):
                raise ShapeError(
                    f"Layer '{node_id}' ({data['type']}): its size {wanted[0]} on axis {p} is "
                    f"the same at every probe, as is its input's size {chosen}; the probes "
                    f"{[pr.values for pr in self.derive]} cannot tell whether it follows the "
                    "input. Pass larger probes=[{...}, ...] to modelstats.symbolic."
                )
            for other in aligned[1:]:
                if _has_symbols(other) and other != chosen:
                    self.constraints.append((node_id, chosen, other))
            return chosen
        if constant:
            return int(wanted[0])
        for shape, source in zip(inputs, sources):
            for q, expr in enumerate(shape):
                if self.input_sizes(source, q) == wanted:
                    return expr
        raise ShapeError(
            f"Layer '{node_id}' ({data['type']}): its output size on axis {p} "
            f"({list(wanted)} at the probes {[pr.values for pr in self.derive]}) is neither "
            "a constant nor one of its input sizes, and modelstats has no shape rule for "
            f"{data['type']}. Register one with modelstats.symbolic.register_shape."
        )

    def reshaped(self, node_id: str, k: int, shape: tuple, source: tuple) -> tuple:
        """Output sizes of a reshape (see :func:`_reshape_shape`)."""
        sympy = _sympy()
        data = self.graph.nodes[node_id]
        rank = len(data["output_shapes"][k])
        runs = []  # (probe sizes, expression) of every run of neighbouring input sizes
        for start in range(len(shape)):
            for stop in range(start + 1, len(shape) + 1):
                sizes = [self.input_sizes(source, q) for q in range(start, stop)]
                if any(None in s for s in sizes):
                    continue
                values = tuple(math.prod(column) for column in zip(*sizes))
                runs.append((values, _tidy(sympy.Mul(*shape[start:stop]))))
        out: list = []
        for p in range(rank):
            wanted = self.probe_sizes(node_id, k, p)
            match = next((expr for values, expr in runs if values == wanted), None)
            if match is None and len(set(wanted)) == 1:
                match = int(wanted[0])
            out.append(match)
        missing = [p for p, e in enumerate(out) if e is None]
        if len(missing) == 1 and all(d is not None for d in shape):
            out[missing[0]] = _tidy(sympy.cancel(sympy.Mul(*shape) / sympy.Mul(*[
                e for e in out if e is not None])))
        elif missing:
            raise ShapeError(
                f"Layer '{node_id}' ({data['type']}): its output sizes "
                f"{[list(self.probe_sizes(node_id, k, p)) for p in missing]} on axes {missing} "
                "are not products of neighbouring input sizes, so the reshape has no formula."
            )
        return tuple(out)

    def verify(self) -> None:
        """Every size, at every probe, must be the one Keras inferred."""
        for probe in self.probes:
            evaluate = self.evaluator(probe)
            for node_id, data in probe.graph.nodes(data=True):
                for k, (expected, shape) in enumerate(zip(data["output_shapes"],
                                                          self.shapes[node_id])):
                    for p, (want, expr) in enumerate(zip(expected, shape)):
                        got = evaluate(expr)
                        if got != want:
                            how = "its shape rule" if self.source.get(node_id) == "rule" else \
                                "the size it follows"
                            raise ShapeError(
                                f"Layer '{node_id}' ({data['type']}): the size formula {expr} "
                                f"(from {how}) gives {got} on axis {p} of output {k} at the "
                                f"probe sizes {probe.values}, but Keras infers {want}. "
                                "modelstats cannot describe this layer with a formula; "
                                "register a rule with modelstats.symbolic.register_shape."
                            )


class _Evaluator:
    """Evaluates size formulas at given sizes, exactly (fractions inside floors), remembering
    every sub-expression: the formulas of a network share a handful of floors and ceilings,
    and sympy's own substitution rebuilds each expression, which was the slowest step."""

    def __init__(self, subs: dict):
        self.memo: dict = {symbol: Fraction(int(value)) for symbol, value in subs.items()}

    def __call__(self, expr: Any) -> Any:
        if expr is None:
            return None
        if isinstance(expr, int):
            return expr
        value = self.value(expr)
        if isinstance(value, Fraction):
            return int(value) if value.denominator == 1 else value
        return value  # not a rational number: never equal to a count

    def value(self, expr: Any) -> Any:
        found = self.memo.get(expr)
        if found is not None:
            return found
        sympy = _sympy()
        if expr.is_Rational:
            found = Fraction(int(expr.p), int(expr.q))
        elif expr.is_Add:
            found = sum((self.value(a) for a in expr.args), Fraction(0))
        elif expr.is_Mul:
            found = Fraction(1)
            for a in expr.args:
                found *= self.value(a)
        elif expr.is_Pow and expr.exp.is_Integer:
            found = self.value(expr.base) ** int(expr.exp)
        elif isinstance(expr, sympy.floor):
            found = Fraction(math.floor(self.value(expr.args[0])))
        elif isinstance(expr, sympy.ceiling):
            found = Fraction(math.ceil(self.value(expr.args[0])))
        elif isinstance(expr, (sympy.Max, sympy.Min)):
            pick = max if isinstance(expr, sympy.Max) else min
            found = pick(self.value(a) for a in expr.args)
        else:  # anything else: sympy's substitution
            found = expr.xreplace({k: sympy.Integer(int(v)) for k, v in self.memo.items()
                                   if getattr(k, "is_Symbol", False)})
            if found.is_Rational:
                found = Fraction(int(found.p), int(found.q))
        self.memo[expr] = found
        return found


# -- step 4: costs --------------------------------------------------------------------------------

class _SymbolicRules:
    """The registry in force, except that a rule failing on symbolic sizes (it took ``int`` of
    one, compared one, took a logarithm) leaves its node unsupported, with the reason."""

    def __init__(self, base: Any):
        self._base = base

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def cost(self, operation, input_shapes, output_shapes, node=None, **kwargs):
        from modelstats.registry import Unsupported

        try:
            return self._base.cost(operation, input_shapes, output_shapes, node=node, **kwargs)
        except RuleError as exc:  # the numeric count of this node ran: the sizes are the cause
            cause = exc.__cause__
            raise Unsupported(
                "its cost rule cannot take symbolic sizes"
                + (f" ({type(cause).__name__}: {cause})" if cause is not None else "")
            ) from None


def _is_number(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or _is_sympy(value)


def _is_sympy(value: Any) -> bool:
    return isinstance(value, _sympy().Basic)


def _numbers(record: Any) -> dict:
    """Every count of a node's record by name: the fields of its ``Cost`` (``cost.macs``, ...)
    and its own (``flops``, ``activations``, bytes, ...)."""
    found = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name == "cost":
            found.update((f"cost.{g.name}", getattr(value, g.name)) for g in fields(value))
        elif _is_number(value):
            found[f.name] = value
    return found


def _with_numbers(record: Any, numbers: dict) -> Any:
    """A copy of ``record`` holding the counts ``numbers`` (named as :func:`_numbers` does)."""
    cost = {k[len("cost."):]: v for k, v in numbers.items() if k.startswith("cost.")}
    own = {k: v for k, v in numbers.items() if not k.startswith("cost.")}
    return replace(record, cost=replace(record.cost, **cost), **own)


def _costs(deriver: _Deriver, built: list[_Probe], graph: nx.DiGraph, convention: Any,
           strict: bool) -> list:
    """The nodes' records with sympy counts; each formula is checked against the numeric count
    at every probe, and a node whose formula is missing or wrong is ``unsupported``."""
    from modelstats import rules
    from modelstats.cost import UnsupportedLayerWarning, node_costs

    sympy = _sympy()
    # The numeric count at the first probe warns (or raises, strict) about layers without a
    # rule exactly as a numeric analysis does; a rule that fails on numbers raises there.
    numeric = [node_costs(built[0].graph, convention, strict=strict)]
    numeric += [node_costs(p.graph, convention, _warn=False) for p in built[1:]]
    records = node_costs(graph, convention, registry=_SymbolicRules(rules.active()), _warn=False)
    lost: dict[str, list[str]] = {}
    for i, record in enumerate(records):
        if record.status == "unsupported":
            if numeric[0][i].status != "unsupported":
                lost.setdefault(record.type, []).append(record.node)
            continue
        formulas = _numbers(record)
        for probe, counted in zip(built, numeric):
            evaluate = deriver.evaluator(probe)
            expected = _numbers(counted[i])
            wrong = [(k, v) for k, v in formulas.items()
                     if counted[i].status == "unsupported" or evaluate(v) != expected[k]]
            if wrong:
                name, formula = wrong[0]
                record.status = "unsupported"
                record.reason = (
                    f"its cost rule is not exact with symbolic sizes: {name} = {formula} is "
                    f"{evaluate(formula)} at {probe.values}, where the rule counts "
                    f"{expected.get(name)}"
                )
                lost.setdefault(record.type, []).append(record.node)
                break
    records = [_with_numbers(r, {k: sympy.sympify(v) for k, v in _numbers(r).items()})
               for r in records]
    if lost:
        listing = "; ".join(f"{cls} ({', '.join(nodes)})" for cls, nodes in lost.items())
        if strict:
            raise UnsupportedLayerError(
                f"No formula of the sizes for {listing}: their cost rules cannot take symbolic "
                "sizes. Pass strict=False for partial formulas, or count at concrete sizes."
            )
        warnings.warn(
            f"modelstats has no formula of the sizes for {listing}; their rows are "
            "'unsupported' and the totals a lower bound (Report.at counts them at concrete "
            "sizes).",
            UnsupportedLayerWarning,
            stacklevel=user_stacklevel(),
        )
    return records


# -- the tables -----------------------------------------------------------------------------------

def _table(graph: nx.DiGraph, columns: dict, layout: Sequence) -> pd.DataFrame:
    """Like the numeric frame, with the columns that hold formulas as sympy objects (object
    dtype; a missing value is <NA>)."""
    sympy = _sympy()
    index = pd.Index(list(graph.nodes), name="node")
    data = {}
    for c in layout:
        values = columns[c.name]
        if c.dtype in ("int", "float", "number") and any(_is_sympy(v) for v in values):
            data[c.name] = pd.Series([pd.NA if v is None else sympy.sympify(v) for v in values],
                                     index=index, dtype=object)
        elif c.pandas_dtype:
            data[c.name] = pd.Series(values, index=index, dtype=c.pandas_dtype)
        else:
            data[c.name] = values
    return pd.DataFrame(data, index=index)


def _totals(table: pd.DataFrame, layout: Sequence, extra: dict) -> dict:
    from modelstats import schema
    from modelstats.report import _total

    sympy = _sympy()
    totals = {}
    for c in layout:
        if not c.summed:
            continue
        values = table[c.name]
        if values.dtype == object:  # formulas: their sum, <NA> rows skipped
            totals[c.name] = sympy.Add(*[v for v in values if v is not pd.NA])
        else:
            totals[c.name] = _total(c, values)
    totals.update((t.name, extra.get(t.name)) for t in schema.totals())
    return totals


@dataclass
class SymbolicSizes:
    """What a symbolic report keeps to evaluate itself at concrete sizes (``Report.at``)."""

    symbols: dict  # name -> sympy Symbol
    graph: nx.DiGraph  # the first probe's graph, with symbolic shapes
    records: list  # the nodes' records, with sympy counts
    constraints: list  # (node, a, b): the model builds only where a == b
    convention: Any
    batch_size: int
    strict: bool
    layout: tuple
    probes: list = field(default_factory=list)  # the probe sizes, for the record

    def checked_sizes(self, sizes: dict) -> dict:
        names = list(self.symbols)
        bad = [v for v in sizes.values()
               if isinstance(v, bool) or not hasattr(v, "__index__") or int(v) < 1]
        if set(sizes) != set(names) or bad:
            raise ShapeError(
                f"at() needs a positive integer size for each symbol {names}; received "
                f"{sizes}."
            )
        return {k: int(v) for k, v in sizes.items()}

    def concrete_graph(self, sizes: dict) -> nx.DiGraph:
        """The graph at ``sizes``: every shape substituted, no Keras involved."""
        from modelstats.graph import _check_sizes_positive

        evaluate = _Evaluator({self.symbols[name]: value for name, value in sizes.items()})
        for node_id, a, b in self.constraints:
            if evaluate(a) != evaluate(b):
                raise ShapeError(
                    f"At {sizes} the model does not build: layer '{node_id}' joins the sizes "
                    f"{a} = {evaluate(a)} and {b} = {evaluate(b)}, which must be equal."
                )
        graph = self.graph.copy()

        def concrete(shapes):
            return [tuple(evaluate(d) for d in s) for s in shapes]

        for _, data in graph.nodes(data=True):
            data["input_shapes"] = concrete(data["input_shapes"])
            data["output_shapes"] = concrete(data["output_shapes"])
        for _, _, edge in graph.edges(data=True):
            edge["shapes"] = concrete(edge["shapes"])
        _check_sizes_positive(graph)
        return graph

    def at(self, report: Any, sizes: dict) -> Any:
        """The concrete report at ``sizes`` (see :meth:`modelstats.Report.at`)."""
        from modelstats.cost import node_costs
        from modelstats.propagation import propagate
        from modelstats.report import Report, _cost_columns, _field_columns, _frame

        sizes = self.checked_sizes(sizes)
        graph = self.concrete_graph(sizes)
        evaluate = _Evaluator({self.symbols[name]: value for name, value in sizes.items()})
        records = [_with_numbers(r, {k: evaluate(v) for k, v in _numbers(r).items()})
                   for r in self.records]
        if any(r.status == "unsupported" for r in records):
            # A row without a formula is counted by its rule at these sizes, as analyze does.
            numeric = node_costs(graph, self.convention, _warn=False)
            records = [n if r.status == "unsupported" else r for r, n in zip(records, numeric)]
        columns = _cost_columns(graph, records, self.batch_size, self.layout)
        propagation = None
        rf_input = report.totals.get("rf_input")
        if rf_input is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the symbolic report has warned already
                propagation = propagate(graph, rf_input, strict=self.strict)
            columns.update(_field_columns(propagation, graph.nodes, self.layout))
        table = _frame(graph, columns, self.layout)
        partial = any(r.status == "unsupported" for r in records)
        table.attrs.update({k: v for k, v in report.layers.attrs.items() if k != "symbols"})
        table.attrs["partial"] = partial
        extra = {
            "partial": partial,
            "unsupported": sorted(set(table.loc[table["status"] == "unsupported", "type"])),
            "batch_size": self.batch_size,
            "rf_input": rf_input,
        }
        return Report(table, _totals(table, self.layout, extra), report.convention, graph,
                      propagation)


# -- entry points ---------------------------------------------------------------------------------

def _derive(model: Any, input_shape: Any, expand_nested: bool,
            probes: Optional[Sequence[Mapping]], training: bool) -> tuple[_Deriver, list, dict]:
    if training:
        raise OptionError("training=True is not available with symbolic sizes yet; count a "
                          "training step at concrete sizes.")
    if isinstance(model, nx.DiGraph):
        raise OptionError(
            "Symbolic sizes need the Keras model (it is built again at probe sizes), not a "
            "graph."
        )
    if not expand_nested:
        raise OptionError(
            "Symbolic sizes count the expanded graph; pass expand_nested=True (the default)."
        )
    if not _SHAPE_RULES:
        _builtin_shape_rules()
    parsed = InputShapes.parse(input_shape, symbols=True)
    symbols = _symbols(parsed)
    _check_fixed(model, parsed)
    built = _build_probes(model, parsed, _probe_values(list(symbols), probes), expand_nested)
    _aligned(built)
    deriver = _Deriver(built, symbols, derive=len(built) - 1)  # the last probe is held out
    deriver.run()
    deriver.verify()
    return deriver, built, symbols


def _symbolic_graph(deriver: _Deriver) -> nx.DiGraph:
    """The first probe's graph with every shape symbolic."""
    graph = deriver.graph.copy()
    shapes = deriver.shapes
    for node_id, data in graph.nodes(data=True):
        data["output_shapes"] = list(shapes[node_id])
        data["input_shapes"] = [shapes[src][index] for src, index in data["inputs"]]
    for src, _, edge in graph.edges(data=True):
        edge["shapes"] = [shapes[src][index] for index in edge["output_indices"]]
    return graph


@dataclass
class _Counted:
    batch_size: int
    convention: Any
    deriver: _Deriver
    built: list
    symbols: dict
    graph: nx.DiGraph
    records: list


def _count(model, input_shape, batch_size, strict, convention, expand_nested, probes, training,
           options) -> _Counted:
    from modelstats import schema
    from modelstats.report import _convention

    batch_size = schema.check_batch_size(batch_size)
    chosen = _convention(convention, options)
    deriver, built, symbols = _derive(model, input_shape, expand_nested, probes, training)
    graph = _symbolic_graph(deriver)
    records = _costs(deriver, built, graph, chosen, strict)
    return _Counted(batch_size, chosen, deriver, built, symbols, graph, records)


def count_flops(
    model: Any,
    *,
    input_shape: Any,
    batch_size: int = 1,
    strict: bool = False,
    convention: Any = None,
    expand_nested: bool = True,
    training: bool = False,
    probes: Optional[Sequence[Mapping[str, int]]] = None,
    **options: bool,
) -> pd.DataFrame:
    """:func:`modelstats.count_flops` with symbolic sizes: ``macs``, ``flops``, ``activations``,
    ``activation_bytes`` (and the other per-sample counts) are sympy expressions of the sizes.

    Parameters
    ----------
    model : keras.Model
    input_shape : tuple, list of tuples or dict
        Shapes without batch in which strings name sizes: ``("H", "W", 3)``, ``("T", 64)``.
        One name used twice is one size (``("S", "S", 3)``: square images). A symbol can stand
        only for a size the model leaves None.
    probes : list of dict, optional
        The sizes the formulas are derived and verified at (at least 3; the last one only
        verifies), e.g. ``[{"H": 96, "W": 128}, ...]`` for a model that needs multiples of 32.
        Default: see :data:`DEFAULT_PROBES`.
    batch_size, strict, convention, expand_nested, **options
        As for :func:`modelstats.count_flops`; ``expand_nested`` must be True and
        ``training`` False.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`modelstats.count_flops`; the counts hold sympy expressions
        (object dtype, ``<NA>`` where unsupported), the shapes sympy sizes, and
        ``table["macs"].sum()`` is the total. ``attrs["symbols"]`` maps each name to its sympy
        Symbol (a positive integer).

    Raises
    ------
    ShapeError
        A symbol stands for a size the model fixes or its weights depend on, or a layer's sizes
        have no formula; the message names the layer.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((None, None, 3))
    >>> y = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False,
    ...                         name="conv")(x)
    >>> table = modelstats.count_flops(keras.Model(x, y), input_shape=("H", "W", 3))
    >>> table.loc["conv", "macs"]  # ceil(H/2)*ceil(W/2) positions * 3*3 taps * 3 in * 8 out
    216*ceiling(H/2)*ceiling(W/2)
    >>> H, W = table.attrs["symbols"].values()
    >>> table["macs"].sum().subs({H: 97, W: 131})  # 49 * 66 * 216
    698544
    """
    from modelstats import schema
    from modelstats.report import _cost_columns

    counted = _count(model, input_shape, batch_size, strict, convention, expand_nested, probes,
                     training, options)
    layout = schema.layout()
    columns = _cost_columns(counted.graph, counted.records, counted.batch_size, layout)
    frame = _table(counted.graph, columns, layout)
    frame.attrs.update({
        "convention": counted.convention.describe(),
        "partial": any(r.status == "unsupported" for r in counted.records),
        "batch_size": counted.batch_size,
        "symbols": dict(counted.symbols),
    })
    return frame


class _Fields:
    """Receptive fields of a symbolic report, propagated at every probe: the values all probes
    agree on, None where they differ (they depend on the input size). Boxes need sizes."""

    def __init__(self, built: list[_Probe], input: Optional[str], strict: bool, symbols: dict):
        from modelstats.propagation import propagate

        self.propagations = [propagate(built[0].graph, input, strict=strict)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each probe would repeat the first one's warnings
            self.propagations += [propagate(p.graph, input, strict=strict) for p in built[1:]]
        self.input_node = self.propagations[0].input_node
        self.n_axes = self.propagations[0].n_axes
        self.names = list(symbols)

    def columns(self, nodes, layout: Sequence) -> dict:
        """The receptive-field columns: a value where every probe gives the same, else None."""
        from modelstats.report import _field_columns

        tables = [_field_columns(p, nodes, layout) for p in self.propagations]
        return {
            name: [v if all(t[name][i] == v for t in tables[1:]) else None
                   for i, v in enumerate(values)]
            for name, values in tables[0].items()
        }

    def field(self, node_id: str) -> Any:
        found = [p.field(node_id) for p in self.propagations]

        def agreed(attribute):
            values = [getattr(f, attribute) for f in found]
            if any(v is None or len(v) != len(values[0]) for v in values):
                return values[0] if all(v == values[0] for v in values) else None
            return tuple(v if all(w[a] == v for w in values) else None
                         for a, v in enumerate(values[0]))

        return replace(found[0], size=agreed("size"), stride=agreed("stride"),
                       padding=agreed("padding"), _propagation=self)

    def box(self, node_id: str, position: Any, clip: bool = False) -> Any:
        raise ShapeError(
            f"The boxes of '{node_id}' depend on the input size; evaluate the report at sizes "
            f"first: report.at({', '.join(f'{n}=...' for n in self.names)})."
        )


def analyze(
    model: Any,
    *,
    input_shape: Any,
    batch_size: int = 1,
    strict: bool = False,
    input: Optional[str] = None,
    convention: Any = None,
    expand_nested: bool = True,
    training: bool = False,
    probes: Optional[Sequence[Mapping[str, int]]] = None,
    **options: bool,
) -> Any:
    """:func:`modelstats.analyze` with symbolic sizes: a :class:`~modelstats.Report` whose
    counts and totals are sympy expressions; :meth:`~modelstats.Report.at` evaluates it.

    The receptive-field columns hold the value every probe size agrees on (the size and stride
    of a convolutional net's fields do not depend on the input size) and are missing where the
    probes differ (the padding of a "same" layer with a stride depends on the size's parity);
    ``report.at(...)`` has them all. Parameters as for :func:`count_flops`.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((None, None, 3))
    >>> y = keras.layers.Conv2D(8, 3, strides=2, name="conv")(x)  # "valid" padding
    >>> report = modelstats.analyze(keras.Model(x, y), input_shape=("H", "W", 3))
    >>> report.totals["macs"]  # (floor((H-3)/2)+1)*(floor((W-3)/2)+1) * 3*3*3*8
    216*(floor(H/2 - 3/2) + 1)*(floor(W/2 - 3/2) + 1)
    >>> report.layers.loc["conv", ["rf_size_y", "rf_stride_y", "rf_padding_y"]].tolist()
    [3, 2, 0]
    >>> report.at(H=97, W=131).totals["macs"]  # 48 * 65 * 216
    673920
    """
    from modelstats import schema
    from modelstats.propagation import axis_names, default_field_input, spatial_inputs
    from modelstats.report import Report, _cost_columns

    counted = _count(model, input_shape, batch_size, strict, convention, expand_nested, probes,
                     training, options)
    graph, first = counted.graph, counted.built[0].graph
    spatial = spatial_inputs(first)
    input = default_field_input(first, input)
    fields = _Fields(counted.built, input, strict, counted.symbols) if spatial or input else None
    layout = schema.layout(None if fields is None else axis_names(fields.n_axes))
    columns = _cost_columns(graph, counted.records, counted.batch_size, layout)
    if fields is not None:
        columns.update(fields.columns(graph.nodes, layout))
    table = _table(graph, columns, layout)
    partial = any(r.status == "unsupported" for r in counted.records)
    table.attrs.update({"convention": counted.convention.describe(), "partial": partial,
                        "batch_size": counted.batch_size, "symbols": dict(counted.symbols)})
    extra = {
        "partial": partial,
        "unsupported": sorted(set(table.loc[table["status"] == "unsupported", "type"])),
        "batch_size": counted.batch_size,
        "rf_input": None if fields is None else fields.input_node,
    }
    state = SymbolicSizes(
        symbols=dict(counted.symbols), graph=graph, records=counted.records,
        constraints=list(counted.deriver.constraints), convention=counted.convention,
        batch_size=counted.batch_size, strict=strict, layout=layout,
        probes=[p.values for p in counted.built],
    )
    return Report(table, _totals(table, layout, extra), counted.convention.describe(), graph,
                  fields, symbolic=state)
