"""The backend fallback: counting a call that cannot run on Keras symbolic tensors.

modelstats traces a layer without a rule by calling it on Keras symbolic tensors
(:func:`modelstats.graph.to_networkx`). Some calls refuse them: code written with ``tf.*`` or
``jnp.*``, a layer returning ``(x, None)``, an output computed from weights alone, a keyword
argument (``cache=``) that Keras' symbolic call does not take, a sublayer built for another
shape. Such a call is traced here under the active backend instead, at the node's input sizes
(batch 1), and its cost is read from the operations it really runs:

- **TensorFlow**: the ``FuncGraph`` of a ``tf.function`` of the call, on ``tf.TensorSpec``\\ s;
- **JAX**: ``jax.make_jaxpr`` of the call;
- any other backend: :class:`~modelstats.registry.Unsupported`, with the reason.

The call runs inside ``keras.StatelessScope``: every variable it reads is an extra input of the
trace (a ``Placeholder`` / a jaxpr input), so no weight is read, initialised or captured, and an
operand that comes from a weight is known as such.

What is counted (per sample; docs/custom_layers.md, "Backend fallback"):

- **MACs** of products: ``MatMul``, ``BatchMatMul``/``V2``/``V3``, ``Einsum`` (two operands, as
  :func:`modelstats.formulas.einsum_macs`), ``XlaDot``/``XlaDotV2``; ``Conv2D``, ``Conv3D``,
  ``Conv``, ``DepthwiseConv2dNative`` over output positions; the transposed convolutions
  ``Conv2DBackpropInput``, ``Conv3DBackpropInputV2`` and
  ``DepthwiseConv2dNativeBackpropInput`` over input positions (as the layer rules count them).
  JAX: ``dot_general`` and ``conv_general_dilated`` (transposed when ``lhs_dilation`` > 1).
- **Elementwise FLOPs**, per output element, from :data:`TF_ELEMENTWISE` /
  :data:`JAX_ELEMENTWISE` (arithmetic, comparisons and selects 1; fused activations as the
  activation rules count them: ``Sigmoid`` 4, ``Softmax`` 5...); reductions one per input
  element; pooling one per window tap per output element; ``BiasAdd``, and an add of a
  weight to what the call computes from its inputs, one bias add per output element.
- **Free**: :data:`TF_FREE` / :data:`JAX_FREE`, copies and views (reshape, transpose, slice,
  gather, concatenate, cast, constants, ...).
- **Control flow**: function calls (``PartitionedCall``, ``StatefulPartitionedCall``; ``pjit``,
  ``custom_jvp_call``...) count their body once; a ``While`` counts its body as many times as
  its static trip count (read from a ``counter < bound`` condition with a constant start, step
  and bound), a ``scan`` its ``length``; an ``If``/``Case``/``cond`` whose branches all cost the
  same counts one branch.

Anything else (an operation not in these tables, a loop whose trip count cannot be read,
branches of different cost, a size unknown in the trace) raises
:class:`~modelstats.registry.Unsupported` naming it: the node stays unsupported, never guessed.
So does an output that other nodes read when the trace gives it another shape than the graph
(where running the call failed and the graph kept the layer's ``compute_output_shape``): its
readers were sized wrong.

For a training step, each product is split as :class:`~modelstats.registry.Cost` expects:
the operands are followed back to the call's inputs and variables, so a product of an input by
a weight is plain MACs, of a weight by a tensor the call computed from weights is
``state_macs``, and of two computed tensors is ``pair_macs``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from modelstats.formulas import einsum_macs
from modelstats.registry import Cost, Unsupported

__all__ = [
    "BackendTrace",
    "trace_node",
    "count_tf_graph",
    "count_jaxpr",
    "BACKEND_NAMES",
    "TF_ELEMENTWISE",
    "TF_FREE",
    "JAX_ELEMENTWISE",
    "JAX_FREE",
]

#: How the note names each backend.
BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX"}

# What an operand depends on, as bits: the call's inputs, its variables. A constant is 0.
_INPUT, _WEIGHT = 1, 2

_ACTIVATIONS = {  # fused activation ops: FLOPs per element as the activation rules count them
    "Relu": 1, "Relu6": 2, "LeakyRelu": 2, "Elu": 3, "Selu": 4, "Sigmoid": 4, "Tanh": 1,
    "Softplus": 3, "Softsign": 3, "Softmax": 5, "LogSoftmax": 5,
}
#: TensorFlow ops counted per output element, with their FLOPs per element.
TF_ELEMENTWISE: dict[str, int] = {
    **{name: 1 for name in (
        "Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "FloorDiv", "FloorMod",
        "TruncateDiv", "TruncateMod", "Mod", "Maximum", "Minimum", "Neg", "Abs", "Sign",
        "Square", "Sqrt", "Rsqrt", "Reciprocal", "Inv", "Exp", "Expm1", "Log", "Log1p", "Pow",
        "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Atan2", "Sinh", "Cosh", "Asinh", "Acosh",
        "Atanh", "Erf", "Erfc", "Erfinv", "Floor", "Ceil", "Round", "Rint", "Xlogy", "Xdivy",
        "MulNoNan", "IsNan", "IsInf", "IsFinite", "Equal", "NotEqual", "Greater",
        "GreaterEqual", "Less", "LessEqual", "LogicalAnd", "LogicalOr", "LogicalNot",
        "Select", "SelectV2",
    )},
    "SquaredDifference": 2,  # subtract, square
    "ClipByValue": 2,  # max, min
    **_ACTIVATIONS,
}
# Reductions: one FLOP per input element (as the keras.ops reduction rules).
_TF_REDUCTIONS = frozenset({"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax",
                            "ArgMin", "EuclideanNorm"})
_TF_POOLING = frozenset({"MaxPool", "AvgPool", "MaxPool3D", "AvgPool3D"})
#: TensorFlow ops that do no arithmetic: copies, views, shapes, constants, variable reads.
TF_FREE = frozenset({
    "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN", "NoOp",
    "Snapshot", "Reshape", "Transpose", "ConcatV2", "Concat", "Pack", "Unpack",
    "StridedSlice", "Slice", "Gather", "GatherV2", "GatherNd", "ResourceGather",
    "BroadcastTo", "BroadcastArgs", "ExpandDims", "Squeeze", "Shape", "ShapeN", "Size", "Rank",
    "Fill", "Range", "ZerosLike", "OnesLike", "Empty", "Tile", "Pad", "PadV2", "MirrorPad",
    "Split", "SplitV", "Cast", "Bitcast", "StopGradient", "PreventGradient", "CheckNumerics",
    "EnsureShape", "ReadVariableOp", "ReverseV2", "OneHot", "DepthToSpace", "SpaceToDepth",
    "SpaceToBatchND", "BatchToSpaceND", "MatrixBandPart", "TensorScatterUpdate", "Assert",
    "XlaDynamicSlice", "XlaDynamicUpdateSlice", "TensorListReserve", "TensorListFromTensor",
    "TensorListStack", "TensorListGetItem", "TensorListSetItem", "TensorListLength",
    "TensorListElementShape", "TensorListPushBack", "TensorListPopBack",
})
_TF_CALLS = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
_TF_WHILE = frozenset({"While", "StatelessWhile"})
_TF_IF = frozenset({"If", "StatelessIf"})
_TF_CASE = frozenset({"Case", "StatelessCase"})

#: JAX primitives counted per output element, with their FLOPs per element.
JAX_ELEMENTWISE: dict[str, int] = {
    **{name: 1 for name in (
        "add", "sub", "mul", "div", "rem", "max", "min", "neg", "abs", "sign", "floor", "ceil",
        "round", "exp", "exp2", "expm1", "log", "log1p", "tanh", "sin", "cos", "tan", "asin",
        "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "sqrt", "rsqrt",
        "cbrt", "pow", "integer_pow", "square", "erf", "erfc", "erf_inv", "eq", "ne", "gt",
        "ge", "lt", "le", "and", "or", "not", "xor", "select_n", "is_finite", "nextafter",
        "add_any",
    )},
    "logistic": _ACTIVATIONS["Sigmoid"],
    "clamp": 2,  # max, min
}
_JAX_REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod",
                             "reduce_and", "reduce_or", "argmax", "argmin"})
_JAX_POOLING = frozenset({"reduce_window_max", "reduce_window_min", "reduce_window_sum"})
#: JAX primitives that do no arithmetic.
JAX_FREE = frozenset({
    "reshape", "broadcast_in_dim", "transpose", "squeeze", "expand_dims", "concatenate",
    "slice", "dynamic_slice", "dynamic_update_slice", "gather", "iota", "convert_element_type",
    "copy", "copy_p", "pad", "rev", "reduce_precision", "split", "device_put",
})
# Primitives running a sub-jaxpr once, and the parameter holding it.
_JAX_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr",
              "core_call": "call_jaxpr", "remat": "jaxpr", "remat2": "jaxpr",
              "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
              "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}


@dataclass(frozen=True)
class BackendTrace:
    """What a backend trace of one call found.

    Attributes
    ----------
    backend : str
        ``"tensorflow"`` or ``"jax"``.
    cost : Cost
        The call's work, for the leading sizes it was traced at (1 per model sample).
    output_shapes : list of tuple
        The shapes of the call's tensor outputs, without the leading axis.
    """

    backend: str
    cost: Cost
    output_shapes: list

    @property
    def note(self) -> str:
        """``counted from the TensorFlow graph of its call`` (or ``JAX trace``)."""
        what = "graph" if self.backend == "tensorflow" else "trace"
        return f"counted from the {BACKEND_NAMES[self.backend]} {what} of its call"


def trace_node(graph: Any, node_id: str) -> BackendTrace:
    """Trace one node's call under the active Keras backend and count its work.

    Each input gets its producer's shape with the producer's leading size (1 for a model
    sample; more inside a traced call whose leading axis holds several, see
    ``batch_factor``), so the count is the call's work per sample, like a rule's.

    Parameters
    ----------
    graph : networkx.DiGraph
        A graph from :func:`modelstats.to_networkx`.
    node_id : str
        The node to trace.

    Returns
    -------
    BackendTrace

    Raises
    ------
    Unsupported
        When the call cannot be traced or counted, with the reason.

    Examples
    --------
    >>> import keras, tensorflow as tf, modelstats
    >>> class TfDense(keras.layers.Layer):
    ...     def build(self, input_shape):
    ...         self.w = self.add_weight(shape=(input_shape[-1], 3))
    ...     def call(self, x):
    ...         return tf.linalg.matmul(x, self.w)  # TensorFlow code: not symbolic
    >>> x = keras.Input((4, 5))
    >>> g = modelstats.to_networkx(keras.Model(x, TfDense(name="tf_dense")(x)))
    >>> traced = trace_node(g, "tf_dense")
    >>> traced.cost.macs, traced.output_shapes  # 4 rows x 5 x 3
    (60, [(4, 3)])
    >>> traced.note
    'counted from the TensorFlow graph of its call'
    """
    from modelstats.adapters import adapter_for_call

    data = graph.nodes[node_id]
    shapes = []
    for src, index in data["inputs"]:
        producer = graph.nodes[src]
        shape = (producer.get("batch_factor", 1), *producer["output_shapes"][index])
        if not all(isinstance(d, int) for d in shape):
            raise Unsupported(f"a backend trace needs every size; input {shape[1:]} has an "
                              "unknown or symbolic one")
        shapes.append(shape)
    adapter = adapter_for_call(data["operation"])
    try:
        run, dtypes, variables = adapter.backend_function(data["keras_node"])
    except NotImplementedError as exc:
        raise Unsupported(str(exc)) from None
    backend = adapter.backend_name()
    if backend == "tensorflow":
        traced = _trace_tensorflow(run, shapes, dtypes, variables)
    elif backend == "jax":
        traced = _trace_jax(run, shapes, dtypes, variables)
    else:
        raise Unsupported(f"no backend trace for the {backend} backend (TensorFlow and JAX "
                          "only)")
    _check_read_outputs(graph, node_id, traced.output_shapes)
    return traced


def _check_read_outputs(graph: Any, node_id: str, traced: list) -> None:
    """Raise Unsupported when an output that other nodes read has another shape in the call
    than the graph gives it.

    The graph sizes a call that Keras symbolic tensors refused by running it
    (modelstats.graph), and every node reading its outputs from that; where running it
    fails, it keeps the layer's own shape inference (``compute_output_shape``), which can
    disagree with the call (keras-hub XLNet's ``ContentAndQueryEmbedding`` declares its
    relative position table ``(batch, 1, hidden)`` and returns ``(batch, 2 x sequence,
    hidden)``). The readers would then be counted at the wrong sizes, silently: the node is
    left unsupported instead, naming both shapes. A size unknown on either side is not
    compared; outputs nobody reads are not checked.
    """
    declared = graph.nodes[node_id]["output_shapes"]
    if len(declared) != len(traced):  # not aligned (an output that is not a tensor)
        return
    read = sorted({index for _, _, edge in graph.out_edges(node_id, data=True)
                   for index in edge.get("output_indices", ())})
    for index in read:
        if index < len(declared) and not _compatible(declared[index], traced[index]):
            raise Unsupported(
                f"its output {index} has shape {tuple(traced[index])} in its call but "
                f"{tuple(declared[index])} in the graph (the layer's shape inference, e.g. its "
                "compute_output_shape, disagrees with its call), and the nodes that read it "
                "were sized from the latter: they would be counted at the wrong sizes"
            )


def _compatible(declared: Sequence[Any], traced: Sequence[Any]) -> bool:
    """Same rank, and equal wherever both sizes are known integers."""
    if len(declared) != len(traced):
        return False
    return all(a == b for a, b in zip(declared, traced)
               if isinstance(a, int) and isinstance(b, int))


def _failed(backend: str, exc: BaseException) -> Unsupported:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Unsupported(f"its call could not be traced under {BACKEND_NAMES[backend]} either "
                       f"({type(exc).__name__}: {first})")


def _flat_call(run: Callable, inputs: int) -> Callable:
    def call(*tensors):
        return run(list(tensors[:inputs]), list(tensors[inputs:]))

    return call


def _without_leading(shapes: Sequence[Sequence[Any]]) -> list:
    return [tuple(int(d) if d is not None else None for d in shape[1:]) for shape in shapes]


# -- TensorFlow ----------------------------------------------------------------------------------

def _trace_tensorflow(run: Callable, shapes: list, dtypes: list, variables: list) -> BackendTrace:
    import tensorflow as tf

    specs = [tf.TensorSpec(shape, dtype) for shape, dtype in zip(shapes, dtypes)]
    specs += [tf.TensorSpec(shape, dtype) for shape, dtype in variables]
    try:
        # autograph off: Python control flow on a tensor is refused, not turned into a tf.cond
        concrete = tf.function(_flat_call(run, len(shapes)), autograph=False) \
            .get_concrete_function(*specs)
    except Exception as exc:  # noqa: BLE001 - the reason the node stays unsupported
        raise _failed("tensorflow", exc) from None
    kinds = [_INPUT] * len(shapes) + [_WEIGHT] * len(variables)
    cost = count_tf_graph(concrete.graph, kinds)
    outputs = [t for t in tf.nest.flatten(concrete.structured_outputs) if tf.is_tensor(t)]
    return BackendTrace("tensorflow", cost, _without_leading([t.shape.as_list() for t in outputs]))


def count_tf_graph(graph: Any, kinds: Optional[Sequence[int]] = None) -> Cost:
    """The work of running a TensorFlow ``FuncGraph`` once, from its ops and static shapes.

    Parameters
    ----------
    graph : FuncGraph
        E.g. ``tf.function(f).get_concrete_function(*specs).graph``.
    kinds : sequence of int, optional
        For each of ``graph.inputs`` in order: 1 for a call input, 2 for a variable, 0 for a
        constant; the split of the MACs between plain, ``state_macs`` and ``pair_macs``
        follows from them. Inputs past the sequence are captures (2 for a resource, else 0).
        By default every input is a call input.

    Returns
    -------
    Cost

    Raises
    ------
    Unsupported
        For an operation without a count, a loop without a static trip count, branches of
        different costs or an unknown size.

    Examples
    --------
    A (2, 3) x (3, 4) product, a bias add and a ReLU:

    >>> import tensorflow as tf
    >>> def f(x, w, b):
    ...     return tf.nn.relu(tf.nn.bias_add(tf.linalg.matmul(x, w), b))
    >>> specs = tf.TensorSpec((2, 3)), tf.TensorSpec((3, 4)), tf.TensorSpec((4,))
    >>> g = tf.function(f, autograph=False).get_concrete_function(*specs).graph
    >>> count_tf_graph(g, [1, 2, 2])  # 2*4 outputs x 3 MACs; 8 bias adds; 8 max(x, 0)
    Cost(macs=24, bias=8, elementwise=8, norm=0, state_macs=0, pair_macs=0)
    """
    counter = _TFCounter(graph)
    if kinds is None:
        kinds = [_INPUT] * len(graph.inputs)
    cost, _ = counter.run(graph, list(kinds))
    return cost


def _static_shape(tensor: Any, op: Any) -> tuple:
    dims = tensor.shape.as_list() if tensor.shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise Unsupported(f"the {op.type} op '{op.name}' has a tensor of unknown size "
                          f"{tensor.shape} in the trace")
    return tuple(dims)


def _split(macs: int, a: int, b: int) -> Cost:
    """A product's MACs, split by what its operands depend on (kind bits, see _INPUT)."""
    if (a & _INPUT and b & _INPUT) or (a == _WEIGHT and b == _WEIGHT):
        return Cost(macs=macs, pair_macs=macs)  # two activations, or two weights
    if (a == _WEIGHT and b == _INPUT | _WEIGHT) or (b == _WEIGHT and a == _INPUT | _WEIGHT):
        return Cost(macs=macs, state_macs=macs)  # a weight by what the call computed from one
    return Cost(macs=macs)  # an input (or a constant) by a weight or a constant


