"""Keras model -> ``networkx.DiGraph`` of operation calls.

A node is one *call* of an operation (a Keras ``Node``), not a layer object: a layer called at two
sites gives two nodes, so shared layers never create cycles. Nested Functional and Sequential models
are expanded in place, their inner input layers wired to the outer tensors. Everything here is
iterative: Keras' own graph builder recurses once per layer, modelstats never does.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import networkx as nx

from modelstats.errors import NotAGraphModelError, ShapeError

__all__ = ["to_networkx", "Shape"]

Shape = tuple  # a tensor shape without the batch dimension; entries are int or None


def _strip_batch(shape: Sequence[int | None]) -> Shape:
    return tuple(shape[1:])


def _is_graph_model(obj: Any) -> bool:
    return hasattr(obj, "_nodes_by_depth") and hasattr(obj, "outputs")


def _graph_of(model: Any, adapter: Any, input_shape: Any = None) -> tuple[Any, bool]:
    """Return the Functional object whose nodes describe ``model``, and whether it was built
    here from ``input_shape``.

    A built Sequential is described by the Functional Keras builds for it; an unbuilt one is
    cloned and the clone is built with ``input_shape`` so the user's model is left untouched.
    """
    if adapter.is_sequential(model):
        functional = adapter.sequential_graph(model)
        if functional is None:
            if input_shape is None:
                raise NotAGraphModelError(
                    f"Sequential model '{model.name}' is not built, so its layer shapes are unknown. "
                    "Pass input_shape=(...) without the batch dimension, or give the model a "
                    "keras.Input as first layer, or call model.build(...) first."
                )
            functional = adapter.built_clone(model, input_shape)
            if functional is None:  # pragma: no cover - Keras always sets it when built
                raise NotAGraphModelError(f"Sequential model '{model.name}' could not be built.")
            return functional, True
        return functional, False
    if _is_graph_model(model):
        return model, False
    kind = "subclassed model" if adapter.is_model(model) else "layer"
    raise NotAGraphModelError(
        f"'{model.name}' is a {kind} ({type(model).__name__}): it has no static graph of layer calls "
        "for modelstats to read, because its structure lives in Python code in call(). Rebuild it "
        "with the Functional API (keras.Input -> layers -> keras.Model(inputs, outputs)), or wrap "
        "its layers in a keras.Sequential, and analyse that."
    )


def _expandable(operation: Any, adapter: Any) -> Any | None:
    """The Functional to expand a nested model into, or None for an ordinary layer."""
    if adapter.is_sequential(operation):
        return adapter.sequential_graph(operation)
    if adapter.is_model(operation) and _is_graph_model(operation):
        return operation
    return None


def _nodes_in_topological_order(functional: Any) -> list[Any]:
    """Keras nodes of one Functional, inputs first.

    Keras stores the depth of each node when the model is constructed; deeper nodes come first
    in the graph (depth 0 is the output), so decreasing depth is a topological order.
    """
    by_depth = functional._nodes_by_depth
    ordered: list[Any] = []
    for depth in sorted(by_depth, reverse=True):
        ordered.extend(by_depth[depth])
    return ordered


def _flat_outer_inputs(keras_node: Any, functional: Any, adapter: Any) -> list[Any]:
    """Outer tensors passed to a nested model's call, in the order of ``functional.inputs``."""
    args = adapter.call_arguments(keras_node)
    first = args[0] if len(args) == 1 else list(args)
    struct = getattr(functional, "_inputs_struct", None)
    if isinstance(first, Mapping) and isinstance(struct, Mapping):
        return [first[key] for key in struct]
    if isinstance(first, Mapping):
        return [first[t.name] if t.name in first else None for t in functional.inputs]
    return adapter.flat_tensors(first)


def _operation_weights(operation: Any) -> tuple[list[Any], list[Any]]:
    # keras.ops operations (TrueDivide, Subtract, ...) are not layers and own no weights.
    return (
        list(getattr(operation, "trainable_weights", ())),
        list(getattr(operation, "non_trainable_weights", ())),
    )


