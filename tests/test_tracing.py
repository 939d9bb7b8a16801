"""Custom layers and subclassed models: traced into their sublayer and ``keras.ops`` calls.

The arithmetic is written out in each test; the totals are also checked against the JAX-trace
oracle (tests/oracles/jax_macs.py), which counts what JAX really computes.
"""

from __future__ import annotations

import warnings

import pytest

import modelstats
from tests.oracles.custom_models import Affine, ConvBlock, ResidualNet, custom_affine, residual_net

# stem 8*8 * 3*3 * 3 * 8 = 13,824; block 8*8 * 3*3 * 8 * 8 = 36,864; wide 8*8 * 3*3 * 8 * 16
# = 73,728 plus its 1x1 projection 8*8 * 8 * 16 = 8,192; shared, twice, 8*8 * 3*3 * 16 * 16
# = 147,456 each; head 16 * 5 = 80.
RESIDUAL_NET_MACS = 13_824 + 36_864 + 73_728 + 8_192 + 2 * 147_456 + 80
# stem 3*3*3*8 + 8; block 3*3*8*8 + BN 4*8 + gamma 8; wide 3*3*8*16 + BN 4*16 + projection
# 8*16 + 16 + gamma 16; shared 3*3*16*16 + BN 4*16 + gamma 16 (once: shared weights);
# head 16*5 + 5.
RESIDUAL_NET_PARAMS = 224 + (576 + 32 + 8) + (1_152 + 64 + 144 + 16) + (2_304 + 64 + 16) + 85


@pytest.fixture(scope="module")
def net():
    model = ResidualNet(name="net")
    return model


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        return function(*args, **kwargs)


def test_custom_layer_with_its_own_weights():
    """6 tokens x 5 features @ kernel (5, 7) + bias: 6*5*7 = 210 MACs, 6*7 = 42 bias adds."""
    model = custom_affine()
    table = _quiet(modelstats.count_flops, model)
    assert table.loc["affine/matmul", "macs"] == 210
    assert table.loc["affine/add", "flops"] == 42
    assert int(table["macs"].sum()) == 210
    # the layer's own weights are counted at the operations that read them
    assert table.loc["affine/matmul", "params"] == 5 * 7
    assert table.loc["affine/add", "params"] == 7
    assert int(table["params"].sum()) == model.count_params() == 42
    assert set(table["status"]) <= {"counted", "zero"}


def test_subclassed_model_traced_exactly(net):
    report = _quiet(modelstats.analyze, net, input_shape=(16, 16, 3))
    assert report.totals["macs"] == RESIDUAL_NET_MACS == 427_600
    assert report.totals["params"] == RESIDUAL_NET_PARAMS == 4_685
    assert not report.totals["partial"]
    layers = report.layers
    # a sublayer called twice gives one node per call; its weights count at the first call
    assert layers.loc["shared/conv", "macs"] == layers.loc["shared#1/conv", "macs"] == 147_456
    assert layers.loc["shared/conv", "params"] == 2_304
    assert layers.loc["shared#1/conv", "params"] == 0
    net(__import__("keras").ops.ones((1, 16, 16, 3)))  # built now: Keras' own count agrees
    assert net.count_params() == RESIDUAL_NET_PARAMS


def test_fields_compose_through_traced_blocks(net):
    """stem 3x3 stride 2 "same" on 16 px pads 1 in total, 0 on the left: r 3, j 2, p 0. Each
    3x3 "same" conv after it adds (3-1)*2 = 4 px and pads 1 unit = 2 px: block 7, wide 11,
    shared 15, shared#1 19, padding 8. The residual adds merge aligned paths (the shortcut's
    field is centred where the conv path's is)."""
    rf = modelstats.receptive_field(net, "shared#1/add", input_shape=(16, 16, 3))
    assert (rf.size, rf.stride, rf.padding) == ((19, 19), (2, 2), (8, 8))
    assert modelstats.receptive_field(net, "block/conv", input_shape=(16, 16, 3)).size == (7, 7)
    assert rf.box((0, 0), clip=True) == ((0, 10), (0, 10))


def test_node_ids_do_not_depend_on_what_ran_before(net):
    first = list(modelstats.to_networkx(net, input_shape=(16, 16, 3)))
    ConvBlock(4)  # Keras numbers auto-named objects process-wide
    second = list(modelstats.to_networkx(net, input_shape=(16, 16, 3)))
    assert first == second
    assert "block/relu" in first and "block/multiply" in first and "block/add" in first


def test_collapsed_traced_layers_count_the_same(net):
    expanded = _quiet(modelstats.count_flops, residual_net())
    collapsed = _quiet(modelstats.count_flops, residual_net(), expand_nested=False)
    assert int(expanded["macs"].sum()) == int(collapsed["macs"].sum()) == RESIDUAL_NET_MACS
    assert int(expanded["flops"].sum()) == int(collapsed["flops"].sum())
    assert list(collapsed.index) == ["image", "net"]


