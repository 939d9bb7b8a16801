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
    """Unit u of 's2' sees pixel 2u, of 'crop' pixel u + 4: the paths drift apart, no affine
    field bounds every unit of an unbounded map. Over the 8 units of the merge, with stride 2:
    p = max(0, 7*(2-1) - 4) = 3 and r - 1 - p = max(0, 4 - 0*1) = 4, so r = 8; unit u is
    bounded by [2u - 3, 2u + 4] (u = 0: pixels 0 and 4; u = 7: 14 and 11)."""
    L = keras.layers
    x = keras.Input((16, 16, 1))
    a = L.Conv2D(1, 1, strides=2, name="s2")(x)
    b = L.Cropping2D(4, name="crop")(x)  # 16 -> 8 positions at stride 1
    model = keras.Model(x, L.Add(name="m")([a, b]))
    with pytest.warns(modelstats.MisalignedMergeWarning, match="stride 2 via 's2' but 1 via 'crop'"):
        rf = modelstats.receptive_field(model, "m")
    assert not rf.aligned
    assert (rf.size, rf.stride, rf.padding) == ((8, 8), (2, 2), (3, 3))
    for u in range(8):
        (lo, hi), _ = rf.box((u, u), clip=True)
        assert (lo, hi) == (min(2 * u, u + 4), max(2 * u, u + 4))
        assert 2 * u - 3 <= lo and hi <= 2 * u - 3 + 8 - 1


def test_fractional_stride_after_upsampling(keras):
    L = keras.layers
    x = keras.Input((8, 8, 1))
    y = L.UpSampling2D(2, name="up")(L.Conv2D(1, 3, padding="same", name="c")(x))
    model = keras.Model(x, y)
    rf = modelstats.receptive_field(model, "up")
    # nearest upsampling by 2 = a transposed conv with kernel 2, stride 2:
    # size 3 + (2-1)*1/2 = 7/2, stride 1/2, padding 1 + (2-1-0)/2 = 3/2
    assert rf.stride == (Fraction(1, 2),) * 2
    assert rf.size == (Fraction(7, 2),) * 2 and rf.padding == (Fraction(3, 2),) * 2
    assert rf.box((5, 5)) == ((1, 3), (1, 3))  # output 5 reads conv unit 2, pixels 1..3
    # The table: the same values, Fractions as floats (the conv: 3, 1, 1)
    table = modelstats.receptive_field(model)
    columns = ("rf_size_y", "rf_stride_x", "rf_padding_y")
    up = [table.at["up", c] for c in columns]
    conv = [table.at["c", c] for c in columns]
    assert up == [3.5, 0.5, 1.5] and conv == [3, 1, 1]


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


# -- merges: the per-axis union of the paths ------------------------------------------------------

def test_inception_v3_union_of_1x3_and_3x1_branches(application):
    """InceptionV3 (299 x 299) ends in blocks whose 1x3 and 3x1 branches are concatenated.
    The merge used to keep the lexicographically widest branch: mixed9_0 (1119, 1055), mixed9
    (1183, 1119), mixed10 (1311, 1183). The union is the same on both axes; it is what box()
    walks (its width equals the size), and the gradient oracle agrees on small copies."""
    model = application("InceptionV3")
    expected = {"mixed9_0": (1119, 522), "mixed9": (1183, 554), "mixed10": (1311, 618)}
    for node, (r, p) in expected.items():
        rf = modelstats.receptive_field(model, node)
        assert (rf.size, rf.stride, rf.padding) == ((r, r), (32, 32), (p, p)), node
        assert rf.aligned
        assert rf.box((3, 3)) == ((3 * 32 - p, 3 * 32 - p + r - 1),) * 2


def test_asymmetric_branches_take_the_union(keras):
    """A stem, then a 1x5 and a 5x1 "same" branch added.

    stem: 3x3 stride 2 "same" on 12: total pad (6-1)*2 + 3 - 12 = 1 -> left 0: r=3, j=2, p=0
    a (1x5, pad (0, 2)): y r = 3,           p = 0;  x r = 3 + 4*2 = 11, p = 0 + 2*2 = 4
    b (5x1, pad (2, 0)): y r = 11,          p = 4;  x r = 3,            p = 0
    add, per axis: p = max(0, 4) = 4, r - 1 - p = max(3-1-0, 11-1-4) = 6 -> r = 11
    (the widest path alone, (11, 3), misses the 1x5 branch's x extent).
    """
    L = keras.layers
    x = keras.Input((12, 12, 1), name="image")
    stem = L.Conv2D(1, 3, strides=2, padding="same", name="stem")(x)
    a = L.Conv2D(1, (1, 5), padding="same", name="a")(stem)
    b = L.Conv2D(1, (5, 1), padding="same", name="b")(stem)
    model = keras.Model(x, L.Add(name="add")([a, b]))
    assert modelstats.receptive_field(model, "a").size == (3, 11)
    assert modelstats.receptive_field(model, "b").size == (11, 3)
    rf = modelstats.receptive_field(model, "add")
    assert (rf.size, rf.stride, rf.padding) == ((11, 11), (2, 2), (4, 4)) and rf.aligned
    assert rf.box((1, 1)) == ((-2, 8), (-2, 8))  # 1*2 - 4 .. 1*2 - 4 + 10