def _count(variables: Sequence[Any], seen: set[int]) -> int:
    total = 0
    for variable in variables:
        key = id(variable)
        if key in seen:
            continue
        seen.add(key)
        # Keras 3 variables keep their shape as a plain tuple; ``.shape`` would build a
        # backend TensorShape per weight (most of the graph walk's time on large models).
        total += math.prod(int(d) for d in getattr(variable, "_shape", None) or variable.shape)
    return total


class _Scope:
    """One Functional being walked: its nodes, id prefix and how its inputs map to outer ones."""

    __slots__ = ("functional", "prefix", "path", "nodes", "outer_node", "outer_node_id")

    def __init__(self, functional, prefix, path, outer_node=None, outer_node_id=None):
        self.functional = functional
        self.prefix = prefix
        self.path = path
        self.nodes: Iterator[Any] = iter(_nodes_in_topological_order(functional))
        self.outer_node = outer_node
        self.outer_node_id = outer_node_id


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
        ``params``, ``trainable_params``, ``non_trainable_params`` (a shared layer's weights are
        counted at its first call only), ``dtype`` and ``is_input``. Edge attributes: ``shape``
        of the tensor and ``indices``, the consumer's argument positions it feeds. The graph
        attribute ``inputs`` / ``outputs`` lists the node ids of the model's inputs / outputs.

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
    """
    from modelstats.adapters import adapter_for

    adapter = adapter_for(model)
    if input_shape is not None:
        _check_input_dims(input_shape)
    root, built_here = _graph_of(model, adapter, input_shape)
    if input_shape is not None and not built_here:
        rebuilt = _rebuilt_for(root, adapter, input_shape)
        if rebuilt is not None:
            root, built_here = rebuilt, True
    graph = nx.DiGraph()
    producers: dict[int, tuple[str, int]] = {}  # id(KerasTensor) -> (node id, output index)
    call_counts: dict[tuple[tuple[str, ...], int], int] = {}
    seen_weights: set[int] = set()
    used_ids: set[str] = set()

    stack = [_Scope(root, "", ())]
    while stack:
        scope = stack[-1]
        keras_node = next(scope.nodes, None)
        if keras_node is None:
            stack.pop()
            if scope.outer_node is not None:
                _connect_nested_outputs(scope, producers, adapter)
            continue

        operation = adapter.operation(keras_node)
        key = (scope.path, id(operation))
        call_index = call_counts.get(key, 0)
        call_counts[key] = call_index + 1
        node_id = scope.prefix + operation.name + (f"#{call_index}" if call_index else "")
        if node_id in used_ids:  # two operations with one name: keep ids unique and readable
            suffix = 1
            while f"{node_id}~{suffix}" in used_ids:
                suffix += 1
            node_id = f"{node_id}~{suffix}"
        used_ids.add(node_id)

        if keras_node.is_input and scope.outer_node is not None:
            # The inner InputLayer of a nested model: a pass-through node fed by the outer tensor.
            first_output = adapter.outputs(keras_node.outputs)[0]
            position = [id(t) for t in scope.functional.inputs].index(id(first_output))
            outer = _flat_outer_inputs(scope.outer_node, scope.functional, adapter)[position]
            inputs = [producers[id(outer)]] if outer is not None else []
        else:
            inputs = [producers[id(t)] for t in adapter.input_tensors(keras_node)]

        inner = None
        if expand_nested and not keras_node.is_input:
            inner = _expandable(operation, adapter)
        if inner is not None:
            name = operation.name + (f"#{call_index}" if call_index else "")
            stack.append(
                _Scope(inner, scope.prefix + name + "/", (*scope.path, name), keras_node, node_id)
            )
            used_ids.discard(node_id)  # the container itself does not become a node
            continue

        trainable, non_trainable = _operation_weights(operation)
        trainable_params = _count(trainable, seen_weights)
        non_trainable_params = _count(non_trainable, seen_weights)
        outputs = adapter.outputs(keras_node.outputs)
        for index, tensor in enumerate(outputs):
            producers[id(tensor)] = (node_id, index)
        graph.add_node(
            node_id,
            operation=operation,
            type=type(operation).__name__,
            name=operation.name,
            path=scope.path,
            call_index=call_index,
            keras_node=keras_node,
            inputs=inputs,
            input_shapes=[graph.nodes[src]["output_shapes"][i] for src, i in inputs],
            output_shapes=[_strip_batch(t.shape) for t in outputs],
            dtype=adapter.dtype(outputs[0]) if outputs else None,
            params=trainable_params + non_trainable_params,
            trainable_params=trainable_params,
            non_trainable_params=non_trainable_params,
            is_input=bool(keras_node.is_input and scope.outer_node is None),
        )
        for position, (src, index) in enumerate(inputs):
            if graph.has_edge(src, node_id):
                graph.edges[src, node_id]["indices"].append(position)
            else:
                shape = graph.nodes[src]["output_shapes"][index]
                graph.add_edge(src, node_id, shape=shape, indices=[position], output_index=index)

    graph.graph["inputs"] = [producers[id(t)][0] for t in root.inputs]
    graph.graph["outputs"] = [producers[id(t)][0] for t in root.outputs]
    graph.graph["name"] = model.name
    if input_shape is not None and not built_here:
        _reinfer_shapes(graph, input_shape)
    _check_sizes_positive(graph)
    return graph


def _check_input_dims(input_shape: Any) -> None:
    """Every given dimension is a positive integer or None, before Keras sees it."""
    if isinstance(input_shape, Mapping):
        shapes = list(input_shape.values())
    elif isinstance(input_shape, Sequence) and any(
        isinstance(s, Sequence) and not isinstance(s, str) for s in input_shape
    ):
        shapes = list(input_shape)
    else:
        shapes = [input_shape]
    for shape in shapes:
        if isinstance(shape, (str, bytes)) or not isinstance(shape, Sequence):
            raise ShapeError(
                f"input_shape={input_shape!r}: expected a tuple of dimensions without the batch "
                "dimension, such as (224, 224, 3)."
            )
        for dim in shape:
            integral = hasattr(dim, "__index__") and not isinstance(dim, bool)
            if dim is not None and (not integral or int(dim) < 1):
                raise ShapeError(
                    f"input_shape={input_shape!r}: dimension {dim!r} is not a positive integer "
                    "(use None for a dimension left unknown)."
                )


def _check_sizes_positive(graph: nx.DiGraph) -> None:
    """A crop or valid window that leaves nothing is an error at the layer, never a zero count."""
    for node_id, data in graph.nodes(data=True):
        for shape in data["output_shapes"]:
            if any(d is not None and d < 1 for d in shape):
                raise ShapeError(
                    f"Layer '{node_id}' ({data['type']}) produces shape {shape}, with a zero or "
                    "negative dimension: its input is too small for its crop, window or stride."
                )


def _connect_nested_outputs(scope: _Scope, producers: dict[int, tuple[str, int]],
                            adapter: Any) -> None:
    """Make the outer tensors returned by a nested call point at the inner producing nodes."""
    outer = adapter.outputs(scope.outer_node.outputs)
    for outer_tensor, inner_tensor in zip(outer, adapter.outputs(scope.functional.outputs)):
        producers[id(outer_tensor)] = producers[id(inner_tensor)]


def _rebuilt_for(root: Any, adapter: Any, input_shape: Any) -> Any | None:
    """A copy of ``root`` on new input shapes, for frameworks that cannot re-infer per node."""
    if isinstance(input_shape, Mapping):
        by_name = dict(input_shape)
        shapes = [by_name.get(t.name.split(":")[0], tuple(t.shape[1:])) for t in root.inputs]
    else:
        items = list(input_shape)
        nested = bool(items) and all(
            isinstance(s, Sequence) and not isinstance(s, str) for s in items
        )
        shapes = items if nested else [tuple(items)]
    if len(shapes) != len(root.inputs):
        return None  # the generic check in _reinfer_shapes reports the mismatch
    for shape, tensor in zip(shapes, root.inputs):
        old = tuple(tensor.shape[1:])
        if len(tuple(shape)) != len(old) or any(
            e is not None and g != e for g, e in zip(tuple(shape), old)
        ):
            return None  # the generic check in _reinfer_shapes reports the mismatch
    try:
        return adapter.with_input_shapes(root, shapes)
    except ValueError as exc:
        raise ShapeError(f"input_shape={input_shape!r} does not fit the model: {exc}") from None


def _normalise_input_shapes(graph: nx.DiGraph, input_shape: Any) -> dict[str, Shape]:
    input_ids = graph.graph["inputs"]
    if isinstance(input_shape, Mapping):
        by_name = {graph.nodes[n]["name"]: n for n in input_ids}
        unknown = set(input_shape) - set(by_name) - set(input_ids)
        if unknown:
            raise ShapeError(
                f"input_shape names inputs {sorted(unknown)} that the model does not have; "
                f"its inputs are {sorted(by_name)}."
            )
        return {by_name.get(k, k): tuple(v) for k, v in input_shape.items()}
    shapes = list(input_shape)
    if shapes and all(isinstance(s, (Sequence,)) and not isinstance(s, str) for s in shapes):
        if len(shapes) != len(input_ids):
            raise ShapeError(
                f"input_shape gives {len(shapes)} shapes but the model has {len(input_ids)} "
                f"inputs ({input_ids})."
            )
        return {n: tuple(s) for n, s in zip(input_ids, shapes)}
    if len(input_ids) != 1:
        raise ShapeError(
            f"The model has {len(input_ids)} inputs ({input_ids}); pass input_shape as a list "
            "with one shape per input, or as a dict keyed by input name."
        )
    return {input_ids[0]: tuple(shapes)}


def _reinfer_shapes(graph: nx.DiGraph, input_shape: Any) -> None:
    """Infer every node's output shapes again from new input shapes, with Keras' inference.

    Each operation is asked once for its output spec (``compute_output_spec``), in topological
    order, so the cost is one shape inference per call node.
    """
    import keras  # Keras 3 only: Keras 2 models are rebuilt instead (adapters.TfKerasAdapter)

    new_shapes = _normalise_input_shapes(graph, input_shape)
    for node_id, shape in new_shapes.items():
        old = graph.nodes[node_id]["output_shapes"][0]
        if len(shape) != len(old):
            raise ShapeError(
                f"input_shape {shape} has rank {len(shape)} but model input '{node_id}' has shape "
                f"{old} (rank {len(old)}, without the batch dimension)."
            )
        for given, expected in zip(shape, old):
            if expected is not None and given != expected:
                raise ShapeError(
                    f"input_shape {shape} does not fit model input '{node_id}' of shape {old}: "
                    "only dimensions the model leaves as None can be set."
                )
    values: dict[tuple[str, int], Any] = {}
    for node_id in graph.nodes:
        data = graph.nodes[node_id]
        keras_node = data["keras_node"]
        if node_id in new_shapes:
            outputs = [keras.KerasTensor((None, *new_shapes[node_id]), dtype=data["dtype"])]
        elif keras_node.is_input:
            # An inner InputLayer of an expanded nested model passes its outer tensor through.
            outputs = [values[data["inputs"][0]]] if data["inputs"] else list(keras_node.outputs)
        else:
            tensors = {
                id(t): values[source]
                for t, source in zip(keras_node.arguments.keras_tensors, data["inputs"])
            }
            args, kwargs = keras_node.arguments.fill_in(tensors)
            try:
                spec = data["operation"].compute_output_spec(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - re-raised with the layer named
                shapes = [tuple(v.shape[1:]) for v in tensors.values()]
                raise ShapeError(
                    f"Layer '{node_id}' ({data['type']}) cannot take inputs of shape {shapes} "
                    f"derived from input_shape={input_shape!r}: {exc}"
                ) from None
            outputs = keras.tree.flatten(spec)
        for index, tensor in enumerate(outputs):
            values[(node_id, index)] = tensor
        data["output_shapes"] = [_strip_batch(t.shape) for t in outputs]
        data["input_shapes"] = [graph.nodes[s]["output_shapes"][i] for s, i in data["inputs"]]
    for src, dst, edge in graph.edges(data=True):
        edge["shape"] = graph.nodes[src]["output_shapes"][edge["output_index"]]
