"""Receptive fields: golden values, unknown sizes, merges, global and broken fields."""

from __future__ import annotations

import warnings
from fractions import Fraction

import pytest

import modelstats


class TestMobileNetV2:
    def test_last_feature_map(self, mobilenet):
        rf = modelstats.receptive_field(mobilenet, "out_relu")
        assert rf.size == (491, 491) and rf.stride == (32, 32)
        # Effective padding: the field of unit 0 starts 214 pixels before pixel 0, so unit 3
        # (centre of the 7x7 map) is centred on pixel 3*32 - 214 + 245 = 127, and the last
        # unit's field ends at 6*32 - 214 + 490 = 468.
        assert rf.padding == (214, 214)
        assert rf.aligned and not rf.global_context
        assert rf.center((3, 3)) == (127, 127)
        assert rf.box((0, 0)) == ((-214, 276), (-214, 276))
        # 491 pixels is wider than the 224-pixel image: unit 0 reads it from edge to edge.
        assert rf.box((0, 0), clip=True) == ((0, 223), (0, 223))

    def test_same_through_nested_copy_in_classifier(self, classifier):
        rf = modelstats.receptive_field(classifier, "mobilenetv2_1.00_224/Conv_1")
        assert (rf.size, rf.stride, rf.padding) == ((491, 491), (32, 32), (214, 214))
        assert modelstats.receptive_field(classifier, "global_average_pooling2d").is_global
        assert modelstats.receptive_field(classifier, "dense").is_global

    def test_unknown_input_size(self, mobilenet_any_size):
        model = mobilenet_any_size
        rf = modelstats.receptive_field(model, "out_relu")
        assert rf.size == (491, 491) and rf.stride == (32, 32)
        assert rf.padding == (None, None)
        with pytest.raises(modelstats.ModelStatsError, match="input_shape"):
            rf.center((0, 0))
        fixed = modelstats.receptive_field(model, "out_relu", input_shape=(224, 224, 3))
        assert fixed.padding == (214, 214)

    def test_table(self, mobilenet):
        table = modelstats.receptive_field(mobilenet)
        # 3x3 stride-2 "same" conv on 224: total padding (112-1)*2 + 3 - 224 = 1, left 0
        assert table.loc["Conv1", ["rf_size_y", "rf_stride_y", "rf_padding_y"]].tolist() == [
            3, 2, 0]
        assert table.loc["out_relu", "rf_size_x"] == 491
        assert set(table["rf_status"]) == {"spatial"}


def test_worked_example_branching_model(keras):
    """The worked example of docs/receptive_field.md: a stem and two aligned paths.

    stem: 3x3 stride-2 "same" conv on 32: total pad (16-1)*2 + 3 - 32 = 1 -> left 0:
          r = 3, j = 2, p = 0
    a:    3x3 "same" (pad 1): r = 3 + 2*2 = 7, j = 2, p = 0 + 1*2 = 2
    b:    5x5 "same" (pad 2): r = 3 + 4*2 = 11, j = 2, p = 0 + 2*2 = 4
    add:  centres (7-1)/2 - 2 = 1 and (11-1)/2 - 4 = 1 agree: aligned, r = 11, p = 4
    pool: 2x2 stride 2 "valid": r = 11 + 1*2 = 13, j = 4, p = 4
    """
    L = keras.layers
    x = keras.Input((32, 32, 3), name="image")
    stem = L.Conv2D(4, 3, strides=2, padding="same", name="stem")(x)
    a = L.Conv2D(4, 3, padding="same", name="a")(stem)
    b = L.Conv2D(4, 5, padding="same", name="b")(stem)
    merged = L.Add(name="add")([a, b])
    out = L.MaxPooling2D(name="pool")(merged)
    model = keras.Model(x, out)
    expected = {"stem": (3, 2, 0), "a": (7, 2, 2), "b": (11, 2, 4), "add": (11, 2, 4),
                "pool": (13, 4, 4)}
    for layer, (r, j, p) in expected.items():
        rf = modelstats.receptive_field(model, layer)
        assert (rf.size, rf.stride, rf.padding) == ((r, r), (j, j), (p, p)), layer
        assert rf.aligned
    assert modelstats.receptive_field(model, "pool").box((1, 1)) == ((0, 12), (0, 12))


