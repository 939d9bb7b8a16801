"""to_networkx on generated architectures: chains, Add/Multiply/Concatenate branches and
``keras.ops`` indexing calls (from the RF strategies), nested as a sub-model, followed by a
shared layer called twice. The graph must match the generated model exactly: one node per
operation (layer or op), edges and shapes."""

from __future__ import annotations

import networkx as nx
from hypothesis import assume, given

import modelstats
from tests.properties.strategies import build, geometry_specs


@given(spec=geometry_specs(max_blocks=4))
def test_graph_matches_generated_model(spec):
    import keras

    try:
        inner = build(spec)
    except Exception:  # noqa: BLE001 - a size became invalid: not an architecture
        assume(False)
    inner.name = "inner"
    outer_input = keras.Input(inner.input.shape[1:], name="outer_x")
    shared = keras.layers.Conv1D(2, 1, name="shared") if len(inner.output.shape) == 3 else \
        keras.layers.Conv2D(2, 1, name="shared")
    model = keras.Model(outer_input, shared(shared(inner(outer_input))))

    g = modelstats.to_networkx(model)
    assert nx.is_directed_acyclic_graph(g)
    operations = inner.operations  # layers and keras.ops calls (x[..., :c], split, take)
    expected_nodes = {"outer_x", "shared", "shared#1"} | {f"inner/{op.name}" for op in operations}
    assert set(g.nodes) == expected_nodes
    expected_edges = {("outer_x", "inner/x"), ("shared", "shared#1"),
                      (f"inner/{operations[-1].name}", "shared")}
    for op in operations:
        for node in op._inbound_nodes:
            for parent in node.parent_nodes:
                expected_edges.add((f"inner/{parent.operation.name}", f"inner/{op.name}"))
    assert set(g.edges) == expected_edges
    for op in operations:
        shapes = [tuple(t.shape[1:]) for t in keras.tree.flatten(op.output)]
        assert g.nodes[f"inner/{op.name}"]["output_shapes"] == shapes
    assert sum(d["params"] for _, d in g.nodes(data=True)) == model.count_params()
    assert g.nodes["shared#1"]["params"] == 0
