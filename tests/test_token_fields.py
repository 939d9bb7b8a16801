"""Receptive fields of tokens (issue 14, "geometry by composition").

A patch embedding (Conv2D k=s=p) followed by a plain row-major flatten of its grid, ``(h, w,
C) -> (h*w, C)``, gives tokens that keep their 2-D positions: token ``prefix + i*w + j`` is
grid position ``(i, j)`` and has that unit's field. Extra tokens joined in front (a class
token from a weight) shift the grid's tokens. Attention over every token makes the field
global; attention inside windows does not, and is never reported global.

The oracle is the one of tests/properties/test_rf_oracle.py: with positive weights, the input
pixels with a non-zero gradient of one unit are exactly the pixels it depends on, so the
clipped box of a patch token must equal that support.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelstats

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")
ops = keras.ops
L = keras.layers


# -- layers a ViT is made of --------------------------------------------------------------------

class ClassToken(L.Layer):
    """Prepends a learned token (a weight, no path from the image), as kimm and keras-hub do:
    traced into ``ops.concatenate([ops.tile(token, ...), x], axis=1)``."""

    def build(self, shape):
        self.token = self.add_weight(shape=(1, 1, shape[-1]), initializer="ones", name="token")

    def call(self, x):
        return ops.concatenate([ops.tile(self.token, [ops.shape(x)[0], 1, 1]), x], axis=1)


class PositionEmbedding(L.Layer):
    """Adds a learned table, one row per token."""

    def build(self, shape):
        self.table = self.add_weight(shape=(1, *shape[1:]), initializer="ones", name="table")

    def call(self, x):
        return ops.add(x, self.table)


class TracedAttention(L.Layer):
    """Multi-head self-attention written with keras.ops, as kimm writes it: q, k, v split into
    heads by reshape/transpose/unstack, scores by matmul (or einsum), softmax, weights times
    values. With ``window``, attention only among ``window`` consecutive tokens (windows on
    an axis of their own, as Swin-style blocks do)."""

    def __init__(self, heads=2, window=None, einsum=False, **kwargs):
        super().__init__(**kwargs)
        self.heads, self.window, self.einsum = heads, window, einsum

    def build(self, shape):
        self.qkv = L.Dense(3 * shape[-1], name="qkv")
        self.proj = L.Dense(shape[-1], name="proj")

    def call(self, x):
        n, c = x.shape[1], x.shape[2]
        d = c // self.heads
        qkv = self.qkv(x)
        if self.window:
            # (B, n/w windows, w tokens, 3, heads, d): attention inside each window
            qkv = ops.reshape(qkv, (-1, n // self.window, self.window, 3, self.heads, d))
            qkv = ops.transpose(qkv, (0, 3, 1, 4, 2, 5))  # (B, 3, windows, heads, w, d)
            q, k, v = ops.unstack(qkv, 3, axis=1)
        else:
            qkv = ops.reshape(qkv, (-1, n, 3, self.heads, d))
            qkv = ops.transpose(qkv, (0, 2, 3, 1, 4))  # (B, 3, heads, n, d)
            q, k, v = ops.unstack(qkv, 3, axis=1)
        if self.einsum:
            lead = "bgh" if self.window else "bh"  # g: the window
            scores = ops.einsum(f"{lead}nd,{lead}md->{lead}nm", q, k)
            out = ops.einsum(f"{lead}nm,{lead}md->{lead}nd", ops.softmax(scores), v)
        else:
            scores = ops.matmul(q, ops.swapaxes(k, -1, -2))
            out = ops.matmul(ops.softmax(scores), v)
        if self.window:
            out = ops.transpose(out, (0, 1, 3, 2, 4))  # (B, windows, w, heads, d)
        else:
            out = ops.transpose(out, (0, 2, 1, 3))  # (B, n, heads, d)
        return self.proj(ops.reshape(out, (-1, n, c)))


def tiny_vit(attention="mha", class_token=True):
    """16x16x3 -> Conv2D 4x4 stride 4 (4x4 grid of 8 channels) -> Reshape((16, 8)) -> class
    token -> position embedding -> LayerNormalization -> attention -> residual Add -> Dense
    -> class token picked -> head."""
    inputs = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 4, strides=4, name="patchify")(inputs)
    x = L.Reshape((16, 8), name="tokens")(x)
    if class_token:
        x = ClassToken(name="cls")(x)
    x = PositionEmbedding(name="pos")(x)
    x = L.LayerNormalization(name="ln")(x)
    if attention == "mha":
        a = L.MultiHeadAttention(2, 4, name="attn")(x, x)
    else:
        a = TracedAttention(name="attn", **attention)(x)
    x = L.Add(name="res")([x, a])
    x = L.Dense(8, name="mlp")(x)
    return keras.Model(inputs, L.Dense(10, name="head")(x[:, 0]))


def positive_weights(model, seed=0):
    """Every weight in [0.5, 1.5): every unit of every map is positive, so a unit's gradient
    is non-zero exactly on the pixels it depends on (see tests/properties/test_rf_oracle.py)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.uniform(0.5, 1.5, weight.shape).astype("float32"))


