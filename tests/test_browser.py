"""The HTML report rendered by a real browser: headless Chromium draws it (not blank, its plots
and tables laid out) and runs its own sorting script.

.ci/run installs Debian's chromium when it is missing; elsewhere these tests skip without a
Chromium (or Chrome) on the PATH.
"""

from __future__ import annotations

import html.parser
import shutil
import subprocess

import numpy as np
import pytest

import modelstats

BROWSER = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(name)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium on the PATH (.ci/run "
                                                        "installs Debian's chromium)")


def _chromium(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile and no background traffic (this machine is
    offline: Chromium's own connections would be refused, many at a time)."""
    profile = tmp_path / "profile"
    command = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--hide-scrollbars",
               f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


class Rows(html.parser.HTMLParser):
    """The first cell of each body row of the table with id ``table_id``."""

    def __init__(self, text: str, table_id: str):
        super().__init__()
        self.table_id, self.rows = table_id, []
        self._inside = self._body = self._first = False
        self._cell: list[str] = []
        self._column = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._inside = dict(attrs).get("id") == self.table_id
        elif self._inside and tag == "tbody":
            self._body = True
        elif self._inside and self._body and tag == "tr":
            self._column = 0
        elif self._inside and self._body and tag in ("td", "th"):
            self._first, self._cell = self._column == 0, []
            self._column += 1

    def handle_data(self, data):
        if self._first:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._first:
            self.rows.append("".join(self._cell).strip())
            self._first = False
        elif tag == "table":
            self._inside = self._body = False


@pytest.fixture(scope="module")
def page(keras, tmp_path_factory):
    """The report of a small model with its plots: x -> conv (3x3, 8, stride 2) -> pool ->
    conv (3x3, 16) -> global average pooling -> dense 4."""
    pytest.importorskip("matplotlib")
    L = keras.layers
    x = keras.Input((32, 32, 3), name="x")
    y = L.Conv2D(8, 3, strides=2, padding="same", name="conv1")(x)
    y = L.MaxPooling2D(name="pool")(y)
    y = L.Conv2D(16, 3, padding="same", name="conv2")(y)
    # a long name, as nested models give (mobilenetv2_1.00_224/expanded_conv_depthwise_BN):
    # the layers table is then wider than the window
    y = L.GlobalAveragePooling2D(name="global_average_pooling_of_the_second_convolution_"
                                      "for_the_classification_head")(y)
    report = modelstats.analyze(keras.Model(x, L.Dense(4, name="dense")(y)))
    path = tmp_path_factory.mktemp("browser") / "report.html"
    report.to_html(path, top=3)
    return report, path


def test_chromium_draws_the_report(page, tmp_path):
    from PIL import Image

    report, path = page
    shot = tmp_path / "report.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1800",
                     path.as_uri())
    assert shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1800, 1200)
    # Not blank: a white page has one grey level. Text, table rules and three plots give
    # many, and dark ink covers a visible share of the page.
    assert len(np.unique(pixels)) > 50
    assert 0.01 < (pixels < 128).mean() < 0.5
    # The report has content along its height (totals, plots, tables), not one line at the top.
    inked_rows = np.flatnonzero((pixels < 128).any(axis=1))
    assert inked_rows.max() - inked_rows.min() > 900


def test_chromium_lays_out_every_row_and_sorts_by_a_column(page, tmp_path):
    """The report's own script, run by Chromium: a click on the layers table's ``macs`` header
    sorts it ascending, a second click descending. The page is the report with a script
    appended that clicks (and records the page's width), so the DOM that Chromium dumps is
    the DOM after sorting."""
    report, path = page
    clicks = tmp_path / "clicked.html"
    clicker = """<script>
      var table = document.getElementById("layers");
      var header = Array.prototype.find.call(table.tHead.rows[0].cells,
                                             function (th) { return th.textContent.trim() === "macs"; });
      header.click(); header.click();
      document.body.setAttribute("data-scroll-width", document.documentElement.scrollWidth);
    </script>"""
    clicks.write_text(path.read_text(encoding="utf-8").replace("</body>", clicker + "</body>"),
                      encoding="utf-8")
    done = _chromium(tmp_path, "--dump-dom", "--window-size=1200,1800", clicks.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    # The wide layers table scrolls in its own box: the page is no wider than the window.
    width = int(done.stdout.split('data-scroll-width="', 1)[1].split('"', 1)[0])
    assert width <= 1200, width
    # every node of the report is a row, once
    rows = Rows(done.stdout, "layers").rows
    assert sorted(rows) == sorted(report.layers.index)
    # conv2 8*8*(3*3*8)*16 = 73,728 MACs; conv1 16*16*27*8 = 55,296; dense 16*4 = 64
    assert rows[:3] == ["conv2", "conv1", "dense"]
    macs = report.layers["macs"]
    assert list(macs.loc[rows]) == sorted(macs, reverse=True)
