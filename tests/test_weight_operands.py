"""Products whose other operand is a weight, not a graph tensor (a robustness scan's finds).

A scan of 60 keras-hub and kimm models against the JAX-trace oracle found ``ops.einsum`` with a
weight operand counted as one MAC per output element: the contraction was dropped, under status
``counted``, with no warning. keras-hub's mixtures of experts (Mixtral, GPT-OSS, Qwen-MoE) run
their expert bank as ``einsum("th,ehm->etm", x, W)`` and ViTDet its relative positions as
``einsum("bhwc,hkc->bhwk", q, table)``. The weight's own shape is now read from the call.
"""

from __future__ import annotations

import pytest

import modelstats

keras = pytest.importorskip("keras")
ops = keras.ops
L = keras.layers


class RelativePositions(L.Layer):
    """ViTDet's form: a query map (h, w, c) against a table (h, k, c)."""

    def build(self, shape):
        self.table = self.add_weight(shape=(shape[1], 4, shape[-1]), name="table")

    def call(self, x):
        return ops.einsum("bhwc,hkc->bhwk", x, self.table)


class Experts(L.Layer):
    """A mixture of experts' bank: every token through every expert's matrix, the tokens of
    the batch flattened into one axis first (the leading axis then holds batch x tokens)."""

    def build(self, shape):
        self.kernel = self.add_weight(shape=(3, shape[-1], 5), name="kernel")

    def call(self, x):
        tokens = ops.reshape(x, (-1, ops.shape(x)[-1]))
        return ops.einsum("th,ehm->etm", tokens, self.kernel)


class LeftWeight(L.Layer):
    """W @ x: the weight first, so the contracted axis is the weight's last."""

    def build(self, shape):
        self.w = self.add_weight(shape=(7, shape[1]), name="w")

    def call(self, x):
        return ops.matmul(self.w, x)


def _count(layer, shape):
    x = keras.Input(shape, name="x")
    return modelstats.count_flops(keras.Model(x, layer(x)), strict=True)


def test_an_einsum_with_a_weight_table_counts_its_contraction():
    """x (4, 4, 32), table (4, 4, 32): b h w k c = 1*4*4*4*32 = 2,048 MACs (it was 64)."""
    table = _count(RelativePositions(name="rel"), (4, 4, 32))
    assert table.loc["rel/einsum", "macs"] == 2_048
    assert table.loc["rel/einsum", "status"] == "counted"


def test_an_einsum_over_experts_counts_every_expert():
    """6 tokens of 8 features through 3 experts of 8 -> 5: 6 * 3 * 8 * 5 = 720 MACs (the
    token axis, batch x 6, is the leading one inside the call: 6 of them per sample)."""
    table = _count(Experts(name="experts"), (6, 8))
    assert int(table["macs"].sum()) == 720


def test_a_matmul_with_the_weight_first_contracts_the_weights_axis():
    """W (7, 4) @ x (4, 9): 7 * 9 outputs, each a sum over 4: 252 MACs (it was 7*9*9)."""
    table = _count(LeftWeight(name="left"), (4, 9))
    assert table.loc["left/matmul", "macs"] == 7 * 9 * 4


class ProjectedAttention(L.MultiHeadAttention):
    """A MultiHeadAttention subclass whose own call adds a projection (as keras-hub XLNet's
    TwoStreamRelativeAttention adds positional attention): MultiHeadAttention's rule would
    miss it, so the subclass is traced."""

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        self.extra = self.add_weight(shape=(query_shape[-1], query_shape[-1]), name="extra")

    def call(self, query, value, key=None, **kwargs):
        return ops.matmul(super().call(query, value, key, **kwargs), self.extra)


def test_a_subclass_with_its_own_call_is_traced_not_counted_by_its_parents_rule():
    """6 tokens of 8 features, 2 heads of 4: q, k, v 3 * 6*8*8 = 1,152, output 6*8*8 = 384,
    scores and weighted sum 2 * 6*6*4 * 2 = 576; the extra projection 6*8*8 = 384. Total
    2,496 (the parent's rule gave 2,112, under status 'counted')."""
    x = keras.Input((6, 8), name="x")
    model = keras.Model(x, ProjectedAttention(2, 4, name="attention")(x, x))
    table = modelstats.count_flops(model, strict=True)
    assert int(table["macs"].sum()) == 2_496
    assert "attention/matmul" in table.index


def test_quick_gelu_is_counted():
    """CLIP's quick_gelu, x * sigmoid(1.702 x): a multiply, a sigmoid (4), a multiply: 6 FLOPs
    per element; 4 x 5 = 20 elements, 120 FLOPs."""

    def quick_gelu(x):
        return x * ops.sigmoid(1.702 * x)

    x = keras.Input((4, 5), name="x")
    table = modelstats.count_flops(keras.Model(x, L.Activation(quick_gelu, name="act")(x)),
                                   strict=True)
    assert table.loc["act", "flops"] == 120
