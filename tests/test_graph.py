"""to_networkx: structure, shapes and parameters against Keras' own bookkeeping."""

from __future__ import annotations

import networkx as nx
import pytest

import modelstats
from modelstats.errors import NotAGraphModelError, ShapeError
from tests.conftest import APPLICATIONS


def keras_output_shapes(keras, operation, input_shapes, keras_node):
    """Keras' own answer for the output shapes of one call, from its input shapes."""
    batched = [(None, *s) for s in input_shapes]
    try:
        arg = batched[0] if len(batched) == 1 else batched
        out = operation.compute_output_shape(arg)
    except (NotImplementedError, TypeError, AttributeError, ValueError):
        tensors = {
            id(t): keras.KerasTensor(shape, dtype=t.dtype)
            for t, shape in zip(keras_node.arguments.keras_tensors, batched)
        }
        args, kwargs = keras_node.arguments.fill_in(tensors)
        spec = operation.compute_output_spec(*args, **kwargs)
        return [tuple(t.shape[1:]) for t in keras.tree.flatten(spec)]
    if isinstance(out, tuple) and (not out or not isinstance(out[0], (tuple, list))):
        out = [out]
    return [tuple(s[1:]) for s in out]


def keras_call_count(model):
    """Operation calls Keras records for ``model``, nested models counted by their contents."""
    functional = getattr(model, "_functional", None) or model
    total = 0
    for depth_nodes in functional._nodes_by_depth.values():
        for node in depth_nodes:
            op = node.operation
            nested = not node.is_input and hasattr(
                getattr(op, "_functional", None) or op, "_nodes_by_depth"
            )
            total += keras_call_count(op) if nested else 1
    return total


class TestClothingClassifier:
    def test_dag_with_nested_paths(self, classifier):
        g = modelstats.to_networkx(classifier)
        assert nx.is_directed_acyclic_graph(g)
        base = classifier.get_layer("mobilenetv2_1.00_224")
        for layer in base.layers:
            assert f"mobilenetv2_1.00_224/{layer.name}" in g
            assert g.nodes[f"mobilenetv2_1.00_224/{layer.name}"]["path"] == (
                "mobilenetv2_1.00_224",
            )
        assert "augmentation/random_flip" in g and "augmentation/random_rotation" in g
        assert g.graph["inputs"] == ["image"] and g.graph["outputs"] == ["dense"]

    def test_preprocessing_ops_are_nodes(self, classifier):
        g = modelstats.to_networkx(classifier)
        # keras.ops calls and the base's Input are named by Keras' process-wide counters, so the
        # ids are looked up by type: tests run in any order.
        by_type = {d["type"]: n for n, d in g.nodes(data=True) if d["path"] == ()}
        divide, subtract = by_type["TrueDivide"], by_type["Subtract"]
        base_input = "mobilenetv2_1.00_224/" + classifier.get_layer("mobilenetv2_1.00_224").layers[0].name
        assert list(g.successors(divide)) == [subtract]
        assert list(g.successors(subtract)) == [base_input]
        assert list(g.predecessors("global_average_pooling2d")) == [
            "mobilenetv2_1.00_224/out_relu"
        ]

    def test_parameters(self, classifier):
        g = modelstats.to_networkx(classifier)
        params = sum(d["params"] for _, d in g.nodes(data=True))
        trainable = sum(d["trainable_params"] for _, d in g.nodes(data=True))
        assert params == classifier.count_params() == 2_270_794
        assert trainable == 12_810  # Dense(1280 -> 10): 1280 * 10 weights + 10 biases
        assert g.nodes["mobilenetv2_1.00_224/Conv_1"]["params"] == 320 * 1280  # 1x1, no bias

    def test_edge_shapes_equal_keras_tensors(self, classifier):
        g = modelstats.to_networkx(classifier)
        base = classifier.get_layer("mobilenetv2_1.00_224")
        for layer in base.layers:
            node = f"mobilenetv2_1.00_224/{layer.name}"
            for _, _, shapes in g.out_edges(node, data="shapes"):
                assert shapes == [tuple(layer.output.shape[1:])]

    def test_not_expanded(self, classifier):
        g = modelstats.to_networkx(classifier, expand_nested=False)
        assert [g.nodes[n]["type"] for n in g.nodes] == [
            "InputLayer", "Sequential", "TrueDivide", "Subtract", "Functional",
            "GlobalAveragePooling2D", "Dropout", "Dense",
        ]
        assert "mobilenetv2_1.00_224" in g and "augmentation" in g
        assert sum(d["params"] for _, d in g.nodes(data=True)) == 2_270_794


@pytest.mark.parametrize("name", APPLICATIONS)
def test_applications(application, keras, name):
    model = application(name)
    g = modelstats.to_networkx(model)
    assert nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == keras_call_count(model)
    assert sum(d["params"] for _, d in g.nodes(data=True)) == model.count_params()
    for node_id, data in g.nodes(data=True):
        if data["keras_node"].is_input:  # model inputs, and inner inputs passing a tensor through
            assert data["input_shapes"] in ([], data["output_shapes"])
            continue
        expected = keras_output_shapes(
            keras, data["operation"], data["input_shapes"], data["keras_node"]
        )
        assert data["output_shapes"] == expected, node_id


