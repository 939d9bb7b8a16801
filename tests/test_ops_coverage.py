"""Every ``keras.ops`` operation class has a rule or a declared reason; golden counts of the
common ones, the arithmetic written out."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import keras
from keras import ops
import keras.src.ops.core
import keras.src.ops.image
import keras.src.ops.linalg
import keras.src.ops.math
import keras.src.ops.nn
import keras.src.ops.numpy
from keras.src.ops.operation import Operation

import modelstats
from modelstats.rules import DEFAULT

MODULES = ("numpy", "math", "nn", "core", "image", "linalg")


def _operation_classes():
    for name in MODULES:
        module = getattr(keras.src.ops, name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Operation) and cls.__module__ == module.__name__:
                yield cls


def test_every_keras_op_has_a_rule_or_a_declared_reason():
    """No allowlist: a class passes with a cost rule, or declared opaque with a reason (the
    default "no cost rule" reason is what an undeclared class gets, and fails)."""
    classes = list(_operation_classes())
    assert len(classes) > 300
    missing = []
    for cls in classes:
        if DEFAULT.cost_rule(cls) is not None:
            continue
        reason = DEFAULT.unsupported_reason(cls)
        if reason == f"no cost rule for {cls.__name__}" or not reason:
            missing.append(f"{cls.__module__}.{cls.__name__}")
    assert not missing, f"keras.ops classes without a rule or declared reason: {missing}"


def test_opaque_ops_are_reported_with_their_reason():
    assert "factorization" in DEFAULT.unsupported_reason(keras.src.ops.linalg.SVD)


def test_control_flow_is_counted_from_the_backend_trace_and_has_no_field():
    """Control flow's body is not a Keras graph: its cost rule is BACKEND (the backend's trace
    of the call counts it, tests/test_backend_trace.py), its geometry says why no field."""
    from modelstats.registry import BACKEND, Unsupported

    for name in ("Cond", "WhileLoop", "ForiLoop", "Scan", "Map", "Switch"):
        cls = getattr(keras.src.ops.core, name)
        assert DEFAULT.cost_rule(cls) is BACKEND, name
        with pytest.raises(Unsupported, match="control flow, whose body is not a Keras graph"):
            DEFAULT.geometry(cls.__new__(cls), [(4,)], [(4,)])


def _count(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        return modelstats.count_flops(model, **kwargs)


def _analyze(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        return modelstats.analyze(model, **kwargs)


def _row(table, type_name):
    rows = table[table["type"] == type_name]
    assert len(rows) == 1, table
    return rows.iloc[0]


def test_ops_conv_valid():
    """(1,8,8,3) * kernel (3,3,3,4), stride 1, valid: 6*6 positions * 3*3 taps * 3 * 4 =
    3,888 MACs; receptive field 3, stride 1."""
    x = keras.Input((8, 8, 3))
    y = ops.conv(x, np.ones((3, 3, 3, 4), "float32"))
    report = _analyze(keras.Model(x, y))
    row = _row(report.layers, "Conv")
    assert row["macs"] == 6 * 6 * 3 * 3 * 3 * 4 == 3_888
    assert row["rf_size_y"] == row["rf_size_x"] == 3
    assert row["rf_stride_y"] == 1


def test_ops_conv_strided_same_and_depthwise():
    """conv (9,9,2) * (3,3,2,5) stride 2 same: 5*5 * 9 * 2 * 5 = 2,250 MACs;
    depthwise (9,9,2) * (3,3,2,2): 9*9 * 9 * 2 * 2 = 2,916 MACs."""
    x = keras.Input((9, 9, 2))
    a = ops.conv(x, np.ones((3, 3, 2, 5), "float32"), strides=2, padding="same")
    b = ops.depthwise_conv(x, np.ones((3, 3, 2, 2), "float32"), padding="same")
    table = _count(keras.Model(x, [a, b]))
    assert _row(table, "Conv")["macs"] == 25 * 9 * 2 * 5 == 2_250
    assert _row(table, "DepthwiseConv")["macs"] == 81 * 9 * 2 * 2 == 2_916


def test_ops_conv_transpose():
    """(4,4,8) * kernel (3,3,2,8) (h, w, out, in), stride 2: 4*4 * 9 * 8 * 2 = 2,304 MACs, as
    formulas.transposed_conv_macs."""
    x = keras.Input((4, 4, 8))
    y = ops.conv_transpose(x, np.ones((3, 3, 2, 8), "float32"), strides=2, padding="same")
    assert _row(_count(keras.Model(x, y)), "ConvTranspose")["macs"] == 2_304


def test_ops_max_pool_geometry():
    """max_pool 2x2 stride 2 on (8,8,3): 4*4*3 outputs * 4 taps = 192 FLOPs; field 2, stride 2."""
    x = keras.Input((8, 8, 3))
    y = ops.max_pool(x, 2, 2)
    row = _row(_analyze(keras.Model(x, y)).layers, "MaxPool")
    assert row["flops"] == 4 * 4 * 3 * 4 == 192
    assert row["rf_size_y"] == 2 and row["rf_stride_x"] == 2


def test_ops_dot_product_attention():
    """query/key/value (batch, 6, 2, 4): heads 2, q_len 6, k_len 6, head_dim 4:
    Q Kᵀ 2*6*6*4 = 288 and weights V 2*6*6*4 = 288: 576 MACs = 2 * q*k*heads*dim;
    elementwise: 72 scores * (1 scale + 5 softmax) = 432."""
    q = keras.Input((6, 2, 4))
    y = ops.dot_product_attention(q, q, q)
    table = _count(keras.Model(q, y))
    row = _row(table, "DotProductAttention")
    assert row["macs"] == 2 * 6 * 6 * 2 * 4 == 576
    assert row["flops"] == 2 * 576 + 2 * 6 * 6 * 6
    report = _analyze(keras.Model(q, y))
    assert _row(report.layers, "DotProductAttention")["rf_status"] == "global"


def test_ops_image_resize_matches_resizing_layer():
    """resize (10,10,3) -> (4,4) bilinear: 4*4*3 outputs * 3 FLOPs (2 mul + 1 add) * 2 axes =
    288, the Resizing layer's count; same receptive field."""
    x = keras.Input((10, 10, 3))
    by_op = keras.Model(x, ops.image.resize(x, (4, 4)))
    by_layer = keras.Model(x, keras.layers.Resizing(4, 4)(x))
    op_row = _row(_analyze(by_op).layers, "Resize")
    layer_row = _row(_analyze(by_layer).layers, "Resizing")
    assert op_row["flops"] == layer_row["flops"] == 4 * 4 * 3 * 3 * 2 == 288
    for column in ("rf_size_y", "rf_size_x", "rf_stride_y", "rf_stride_x", "rf_padding_y"):
        assert op_row[column] == layer_row[column], column


