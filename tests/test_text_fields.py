"""Receptive fields over token positions (issue 14: "a text model has a 1-D field").

A ``(T,)`` input of token ids looked up by an Embedding has one spatial axis, its positions:
the lookup keeps each position, so a text CNN's field is counted in tokens like a 1-D map's.
Attention under a mask (``use_causal_mask=True``, an ``attention_mask``, a masked softmax in
a traced call) is not reported global: with a causal mask position t sees only the positions
up to t, and modelstats does not read masks, so the field is unknown from there on, with the
reason. Attention without a mask stays global.

The oracle is the gradient probe: with positive weights, the positions of the embedding
output with a non-zero gradient of one output unit are exactly the ones it depends on.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import modelstats

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
ops = keras.ops
L = keras.layers

POSITIVE = keras.initializers.RandomUniform(0.1, 1.0)


@functools.cache
def _hub(name):
    """A keras-hub model of tests/oracles/hub_models.py, built once for this module."""
    from tests.oracles.hub_models import MODELS

    return MODELS[name]()


def _text_cnn():
    ids = keras.Input((12,), dtype="int32", name="ids")
    embedded = L.Embedding(50, 4, embeddings_initializer=POSITIVE, name="embedding")(ids)
    x = L.Conv1D(4, 3, padding="same", kernel_initializer=POSITIVE, name="conv1")(embedded)
    x = L.Conv1D(4, 3, dilation_rate=2, kernel_initializer=POSITIVE, name="conv2")(x)
    return keras.Model(ids, x)


def _gradient_rows(model, node, unit):
    embedding = model.get_layer("embedding")
    layers = model.layers[2:]
    ids = tf.constant((np.arange(12) % 50)[None], dtype="int32")
    looked_up = embedding(ids)
    with tf.GradientTape() as tape:
        tape.watch(looked_up)
        x = looked_up
        for layer in layers:
            x = layer(x)
            if layer.name == node:
                break
        target = tf.reduce_sum(x[0, unit])
    gradient = tape.gradient(target, looked_up).numpy()[0]
    rows = np.flatnonzero(np.abs(gradient).sum(axis=-1) > 0)
    return int(rows.min()), int(rows.max())


def test_a_text_cnn_has_a_field_in_tokens():
    """Embedding: each token its own (r 1, j 1, p 0). conv1 k=3 "same": r 3, p 1. conv2 k=3
    dilation 2 "valid": r 3 + 2*2 = 7, p 1. Unit 4 of conv2 sees tokens 4 - 1 = 3 to 9."""
    model = _text_cnn()
    report = modelstats.analyze(model)
    rows = report.layers
    assert rows.loc["ids", "rf_status"] == "spatial"
    field = lambda node: (lambda rf: (rf.status, rf.size, rf.stride, rf.padding))(
        report.receptive_field(node))
    assert field("embedding") == ("spatial", (1,), (1,), (0,))
    assert field("conv1") == ("spatial", (3,), (1,), (1,))
    assert field("conv2") == ("spatial", (7,), (1,), (1,))
    for node, unit in (("conv1", 0), ("conv1", 5), ("conv2", 0), ("conv2", 4), ("conv2", 7)):
        (box,) = report.receptive_field(node).box((unit,), clip=True)
        assert box == _gradient_rows(model, node, unit), (node, unit)


def test_the_tokens_are_the_input_with_the_largest_vocabulary():
    """Token ids (vocabulary 50) and segment ids (vocabulary 2), both looked up and added:
    the field is over the token positions, with no warning about several inputs; the segment
    embedding does not depend on the tokens."""
    tokens = keras.Input((8,), dtype="int32", name="token_ids")
    segments = keras.Input((8,), dtype="int32", name="segment_ids")
    x = L.Add(name="add")([L.Embedding(50, 4, name="token_embedding")(tokens),
                           L.Embedding(2, 4, name="segment_embedding")(segments)])
    model = keras.Model([tokens, segments], L.Conv1D(4, 5, name="conv")(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = modelstats.analyze(model)
    rows = report.layers
    assert rows.loc["segment_embedding", "rf_status"] == "unrelated"
    assert report.receptive_field("conv").size == (5,)


def _sequence_attention(**call):
    x = keras.Input((10, 4), name="x")
    h = L.Conv1D(4, 3, padding="same", name="conv")(x)
    inputs = [x]
    if call.pop("mask_input", False):
        mask = keras.Input((10, 10), dtype="bool", name="mask")
        inputs.append(mask)
        call["attention_mask"] = mask
    attended = L.MultiHeadAttention(2, 4, name="attention")(h, h, **call)
    return keras.Model(inputs, L.Add(name="residual")([h, attended]))


def test_attention_without_a_mask_stays_global():
    report = modelstats.analyze(_sequence_attention())
    assert report.receptive_field("attention").status == "global"
    assert report.receptive_field("residual").global_context


@pytest.mark.parametrize("call, why", [({"use_causal_mask": True}, "causal mask"),
                                       ({"mask_input": True}, "attention_mask")])
def test_attention_under_a_mask_is_not_global(call, why):
    """Causal: position t sees positions up to t (was reported global, the whole input)."""
    report = modelstats.analyze(_sequence_attention(**call), input="x")
    attention = report.receptive_field("attention")
    assert attention.status == "unknown" and why in attention.note
    assert report.receptive_field("residual").status == "unknown"
    assert report.receptive_field("conv").size == (3,)


class MaskedSelfAttention(L.Layer):
    """softmax(q kᵀ [+ mask]) v written with keras.ops, the mask optional: traced."""

    def build(self, shapes):
        dim = (shapes[0] if isinstance(shapes, list) else shapes)[-1]
        self.wq = self.add_weight(shape=(dim, dim), initializer=POSITIVE, name="wq")
        self.wk = self.add_weight(shape=(dim, dim), initializer=POSITIVE, name="wk")

    def call(self, inputs):
        x, mask = inputs if isinstance(inputs, list) else (inputs, None)
        q, k = ops.matmul(x, self.wq), ops.matmul(x, self.wk)
        scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))
        if mask is not None:
            scores = ops.where(mask, scores, -1e9)
        return ops.matmul(ops.softmax(scores, axis=-1), x)


@pytest.mark.parametrize("masked", [False, True])
def test_a_traced_attention_under_a_mask_is_not_global(masked):
    """The mask is another model input (a padding or causal mask, as keras-hub passes):
    merged into the scores it makes the weights' product unknown, not global."""
    ids = keras.Input((6,), dtype="int32", name="ids")
    x = L.Embedding(20, 4, name="embedding")(ids)
    inputs = [ids]
    if masked:
        mask = keras.Input((6, 6), dtype="bool", name="mask")
        inputs.append(mask)
        out = MaskedSelfAttention(name="attention")([x, mask])
    else:
        out = MaskedSelfAttention(name="attention")(x)
    report = modelstats.analyze(keras.Model(inputs, out), input="ids")
    rows = report.layers
    (product,) = [n for n in rows.index if n.startswith("attention/matmul")][-1:]
    if masked:
        assert rows.loc[product, "rf_status"] == "unknown"
        assert "under the mask" in report.receptive_field(product).note
    else:
        assert rows.loc[product, "rf_status"] == "global"