def test_a_call_that_cannot_be_traced_is_unsupported_with_the_reason(keras):
    import tensorflow as tf

    class RawTF(keras.layers.Layer):
        def call(self, x):  # TensorFlow code: not symbolic; its TensorFlow graph has a Cumsum,
            return tf.math.cumsum(tf.convert_to_tensor(x)) * 2.0  # which has no count either

    x = keras.Input((4,), name="x")
    model = keras.Model(x, RawTF(name="raw")(x))
    with pytest.warns(modelstats.UnsupportedLayerWarning, match="RawTF"):
        table = modelstats.count_flops(model)
    assert table.loc["raw", "status"] == "unsupported"
    assert "could not be traced" in table.loc["raw", "note"]
    assert "Cumsum" in table.loc["raw", "note"]


def test_an_unbuilt_subclassed_model_asks_for_input_shape():
    with pytest.raises(modelstats.NotAGraphModelError, match="input_shape"):
        modelstats.analyze(ResidualNet())


def test_macs_equal_the_jax_trace():
    pytest.importorskip("jax")
    from tests.oracles.jax_macs import macs_in_subprocess

    oracle = macs_in_subprocess([
        "tests.oracles.custom_models:custom_affine",
        "tests.oracles.custom_models:residual_net",
    ])
    assert oracle["tests.oracles.custom_models:custom_affine"]["macs"] == 210
    assert oracle["tests.oracles.custom_models:residual_net"]["macs"] == RESIDUAL_NET_MACS


def test_registered_rule_still_wins_over_tracing(keras, registry):
    from modelstats.registry import Cost

    modelstats.register_layer(Affine, cost=lambda layer, ins, outs: Cost(macs=1))
    table = modelstats.count_flops(custom_affine())
    assert list(table.index) == ["tokens", "affine"] and table.loc["affine", "macs"] == 1


def test_layers_are_traced_at_the_sizes_input_shape_gives(keras):
    """A call whose Python code needs the sizes (here a reshape to H*W tokens) cannot run on
    (None, None): with input_shape=(4, 4, 3) it is traced at 4x4, giving 16 tokens of 3."""

    class Tokens(keras.layers.Layer):
        def call(self, x):
            height, width = keras.ops.shape(x)[1], keras.ops.shape(x)[2]
            return keras.ops.reshape(x, (-1, height * width, x.shape[-1]))

    x = keras.Input((None, None, 3), name="image")
    y = Tokens(name="tokens")(keras.layers.Conv2D(3, 1, name="mix")(x))
    model = keras.Model(x, keras.layers.Dense(2, name="dense")(y))
    table = _quiet(modelstats.count_flops, model, input_shape=(4, 4, 3))
    assert table.loc["tokens/reshape", "output_shape"] == [[16, 3]]
    # mix 4*4 * 3 * 3 = 144 MACs; dense 16 tokens * 3 * 2 = 96 MACs
    assert int(table["macs"].sum()) == 144 + 96


def test_work_folded_into_the_leading_axis_is_counted_per_sample(keras):
    """Window attention style: 8 tokens split into 2 windows of 4 (leading axis 1 -> 2), a
    Dense(3) on each window, merged back. The Dense does 8 tokens * 5 * 3 = 120 MACs per
    sample, though each of its calls sees a window of 4 tokens (its leading axis holds 2)."""

    class Windowed(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3, use_bias=False, name="dense")

        def call(self, x):
            windows = keras.ops.reshape(x, (-1, 4, x.shape[-1]))
            return keras.ops.reshape(self.dense(windows), (-1, 8, 3))

    x = keras.Input((8, 5), name="tokens")
    model = keras.Model(x, Windowed(name="win")(x))
    table = _quiet(modelstats.count_flops, model)
    assert table.loc["win/dense", "macs"] == 8 * 5 * 3
    assert table.loc["win/dense", "activations"] == 8 * 3
    report = _quiet(modelstats.analyze, model, batch_size=4)
    assert report.totals["macs"] == 4 * 120


def test_a_hand_written_dense_layer_keeps_positions(keras):
    """ops.matmul(x, kernel) with a weight matrix mixes the channels of each position only:
    after a 3x3 conv the field stays 3x3 (a product of two tensors would be global)."""
    x = keras.Input((8, 8, 3), name="image")
    y = Affine(4, name="affine")(keras.layers.Conv2D(5, 3, name="conv")(x))
    rf = modelstats.receptive_field(keras.Model(x, y), "affine/add")
    assert rf.status == "spatial" and rf.size == (3, 3)
