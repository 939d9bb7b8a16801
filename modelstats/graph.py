"""Keras model -> ``networkx.DiGraph`` of operation calls.

A node is one *call* of an operation (a Keras ``Node``), not a layer object: a layer called at two
sites gives two nodes, so shared layers never create cycles. Nested Functional and Sequential models
are expanded in place, their inner input layers wired to the outer tensors. Everything here is
iterative: Keras' own graph builder recurses once per layer, modelstats never does.

:func:`to_networkx` runs in named steps: parse ``input_shape`` once (:class:`InputShapes`), find
the Functional describing the model (:func:`_graph_of`), walk it giving each call a node id and
expanding nested models (:func:`_walk`), infer shapes again for new input sizes
(inferred on the way, :func:`_new_input_shapes`), record each node's spatial axes (:func:`_assign_spatial_axes`) and
check sizes. Every access to Keras internals goes through :mod:`modelstats.adapters`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import networkx as nx

from modelstats._collector import collector_paused
from modelstats.adapters import ConstantOutputs
from modelstats.errors import ModelStatsError, NotAGraphModelError, ShapeError

__all__ = ["to_networkx", "find_node", "Shape", "InputShapes"]

Shape = tuple  # a tensor shape without the batch dimension; entries are int or None


def _any_unknown(shapes: Sequence[Shape]) -> bool:
    """Whether a size in ``shapes`` is unknown (None)."""
    for shape in shapes:  # (a loop: asked at every node, a generator costs more than the test)
        if None in shape:
            return True
    return False


def _any_unknown_or_empty(shapes: Sequence[Shape]) -> bool:
    """Whether a size in ``shapes`` is unknown (None) or zero."""
    for shape in shapes:
        if None in shape or 0 in shape:
            return True
    return False


# -- step 1: input_shape, parsed once ------------------------------------------------------------

@dataclass(frozen=True)
class InputShapes:
    """``input_shape`` as given: one shape, one per input in order, or shapes by input name.

    >>> InputShapes.parse((224, 224, 3)).positional
    ((224, 224, 3),)
    >>> InputShapes.parse({"image": (None, None, 3)}).by_name
    {'image': (None, None, 3)}
    """

    positional: Optional[tuple] = None
    by_name: Optional[dict] = None
    text: str = ""

    @classmethod
    def parse(cls, input_shape: Any, *, symbols: bool = False) -> "InputShapes":
        """Check and keep ``input_shape``; with ``symbols=True`` a dimension may also be a
        named size (a string such as ``"H"``), for :mod:`modelstats.symbolic`.

        >>> InputShapes.parse(("H", "W", 3), symbols=True).substituted({"H": 9, "W": 7})
        (9, 7, 3)
        """
        text = repr(input_shape)
        if isinstance(input_shape, Mapping):
            parsed = cls(by_name={k: _checked(v, text, symbols) for k, v in input_shape.items()},
                         text=text)
        elif isinstance(input_shape, Sequence) and not isinstance(input_shape, (str, bytes)) \
                and input_shape and all(_is_shape_like(s) for s in input_shape):
            parsed = cls(positional=tuple(_checked(s, text, symbols) for s in input_shape),
                         text=text)
        else:
            parsed = cls(positional=(_checked(input_shape, text, symbols),), text=text)
        return parsed

    def shapes(self) -> list[Shape]:
        """Every given shape, in order."""
        return list(self.positional) if self.positional is not None \
            else list(self.by_name.values())

    def substituted(self, values: Mapping[str, int]) -> Any:
        """``input_shape`` in the form it was given, each named size replaced by its value."""
        def shape(s: Shape) -> Shape:
            return tuple(values[str(d)] if is_symbol(d) else d for d in s)

        if self.by_name is not None:
            return {k: shape(v) for k, v in self.by_name.items()}
        if len(self.positional) == 1:
            return shape(self.positional[0])
        return [shape(s) for s in self.positional]

    @property
    def single(self) -> Shape:
        """The one shape given (for a Sequential built from it)."""
        if self.positional is None or len(self.positional) != 1:
            raise ShapeError(f"input_shape={self.text}: expected one shape for this model.")
        return self.positional[0]

    def for_inputs(self, ids: list[str], names: list[str]) -> dict[str, Shape]:
        """The given shape of each model input (by node id), checked against the inputs."""
        if self.by_name is not None:
            by_key = {**{name: i for name, i in zip(names, ids)}, **{i: i for i in ids}}
            unknown = set(self.by_name) - set(by_key)
            if unknown:
                raise ShapeError(
                    f"input_shape names inputs {sorted(unknown)} that the model does not have; "
                    f"its inputs are {sorted(names)}."
                )
            return {by_key[k]: v for k, v in self.by_name.items()}
        if len(self.positional) == 1 and len(ids) != 1:
            raise ShapeError(
                f"The model has {len(ids)} inputs ({ids}); pass input_shape as a list "
                "with one shape per input, or as a dict keyed by input name."
            )
        if len(self.positional) != len(ids):
            raise ShapeError(
                f"input_shape gives {len(self.positional)} shapes but the model has {len(ids)} "
                f"inputs ({ids})."
            )
        return dict(zip(ids, self.positional))


def _is_shape_like(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def is_symbol(dim: Any) -> bool:
    """A named size in ``input_shape``: a string such as ``"H"`` (or a sympy Symbol)."""
    return isinstance(dim, str) or getattr(dim, "is_Symbol", False) is True


def _checked(shape: Any, text: str, symbols: bool = False) -> Shape:
    """Every given dimension is a positive integer or None (or, with ``symbols``, a named
    size), before Keras sees it."""
    if not _is_shape_like(shape):
        raise ShapeError(
            f"input_shape={text}: expected a tuple of dimensions without the batch "
            "dimension, such as (224, 224, 3)."
        )
    named = [dim for dim in shape if is_symbol(dim)]
    if named:
        if not symbols:
            raise ShapeError(
                f"input_shape={text}: a named size such as {named[0]!r} gives formulas with "
                "modelstats.count_flops and modelstats.analyze; a graph needs integer sizes "
                "(or None)."
            )
        return tuple(d if is_symbol(d) else _checked((d,), text)[0] for d in shape)
    for dim in shape:
        integral = hasattr(dim, "__index__") and not isinstance(dim, bool)
        if dim is not None and (not integral or int(dim) < 1):
            raise ShapeError(
                f"input_shape={text}: dimension {dim!r} is not a positive integer "
                "(use None for a dimension left unknown)."
            )
    return tuple(None if d is None else int(d) for d in shape)


# -- step 2: the Functional describing the model ----------------------------------------------

def _graph_of(model: Any, adapter: Any, shapes: Optional[InputShapes]) -> tuple[Any, bool]:
    """Return the Functional object whose nodes describe ``model``, and whether it was built
    here from ``input_shape``.

    A built Sequential is described by the Functional Keras builds for it; an unbuilt one is
    cloned and the clone is built with ``input_shape`` so the user's model is left untouched.
    """
    if adapter.is_sequential(model):
        functional = adapter.sequential_graph(model)
        if functional is not None:
            return functional, False
        if shapes is None:
            raise NotAGraphModelError(
                f"Sequential model '{model.name}' is not built, so its layer shapes are unknown. "
                "Pass input_shape=(...) without the batch dimension, or give the model a "
                "keras.Input as first layer, or call model.build(...) first."
            )
        functional = adapter.built_clone(model, shapes.single)
        if functional is None:  # pragma: no cover - Keras always sets it when built
            raise NotAGraphModelError(f"Sequential model '{model.name}' could not be built.")
        return functional, True
    if _is_graph_model(model):
        return model, False
    if adapter.is_model(model):
        traced = _traced_model(model, adapter, shapes)
        if traced is not None:
            return traced, True
    if adapter.is_model(model):
        raise NotAGraphModelError(
            f"'{model.name}' is a subclassed model ({type(model).__name__}) that was never "
            "called, so the shapes its call() takes are unknown. Pass input_shape=(...) "
            "without the batch dimension, and modelstats traces its call()."
        )
    raise NotAGraphModelError(
        f"'{model.name}' is a layer ({type(model).__name__}), not a model. Wrap it: "
        "keras.Sequential([keras.Input(shape), layer]), and analyse that."
    )


def _traced_model(model: Any, adapter: Any, shapes: Optional[InputShapes]) -> Optional[Any]:
    """The Functional of a subclassed model's ``call`` traced on symbolic inputs (None when
    it has no known input shape)."""
    given = None
    if shapes is not None:
        given = list(shapes.positional) if shapes.positional is not None \
            else list(shapes.by_name.values())
    try:
        return adapter.trace_model(model, given)
    except Exception as exc:  # noqa: BLE001 - reported with the model named
        raise NotAGraphModelError(
            f"Subclassed model '{model.name}' ({type(model).__name__}) could not be traced on "
            f"symbolic inputs: {type(exc).__name__}: {exc}. Its call() must run on Keras "
            "symbolic tensors (keras.ops and layers, no backend-specific code)."
        ) from None


def _is_graph_model(obj: Any) -> bool:
    return hasattr(obj, "_nodes_by_depth") and hasattr(obj, "outputs")


def _rebuilt_for(root: Any, adapter: Any, shapes: InputShapes) -> Optional[Any]:
    """A copy of ``root`` on new input shapes, for frameworks that cannot re-infer per node
    (None: infer shapes on the walk, where a mismatch is reported)."""
    names = [adapter.tensor_name(t) for t in root.inputs]
    try:
        given = shapes.for_inputs(names, names)
    except ShapeError:
        return None
    new = [given.get(name, tuple(t.shape[1:])) for name, t in zip(names, root.inputs)]
    for shape, tensor in zip(new, root.inputs):
        old = tuple(tensor.shape[1:])
        if len(shape) != len(old) or any(e is not None and g != e for g, e in zip(shape, old)):
            return None
    try:
        return adapter.with_input_shapes(root, new)
    except ValueError as exc:
        raise ShapeError(f"input_shape={shapes.text} does not fit the model: {exc}") from None


# -- step 3: the walk: node ids, nested expansion, records -------------------------------------

class _Scope:
    """One Functional being walked: its nodes, id prefix, the outer call it expands and the
    outer producers of its inputs, by position in ``functional.inputs``."""

    __slots__ = ("functional", "prefix", "path", "nodes", "outer_node", "outer_inputs", "traced",
                 "training", "whole", "_read")

    def __init__(self, functional, prefix, path, adapter, outer_node=None, outer_inputs=None,
                 traced=False, training=None):
        self.functional = functional
        self.prefix = prefix
        self.path = path
        self.nodes: Iterator[Any] = iter(adapter.nodes_in_topological_order(functional))
        self.outer_node = outer_node
        self.outer_inputs = outer_inputs
        self.traced = traced  # a layer's call traced here: its ops and inputs are named here
        # training= given to the call this scope expands or to an enclosing one (Keras passes
        # it down to every inner call); None when no call gave it
        self.training = training
        self.whole = None  # a traced call: how to record it as one node instead (_Walk.unsized)
        self._read: Optional[set] = None

    def reads(self, tensor: Any, adapter: Any) -> bool:
        """Whether a call of this scope, or its output, uses ``tensor``."""
        if self._read is None:
            functional = self.functional
            self._read = {id(t) for node in adapter.nodes_in_topological_order(functional)
                          for t in adapter.input_tensors(node)}
            self._read |= {id(t) for t in adapter.outputs(functional.outputs)}
        return id(tensor) in self._read


class _Walk:
    """The state of one walk: the graph so far and the maps from Keras objects to node ids."""

    def __init__(self, adapter: Any, expand_nested: bool, registry: Any):
        self.adapter = adapter
        self.expand_nested = expand_nested
        self.registry = registry
        self.trace_errors: dict[int, str] = {}  # id(keras node) -> why its call was not traced
        # id(keras node) of calls whose outputs do not depend on their inputs' values
        self.constant_outputs: set[int] = set()
        # sublayer calls traced while their caller was (adapters.Keras3Adapter.trace_call)
        self.pretraced: dict[int, tuple] = {}
        # With new input shapes: the new shape per id(model input tensor), and the symbolic
        # tensor inferred for every (node id, output index) so far.
        self.new_inputs: Optional[dict[int, Shape]] = None
        self.values: dict[tuple[str, int], Any] = {}
        self.shapes_text = ""
        self.graph = nx.DiGraph()
        self.producers: dict[int, tuple[str, int]] = {}  # id(tensor) -> (node id, output index)
        # node id -> its output shapes (the list on the node): read for every consumer, and a
        # plain dict is several times cheaper to read than the graph's node view
        self.output_shapes: dict[str, list[Shape]] = {}
        self.call_counts: dict[tuple[tuple[str, ...], int], int] = {}
        self.expandable: dict[type, bool] = {}  # operation class -> may_expand
        self.seen_weights: set[int] = set()
        self.used_ids: set[str] = set()
        self.unsized: list[str] = []  # nodes inside traced calls left with unknown sizes

    def traced_in_turn(self, layer: Any) -> bool:
        """Whether a sublayer called inside a traced call will be traced too."""
        adapter = self.adapter
        return (self.expand_nested and not adapter.is_model(layer)
                and self.registry.traceable(type(layer)))

    def may_expand(self, operation: Any) -> bool:
        """Whether calls of ``operation`` can be expanded: it is a model, or a layer without a
        rule (traced). A keras.ops operation without a rule is not traced: its call is backend
        code. Answered once per class (the walk asks at every call)."""
        cls = type(operation)
        known = self.expandable.get(cls)
        if known is None:
            adapter = self.adapter
            known = self.expandable[cls] = adapter.is_model(operation) or (
                adapter.owns(operation) and self.registry.traceable(cls))
        return known

    def kept_whole(self, scope: _Scope) -> bool:
        """Undo the expansion of a traced call whose nodes are left with unknown or empty sizes
        though its inputs have known ones, and record the call as one node instead, its cost
        then read from a backend trace (modelstats.backend_trace). Such a trace baked a size
        the symbolic call did not know into an argument (a shape frozen when a sublayer was
        built, or a slice of a table whose declared size is smaller than the call's), so its
        nodes cannot be counted. True when it did so."""
        parent, node_id, call_index, inputs, input_values, count, mark, seen = scope.whole
        nodes = self.graph.nodes
        unsized = [n for n in self.unsized[mark:] if n in nodes]
        if not unsized or any(d is None for src, i in inputs
                              for d in nodes[src]["output_shapes"][i]):
            return False
        first = nodes[unsized[0]]
        self.trace_errors[id(scope.outer_node)] = (
            f"its trace leaves sizes unknown or empty: '{unsized[0]}' ({first['type']}) has "
            f"shape {first['output_shapes'][0]}")
        added = list(nodes)[count:]
        self.graph.remove_nodes_from(added)
        self.used_ids.difference_update(added)
        for removed in added:
            del self.output_shapes[removed]
        del self.unsized[mark:]
        self.seen_weights = seen  # the call's weights count at its one node
        self.add_record(parent, scope.outer_node, self.adapter.operation(scope.outer_node),
                        node_id, call_index, inputs, input_values)
        return True

    def node_id(self, scope: _Scope, operation: Any, keras_node: Any) -> tuple[str, int]:
        """A readable unique id: ``outer/inner/name``, ``#k`` for the k-th call of a layer.

        Inside a traced call the ``keras.ops`` operations and inputs were made by the trace,
        and Keras numbers their names process-wide (``add_17``); they are named by kind
        instead (``add``, ``add#1``, ``input``), so ids do not depend on what ran before.
        """
        name, key = operation.name, (scope.path, id(operation))
        if scope.traced and scope.outer_node is not None and self.adapter.is_input(keras_node):
            name = "input"
            key = (scope.path, name)
        elif scope.traced and not self.adapter.owns(operation):
            name = _snake(type(operation).__name__)
            key = (scope.path, name)
        call_index = self.call_counts.get(key, 0)
        self.call_counts[key] = call_index + 1
        node_id = scope.prefix + name + (f"#{call_index}" if call_index else "")
        if node_id in self.used_ids:  # two operations with one name: keep ids unique
            suffix = 1
            while f"{node_id}~{suffix}" in self.used_ids:
                suffix += 1
            node_id = f"{node_id}~{suffix}"
        return node_id, call_index

    def inputs_of(self, scope: _Scope, keras_node: Any) -> list[tuple[str, int]]:
        adapter = self.adapter
        if adapter.is_input(keras_node) and scope.outer_node is not None:
            # The inner InputLayer of a nested model: a pass-through fed by the outer tensor.
            first_output = adapter.node_outputs(keras_node)[0]
            position = [id(t) for t in scope.functional.inputs].index(id(first_output))
            outer = scope.outer_inputs[position]
            return [outer] if outer is not None else []
        return [self.producers[id(t)] for t in adapter.input_tensors(keras_node)]

    def nested(self, scope: _Scope, keras_node: Any, operation: Any, inputs: list,
               input_values: Optional[list]) -> Optional[tuple]:
        """``(functional, outer producers of its inputs)`` to expand this call into, or None
        for an operation counted as one node.

        Nested Functional and Sequential models are expanded as they are. A layer without a
        rule (and not declared opaque), or a subclassed model, is *traced*: its ``call`` run
        on symbolic inputs gives the Functional of its sublayer and ``keras.ops`` calls.
        """
        adapter = self.adapter
        if not self.expand_nested or adapter.is_input(keras_node) \
                or not self.may_expand(operation):
            return None
        if adapter.is_sequential(operation):
            functional = adapter.sequential_graph(operation)
        elif adapter.is_model(operation) and _is_graph_model(operation):
            functional = operation
        else:
            functional = None
        if functional is not None and scope.traced and not _fits(keras_node, functional,
                                                                 adapter):
            # Built for other sizes than a traced call gives it (kimm's RepVGG builds a
            # branch on the padded size and calls it unpadded; ViTDet's MLP on None sizes):
            # its stored shapes are not this call's, so it is traced at the sizes it gets, as
            # a custom layer is.
            functional = None
        elif functional is not None:
            outer = _flat_outer_inputs(keras_node, functional, adapter)
            return functional, [None if t is None else self.producers[id(t)] for t in outer], \
                False
        try:
            traced = adapter.trace_call(keras_node, input_values, scope.traced,
                                        self.traced_in_turn, self.pretraced)
        except Exception as exc:  # noqa: BLE001 - the node stays whole, with the reason
            self.trace_errors[id(keras_node)] = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, ConstantOutputs):
                self.constant_outputs.add(id(keras_node))
            return None
        used = [outer for outer, inner in zip(adapter.node_outputs(keras_node), traced.outputs)
                if not adapter.is_symbolic(inner) and scope.reads(outer, adapter)]
        if used:  # a constant output that is read: no node of the trace can stand for it
            self.trace_errors[id(keras_node)] = (
                f"its output {adapter.node_outputs(keras_node).index(used[0])} is computed "
                "from weights or shapes alone, and the model reads it")
            return None
        closing = adapter.closes_over_tensors(traced)
        if closing is not None:  # kept whole: counted from its backend trace
            self.trace_errors[id(keras_node)] = (
                f"its operation '{closing}' runs Python functions that close over the "
                "call's tensors, which cannot be replayed alone")
            return None
        return traced, inputs, True  # traced inputs are the node's tensors, in order

    def infer(self, node_id: str, keras_node: Any, outputs: list,
              input_values: list) -> list:
        """The node's output tensors at the new input shapes (Keras' own inference)."""
        adapter = self.adapter
        if adapter.is_input(keras_node):
            if input_values:  # the inner InputLayer of a nested model passes its input on
                return [input_values[0]]
            shape = self.new_inputs.get(id(outputs[0]))
            if shape is None:
                return outputs
            return [adapter.symbolic_input(shape, adapter.dtype(outputs[0]))]
        try:
            return adapter.infer_outputs(keras_node, input_values)
        except Exception as exc:  # noqa: BLE001 - re-raised with the layer named
            received = [tuple(v.shape[1:]) for v in input_values]
            raise ShapeError(
                f"Layer '{node_id}' ({type(adapter.operation(keras_node)).__name__}) cannot take "
                f"inputs of shape {received} derived from input_shape={self.shapes_text}: {exc}"
            ) from None

    def known_sizes(self, keras_node: Any, outputs: list, inputs: list) -> list:
        """The outputs of running the call, where its inputs' sizes are all known (for
        ``outputs`` that leave sizes unknown, a layer's shape inference frozen at build time,
        or that a call's symbolic trace refused); else ``outputs``."""
        shapes = [self.output_shapes[src][i] for src, i in inputs]
        if _any_unknown(shapes):
            return outputs
        dtypes = [self.graph.nodes[src]["dtype"] for src, _ in inputs]
        try:
            return self.adapter.run_output_spec(keras_node, shapes, dtypes)
        except Exception:  # noqa: BLE001 - keep Keras' own answer; costs then ask for sizes
            return outputs

    def add_record(self, scope: _Scope, keras_node: Any, operation: Any, node_id: str,
                   call_index: int, inputs: list[tuple[str, int]],
                   input_values: Optional[list]) -> None:
        adapter, graph = self.adapter, self.graph
        is_input = adapter.is_input(keras_node)
        # (On the class: hasattr on the instance would run the property, a walk of every
        # sublayer's weights.)
        if hasattr(type(operation), "trainable_weights"):
            trainable_weights, frozen_weights = adapter.layer_weights(operation)
        else:  # a keras.ops call owns no weights, but may read a traced layer's variables
            variables = adapter.argument_variables(keras_node)
            trainable_weights = [v for v in variables if v.trainable]
            frozen_weights = [v for v in variables if not v.trainable]
        if trainable_weights or frozen_weights:
            # sized once: the parameter counts and the bytes read (weight_sizes) share them
            weight_sizes = adapter.weight_sizes([*trainable_weights, *frozen_weights])
            trainable = self._count(trainable_weights, weight_sizes)
            non_trainable = self._count(frozen_weights, weight_sizes[len(trainable_weights):])
        else:  # most calls read no weights
            weight_sizes, trainable, non_trainable = [], 0, 0
        outputs = adapter.node_outputs(keras_node)
        for index, tensor in enumerate(outputs):
            self.producers[id(tensor)] = (node_id, index)
        shaped = outputs
        if input_values is not None and not scope.traced:
            # (A traced call already ran at the new sizes: its nodes keep their own tensors.)
            shaped = self.infer(node_id, keras_node, outputs, input_values)
        output_shapes = [tuple(t.shape[1:]) for t in shaped]  # without the batch axis
        call_key = id(keras_node)
        from_backend = call_key in self.trace_errors and not scope.traced
        if inputs and not is_input and (from_backend or _any_unknown(output_shapes)):
            # A call its symbolic trace refused is counted from its backend trace: it is sized
            # by running it too, not by its layer's shape inference, which may disagree with
            # it (keras-hub XLNet's ContentAndQueryEmbedding declares its relative position
            # table (batch, 1, hidden) and returns 2 x sequence rows), or every reader of the
            # output would be counted at the declared size.
            ran = self.known_sizes(keras_node, shaped, inputs)
            if len(ran) == len(shaped):
                shaped = ran
                output_shapes = [tuple(t.shape[1:]) for t in shaped]
        if input_values is not None:
            for index, tensor in enumerate(shaped):
                self.values[(node_id, index)] = tensor
        input_shapes = [self.output_shapes[src][i] for src, i in inputs]
        self.used_ids.add(node_id)
        self.output_shapes[node_id] = output_shapes
        training_argument = adapter.training_argument(keras_node)
        graph.add_node(
            node_id,
            operation=operation,
            type=type(operation).__name__,
            name=operation.name,
            path=scope.path,
            call_index=call_index,
            keras_node=keras_node,
            inputs=inputs,
            input_shapes=input_shapes,
            output_shapes=output_shapes,
            batch_factor=_leading_size(shaped) if scope.traced else 1,
            # inside a layer's traced call, whose arguments may hold the batch size it was
            # traced with (ops.tile(token, [ops.shape(x)[0], 1, 1])): replayed one sample at
            # a time (modelstats.erf)
            in_traced_call=bool(scope.traced),
            dtype=adapter.dtype(outputs[0]) if outputs else None,
            data_format=adapter.data_format(operation),
            params=trainable + non_trainable,
            trainable_params=trainable,
            non_trainable_params=non_trainable,
            # whether the call reads weights, and trainable ones, at every call of a shared
            # layer (params count only the first): what a training step differentiates
            has_weights=bool(trainable_weights or frozen_weights),
            trains=bool(trainable_weights),
            # (elements, stored dtype) of each variable the call reads, at every call: the
            # bytes it reads (cost.memory_traffic)
            weight_sizes=weight_sizes,
            training_argument=(scope.training if training_argument is None
                               else training_argument),
            is_input=is_input and scope.outer_node is None,
            trace_error=self.trace_errors.get(call_key),
            # computed from weights and shapes only (adapters.ConstantOutputs): no field
            constant_outputs=call_key in self.constant_outputs,
            # a layer whose call can be traced when it is kept whole (expand_nested=False)
            traceable=adapter.owns(operation) and not is_input,
        )
        for position, (src, index) in enumerate(inputs):
            shape = input_shapes[position]
            if graph.has_edge(src, node_id):
                # Several tensors of one producer feed this consumer (e.g. LSTM h and c).
                edge = graph.edges[src, node_id]
                edge["indices"].append(position)
                edge["output_indices"].append(index)
                edge["shapes"].append(shape)
            else:
                graph.add_edge(src, node_id, indices=[position], output_indices=[index],
                               shapes=[shape])
        if scope.traced and _any_unknown_or_empty(output_shapes):
            self.unsized.append(node_id)

    def _count(self, variables: Sequence[Any], sizes: Sequence[tuple[int, str]]) -> int:
        """Parameters of variables not counted yet (a shared layer counts at its first call);
        ``sizes`` starts with theirs, ``(elements, dtype)`` in the same order."""
        total = 0
        for variable, (size, _) in zip(variables, sizes):
            if id(variable) not in self.seen_weights:
                self.seen_weights.add(id(variable))
                total += size
        return total


def _walk(root: Any, adapter: Any, expand_nested: bool, registry: Any,
          traced: bool = False, shapes: Optional[InputShapes] = None) -> nx.DiGraph:
    """One node per operation call of ``root``, nested models and traced layers expanded
    depth-first with an explicit stack (no recursion per layer). ``traced``: ``root`` is the
    trace of a subclassed model's call. ``shapes``: new input shapes; every node's shapes
    are inferred from them on the way, so a layer is traced at the sizes it will get."""
    walk = _Walk(adapter, expand_nested, registry)
    if shapes is not None:
        walk.new_inputs = _new_input_shapes(root, adapter, shapes)
        walk.shapes_text = shapes.text
    stack = [_Scope(root, "", (), adapter, traced=traced)]
    while stack:
        scope = stack[-1]
        keras_node = next(scope.nodes, None)
        if keras_node is None:
            stack.pop()
            if scope.whole is not None and walk.kept_whole(scope):
                continue
            if scope.outer_node is not None:
                _connect_nested_outputs(scope, walk.producers, adapter)
            continue
        operation = adapter.operation(keras_node)
        node_id, call_index = walk.node_id(scope, operation, keras_node)
        inputs = walk.inputs_of(scope, keras_node)
        input_values = None if walk.new_inputs is None else [walk.values[i] for i in inputs]
        inner = walk.nested(scope, keras_node, operation, inputs, input_values)
        if inner is not None:
            name = operation.name + (f"#{call_index}" if call_index else "")
            functional, outer_inputs, traced = inner
            training = adapter.training_argument(keras_node)
            stack.append(_Scope(functional, scope.prefix + name + "/", (*scope.path, name),
                                adapter, keras_node, outer_inputs, traced,
                                scope.training if training is None else training))
            if traced:
                stack[-1].whole = (scope, node_id, call_index, inputs, input_values,
                                   len(walk.graph), len(walk.unsized), set(walk.seen_weights))
            continue
        walk.add_record(scope, keras_node, operation, node_id, call_index, inputs, input_values)
    graph = walk.graph
    graph.graph["inputs"] = [walk.producers[id(t)][0] for t in root.inputs]
    graph.graph["outputs"] = [walk.producers[id(t)][0] for t in root.outputs
                              if id(t) in walk.producers]
    return graph


def _fits(keras_node: Any, functional: Any, adapter: Any) -> bool:
    """Whether a nested graph model inside a traced call was built for exactly the shapes
    (without batch) the call gives it. Its nodes keep the shapes it was built with, so a size
    it left None (keras-hub ViTDet's MLP, a Sequential built on ``(None, None, 64)``) would stay
    unknown inside the trace, though the call knows it."""
    given = adapter.input_tensors(keras_node)
    if len(given) != len(functional.inputs):
        return True  # matched by name or structure: left to the expansion as before
    return all(tuple(f.shape[1:]) == tuple(g.shape[1:])
               for g, f in zip(given, functional.inputs))


def _leading_size(outputs: list) -> int:
    """How many samples a node's leading axis holds inside a traced call (where the model's
    batch is 1): more than 1 where the call folded other axes into it (windows, flattened
    tokens)."""
    size = outputs[0].shape[0] if outputs and len(outputs[0].shape) else None
    return size if isinstance(size, int) and size > 1 else 1


def _snake(name: str) -> str:
    """``TrueDivide`` -> ``true_divide``."""
    return "".join(f"_{c.lower()}" if c.isupper() and i else c.lower()
                   for i, c in enumerate(name))


def _flat_outer_inputs(keras_node: Any, functional: Any, adapter: Any) -> list[Any]:
    """Outer tensors passed to a nested model's call, in the order of ``functional.inputs``."""
    args = adapter.call_arguments(keras_node)
    first = args[0] if len(args) == 1 else list(args)
    struct = adapter.input_structure(functional)
    if isinstance(first, Mapping) and isinstance(struct, Mapping):
        return [first[key] for key in struct]
    if isinstance(first, Mapping):
        return [first[t.name] if t.name in first else None for t in functional.inputs]
    return adapter.flat_tensors(first)


def _connect_nested_outputs(scope: _Scope, producers: dict[int, tuple[str, int]],
                            adapter: Any) -> None:
    """Make the outer tensors returned by a nested call point at the inner producing nodes."""
    outer = adapter.node_outputs(scope.outer_node)
    for outer_tensor, inner_tensor in zip(outer, adapter.outputs(scope.functional.outputs)):
        if id(inner_tensor) in producers:  # (a constant output, read by nothing, has none)
            producers[id(outer_tensor)] = producers[id(inner_tensor)]


# -- step 4: shapes for new input sizes -----------------------------------------------------------

def _new_input_shapes(root: Any, adapter: Any, shapes: InputShapes) -> dict[int, Shape]:
    """The new shape of each model input (by id of its tensor), checked against the model:
    only the dimensions it leaves None can be set. The walk then infers every node's shapes
    from these with Keras' own inference (one inference per call node)."""
    ids = [adapter.producer_name(t) for t in root.inputs]
    given = shapes.for_inputs(ids, ids)
    new: dict[int, Shape] = {}
    for node_id, tensor in zip(ids, root.inputs):
        if node_id not in given:
            continue
        shape, old = given[node_id], tuple(tensor.shape[1:])
        if len(shape) != len(old):
            raise ShapeError(
                f"input_shape {shape} has rank {len(shape)} but model input '{node_id}' has shape "
                f"{old} (rank {len(old)}, without the batch dimension)."
            )
        for size, expected in zip(shape, old):
            if expected is not None and size != expected:
                raise ShapeError(
                    f"input_shape {shape} does not fit model input '{node_id}' of shape {old}: "
                    "only dimensions the model leaves as None can be set."
                )
        new[id(tensor)] = shape
    return new


# -- step 5: spatial axes per node --------------------------------------------------------------

def spatial_axes_of(shape: Shape, data_format: Optional[str]) -> tuple[int, ...]:
    """Positions of the spatial axes in a shape without batch: all but the channel axis.

    >>> spatial_axes_of((32, 32, 3), "channels_last"), spatial_axes_of((3, 32, 32), "channels_first")
    ((0, 1), (1, 2))
    >>> spatial_axes_of((10,), None)
    ()
    """
    rank = len(shape)
    if rank < 2:
        return ()
    if data_format == "channels_first":
        return tuple(range(1, rank))
    return tuple(range(rank - 1))


def _assign_spatial_axes(graph: nx.DiGraph) -> None:
    """Record ``data_format`` and ``spatial_axes`` on every node.

    An operation with a ``data_format`` (convolutions, pooling, ...) says where its channels
    are. Other operations keep the layout of their first input; a model input takes the layout
    of the first operation downstream that declares one, reached through operations of the
    same rank (channels_last when none does).
    """
    # Plain dicts of the graph's own attribute and successor dicts: read once per node and
    # per edge, they are several times cheaper than the graph's views.
    nodes = dict(graph.nodes(data=True))
    successors = dict(graph.adjacency())
    declared_downstream: dict[str, Optional[str]] = {}
    for node_id in reversed(nodes):  # the insertion order is topological
        data = nodes[node_id]
        if data["data_format"] is not None:
            declared_downstream[node_id] = data["data_format"]
            continue
        rank = len(data["output_shapes"][0]) if data["output_shapes"] else 0
        found = None
        for successor in successors[node_id]:
            out = nodes[successor]["output_shapes"]
            same_rank = not out or len(out[0]) == rank or \
                nodes[successor]["data_format"] is not None
            if same_rank and declared_downstream.get(successor):
                found = declared_downstream[successor]
                break
        declared_downstream[node_id] = found
    axes_by_layout: dict[tuple[int, str], tuple[int, ...]] = {}  # (rank, format) -> axes
    for node_id, data in nodes.items():
        fmt = data["data_format"]
        if fmt is None and data["inputs"]:
            src = data["inputs"][0][0]
            fmt = nodes[src]["data_format"]
        if fmt is None:
            fmt = declared_downstream.get(node_id) or "channels_last"
        data["data_format"] = fmt
        shapes = data["output_shapes"]
        axes = ()
        if shapes:
            layout = (len(shapes[0]), fmt)
            axes = axes_by_layout.get(layout)
            if axes is None:
                axes = axes_by_layout[layout] = spatial_axes_of(shapes[0], fmt)
        data["spatial_axes"] = axes
    token_ids = _token_ids_input(graph)
    passing = [token_ids] if token_ids is not None else []
    while passing:  # the ids, and the inputs of nested or traced calls that pass them on
        node_id = passing.pop()
        nodes[node_id]["spatial_axes"] = (0,)
        passing.extend(n for n in successors[node_id]
                       if nodes[n]["type"] == "InputLayer"
                       and len(nodes[n]["output_shapes"][0]) == 1)
    _assign_token_grids(graph)


def _token_ids_input(graph: nx.DiGraph) -> Optional[str]:
    """The model input of token ids whose positions have a field (a text model's 1-D field):
    a ``(T,)`` input of integers looked up by an Embedding. With several (BERT's segment ids,
    position ids), the one with the largest vocabulary, ties to the first: the tokens. Such
    an input has no channel axis, so :func:`spatial_axes_of` gives it none."""
    best, best_vocabulary = None, -1
    for node_id in graph.graph.get("inputs", ()):
        data = graph.nodes[node_id]
        shapes = data["output_shapes"]
        if len(shapes) != 1 or len(shapes[0]) != 1 or not is_integer_dtype(data["dtype"]):
            continue
        vocabularies = [vocabulary for vocabulary, _ in token_lookups(graph, node_id)]
        if vocabularies and max(vocabularies) > best_vocabulary:
            best, best_vocabulary = node_id, max(vocabularies)
    return best


def token_lookups(graph: nx.DiGraph, input_node: str) -> list[tuple[int, str]]:
    """``(vocabulary size, node)`` of every Embedding that looks up the ids of
    ``input_node``: directly, or through the input of a nested or traced call that passes them
    on (RoBERTa's, DistilBERT's and OPT's token embeddings sit inside a custom layer)."""
    from modelstats.adapters import is_embedding

    found, stack, seen = [], list(graph.successors(input_node)), set()
    while stack:
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        data = graph.nodes[node_id]
        if is_embedding(data["operation"]):
            found.append((getattr(data["operation"], "input_dim", 0) or 0, node_id))
        elif data["type"] == "InputLayer":  # an inner input passes the ids on
            stack.extend(graph.successors(node_id))
    return found


def is_integer_dtype(dtype: Optional[str]) -> bool:
    """Whether a dtype name holds ids or flags (integers, booleans), not values to
    differentiate: what token ids and masks are."""
    return bool(dtype) and (dtype.startswith(("int", "uint")) or dtype == "bool")


def _assign_token_grids(graph: nx.DiGraph) -> None:
    """Record ``token_grid``, ``token_prefix`` and ``token_suffix`` on every node: for an
    output ``(tokens, channels)`` whose token axis is a flattened grid (a reshape ``(h, w, C)
    -> (h*w, C)`` of a channels-last map, then per-token calls, extra tokens joined in front or
    after, slices that keep the grid), the grid's sizes ``(h, w)`` and how many extra tokens
    come before and after it, token ``prefix + i*w + j`` being grid position ``(i, j)``; None
    on other nodes. The layout is structural (what the tensor's axes are, see
    :func:`modelstats.geometry.token_layout`); whether the tokens keep a receptive field is the
    propagation's business. Only calls that may make or keep tokens ask their geometry rule.
    """
    from modelstats import rules
    from modelstats.errors import ModelStatsError
    from modelstats.geometry import token_layout
    from modelstats.registry import Unsupported

    registry = rules.active()
    nodes = dict(graph.nodes(data=True))  # (a plain dict: cheaper reads than the node view)
    layouts: dict[str, Any] = {}
    for node_id, data in nodes.items():
        layout = None
        inputs = data["inputs"]
        outputs = data["output_shapes"]
        # (Inside a traced call a leading axis above 1 holds windows or tokens, not samples.)
        if inputs and outputs and len(outputs[0]) == 2 and data.get("batch_factor", 1) == 1:
            given = [layouts.get(src) for src, _ in inputs]
            first = nodes[inputs[0][0]]
            candidate = any(given) or len(data["input_shapes"][0]) >= 3 \
                if data["input_shapes"] else False
            if candidate:
                try:
                    geometry = registry.geometry(data["operation"], data["input_shapes"],
                                                 outputs, node=node_id,
                                                 spatial_axes=first["spatial_axes"])
                except (Unsupported, ModelStatsError):
                    geometry = None
                if geometry is not None:
                    layout = token_layout(geometry, given, data["input_shapes"], outputs[0])
        layouts[node_id] = layout
        data["token_grid"] = None if layout is None else layout.grid
        data["token_prefix"] = None if layout is None else layout.prefix
        data["token_suffix"] = None if layout is None else layout.suffix


def _check_sizes_positive(graph: nx.DiGraph) -> None:
    """A crop or valid window that leaves nothing is an error at the layer, never a zero count."""
    for node_id, data in graph.nodes(data=True):
        for shape in data["output_shapes"]:
            for dim in shape:  # (plain loops: a generator per shape costs more than the test)
                if dim is not None and dim < 1:
                    raise ShapeError(
                        f"Layer '{node_id}' ({data['type']}) produces shape {shape}, with a zero "
                        "or negative dimension: its input is too small for its crop, window or "
                        "stride."
                    )


def find_node(graph: nx.DiGraph, layer: str) -> str:
    """The node id of ``layer``: a node id, or the name of a layer called at one node only;
    a :class:`~modelstats.errors.ModelStatsError` naming the choices otherwise."""
    if layer in graph:
        return layer
    matches = [n for n, d in graph.nodes(data=True) if d["name"] == layer]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ModelStatsError(
            f"Layer name {layer!r} is called at several nodes {matches}; pass a node id."
        )
    raise ModelStatsError(
        f"No node or layer named {layer!r} in the model; node ids look like "
        f"{list(graph.nodes)[:3]}."
    )


def inner_graph(data: dict) -> nx.DiGraph:
    """The graph inside one node kept whole (``expand_nested=False``): a nested model's, or
    the trace of the call of a layer without a rule or of a subclassed model.

    Raises NotAGraphModelError when the call cannot be traced on symbolic inputs.
    """
    from modelstats import rules
    from modelstats.adapters import adapter_for

    operation = data["operation"]
    adapter = adapter_for(operation)
    if adapter.is_sequential(operation) or _is_graph_model(operation):
        shapes = data["input_shapes"]
        return to_networkx(operation, input_shape=shapes[0] if len(shapes) == 1
                           else list(shapes))
    try:
        functional = adapter.trace_call(data["keras_node"])
    except Exception as exc:  # noqa: BLE001 - reported as the reason it stays unsupported
        raise NotAGraphModelError(
            f"no rule for {type(operation).__name__}, and its call could not be traced on "
            f"symbolic inputs ({type(exc).__name__}: {exc})"
        ) from None
    graph = _walk(functional, adapter, True, rules.active(), traced=True)
    graph.graph["name"] = operation.name
    _assign_spatial_axes(graph)
    return graph


@collector_paused
def to_networkx(
    model: Any,
    *,
    expand_nested: bool = True,
    input_shape: Any = None,
) -> nx.DiGraph:
    """Turn a Keras model into a directed acyclic graph of operation calls.

    Parameters
    ----------
    model : keras.Model
        A Functional or Sequential model (Keras 3). Subclassed models have no static graph and
        raise :class:`~modelstats.errors.NotAGraphModelError`.
    expand_nested : bool, default True
        Expand nested Functional and Sequential models into their layers (node ids
        ``outer/inner``). With False each nested model is one node.
    input_shape : tuple, list of tuples or dict, optional
        Input shape(s) without the batch dimension. Needed for a Sequential that is not built;
        for any other model it replaces the model's input sizes (e.g. ``None`` dimensions) and
        every shape in the graph is inferred again with Keras' own shape inference.

    Returns
    -------
    networkx.DiGraph
        One node per operation call, in topological order of insertion. Node attributes:
        ``operation`` (the Keras object), ``type`` (class name), ``name``, ``path`` (tuple of
        enclosing model names), ``call_index``, ``inputs`` (ordered ``(source node, output
        index)`` pairs), ``input_shapes`` and ``output_shapes`` (tuples without batch),
        ``data_format`` and ``spatial_axes`` (positions of the spatial axes in the output
        shape), ``token_grid``, ``token_prefix`` and ``token_suffix`` (for tokens made by
        flattening a grid, ``(h, w, C) -> (h*w, C)``: the grid's sizes and the number of extra
        tokens before and after it; None otherwise), ``params``, ``trainable_params``,
        ``non_trainable_params`` (a shared layer's weights are counted at its first call
        only), ``has_weights`` and ``trains`` (the call reads weights, trainable ones: at
        every call), ``training_argument`` (the ``training=`` its call, or an enclosing one,
        was given; None if none), ``weight_sizes`` (``(elements, dtype)`` of each variable
        the call reads, as stored), ``dtype``, ``is_input``, ``batch_factor`` (samples
        the leading axis holds, inside a traced call: Swin's windows) and
        ``in_traced_call`` (the node is inside a layer's traced call). Edge
        attributes, one entry per tensor the producer passes to the consumer: ``indices`` (the
        consumer's argument positions), ``output_indices`` (the producer's outputs) and
        ``shapes``. The graph attribute ``inputs`` / ``outputs`` lists the node ids of the
        model's inputs / outputs.

    Raises
    ------
    NotAGraphModelError
        For a subclassed model, an unbuilt Sequential without ``input_shape`` or a non-model.
    ShapeError
        When ``input_shape`` does not fit the model; the message names the first failing layer.

    Examples
    --------
    >>> import keras, modelstats
    >>> inputs = keras.Input((32, 32, 3), name="image")
    >>> x = keras.layers.Conv2D(8, 3, name="conv")(inputs)
    >>> model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="gap")(x))
    >>> g = modelstats.to_networkx(model)
    >>> list(g.nodes)
    ['image', 'conv', 'gap']
    >>> g.nodes["conv"]["output_shapes"], g.nodes["conv"]["params"]
    ([(30, 30, 8)], 224)
    >>> g.nodes["conv"]["spatial_axes"]
    (0, 1)
    """
    from modelstats.adapters import adapter_for

    adapter = adapter_for(model)
    shapes = None if input_shape is None else InputShapes.parse(input_shape)
    root, built_here = _graph_of(model, adapter, shapes)
    if shapes is not None and not built_here:
        rebuilt = _rebuilt_for(root, adapter, shapes)
        if rebuilt is not None:
            root, built_here = rebuilt, True
    from modelstats import rules

    traced = adapter.is_model(model) and not adapter.is_sequential(model) \
        and not _is_graph_model(model)
    graph = _walk(root, adapter, expand_nested, rules.active(), traced,
                  shapes if shapes is not None and not built_here else None)
    graph.graph["name"] = model.name
    _assign_spatial_axes(graph)
    _check_sizes_positive(graph)
    return graph
