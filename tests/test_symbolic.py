"""Symbolic sizes: ``input_shape=("H", "W", 3)`` gives sympy formulas, exact at every size.

The oracle is the numeric count: each formula, evaluated with sympy's own ``subs``, must equal
``count_flops`` / ``analyze`` run by Keras at that size.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sympy

import modelstats
from modelstats import symbolic
from modelstats.cost import UnsupportedLayerWarning
from modelstats.errors import ShapeError

H, W, T, S = (sympy.Symbol(n, integer=True, positive=True) for n in ("H", "W", "T", "S"))


def _at(value, **sizes):
    """A formula at concrete sizes, by sympy (independently of modelstats' own evaluator)."""
    return int(sympy.sympify(value).subs({sympy.Symbol(k, integer=True, positive=True): v
                                          for k, v in sizes.items()}))


def _conv_model(keras, padding, strides=2):
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(8, 3, strides=strides, padding=padding, name="conv")(x)
    return keras.Model(x, y)


# -- MobileNetV2: the formula in H and W at odd and even sizes -----------------------------------

def test_mobilenet_v2_formulas_equal_the_numeric_counts_at_four_sizes(mobilenet_any_size):
    table = modelstats.count_flops(mobilenet_any_size, input_shape=("H", "W", 3))
    assert table.attrs["symbols"] == {"H": H, "W": W}
    assert set(table["status"]) == {"counted", "zero"}  # a formula for every node
    for h, w in [(97, 131), (224, 224), (33, 64), (160, 75)]:
        numeric = modelstats.count_flops(mobilenet_any_size, input_shape=(h, w, 3))
        for column in ("macs", "flops", "activations", "activation_bytes"):
            at_size = [_at(v, H=h, W=w) for v in table[column]]
            assert at_size == [int(v) for v in numeric[column]], (column, h, w)
            assert _at(table[column].sum(), H=h, W=w) == int(numeric[column].sum())


def test_mobilenet_v2_total_macs_are_a_weighted_sum_of_five_feature_map_areas(
        mobilenet_any_size):
    total = modelstats.count_flops(mobilenet_any_size, input_shape=("H", "W", 3))["macs"].sum()
    # Conv1 ("same", stride 2) gives ceiling(H/2); each later stride-2 stage halves it with a
    # floor (ZeroPadding (0, 1), then a "valid" 3x3 depthwise conv: floor((n + 1 - 3)/2) + 1),
    # and a chain of floors is one floor: floor(floor(x/2)/2) = floor(x/4).
    heights = [sympy.ceiling(H / 2)] + [sympy.floor(sympy.ceiling(H / 2) / 2 ** k)
                                        for k in (1, 2, 3, 4)]
    areas = [h * h.subs(H, W) for h in heights]
    weights = dict(term.as_coeff_Mul()[::-1] for term in sympy.Add.make_args(total))
    assert set(weights) == set(areas)
    # At ceiling(H/2) x ceiling(W/2): Conv1 3*3*3*32, the first block's depthwise 3*3*32 and
    # projection 32*16, and block_1's expansion 16*96 (its depthwise conv has stride 2).
    assert weights[areas[0]] == 3 * 3 * 3 * 32 + 3 * 3 * 32 + 32 * 16 + 16 * 96


# -- attention: quadratic in the sequence length --------------------------------------------------

def test_multi_head_attention_is_quadratic_in_the_sequence_length_and_exact(keras):
    x = keras.Input((None, 64))
    y = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16, name="mha")(x, x)
    model = keras.Model(x, y)
    table = modelstats.count_flops(model, input_shape=("T", 64))
    macs = sympy.Poly(table.loc["mha", "macs"], T)
    # T^2: scores and weighted sum per head, 4 * (16 + 16); T: the four projections,
    # 3 * 64*64 (Q, K, V: 64 -> 4 heads x 16) + 64*64 (output)
    assert macs.all_coeffs() == [4 * (16 + 16), 4 * 64 * 64, 0]
    assert sympy.Poly(table.loc["mha", "flops"], T).degree() == 2
    for length in (1, 7, 50):
        numeric = modelstats.count_flops(model, input_shape=(length, 64))
        for column in ("macs", "flops", "activations"):
            assert _at(table.loc["mha", column], T=length) == int(numeric.loc["mha", column])


def test_recurrent_layers_are_linear_in_the_sequence_length(keras):
    x = keras.Input((None,), dtype="int32")
    y = keras.layers.Embedding(100, 16, name="embed")(x)
    y = keras.layers.LSTM(8, return_sequences=True, name="lstm")(y)
    model = keras.Model(x, keras.layers.GRU(8, name="gru")(y))
    table = modelstats.count_flops(model, input_shape=("T",))
    assert table.loc["lstm", "macs"] == 4 * (16 * 8 + 8 * 8) * T  # 4 gates, x W + h U, per step
    assert table.loc["gru", "macs"] == 3 * (8 * 8 + 8 * 8) * T


# -- golden formulas ------------------------------------------------------------------------------

