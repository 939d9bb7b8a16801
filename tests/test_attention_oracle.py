"""Attention MACs: golden numbers with the arithmetic written out, and every attention model of
tests/oracles/models.py against an independent count, the MACs of its JAX trace.

modelstats' MACs are the trace's ``dot_general`` MACs exactly: the projections and the two
attention products are the only multiply-accumulates. What modelstats counts besides
(bias adds, the 1/sqrt(key_dim) scaling, softmax, masking) is elementwise work, which the
oracle does not count; GroupQueryAttention's repetition of its key/value heads is a copy, no
MAC on either side, and its scores are counted per *query* head, as the trace computes them.
"""

from __future__ import annotations

import pytest

import modelstats

jax = pytest.importorskip("jax")

from tests.oracles import jax_macs, models  # noqa: E402 - after the skip

ORACLE_CASES = sorted(models.BUILDERS)


@pytest.fixture(scope="module")
def oracle():
    """Every model traced in ONE request to the JAX worker (tests/oracles/jax_worker.py)."""
    return jax_macs.macs_in_subprocess(ORACLE_CASES)


def total_macs(model, **kwargs) -> int:
    return int(modelstats.count_flops(model, **kwargs)["macs"].sum())


class TestMaskedCrossAttentionRegression:
    """``MultiHeadAttention(num_heads=4, key_dim=16)(query, context, attention_mask=mask)``.

    The rule took ``input_shapes[-1]`` as the key's shape. With ``attention_mask=`` that is the
    mask, (10, 50): 10 "key positions" of 50 features instead of 50 of 64, which gave
    176,640 MACs (the projections of a 10-position context, 10*64*64 * 4 = 163,840, plus
    10*10*4 scores * (16 + 16) = 12,800).
    """

    # q: 10 query positions * 64 in * (4 heads * 16); k and v: 50 context positions * 64 * 64;
    # output: 10 * (4 * 16) * 64
    PROJECTIONS = 10 * 64 * 64 + 50 * 64 * 64 + 50 * 64 * 64 + 10 * 64 * 64  # 491,520
    # 10 * 50 scores per head, 4 heads; Q Kᵀ sums over key_dim 16, softmax(.) V over value_dim 16
    ATTENTION = 10 * 50 * 4 * 16 + 10 * 50 * 4 * 16  # 64,000
    EXPECTED = PROJECTIONS + ATTENTION

    def test_expected_value(self):
        assert self.EXPECTED == 555_520

    def test_masked(self):
        assert total_macs(models.mha_masked()) == self.EXPECTED

    def test_mask_changes_nothing(self):
        # masking only hides scores: the same MACs as without the mask
        assert total_macs(models.mha_cross()) == self.EXPECTED

    def test_reinferred_at_new_sizes(self, keras):
        """Which input is the value comes from the call; the sizes from the node's shapes."""
        query = keras.Input((None, 64))
        context = keras.Input((None, 64))
        mask = keras.Input((None, None), dtype="bool")
        out = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16)(
            query, context, attention_mask=mask
        )
        model = keras.Model([query, context, mask], out)
        macs = total_macs(model, input_shape=[(10, 64), (50, 64), (10, 50)])
        assert macs == self.EXPECTED


def test_grouped_query_attention_with_mask():
    # q: 10 * 64 * (8 query heads * 16); k, v: 20 * 64 * (2 key/value heads * 16);
    # output: 10 * (8 * 16) * 64; scores: 10 * 20 per query head, 8 heads, * (16 + 16)
    expected = 10 * 64 * 128 + 2 * 20 * 64 * 32 + 10 * 128 * 64 + 10 * 20 * 8 * (16 + 16)
    assert total_macs(models.gqa_masked()) == expected == 296_960


