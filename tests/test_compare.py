"""modelstats.compare: one row per model, each number the model's own report's."""

from __future__ import annotations

import pandas as pd
import pytest

import modelstats
from modelstats.comparison import TOTALS


@pytest.fixture(scope="module")
def models(keras):
    """Three small models: two image models of different depth and a dense-only one."""
    L = keras.layers
    x = keras.Input((32, 32, 3), name="x")
    wide = keras.Model(x, L.Conv2D(16, 3, name="conv")(x), name="wide")
    y = L.Conv2D(4, 3, strides=2, name="c1")(x)
    y = L.Conv2D(4, 3, name="c2")(y)
    deep = keras.Model(x, L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="gap")(y)),
                       name="deep")
    v = keras.Input((10,), name="v")
    mlp = keras.Model(v, L.Dense(5, name="dense")(v), name="mlp")
    return wide, deep, mlp


def test_rows_are_each_models_totals_and_last_field(models):
    wide, deep, mlp = models
    table = modelstats.compare({"a": wide, "b": deep, "c": mlp})
    assert list(table.index) == ["a", "b", "c"] and table.index.name == "model"
    for name, model in zip("abc", models):
        report = modelstats.analyze(model)
        for column in TOTALS:
            assert table.loc[name, column] == report.totals[column], (name, column)
        assert table.loc[name, "nodes"] == len(report.layers)
    # wide: 30*30 * 27 * 16 MACs; deep: 15*15 * 27 * 4 + 13*13 * 36 * 4 + 4*2
    assert list(table["macs"]) == [388_800, 48_644, 50]
    # deep's last positional map is c2 (gap is global): 3 + 2*2 = 7 px, stride 2
    assert list(table["rf_node"][:2]) == ["conv", "c2"] and pd.isna(table.loc["c", "rf_node"])
    assert table.loc["b", ["rf_size_y", "rf_size_x", "rf_stride_x"]].tolist() == [7, 7, 2]
    assert table.loc["c", ["rf_size_x", "rf_stride_x"]].isna().all()  # no spatial input
    assert str(table["rf_size_x"].dtype) == "Int64" and not table["partial"].any()


def test_a_list_is_named_after_the_models(models):
    wide, deep, _ = models
    table = modelstats.compare([wide, deep, wide])
    assert list(table.index) == ["wide", "deep", "wide#1"]
    assert table.loc["wide", "macs"] == table.loc["wide#1", "macs"]


def test_options_apply_to_every_model_and_reports_pass_through(models):
    wide, deep, _ = models
    report = modelstats.analyze(deep)
    table = modelstats.compare({"wide": wide, "deep": report}, batch_size=2)
    assert table.loc["wide", "macs"] == 2 * 388_800  # analysed here, at batch 2
    assert table.loc["deep", "macs"] == report.totals["macs"]  # given as it is


def test_partial_rows_are_flagged(keras, models):
    x = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Lambda(lambda t: t + 1, name="shift")(x)
    odd = keras.Model(x, keras.layers.Conv2D(2, 3, name="conv")(y), name="odd")
    with pytest.warns(modelstats.UnsupportedLayerWarning):
        table = modelstats.compare([odd, models[0]])
    assert table["partial"].tolist() == [True, False]


def test_not_a_collection_is_refused(models):
    with pytest.raises(TypeError, match="dict {name: model} or a list of models"):
        modelstats.compare(models[0])


def test_importing_the_module_keeps_the_function_callable(models):
    # the function lives in modelstats.comparison: importing it cannot hide modelstats.compare
    import modelstats.comparison  # noqa: F401

    assert isinstance(modelstats.compare(models[:1]), pd.DataFrame)

def test_a_device_adds_each_models_roofline_bound(models, capsys):
    from modelstats import cli

    toy = modelstats.Device("toy", 1e9, 1e9)
    table = modelstats.compare(models[:2], device=toy)
    for name, model in zip(table.index, models[:2]):
        assert table.loc[name, "t_roofline_s"] == pytest.approx(
            modelstats.roofline(model, toy).total_s)
    assert cli.main(["MobileNetV2", "EfficientNetB0", "--device", "a100-sxm4-80gb",
                     "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(",partial,t_roofline_s")
