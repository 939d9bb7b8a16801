"""The plots say what they show: checked by their artists' data, and each written to a PNG.

The cost and growth plots use a small strided model with a nested block (fast to analyse and
draw); the field picture uses the clothing classifier on a real photo when the dataset is in
../shared, else on a generated image.
"""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np
import pytest

import modelstats
from tests.conftest import load_example

pytest.importorskip("matplotlib")

ROOT = pathlib.Path(__file__).resolve().parent.parent
REAL_DATA = pathlib.Path(os.environ.get(
    "CLOTHING_DATASET", ROOT.parent / "shared" / "data" / "clothing-dataset-small"))


@pytest.fixture(autouse=True)
def _close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


@pytest.fixture(scope="module")
def strided(keras):
    """x 32x32x3 -> c1 (3x3, stride 2, same) -> c2 (3x3 same) -> block [conv 3x3 stride 2
    same, relu] -> c3 (5x5 valid) -> c4 (3x3 valid) -> gap -> head.

    Fields along x: c1 3 (stride 2), c2 3+2*2 = 7, block/conv 7+2*2 = 11 (stride 4),
    c3 11+4*4 = 27, c4 27+2*4 = 35: the first wider than the 32 px input.
    """
    L = keras.layers
    x = keras.Input((32, 32, 3), name="x")
    y = L.Conv2D(8, 3, strides=2, padding="same", name="c1")(x)
    y = L.Conv2D(8, 3, padding="same", name="c2")(y)
    inner = keras.Input((16, 16, 8), name="block_in")
    z = L.Conv2D(16, 3, strides=2, padding="same", name="conv")(inner)
    block = keras.Model(inner, L.ReLU(name="relu")(z), name="block")
    y = L.Conv2D(16, 5, name="c3")(block(y))
    y = L.Conv2D(16, 3, name="c4")(y)
    y = L.GlobalAveragePooling2D(name="gap")(y)
    return keras.Model(x, L.Dense(3, name="head")(y), name="strided")


@pytest.fixture(scope="module")
def report(strided):
    return modelstats.analyze(strided)


def by_gid(artists, gid):
    return [a for a in artists if a.get_gid() == gid]


def saved_png(ax, path):
    ax.figure.savefig(path, dpi=60, bbox_inches="tight")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_plot_names_the_top_layers_in_readable_units(report, tmp_path):
    nodes = list(report.layers.index)
    assert nodes == ["x", "c1", "c2", "block/block_in", "block/conv", "block/relu", "c3", "c4",
                     "gap", "head"]
    ax = report.plot_cost(k=2)
    saved_png(ax, tmp_path / "cost.png")

    # c2: 16*16 * 3*3*8 * 8 MACs = 147,456 -> 294,912 + 2,048 bias adds; c3: 4*4 * 5*5*16 * 16
    # = 102,400 MACs -> 204,800 + 256. Graph order on the axis, not rank order.
    flops = report.layers["flops"]
    assert (int(flops["c2"]), int(flops["c3"])) == (296_960, 205_056)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c2", "c3"]
    assert list(ax.get_xticks()) == [nodes.index("c2"), nodes.index("c3")]
    assert ax.get_ylabel() == "kFLOPs per layer"
    heights = [bar.get_height() for bar in ax.containers[0]]
    assert heights == pytest.approx([int(f) / 1e3 for f in flops])
    red = [i for i, bar in enumerate(ax.containers[0]) if bar.get_facecolor()[0] > 0.7]
    assert red == [nodes.index("c2"), nodes.index("c3")]
    assert ax.get_title() == f"FLOPs per layer: total {report.totals['flops'] / 1e3:,.1f} kFLOPs"


def test_cost_plot_marks_stride_stages_and_nested_blocks(report):
    nodes = list(report.layers.index)
    ax = report.plot_cost(k=1)
    # the stride goes 1 -> 2 at c1 and 2 -> 4 at block/conv; lines sit between the bars
    stages = by_gid(ax.lines, "stage")
    assert [line.get_xdata()[0] for line in stages] == [nodes.index("c1") - 0.5,
                                                        nodes.index("block/conv") - 0.5]
    assert [t.get_text().strip() for t in by_gid(ax.texts, "stage-label")] == ["stride 2",
                                                                                "stride 4"]
    # the nested block's three nodes (its input, conv, relu) are one shaded span, named
    (span,) = by_gid(ax.patches, "block")
    left, right = span.get_x(), span.get_x() + span.get_width()
    assert (left, right) == (nodes.index("block/block_in") - 0.5,
                             nodes.index("block/relu") + 0.5)
    assert [t.get_text() for t in by_gid(ax.texts, "block-label")] == ["block"]


def test_cost_plot_by_params_uses_its_unit(report):
    ax = report.plot_cost(k=1, by="params")
    assert ax.get_ylabel() == "k parameters per layer"  # c3: 5*5*16*16 + 16 = 6,416
    assert [t.get_text() for t in ax.get_xticklabels()] == ["c3"]