def _adds_a_weight(kinds: Sequence[int]) -> bool:
    """An add of a weight (and of nothing computed from one) to what the call computes
    from its inputs: a bias addition."""
    return len(kinds) == 2 and _WEIGHT in kinds and any(k & _INPUT for k in kinds)


def _einsum_labels(equation: str) -> tuple[list, str]:
    """Operand specs and output spec of an einsum, with an implicit output made explicit."""
    equation = equation.replace(" ", "")
    lhs, arrow, out = equation.partition("->")
    specs = lhs.split(",")
    if not arrow:  # implicit: the labels used once, sorted, after any ellipsis
        letters = Counter(c for spec in specs for c in spec.replace("...", ""))
        out = ("..." if any("..." in s for s in specs) else "") + \
            "".join(sorted(c for c, n in letters.items() if n == 1))
    return specs, out


def _einsum_macs(equation: str, shapes: Sequence[tuple], op: Any) -> int:
    specs, out = _einsum_labels(equation)
    if len(specs) != 2:
        raise Unsupported(f"the Einsum op '{op.name}' has {len(specs)} operands "
                          f"({equation}); only products of two are counted")
    if any("..." in s for s in specs) and "..." not in out:
        raise Unsupported(f"the Einsum op '{op.name}' sums over its ellipsis ({equation})")
    return einsum_macs(f"{','.join(specs)}->{out}", shapes)


