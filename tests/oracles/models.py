"""Small named models that both modelstats (test process, TensorFlow) and the JAX-trace oracle
(subprocess, JAX) build, by name, from Keras APIs only.

Each builder takes no argument and returns a Functional model with fixed input shapes (the
oracle traces batch 1 and needs every other dimension). Names are the keys of
:data:`BUILDERS`; ``python -m tests.oracles.jax_macs mha_masked`` traces one.
"""

from __future__ import annotations

from typing import Callable

import keras

BUILDERS: dict[str, Callable[[], keras.Model]] = {}


def builder(function: Callable[[], keras.Model]) -> Callable[[], keras.Model]:
    """Register ``function`` in :data:`BUILDERS` under its own name."""
    BUILDERS[function.__name__] = function
    return function


@builder
def mha_self() -> keras.Model:
    """Self-attention: 12 positions of 32 features, 4 heads of 8."""
    x = keras.Input((12, 32), name="x")
    y = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="mha")(x, x)
    return keras.Model(x, y, name="mha_self")


@builder
def mha_cross() -> keras.Model:
    """Cross-attention without a mask: 10 query positions attend to 50 context positions."""
    query = keras.Input((10, 64), name="query")
    context = keras.Input((50, 64), name="context")
    y = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16, name="mha")(query, context)
    return keras.Model([query, context], y, name="mha_cross")


@builder
def mha_masked() -> keras.Model:
    """The regression case: cross-attention with ``attention_mask=`` (modelstats read the
    mask's shape as the key's)."""
    query = keras.Input((10, 64), name="query")
    context = keras.Input((50, 64), name="context")
    mask = keras.Input((10, 50), dtype="bool", name="mask")
    y = keras.layers.MultiHeadAttention(num_heads=4, key_dim=16, name="mha")(
        query, context, attention_mask=mask
    )
    return keras.Model([query, context, mask], y, name="mha_masked")


@builder
def mha_distinct_key() -> keras.Model:
    """A key with its own feature size (32) and a value_dim unlike key_dim, key and mask by
    keyword, plus query and value masks.

    ``dropout`` (identity at inference) makes Keras take its einsum path: on JAX its fused
    ``dot_product_attention`` path rejects value_dim != key_dim (Keras 3.15).
    """
    query = keras.Input((10, 64), name="query")
    value = keras.Input((50, 48), name="value")
    key = keras.Input((50, 32), name="key")
    mask = keras.Input((10, 50), dtype="bool", name="mask")
    query_mask = keras.Input((10,), dtype="bool", name="query_mask")
    value_mask = keras.Input((50,), dtype="bool", name="value_mask")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=16, value_dim=24, dropout=0.1,
                                        name="mha")(
        query, value, key=key, attention_mask=mask, query_mask=query_mask,
        value_mask=value_mask,
    )
    return keras.Model([query, value, key, mask, query_mask, value_mask], y,
                       name="mha_distinct_key")


@builder
def mha_keywords() -> keras.Model:
    """Every tensor by keyword: Keras flattens them sorted by name, key first."""
    query = keras.Input((6, 16), name="query")
    value = keras.Input((9, 16), name="value")
    key = keras.Input((9, 8), name="key")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(
        query=query, value=value, key=key
    )
    return keras.Model([query, value, key], y, name="mha_keywords")


@builder
def mha_attention_axes() -> keras.Model:
    """Attention along axis 2 only of a (4, 6, 16) input: 4 independent rows of 6 positions."""
    x = keras.Input((4, 6, 16), name="x")
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, attention_axes=(2,),
                                        name="mha")(x, x)
    return keras.Model(x, y, name="mha_attention_axes")


@builder
def gqa() -> keras.Model:
    """GroupQueryAttention, 8 query heads sharing 2 key/value heads, cross-attention."""
    query = keras.Input((10, 64), name="query")
    context = keras.Input((20, 64), name="context")
    y = keras.layers.GroupQueryAttention(head_dim=16, num_query_heads=8, num_key_value_heads=2,
                                         name="gqa")(query, context)
    return keras.Model([query, context], y, name="gqa")


@builder
def gqa_masked() -> keras.Model:
    """GroupQueryAttention with ``attention_mask=`` (same bug as MultiHeadAttention)."""
    query = keras.Input((10, 64), name="query")
    context = keras.Input((20, 64), name="context")
    mask = keras.Input((10, 20), dtype="bool", name="mask")
    y = keras.layers.GroupQueryAttention(head_dim=16, num_query_heads=8, num_key_value_heads=2,
                                         name="gqa")(query, context, attention_mask=mask)
    return keras.Model([query, context, mask], y, name="gqa_masked")


@builder
def dot_attention_masked() -> keras.Model:
    """keras.layers.Attention (dot product, scaled) with query and value masks."""
    query = keras.Input((10, 16), name="query")
    value = keras.Input((20, 16), name="value")
    query_mask = keras.Input((10,), dtype="bool", name="query_mask")
    value_mask = keras.Input((20,), dtype="bool", name="value_mask")
    y = keras.layers.Attention(use_scale=True, name="attention")(
        [query, value], mask=[query_mask, value_mask]
    )
    return keras.Model([query, value, query_mask, value_mask], y, name="dot_attention_masked")


@builder
def additive_attention_masked() -> keras.Model:
    """keras.layers.AdditiveAttention with a separate key and a value mask."""
    query = keras.Input((10, 16), name="query")
    value = keras.Input((20, 16), name="value")
    key = keras.Input((20, 16), name="key")
    value_mask = keras.Input((20,), dtype="bool", name="value_mask")
    y = keras.layers.AdditiveAttention(name="attention")(
        [query, value, key], mask=[None, value_mask]
    )
    return keras.Model([query, value, key, value_mask], y, name="additive_attention_masked")