def support(model, layer, token):
    """Bounding box of the pixels with a non-zero gradient of channel 0 of ``token``."""
    sub = keras.Model(model.input, model.get_layer(layer).output)
    image = tf.ones((1, 16, 16, 3))
    with tf.GradientTape() as tape:
        tape.watch(image)
        unit = sub(image)[0, token, 0]
    grad = tape.gradient(unit, image).numpy()[0]
    nonzero = np.argwhere(np.abs(grad).sum(axis=-1) > 0)
    return tuple((int(nonzero[:, a].min()), int(nonzero[:, a].max())) for a in range(2))


def patch(token, prefix=1, k=4):
    """Hand arithmetic: patchify has r = 1 + (4 - 1)*1 = 4, j = 4, p = 0; token t is grid
    position (i, j) = divmod(t - prefix, 4) and sees pixels [4i, 4i + 3] x [4j, 4j + 3]."""
    i, j = divmod(token - prefix, 4)
    return (k * i, k * i + k - 1), (k * j, k * j + k - 1)


# -- a hand-built ViT ---------------------------------------------------------------------------

def test_patch_tokens_keep_the_grid_field():
    model = tiny_vit()
    report = modelstats.analyze(model)
    rows = report.layers
    for node in ("patchify", "tokens", "cls/concatenate", "pos/add", "ln"):
        rf = report.receptive_field(node)
        assert rf.status == "spatial" and not rf.global_context, node
        assert (rf.size, rf.stride, rf.padding) == ((4, 4), (4, 4), (0, 0)), node
    graph = report.graph
    assert graph.nodes["patchify"]["token_grid"] is None
    assert (graph.nodes["tokens"]["token_grid"], graph.nodes["tokens"]["token_prefix"]) \
        == ((4, 4), 0)
    for node in ("cls/concatenate", "pos/add", "ln", "attn", "res", "mlp"):
        assert (graph.nodes[node]["token_grid"], graph.nodes[node]["token_prefix"],
                graph.nodes[node]["token_suffix"]) == ((4, 4), 1, 0), node

    # Token index -> grid position, row-major after the prefix; the box is that unit's.
    tokens = report.receptive_field("tokens")
    assert tokens.box(0) == ((0, 3), (0, 3)) and tokens.box(6) == ((4, 7), (8, 11))
    ln = report.receptive_field("ln")
    assert ln.tokens.prefix == 1 and ln.tokens.unit(7) == (1, 2)
    assert ln.box(7) == patch(7) == ((4, 7), (8, 11))
    assert ln.box(16, clip=True) == ((12, 15), (12, 15))
    assert ln.center(7) == (5.5, 9.5)  # 4*1 - 0 + (4 - 1)/2, 4*2 + 3/2
    assert ln.box((1, 2)) == ln.box(7)  # a grid position may be given directly
    with pytest.raises(modelstats.ModelStatsError, match="extra tokens"):
        ln.box(0)  # the class token has no position on the grid
    with pytest.raises(modelstats.ShapeError, match="outside the token axis"):
        ln.box(17)

    # Attention over every token: global. Added back onto the tokens: each keeps its patch
    # and sees the whole input (global_context), as squeeze-and-excitation does on a map.
    assert rows.loc["attn", "rf_status"] == "global"
    for node in ("res", "mlp"):
        rf = report.receptive_field(node)
        assert rf.status == "spatial" and rf.global_context and rf.size == (4, 4)
    # The class token picked after attention sees every pixel; the head too.
    # (found by type: x[:, 0] is named get_item, get_item_1, ... after what Keras built
    # before in the process, which differs between test runs)
    picked = rows.loc[rows["type"] == "GetItem", "rf_status"]
    assert picked.tolist() == ["global"]
    assert rows.loc["head", "rf_status"] == "global"
    assert not (rows["rf_status"] == "broken").any()


