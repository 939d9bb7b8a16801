"""A Sequential built for one size and called at another inside a custom layer (kimm's RepVGG).

kimm's ``ReparameterizableConv2D`` builds every branch on the zero-padded size, then calls its
1x1 branch on the unpadded input. Keras' own inference refuses that call (the Sequential's
input check), so until now the whole block was kept as one node and counted from its
TensorFlow graph, with no receptive field: RepVGG's fields were unknown after the stem. The
branch is now traced at the size it is given, like a custom layer.

The receptive-field oracle is the gradient probe of tests/test_token_fields.py: with positive
weights and inputs, the input pixels with a non-zero gradient of one unit are exactly the
ones it depends on.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelstats

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
L = keras.layers
POSITIVE = keras.initializers.RandomUniform(0.1, 1.0)


class RepBlock(L.Layer):
    """Sum of a 3x3 conv on the input padded by 1 and a 1x1 conv on the unpadded input, both
    stride 2, both Sequentials built on the padded size, as kimm builds them."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.pad = L.ZeroPadding2D(1)
        self.kxk = keras.Sequential([L.Conv2D(filters, 3, 2, kernel_initializer=POSITIVE)])
        self.scale = keras.Sequential([L.Conv2D(filters, 1, 2, kernel_initializer=POSITIVE)])

    def build(self, shape):
        padded = self.pad.compute_output_shape(shape)
        self.kxk.build(padded)
        self.scale.build(padded)

    def call(self, x):
        return L.Add()([self.kxk(self.pad(x)), self.scale(x)])


def _model():
    x = keras.Input((8, 8, 3), name="image")
    return keras.Model(x, RepBlock(4, name="block")(x))


def test_a_branch_built_on_another_size_is_traced_at_its_own():
    """8x8x3 image. 3x3 stride 2 on the 10x10 padded input: 4x4x4 outputs, 16 * 9 * 3 * 4 =
    1,728 MACs; 1x1 stride 2 on the 8x8 input: 4x4x4, 16 * 3 * 4 = 192 (built on 10x10 it
    would give 5x5: 300). Fields: the 3x3 branch r 3, j 2, p 1; the 1x1 branch r 1, j 2, p 0,
    centred on the same pixels: their sum is r 3, j 2, p 1."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        report = modelstats.analyze(_model())
    rows = report.layers
    assert "traced" not in set(rows["status"])
    convs = rows[rows["type"] == "Conv2D"]
    assert sorted(convs["macs"]) == [192, 1_728]
    assert sorted(map(str, convs["output_shape"])) == ["[[4, 4, 4]]", "[[4, 4, 4]]"]
    assert int(rows["macs"].sum()) == 1_728 + 192
    (add,) = rows.index[rows["type"] == "Add"]
    field = report.receptive_field(add)
    assert (field.status, field.size, field.stride, field.padding, field.aligned) == \
        ("spatial", (3, 3), (2, 2), (1, 1), True)


def _gradient_support(model, output, unit, shape):
    # 255: kimm's models rescale by 1/255 and subtract a (positive) mean; what stays positive
    # keeps every ReLU open
    image = tf.constant(np.full((1, *shape), 255.0, dtype="float32"))
    probe = keras.Model(model.inputs, output)
    with tf.GradientTape() as tape:
        tape.watch(image)
        target = tf.reduce_sum(probe(image)[0, unit[0], unit[1]])
    gradient = np.abs(tape.gradient(target, image).numpy()[0]).sum(axis=-1)
    rows, cols = np.nonzero(gradient)
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))


def test_kimm_repvgg_has_fields_equal_to_the_gradient_support():
    """kimm RepVGG-A0 at 32x32, positive weights. Stem 3x3 stride 2 after a pad of 1:
    r 3, j 2, p 1. First stage block, 3x3 stride 2 after a pad of 1: r 3 + 2*2 = 7, j 4,
    p 1 + 2 = 3; unit (1, 2) sees rows 4 - 3 = 1 to 7 and columns 8 - 3 = 5 to 11. No block
    is counted from a backend graph any more, and the MACs stay the JAX oracle's."""
    pytest.importorskip("kimm")
    from tests.oracles.hub_models import MODELS

    model = MODELS["kimm_repvgg_a0"]()
    for weight in model.weights:
        weight.assign(np.abs(weight.numpy()) + 0.01)
    report = modelstats.analyze(model, input_shape=(32, 32, 3))
    rows = report.layers
    assert "traced" not in set(rows["status"]) and "unsupported" not in set(rows["status"])
    stage = rows[rows.index.str.startswith("stages_0_0/") & (rows["type"] == "Activation")]
    node = stage.index[-1]
    field = report.receptive_field(node)
    assert (field.status, field.size, field.stride, field.padding) == \
        ("spatial", (7, 7), (4, 4), (3, 3))
    box = field.box((1, 2), clip=True)
    assert box == ((1, 7), (5, 11))
    layer_output = model.get_layer("stages_0_0").output
    assert _gradient_support(model, layer_output, (1, 2), (32, 32, 3)) == box


class NoneBuiltMlp(L.Layer):
    """A Sequential built on a None length and called at a known one (keras-hub ViTDet's MLP):
    expanded with its stored shapes its nodes kept the None, and counting refused them."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.mlp = keras.Sequential([L.Dense(8, name="up")], name="mlp")

    def build(self, shape):
        self.mlp.build((None, None, shape[-1]))

    def call(self, x):
        return self.mlp(x)


def test_a_branch_built_on_unknown_sizes_is_traced_at_the_known_ones():
    """6 tokens of 4 features through Dense(8): 6 * 4 * 8 = 192 MACs, output (6, 8)."""
    x = keras.Input((6, 4), name="x")
    table = modelstats.count_flops(keras.Model(x, NoneBuiltMlp(name="block")(x)), strict=True)
    dense = table[table["type"] == "Dense"]
    assert list(dense["macs"]) == [192]
    assert list(map(str, dense["output_shape"])) == ["[[6, 8]]"]
