"""Per-node MACs, FLOPs, parameters and activation memory, from shapes alone.

The engine walks the call graph once, looks up each operation's cost rule along its class MRO
and applies the counting convention. It never runs the model and never touches weights.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional

import networkx as nx
import numpy as np

from modelstats.errors import (
    NotAGraphModelError,
    OptionError,
    ShapeError,
    UnsupportedLayerError,
    user_stacklevel,
)
from modelstats.formulas import numel
from modelstats.registry import BACKEND, NESTED, Cost, Registry, Unsupported
from modelstats.training import BATCH_STATISTICS_FLOPS, backward_macs, needs_gradient

__all__ = ["Convention", "NodeCost", "UnsupportedLayerWarning", "node_costs"]

class UnsupportedLayerWarning(UserWarning):
    """A layer class has no cost rule: its rows are ``unsupported`` and totals a lower bound."""


@dataclass(frozen=True)
class Convention:
    """What a FLOP is. ``FLOPs = 2 x MACs + bias adds + elementwise work``, each term optional.

    Parameters
    ----------
    elementwise : bool, default True
        Count activations, normalisation, pooling, merges, softmax, ... (1 FLOP per
        elementary operation, see docs/conventions.md).
    bias : bool, default True
        Count one FLOP per bias addition.
    fold_batchnorm : bool, default False
        Treat batch normalisation after a conv/dense layer as folded into its weights: it then
        costs only the bias addition it leaves behind (1 FLOP per element).

    Examples
    --------
    >>> Convention.preset("macs_only")
    Convention(elementwise=False, bias=False, fold_batchnorm=False)
    """

    elementwise: bool = True
    bias: bool = True
    fold_batchnorm: bool = False

    @classmethod
    def preset(cls, name: str) -> "Convention":
        presets = {
            "default": cls(),
            "macs_only": cls(elementwise=False, bias=False),  # FLOPs = 2 x MACs, as most papers
            "folded": cls(fold_batchnorm=True),  # deployment view: batch-norm folded
        }
        if not isinstance(name, str) or name not in presets:
            raise OptionError(
                f"Unknown convention preset {name!r}; expected one of {list(presets)} or a "
                "Convention(elementwise=..., bias=..., fold_batchnorm=...)."
            )
        return presets[name]

    def flops(self, cost: Cost, folded: bool = False) -> int:
        total = 2 * cost.macs  # one multiply and one add per MAC
        if self.bias:
            total += cost.bias
        if self.elementwise:
            total += cost.elementwise
            if folded:
                total += cost.norm // 2  # the folded layer keeps one add per element
            else:
                total += cost.norm
        return total

    def backward_flops(self, cost: Cost, input_macs: int, weight_macs: int,
                       flows: bool, trains: bool) -> tuple[int, int]:
        """FLOPs of a call's input and weight gradients: 2 x their MACs, plus, where the
        gradient flows through the call (``flows``), its elementwise work once more (the
        derivative of each elementwise step), plus one add per bias element for the bias
        gradient where the call ``trains``."""
        input_flops = 2 * input_macs
        if self.elementwise and flows:
            input_flops += cost.elementwise + cost.norm
        weight_flops = 2 * weight_macs
        if self.bias and trains:
            weight_flops += cost.bias
        return input_flops, weight_flops

    def describe(self) -> str:
        terms = ["2 x MACs"]
        if self.bias:
            terms.append("bias adds")
        if self.elementwise:
            terms.append("elementwise work" + (" (batch-norm folded)" if self.fold_batchnorm
                                               else ""))
        return "FLOPs = " + " + ".join(terms)


@dataclass
class NodeCost:
    """The counted cost of one call node (per sample, before any batch multiplier)."""

    node: str
    type: str
    status: str  # counted, zero, traced (from a backend trace) or unsupported
    cost: Cost = field(default_factory=Cost)
    flops: int = 0
    activations: int = 0
    activation_bytes: int = 0
    # Memory traffic (memory_traffic): inputs and outputs per sample; the variables the call
    # reads, once per batch.
    input_bytes: int = 0
    weight_bytes: int = 0
    bytes_written: int = 0
    reason: str = ""
    # A training step (node_costs(training=True)); zero otherwise.
    bwd_input_macs: int = 0
    bwd_weight_macs: int = 0
    bwd_input_flops: int = 0
    bwd_weight_flops: int = 0
    batch_statistics_flops: int = 0  # batch normalisation's mean and variance

    @property
    def bytes_read(self) -> int:
        """Bytes the call reads per sample, its variables included (read once per batch)."""
        return self.input_bytes + self.weight_bytes

    @property
    def train_macs(self) -> int:
        """Forward plus backward MACs of a training step."""
        return self.cost.macs + self.bwd_input_macs + self.bwd_weight_macs

    @property
    def train_flops(self) -> int:
        """Forward (with batch statistics) plus backward FLOPs of a training step."""
        return (self.flops + self.batch_statistics_flops + self.bwd_input_flops
                + self.bwd_weight_flops)

    def add_work(self, other: "NodeCost") -> None:
        """Add another record's work (the calls inside a node kept whole)."""
        self.cost += other.cost
        self.flops += other.flops
        self.bwd_input_macs += other.bwd_input_macs
        self.bwd_weight_macs += other.bwd_weight_macs
        self.bwd_input_flops += other.bwd_input_flops
        self.bwd_weight_flops += other.bwd_weight_flops
        self.batch_statistics_flops += other.batch_statistics_flops


