"""The column schema: one declaration from which frames, totals, CLI, Markdown and docs derive."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pandas as pd
import pytest

import modelstats
from modelstats import schema
from modelstats.cli import build_parser, main

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small(keras):
    """x (8x8x3) -> conv 3x3 same, 8 filters -> global average pool -> dense 2.

    conv:  8*8 * 3*3*3 * 8 = 13,824 MACs; 2*13,824 + 512 bias adds = 28,160 FLOPs; 224 params.
    gap:   8*8*8 = 512 adds (the divisions are folded into the count: 512 FLOPs).
    dense: 8*2 = 16 MACs; 2*16 + 2 bias = 34 FLOPs; 18 params.
    """
    x = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, keras.layers.Dense(2, name="dense")(y), name="small")


# -- the declarations ----------------------------------------------------------------------------

def test_names_are_unique_and_templates_expand():
    names = [c.name for c in schema.COLUMNS]
    assert len(names) == len(set(names))
    assert [c.name for c in schema.column("rf_size_{axis}").expand(("z", "y", "x"))] == [
        "rf_size_z", "rf_size_y", "rf_size_x"]
    resolved = schema.column("rf_padding_y")
    assert (resolved.axis, resolved.template, resolved.stem) == ("y", "rf_padding_{axis}",
                                                                 "rf_padding")
    with pytest.raises(modelstats.OptionError, match=r"No column 'nope'; the columns are \['type'"):
        schema.column("nope")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="a", dtype="complex", source="cost:a"), "dtype 'complex'"),
    (dict(name="a", dtype="int", source="graph:a"), "source 'graph:a'"),
    (dict(name="a", dtype="str", summed=True, source="cost:a"), "only numeric columns"),
])
def test_a_wrong_declaration_fails_at_once(kwargs, match):
    with pytest.raises(ValueError, match=match):
        schema.Column(**kwargs)


def test_schema_imports_no_pandas_and_the_cli_no_tensorflow():
    code = ("import sys, modelstats.schema, modelstats.cli; "
            "assert 'pandas' not in sys.modules and 'tensorflow' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'tensorflow'))")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_docs_api_lists_exactly_the_schema_columns():
    text = (ROOT / "docs" / "api.md").read_text()
    embedded = text.split("<!-- columns:begin -->\n", 1)[1].split("<!-- columns:end -->", 1)[0]
    assert embedded.strip() == schema.docs_table(), (
        "docs/api.md is out of date: paste the output of `python -m modelstats.schema` between "
        "the columns markers")
    documented = [line.split("`")[1] for line in embedded.split("\n\n")[0].splitlines()[2:]]
    assert documented == [c.name for c in schema.COLUMNS]
    for c in schema.COLUMNS:
        assert c.description and c.description in embedded, c.name


# -- what derives from it ------------------------------------------------------------------------

def test_frames_have_the_declared_columns_and_dtypes(small):
    costs = modelstats.count_flops(small)
    assert list(costs.columns) == [c.name for c in schema.layout()]
    report = modelstats.analyze(small)
    assert list(report.layers.columns) == [c.name for c in schema.layout(("y", "x"))]
    fields = modelstats.receptive_field(small)
    assert list(fields.columns) == ["type", *(c.name for c in schema.layout(("y", "x"),
                                                                            groups=("field",)))]
    for c in schema.layout(("y", "x")):
        if c.pandas_dtype:
            assert str(report.layers[c.name].dtype) == c.pandas_dtype, c.name
    assert str(costs["macs"].dtype) == "Int64" and str(costs["params"].dtype) == "int64"


def test_totals_are_every_summed_column_then_the_report_facts(small):
    totals = modelstats.analyze(small).totals
    assert list(totals) == [c.name for c in schema.summed()] + [t.name for t in schema.totals()]
    assert totals == {
        "params": 224 + 18,
        "trainable_params": 224 + 18,
        "macs": 13_824 + 16,
        "flops": 28_160 + 512 + 34,
        "activations": 192 + 512 + 8 + 2,  # x, conv, gap, dense outputs
        "activation_bytes": 4 * (192 + 512 + 8 + 2),  # float32
        # float32: conv reads x and its 224 variables, gap the conv output, dense the pooled
        # vector and its 18 variables; the input layer moves nothing
        "bytes_read": 4 * ((192 + 224) + 512 + (8 + 18)),
        "bytes_written": 4 * (512 + 8 + 2),
        "partial": False,
        "unsupported": [],
        "batch_size": 1,
        "rf_input": "x",
    }


def test_batch_size_scales_exactly_the_per_batch_columns(small):
    one = modelstats.count_flops(small)
    three = modelstats.count_flops(small, batch_size=3)
    # the variables (conv 224, dense 18, float32) are read once per batch, not per sample
    weight_bytes = pd.Series([0, 4 * 224, 0, 4 * 18], index=one.index)
    for c in schema.layout():
        if c.unbatched:
            pd.testing.assert_series_equal(three[c.name], (one[c.name] - weight_bytes) * 3
                                           + weight_bytes, check_names=False)
        elif c.per_batch:
            pd.testing.assert_series_equal(three[c.name], one[c.name] * 3, check_names=False)
        elif c.ratio_terms:  # a ratio of the batch-scaled columns (intensity)
            numerator, denominators = c.ratio_terms
            moved = sum(three[d] for d in denominators)
            expected = (three[numerator] / moved).where(moved > 0).astype("Float64")
            pd.testing.assert_series_equal(three[c.name], expected, check_names=False)
        else:
            pd.testing.assert_series_equal(three[c.name], one[c.name])
    assert three.loc["conv", "macs"] == 3 * 13_824 and three.loc["conv", "params"] == 224
    assert modelstats.analyze(small, batch_size=3).totals["flops"] == 3 * 28_706


def test_cli_choices_and_table_come_from_the_schema(small, capsys):
    by = next(a for a in build_parser()._actions if a.dest == "by")
    assert list(by.choices) == [c.name for c in schema.rankable(schema.FEATURES)]  # --training
    assert [c.stem for c in schema.cli_table()] == [
        "type", "output_shape", "params", "macs", "flops", "rf_size", "rf_stride"]
    with pytest.raises(SystemExit):
        main(["MobileNetV2", "--by", "type"])
    assert "invalid choice: 'type'" in capsys.readouterr().err


def test_top_ranks_only_rankable_columns(small):
    report = modelstats.analyze(small)
    assert list(report.top(3, by="params").index) == ["conv", "dense", "x"]  # 224, 18, 0 (x, gap)
    assert list(report.top(2, by="activations").index) == ["conv", "x"]  # 512, 192
    with pytest.raises(modelstats.OptionError,
                       match=r"Cannot rank layers by 'rf_size_y'; choose one of \['params', "
                             r"'trainable_params', 'macs', 'flops', 'activations', "
                             r"'activation_bytes', 'bytes_read', 'bytes_written'\]"):
        report.top(by="rf_size_y")


def test_markdown_shows_the_cli_table_columns(small):
    text = modelstats.analyze(small).to_markdown(top=None)
    table = text.split("## All 4 layers, in graph order\n\n")[1].splitlines()
    assert table[0] == ("| node | type | output_shape | params | macs | flops | rf_size | "
                        "rf_stride |")
    assert table[3] == "| conv | Conv2D | (8, 8, 8) | 224 | 13,824 | 28,160 | 3x3 | 1x1 |"
    assert table[4] == "| gap | GlobalAveragePooling2D | (8,) | 0 | 0 | 512 | n/a | n/a |"


# -- adding a column is one declaration ----------------------------------------------------------

def test_a_new_column_is_one_declaration(small, monkeypatch, capsys):
    """A declared column reaches the frame, totals, batch scaling, top, Markdown, the CLI and the
    docs table; one that requires an optional computation stays out until it is run."""
    bias_adds = schema.Column(
        "bias_adds", "int", nullable=True, per_batch=True, summed=True, rankable=True,
        in_cli_table=True, source="cost:cost.bias", description="Bias additions.")
    train_macs = schema.Column(
        "train_macs", "int", nullable=True, per_batch=True, summed=True, rankable=True,
        source="cost:cost.macs", requires="training", description="Training-step MACs.")
    monkeypatch.setattr(schema, "COLUMNS", (*schema.COLUMNS, bias_adds, train_macs))

    costs = modelstats.count_flops(small, batch_size=2)
    assert "train_macs" not in costs.columns
    assert list(costs["bias_adds"]) == [0, 2 * 512, 0, 2 * 2]  # x, conv, gap, dense
    assert str(costs["bias_adds"].dtype) == "Int64"
    report = modelstats.analyze(small)
    assert report.totals["bias_adds"] == 512 + 2 and "train_macs" not in report.totals
    assert list(report.top(1, by="bias_adds").index) == ["conv"]
    assert "| rf_stride | bias_adds |" in report.to_markdown()
    assert "`bias_adds` | Int64 | yes | yes | yes | yes | yes | Bias additions. |" in \
        schema.docs_table()
    assert "Only with `training`." in schema.docs_table()
    assert [c.name for c in schema.layout(features=("training",))][-1] == "train_macs"
    assert "bias_adds" in next(a for a in build_parser()._actions if a.dest == "by").choices
    with pytest.raises(modelstats.OptionError, match="'train_macs'"):
        report.top(by="train_macs")  # declared, but not computed for this report


@pytest.mark.parametrize("value", [0, -2, 2.5, True, "2", None])
def test_check_batch_size_refuses(value):
    with pytest.raises(modelstats.ShapeError,
                       match=rf"batch_size must be a positive integer .*received {value!r}\. "
                             r"Pass batch_size=1"):
        schema.check_batch_size(value)


def test_check_batch_size_accepts_numpy_integers():
    import numpy as np

    value = schema.check_batch_size(np.int64(4))
    assert value == 4 and type(value) is int
