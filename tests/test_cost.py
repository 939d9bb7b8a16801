"""Cost rules: golden numbers with the arithmetic written out, coverage of keras.layers,
unsupported layers, conventions and totals."""

from __future__ import annotations

import inspect
import warnings

import pytest

import modelstats
from modelstats.registry import Cost
from modelstats.rules import DEFAULT

BASE = "mobilenetv2_1.00_224/"


@pytest.fixture(scope="session")
def classifier_costs(classifier):
    return modelstats.count_flops(classifier)


class TestMobileNetV2Golden:
    """The published per-layer numbers that are right, re-derived from the closed forms."""

    def test_conv_macs_total(self, classifier_costs):
        convs = classifier_costs[classifier_costs["type"].isin(["Conv2D", "DepthwiseConv2D"])]
        assert convs["macs"].sum() == 299_494_272

    @pytest.mark.parametrize(
        "layer, macs, flops",
        [
            # 1x1 conv 320 -> 1280 on 7x7, no bias: 49 * 320 * 1280
            ("Conv_1", 7 * 7 * 320 * 1280, 2 * 7 * 7 * 320 * 1280),
            # 1x1 conv 16 -> 96 on 112x112
            ("block_1_expand", 112 * 112 * 16 * 96, 38_535_168),
            # 1x1 conv 960 -> 320 on 7x7
            ("block_16_project", 7 * 7 * 960 * 320, 30_105_600),
            # 3x3 stride-2 conv 3 -> 32 on 224 -> 112
            ("Conv1", 112 * 112 * 3 * 3 * 3 * 32, 21_676_032),
            # 3x3 stride-2 depthwise on 113 -> 56 (real output size, not 113/2): 56*56*9*96
            ("block_1_depthwise", 2_709_504, 2 * 2_709_504),
        ],
    )
    def test_layer(self, classifier_costs, layer, macs, flops):
        row = classifier_costs.loc[BASE + layer]
        assert (row["macs"], row["flops"]) == (macs, flops)

    def test_elementwise_terms(self, classifier_costs):
        bn = classifier_costs.loc[BASE + "bn_Conv1"]
        assert bn["flops"] == 2 * 112 * 112 * 32  # inference batch-norm: mul + add per element
        relu6 = classifier_costs.loc[BASE + "Conv1_relu"]
        assert relu6["flops"] == 2 * 112 * 112 * 32  # ReLU(max_value=6): max and min
        gap = classifier_costs.loc["global_average_pooling2d"]
        assert gap["flops"] == 7 * 7 * 1280  # one add per input element
        add = classifier_costs.loc[BASE + "block_2_add"]
        assert add["flops"] == 56 * 56 * 24  # two inputs: one add per output element
        dense = classifier_costs.loc["dense"]
        # 1280*10 MACs, 10 bias adds, softmax 5 FLOPs per output
        assert (dense["macs"], dense["flops"]) == (12_800, 2 * 12_800 + 10 + 5 * 10)

    def test_augmentation_and_padding_are_zero_not_missing(self, classifier_costs):
        for node in ("augmentation/random_flip", "augmentation/random_rotation", "dropout",
                     BASE + "block_1_pad"):
            assert classifier_costs.loc[node, "status"] == "zero"
        assert not classifier_costs.attrs["partial"]

    def test_activation_memory(self, classifier_costs):
        row = classifier_costs.loc[BASE + "Conv1"]
        assert row["activations"] == 112 * 112 * 32
        assert row["activation_bytes"] == 4 * 112 * 112 * 32  # float32

    def test_batch_size_and_conventions(self, classifier):
        one = modelstats.count_flops(classifier)
        eight = modelstats.count_flops(classifier, batch_size=8)
        assert (eight["macs"] == 8 * one["macs"]).all()
        assert (eight["params"] == one["params"]).all()
        macs_only = modelstats.count_flops(classifier, convention="macs_only")
        assert (macs_only["flops"] == 2 * macs_only["macs"]).all()
        folded = modelstats.count_flops(classifier, fold_batchnorm=True)
        # a folded batch-norm leaves one bias add per element behind
        assert folded.loc[BASE + "bn_Conv1", "flops"] == 112 * 112 * 32
        with pytest.raises(TypeError, match="unknown convention option"):
            modelstats.count_flops(classifier, fold_bn=True)