def test_field_growth_marks_the_input_size_and_the_strides(report, tmp_path):
    nodes = list(report.layers.index)
    ax = report.plot_receptive_field()
    saved_png(ax, tmp_path / "growth.png")

    (size,) = by_gid(ax.lines, "size")
    expected = {"c1": 3, "c2": 7, "block/conv": 11, "c3": 27, "c4": 35}
    for node, value in expected.items():
        assert size.get_ydata()[nodes.index(node)] == value
    (stride,) = by_gid(ax.lines, "stride")
    assert stride.get_ydata()[nodes.index("c3")] == 4
    (line,) = by_gid(ax.lines, "input-size")
    assert list(line.get_ydata()) == [32, 32]
    (first,) = by_gid(ax.lines, "exceeds")  # c4 is the first field wider than 32 px
    assert (first.get_xdata()[0], first.get_ydata()[0]) == (nodes.index("c4"), 35)
    assert [line.get_xdata()[0] for line in by_gid(ax.lines, "stage")] == [
        nodes.index("c1"), nodes.index("block/conv")]
    assert "input size (32 px)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_field_box_of_a_small_map_unit(report):
    # c2's unit (0, 0): 7 px field, stride 2, TF "same" padding 1 then 1 (stride 2): it starts
    # at pixel -2 on a 32 px input; clipped to the image it covers pixels 0..4.
    rf = report.receptive_field("c2")
    assert rf.box((0, 0)) == ((-2, 4), (-2, 4))
    ax = report.plot_receptive_field(layer="c2", unit=(0, 0))
    (field,) = by_gid(ax.patches, "field")
    assert (field.get_xy(), field.get_width(), field.get_height()) == ((-2.5, -2.5), 7, 7)
    (clipped,) = by_gid(ax.patches, "field-clipped")
    assert (clipped.get_xy(), clipped.get_width()) == ((-0.5, -0.5), 5)
    (centres,) = by_gid(ax.lines, "centres")  # c2's 16x16 units: centres u*2 - 2 + 3
    assert sorted(set(centres.get_xdata())) == [2 * u + 1 for u in range(16)]


def test_field_box_needs_a_positional_field(report):
    with pytest.raises(modelstats.ModelStatsError, match="'gap' has no positional receptive"):
        report.plot_receptive_field(layer="gap")


def _photo():
    """A real photo (the dataset's first test image) as the example loads it, or None."""
    if not REAL_DATA.is_dir():
        return None
    folder = REAL_DATA / "test" / "pants"
    return sorted(folder.iterdir())[0] if folder.is_dir() else None


def test_classifier_field_on_a_photo(classifier, tmp_path):
    """The worked example's picture: out_relu's centre unit sees 491 px of a 224 px photo."""
    photo = _photo()
    if photo is not None:
        image = load_example("mobilenet_report").load_image(photo, (224, 224))
        assert image.shape == (224, 224, 3) and image.dtype == np.uint8
    else:  # no dataset here: the generated image the example uses by default
        image = None
    report = modelstats.analyze(classifier)
    ax = report.plot_receptive_field(layer="mobilenetv2_1.00_224/out_relu", image=image)
    saved_png(ax, tmp_path / "field_on_image.png")

    # unit (3, 3) of the 7x7 map: it starts at 3*32 - 214 = -118 and spans 491 px
    (field,) = by_gid(ax.patches, "field")
    assert (field.get_xy(), field.get_width(), field.get_height()) == ((-118.5, -118.5),
                                                                      491, 491)
    (clipped,) = by_gid(ax.patches, "field-clipped")  # it depends on every pixel
    assert (clipped.get_xy(), clipped.get_width(), clipped.get_height()) == ((-0.5, -0.5),
                                                                            224, 224)
    (picture,) = ax.get_images()
    assert picture.get_extent() == [-0.5, 223.5, 223.5, -0.5]
    if image is not None:
        assert np.array_equal(np.asarray(picture.get_array()), image)
    (centre,) = by_gid(ax.lines, "unit-centre")
    assert (centre.get_xdata()[0], centre.get_ydata()[0]) == (127, 127)
    (centres,) = by_gid(ax.lines, "centres")  # 7x7 units, one stride (32 px) apart
    assert sorted(set(centres.get_xdata())) == [31 + 32 * u for u in range(7)]
    assert "491 x 491 px field on the 224 x 224 px input (stride 32 x 32)" in ax.get_title()
    left, right = ax.get_xlim()
    assert left < -118.5 and right > 372.5  # the whole field is in view, not cut at the image


def test_worked_example_lists_only_what_it_wrote(classifier, tmp_path, monkeypatch, capsys):
    """Without matplotlib the example says the plots were skipped and does not claim them."""
    example = load_example("mobilenet_report")
    monkeypatch.setattr(example, "build_classifier", lambda weights: classifier)
    for name in ("matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)  # import matplotlib now fails
    # --quick: the measurements are not what this test is about
    assert example.main(["--out", str(tmp_path), "--quick"]) == 0
    out, err = capsys.readouterr()
    assert "plots skipped" in err and 'pip install -e ".[examples]"' in err
    claimed = out.strip().splitlines()[-1]
    assert claimed == (f"Wrote layers.csv, blocks.csv, report.md, report.json, "
                       f"published_vs_exact.csv and report.html (without plots) to {tmp_path}/")
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(["layers.csv", "blocks.csv", "report.md", "report.json",
                              "published_vs_exact.csv", "report.html"])
    assert "Plots need matplotlib" in (tmp_path / "report.html").read_text(encoding="utf-8")