def test_ops_var():
    """var over the spatial axes of (5,5,4): 100 input elements * 4 (mean 1 + sub, square,
    add) = 400 FLOPs, geometry global; over the channel axis (keepdims, so the rank is kept)
    it keeps positions."""
    x = keras.Input((5, 5, 4))
    report = _analyze(keras.Model(x, [ops.var(x, axis=(1, 2)), ops.var(x, axis=-1, keepdims=True)]))
    rows = report.layers[report.layers["type"] == "Var"]
    assert list(rows["flops"]) == [400, 400]
    assert sorted(rows["rf_status"]) == ["global", "spatial"]


def test_ops_products():
    """tensordot (6,5) . (5,7) over 1 axis: 6*7 outputs * 5 = 210 MACs."""
    x = keras.Input((6, 5))
    y = ops.tensordot(x, np.ones((5, 7), "float32"), axes=1)
    assert _row(_count(keras.Model(x, y)), "Tensordot")["macs"] == 210


@pytest.mark.parametrize("product", [
    lambda t, w: ops.dot(t, w),
    lambda t, w: ops.tensordot(t, w, axes=1),
    lambda t, w: ops.inner(t, ops.transpose(w)),
])
def test_a_product_with_a_weight_matrix_keeps_positions(product):
    """x (8, 8, 4) -> conv 3x3 (same) -> a product with a (4, 6) weight over the channels: each
    output position reads its own conv unit, so the field stays 3x3 (it was reported global),
    as the gradient of one unit shows. A product of two tensors is not followed: no field."""
    import tensorflow as tf

    x = keras.Input((8, 8, 3), name="x")
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(x)
    weight = np.ones((4, 6), "float32")
    mixed = product(conv, weight)
    both = ops.dot(conv, ops.transpose(conv, (0, 1, 3, 2)))
    model = keras.Model(x, [mixed, both])
    report = _analyze(model)
    layers = report.layers
    mixed_row = layers[layers["output_shape"].map(lambda s: list(s[0]) == [8, 8, 6])]
    assert len(mixed_row) == 1 and mixed_row["rf_status"].item() == "spatial"
    assert (mixed_row["rf_size_y"].item(), mixed_row["rf_size_x"].item()) == (3, 3)
    assert (layers["rf_status"] == "global").sum() == 0
    paired = layers[layers["output_shape"].map(lambda s: len(s[0]) == 5)]  # (8, 8, 1, 8, 8)
    assert paired["type"].tolist() == ["Dot"] and paired["rf_status"].item() == "broken"
    image = tf.random.uniform((1, 8, 8, 3))
    with tf.GradientTape() as tape:
        tape.watch(image)
        unit = model(image)[0][0, 4, 4, 0]
    support = np.argwhere(np.abs(tape.gradient(unit, image).numpy()[0]).sum(-1) > 0)
    assert support.min(0).tolist() == [3, 3] and support.max(0).tolist() == [5, 5]