def public_layer_classes(keras):
    return sorted(
        {cls for _, cls in inspect.getmembers(keras.layers, inspect.isclass)
         if issubclass(cls, keras.layers.Layer)},
        key=lambda c: c.__name__,
    )


# Abstract bases and opaque wrappers: no rule on purpose (they are reported unsupported).
NO_RULE_ON_PURPOSE = {"Layer", "Wrapper", "InputSpec", "Lambda", "TFSMLayer", "JaxLayer",
                      "FlaxLayer", "TorchModuleWrapper"}


def test_every_public_keras_layer_has_a_rule(keras):
    missing = [
        cls.__name__ for cls in public_layer_classes(keras)
        if cls.__name__ not in NO_RULE_ON_PURPOSE
        and (DEFAULT.cost_rule(cls) is None or DEFAULT.geometry_rule(cls) is None)
    ]
    assert missing == [], f"layer classes without a cost or geometry rule: {missing}"
    for name in NO_RULE_ON_PURPOSE & {c.__name__ for c in public_layer_classes(keras)}:
        assert DEFAULT.cost_rule(getattr(keras.layers, name)) is None


def test_every_layer_keras_applications_define_has_a_rule(keras):
    """Application-private layers (ConvNeXt's LayerScale, ...) must not leave an application partial."""
    import importlib
    import inspect
    import pkgutil

    import keras.src.applications as apps

    private = set()
    for info in pkgutil.iter_modules(apps.__path__):
        if info.name.endswith("_test"):  # Keras ships its own tests in the package
            continue
        module = importlib.import_module(f"keras.src.applications.{info.name}")
        private |= {
            cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, keras.layers.Layer) and cls.__module__ == module.__name__
        }
    assert {c.__name__ for c in private} >= {"LayerScale", "StochasticDepth", "CustomScaleLayer"}
    missing = [c.__name__ for c in private if DEFAULT.cost_rule(c) is None or DEFAULT.geometry_rule(c) is None]
    assert missing == []


def test_convnext_layer_scale_cost(keras):
    from keras.src.applications.convnext import LayerScale

    x = keras.Input((7, 7, 96))
    model = keras.Model(x, LayerScale(1e-6, 96, name="scale")(x))
    row = modelstats.count_flops(model).loc["scale"]
    assert (row["params"], row["macs"], row["flops"], row["status"]) == (96, 0, 7 * 7 * 96, "counted")


def test_supported_layers_lists_coverage():
    rows = {row.name: row for row in modelstats.supported_layers()}
    assert rows["Conv2D"].cost == "counted" and rows["Conv2D"].geometry == "rule"
    assert rows["Dropout"].cost == "zero" and rows["Dropout"].geometry == "identity"
    assert rows["GlobalAveragePooling2D"].geometry == "global"
    assert rows["Lambda"].cost == "unsupported"


def test_sequence_model_has_no_unsupported_rows_and_hand_checked_totals(keras):
    L = keras.layers
    tokens = keras.Input((12,), dtype="int32", name="tokens")
    x = L.Embedding(100, 16, name="emb")(tokens)  # lookups: 0 MACs
    x = L.LSTM(8, return_sequences=True, name="lstm")(x)
    x = L.Bidirectional(L.GRU(4, return_sequences=True), name="bigru")(x)
    x = L.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = L.LayerNormalization(name="ln")(x)
    x = L.TimeDistributed(L.Dense(3), name="td")(x)
    video = keras.Input((4, 8, 8, 2), name="video")
    v = L.Conv3D(2, 3, padding="same", name="c3d")(video)
    image = keras.Input((4, 4, 2), name="image")
    u = L.UpSampling2D(2, interpolation="bilinear", name="up")(image)
    model = keras.Model([tokens, video, image], [x, v, u])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = modelstats.count_flops(model)
    assert set(table["status"]) <= {"counted", "zero"}
    macs = table["macs"]
    assert macs["emb"] == 0
    assert macs["lstm"] == 12 * 4 * (16 * 8 + 8 * 8)  # T * 4 gates * (in*u + u*u)
    assert macs["bigru"] == 2 * 12 * 3 * (8 * 4 + 4 * 4)  # two directions, 3 gates
    # projections: q, k, v (12 positions * 8 * 2 heads * 4) and output (12 * 2*4 * 8),
    # attention: scores and weighted sum 2 heads * 12 * 12 * (4 + 4)
    assert macs["mha"] == 3 * 12 * 8 * 8 + 12 * 8 * 8 + 2 * 12 * 12 * (4 + 4)
    assert macs["td"] == 12 * 8 * 3
    assert macs["c3d"] == 4 * 8 * 8 * 27 * 2 * 2
    assert table.loc["up", "flops"] == 8 * 8 * 2 * 2 * 3  # 2 axes * (2 mul + 1 add) per output
    assert table.loc["ln", "flops"] == 7 * 12 * 8
    assert table["macs"].sum() == sum(macs)