def test_token_boxes_equal_gradient_support():
    model = tiny_vit()
    positive_weights(model)
    report = modelstats.analyze(model)
    for layer, node, prefix in (("tokens", "tokens", 0), ("cls", "cls/concatenate", 1),
                                ("pos", "pos/add", 1), ("ln", "ln", 1)):
        rf = report.receptive_field(node)
        for token in range(prefix, prefix + 16):
            assert rf.box(token, clip=True) == support(model, layer, token) \
                == patch(token, prefix), (node, token)
    # After attention every token depends on every pixel: the global field is real.
    whole = ((0, 15), (0, 15))
    assert support(model, "attn", 5) == support(model, "res", 5) == whole
    assert support(model, "attn", 0) == whole  # the class token too


def test_rearranged_tokens_are_global_only_where_every_element_sees_the_image():
    """Attention added onto the tokens reaches every element: a reshape of the sum onto
    another grid (8 x 2, not the tokens' 4 x 4) is global. Joined as extra channels it does
    not: the tokens' own channels still see one patch each, so such a reshape of the join is
    broken (the gradient shows the patch). Laid back out on their own 4 x 4 grid, both keep
    the patch field, with the attention as global context."""
    image = keras.Input((16, 16, 3), name="image")
    tokens = L.Reshape((16, 8), name="tokens")(L.Conv2D(8, 4, strides=4, name="patchify")(image))
    attended = L.MultiHeadAttention(2, 4, name="attn")(tokens, tokens)
    added = L.Add(name="add")([tokens, attended])
    joined = L.Concatenate(name="join")([tokens, attended])
    model = keras.Model(image, [L.Reshape((8, 2, 8), name="other_grid_of_sum")(added),
                                L.Reshape((8, 2, 16), name="other_grid_of_join")(joined),
                                L.Reshape((4, 4, 8), name="grid_of_sum")(added),
                                L.Reshape((4, 4, 16), name="grid_of_join")(joined)])
    positive_weights(model)
    report = modelstats.analyze(model)
    rows = report.layers
    assert rows.loc["add", "rf_global_context"] and rows.loc["join", "rf_global_context"]
    assert rows.loc["other_grid_of_sum", "rf_status"] == "global"
    assert rows.loc["other_grid_of_join", "rf_status"] == "broken"
    for node in ("grid_of_sum", "grid_of_join"):
        rf = report.receptive_field(node)
        assert (rf.status, rf.size, rf.stride, rf.global_context) == \
            ("spatial", (4, 4), (4, 4), True), node
    assert report.receptive_field("grid_of_join").box((0, 0)) == ((0, 3), (0, 3))
    x = tf.ones((1, 16, 16, 3))
    for output in (1, 3):
        with tf.GradientTape() as tape:
            tape.watch(x)
            unit = model(x)[output][0, 0, 0, 0]  # token 0, channel 0: from the patch only
        grad = np.abs(tape.gradient(unit, x).numpy()[0]).sum(axis=-1)
        assert np.argwhere(grad > 0).min(axis=0).tolist() == [0, 0]
        assert np.argwhere(grad > 0).max(axis=0).tolist() == [3, 3]


