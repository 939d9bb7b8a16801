"""Report.to_html: one self-contained page whose numbers are the report's, read back with the
standard library's HTML parser."""

from __future__ import annotations

import base64
import html.parser

import pytest

import modelstats


class Page(html.parser.HTMLParser):
    """Tables by id (rows of cell texts, header first), images, and every external reference."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self.external: list[str] = []
        self.ids: set[str] = set()
        self.classes: dict[str, list[str]] = {}
        self._table = self._row = self._cell = None
        self._class = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        for key in ("src", "href"):
            if key in attrs and not attrs[key].startswith("data:"):
                self.external.append(attrs[key])
        if tag == "link":
            self.external.append(str(attrs))
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "table":
            self._table = self.tables.setdefault(attrs.get("id", ""), [])
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "p" and "class" in attrs:
            self._class, self._text = attrs["class"], []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._class is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p" and self._class is not None:
            self.classes.setdefault(self._class, []).append("".join(self._text))
            self._class = None


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def small(keras):
    """x 16x16x3 -> conv (3x3, 8, stride 2, same) -> block [conv 3x3 same 8->8] -> gap ->
    dense 2. conv: 8*8 * 27 * 8 = 13,824 MACs; block/conv 8*8 * 72 * 8 = 36,864; dense 16."""
    L = keras.layers
    x = keras.Input((16, 16, 3), name="x")
    y = L.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
    inner = keras.Input((8, 8, 8), name="block_in")
    block = keras.Model(inner, L.Conv2D(8, 3, padding="same", name="conv")(inner), name="block")
    y = L.GlobalAveragePooling2D(name="gap")(block(y))
    return keras.Model(x, L.Dense(2, name="dense")(y), name="small")


@pytest.fixture(scope="module")
def report(small):
    return modelstats.analyze(small)


def test_page_holds_the_reports_numbers(report, tmp_path):
    target = tmp_path / "report.html"
    assert report.to_html(target, top=2, plots=False) is None
    page = Page(target.read_text(encoding="utf-8"))

    totals = dict(page.tables["totals"][1:])
    assert number(totals["macs"]) == report.totals["macs"] == 13_824 + 36_864 + 16
    for name in ("params", "trainable_params", "flops", "activation_bytes"):
        assert number(totals[name]) == report.totals[name], name
    assert totals["partial"] == "False" and totals["rf_input"] == "x"

    header, *rows = page.tables["top-layers"]
    assert header[:2] == ["node", "type"]
    assert [r[0] for r in rows] == ["block/conv", "conv"] == list(report.top(2).index)
    flops = header.index("flops")
    assert [number(r[flops]) for r in rows] == [int(report.layers.loc[n, "flops"])
                                                for n in ("block/conv", "conv")]

    header, *rows = page.tables["blocks"]
    assert [r[0] for r in rows] == list(report.by_block(1).index) == [
        "x", "conv", "block", "gap", "dense"]
    macs = header.index("macs")
    assert {r[0]: number(r[macs]) for r in rows}["block"] == 36_864
    assert sum(number(r[macs]) for r in rows) == report.totals["macs"]

    assert [r[0] for r in page.tables["layers"][1:]] == list(report.layers.index)
    assert "FLOPs = 2 x MACs" in page.classes["convention"][0]
    assert "warning" not in page.classes  # the totals are complete


def test_page_is_self_contained_with_its_plots(report):
    pytest.importorskip("matplotlib")
    page = Page(report.to_html(top=2))
    assert page.external == []  # no stylesheet, script or image from anywhere else
    assert {"plot-cost", "plot-field", "plot-box"} <= page.ids
    assert len(page.images) == 3
    for src in page.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix):])[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_without_matplotlib_says_so(report, monkeypatch):
    from modelstats import _render

    def missing():
        raise ImportError("Plots need matplotlib: pip install 'modelstats[plot]'")

    monkeypatch.setattr(_render, "pyplot", missing)
    page = Page(report.to_html())
    assert page.images == [] and "no-plots" in page.ids
    assert "Plots need matplotlib" in page.classes["note"][0]
    assert number(dict(page.tables["totals"][1:])["macs"]) == report.totals["macs"]


def test_partial_totals_are_flagged(keras):
    x = keras.Input((8, 8, 3), name="x")
    y = keras.layers.Lambda(lambda t: t * 2, name="double")(x)
    model = keras.Model(x, keras.layers.Conv2D(2, 3, name="conv")(y))
    with pytest.warns(modelstats.UnsupportedLayerWarning):
        report = modelstats.analyze(model)
    page = Page(report.to_html(plots=False))
    (warning,) = page.classes["warning"]
    assert "no cost rule for Lambda" in warning and "lower bound" in warning
    assert dict(page.tables["totals"][1:])["partial"] == "True"
    assert dict((r[0], r) for r in page.tables["layers"][1:])["double"][1] == \
        "Lambda (unsupported)"


def test_a_device_adds_the_roofline_section(keras):
    import modelstats

    x = keras.Input((8, 8, 3))
    y = keras.layers.ReLU(name="relu")(keras.layers.Conv2D(4, 3, name="conv")(x))
    report = modelstats.analyze(keras.Model(x, y))
    # 1 GFLOP/s and 1 GB/s: the relu reads and writes 6*6*4 float32 values (1,152 bytes) for
    # 144 FLOPs, so it is memory-bound at 1.152 us; the conv moves 768 + 448 + 576 bytes
    # (input, kernel and bias, output) for 2*3,888 + 144 FLOPs: compute-bound at 7.92 us.
    page = report.to_html(plots=False, device=modelstats.Device("toy", 1e9, 1e9))
    assert '<table id="memory-bound"' in page and "toy" in page
    section = page.split('<table id="memory-bound"')[1].split("</table>")[0]
    assert "relu" in section and "conv" not in section and "1.2" in section
    assert "at least 0.009 ms" in page  # 7.920 + 1.152 us
