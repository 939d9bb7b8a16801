"""Per-node MACs, FLOPs, parameters and activation memory, from shapes alone.

The engine walks the call graph once, looks up each operation's cost rule along its class MRO
and applies the counting convention. It never runs the model and never touches weights.
"""

from __future__ import annotations

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
from modelstats.registry import NESTED, Cost, Registry, Unsupported

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
    status: str  # counted, zero or unsupported
    cost: Cost = field(default_factory=Cost)
    flops: int = 0
    activations: int = 0
    activation_bytes: int = 0
    reason: str = ""


def _itemsize(dtype: Optional[str]) -> int:
    if not dtype:
        return 4
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return {"bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1}.get(dtype, 4)


def _require_known(node_id: str, data: dict) -> None:
    for shape in (*data["input_shapes"], *data["output_shapes"]):
        if any(d is None for d in shape):
            raise ShapeError(
                f"Counting costs needs every size; layer '{node_id}' ({data['type']}) has "
                f"shape {shape} with unknown dimensions. Pass input_shape=(...) (without the "
                "batch dimension) to fix the model's input size."
            )


def _folded(graph: nx.DiGraph, node_id: str, registry: Registry) -> bool:
    """A batch norm whose only input comes from an operation it can be folded into."""
    predecessors = list(graph.predecessors(node_id))
    return len(predecessors) == 1 and registry.foldable(
        type(graph.nodes[predecessors[0]]["operation"])
    )


def _nested_cost(data: dict, convention: Convention, registry: Registry) -> tuple[Cost, int]:
    """Cost and FLOPs of a nested model or traced layer kept as one node: its inner graph
    counted with the same convention and registry, so the totals equal the expanded model's."""
    from modelstats.graph import inner_graph

    try:
        inner = inner_graph(data)
    except NotAGraphModelError as exc:
        raise Unsupported(str(exc)) from None
    total, flops = Cost(), 0
    for record in node_costs(inner, convention, registry=registry, _warn=False):
        if record.status == "unsupported":
            raise Unsupported(f"{record.node} ({record.type}) inside: {record.reason}")
        total += record.cost
        flops += record.flops
    return total, flops


def node_costs(
    graph: nx.DiGraph,
    convention: Convention = Convention(),
    *,
    strict: bool = False,
    registry: Optional[Registry] = None,
    _warn: bool = True,
) -> list[NodeCost]:
    """Cost of every node of a graph from :func:`modelstats.to_networkx`, in graph order.

    Unsupported layers are listed (``status="unsupported"``) and warned about once per class;
    with ``strict=True`` they raise :class:`UnsupportedLayerError` naming every such class.
    A rule that fails raises :class:`~modelstats.errors.RuleError` naming the layer.
    """
    if registry is None:
        from modelstats import rules

        registry = rules.active()
    results: list[NodeCost] = []
    unsupported: dict[str, list[str]] = {}
    for node_id, data in graph.nodes(data=True):
        _require_known(node_id, data)
        operation = data["operation"]
        # Inside a traced call the leading axis can hold several of the model's samples
        # (Swin's windows: batch x windows); a node then does its per-sample work that often.
        repeats = data.get("batch_factor", 1)
        activations = repeats * sum(numel(s) for s in data["output_shapes"])
        record = NodeCost(
            node=node_id,
            type=data["type"],
            status="counted",
            activations=activations,
            activation_bytes=activations * _itemsize(data["dtype"]),
        )
        try:
            if data.get("trace_error"):  # the walk tried to trace this call and could not
                raise Unsupported(
                    f"no rule for {data['type']}, and its call could not be traced on symbolic "
                    f"inputs ({data['trace_error']})"
                )
            if registry.cost_rule(type(operation)) is NESTED or (
                registry.traceable(type(operation)) and data.get("traceable")
            ):
                record.cost, record.flops = _nested_cost(data, convention, registry)
            else:
                record.cost = registry.cost(
                    operation, data["input_shapes"], data["output_shapes"], node=node_id
                ).scaled(repeats)
                folded = (convention.fold_batchnorm and record.cost.norm
                          and _folded(graph, node_id, registry))
                record.flops = convention.flops(record.cost, folded=bool(folded))
        except Unsupported as exc:
            record.status = "unsupported"
            record.reason = exc.reason
            unsupported.setdefault(record.type, []).append(node_id)
        else:
            if record.cost == Cost():
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
        for cls, nodes in unsupported.items():
            warnings.warn(
                f"modelstats has no cost rule for layer class {cls} (nodes: {', '.join(nodes)}); "
                "its rows are 'unsupported' and the totals are a lower bound. Register a rule "
                f"with modelstats.register_layer({cls}, cost=...).",
                UnsupportedLayerWarning,
                stacklevel=user_stacklevel(),
            )
    return results