def test_key_and_masks_by_keyword():
    # call(query, value, key=key, attention_mask=..., query_mask=..., value_mask=...): the node
    # lists [query, value, attention_mask, key, query_mask, value_mask] (keywords sorted)
    # q: 10 * 64 * (2 * 16); k: 50 * 32 * (2 * 16); v: 50 * 48 * (2 * 24); out: 10 * 48 * 64;
    # scores 10 * 50 * 2 heads, * key_dim 16 + value_dim 24
    expected = (10 * 64 * 32 + 50 * 32 * 32 + 50 * 48 * 48 + 10 * 48 * 64
                + 10 * 50 * 2 * (16 + 24))
    assert total_macs(models.mha_distinct_key()) == expected == 257_600


def test_every_tensor_by_keyword():
    # mha(query=q, value=v, key=k): the node lists [key, query, value]
    # q: 6 * 16 * 8; k: 9 * 8 * 8; v: 9 * 16 * 8; out: 6 * 8 * 16; scores 6 * 9 * 2 * (4 + 4)
    expected = 6 * 16 * 8 + 9 * 8 * 8 + 9 * 16 * 8 + 6 * 8 * 16 + 6 * 9 * 2 * (4 + 4)
    assert total_macs(models.mha_keywords()) == expected


def test_one_layer_called_with_two_argument_orders(keras):
    """Both calls list three tensors, the value second in one and third in the other: each call
    is counted with its own value."""
    mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")
    query = keras.Input((6, 16))
    value = keras.Input((9, 16))
    mask = keras.Input((6, 9), dtype="bool")
    first = mha(query, value, attention_mask=mask)  # [query, value, mask]
    other_value = keras.Input((5, 16))
    other_key = keras.Input((5, 16))
    second = mha(query=query, value=other_value, key=other_key)  # [key, query, value]
    model = keras.Model([query, value, mask, other_value, other_key], [first, second])
    macs = modelstats.count_flops(model)["macs"]
    graph = modelstats.to_networkx(model)
    by_inputs = {tuple(graph.nodes[n]["input_shapes"]): macs[n] for n in ("mha", "mha#1")}
    # projections 6*16*8 (q), S*16*8 (k and v), 6*8*16 (out); scores 6*S*2 heads * (4 + 4)
    assert by_inputs == {
        ((6, 16), (9, 16), (6, 9)): 6 * 16 * 8 + 2 * 9 * 16 * 8 + 6 * 8 * 16 + 6 * 9 * 2 * 8,
        ((5, 16), (6, 16), (5, 16)): 6 * 16 * 8 + 2 * 5 * 16 * 8 + 6 * 8 * 16 + 6 * 5 * 2 * 8,
    }


@pytest.mark.parametrize("name", ORACLE_CASES)
def test_macs_equal_the_jax_trace(name, oracle):
    counted = total_macs(models.BUILDERS[name]())
    traced = oracle[name]
    assert set(traced["by_primitive"]) == {"dot_general"}, traced
    assert counted == traced["macs"], (name, counted, traced)


def test_oracle_sees_the_regression_numbers(oracle):
    """The trace agrees with the arithmetic above, independently of modelstats."""
    assert oracle["mha_masked"]["macs"] == TestMaskedCrossAttentionRegression.EXPECTED
    assert oracle["mha_cross"]["macs"] == TestMaskedCrossAttentionRegression.EXPECTED
    # 4 projections and the 2 attention products
    assert oracle["mha_masked"]["calls"] == {"dot_general": 6}