class _TFCounter:
    """Walks a FuncGraph and the function bodies it calls, in topological order."""

    def __init__(self, root: Any) -> None:
        self.root = root
        self.bodies: dict[str, Any] = {}

    def body(self, graph: Any, name: str) -> Any:
        if name not in self.bodies:
            function = None
            for owner in (graph, self.root):
                try:
                    function = owner._get_function(name)  # TF keeps no public lookup
                except Exception:  # noqa: BLE001 - try the next owner
                    function = None
                if function is not None:
                    break
            if function is None:
                raise Unsupported(f"the function '{name}' called in the trace was not found")
            self.bodies[name] = function.graph
        return self.bodies[name]

    def run(self, graph: Any, kinds: list) -> tuple[Cost, list]:
        """The cost of one run of ``graph`` with inputs of ``kinds``, and its outputs' kinds."""
        kind: dict = {}
        for position, tensor in enumerate(graph.inputs):
            if position < len(kinds):
                kind[tensor.ref()] = kinds[position]
            else:  # a capture: a variable's resource, or a constant
                kind[tensor.ref()] = _WEIGHT if tensor.dtype.name == "resource" else 0
        total = Cost()
        for op in graph.get_operations():
            if op.type == "Placeholder":  # an input: its kind is given above
                continue
            inputs = [kind.get(t.ref(), 0) for t in op.inputs]
            cost, outputs = self.op(graph, op, inputs)
            total += cost
            merged = 0
            for k in inputs:
                merged |= k
            for position, tensor in enumerate(op.outputs):
                kind[tensor.ref()] = outputs[position] if outputs is not None else merged
        return total, [kind.get(t.ref(), 0) for t in graph.outputs]

    def op(self, graph: Any, op: Any, kinds: list) -> tuple[Cost, Optional[list]]:
        """Cost of one op; the kinds of its outputs where they are not the union of its
        inputs' (function calls)."""
        kind = op.type
        if kind in TF_FREE:
            return Cost(), None
        if kind in _TF_CALLS:
            return self.run(self.body(graph, op.get_attr("f").name), kinds)
        if kind in _TF_WHILE:
            return self.loop(graph, op, kinds)
        if kind in _TF_IF or kind in _TF_CASE:
            names = ([op.get_attr("then_branch").name, op.get_attr("else_branch").name]
                     if kind in _TF_IF else [b.name for b in op.get_attr("branches")])
            return self.branches(graph, op, names, kinds[1:])
        if kind == "BiasAdd" or (kind in ("Add", "AddV2") and _adds_a_weight(kinds)):
            return Cost(bias=math.prod(_static_shape(op.outputs[0], op))), None
        if kind in TF_ELEMENTWISE:
            return Cost(elementwise=TF_ELEMENTWISE[kind] * math.prod(
                _static_shape(op.outputs[0], op))), None
        if kind == "AddN":  # n - 1 adds per element
            return Cost(elementwise=(len(op.inputs) - 1)
                        * math.prod(_static_shape(op.outputs[0], op))), None
        if kind in _TF_REDUCTIONS:
            return Cost(elementwise=math.prod(_static_shape(op.inputs[0], op))), None
        if kind in _TF_POOLING:
            window = math.prod(op.get_attr("ksize"))
            return Cost(elementwise=window * math.prod(_static_shape(op.outputs[0], op))), None
        if kind == "FusedBatchNormV3" and not op.get_attr("is_training"):
            # inference: a scale and a shift per element, foldable like the layer's
            return Cost(norm=2 * math.prod(_static_shape(op.outputs[0], op))), None
        macs = self.product(op)
        if macs is not None:
            a, b = macs[1]
            return _split(macs[0], kinds[a], kinds[b]), None
        raise Unsupported(f"the TensorFlow op {kind} ('{op.name}') has no count in the "
                          "backend fallback")

    def product(self, op: Any) -> Optional[tuple[int, tuple[int, int]]]:
        """``(MACs, positions of the two operands)`` of a product op, None for another op."""
        kind = op.type
        out = _static_shape(op.outputs[0], op) if op.outputs else ()
        if kind == "MatMul":
            a = _static_shape(op.inputs[0], op)
            depth = a[0] if op.get_attr("transpose_a") else a[1]
            return math.prod(out) * depth, (0, 1)
        if kind in ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a = _static_shape(op.inputs[0], op)
            depth = a[-2] if op.get_attr("adj_x") else a[-1]
            return math.prod(out) * depth, (0, 1)
        if kind == "Einsum":
            shapes = [_static_shape(t, op) for t in op.inputs]
            equation = op.get_attr("equation")
            equation = equation.decode() if isinstance(equation, bytes) else equation
            return _einsum_macs(equation, shapes, op), (0, 1 if len(shapes) > 1 else 0)
        if kind in ("Conv2D", "Conv3D", "Conv"):
            kernel = _static_shape(op.inputs[1], op)  # spatial..., in per group, out
            return math.prod(out) * math.prod(kernel[:-2]) * kernel[-2], (0, 1)
        if kind == "DepthwiseConv2dNative":
            kernel = _static_shape(op.inputs[1], op)  # kh, kw, in, multiplier
            return math.prod(out) * math.prod(kernel[:-2]), (0, 1)
        if kind in ("Conv2DBackpropInput", "Conv3DBackpropInputV2"):
            # a transposed convolution: every input element times every tap and output
            # channel (over input positions, as the Conv2DTranspose rule counts)
            kernel = _static_shape(op.inputs[1], op)  # spatial..., out channels, in channels
            given = _static_shape(op.inputs[2], op)
            return math.prod(given) * math.prod(kernel[:-2]) * kernel[-2], (2, 1)
        if kind == "DepthwiseConv2dNativeBackpropInput":
            kernel = _static_shape(op.inputs[1], op)
            given = _static_shape(op.inputs[2], op)
            return math.prod(given) * math.prod(kernel[:-2]), (2, 1)
        if kind in ("XlaDot", "XlaDotV2"):
            lhs = _static_shape(op.inputs[0], op)
            contracting = _xla_contracting(op)
            return math.prod(out) * math.prod(lhs[d] for d in contracting), (0, 1)
        return None

    def branches(self, graph: Any, op: Any, names: list, kinds: list) -> tuple[Cost, list]:
        """Only one branch runs: counted when they all cost the same."""
        results = [self.run(self.body(graph, name), kinds) for name in names]
        costs = {cost for cost, _ in results}
        if len(costs) != 1:
            raise Unsupported(f"the {op.type} op '{op.name}' runs one of branches of "
                              f"different costs ({sorted(c.macs for c in costs)} MACs), "
                              "chosen at run time")
        outputs = [0] * len(results[0][1])
        for _, kinds_out in results:
            outputs = [a | b for a, b in zip(outputs, kinds_out)]
        return results[0][0], outputs

    def loop(self, graph: Any, op: Any, kinds: list) -> tuple[Cost, list]:
        """A ``While``: its body times the static trip count, its condition once more."""
        cond = self.body(graph, op.get_attr("cond").name)
        body = self.body(graph, op.get_attr("body").name)
        trips = _trip_count(op, cond, body)
        # what each loop variable depends on: its initial value, or anything the body
        # feeds back into it (a fixed point over the loop)
        state = list(kinds)
        for _ in range(len(state) + 1):
            _, fed_back = self.run(body, state)
            merged = [a | b for a, b in zip(state, fed_back)]
            if merged == state:
                break
            state = merged
        once, _ = self.run(body, state)
        test, _ = self.run(cond, state)
        return once.scaled(trips) + test.scaled(trips + 1), state