def test_ops_fft_convention():
    """rfft of length 16 along the last axis of (4, 16): 4 transforms * 2.5 * 16 * log2 16 =
    640 FLOPs (half of the complex 5 N log2 N)."""
    x = keras.Input((4, 16))
    real, imag = ops.rfft(x)
    table = _count(keras.Model(x, [real, imag]))
    assert _row(table, "RFFT")["flops"] == 4 * 2.5 * 16 * 4 == 640


class ConvInside(keras.layers.Layer):
    """A custom layer calling keras.ops.conv on its own kernel."""

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(3, 3, input_shape[-1], 4), name="kernel")

    def call(self, x):
        return ops.conv(x, self.kernel, padding="same")


def test_custom_layer_calling_ops_conv_is_traced():
    """(8,8,3) same: 8*8 positions * 3*3 * 3 * 4 = 6,912 MACs at the traced conv."""
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, ConvInside(name="mine")(x))
    table = _count(model)
    assert int(table["macs"].sum()) == 8 * 8 * 3 * 3 * 3 * 4 == 6_912
    assert _row(table, "Conv")["macs"] == 6_912
    assert set(table["status"]) <= {"counted", "zero"}


@pytest.mark.parametrize("build", [
    lambda x: ops.argmax(x, axis=-1),
    lambda x: ops.cumsum(x, axis=-1),
    lambda x: ops.sort(x, axis=-1),
    lambda x: ops.top_k(x, 2)[0],
    lambda x: ops.isnan(x),
    lambda x: ops.one_hot(ops.argmax(x, axis=-1), 3),
    lambda x: ops.layer_normalization(x),
    lambda x: ops.rms_normalization(x),
    lambda x: ops.normalize(x),
    lambda x: ops.average_pool(x, 2),
    lambda x: ops.std(x),
    lambda x: ops.tril(x),
])
def test_common_ops_are_counted(build):
    x = keras.Input((4, 4, 3))
    table = _count(keras.Model(x, build(x)))
    assert set(table["status"]) <= {"counted", "zero"}, table[["type", "status", "note"]]


def test_gaussian_blur():
    """3x3 blur on (6,6,2), same: 72 outputs * 9 taps = 648 MACs; field 3."""
    x = keras.Input((6, 6, 2))
    row = _row(_analyze(keras.Model(x, ops.image.gaussian_blur(x))).layers, "GaussianBlur")
    assert row["macs"] == 6 * 6 * 2 * 9 == 648
    assert row["rf_size_y"] == 3