class TestCountMacs:
    """Golden values for the oracle itself on hand-written jaxprs."""

    def test_matmul(self):
        jaxpr = jax.make_jaxpr(lambda a, b: a @ b)(jax.numpy.ones((3, 4)), jax.numpy.ones((4, 5)))
        assert jax_macs.count_macs(jaxpr) == 3 * 5 * 4  # 15 outputs, 4 products each

    def test_batched_einsum_inside_jit(self):
        f = jax.jit(lambda a, b: jax.numpy.einsum("bij,bjk->bik", a, b))
        jaxpr = jax.make_jaxpr(f)(jax.numpy.ones((2, 3, 4)), jax.numpy.ones((2, 4, 5)))
        assert jax_macs.count_macs(jaxpr) == 2 * 3 * 5 * 4

    def test_conv(self):
        conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (1, 1), "VALID")  # noqa: E731
        jaxpr = jax.make_jaxpr(conv)(jax.numpy.ones((1, 3, 8, 8)), jax.numpy.ones((4, 3, 3, 3)))
        # 6*6 outputs * 4 channels, each 3*3 taps * 3 input channels
        assert jax_macs.count_macs(jaxpr) == 6 * 6 * 4 * 3 * 3 * 3

    def test_strided_same_grouped_conv(self):
        conv = lambda x, w: jax.lax.conv_general_dilated(  # noqa: E731
            x, w, (2, 2), "SAME", feature_group_count=2,
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        jaxpr = jax.make_jaxpr(conv)(jax.numpy.ones((1, 9, 9, 4)), jax.numpy.ones((3, 3, 2, 6)))
        # 5*5 outputs * 6 channels * 3*3 taps (padding included) * 4/2 input channels per group
        assert jax_macs.count_macs(jaxpr) == 5 * 5 * 6 * 3 * 3 * 2

    def test_transposed_conv_counts_real_inputs_only(self):
        conv = lambda x, w: jax.lax.conv_transpose(  # noqa: E731
            x, w, (2,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
        jaxpr = jax.make_jaxpr(conv)(jax.numpy.ones((1, 4, 2)), jax.numpy.ones((3, 2, 5)))
        # each of the 4 real input positions times each of the 3 taps, 2 in * 5 out channels
        # (not the 9 outputs * 3 taps of the dilated, padded input)
        assert jax_macs.count_macs(jaxpr) == 4 * 3 * 2 * 5

    def test_scan_body_counts_length_times(self):
        def f(x):
            return jax.lax.scan(lambda c, _: (c @ jax.numpy.ones((4, 4)), None), x, None,
                                length=5)[0]

        jaxpr = jax.make_jaxpr(f)(jax.numpy.ones((3, 4)))
        assert jax_macs.count_macs(jaxpr) == 5 * 3 * 4 * 4
        assert jax_macs.macs_by_primitive(jaxpr)[1] == {"dot_general": 5}

    def test_custom_vjp_and_checkpoint_bodies(self):
        @jax.custom_vjp
        def square(x):
            return x @ x

        square.defvjp(lambda x: (x @ x, x), lambda x, g: (g @ x.T + x.T @ g,))
        jaxpr = jax.make_jaxpr(jax.checkpoint(square))(jax.numpy.ones((3, 3)))
        assert jax_macs.count_macs(jaxpr) == 3 * 3 * 3

    def test_gradient_of_a_matmul(self):
        """A training-step trace: forward x @ w, then dL/dw = xᵀ g (same MACs again)."""
        loss = lambda w, x: (x @ w).sum()  # noqa: E731
        jaxpr = jax.make_jaxpr(jax.value_and_grad(loss))(jax.numpy.ones((4, 5)),
                                                          jax.numpy.ones((3, 4)))
        assert jax_macs.count_macs(jaxpr) == 2 * 3 * 4 * 5

    @pytest.mark.parametrize("kind", ["cond", "while"])
    def test_data_dependent_control_flow_raises(self, kind):
        square = lambda y: y @ y  # noqa: E731
        if kind == "cond":
            f = lambda x: jax.lax.cond(x[0, 0] > 0, square, lambda y: y, x)  # noqa: E731
        else:
            f = lambda x: jax.lax.while_loop(lambda y: y[0, 0] < 10, square, x)  # noqa: E731
        jaxpr = jax.make_jaxpr(f)(jax.numpy.ones((3, 3)))
        with pytest.raises(jax_macs.UnsupportedTrace, match=kind):
            jax_macs.count_macs(jaxpr)
