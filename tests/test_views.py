"""Per-block and per-type views of a report: ``Report.by_block(depth)`` and ``Report.by_type()``.

Every number is written out; the views must sum to ``Report.totals`` exactly.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import modelstats
from modelstats import schema
from tests.conftest import nested_block_model
from tests.oracles.custom_models import Affine, ResidualNet, residual_net

# ResidualNet on 16x16x3 (tests/test_tracing.py): stem 3x3 stride 2 -> 8x8x8.
STEM_MACS = 8 * 8 * 3 * 3 * 3 * 8  # 13,824
BLOCK_MACS = 8 * 8 * 3 * 3 * 8 * 8  # 36,864
WIDE_CONV_MACS = 8 * 8 * 3 * 3 * 8 * 16  # 73,728
WIDE_PROJECT_MACS = 8 * 8 * 8 * 16  # 8,192 (1x1 projection, 8 -> 16 channels)
SHARED_MACS = 8 * 8 * 3 * 3 * 16 * 16  # 147,456 per call
HEAD_MACS = 16 * 5  # 80


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)
        return function(*args, **kwargs)


@pytest.fixture(scope="module")
def net_report():
    return _quiet(modelstats.analyze, ResidualNet(name="net"), input_shape=(16, 16, 3))


@pytest.fixture(scope="module")
def nested(keras):
    """image 8x8x3 -> stem conv 3x3 same (4) -> block (a Functional: conv 3x3 same 4->4 without
    bias, ReLU) called twice -> global average pool -> Affine(2) (a custom layer, traced).

    stem 8*8 * 3*3*3 * 4 = 6,912 MACs, 2*6,912 + 256 bias = 14,080 FLOPs, 3*3*3*4 + 4 = 112
    params; each block call 8*8 * 3*3*4 * 4 = 9,216 MACs, 2*9,216 + 256 (ReLU) = 18,688 FLOPs,
    144 params at the first call only; gap 256 FLOPs; head 4*2 = 8 MACs, 2*8 + 2 bias = 18 FLOPs,
    8 + 2 params.
    """
    return nested_block_model(keras, Affine(2, name="head"))


@pytest.fixture(scope="module")
def partial(keras):
    """A block whose second layer cannot be traced (TensorFlow code), and such a layer alone.

    blk/d: Dense 4 -> 4, 16 MACs, 20 params; blk/raw and raw2 unsupported (<NA>).
    """
    import tensorflow as tf

    class RawTF(keras.layers.Layer):
        def call(self, x):
            # not symbolic, and its TensorFlow graph has a cumsum: it cannot be traced
            return tf.math.cumsum(tf.convert_to_tensor(x)) * 2.0

    x = keras.Input((4,), name="x")
    inner = keras.Input((4,), name="blk_in")
    blk = keras.Model(inner, RawTF(name="raw")(keras.layers.Dense(4, name="d")(inner)),
                      name="blk")
    model = keras.Model(x, RawTF(name="raw2")(blk(x)), name="partial")
    with pytest.warns(modelstats.UnsupportedLayerWarning, match="RawTF"):
        return modelstats.analyze(model)


def _column(view, name):
    return {k: (None if v is pd.NA else v) for k, v in view[name].items()}


def test_blocks_of_a_subclassed_model(net_report):
    view = net_report.by_block()
    assert list(view.index) == ["x", "stem", "block", "wide", "shared", "shared#1", "pool",
                                "head"]
    assert _column(view, "macs") == {
        "x": 0, "stem": STEM_MACS, "block": BLOCK_MACS,
        "wide": WIDE_CONV_MACS + WIDE_PROJECT_MACS, "shared": SHARED_MACS,
        "shared#1": SHARED_MACS, "pool": 0, "head": HEAD_MACS,
    }
    assert (STEM_MACS, BLOCK_MACS, WIDE_CONV_MACS + WIDE_PROJECT_MACS, SHARED_MACS) == (
        13_824, 36_864, 81_920, 147_456)
    assert int(view["macs"].sum()) == 427_600
    # params: conv kernels, BN 4 per channel, gamma per channel, projection 8*16 + 16; the
    # shared block's weights count at its first call only
    assert _column(view, "params") == {
        "x": 0, "stem": 3 * 3 * 3 * 8 + 8, "block": 3 * 3 * 8 * 8 + 4 * 8 + 8,
        "wide": 3 * 3 * 8 * 16 + 4 * 16 + 8 * 16 + 16 + 16, "shared": 3 * 3 * 16 * 16 + 4 * 16 + 16,
        "shared#1": 0, "pool": 0, "head": 16 * 5 + 5,
    }
    # FLOPs: 2 x MACs, bias adds, BN 2/element, ReLU, gamma multiply and residual add 1/element
    assert _column(view, "flops") == {
        "x": 0, "stem": 2 * STEM_MACS + 512,
        "block": 2 * BLOCK_MACS + 2 * 512 + 512 + 512 + 512,
        "wide": 2 * WIDE_CONV_MACS + 2 * 1_024 + 1_024 + (2 * WIDE_PROJECT_MACS + 1_024)
                + 1_024 + 1_024,
        "shared": 2 * SHARED_MACS + 2 * 1_024 + 3 * 1_024,
        "shared#1": 2 * SHARED_MACS + 2 * 1_024 + 3 * 1_024,
        "pool": 1_024, "head": 2 * HEAD_MACS + 5,
    }
    # each traced block: its input, conv, norm, relu, multiply, add (+ project in wide)
    assert _column(view, "nodes") == {"x": 1, "stem": 1, "block": 6, "wide": 7, "shared": 6,
                                      "shared#1": 6, "pool": 1, "head": 3}
    assert not view["partial"].any() and (view["unsupported"] == 0).all()


def test_depth_two_splits_the_blocks(net_report):
    view = net_report.by_block(depth=2)
    assert view.loc["wide/conv", "macs"] == WIDE_CONV_MACS == 73_728
    assert view.loc["wide/project", "macs"] == WIDE_PROJECT_MACS == 8_192
    assert view.loc["shared#1/conv", "macs"] == SHARED_MACS
    assert view.loc["head/matmul", "macs"] == HEAD_MACS
    # every node of ResidualNet is at most one level deep: depth 2 lists the nodes themselves
    assert list(view.index) == list(net_report.layers.index)
    assert (view["nodes"] == 1).all()


def test_a_node_nested_less_deeply_is_its_own_row():
    """Wrapped in a Functional, every node is one level deeper: ``net`` is one block at depth
    1, and at depth 2 ``net/stem`` (directly in ``net``) is its own row."""
    report = _quiet(modelstats.analyze, residual_net())
    one = report.by_block(1)
    assert list(one.index) == ["image", "net"] and one.loc["net", "macs"] == 427_600
    two = report.by_block(2)
    assert list(two.index) == ["image", "net/input", "net/stem", "net/block", "net/wide",
                               "net/shared", "net/shared#1", "net/pool", "net/head"]
    assert two.loc["net/wide", "macs"] == WIDE_CONV_MACS + WIDE_PROJECT_MACS
    assert report.by_block(3).loc["net/wide/project", "macs"] == WIDE_PROJECT_MACS


def test_nested_functional_called_twice_and_a_custom_layer(nested):
    report = _quiet(modelstats.analyze, nested)
    view = report.by_block()
    assert list(view.index) == ["image", "stem", "block", "block#1", "gap", "head"]
    assert _column(view, "macs") == {"image": 0, "stem": 6_912, "block": 9_216,
                                     "block#1": 9_216, "gap": 0, "head": 8}
    assert _column(view, "flops") == {"image": 0, "stem": 14_080, "block": 18_688,
                                      "block#1": 18_688, "gap": 256, "head": 18}
    assert _column(view, "params") == {"image": 0, "stem": 112, "block": 144, "block#1": 0,
                                       "gap": 0, "head": 10}
    assert _column(view, "nodes") == {"image": 1, "stem": 1, "block": 3, "block#1": 3,
                                      "gap": 1, "head": 3}
    deeper = report.by_block(2)
    assert list(deeper.index) == ["image", "stem", "block/block_in", "block/conv",
                                  "block/relu", "block#1/block_in", "block#1/conv",
                                  "block#1/relu", "gap", "head/input", "head/matmul",
                                  "head/add"]
    assert deeper.loc["block#1/relu", "flops"] == 256  # 8*8*4 maxima


def test_by_type_sums_per_class_most_expensive_first(nested):
    view = _quiet(modelstats.analyze, nested).by_type()
    assert list(view.index) == ["Conv2D", "ReLU", "GlobalAveragePooling2D", "Matmul", "Add",
                                "InputLayer"]
    assert view.loc["Conv2D", "nodes"] == 3 and view.loc["Conv2D", "macs"] == 6_912 + 2 * 9_216
    assert view.loc["Conv2D", "flops"] == 14_080 + 2 * 18_432
    assert view.loc["ReLU", "flops"] == 2 * 256 and view.loc["InputLayer", "nodes"] == 4
    by_params = _quiet(modelstats.analyze, nested).by_type(by="params")
    assert list(by_params.index[:3]) == ["Conv2D", "Matmul", "Add"]  # 256, 8, 2
    with pytest.raises(modelstats.OptionError, match="Cannot rank layers by 'nodes'"):
        _quiet(modelstats.analyze, nested).by_type(by="nodes")


def test_a_block_with_an_unsupported_node_is_partial(partial):
    view = partial.by_block()
    assert list(view.index) == ["x", "blk", "raw2"]
    # blk: the known Dense only (a lower bound); raw2 alone: unknown, not 0
    assert _column(view, "macs") == {"x": 0, "blk": 16, "raw2": None}
    assert _column(view, "flops") == {"x": 0, "blk": 2 * 16 + 4, "raw2": None}
    assert _column(view, "partial") == {"x": False, "blk": True, "raw2": True}
    assert _column(view, "unsupported") == {"x": 0, "blk": 1, "raw2": 1}
    assert _column(view, "params") == {"x": 0, "blk": 20, "raw2": 0}
    types = partial.by_type()
    assert list(types.index) == ["Dense", "InputLayer", "RawTF"]  # <NA> flops last
    assert types.loc["RawTF", "unsupported"] == 2 and types.loc["RawTF", "flops"] is pd.NA


def test_views_total_to_the_report(net_report, nested, partial):
    reports = [net_report, _quiet(modelstats.analyze, nested, batch_size=3),
               _quiet(modelstats.analyze, residual_net()), partial]
    for report in reports:
        for view in [report.by_block(d) for d in (1, 2, 3, 4)] + [report.by_type()]:
            assert list(view.columns) == ["nodes", *(c.name for c in schema.summed()),
                                          "unsupported", "partial"]
            for c in schema.summed():
                assert int(view[c.name].sum()) == report.totals[c.name], c.name
                assert str(view[c.name].dtype) == c.pandas_dtype
            assert int(view["nodes"].sum()) == len(report.layers)
            assert int(view["unsupported"].sum()) == int(
                (report.layers["status"] == "unsupported").sum())
            assert bool(view["partial"].any()) == report.totals["partial"]


def test_a_new_summed_column_reaches_the_views(nested, monkeypatch):
    bias_adds = schema.Column("bias_adds", "int", nullable=True, per_batch=True, summed=True,
                              source="cost:cost.bias", description="Bias additions.")
    monkeypatch.setattr(schema, "COLUMNS", (*schema.COLUMNS, bias_adds))
    view = _quiet(modelstats.analyze, nested).by_block()
    assert list(view.columns)[-3:] == ["bias_adds", "unsupported", "partial"]
    # stem 8*8*4 bias adds; the head's traced `+ self.bias` is a keras.ops add (elementwise)
    assert _column(view, "bias_adds") == {"image": 0, "stem": 256, "block": 0, "block#1": 0,
                                          "gap": 0, "head": 0}


@pytest.mark.parametrize("depth", [0, -1, 1.5, True, "1"])
def test_depth_must_be_a_positive_integer(net_report, depth):
    with pytest.raises(modelstats.OptionError, match="depth must be a positive integer"):
        net_report.by_block(depth)


def test_markdown_of_a_view(nested, partial):
    report = _quiet(modelstats.analyze, nested)
    text = report.to_markdown(top=None, depth=1)
    table = text.split("## All 6 blocks at depth 1, in graph order\n\n")[1].splitlines()
    assert table[0] == "| block | nodes | params | macs | flops | unsupported |"
    assert table[5] == "| block#1 | 3 | 0 | 9,216 | 18,688 | 0 |"
    top = report.to_markdown(top=2, depth=2)
    assert "## Top 2 blocks at depth 2 by flops" in top
    assert [line.split(" | ")[0] for line in top.splitlines()[-2:]] == ["| block/conv",
                                                                      "| block#1/conv"]
    types = report.to_markdown(top=1, by_type=True)
    assert types.splitlines()[-1] == "| Conv2D | 3 | 256 | 25,344 | 50,944 | 0 |"
    flagged = partial.to_markdown(top=None, depth=1)
    assert "| raw2 | 1 | 0 | n/a | n/a | 1 |" in flagged
    assert flagged.rstrip().endswith("sums the known MACs and FLOPs only (a lower bound).")
    with pytest.raises(modelstats.OptionError, match="Choose one view"):
        report.to_markdown(depth=1, by_type=True)
