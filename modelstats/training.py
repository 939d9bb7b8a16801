"""What one training step costs on top of the forward pass: backward MACs, per call.

The convention (docs/conventions.md, "Training step"):

- a product ``x W`` of an input by a weight costs its forward MACs again for the input
  gradient ``dX = dY Wᵀ``, and again for the weight gradient ``dW = xᵀ dY``;
- ``dW`` only where the weight is trainable;
- ``dX`` only where the input needs a gradient: some call upstream of it has trainable weights.
  The model's inputs never do, nor integer or boolean tensors, so a frozen prefix and the
  first layer after the input do no input-gradient work;
- a product of two activations (attention scores, the weighted sum of values, ``ops.matmul``
  of two tensors) costs one product per operand that needs a gradient;
- a recurrent layer's ``h U`` needs its state gradient whenever the layer trains, even when
  its input does not need one.

Everything here is a pure function of a node's :class:`~modelstats.registry.Cost` and of
which tensors need gradients; :func:`modelstats.cost.node_costs` applies it per node.

>>> from modelstats.registry import Cost
>>> conv = Cost(macs=1000)
>>> backward_macs(conv, has_weights=True, trains=True, inputs_needing=0, inputs=1)
(0, 1000)
>>> backward_macs(conv, has_weights=True, trains=True, inputs_needing=1, inputs=1)
(1000, 1000)
"""

from __future__ import annotations

from typing import Optional

import networkx as nx

from modelstats.registry import Cost

__all__ = [
    "OPTIMIZER_FLOPS",
    "BATCH_STATISTICS_FLOPS",
    "backward_macs",
    "needs_gradient",
    "optimizer_flops",
]

#: FLOPs per trainable parameter of one update, as Keras 3 writes each optimizer's
#: ``update_step`` (scalars such as the bias corrections are computed once per variable and
#: not counted). SGD: ``w -= g * lr``. Momentum: ``m = m * mu - g * lr; w += m``. Adam:
#: ``m += (g - m) * (1 - b1)`` (3), ``v += (g² - v) * (1 - b2)`` (4),
#: ``w -= m * alpha / (sqrt(v) + eps)`` (5). AdamW: Adam plus ``w = w - w * wd * lr`` (3).
OPTIMIZER_FLOPS = {"sgd": 2, "momentum": 4, "adam": 12, "adamw": 15}

#: FLOPs per element of batch normalisation's statistics in training mode: the mean (one add)
#: and the variance (subtract the mean, square, add).
BATCH_STATISTICS_FLOPS = 4

_NO_GRADIENT_TYPES = frozenset({"StopGradient"})


def _differentiable(dtype: Optional[str]) -> bool:
    """Gradients flow through floating tensors only (indices, masks and token ids have none)."""
    return dtype is None or "float" in str(dtype)


def needs_gradient(graph: nx.DiGraph, inputs_need_gradient: bool = False) -> dict:
    """Whether each node's outputs need a gradient in a training step.

    A node's outputs need one when it reads trainable weights or one of its inputs needs one.
    The model's inputs need one only with ``inputs_need_gradient`` (used for the graph inside
    a nested model whose caller's inputs do); constants and integer tensors never do.

    >>> import networkx as nx
    >>> g = nx.DiGraph()
    >>> g.add_node("x", is_input=True, trains=False, dtype="float32", type="InputLayer")
    >>> g.add_node("frozen", is_input=False, trains=False, dtype="float32", type="Conv2D")
    >>> g.add_node("head", is_input=False, trains=True, dtype="float32", type="Dense")
    >>> g.add_node("relu", is_input=False, trains=False, dtype="float32", type="ReLU")
    >>> g.add_edges_from([("x", "frozen"), ("frozen", "head"), ("head", "relu")])
    >>> needs_gradient(g)
    {'x': False, 'frozen': False, 'head': True, 'relu': True}
    """
    needs: dict = {}
    for node in nx.topological_sort(graph):
        data = graph.nodes[node]
        if data.get("is_input"):
            flows = inputs_need_gradient
        else:
            flows = bool(data.get("trains")) or any(needs[p] for p in graph.predecessors(node))
        needs[node] = (flows and _differentiable(data.get("dtype"))
                       and data.get("type") not in _NO_GRADIENT_TYPES)
    return needs


def backward_macs(cost: Cost, *, has_weights: bool, trains: bool, inputs_needing: int,
                  inputs: int) -> tuple[int, int]:
    """``(input-gradient MACs, weight-gradient MACs)`` of one call in a training step.

    Parameters
    ----------
    cost : Cost
        The call's forward work; ``state_macs`` and ``pair_macs`` say which part of its MACs
        multiplies internal state or two activations.
    has_weights, trains : bool
        The call reads weights; some of them are trainable.
    inputs_needing, inputs : int
        How many of its tensor inputs need a gradient, out of how many.

    Examples
    --------
    A frozen LSTM on an input that needs a gradient: ``dX`` through both projections, no
    ``dW``; a trainable one on the model's input: no input gradient, but ``h U`` still
    needs its state gradient, and both kernels their weight gradient.

    >>> lstm = Cost(macs=1536, state_macs=1024)  # 4 * (8*16 + 16*16), h U: 4 * 16*16
    >>> backward_macs(lstm, has_weights=True, trains=False, inputs_needing=1, inputs=1)
    (1536, 0)
    >>> backward_macs(lstm, has_weights=True, trains=True, inputs_needing=0, inputs=1)
    (1024, 1536)

    ``ops.matmul(a, b)`` of two activations: one product per operand needing a gradient.

    >>> backward_macs(Cost(macs=60), has_weights=False, trains=False, inputs_needing=1,
    ...               inputs=2)
    (60, 0)
    """
    if not has_weights:
        # Products of the inputs with each other (two or more tensor operands) or with
        # constants (one): one backward product per operand that needs a gradient; an
        # attention-style call with more operands still does two (dQ/dK, dA/dV).
        operands = min(inputs_needing, 2) if inputs > 1 else min(inputs_needing, 1)
        return cost.macs * operands, 0
    inner = cost.state_macs + cost.pair_macs
    with_input = cost.macs - inner  # input x weight
    input_gradient = with_input if inputs_needing else 0
    if trains or inputs_needing:  # the call's own intermediate tensors need gradients
        input_gradient += cost.state_macs + 2 * cost.pair_macs
    weight_gradient = with_input + cost.state_macs if trains else 0
    return input_gradient, weight_gradient


def optimizer_flops(trainable_params: int) -> dict:
    """FLOPs of one update of ``trainable_params`` parameters, per optimizer.

    >>> optimizer_flops(12_810)["adam"]  # the seed classifier's head: 12,810 x 12
    153720
    """
    return {name: per * trainable_params for name, per in OPTIMIZER_FLOPS.items()}