def test_shifted_branches_take_the_union(keras):
    """Paths of one stride whose centres differ (an even kernel): the union is wider than
    both. a: 3-tap "same" (pad 1): [u-1, u+1]; b: 4-tap "same" (pad (1, 2)): [u-1, u+2];
    union [u-1, u+2]: r = 4, p = 1, centres differ by 1/2."""
    L = keras.layers
    x = keras.Input((10, 1))
    a = L.Conv1D(1, 3, padding="same", name="a")(x)
    b = L.Conv1D(1, 4, padding="same", name="b")(x)
    model = keras.Model(x, L.Concatenate(name="cat")([a, b]))
    with pytest.warns(modelstats.MisalignedMergeWarning, match="centres differ by 1/2"):
        rf = modelstats.receptive_field(model, "cat")
    assert (rf.size, rf.stride, rf.padding) == ((4,), (1,), (1,)) and not rf.aligned
    assert rf.box(5) == ((4, 7),)


def test_merge_with_a_lost_path_is_unknown(keras, application):
    """A path whose positions were rearranged (Reshape there and back) cannot be mapped: the
    merge is unknown, never the field of the other path alone. A global path (squeeze-and-
    excitation) has no positions and keeps the spatial field, with global_context."""
    L = keras.layers
    x = keras.Input((8, 8, 2), name="image")
    a = L.Conv2D(2, 3, padding="same", name="a")(x)
    back = L.Reshape((8, 8, 2), name="back")(L.Reshape((128,), name="flat")(a))
    model = keras.Model(x, L.Add(name="add")([a, back]))
    rf = modelstats.receptive_field(model, "add")
    assert rf.status == "unknown" and "'back'" in rf.note
    squeeze = L.Conv2D(2, 1, name="se")(L.GlobalAveragePooling2D(keepdims=True, name="gap")(a))
    se = modelstats.receptive_field(keras.Model(x, L.Multiply(name="mul")([a, squeeze])), "mul")
    assert se.status == "spatial" and se.global_context and se.size == (3, 3)
    # EfficientNetB0 (squeeze-and-excitation in every block) keeps its spatial fields.
    effnet = application("EfficientNetB0")
    top = modelstats.receptive_field(effnet, "top_activation")
    assert (top.size, top.stride, top.padding) == ((851, 851), (32, 32), (394, 394))
    assert top.global_context


# -- keras.ops indexing -------------------------------------------------------------------------

def test_channel_slice_keeps_the_field(keras):
    """x(16x16x3) -> a: Conv2D 3x3 valid -> b: Conv2D 5x5 "same" on a, sliced to 8 channels
    (``b[..., :8]``, a GetItem op) -> Add(a, b). The slice used to break its path and the Add
    kept a's 3x3; b's path sees 3 + 4 = 7 (p = 2), which the gradient confirms."""
    from tests.properties.test_rf_oracle import gradient_support, positive_weights

    import numpy as np

    L = keras.layers
    x = keras.Input((16, 16, 3), name="x")
    a = L.Conv2D(8, 3, name="a")(x)
    b = L.Conv2D(16, 5, padding="same", name="b")(a)[..., :8]
    model = keras.Model(x, L.Add(name="add")([a, b]))
    positive_weights(model, np.random.default_rng(0))
    rf = modelstats.receptive_field(model, "add")
    assert (rf.size, rf.stride, rf.padding) == ((7, 7), (1, 1), (2, 2))
    for position in [(0, 0), (6, 6), (13, 13)]:
        assert rf.box(position, clip=True) == gradient_support(model, position, 2)
    assert rf.box((6, 6)) == ((4, 10), (4, 10))