def test_strided_valid_conv_macs_keep_the_floor(keras):
    table = modelstats.count_flops(_conv_model(keras, "valid"), input_shape=("H", "W", 3))
    positions = (sympy.floor((H - 3) / 2) + 1) * (sympy.floor((W - 3) / 2) + 1)
    assert sympy.expand(table.loc["conv", "macs"] - positions * 3 * 3 * 3 * 8) == 0
    # + one bias add per output: positions * 8
    assert sympy.expand(table.loc["conv", "flops"] - (2 * positions * 216 + positions * 8)) == 0
    assert table.loc["conv", "output_shape"] == [[sympy.floor((H - 3) / 2) + 1,
                                                  sympy.floor((W - 3) / 2) + 1, 8]]
    for h, w in [(3, 3), (4, 9), (97, 131)]:
        numeric = modelstats.count_flops(_conv_model(keras, "valid"), input_shape=(h, w, 3))
        assert _at(table.loc["conv", "macs"], H=h, W=w) == int(numeric.loc["conv", "macs"])


def test_strided_same_conv_macs_keep_the_ceiling(keras):
    table = modelstats.count_flops(_conv_model(keras, "same"), input_shape=("H", "W", 3))
    assert table.loc["conv", "macs"] == sympy.ceiling(H / 2) * sympy.ceiling(W / 2) * 216
    for h, w in [(1, 2), (5, 8), (97, 131)]:
        numeric = modelstats.count_flops(_conv_model(keras, "same"), input_shape=(h, w, 3))
        assert _at(table.loc["conv", "macs"], H=h, W=w) == int(numeric.loc["conv", "macs"])


def test_one_name_twice_is_one_size(keras):
    table = modelstats.count_flops(_conv_model(keras, "same"), input_shape=("S", "S", 3))
    assert table.loc["conv", "macs"] == 216 * sympy.ceiling(S / 2) ** 2


def test_size_changing_layers_compose(keras):
    """padding, pooling, transposed convs (both paddings), upsampling, cropping, dilation and
    a traced ops.pad: every node's formula at three sizes is the numeric count."""
    layers = keras.layers
    x = keras.Input((None, None, 3))
    y = layers.ZeroPadding2D(((1, 2), (0, 1)))(layers.Conv2D(4, 3, strides=2, padding="same")(x))
    y = layers.MaxPooling2D(3, strides=2)(y)
    a = layers.Conv2DTranspose(4, 3, strides=2, padding="valid")(y)
    b = layers.Cropping2D(((0, 1), (1, 0)))(layers.Conv2DTranspose(4, 3, strides=2,
                                                                   padding="same")(y))
    z = layers.AveragePooling2D(2, padding="same")(layers.UpSampling2D(2)(y))
    z = layers.Conv2D(6, 5, dilation_rate=2)(z)
    z = keras.ops.pad(z, ((0, 0), (1, 1), (2, 2), (0, 0)))
    model = keras.Model(x, [a, b, layers.GlobalAveragePooling2D()(z)])
    table = modelstats.count_flops(model, input_shape=("H", "W", 3))
    for h, w in [(40, 51), (33, 64), (97, 131)]:
        numeric = modelstats.count_flops(model, input_shape=(h, w, 3))
        assert [_at(v, H=h, W=w) for v in table["flops"]] == [int(v) for v in numeric["flops"]]
        assert [[[_at(d, H=h, W=w) for d in s] for s in shapes]
                for shapes in table["output_shape"]] == list(numeric["output_shape"])


# -- Report.at -----------------------------------------------------------------------------------

def test_report_at_equals_analyze_at_that_size(mobilenet_any_size):
    report = modelstats.analyze(mobilenet_any_size, input_shape=("H", "W", 3))
    concrete = report.at(H=97, W=131)
    expected = modelstats.analyze(mobilenet_any_size, input_shape=(97, 131, 3))
    pd.testing.assert_frame_equal(concrete.layers, expected.layers)
    assert concrete.totals == expected.totals
    assert concrete.receptive_field("Conv_1").padding == expected.receptive_field("Conv_1").padding


def test_field_columns_hold_what_does_not_depend_on_the_size(keras):
    report = modelstats.analyze(_conv_model(keras, "same"), input_shape=("H", "W", 3))
    row = report.layers.loc["conv"]
    assert (row["rf_size_y"], row["rf_stride_y"]) == (3, 2)
    # TensorFlow "same" pads (ceil(n/2) - 1)*2 + 3 - n in total, the smaller half on the left:
    # 2 at odd n (left 1), 1 at even n (left 0); the symbolic report cannot give one number.
    assert pd.isna(row["rf_padding_y"])
    assert report.at(H=33, W=33).layers.loc["conv", "rf_padding_y"] == 1
    assert report.at(H=34, W=34).layers.loc["conv", "rf_padding_y"] == 0
    with pytest.raises(ShapeError, match=r"report.at\(H=\.\.\., W=\.\.\.\)"):
        report.receptive_field("conv").box((0, 0))