@pytest.mark.parametrize("name, first_attention, status, why", [
    ("hub_bert", "transformer_layer_0/self_attention_layer", "global",
     "lets every query see every key of a full-length input"),
    ("hub_gpt2", "transformer_layer_0/self_attention", "unknown", "a causal mask"),
])
def test_keras_hub_text_backbones_have_token_fields(name, first_attention, status, why):
    """The token embedding keeps each position (r 1). Every attention is given a mask built
    from the padding mask: BERT's keeps every token of a full-length input (global), GPT-2's
    adds a causal one (unknown: position t sees positions up to t)."""
    pytest.importorskip("keras_hub")
    from tests.oracles.hub_models import MODELS, input_shape_argument

    spec = MODELS[name]
    model = _hub(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.MultipleSpatialInputsWarning)
        report = modelstats.analyze(model, input_shape=input_shape_argument(model, spec.inputs))
    rows = report.layers
    assert rows.loc["token_ids", "rf_status"] == "spatial"
    field = report.receptive_field("token_embedding")
    assert (field.status, field.size, field.stride, field.padding) == \
        ("spatial", (1,), (1,), (0,))
    attention = report.receptive_field(first_attention)
    assert attention.status == status and why in attention.note, attention.note
    if status == "unknown":
        assert not (rows["rf_status"] == "global").any()


def _padded_attention(causal, traced):
    """Token ids and a padding mask (T,), as keras-hub takes them; the attention mask is
    built inside from the padding mask, and with ``causal`` merged with a lower triangle."""
    ids = keras.Input((6,), dtype="int32", name="ids")
    padding = keras.Input((6,), dtype="int32", name="padding_mask")
    x = L.Embedding(20, 4, name="embedding")(ids)
    mask = ops.cast(ops.expand_dims(padding, 1) * ops.ones((1, 6, 1), "int32"), "bool")
    if causal:
        mask = ops.logical_and(mask, ops.cast(ops.tril(ops.ones((6, 6))), "bool"))
    if traced:
        out = MaskedSelfAttention(name="attention")([x, mask])
    else:
        out = L.MultiHeadAttention(2, 2, name="attention")(x, x, attention_mask=mask)
    return keras.Model([ids, padding], out)


@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("causal", [False, True])
def test_a_mask_built_from_the_padding_mask_is_read(causal, traced):
    """The mask is read on a full-length input (the padding mask all ones): without the
    causal part it lets every query see every key, so the attention is global, as keras-hub's
    BERT; with it, unknown, its note naming the causal mask (position t sees up to t)."""
    report = modelstats.analyze(_padded_attention(causal, traced), input="ids")
    rows = report.layers
    node = [n for n in rows.index if n.startswith("attention/matmul")][-1] if traced \
        else "attention"
    field = report.receptive_field(node)
    if causal:
        assert field.status == "unknown" and "a causal mask" in field.note, field.note
    else:
        assert field.status == "global", field.note