def test_shared_layer_two_nodes_weights_once(keras):
    shared = keras.layers.Dense(4, name="shared")
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    out = keras.layers.Add(name="add")([shared(a), shared(b)])
    model = keras.Model([a, b], out)
    g = modelstats.to_networkx(model)
    assert set(g.nodes) == {"a", "b", "shared", "shared#1", "add"}
    assert g.nodes["shared"]["params"] == 3 * 4 + 4
    assert g.nodes["shared#1"]["params"] == 0
    assert g.nodes["shared#1"]["call_index"] == 1
    assert g.nodes["shared#1"]["operation"] is g.nodes["shared"]["operation"]
    assert nx.is_directed_acyclic_graph(g)
    assert sum(d["params"] for _, d in g.nodes(data=True)) == model.count_params()


def test_nested_two_levels(keras):
    inner_in = keras.Input((8, 8, 3), name="inner_in")
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, name="c")(inner_in), name="inner")
    mid_in = keras.Input((8, 8, 3), name="mid_in")
    mid = keras.Model(mid_in, keras.layers.ReLU(name="r")(inner(mid_in)), name="mid")
    top_in = keras.Input((8, 8, 3), name="x")
    model = keras.Model(top_in, mid(top_in), name="top")
    g = modelstats.to_networkx(model)
    assert list(g.nodes) == ["x", "mid/mid_in", "mid/inner/inner_in", "mid/inner/c", "mid/r"]
    assert g.nodes["mid/inner/c"]["path"] == ("mid", "inner")
    assert list(g.edges) == [
        ("x", "mid/mid_in"), ("mid/mid_in", "mid/inner/inner_in"),
        ("mid/inner/inner_in", "mid/inner/c"), ("mid/inner/c", "mid/r"),
    ]
    assert g.nodes["mid/inner/c"]["params"] == 3 * 3 * 3 * 4 + 4


def test_nested_model_called_twice(keras):
    inner_in = keras.Input((5,), name="i")
    inner = keras.Model(inner_in, keras.layers.Dense(5, name="d")(inner_in), name="block")
    x = keras.Input((5,), name="x")
    model = keras.Model(x, inner(inner(x)))
    g = modelstats.to_networkx(model)
    assert list(g.nodes) == ["x", "block/i", "block/d", "block#1/i", "block#1/d"]
    assert g.nodes["block#1/d"]["params"] == 0
    assert sum(d["params"] for _, d in g.nodes(data=True)) == model.count_params() == 30


def test_multi_input_multi_output_and_multiple_outputs(keras):
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    merged = keras.layers.Concatenate(name="cat")([a, b])
    first, second = keras.ops.split(merged, 2, axis=-1)
    out1 = keras.layers.Dense(2, name="o1")(first)
    out2 = keras.layers.Dense(3, name="o2")(second)
    model = keras.Model({"a": a, "b": b}, [out1, out2])
    g = modelstats.to_networkx(model)
    split = [n for n in g if g.nodes[n]["type"] == "Split"][0]
    assert g.nodes[split]["output_shapes"] == [(6,), (6,)]
    assert g.edges[split, "o1"]["output_indices"] == [0]
    assert g.edges[split, "o2"]["output_indices"] == [1]
    assert sorted(g.graph["inputs"]) == ["a", "b"] and g.graph["outputs"] == ["o1", "o2"]
    assert g.nodes["cat"]["inputs"] == [("a", 0), ("b", 0)]


def test_sequential_built_and_unbuilt(keras):
    built = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, name="d1")])
    g = modelstats.to_networkx(built)
    assert [g.nodes[n]["type"] for n in g] == ["InputLayer", "Dense"]
    unbuilt = keras.Sequential([keras.layers.Dense(4, name="d1"), keras.layers.Dense(2, name="d2")])
    with pytest.raises(NotAGraphModelError, match="input_shape"):
        modelstats.to_networkx(unbuilt)
    g = modelstats.to_networkx(unbuilt, input_shape=(10,))
    assert [n for n in g if not g.nodes[n]["is_input"]] == ["d1", "d2"]
    assert g.nodes["d2"]["output_shapes"] == [(2,)]
    assert sum(d["params"] for _, d in g.nodes(data=True)) == 10 * 4 + 4 + 4 * 2 + 2
    assert not unbuilt.built  # analysing never builds the user's model


def test_subclassed_model_is_traced_from_its_build_shape(subclassed_model):
    """Built on (1, 3): its call on a symbolic (None, 3) input is one Dense(2) call."""
    g = modelstats.to_networkx(subclassed_model)
    assert list(g) == ["x", "dense"]
    assert g.nodes["dense"]["output_shapes"] == [(2,)] and g.nodes["dense"]["params"] == 3 * 2 + 2
    with pytest.raises(NotAGraphModelError, match="Received: an object of type int"):
        modelstats.to_networkx(3)


def test_input_shape_reinfers_shapes(mobilenet_any_size):
    model = mobilenet_any_size
    g = modelstats.to_networkx(model, input_shape=(224, 224, 3))
    assert g.nodes["Conv_1"]["output_shapes"] == [(7, 7, 1280)]
    assert g.nodes["block_1_pad"]["output_shapes"] == [(113, 113, 96)]
    assert g.edges["block_1_pad", "block_1_depthwise"]["shapes"] == [(113, 113, 96)]
    assert modelstats.to_networkx(model).nodes["Conv_1"]["output_shapes"] == [(None, None, 1280)]
    with pytest.raises(ShapeError, match="rank"):
        modelstats.to_networkx(model, input_shape=(224, 224))
    with pytest.raises(ShapeError, match="only dimensions the model leaves as None"):
        modelstats.to_networkx(model, input_shape=(224, 224, 4))