def test_misaligned_merge_is_reported(keras):
    L = keras.layers
    x = keras.Input((16, 16, 1), name="image")
    a = L.Conv2D(1, 3, padding="same", name="a")(x)  # centre offset (3-1)/2 - 1 = 0
    b = L.Conv2D(1, 2, padding="same", name="b")(x)  # pad (0, 1): centre (2-1)/2 - 0 = 1/2
    out = L.Conv2D(1, 1, name="after")(L.Add(name="add")([a, b]))
    model = keras.Model(x, out)
    with pytest.warns(modelstats.MisalignedMergeWarning, match="centres differ by 1/2"):
        rf = modelstats.receptive_field(model, "add")
    assert not rf.aligned and "'a' and 'b'" in rf.note
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert not modelstats.receptive_field(model, "after").aligned  # downstream too
    with pytest.raises(modelstats.MisalignedMergeError, match="add"):
        modelstats.receptive_field(model, "add", strict=True)


def test_stride_mismatch_names_paths(keras):
    L = keras.layers
    x = keras.Input((16, 16, 1))
    a = L.Conv2D(1, 1, strides=2, name="s2")(x)
    b = L.Cropping2D(4, name="crop")(x)  # 16 -> 8 positions at stride 1
    with pytest.warns(modelstats.MisalignedMergeWarning, match="stride 2 via 's2' but 1 via 'crop'"):
        pass_through = modelstats.receptive_field(keras.Model(x, L.Add(name="m")([a, b])), "m")
    assert not pass_through.aligned


def test_fractional_stride_after_upsampling(keras):
    L = keras.layers
    x = keras.Input((8, 8, 1))
    y = L.UpSampling2D(2, name="up")(L.Conv2D(1, 3, padding="same", name="c")(x))
    rf = modelstats.receptive_field(keras.Model(x, y), "up")
    # nearest upsampling by 2 = a transposed conv with kernel 2, stride 2:
    # size 3 + (2-1)*1/2 = 7/2, stride 1/2, padding 1 + (2-1-0)/2 = 3/2
    assert rf.stride == (Fraction(1, 2),) * 2
    assert rf.size == (Fraction(7, 2),) * 2 and rf.padding == (Fraction(3, 2),) * 2
    assert rf.box((5, 5)) == ((1, 3), (1, 3))  # output 5 reads conv unit 2, pixels 1..3


def test_global_broken_and_squeeze_excitation(keras, application):
    L = keras.layers
    x = keras.Input((8, 8, 2), name="image")
    flat = L.Flatten(name="flat")(x)
    dense = L.Dense(3, name="fc")(flat)
    reshaped = L.Reshape((4, 4, 8), name="reshape")(L.Conv2D(2, 1, name="c")(x))
    model = keras.Model(x, [dense, reshaped])
    assert modelstats.receptive_field(model, "flat").status == "broken"
    assert modelstats.receptive_field(model, "fc").is_global  # Flatten -> Dense sees all
    assert modelstats.receptive_field(model, "reshape").status == "broken"
    effnet = application("EfficientNetB0")
    rf = modelstats.receptive_field(effnet, "block2a_se_excite")
    assert rf.status == "spatial" and rf.global_context
    assert modelstats.receptive_field(effnet, "block2a_se_squeeze").is_global
    assert rf.size == modelstats.receptive_field(effnet, "block2a_activation").size


def test_multi_input_choice(keras):
    L = keras.layers
    a, b = keras.Input((8, 8, 1), name="left"), keras.Input((8, 8, 1), name="right")
    y = L.Conv2D(1, 3, name="c")(a)
    model = keras.Model([a, b], [y, L.Conv2D(1, 5, name="d")(b)])
    with pytest.raises(modelstats.ModelStatsError, match="choose one with input="):
        modelstats.receptive_field(model, "c")
    assert modelstats.receptive_field(model, "c", input="left").size == (3, 3)
    assert modelstats.receptive_field(model, "d", input="left").status == "unrelated"


def test_dilation_causal_and_1d(keras):
    L = keras.layers
    x = keras.Input((20, 1))
    y = L.Conv1D(1, 3, dilation_rate=2, padding="causal", name="causal")(x)
    rf = modelstats.receptive_field(keras.Model(x, y), "causal")
    # k_eff = 2*(3-1)+1 = 5, causal pads k_eff-1 = 4 on the left
    assert (rf.size, rf.stride, rf.padding) == ((5,), (1,), (4,))
    assert rf.box(4) == ((0, 4),)
