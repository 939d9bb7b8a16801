"""analyze(), Report exports, and the worked example end to end."""

from __future__ import annotations

import io
import json
import pathlib

import pandas as pd
import pytest

import modelstats
from tests.conftest import load_example

ROOT = pathlib.Path(__file__).resolve().parent.parent
PUBLISHED_TOP10 = [  # seed README: the original study's top 10 by FLOPs
    ("Conv_1", 40_140_800), ("block_1_expand", 38_535_168), ("block_16_project", 30_105_600),
    ("Conv1", 21_676_032), ("block_2_expand", 21_676_032), ("block_2_project", 21_676_032),
    ("block_3_expand", 21_676_032), ("block_11_expand", 21_676_032),
    ("block_11_project", 21_676_032), ("block_12_expand", 21_676_032),
]


@pytest.fixture(scope="session")
def report(classifier):
    return modelstats.analyze(classifier)


def test_totals_and_top(report):
    assert report.totals["params"] == 2_270_794 and report.totals["trainable_params"] == 12_810
    assert report.totals["partial"] is False
    top = report.top(10)
    assert [(n.split("/")[-1], int(f)) for n, f in top["flops"].items()] == PUBLISHED_TOP10


def test_top_is_stable_on_ties(report):
    ties = report.top(len(report.layers))
    tied = ties[ties["flops"] == 21_676_032].index.tolist()
    assert tied == [n for n in report.layers.index if n in set(tied)]  # graph order kept


def test_receptive_field_columns_joined(report):
    row = report.layers.loc["mobilenetv2_1.00_224/out_relu"]
    assert (row["rf_size_y"], row["rf_stride_x"], row["rf_padding_x"]) == (491, 32, 214)
    assert report.receptive_field("out_relu").size == (491, 491)


def test_csv_and_json_round_trip(report):
    frame = pd.read_csv(io.StringIO(report.to_csv()), index_col="node")
    assert frame["flops"].sum() == report.totals["flops"]
    assert list(frame.index) == list(report.layers.index)
    data = json.loads(report.to_json())
    assert data["totals"]["macs"] == report.totals["macs"]
    assert sum(r["flops"] for r in data["layers"]) == report.totals["flops"]
    assert "Conv_1" in report.to_markdown() and "<table>" in report._repr_html_()


def test_worked_example_end_to_end(classifier, tmp_path, monkeypatch, capsys):
    example = load_example("mobilenet_report")
    # The session's classifier: --weights none builds the same clothing_classifier(weights=None)
    # (1.5 s saved); a bad --weights is refused in tests/test_train_clothing.py.
    monkeypatch.setattr(example, "build_classifier", lambda weights: classifier)
    assert example.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "2,270,794" in printed and "12,810 trainable" in printed
    assert "size 491 x 491 px, stride 32 x 32, effective padding 214 x 214" in printed
    top_lines = printed.split("Top 10 layers by FLOPs:")[1].strip().splitlines()[:10]
    assert [(line.split()[0], int(line.split()[2].replace(",", ""))) for line in top_lines] == (
        PUBLISHED_TOP10)
    # the frozen base holds all but the head's 12,800 MACs (1,280 features x 10 classes)
    base = [line for line in printed.splitlines() if line.strip().startswith("mobilenetv2_1.00_224")]
    assert len(base) == 1 and "299,494,272 MACs" in base[0] and "2,257,984 params" in base[0]
    # The training step per image, as in tests/test_training.py: the frozen base's forward
    # plus the head's weight gradient (299,507,072 + 12,800), the cached head alone
    # (12,800 + 12,800), fine-tuning from layer 100.
    regimes = {line.split("  ")[1].strip(): line for line in printed.splitlines()
               if line.startswith(("  frozen base", "  cached features", "  fine-tuning"))}
    assert "299,519,872" in regimes["frozen base"] and "25,600" in regimes["cached features"]
    assert "546,875,264" in regimes["fine-tuning from layer 100"]
    assert "lower bound" in printed and "Most memory-bound layers" in printed
    assert "half of the gradient mass lies in" in printed
    assert "160x160: 152,803,200, 224x224: 299,494,272" in printed  # the formula at two sizes
    for name in ("layers.csv", "blocks.csv", "report.md", "report.json", "cost_per_layer.png",
                 "receptive_field.png", "field_on_image.png", "effective_field.png",
                 "roofline.png", "report.html", "published_vs_exact.csv"):
        assert (tmp_path / name).stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["totals"]["params"] == 2_270_794
    diff = pd.read_csv(tmp_path / "published_vs_exact.csv").set_index("layer")
    # the known defect: strided depthwise counted from input/stride (56.5 positions per axis)
    assert diff.loc["block_1_depthwise", "published"] == 5_516_208
    assert diff.loc["block_1_depthwise", "exact"] == 2 * 2_709_504


# -- the frame's columns are built without pandas' inference: checked against it ------------

NUMBER_COLUMNS = [
    [3, 7, 11],  # whole fields: int64
    [3, None, 11],  # a node without a field: float64, NaN
    [3.5, 1, None],  # after an upsampling, a fractional field
    [None, None],  # no field anywhere: left to pandas (object)
]


@pytest.mark.parametrize("values", NUMBER_COLUMNS)
def test_number_columns_are_what_pandas_infers(values):
    from modelstats.report import _number_array

    pd.testing.assert_series_equal(pd.Series(_number_array(list(values))), pd.Series(values))


def test_number_column_of_sympy_sizes_is_left_to_pandas():
    sympy = pytest.importorskip("sympy")
    from modelstats.report import _number_array

    values = [sympy.Symbol("H") + 2, 3]
    assert _number_array(values) is values


@pytest.mark.parametrize("dtype, values", [
    ("Int64", [55296, None, 0]),
    ("Float64", [0.25, None, float("nan"), 3.0]),
    ("boolean", [True, None, False]),
])
def test_nullable_columns_are_what_pd_array_gives(dtype, values):
    from modelstats.report import _column_array

    built = _column_array(list(values), dtype)
    expected = pd.array(values, dtype=dtype)
    assert built.dtype == expected.dtype
    pd.testing.assert_extension_array_equal(built, expected)