# -- keras.ops.reshape, a Concatenate layer, slices of the token axis ---------------------------

def test_ops_reshape_concatenate_layer_and_slices():
    """ops.reshape flattens like the Reshape layer; a Concatenate layer joining a token input
    unrelated to the image (2 tokens in front, 1 after) shifts the grid; slicing the extra
    tokens off gives the bare grid back."""
    image = keras.Input((16, 16, 3), name="image")
    extra = keras.Input((3, 8), name="extra")  # unrelated to the image
    x = L.Conv2D(8, 4, strides=4, name="patchify")(image)
    x = ops.reshape(x, (-1, 16, 8))
    x = L.Concatenate(axis=1, name="join")([extra[:, :2], x, extra[:, 2:]])
    x = L.Dense(8, name="dense")(x)
    y = x[:, 2:18]
    model = keras.Model([image, extra], L.LayerNormalization(name="ln")(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.MultipleSpatialInputsWarning)
        report = modelstats.analyze(model, input="image")
    graph = report.graph
    join = report.receptive_field("join")
    assert (join.tokens.grid, join.tokens.prefix, join.tokens.suffix) == ((4, 4), 2, 1)
    assert (graph.nodes["dense"]["token_prefix"], graph.nodes["dense"]["token_suffix"]) == (2, 1)
    assert report.receptive_field("dense").box(2) == ((0, 3), (0, 3))
    with pytest.raises(modelstats.ModelStatsError, match="extra tokens"):
        report.receptive_field("dense").box(18)  # the token after the grid
    ln = report.receptive_field("ln")
    assert (ln.tokens.prefix, ln.tokens.suffix) == (0, 0) and ln.size == (4, 4)
    assert ln.box(15) == ((12, 15), (12, 15))


@pytest.mark.parametrize("build, why", [
    # (h, w, C) -> (w, h*C): not a flatten of the grid into tokens
    (lambda x: L.Reshape((4, 32))(x), "Reshape other than a flatten"),
    # everything flattened, channels too
    (lambda x: L.Flatten()(x), ""),
    # a window along the token axis would mix the ends of the grid's rows
    (lambda x: L.Conv1D(8, 3, padding="same")(L.Reshape((16, 8))(x)), "window along the token"),
    # a slice that cuts into the grid
    (lambda x: L.Reshape((16, 8))(x)[:, 1:], "window along the token"),
    # two input-dependent token sets joined: tokens of neither grid
    (lambda x: L.Concatenate(axis=1)([L.Reshape((16, 8))(x), L.Reshape((16, 8))(x)]),
     "more than one piece"),
    # one grid token picked before any attention: a single unit, no positions left
    (lambda x: L.Reshape((16, 8))(x)[:, 5], "picks token 5, grid position (1, 1)"),
    # tokens laid out on another grid than theirs, or with the channels split
    (lambda x: L.Reshape((2, 8, 8))(L.Reshape((16, 8))(x)), "tokens of a 4x4 grid as"),
    (lambda x: L.Reshape((4, 4, 2, 4))(L.Reshape((16, 8))(x)), "Reshape other than"),
    # (a transposed grid is already broken: laid out again, it stays so)
    (lambda x: L.Reshape((4, 4, 8))(L.Reshape((16, 8))(L.Permute((2, 1, 3))(x))), ""),
])
def test_anything_else_breaks(build, why):
    image = keras.Input((16, 16, 3), name="image")
    y = build(L.Conv2D(8, 4, strides=4, name="patchify")(image))
    model = keras.Model(image, y)
    report = modelstats.analyze(model)
    last = report.graph.graph["outputs"][0]
    rf = report.receptive_field(last)
    assert rf.status == "broken", rf
    assert why in rf.note


def test_rows_joined_in_front_of_a_map_shift_it_like_padding():
    """8x8 -> c1: Conv2D 3x3 "same" (r 3, p 1) -> 2 rows of another input (unrelated to the
    image) joined on top -> c2: Conv2D 3x3 "same". The join shifts y by 2: p = 1 + 2 = 3,
    then c2 r = 3 + 2 = 5, p = 3 + 1 = 4; x is untouched: r 5, p 2."""
    image = keras.Input((8, 8, 2), name="image")
    rows = keras.Input((2, 8, 2), name="rows")
    y = L.Conv2D(2, 3, padding="same", name="c1")(image)
    y = L.Concatenate(axis=1, name="join")([rows, y])
    model = keras.Model([image, rows], L.Conv2D(2, 3, padding="same", name="c2")(y))
    positive_weights(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.MultipleSpatialInputsWarning)
        rf = modelstats.analyze(model, input="image").receptive_field("c2")
    assert (rf.size, rf.stride, rf.padding) == ((5, 5), (1, 1), (4, 2))
    for position in [(0, 0), (1, 3), (5, 5), (9, 7)]:
        x = tf.ones((1, 8, 8, 2))
        with tf.GradientTape() as tape:
            tape.watch(x)
            unit = model([x, tf.ones((1, 2, 8, 2))])[(0, *position, 0)]
        grad = np.abs(tape.gradient(unit, x).numpy()[0]).sum(axis=-1)
        nonzero = np.argwhere(grad > 0)
        found = tuple((int(nonzero[:, a].min()), int(nonzero[:, a].max())) for a in range(2)) \
            if len(nonzero) else None
        assert rf.box(position, clip=True) == found, position


# -- tokens laid back out on their grid -------------------------------------------------------

def map_support(model, layer, position):
    """Bounding box of the pixels with a non-zero gradient of channel 0 of unit ``position``
    of a map ``(h, w, C)`` (or of a token, ``position`` = ``(token,)``)."""
    sub = keras.Model(model.input, model.get_layer(layer).output)
    image = tf.ones((1, 16, 16, 3))
    with tf.GradientTape() as tape:
        tape.watch(image)
        unit = sub(image)[(0, *position, 0)]
    grad = tape.gradient(unit, image).numpy()[0]
    nonzero = np.argwhere(np.abs(grad).sum(axis=-1) > 0)
    return tuple((int(nonzero[:, a].min()), int(nonzero[:, a].max())) for a in range(2))


class OpsGrid(L.Layer):
    """``keras.ops.reshape`` of tokens back onto a grid (traced: ``<name>/reshape``)."""

    def call(self, x):
        return ops.reshape(x, (-1, 4, 4, x.shape[-1]))


@pytest.mark.parametrize("unflatten", ["layer", "ops"])
def test_tokens_laid_back_on_their_grid_keep_the_field(unflatten):
    """16x16x3 -> patchify: Conv2D k=s=4 (r 4, j 4, p 0) -> Reshape((16, 8)) -> LayerNorm ->
    back onto the 4 x 4 grid -> Conv2D 3x3 "same": r = 4 + (3 - 1)*4 = 12, j = 4,
    p = 0 + 1*4 = 4 (SegFormer's keys, hybrid models before a conv). Token i*4 + j is
    position (i, j): every box equals the gradient support."""
    image = keras.Input((16, 16, 3), name="image")
    x = L.Conv2D(8, 4, strides=4, name="patchify")(image)
    x = L.LayerNormalization(name="ln")(L.Reshape((16, 8), name="tokens")(x))
    x = L.Reshape((4, 4, 8), name="grid")(x) if unflatten == "layer" else OpsGrid(name="grid")(x)
    x = L.Conv2D(8, 3, padding="same", name="conv")(x)
    x = L.Reshape((16, 8), name="tokens_again")(x)
    model = keras.Model(image, L.Dense(8, name="dense")(x))
    positive_weights(model)
    report = modelstats.analyze(model)
    grid = "grid" if unflatten == "layer" else "grid/reshape"
    rf = report.receptive_field(grid)
    assert (rf.status, rf.size, rf.stride, rf.padding, rf.tokens) == \
        ("spatial", (4, 4), (4, 4), (0, 0), None)
    assert report.graph.nodes[grid]["token_grid"] is None
    conv = report.receptive_field("conv")
    assert (conv.status, conv.size, conv.stride, conv.padding) == \
        ("spatial", (12, 12), (4, 4), (4, 4))
    assert conv.box((1, 2)) == ((0, 11), (4, 15))  # 4*1 - 4 .. + 11, 4*2 - 4 .. + 11
    for i in range(4):
        for j in range(4):
            assert rf.box((i, j), clip=True) == map_support(model, grid.split("/")[0], (i, j)) \
                == patch(4 * i + j, prefix=0), (i, j)
            assert conv.box((i, j), clip=True) == map_support(model, "conv", (i, j)), (i, j)
    again = report.receptive_field("dense")
    assert (again.size, again.tokens.grid, again.tokens.prefix) == ((12, 12), (4, 4), 0)
    assert again.box(6, clip=True) == map_support(model, "dense", (6,)) \
        == conv.box((1, 2), clip=True)


def test_extra_tokens_laid_out_on_a_grid_break_unless_sliced_off():
    """With a class token in front, 17 tokens are no 4 x 4 grid: a reshape of them breaks.
    ``x[:, 1:]`` leaves the bare grid: laid back out on it, the field is exact again."""
    image = keras.Input((16, 16, 3), name="image")
    x = L.Reshape((16, 8), name="tokens")(L.Conv2D(8, 4, strides=4, name="patchify")(image))
    x = L.LayerNormalization(name="ln")(ClassToken(name="cls")(x))
    with_cls = L.Reshape((17, 1, 8), name="with_cls")(x)
    grid = L.Reshape((4, 4, 8), name="grid")(x[:, 1:])
    model = keras.Model(image, [with_cls, L.Conv2D(8, 3, padding="same", name="conv")(grid)])
    positive_weights(model)
    report = modelstats.analyze(model)
    rf = report.receptive_field("with_cls")
    assert rf.status == "broken" and "extra tokens (1 before the grid" in rf.note
    rf = report.receptive_field("grid")
    assert (rf.status, rf.size, rf.stride, rf.padding) == ("spatial", (4, 4), (4, 4), (0, 0))
    conv = report.receptive_field("conv")
    assert (conv.size, conv.stride, conv.padding) == ((12, 12), (4, 4), (4, 4))
    for position in [(0, 0), (1, 2), (3, 3), (2, 0)]:
        assert rf.box(position, clip=True) == map_support(model, "grid", position)
        assert conv.box(position, clip=True) == map_support(model, "conv", position)


# -- attention written with keras.ops -----------------------------------------------------------

@pytest.mark.parametrize("einsum", [False, True])
def test_traced_attention_is_global(einsum):
    """kimm-style attention: the scores pair two tokens (broken: unit (i, j) sees tokens i
    and j), the weights times the values sum over every token: global."""
    model = tiny_vit({"einsum": einsum})
    positive_weights(model)
    report = modelstats.analyze(model)
    rows = report.layers
    scores = "attn/einsum" if einsum else "attn/matmul"
    products = "attn/einsum#1" if einsum else "attn/matmul#1"
    assert rows.loc[scores, "rf_status"] == "broken"
    assert "pairs positions" in rows.loc[scores, "rf_note"]
    assert rows.loc[products, "rf_status"] == "global"
    assert "sums over every token" in rows.loc[products, "rf_note"]
    assert rows.loc["attn/proj", "rf_status"] == "global"
    res = report.receptive_field("res")
    assert res.status == "spatial" and res.global_context and res.size == (4, 4)
    assert rows.loc["head", "rf_status"] == "global"
    assert support(model, "attn", 5) == ((0, 15), (0, 15))


@pytest.mark.parametrize("einsum", [False, True])
def test_windowed_attention_is_not_global(einsum):
    """Attention inside windows of 4 consecutive tokens (a row of the 4x4 grid): a token
    sees its window's 4 patches, a 4 x 16 band, not the image. modelstats cannot follow the
    windows (the reshape splits the token axis), so the attention stays broken and the
    residual Add unknown: never global."""
    model = tiny_vit({"window": 4, "einsum": einsum}, class_token=False)
    positive_weights(model)
    report = modelstats.analyze(model)
    rows = report.layers
    attention = rows[[node.startswith("attn/") for node in rows.index]]
    assert "global" not in set(attention["rf_status"])
    assert rows.loc["res", "rf_status"] == "unknown"
    assert support(model, "attn", 6) == ((4, 7), (0, 15))  # token 6 = row 1: its window


# -- third-party ViTs ---------------------------------------------------------------------------

def _analyze_hub(name):
    from tests.oracles.hub_models import MODELS, input_shape_argument

    spec = MODELS[name]
    model = spec()
    return modelstats.analyze(model, input_shape=input_shape_argument(model, spec.inputs))


def _after(rows, node):
    """Rows after ``node`` in topological order."""
    return rows.iloc[list(rows.index).index(node) + 1:]


def test_kimm_vit_patch_tokens_and_global_attention():
    """kimm ViT-Tiny/16 at 64 x 64 (2 blocks): 4 x 4 patches of 16 px behind a class token;
    after the first attention every token sees the whole image, and nothing is broken."""
    pytest.importorskip("kimm")
    report = _analyze_hub("kimm_vit")
    rows = report.layers
    flatten = rows.index[rows["type"] == "Reshape"][0]  # Keras numbers its name process-wide
    for node in ("patch_embed_conv", flatten, "postition_embedding/add", "blocks_0_norm1"):
        rf = report.receptive_field(node)
        assert (rf.status, rf.size, rf.stride, rf.padding) == \
            ("spatial", (16, 16), (16, 16), (0, 0)), node
    tokens = report.receptive_field("postition_embedding/add").tokens
    assert (tokens.grid, tokens.prefix, tokens.suffix) == ((4, 4), 1, 0)
    assert report.receptive_field("blocks_0_norm1").box(6) == ((16, 31), (16, 31))
    first = "blocks_0_attn/blocks_0_attn_proj_drop"  # the first attention's output
    assert rows.loc[first, "rf_status"] == "global"
    after = _after(rows, first)
    assert not after["rf_status"].isin(["broken", "unknown", "unsupported"]).any()
    spatial = after[after["rf_status"] == "spatial"]
    assert len(spatial) and spatial["rf_global_context"].all()
    assert (spatial["rf_size_x"] == 16).all()
    assert rows.loc["head", "rf_status"] == "global"


def test_hub_vit_patch_tokens_and_global_attention():
    """keras-hub ViTBackbone at 32 x 32 with 8 px patches (4 x 4 grid + class token)."""
    pytest.importorskip("keras_hub")
    report = _analyze_hub("hub_vit")
    rows = report.layers
    rf = report.receptive_field("vit_patching_and_embedding/add")
    assert (rf.status, rf.size, rf.stride, rf.padding) == ("spatial", (8, 8), (8, 8), (0, 0))
    assert (rf.tokens.grid, rf.tokens.prefix) == ((4, 4), 1)
    first = "vit_encoder/transformer_block_1/mha"
    assert rows.loc[first, "rf_status"] == "global"
    after = _after(rows, first)
    assert not after["rf_status"].isin(["broken", "unknown", "unsupported"]).any()
    assert after.loc[after["rf_status"] == "spatial", "rf_global_context"].all()


def test_hub_mit_spatial_reduction_keeps_the_field():
    """keras-hub MiTBackbone (SegFormer's encoder) at 64 x 64, two stages of one block. Each
    attention lays its tokens back out on their grid for the strided spatial-reduction conv of
    its keys and values, and each Mix-FFN for its 3x3 depthwise conv: the fields go through,
    attention makes them global context. Hand arithmetic: patch conv 7x7 stride 4 after a pad
    of 3: r 7, j 4, p 3; the reduction conv k=s=4: r 7 + 3*4 = 19, j 16; the depthwise 3x3:
    r 7 + 2*4 = 15, p 3 + 4 = 7. Stage 2: pad 1, conv 3x3 stride 2: r 15 + 2*4 = 23, j 8,
    p 7 + 4 = 11; depthwise 3x3: r 23 + 2*8 = 39, p 11 + 8 = 19."""
    pytest.importorskip("keras_hub")
    report = _analyze_hub("hub_mit")
    rows = report.layers
    field = lambda node: (lambda rf: (rf.status, rf.size, rf.stride, rf.padding))(
        report.receptive_field(node))
    # The attention and its sublayers have Keras' process-wide generated names
    # (seg_former_multihead_attention_2, conv2d_1, dense_3): found by type. In graph order
    # its Dense layers are the query, the keys and values, the output.
    block = "hierarchical_encoder_0_0/"
    attention = next(n for n in rows.index if n.startswith(block + "seg_former_multihead"))
    attention = block + attention[len(block):].split("/")[0] + "/"
    inside = rows[rows.index.str.startswith(attention)]
    (reduction,) = inside.index[inside["type"] == "Conv2D"]
    output_projection = inside.index[inside["type"] == "Dense"][-1]
    embed = rows[rows.index.str.startswith("patch_and_embed_0/")]
    (patch_norm,) = embed.index[embed["type"] == "LayerNormalization"]
    assert field(patch_norm) == ("spatial", (7, 7), (4, 4), (3, 3))
    assert field(reduction) == ("spatial", (19, 19), (16, 16), (3, 3))
    assert rows.loc[output_projection, "rf_status"] == "global"
    assert field("output_level_0") == ("spatial", (15, 15), (4, 4), (7, 7))
    assert field("output_level_1") == ("spatial", (39, 39), (8, 8), (19, 19))
    assert report.receptive_field("output_level_1").global_context
    # Only the attention scores (and what rearranges q, k, v into heads) are broken.
    assert not rows["rf_status"].isin(["unknown", "unsupported"]).any()
    broken = rows.index[rows["rf_status"] == "broken"]
    assert all("seg_former_multihead_attention" in node for node in broken)


def test_hub_deit_is_traced_through_its_blocks_none_outputs():
    """keras-hub DeiTBackbone at 32 x 32 with 8-pixel patches. Its encoder blocks return
    (x, None) and its encoder (x, empty, empty); both used to stop the trace (the encoder was
    one node counted from its TensorFlow graph, with no field). Now: patch tokens 8 x 8 with
    stride 8 on a 4 x 4 grid behind the class and distillation tokens (prefix 2), attention
    global, the final norm each patch's field plus the whole image."""
    pytest.importorskip("keras_hub")
    report = _analyze_hub("hub_deit")
    rows = report.layers
    assert "traced" not in set(rows["status"])
    tokens = report.receptive_field("deit_patching_and_embedding/concatenate")
    assert (tokens.size, tokens.stride, tokens.tokens.grid, tokens.tokens.prefix) == \
        ((8, 8), (8, 8), (4, 4), 2)
    assert rows.loc["deit_encoder/transformer_block_1/mha", "rf_status"] == "global"
    last = report.receptive_field("deit_encoder/ln")
    assert (last.status, last.size, last.global_context) == ("spatial", (8, 8), True)
