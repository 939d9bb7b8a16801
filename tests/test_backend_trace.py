"""The backend fallback (modelstats/backend_trace.py): calls that Keras symbolic tensors refuse,
counted from their TensorFlow graph (and, for the pure counter, from a jaxpr).

Each layer below fails the symbolic trace for a reason met in real models (``tf.*`` code, an
output computed from weights alone, a ``(x, None)`` output, a shape frozen at build time); the
expected numbers are worked out in each test.
"""

from __future__ import annotations

import warnings

import pytest

import modelstats
from modelstats.registry import Cost, Unsupported

tf = pytest.importorskip("tensorflow")


def _count(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        return modelstats.count_flops(model, **kwargs)


def _one_layer(keras, layer, shape, name="layer"):
    x = keras.Input(shape, name="x")
    return keras.Model(x, layer(x))


@pytest.fixture(scope="module")
def layers(keras):
    """Layer classes whose calls refuse Keras symbolic tensors."""

    from tests.oracles.custom_models import Affine

    class TfDense(Affine):
        """Affine's weights, its call written with tf.linalg.matmul and tf.nn.bias_add."""

        def call(self, x):
            return tf.nn.bias_add(tf.linalg.matmul(x, self.kernel), self.bias)

    class TfConvs(keras.layers.Layer):
        """tf.nn.conv2d (3x3, stride 2, 3 -> 4), depthwise 3x3, then a transposed 3x3 conv
        back to 2 channels at stride 2."""

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(3, 3, 3, 4), name="kernel")
            self.depthwise = self.add_weight(shape=(3, 3, 4, 1), name="depthwise")
            self.transposed = self.add_weight(shape=(3, 3, 2, 4), name="transposed")

        def call(self, x):
            y = tf.nn.conv2d(x, self.kernel, strides=2, padding="SAME")
            y = tf.nn.depthwise_conv2d(y, self.depthwise, strides=[1, 1, 1, 1], padding="SAME")
            return tf.nn.conv2d_transpose(y, self.transposed, (1, 8, 8, 2), strides=2)

    class Table(keras.layers.Layer):
        """Its output is computed from its weights alone (a low-rank table a @ b, broadcast
        over the batch): the symbolic trace gets no symbolic tensor back."""

        def build(self, input_shape):
            self.a = self.add_weight(shape=(4, 3), name="a")
            self.b = self.add_weight(shape=(3, 5), name="b")

        def call(self, x):
            table = keras.ops.matmul(self.a, self.b)
            return keras.ops.broadcast_to(table[None], (keras.ops.shape(x)[0], 4, 5))

    class Pair(keras.layers.Layer):
        """Returns (x, None), as keras-hub's DeiT blocks without attention scores."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3, name="dense")

        def call(self, x):
            return self.dense(x), None

    class Encoder(keras.layers.Layer):
        """Calls a Pair: Keras refuses the None output of a symbolic call."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.block = Pair(name="block")

        def call(self, x):
            y, _ = self.block(x)
            return y

    class Loop(keras.layers.Layer):
        """h = tanh(h @ w), three times, in a tf.while_loop."""

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="w")

        def call(self, x):
            def body(i, h):
                return i + 1, tf.tanh(tf.linalg.matmul(h, self.w))

            return tf.while_loop(lambda i, h: i < 3, body, (tf.constant(0), x))[1]

    class Doubling(keras.layers.Layer):
        """Doubles x until it exceeds 10: how often depends on the data."""

        def call(self, x):
            return tf.while_loop(lambda h: tf.reduce_max(h) < 10.0, lambda h: h * 2.0, [x])[0]

    class Frozen(keras.layers.Layer):
        """An EinsumDense built on an unknown sequence length keeps it unknown in its
        output, and a reshape to that output's shape bakes the None in (keras-hub Gemma)."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.proj = keras.layers.EinsumDense("btd,de->bte", output_shape=(None, 4),
                                                 name="proj")

        def build(self, input_shape):
            self.proj.build((None, None, input_shape[-1]))

        def call(self, x):
            y = self.proj(x)
            return keras.ops.reshape(y * 2.0, keras.ops.shape(y))

    return {cls.__name__: cls for cls in (TfDense, TfConvs, Table, Encoder, Loop, Doubling,
                                          Frozen)}


def test_a_tf_matmul_layer_is_traced_exactly(keras, layers):
    """6 tokens x 5 features @ kernel (5, 7): 6*5*7 = 210 MACs; bias_add 6*7 = 42 adds."""
    model = _one_layer(keras, layers["TfDense"](7, name="dense"), (6, 5))
    report = modelstats.analyze(model)
    row = report.layers.loc["dense"]
    assert row["status"] == "traced"
    assert row["note"].startswith("counted from the TensorFlow graph of its call; its trace on "
                                  "Keras symbolic tensors failed (ValueError: A KerasTensor")
    assert (row["macs"], row["flops"], row["params"]) == (210, 2 * 210 + 42, 5 * 7 + 7)
    assert row["output_shape"] == [[6, 7]]
    # a traced row is counted: the totals are whole and no block is partial
    assert report.totals["macs"] == 210 and not report.totals["partial"]
    assert report.totals["unsupported"] == []
    assert report.by_block().loc["dense", "unsupported"] == 0


def test_tf_convolutions_are_counted_over_their_positions(keras, layers):
    """8x8x3 image. conv 3x3 stride 2 "same" -> 4x4x4: 16 * 9 * 3 * 4 = 1,728 MACs; depthwise
    3x3 on 4x4x4: 16 * 9 * 4 = 576; transposed 3x3 stride 2 from 4x4x4 to 8x8x2, over its
    input positions (as Conv2DTranspose's rule): 16 * 9 * 4 * 2 = 1,152."""
    table = _count(_one_layer(keras, layers["TfConvs"](name="convs"), (8, 8, 3)))
    assert table.loc["convs", "macs"] == 1_728 + 576 + 1_152
    assert table.loc["convs", "flops"] == 2 * (1_728 + 576 + 1_152)
    assert table.loc["convs", "output_shape"] == [[8, 8, 2]]


def test_an_output_computed_from_weights_alone(keras, layers):
    """a (4, 3) @ b (3, 5): 4*5*3 = 60 MACs, whatever the input."""
    table = _count(_one_layer(keras, layers["Table"](name="table"), (2,)))
    assert table.loc["table", "status"] == "traced"
    assert table.loc["table", "macs"] == 60
    assert table.loc["table", "params"] == 4 * 3 + 3 * 5


def test_a_block_returning_none_is_traced_through(keras, layers):
    """Keras' node of a symbolic call refuses the None of the Pair's (x, None), so the Encoder
    used to be kept whole and counted from its TensorFlow graph. Inside a trace the node now
    records the tensor only, and the call keeps its None: traced node by node. The Dense(3) on
    4 x 5: 4*5*3 = 60 MACs and 4*3 = 12 bias adds."""
    table = _count(_one_layer(keras, layers["Encoder"](name="encoder"), (4, 5)))
    assert "traced" not in set(table["status"])
    assert (table.loc["encoder/block/dense", "macs"],
            table.loc["encoder/block/dense", "flops"]) == (60, 2 * 60 + 12)
    macs_only = modelstats.count_flops(_one_layer(keras, layers["Encoder"](), (4, 5)),
                                       convention="macs_only")
    assert int(macs_only["flops"].sum()) == 2 * 60


def test_a_constant_output_nobody_reads_is_left_out(keras):
    """keras-hub's DeiT encoder returns (hidden states, ops.empty(...), ops.empty(...)) and
    the backbone reads only the first: the empty tensors, computed from shapes alone, have
    no node, and the encoder is traced. When the model reads such an output, the call is
    kept whole instead (counted from its TensorFlow graph): no node of the trace stands for
    it. Dense(3) on 4 x 5: 60 MACs either way."""

    class WithEmpties(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = keras.layers.Dense(3, name="dense")

        def call(self, x):
            return self.dense(x), keras.ops.zeros((0, 4, 3))

    x = keras.Input((4, 5), name="x")
    y, _ = WithEmpties(name="block")(x)
    table = _count(keras.Model(x, y))
    assert "traced" not in set(table["status"])
    assert table.loc["block/dense", "macs"] == 60

    x = keras.Input((4, 5), name="x")
    y, empty = WithEmpties(name="block")(x)
    table = _count(keras.Model(x, [y, empty]))
    assert table.loc["block", "status"] == "traced"
    assert "computed from weights or shapes alone, and the model reads it" in \
        table.loc["block", "note"]
    assert table.loc["block", "macs"] == 60


def test_a_loop_with_a_static_trip_count(keras, layers):
    """Three steps of tanh((4, 8) @ (8, 8)): 3 * 4*8*8 = 768 MACs. FLOPs: 2 * 768, tanh
    3 * 32 = 96, the two counters' increments (TensorFlow's and the loop's) 3 * 2 = 6, and
    the condition i < 3 evaluated 4 times."""
    table = _count(_one_layer(keras, layers["Loop"](name="loop"), (4, 8)))
    assert table.loc["loop", "macs"] == 768
    assert table.loc["loop", "flops"] == 2 * 768 + 96 + 6 + 4


def test_what_cannot_be_counted_stays_unsupported_with_the_reason(keras, layers):
    model = _one_layer(keras, layers["Doubling"](name="doubling"), (4,))
    with pytest.warns(modelstats.UnsupportedLayerWarning, match="Doubling"):
        table = modelstats.count_flops(model)
    assert table.loc["doubling", "status"] == "unsupported"
    note = table.loc["doubling", "note"]
    assert "could not be traced on symbolic inputs" in note
    assert "has no static trip count" in note
    with pytest.raises(modelstats.UnsupportedLayerError, match="Doubling"):
        modelstats.count_flops(model, strict=True)


def test_strict_accepts_traced_rows(keras, layers):
    table = modelstats.count_flops(_one_layer(keras, layers["TfDense"](3, name="d"), (5,)),
                                   strict=True)
    assert table.loc["d", "status"] == "traced" and table.loc["d", "macs"] == 15


def test_a_node_kept_whole_falls_back_as_well(keras, layers):
    """expand_nested=False keeps the Encoder whole without tracing it: the same count."""
    model = _one_layer(keras, layers["Encoder"](name="encoder"), (4, 5))
    whole = _count(model, expand_nested=False)
    assert whole.loc["encoder", "status"] == "traced"
    assert whole.loc["encoder", "macs"] == 60


def test_a_sublayer_shape_frozen_at_build_is_completed_from_its_call(keras, layers):
    """Frozen's EinsumDense was built on an unknown sequence length and says so; inside the
    trace its outputs are inferred from its call at the known 6 instead, so the reshape to its
    shape keeps 6 (keras-hub Gemma's attention). Before, the layer was kept whole and counted
    from its TensorFlow graph. Counted per node: the projection 6 * 5 * 4 = 120 MACs, the
    doubling 6 * 4 = 24 FLOPs."""
    x = keras.Input((None, 5), name="x")
    model = keras.Model(x, layers["Frozen"](name="frozen")(x))
    table = _count(model, input_shape=(6, 5))
    assert list(table.index) == ["x", "frozen/input", "frozen/proj", "frozen/multiply",
                                 "frozen/reshape"]
    assert set(table["status"]) == {"zero", "counted"}
    assert table.loc["frozen/reshape", "output_shape"] == [[6, 4]]
    assert (table.loc["frozen/proj", "macs"], table.loc["frozen/multiply", "flops"]) == (120, 24)
    assert int(table["params"].sum()) == 5 * 4


def test_a_call_narrower_than_its_sublayers_call_is_traced(keras, registry):
    """keras-hub's CachedMultiHeadAttention passes ``cache=`` to MultiHeadAttention's
    ``compute_output_spec``, which takes no such argument (TypeError). Inside a trace the
    sublayer's outputs then come from its call: the block is traced, not kept whole. Dense(3)
    on 4 x 5: 4*5*3 = 60 MACs. (Cached overrides ``call``, so it is registered with Dense's
    rule here, as keras-hub's class is known to do Dense's work: else it would be traced.)"""

    class Cached(keras.layers.Dense):
        def call(self, x, cache=None):
            return super().call(x)

        def compute_output_spec(self, x):
            return super().compute_output_spec(x)

    class Block(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Cached(3, name="inner")

        def call(self, x):
            return self.inner(x, cache=None)

    dense = registry.cost_rule(keras.layers.Dense)
    modelstats.register_layer(Cached, cost=dense,
                              geometry=registry.geometry_rule(keras.layers.Dense))
    table = _count(_one_layer(keras, Block(name="block"), (4, 5)))
    assert table.loc["block/inner", "status"] == "counted"
    assert table.loc["block/inner", "macs"] == 60


def test_an_output_computed_from_a_slice_of_weights_is_traced(keras):
    """A position table sliced to the sequence length and broadcast (keras-hub GPT-2's
    PositionEmbedding) returns no symbolic tensor: it is counted from its TensorFlow graph,
    no MAC, with the reason named."""

    class Positions(keras.layers.Layer):
        def build(self, input_shape):
            self.table = self.add_weight(shape=(10, 4), name="table")

        def call(self, x):
            length = keras.ops.shape(x)[1]
            return keras.ops.broadcast_to(self.table[None, :length], (1, length, 4))

    table = _count(_one_layer(keras, Positions(name="positions"), (6, 5)))
    assert table.loc["positions", "status"] == "traced"
    assert table.loc["positions", "macs"] == 0
    assert "computed from its weights and its inputs' shapes only" in \
        table.loc["positions", "note"]
    assert table.loc["positions", "output_shape"] == [[6, 4]]


def test_training_splits_products_by_what_they_multiply(keras, layers):
    """The traced dense reads the model input (no gradient) by a trainable kernel: no input
    gradient, a weight gradient of its 210 forward MACs."""
    model = _one_layer(keras, layers["TfDense"](7, name="dense"), (6, 5))
    table = modelstats.count_flops(model, training=True)
    assert (table.loc["dense", "bwd_input_macs"], table.loc["dense", "bwd_weight_macs"]) == \
        (0, 210)


def test_the_tensorflow_counter_splits_plain_state_and_pair_products():
    """x (4, 5): q = x Wq and k = x Wk are input x weight (2 * 4*5*3 = 120 plain MACs);
    q kᵀ multiplies two activations (4*4*3 = 48 pair MACs); (q kᵀ) Wo multiplies a weight by
    what the call computed from weights (4*4*2 = 32 state MACs)."""
    from modelstats.backend_trace import count_tf_graph

    def attention(x, wq, wk, wo):
        q, k = tf.linalg.matmul(x, wq), tf.linalg.matmul(x, wk)
        return tf.linalg.matmul(tf.linalg.matmul(q, k, transpose_b=True), wo)

    specs = [tf.TensorSpec(s) for s in ((4, 5), (5, 3), (5, 3), (4, 2))]
    graph = tf.function(attention, autograph=False).get_concrete_function(*specs).graph
    assert count_tf_graph(graph, [1, 2, 2, 2]) == Cost(macs=120 + 48 + 32, state_macs=32,
                                                       pair_macs=48)


def test_the_tensorflow_counter_follows_called_functions_and_branches():
    """A nested tf.function (a PartitionedCall) does (2, 3) @ (3, 4): 24 MACs; the sum reads
    its 8 elements, the test is 1 compare; either branch does 8 FLOPs, so one is counted.
    Branches that cost differently (8 FLOPs or a 16-MAC product) cannot be counted."""
    from modelstats.backend_trace import count_tf_graph

    @tf.function(autograph=False)
    def project(x, w):
        return tf.linalg.matmul(x, w)

    def even(x, w):
        y = project(x, w)
        return tf.cond(tf.reduce_sum(y) > 0, lambda: y * 2.0, lambda: y + 1.0)

    def uneven(x, w):
        y = project(x, w)
        return tf.cond(tf.reduce_sum(y) > 0, lambda: y * 2.0,
                       lambda: tf.linalg.matmul(y, y, transpose_b=True)[:, :1] + y)

    specs = tf.TensorSpec((2, 3)), tf.TensorSpec((3, 4))
    graph = tf.function(even, autograph=False).get_concrete_function(*specs).graph
    assert count_tf_graph(graph, [1, 2]) == Cost(macs=24, elementwise=8 + 1 + 8)
    graph = tf.function(uneven, autograph=False).get_concrete_function(*specs).graph
    with pytest.raises(Unsupported, match="branches of different costs"):
        count_tf_graph(graph, [1, 2])


def test_the_jax_counter():
    """scan of 3 steps of (2, 4) @ (4, 4): 3 * 2*4*4 = 96 MACs; the attention products split
    as TensorFlow's; a 3x3 conv 6x6x2 -> 4x4x5
    "valid": 16 * 9 * 2 * 5 = 1,440; its transpose at stride 2 from 4x4x5 back to 2 channels
    over input positions: 16 * 9 * 5 * 2 = 1,440; a while loop has no static trip count."""
    jax = pytest.importorskip("jax")
    from modelstats.backend_trace import count_jaxpr

    spec = jax.ShapeDtypeStruct

    def scanned(h, w):
        return jax.lax.scan(lambda c, _: (c @ w, None), h, None, length=3)[0]

    closed = jax.make_jaxpr(scanned)(spec((2, 4), "float32"), spec((4, 4), "float32"))
    assert count_jaxpr(closed, [1, 2]).macs == 96

    def attention(x, wq, wk, wo):  # as in the TensorFlow test: 120 plain, 48 pair, 32 state
        return ((x @ wq) @ (x @ wk).T) @ wo

    closed = jax.make_jaxpr(attention)(*(spec(s, "float32") for s in
                                         ((4, 5), (5, 3), (5, 3), (4, 2))))
    assert count_jaxpr(closed, [1, 2, 2, 2]) == Cost(macs=200, state_macs=32, pair_macs=48)

    def convs(x, k, kt):
        y = jax.lax.conv_general_dilated(x, k, (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.lax.conv_transpose(y, kt, (2, 2), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))

    closed = jax.make_jaxpr(convs)(spec((1, 6, 6, 2), "float32"), spec((3, 3, 2, 5), "float32"),
                                   spec((3, 3, 5, 2), "float32"))
    assert count_jaxpr(closed, [1, 2, 2]).macs == 1_440 + 1_440

    def doubling(x):
        return jax.lax.while_loop(lambda h: h.max() < 10.0, lambda h: h * 2.0, x)

    with pytest.raises(Unsupported, match="while loop"):
        count_jaxpr(jax.make_jaxpr(doubling)(spec((4,), "float32")))


# -- control flow inside a layer: keras.ops.fori_loop and keras.ops.cond ------------------------

def test_a_fori_loop_and_a_cond_equal_the_jax_trace(keras):
    """ops.fori_loop(0, 3, h -> tanh(h @ W)) on (5, 8) tokens: its body is not a Keras graph, so
    the loop node is traced under the backend: 3 steps x 5*8*8 = 960 MACs, as the JAX trace of
    the whole model (scan/while bodies times their trip count) counts them."""
    from tests.oracles import custom_models
    from tests.oracles.jax_macs import macs_in_subprocess

    table = _count(custom_models.fori_loop_model())
    assert table.loc["repeat/fori_loop", "status"] == "traced"
    assert table.loc["repeat/fori_loop", "macs"] == 3 * 5 * 8 * 8 == int(table["macs"].sum())
    oracle = macs_in_subprocess(["tests.oracles.custom_models:fori_loop_model",
                                 "tests.oracles.custom_models:cond_model"])
    assert oracle["tests.oracles.custom_models:fori_loop_model"]["macs"] == 960
    # the oracle counts a cond whose branches do the same MACs once, as modelstats (below)
    assert oracle["tests.oracles.custom_models:cond_model"]["macs"] == 5 * 8 * 8


def test_a_cond_closing_over_the_input_is_traced_whole(keras):
    """ops.cond(sum(x) > 0, x @ up, x @ down): its branches read the call's own input, so the
    cond cannot be replayed alone; the layer is kept whole and traced under the backend. One
    branch runs, and both cost 5*8*8 = 320 MACs: 320, whichever runs."""
    from tests.oracles import custom_models

    table = _count(custom_models.cond_model())
    assert table.loc["gate", "status"] == "traced"
    assert "close over the call's tensors" in table.loc["gate", "note"]
    assert table.loc["gate", "macs"] == 320 == int(table["macs"].sum())


def test_a_cond_of_unequal_branches_stays_unsupported_with_the_costs(keras):
    class MaybeProject(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], shape[-1]), name="w")

        def call(self, x):
            return keras.ops.cond(keras.ops.sum(x) > 0, lambda: keras.ops.matmul(x, self.w),
                                  lambda: x)

    model = _one_layer(keras, MaybeProject(name="maybe"), (5, 8))
    with pytest.warns(modelstats.UnsupportedLayerWarning,
                      match=r"could not count layer class MaybeProject .*\[0, 320\] MACs"):
        table = modelstats.count_flops(model)
    assert table.loc["maybe", "status"] == "unsupported" and table.attrs["partial"]