@pytest.mark.parametrize("index, expected", [
    (lambda t, ops: t[..., :1], "identity"),
    (lambda t, ops: ops.take(t, [1, 0], axis=-1), "identity"),
    (lambda t, ops: ops.split(t, 2, axis=-1)[1], "identity"),
    (lambda t, ops: ops.concatenate([t, t], axis=-1), "identity"),
    # y from 1: p = 1 - 1 = 0, then c2 r = 3 + 2, p = 0 + 1; x every second: j = 2, then
    # c2 r = 3 + 2*2, p = 1 + 1*2.
    (lambda t, ops: t[:, 1:, ::2], (5, 7, 1, 2, 1, 3)),
    # 2 rows of zeros on top: p = 1 + 2, then c2 p = 3 + 1.
    (lambda t, ops: ops.pad(t, [[0, 0], [2, 0], [0, 0], [0, 0]]), (5, 5, 1, 1, 4, 2)),
    (lambda t, ops: t[:, ::-1], "broken"),
    (lambda t, ops: ops.flip(t, axis=1), "broken"),
    (lambda t, ops: ops.take(t, [0, 2], axis=2), "broken"),
])
def test_indexing_ops(keras, index, expected):
    """A 3x3 "same" conv (r 3, p 1), then a keras.ops call, then a 3x3 "same" conv. Ops that
    leave every spatial axis whole keep the field (5, p 2); spatial slices with a positive step
    and constant padding are windows of one; reversals and picks break it."""
    L = keras.layers
    x = keras.Input((8, 8, 2), name="x")
    y = L.Conv2D(2, 3, padding="same", name="c1")(x)
    y = L.Conv2D(2, 3, padding="same", name="c2")(index(y, keras.ops))
    rf = modelstats.receptive_field(keras.Model(x, y), "c2")
    if expected == "identity":
        assert (rf.size, rf.stride, rf.padding) == ((5, 5), (1, 1), (2, 2))
    elif expected == "broken":
        assert rf.status == "broken", rf
    else:
        ry, rx, jy, jx, py, px = expected
        assert (rf.size, rf.stride, rf.padding) == ((ry, rx), (jy, jx), (py, px))


# -- resizing as TensorFlow computes it ---------------------------------------------------------

def test_resizing_reads_what_float32_reads(keras):
    """9x9 -> Resizing(3, 13, nearest) -> Conv2D 1x1 stride 2 "same" -> Resizing(3, 23,
    bilinear). Along x, 7 -> 23 bilinear unit 11 samples 11.5*7/23 - 0.5: exactly 3 (one tap),
    but 2.9999998 in TensorFlow's float32, which reads 2 and 3 (weight ~2e-7 on 2). Through
    the conv (2 -> 4, 3 -> 6) and nearest 9 -> 13 (floor(4.5*9/13) = 3, floor(6.5*9/13) = 4),
    unit (1, 11) depends on x in [3, 4]; the exact-arithmetic box said [4, 4]."""
    from tests.properties.test_rf_oracle import gradient_support, positive_weights

    import numpy as np

    L = keras.layers
    x = keras.Input((9, 9, 2), name="x")
    y = L.Resizing(3, 13, interpolation="nearest", name="r1")(x)
    y = L.Conv2D(2, 1, strides=2, padding="same", name="c")(y)
    y = L.Resizing(3, 23, interpolation="bilinear", name="r2")(y)
    model = keras.Model(x, y)
    positive_weights(model, np.random.default_rng(0))
    rf = modelstats.receptive_field(model, "r2")
    assert rf.box((1, 11), clip=True) == ((1, 7), (3, 4))
    assert gradient_support(model, (1, 11), 2) == ((1, 7), (3, 4))


RESIZE_METHODS = [("nearest", False), ("bilinear", False), ("bilinear", True),
                  ("bicubic", False), ("bicubic", True), ("area", False),
                  ("lanczos3", False), ("lanczos3", True), ("lanczos5", False)]


@pytest.mark.parametrize("interpolation, antialias", RESIZE_METHODS)
def test_resample_taps_match_tf_image_resize(interpolation, antialias):
    """The positions each output unit reads (non-zero weight) equal tf.image.resize's on
    one-hot inputs, for every size pair up to 16 and a few larger ones."""
    tf = pytest.importorskip("tensorflow")
    import numpy as np

    from modelstats.geometry import Resample

    pairs = [(a, b) for a in range(1, 17) for b in range(1, 17)]
    pairs += [(7, 23), (23, 7), (37, 100), (100, 37), (224, 299), (299, 224)]
    for n_in, n_out in pairs:
        eye = np.eye(n_in, dtype="float32").reshape(n_in, 1, n_in, 1)
        out = tf.image.resize(eye, (1, n_out), method=interpolation, antialias=antialias)
        reads = out.numpy()[:, 0, :, 0] != 0  # [input position, output unit]
        resample = Resample(n_in, n_out, interpolation, antialias)
        for o in range(n_out):
            assert resample.taps(o) == np.flatnonzero(reads[:, o]).tolist(), (n_in, n_out, o)