def test_custom_layer_unsupported_then_registered(keras, registry):
    import tensorflow as tf

    class Scale(keras.layers.Layer):
        def call(self, x):
            # TensorFlow code: cannot be traced symbolically, and the backend fallback has no
            # count for a cumulative sum
            return tf.math.cumsum(x, axis=-1)

    x = keras.Input((4, 4, 2))
    y = Scale(name="scale")(keras.layers.Conv2D(2, 1, name="c")(x))
    model = keras.Model(x, y)
    with pytest.warns(modelstats.UnsupportedLayerWarning, match="Scale.*register_layer"):
        table = modelstats.count_flops(model)
    assert table.loc["scale", "status"] == "unsupported"
    assert table.attrs["partial"]
    with pytest.raises(modelstats.UnsupportedLayerError, match="Scale \\(scale\\)"):
        modelstats.count_flops(model, strict=True)
    modelstats.register_layer(
        Scale,
        cost=lambda layer, ins, outs: Cost(elementwise=modelstats.formulas.numel(outs[0])),
        geometry=modelstats.geometry.IDENTITY,
    )
    table = modelstats.count_flops(model, strict=True)
    assert table.loc["scale", "status"] == "counted"
    assert table.loc["scale", "flops"] == 4 * 4 * 2
    assert not table.attrs["partial"]


def test_lambda_is_unsupported(keras):
    x = keras.Input((3,))
    model = keras.Model(x, keras.layers.Lambda(lambda t: t * 2, name="lam")(x))
    with pytest.warns(modelstats.UnsupportedLayerWarning):
        table = modelstats.count_flops(model)
    assert table.loc["lam", "status"] == "unsupported"
    assert "arbitrary Python code" in table.loc["lam", "note"]


def test_unknown_size_asks_for_input_shape(mobilenet, mobilenet_any_size):
    model = mobilenet_any_size
    first = model.layers[0].name  # the input: the first node whose size is unknown
    with pytest.raises(modelstats.ShapeError,
                       match=rf"layer '{first}' \(InputLayer\) has shape \(None, None, 3\).*"
                             r"Pass input_shape="):
        modelstats.count_flops(model)
    table = modelstats.count_flops(model, input_shape=(224, 224, 3))
    reference = modelstats.count_flops(mobilenet)
    assert table["flops"].sum() == reference["flops"].sum()


def test_shared_layer_cost_per_call_params_once(keras):
    dense = keras.layers.Dense(4, name="d")
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Add(name="add")([dense(a), dense(b)]))
    table = modelstats.count_flops(model)
    assert table.loc["d", "macs"] == table.loc["d#1", "macs"] == 12
    assert table.loc["d", "params"] == 16 and table.loc["d#1", "params"] == 0


def test_totals_equal_sum_of_rows(classifier):
    report = modelstats.analyze(classifier)
    for column in ("params", "trainable_params", "macs", "flops", "activations"):
        assert report.totals[column] == report.layers[column].sum()


def test_nested_model_kept_as_one_node_costs_its_layers(classifier):
    flat = modelstats.count_flops(classifier)
    collapsed = modelstats.count_flops(classifier, expand_nested=False)
    assert collapsed.loc["mobilenetv2_1.00_224", "macs"] == flat.loc[
        flat.index.str.startswith(BASE), "macs"].sum()
    assert collapsed["flops"].sum() == flat["flops"].sum()