@pytest.mark.filterwarnings("ignore::modelstats.propagation.MisalignedMergeWarning")
def test_a_merge_of_sizes_equal_only_at_even_sizes_is_checked_by_at(keras):
    """conv stride 2 -> upsample x2 -> add to the input: builds at even H and W only
    (2*ceiling(H/2) == H), so the default odd probes cannot build it and even probes can."""
    x = keras.Input((None, None, 3))
    up = keras.layers.UpSampling2D(2)(keras.layers.Conv2D(3, 3, strides=2, padding="same")(x))
    model = keras.Model(x, keras.layers.Add(name="join")([x, up]))
    with pytest.raises(ShapeError, match="probes="):
        modelstats.analyze(model, input_shape=("H", "W", 3))
    even = [{"H": h, "W": w} for h, w in [(64, 96), (130, 82), (36, 200), (98, 50)]]
    report = symbolic.analyze(model, input_shape=("H", "W", 3), probes=even)
    with pytest.raises(ShapeError, match=r"'join' joins the sizes H = 33 and 2\*ceiling"):
        report.at(H=33, W=40)
    expected = modelstats.analyze(model, input_shape=(34, 40, 3))
    pd.testing.assert_frame_equal(report.at(H=34, W=40).layers, expected.layers)


def test_a_rule_without_a_formula_leaves_its_row_unknown_and_at_counts_it(keras):
    class SortTime(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sort(x, axis=1)  # log2(T) comparisons per element: no formula

    x = keras.Input((None, 8))
    model = keras.Model(x, SortTime(name="sorter")(keras.layers.Dense(8, name="dense")(x)))
    with pytest.warns(UnsupportedLayerWarning, match="no formula"):
        report = modelstats.analyze(model, input_shape=("T", 8))
    row = report.layers.loc["sorter/sort"]
    assert row["status"] == "unsupported" and pd.isna(row["macs"]) and pd.isna(row["flops"])
    assert report.totals["partial"] and report.totals["macs"] == 8 * 8 * T
    expected = modelstats.analyze(model, input_shape=(20, 8))
    concrete = report.at(T=20)
    pd.testing.assert_frame_equal(concrete.layers, expected.layers)
    assert concrete.totals == expected.totals


# -- errors --------------------------------------------------------------------------------------

def test_a_symbol_on_a_fixed_channel_axis_is_an_error(keras):
    with pytest.raises(ShapeError, match=r"'C' names axis 2 of input .* fixes at 3"):
        modelstats.count_flops(_conv_model(keras, "same"), input_shape=("H", "W", "C"))


def test_a_symbol_the_weights_depend_on_is_an_error_naming_the_layer(keras):
    unbuilt = keras.Sequential([keras.layers.Conv2D(8, 3, name="conv")])
    with pytest.raises(ShapeError, match=r"Layer 'conv' \(Conv2D\) has params=.*channel axis"):
        modelstats.count_flops(unbuilt, input_shape=("H", "W", "C"))


def test_bad_symbols_and_bad_sizes_are_errors(keras):
    model = _conv_model(keras, "valid")
    with pytest.raises(ShapeError, match="'2H' is not a symbol name"):
        modelstats.count_flops(model, input_shape=("2H", "W", 3))
    with pytest.raises(ShapeError, match="named size"):
        modelstats.to_networkx(model, input_shape=("H", "W", 3))
    report = modelstats.analyze(model, input_shape=("H", "W", 3))
    with pytest.raises(ShapeError, match=r"each symbol \['H', 'W'\]"):
        report.at(H=9)
    with pytest.raises(ShapeError, match="Layer 'conv'"):  # a 3x3 valid window needs 3 pixels
        report.at(H=2, W=9)
    same = [{"H": h, "W": h} for h in (40, 50, 60)]  # H and W cannot be told apart
    with pytest.raises(modelstats.OptionError, match="no two symbols the same sizes"):
        symbolic.count_flops(model, input_shape=("H", "W", 3), probes=same)
    with pytest.raises(modelstats.errors.ModelStatsError, match="already concrete"):
        modelstats.analyze(model, input_shape=(9, 9, 3)).at(H=9)


def test_a_layer_changing_sizes_without_a_shape_rule_is_named(keras, registry, monkeypatch):
    monkeypatch.setattr(symbolic, "_USER_SHAPE_RULES", {})  # registered here only
    class EveryOther(keras.layers.Layer):
        def call(self, x):
            return x[:, ::2]

    modelstats.register_layer(EveryOther, cost=lambda layer, ins, outs: modelstats.registry.Cost(
        elementwise=modelstats.formulas.numel(outs[0])))
    x = keras.Input((None, None, 3))
    model = keras.Model(x, EveryOther(name="every_other")(x))
    with pytest.raises(ShapeError, match=r"'every_other' \(EveryOther\).*register_shape"):
        modelstats.count_flops(model, input_shape=("H", "W", 3))
    symbolic.register_shape(EveryOther,
                            lambda layer, ins, node: [(sympy.ceiling(ins[0][0] / 2), None, None)])
    table = modelstats.count_flops(model, input_shape=("H", "W", 3))
    assert table.loc["every_other", "flops"] == sympy.ceiling(H / 2) * W * 3