@functools.lru_cache(maxsize=None)  # a handful of dtype names; np.dtype() is slow to build
def _itemsize(dtype: Optional[str]) -> int:
    if not dtype:
        return 4
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}.get(dtype, 4)


_NO_COST = Cost()


def _weight_bytes(data: dict) -> int:
    """Bytes of the variables a call reads, each in its own dtype."""
    return sum(size * _itemsize(dtype) for size, dtype in data.get("weight_sizes", ()))


class _TensorBytes:
    """What calls move to and from memory, each tensor as stored (the traffic fields of
    :class:`NodeCost`).

    - ``input_bytes``: every input tensor in its producer's dtype (float32 into the first
      layer of a ``mixed_float16`` model, float16 between its layers);
    - ``weight_bytes``: every variable the call reads, in its own dtype (float32 kernels under
      ``mixed_float16``), at every call of a shared layer (parameters count the first only);
    - ``bytes_written``: every output in its dtype.

    Each call is assumed to go to memory and back (no fusion), so the bytes of a tensor are
    written by its producer and read by every consumer. A node kept whole (a nested model or
    traced layer with ``expand_nested=False``) is one fused call: its intermediate tensors are
    not counted. An input layer runs nothing and moves nothing.

    The bytes of each node's outputs (all samples of a traced call's leading axis) are
    computed once and read again by every consumer. An unknown size raises
    :class:`ShapeError` naming its node: read in graph order (topological), the first node
    that has one.
    """

    def __init__(self, graph: nx.DiGraph) -> None:
        self.nodes = graph.nodes
        self.outputs: dict[str, list[int]] = {}

    def of_outputs(self, node_id: str, data: dict) -> list[int]:
        """Bytes of each output of ``node_id``."""
        for shape in data["output_shapes"]:
            if None in shape:
                raise ShapeError(
                    f"Counting costs needs every size; layer '{node_id}' ({data['type']}) has "
                    f"shape {shape} with unknown dimensions. Pass input_shape=(...) (without "
                    "the batch dimension) to fix the model's input size."
                )
        factor = data.get("batch_factor", 1) * _itemsize(data["dtype"])
        sizes = self.outputs[node_id] = [factor * numel(s) for s in data["output_shapes"]]
        return sizes

    def read_by(self, data: dict) -> int:
        """Bytes of every input tensor of a call, in its producer's dtype."""
        known, total = self.outputs, 0
        for src, index in data["inputs"]:
            sizes = known.get(src) or self.of_outputs(src, self.nodes[src])
            total += sizes[index]
        return total


def _folded(graph: nx.DiGraph, node_id: str, registry: Registry) -> bool:
    """A batch norm whose only input comes from an operation it can be folded into."""
    predecessors = list(graph.predecessors(node_id))
    return len(predecessors) == 1 and registry.foldable(
        type(graph.nodes[predecessors[0]]["operation"])
    )


