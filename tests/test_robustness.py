"""Every bad input of docs/robustness.md: a correct result or one clear error, never a silent zero.

The CLI's file cases are in tests/test_cli.py; generated architectures in
tests/properties/test_fuzz_analyze.py.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import modelstats
from modelstats.registry import Cost


def _caught(kind, fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [w for w in caught if issubclass(w.category, kind)]


# -- layers modelstats has no rule for ------------------------------------------------------------

def test_custom_layers_warn_once_per_class_and_strict_lists_every_class(keras):
    import tensorflow as tf

    # TensorFlow code in call(): it cannot run on Keras symbolic tensors, so it is not traced,
    # and its TensorFlow graph has a cumulative sum, which the backend fallback cannot count.
    class Scale(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumsum(x, axis=-1) * 3.0

    class Shift(keras.layers.Layer):
        def call(self, x):
            return tf.math.cumsum(x, axis=-1) + 1.0

    x = keras.Input((8, 8, 2), name="x")
    y = Scale(name="scale_a")(x)
    y = Scale(name="scale_b")(keras.layers.Conv2D(2, 1, name="conv")(y))
    model = keras.Model(x, Shift(name="shift")(y))

    report, found = _caught(modelstats.UnsupportedLayerWarning, lambda: modelstats.analyze(model))
    messages = sorted(str(w.message) for w in found)
    assert len(messages) == 2  # one per class, not one per node
    assert "Scale (nodes: scale_a, scale_b)" in messages[0] and "register_layer" in messages[0]
    assert "Shift (nodes: shift)" in messages[1]
    # Warnings point at the user's line, not inside modelstats.
    assert {w.filename for w in found} == {__file__}
    rows = report.layers
    assert list(rows.index[rows["status"] == "unsupported"]) == ["scale_a", "scale_b", "shift"]
    assert report.totals["partial"] and report.totals["unsupported"] == ["Scale", "Shift"]
    # Unsupported rows are not zero-cost rows: their cost is missing (<NA>) and the note says why.
    assert rows.loc["shift", "macs"] is pd.NA and rows.loc["shift", "flops"] is pd.NA
    assert rows.loc["shift", "note"] != ""
    assert report.totals["macs"] == rows.loc["conv", "macs"] == 8 * 8 * 2 * 2  # known rows only
    assert "n/a" in report.to_markdown(top=5) and "lower bound" in report.to_markdown()

    with pytest.raises(modelstats.UnsupportedLayerError) as raised:
        modelstats.analyze(model, strict=True)
    assert "Scale" in str(raised.value) and "Shift" in str(raised.value)


def test_lambda_is_opaque_unless_registered(keras, registry):
    x = keras.Input((4, 4, 3), name="x")
    model = keras.Model(x, keras.layers.Lambda(lambda t: t / 127.5 - 1.0, name="scale")(x))
    report, found = _caught(modelstats.UnsupportedLayerWarning, lambda: modelstats.analyze(model))
    assert report.layers.loc["scale", "status"] == "unsupported" and len(found) == 1
    assert report.receptive_field("scale").status == "unsupported"

    # A user who knows what their Lambdas do can say so; here: a divide and a subtract.
    modelstats.register_layer(
        keras.layers.Lambda,
        cost=lambda layer, ins, outs: Cost(elementwise=2 * modelstats.formulas.numel(outs[0])),
        geometry=modelstats.geometry.IDENTITY,
    )
    report = modelstats.analyze(model, strict=True)
    assert report.layers.loc["scale", "flops"] == 2 * 4 * 4 * 3
    assert report.receptive_field("scale").size == (1, 1)


# -- things that are not analysable models --------------------------------------------------------

@pytest.mark.parametrize("entry", ["analyze", "count_flops", "receptive_field", "to_networkx"])
@pytest.mark.parametrize("make, expected", [
    (lambda keras: "model.keras", "an object of type str"),
    (lambda keras: np.zeros((2, 2)), "an object of type ndarray"),
    (lambda keras: None, "an object of type NoneType"),
    (lambda keras: keras.layers.Dense(3), "is a layer \\(Dense\\)"),
    (lambda keras: keras.Sequential([keras.layers.Dense(3)]), "not built.*input_shape"),
])
def test_not_a_graph_model(keras, entry, make, expected):
    with pytest.raises(modelstats.NotAGraphModelError, match=expected):
        getattr(modelstats, entry)(make(keras))


def test_subclassed_model_through_analyze(subclassed_model):
    report = modelstats.analyze(subclassed_model)  # traced: 3 inputs x 2 units = 6 MACs
    assert report.totals["macs"] == 6 and not report.totals["partial"]


# -- unknown and unfitting sizes ------------------------------------------------------------------

def test_unknown_sizes_fields_without_padding_costs_ask_for_input_shape(keras):
    x = keras.Input((None, None, 3), name="image")
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(x)
    model = keras.Model(x, keras.layers.Conv2D(4, 3, name="conv2")(y))
    rf = modelstats.receptive_field(model, "conv2")
    # size = 3 + (3 - 1) * 2 = 7, stride 2; TF "same" padding depends on the unknown parity.
    assert rf.size == (7, 7) and rf.stride == (2, 2) and rf.padding == (None, None)
    with pytest.raises(modelstats.ShapeError,
                       match=r"layer 'image' \(InputLayer\) has shape \(None, None, 3\).*"
                             r"Pass input_shape="):
        modelstats.analyze(model)
    report = modelstats.analyze(model, input_shape=(17, 17, 3))
    assert report.receptive_field("conv2").padding == (1, 1)
    assert report.layers.loc["conv2", "output_shape"] == [[7, 7, 4]]


@pytest.fixture(scope="module")
def valid_convs(keras):
    x = keras.Input((None, None, 3), name="image")
    y = keras.layers.Conv2D(4, 5, name="c1")(x)
    y = keras.layers.Cropping2D(3, name="crop")(y)
    return keras.Model(x, keras.layers.Conv2D(4, 5, name="c2")(y))


@pytest.mark.parametrize("shape, expected", [
    ((32, 32), r"rank 2 but model input 'image' has shape \(None, None, 3\)"),
    ((32, 32, 4), r"does not fit model input 'image'.*only dimensions the model leaves as None"),
    ((9, 9, 3), r"Layer 'crop' \(Cropping2D\) cannot take inputs of shape \[\(5, 5, 4\)\]"),
    ((12, 12, 3), r"Layer 'c2' \(Conv2D\) cannot take inputs of shape \[\(2, 2, 4\)\]"),
    ((0, 32, 3), r"dimension 0 is not a positive integer"),
    ((-3, 32, 3), r"dimension -3 is not a positive integer"),
    ((32.5, 32, 3), r"dimension 32.5 is not a positive integer"),
    ("224,224,3", r"expected a tuple of dimensions"),
    ([(32, 32, 3), (32, 32, 3)], r"gives 2 shapes but the model has 1 inputs"),
    ({"picture": (32, 32, 3)}, r"names inputs \['picture'\].*its inputs are \['image'\]"),
])
def test_input_shape_that_does_not_fit_names_the_first_failing_layer(valid_convs, shape, expected):
    with pytest.raises(modelstats.ShapeError, match=expected):
        modelstats.analyze(valid_convs, input_shape=shape)


def test_input_shape_that_fits(valid_convs):
    # 20 -> c1 (5x5 valid) 16 -> crop 3+3 -> 10 -> c2 (5x5 valid) 6
    report = modelstats.analyze(valid_convs, input_shape=(20, 20, 3))
    assert report.layers.loc["c2", "output_shape"] == [[6, 6, 4]]
    assert report.layers.loc["c2", "macs"] == 6 * 6 * 5 * 5 * 4 * 4


# -- merges, several outputs, several inputs ------------------------------------------------------

def test_misaligned_merge_is_flagged_in_the_report_and_refused_when_strict(keras):
    x = keras.Input((16, 16, 3), name="x")
    a = keras.layers.Conv2D(4, 3, padding="valid", name="a")(x)  # centred 1 px in
    b = keras.layers.Conv2D(4, 1, name="b")(keras.layers.Cropping2D(((0, 2), (0, 2)), name="crop")(x))
    model = keras.Model(x, keras.layers.Add(name="add")([a, b]))
    report, found = _caught(modelstats.MisalignedMergeWarning, lambda: modelstats.analyze(model))
    assert len(found) == 1 and "add" in str(found[0].message)
    assert not report.layers.loc["add", "rf_aligned"]
    assert report.layers.loc["a", "macs"] == 14 * 14 * 3 * 3 * 3 * 4
    with pytest.raises(modelstats.MisalignedMergeError, match="add"):
        modelstats.analyze(model, strict=True)


def test_layer_with_several_outputs(keras):
    x = keras.Input((10, 8), name="seq")
    sequence, state_h, state_c = keras.layers.LSTM(4, return_sequences=True, return_state=True,
                                                   name="lstm")(x)
    model = keras.Model(x, [keras.layers.Dense(2, name="head")(sequence), state_h, state_c])
    report = modelstats.analyze(model)
    assert report.layers.loc["lstm", "output_shape"] == [[10, 4], [4], [4]]
    # LSTM: 4 gates x (8 inputs + 4 recurrent) x 4 units MACs per step, 10 steps
    assert report.layers.loc["lstm", "macs"] == 10 * 4 * (8 + 4) * 4
    assert report.totals["params"] == model.count_params()


def test_inputs_of_different_sizes(keras):
    a = keras.Input((32, 32, 3), name="a")
    b = keras.Input((16, 16, 3), name="b")
    ya = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="ca")(a)
    yb = keras.layers.Conv2D(4, 3, padding="same", name="cb")(b)
    model = keras.Model([a, b], keras.layers.Add(name="add")([ya, yb]))
    report, found = _caught(modelstats.MultipleSpatialInputsWarning,
                            lambda: modelstats.analyze(model))
    assert len(found) == 1 and "input=" in str(found[0].message)
    assert report.totals["rf_input"] == "a"
    assert report.layers.loc["cb", "rf_status"] == "unrelated"
    from_b = modelstats.analyze(model, input="b")
    assert from_b.totals["rf_input"] == "b" and from_b.layers.loc["ca", "rf_status"] == "unrelated"
    assert from_b.receptive_field("cb").size == (3, 3)
    pd.testing.assert_series_equal(report.layers["macs"], from_b.layers["macs"])


# -- arguments: batch size, convention, options, ranking column -----------------------------------

@pytest.fixture(scope="module")
def one_conv(keras):
    """8x8x3 -> Conv2D 8 filters 3x3 same: 8*8 * 3*3*3 * 8 = 13,824 MACs per sample and
    8*8*8 = 512 bias adds, so 2*13,824 + 512 = 28,160 FLOPs by default."""
    x = keras.Input((8, 8, 3), name="x")
    return keras.Model(x, keras.layers.Conv2D(8, 3, padding="same", name="conv")(x))


@pytest.mark.parametrize("entry", ["count_flops", "analyze"])
@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "2"])
def test_batch_size_must_be_a_positive_integer(one_conv, entry, batch_size):
    # Before: 0 gave all-zero counts, -2 gave -27,648 MACs and 2.5 float counts, silently.
    with pytest.raises(modelstats.ShapeError,
                       match=rf"batch_size must be a positive integer .*; received "
                             rf"{re.escape(repr(batch_size))}\. Pass batch_size=1"):
        getattr(modelstats, entry)(one_conv, batch_size=batch_size)


def test_batch_size_multiplies_exactly(one_conv):
    assert modelstats.count_flops(one_conv).loc["conv", "macs"] == 13_824
    assert modelstats.count_flops(one_conv, batch_size=2).loc["conv", "macs"] == 27_648
    assert modelstats.analyze(one_conv, batch_size=np.int64(2)).totals["macs"] == 27_648


def test_convention_accepts_an_object_and_options_refine_it(one_conv):
    def flops(**kwargs):
        return int(modelstats.count_flops(one_conv, **kwargs).loc["conv", "flops"])

    no_bias = modelstats.Convention(bias=False)
    assert flops() == 28_160  # 2*13,824 + 512 bias adds
    assert flops(convention=no_bias) == 27_648  # 2*13,824: the documented object, accepted
    assert flops(convention=no_bias, bias=True) == 28_160  # options refine an object ...
    assert flops(convention="macs_only", bias=True) == 28_160  # ... and a preset
    report = modelstats.analyze(one_conv, convention=no_bias)
    assert report.totals["flops"] == 27_648 and report.convention == "FLOPs = 2 x MACs + " \
        "elementwise work"


def test_bad_convention_and_options_raise_modelstats_errors(one_conv):
    presets = r"expected one of \['default', 'macs_only', 'folded'\]"
    with pytest.raises(modelstats.OptionError,
                       match=r"Unknown convention preset 'nope'; " + presets):
        modelstats.count_flops(one_conv, convention="nope")
    with pytest.raises(modelstats.OptionError, match=presets):
        modelstats.Convention.preset("nope")
    with pytest.raises(modelstats.UnknownOptionError,
                       match=r"unknown convention option\(s\) \['biass'\]; the options are "
                             r"\['elementwise', 'bias', 'fold_batchnorm'\]") as raised:
        modelstats.analyze(one_conv, biass=False)
    # Still a TypeError, what Python raises for an unexpected keyword.
    assert isinstance(raised.value, TypeError)
    with pytest.raises(modelstats.OptionError, match=r"True or False; received \{'bias': 'no'\}"):
        modelstats.count_flops(one_conv, bias="no")


def test_top_by_an_unknown_column_lists_the_rankable_ones(one_conv):
    report = modelstats.analyze(one_conv)
    with pytest.raises(modelstats.OptionError,
                       match=r"Cannot rank layers by 'nope'; choose one of \['params', "
                             r"'trainable_params', 'macs', 'flops', 'activations', "
                             r"'activation_bytes', 'bytes_read', 'bytes_written'\]"):
        report.top(by="nope")
    with pytest.raises(modelstats.OptionError, match="'nope'"):
        report.to_markdown(by="nope")


@pytest.mark.parametrize("make", [
    lambda m: modelstats.count_flops(m, batch_size=0),
    lambda m: modelstats.count_flops(m, convention="nope"),
    lambda m: modelstats.count_flops(m, nope=True),
    lambda m: modelstats.analyze(m).top(by="nope"),
])
def test_argument_errors_are_in_the_hierarchy(one_conv, make):
    with pytest.raises(modelstats.ModelStatsError):
        make(one_conv)


# -- determinism and no mutation ------------------------------------------------------------------

def _state(model):
    return {
        "weights": [np.array(w) for w in model.weights],
        "trainable": [layer.trainable for layer in model._flatten_layers()],
        "built": [layer.built for layer in model._flatten_layers()],
        "output_shape": [tuple(t.shape) for t in model.outputs],
        "layers": [layer.name for layer in model._flatten_layers()],
    }


def test_analysis_is_deterministic_and_never_mutates_the_model(classifier, keras):
    before = _state(classifier)
    first = modelstats.analyze(classifier)
    second = modelstats.analyze(classifier, batch_size=4, convention="folded")
    third = modelstats.analyze(classifier)
    after = _state(classifier)

    pd.testing.assert_frame_equal(first.layers, third.layers)
    assert first.to_json() == third.to_json()
    assert second.totals["macs"] == 4 * first.totals["macs"]  # a different analysis in between
    assert [np.array_equal(a, b) for a, b in zip(before["weights"], after["weights"])] == \
        [True] * len(before["weights"])
    for key in ("trainable", "built", "output_shape", "layers"):
        assert before[key] == after[key], key