def test_the_command_line_counts_a_text_field_in_tokens(tmp_path, capsys):
    """The text CNN's last feature map: 7 tokens (an image's would be in px)."""
    from modelstats.cli import main

    path = tmp_path / "text.keras"
    _text_cnn().save(path)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "receptive field of the last feature map 'conv2': 7 tokens, stride 1, padding 1" \
        in out


def test_a_text_model_costs_as_a_formula_of_its_length():
    """Token ids of any length T: Embedding 0; Conv1D k=3 8 -> 8: 3*8*8 = 192 T; attention,
    2 heads of 4 on 8 features: projections q, k, v 3 * 8*8 = 192 T and output 8*8 = 64 T,
    scores and weighted sum 2 heads * T*T * 4 * 2 = 16 T^2. Total 16 T^2 + 448 T, equal to
    the count at T = 16 (4,096 + 7,168 = 11,264)."""
    import sympy

    ids = keras.Input((None,), dtype="int32", name="ids")
    x = L.Embedding(50, 8, name="embedding")(ids)
    x = L.Conv1D(8, 3, padding="same", name="conv")(x)
    model = keras.Model(ids, L.MultiHeadAttention(2, 4, name="mha")(x, x))
    report = modelstats.analyze(model, input_shape=("T",))
    T = sympy.Symbol("T", positive=True, integer=True)
    assert sympy.expand(report.totals["macs"] - (16 * T**2 + 448 * T)) == 0
    assert report.at(T=16).totals["macs"] == 11_264 == \
        modelstats.analyze(model, input_shape=(16,)).totals["macs"]


def test_keras_hub_gpt2_costs_as_a_formula_of_its_length():
    """GPT-2, 2 layers of hidden 64, 2 heads of 32, MLP 128: per token and layer q, k, v
    3 * 64*64, output 64*64, MLP 2 * 64*128, 32,768; attention 2 heads * T^2 * 32 * 2 =
    128 T^2 a layer. 256 T^2 + 65,536 T: at 16 tokens the JAX oracle's 1,114,112.

    Its PositionEmbedding is counted from a backend trace, at concrete sizes only: in the
    formula it is unsupported, and the totals say partial (it adds no MAC at 16 tokens)."""
    pytest.importorskip("keras_hub")
    import sympy

    with pytest.warns(modelstats.UnsupportedLayerWarning, match="PositionEmbedding"):
        report = modelstats.analyze(
            _hub("hub_gpt2"), input_shape={"token_ids": ("T",), "padding_mask": ("T",)})
    assert report.totals["partial"]
    T = sympy.Symbol("T", positive=True, integer=True)
    assert sympy.expand(report.totals["macs"] - (256 * T**2 + 65_536 * T)) == 0
    at_16 = report.at(T=16)
    assert at_16.totals["macs"] == 1_114_112 and not at_16.totals["partial"]


class TokenAndPosition(L.Layer):
    """Token and position embeddings in one custom layer (keras-hub's
    TokenAndPositionEmbedding, which RoBERTa, DistilBERT and OPT use): traced, the Embedding
    one call inside it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tokens = L.Embedding(30, 4, embeddings_initializer=POSITIVE, name="tokens")

    def build(self, shape):
        self.positions = self.add_weight(shape=(shape[-1], 4), name="positions")

    def call(self, ids):
        return self.tokens(ids) + self.positions


def test_an_embedding_inside_a_custom_layer_gives_the_field_and_the_map():
    """Through the traced layer's input the ids reach its Embedding: the field is over the
    tokens (a 3-token Conv1D after it: r 3, p 1), and the effective field is taken there."""
    ids = keras.Input((8,), dtype="int32", name="ids")
    x = TokenAndPosition(name="embeddings")(ids)
    model = keras.Model(ids, L.Conv1D(4, 3, padding="same", name="conv")(x))
    report = modelstats.analyze(model)
    field = report.receptive_field("conv")
    assert (field.status, field.size, field.padding) == ("spatial", (3,), (1,))
    erf = modelstats.effective_receptive_field(model, "conv", n_images=2)
    assert erf.box == ((3, 5),)
    assert np.count_nonzero(erf.map) == 3


@pytest.mark.parametrize("is_causal", [False, True])
def test_ops_dot_product_attention_is_global_only_without_a_causal_mask(is_causal):
    """keras.ops.dot_product_attention was global whatever its is_causal (a review find):
    causal, position t sees positions up to t."""
    x = keras.Input((6, 8), name="x")
    q = L.Reshape((6, 2, 4), name="heads")(L.Conv1D(8, 3, padding="same", name="conv")(x))
    out = ops.nn.dot_product_attention(q, q, q, is_causal=is_causal)
    report = modelstats.analyze(keras.Model(x, out))
    node = [n for n in report.layers.index if report.layers.loc[n, "type"] ==
            "DotProductAttention"][0]
    field = report.receptive_field(node)
    if is_causal:
        assert field.status == "unknown" and "a causal mask" in field.note, field.note
    else:
        assert field.status == "global", field.note