def _nested_work(data: dict, convention: Convention, registry: Registry, record: NodeCost,
                 training: bool, inputs_need_gradient: bool) -> None:
    """Add to ``record`` the work of a nested model or traced layer kept as one node: its
    inner graph counted with the same convention and registry (and, in a training step, with
    the caller's inputs needing a gradient or not), so the totals equal the expanded model's."""
    from modelstats.graph import inner_graph

    try:
        inner = inner_graph(data)
    except NotAGraphModelError as exc:
        raise _NotSymbolic(str(exc)) from None
    if data.get("training_argument") is not None:  # Keras passes it down to the inner calls
        for _, inner_data in inner.nodes(data=True):
            if inner_data.get("training_argument") is None:
                inner_data["training_argument"] = data["training_argument"]
    for inner_record in node_costs(inner, convention, registry=registry, training=training,
                                   _inputs_need_gradient=inputs_need_gradient, _warn=False):
        if inner_record.status == "unsupported":
            raise Unsupported(f"{inner_record.node} ({inner_record.type}) inside: "
                              f"{inner_record.reason}")
        if inner_record.status == "traced" and record.status != "traced":
            record.status = "traced"  # part of the sum comes from a backend trace
            record.reason = f"{inner_record.node} ({inner_record.type}) inside: " \
                f"{inner_record.reason}"
        record.add_work(inner_record)


class _NotSymbolic(Unsupported):
    """A call kept whole whose inner graph could not be traced on symbolic tensors."""


def _summary(error: str) -> str:
    """The line of an error message that says what went wrong, shortened: Keras wraps a
    layer's error in "Exception encountered when calling ..." lines and colours it."""
    import re

    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in error.splitlines()]
    lines = [line for line in lines if line] or [""]
    useful = next((line for line in lines if "Exception encountered when calling" not in line),
                  lines[0])
    if useful is not lines[0]:
        kind = re.search(r"(\w+(?:Error|Exception)): ", lines[0])
        useful = f"{kind.group(1)}: {useful}" if kind else useful
    if len(useful) > 160:  # whole sentences where they fit (a printed value can be huge)
        end = useful.rfind(". ", 0, 160)
        useful = useful[:end + 1] if end > 0 else useful[:157] + "..."
    return useful


def _backend_work(graph: nx.DiGraph, node_id: str, record: NodeCost, convention: Convention,
                  why: str, because: str, needs: Optional[dict]) -> None:
    """Count a call from its trace under the backend (:mod:`modelstats.backend_trace`):
    status ``traced``, the note naming the backend and ``because`` (why no Keras-level count:
    its symbolic trace failed, or its rule is :data:`~modelstats.registry.BACKEND`); in a
    training step (``needs``) its backward work as a rule's. When that trace fails too, raise
    Unsupported with ``why`` and the trace's reason."""
    from modelstats.backend_trace import trace_node

    try:
        traced = trace_node(graph, node_id)
    except Unsupported as exc:
        raise Unsupported(f"{why}; {exc.reason}") from None
    record.cost = traced.cost
    record.flops = convention.flops(record.cost)
    record.status = "traced"
    record.reason = f"{traced.note}; {because}"
    if needs is not None:
        _train(record, node_id, graph.nodes[node_id], convention, needs)


def _train(record: NodeCost, node_id: str, data: dict,
           convention: Convention, needs: dict) -> None:
    """Fill the backward columns of one counted (not nested) call."""
    from modelstats.adapters import computes_batch_statistics

    predecessors = [src for src, _ in data["inputs"]]
    inputs_needing = sum(needs[src] for src in predecessors)
    trains = bool(data.get("trains"))
    input_macs, weight_macs = backward_macs(
        record.cost, has_weights=bool(data.get("has_weights")), trains=trains,
        inputs_needing=inputs_needing, inputs=len(predecessors),
    )
    record.bwd_input_macs, record.bwd_weight_macs = input_macs, weight_macs
    record.bwd_input_flops, record.bwd_weight_flops = convention.backward_flops(
        record.cost, input_macs, weight_macs, flows=needs[node_id], trains=trains
    )
    if convention.elementwise and computes_batch_statistics(data["operation"],
                                                            data.get("training_argument")):
        record.batch_statistics_flops = BATCH_STATISTICS_FLOPS * record.activations


