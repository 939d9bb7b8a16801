"""Reading an attention mask on a full-length input: which keys may each query see?

Attention under a mask sees what the mask allows. keras-hub builds its masks from the model's
padding mask (one 0/1 per token) and, for decoders, a causal mask of constants, merged by a few
``keras.ops`` calls. On a full-length input, every token kept, such a mask is a fixed matrix: it
is read here by running those calls once on concrete tensors, every per-token model input set
to ones (every token is kept; token ids of 1, not the padding id 0). A mask that depends on any
other model input (an ``attention_mask`` the caller passes at run time, ``(T, T)``) is a choice
made at run time and is not read.

The propagation (:mod:`modelstats.propagation`) then calls attention whose mask allows every
key global, as without a mask, and names a causal one in its note.
"""

from __future__ import annotations

from typing import Any, Optional

import networkx as nx
import numpy as np

__all__ = ["read_mask", "mask_kind"]

#: What :func:`mask_kind` answers.
ALL, CAUSAL, OTHER = "all", "causal", "other"


def read_mask(graph: nx.DiGraph, node: str, index: int = 0) -> Optional[np.ndarray]:
    """The value of output ``index`` of ``node`` on a full-length input, or None when it
    cannot be read: it depends on a model input that is not one value per token, a size is
    unknown, or a call fails.

    Every model input it depends on must be ``(T,)`` (a padding mask, token ids) and is set to
    ones. The calls run one by one on the active backend, in inference mode.
    """
    from modelstats.adapters import adapter_for_call, run_calls

    needed = nx.ancestors(graph, node) | {node}
    model_inputs = set(graph.graph.get("inputs", ()))
    values: dict[tuple[str, int], Any] = {}
    for node_id in model_inputs & needed:
        data = graph.nodes[node_id]
        shapes = data["output_shapes"]
        if len(shapes) != 1 or len(shapes[0]) != 1 or shapes[0][0] is None:
            return None  # not one value per token: a mask chosen at run time
        values[(node_id, 0)] = np.ones((1, *shapes[0]), dtype=data["dtype"] or "int32")
    steps = [(n, d) for n, d in graph.nodes(data=True) if n in needed and n not in model_inputs]
    try:
        adapter = adapter_for_call(graph.nodes[node]["operation"])
        return np.asarray(run_calls(adapter, steps, values)[(node, index)])
    except Exception:  # noqa: BLE001 - an unreadable mask stays unknown, never a guess
        return None


def mask_kind(mask: Optional[np.ndarray]) -> Optional[str]:
    """``"all"`` when every query may see every key, ``"causal"`` when query t sees keys up to
    t, ``"other"`` for any other pattern, None when the values do not say (a float mask of
    other values than 0 and 1, or no mask).

    The last two axes are (queries, keys); the leading ones (batch, heads) must all agree.
    Boolean and integer masks allow their non-zero entries, float masks of 0s and 1s their 1s.

    >>> import numpy as np
    >>> mask_kind(np.ones((1, 4, 4), dtype=bool)), mask_kind(np.tril(np.ones((4, 4), "int32")))
    ('all', 'causal')
    >>> mask_kind(np.array([[0.0, -1e9], [0.0, 0.0]]))  # an additive mask: not read
    """
    if mask is None or mask.ndim < 2:
        return None
    if mask.dtype.kind in "biu":
        allowed = mask != 0
    elif mask.dtype.kind == "f" and np.isin(mask, (0.0, 1.0)).all():
        allowed = mask == 1.0
    else:
        return None
    if allowed.all():
        return ALL
    queries, keys = allowed.shape[-2:]
    if queries == keys and (allowed == np.tril(np.ones((queries, keys), dtype=bool))).all():
        return CAUSAL
    return OTHER