def _xla_contracting(op: Any) -> tuple:
    try:
        from tensorflow.compiler.xla import xla_data_pb2
    except ImportError:  # pragma: no cover - TensorFlow without its XLA protos
        raise Unsupported(f"the {op.type} op '{op.name}' needs XLA's protos to be read") \
            from None
    numbers = xla_data_pb2.DotDimensionNumbers()
    numbers.ParseFromString(op.get_attr("dimension_numbers"))
    return tuple(numbers.lhs_contracting_dimensions)


def _through_identity(tensor: Any) -> Any:
    while tensor.op.type in ("Identity", "Snapshot"):
        tensor = tensor.op.inputs[0]
    return tensor


def _constant(tensor: Any) -> Optional[int]:
    import tensorflow as tf

    value = tf.get_static_value(_through_identity(tensor))
    if value is None or getattr(value, "shape", ()) != ():
        return None
    return int(value)


def _trip_count(op: Any, cond: Any, body: Any) -> int:
    """How many times a ``While`` runs its body, read from its condition: every conjunct of
    the condition must be ``var < bound`` (or ``<=``, ``>``, ``>=``) where ``var`` is a loop
    variable with a constant start that the body steps by a constant, and ``bound`` a
    constant or a loop variable the body passes on unchanged. The loop runs until the first
    conjunct fails: the smallest of their counts. Anything else raises Unsupported."""
    refuse = (f"the {op.type} loop '{op.name}' has no static trip count (its condition is "
              "not a counter compared with a constant)")
    position = {t.ref(): i for i, t in enumerate(cond.inputs)}

    def conjuncts(tensor):
        tensor = _through_identity(tensor)
        if tensor.op.type == "LogicalAnd":
            return conjuncts(tensor.op.inputs[0]) + conjuncts(tensor.op.inputs[1])
        return [tensor]

    def loop_constant(tensor) -> Optional[int]:
        tensor = _through_identity(tensor)
        if tensor.op.type == "Const":
            return _constant(tensor)
        i = position.get(tensor.ref())
        if i is None or i >= len(body.outputs) or \
                _through_identity(body.outputs[i]).ref() != body.inputs[i].ref():
            return None  # not a loop variable the body passes on unchanged
        return _constant(op.inputs[i])

    def counter(tensor) -> Optional[tuple[int, int]]:
        """(start, step) of a loop variable the body steps by a positive constant."""
        i = position.get(_through_identity(tensor).ref())
        if i is None or i >= len(body.outputs):
            return None
        start = _constant(op.inputs[i])
        update = _through_identity(body.outputs[i])
        if start is None or update.op.type not in ("AddV2", "Add"):
            return None
        a, b = (_through_identity(t) for t in update.op.inputs)
        if b.ref() == body.inputs[i].ref():
            a, b = b, a
        step = _constant(b) if a.ref() == body.inputs[i].ref() else None
        return (start, step) if step is not None and step > 0 else None

    counts = []
    for test in conjuncts(cond.outputs[0]):
        kind = test.op.type
        if kind not in ("Less", "LessEqual", "Greater", "GreaterEqual"):
            raise Unsupported(refuse)
        left, right = test.op.inputs
        if kind in ("Greater", "GreaterEqual"):  # bound > var is var < bound
            left, right = right, left
        stepping, bound = counter(left), loop_constant(right)
        if stepping is None or bound is None:
            raise Unsupported(refuse)
        start, step = stepping
        if kind in ("Less", "Greater"):
            counts.append(max(0, -(-(bound - start) // step)))
        else:
            counts.append(max(0, (bound - start) // step + 1))
    if not counts:
        raise Unsupported(refuse)
    return min(counts)


# -- JAX ---------------------------------------------------------------------------------------

def _trace_jax(run: Callable, shapes: list, dtypes: list, variables: list) -> BackendTrace:
    import jax

    specs = [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in zip(shapes, dtypes)]
    specs += [jax.ShapeDtypeStruct(tuple(shape), dtype) for shape, dtype in variables]
    try:
        closed = jax.make_jaxpr(_flat_call(run, len(shapes)))(*specs)
    except Exception as exc:  # noqa: BLE001 - the reason the node stays unsupported
        raise _failed("jax", exc) from None
    kinds = [_INPUT] * len(shapes) + [_WEIGHT] * len(variables)
    cost = count_jaxpr(closed, kinds)
    return BackendTrace("jax", cost, _without_leading([a.shape for a in closed.out_avals]))


def count_jaxpr(jaxpr: Any, kinds: Optional[Sequence[int]] = None) -> Cost:
    """The work of running a jaxpr once, from its primitives and their shapes.

    Parameters
    ----------
    jaxpr : Jaxpr or ClosedJaxpr
        E.g. ``jax.make_jaxpr(f)(*specs)``.
    kinds : sequence of int, optional
        For each input variable: 1 for a call input, 2 for a variable, 0 for a constant (see
        :func:`count_tf_graph`). By default every input is a call input.

    Returns
    -------
    Cost

    Raises
    ------
    Unsupported
        For a primitive without a count, a ``while`` loop, branches of different costs.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> spec = jax.ShapeDtypeStruct
    >>> closed = jax.make_jaxpr(lambda x, w: jnp.tanh(x @ w))(spec((2, 3), "float32"),
    ...                                                       spec((3, 4), "float32"))
    >>> count_jaxpr(closed, [1, 2])  # 2*4 outputs x 3 MACs; 8 tanh
    Cost(macs=24, bias=0, elementwise=8, norm=0, state_macs=0, pair_macs=0)
    """
    inner = jaxpr.jaxpr if hasattr(jaxpr, "jaxpr") and not hasattr(jaxpr, "eqns") else jaxpr
    if kinds is None:
        kinds = [_INPUT] * len(inner.invars)
    cost, _ = _run_jaxpr(inner, list(kinds))
    return cost


def _open_jaxpr(value: Any) -> Any:
    return value.jaxpr if hasattr(value, "jaxpr") and not hasattr(value, "eqns") else value


def _aval_shape(var: Any, primitive: str) -> tuple:
    shape = getattr(getattr(var, "aval", None), "shape", None)
    if shape is None or not all(isinstance(d, int) for d in shape):
        raise Unsupported(f"the JAX primitive {primitive} has an operand of unknown size")
    return tuple(shape)


def _run_jaxpr(jaxpr: Any, kinds: list) -> tuple[Cost, list]:
    kind: dict = {}

    def read(var: Any) -> int:  # a Literal (a constant written in the equation) is 0
        return 0 if type(var).__name__ == "Literal" else kind.get(var, 0)

    for var, k in zip(jaxpr.invars, kinds):
        kind[var] = k
    for var in getattr(jaxpr, "constvars", ()):
        kind[var] = 0
    total = Cost()
    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        cost, outputs = _jax_eqn(eqn, inputs)
        total += cost
        merged = 0
        for k in inputs:
            merged |= k
        for position, var in enumerate(eqn.outvars):
            kind[var] = outputs[position] if outputs is not None else merged
    return total, [read(v) for v in jaxpr.outvars]


def _jax_eqn(eqn: Any, kinds: list) -> tuple[Cost, Optional[list]]:
    name = eqn.primitive.name
    params = eqn.params
    if name in JAX_FREE:
        return Cost(), None
    if name in _JAX_CALLS and _JAX_CALLS[name] in params:
        return _run_jaxpr(_open_jaxpr(params[_JAX_CALLS[name]]), kinds)
    if name == "scan":
        return _jax_scan(eqn, kinds)
    if name == "cond":
        results = [_run_jaxpr(_open_jaxpr(b), kinds[1:]) for b in params["branches"]]
        costs = {cost for cost, _ in results}
        if len(costs) != 1:
            raise Unsupported("a JAX cond runs one of branches of different costs, chosen at "
                              "run time")
        outputs = [0] * len(results[0][1])
        for _, out in results:
            outputs = [a | b for a, b in zip(outputs, out)]
        return results[0][0], outputs
    if name == "while":
        raise Unsupported("a JAX while loop: its trip count is not static in the trace")
    out = _aval_shape(eqn.outvars[0], name) if eqn.outvars else ()
    if name == "add" and _adds_a_weight(kinds):
        return Cost(bias=math.prod(out)), None
    if name in JAX_ELEMENTWISE:
        return Cost(elementwise=JAX_ELEMENTWISE[name] * math.prod(out)), None
    if name in _JAX_REDUCTIONS:
        return Cost(elementwise=math.prod(_aval_shape(eqn.invars[0], name))), None
    if name in _JAX_POOLING:
        return Cost(elementwise=math.prod(params["window_dimensions"]) * math.prod(out)), None
    if name == "dot_general":
        (contracting, _), _ = params["dimension_numbers"]
        lhs = _aval_shape(eqn.invars[0], name)
        return _split(math.prod(out) * math.prod(lhs[d] for d in contracting),
                      kinds[0], kinds[1]), None
    if name == "conv_general_dilated":
        return _split(_jax_conv_macs(eqn, out), kinds[0], kinds[1]), None
    raise Unsupported(f"the JAX primitive {name} has no count in the backend fallback")


def _jax_conv_macs(eqn: Any, out: tuple) -> int:
    params = eqn.params
    numbers = params["dimension_numbers"]
    lhs = _aval_shape(eqn.invars[0], "conv_general_dilated")
    rhs = _aval_shape(eqn.invars[1], "conv_general_dilated")
    out_feature, in_feature, *spatial = numbers.rhs_spec
    taps = math.prod(rhs[d] for d in spatial)
    if any(d != 1 for d in params.get("lhs_dilation") or ()):
        # a transposed convolution: every input element times every tap and output channel
        if params.get("batch_group_count", 1) != 1:
            raise Unsupported("a JAX transposed convolution with batch groups")
        return math.prod(lhs) * taps * rhs[out_feature] // params.get("feature_group_count", 1)
    return math.prod(out) * taps * rhs[in_feature]


def _jax_scan(eqn: Any, kinds: list) -> tuple[Cost, list]:
    params = eqn.params
    body = _open_jaxpr(params["jaxpr"])
    consts, carries = params["num_consts"], params["num_carry"]
    state = list(kinds)
    for _ in range(carries + 1):  # what each carry depends on: a fixed point over the loop
        _, out = _run_jaxpr(body, state)
        merged = state[:consts] + [a | b for a, b in
                                   zip(state[consts:consts + carries], out[:carries])] \
            + state[consts + carries:]
        if merged == state:
            break
        state = merged
    once, out = _run_jaxpr(body, state)
    return once.scaled(params["length"]), out