def node_costs(
    graph: nx.DiGraph,
    convention: Convention = Convention(),
    *,
    strict: bool = False,
    registry: Optional[Registry] = None,
    training: bool = False,
    _inputs_need_gradient: bool = False,
    _warn: bool = True,
) -> list[NodeCost]:
    """Cost of every node of a graph from :func:`modelstats.to_networkx`, in graph order.

    Unsupported layers are listed (``status="unsupported"``) and warned about once per class;
    with ``strict=True`` they raise :class:`UnsupportedLayerError` naming every such class. A
    call that Keras symbolic tensors refused is counted from its trace under the backend
    (``status="traced"``, :mod:`modelstats.backend_trace`) when it can be.
    A rule that fails raises :class:`~modelstats.errors.RuleError` naming the layer. With
    ``training=True`` the records also hold the backward work of a training step
    (:mod:`modelstats.training`).
    """
    if registry is None:
        from modelstats import rules

        registry = rules.active()
    needs = needs_gradient(graph, _inputs_need_gradient) if training else {}
    results: list[NodeCost] = []
    unsupported: dict[str, list[str]] = {}
    tensor_bytes = _TensorBytes(graph)
    for node_id, data in graph.nodes(data=True):
        written = sum(tensor_bytes.of_outputs(node_id, data))
        operation = data["operation"]
        rule = registry.cost_rule(type(operation))
        # Inside a traced call the leading axis can hold several of the model's samples
        # (Swin's windows: batch x windows); a node then does its per-sample work that often.
        repeats = data.get("batch_factor", 1)
        moves = data["type"] != "InputLayer"
        record = NodeCost(
            node=node_id,
            type=data["type"],
            status="counted",
            activations=repeats * sum(numel(s) for s in data["output_shapes"]),
            activation_bytes=written,
            input_bytes=tensor_bytes.read_by(data) if moves else 0,
            weight_bytes=_weight_bytes(data) if moves else 0,
            bytes_written=written if moves else 0,
        )
        try:
            if data.get("trace_error"):  # the walk tried to trace this call and could not
                _backend_work(graph, node_id, record, convention,
                              f"no rule for {data['type']}, and its call could not be traced "
                              f"on symbolic inputs ({data['trace_error']})",
                              "its trace on Keras symbolic tensors failed "
                              f"({_summary(data['trace_error'])})",
                              needs if training else None)
            elif rule is BACKEND:
                _backend_work(graph, node_id, record, convention,
                              f"{data['type']} is counted from its backend trace",
                              f"the rule for {data['type']} is BACKEND",
                              needs if training else None)
            elif rule is NESTED or (
                rule is None and data.get("traceable") and registry.traceable(type(operation))
            ):
                inputs_need = any(needs.get(src, False) for src, _ in data["inputs"])
                try:
                    _nested_work(data, convention, registry, record, training, inputs_need)
                except _NotSymbolic as exc:  # kept whole, and its call refuses symbolic inputs
                    _backend_work(graph, node_id, record, convention, exc.reason,
                                  "its trace on Keras symbolic tensors failed "
                                  f"({_summary(exc.reason)})", needs if training else None)
            else:
                record.cost = registry.cost(
                    operation, data["input_shapes"], data["output_shapes"], node=node_id
                )
                if repeats != 1:
                    record.cost = record.cost.scaled(repeats)
                folded = (convention.fold_batchnorm and record.cost.norm
                          and _folded(graph, node_id, registry))
                record.flops = convention.flops(record.cost, folded=bool(folded))
                if training:
                    _train(record, node_id, data, convention, needs)
        except Unsupported as exc:
            record.status = "unsupported"
            record.reason = exc.reason
            unsupported.setdefault(record.type, []).append(node_id)
        else:
            if record.status == "counted" and record.cost == _NO_COST:
                record.status = "zero"
        results.append(record)

    if unsupported and _warn:
        listing = "; ".join(f"{cls} ({', '.join(nodes)})" for cls, nodes in unsupported.items())
        if strict:
            raise UnsupportedLayerError(
                f"No cost rule for {len(unsupported)} layer class(es): {listing}. Register them "
                "with modelstats.register_layer(cls, cost=...), or pass strict=False to get "
                "partial totals."
            )
        reasons = {r.node: r.reason for r in results if r.status == "unsupported"}
        for cls, nodes in unsupported.items():
            reason = " ".join(reasons[nodes[0]].split())  # one line (TensorFlow's span several)
            if len(reason) > 400:
                reason = reason[:397] + "..."
            what = (f"has no cost rule for layer class {cls} (nodes: {', '.join(nodes)})"
                    if reason == f"no cost rule for {cls}" else
                    f"could not count layer class {cls} (nodes: {', '.join(nodes)}): {reason}")
            warnings.warn(
                f"modelstats {what}; its rows are 'unsupported' and the totals are a lower "
                f"bound. Register a rule with modelstats.register_layer({cls}, cost=...).",
                UnsupportedLayerWarning,
                stacklevel=user_stacklevel(),
            )
    return results
