"""Rendering helpers shared by the reports (pandas and matplotlib only: no Keras import).

The plots and the HTML document are drawn here from plain values (columns, positions, boxes);
``report.py`` passes them in, so the pictures can be tested by their data.
"""

from __future__ import annotations

import base64
import html
import io
import numbers
import re
from typing import Any, Optional, Sequence

import pandas as pd

from modelstats import schema


def pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               right: Sequence[bool] = ()) -> str:
    """Cells already formatted as a Markdown pipe table; ``right[i]`` aligns column i right
    (numbers), all left by default."""
    rules = ["---:" if i < len(right) and right[i] else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules) + "|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def markdown_table(frame: pd.DataFrame, float_format: str = "{}", index_label: str = "") -> str:
    """A DataFrame as a Markdown table: integers with thousands separators, ``<NA>`` as n/a,
    floats through ``float_format``; each column keeps its own type."""
    columns = [str(frame.index.name or index_label), *map(str, frame.columns)]
    rows = []
    for index, *values in frame.itertuples(name=None):
        cells = [str(index)]
        for value in values:
            if value is pd.NA:
                cells.append("n/a")
            elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
                cells.append(f"{value:,}")
            elif isinstance(value, float):
                cells.append(float_format.format(value))
            else:
                cells.append(str(value))
        rows.append(cells)
    return pipe_table(columns, rows)


def is_missing(value: Any) -> bool:
    """None, ``<NA>`` or NaN: a value the tables show as missing."""
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def text_cell(value: Any, missing: str = "-") -> str:
    """One value as text: integers (also integral floats) with thousands separators."""
    if is_missing(value):
        return missing
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return f"{int(value):,}"
    return str(value)


def summary_rows(
    frame: pd.DataFrame, columns: Sequence[schema.Column], missing: str = "-"
) -> tuple[list[str], list[list[str]], list[bool]]:
    """The short table of a report (CLI ``table`` format, Markdown) as text.

    A per-axis template becomes one column (``rf_size``: ``"3x3"``), left out when the frame has
    no spatial axes; shapes show the first output; an unsupported row's type says so, since its
    missing counts would otherwise read like a formatting gap.

    Returns
    -------
    header, rows, numeric
        Column headers (without the index), one list of cells per row (the node id first) and,
        per header, whether the column holds numbers (to right-align them).
    """
    axes = schema.axes_of(frame.columns)
    shown: list[tuple[schema.Column, list[str]]] = []
    for c in columns:
        names = [e.name for e in c.expand(axes) if e.name in frame.columns]
        if names:
            shown.append((c, names))
    rows = []
    for node, row in frame.iterrows():
        cells = [str(node)]
        for c, names in shown:
            if c.is_template:
                parts = [text_cell(row[n], missing) for n in names]
                cells.append(missing if all(p == missing for p in parts) else "x".join(parts))
            elif c.dtype == "shapes":
                shapes = row[c.name]
                cells.append(str(tuple(shapes[0])) if shapes else missing)
            else:
                cells.append(text_cell(row[c.name], missing))
                if c.name == "type" and row.get("status") == "unsupported":
                    cells[-1] += " (unsupported)"
        rows.append(cells)
    header = [c.stem for c, _ in shown]
    numeric = [c.dtype in ("int", "float") for c, _ in shown]
    return header, rows, numeric


def view_rows(
    frame: pd.DataFrame, missing: str = "-"
) -> tuple[list[str], list[list[str]], list[bool]]:
    """The short table of a per-block or per-type view (``Report.by_block``, ``by_type``).

    Shows ``nodes``, the summed columns of the short tables (``params``, ``macs``, ``flops``)
    and ``unsupported``; returns what :func:`summary_rows` returns.
    """
    names = ["nodes", *(c.name for c in schema.cli_table() if c.summed and c.name in frame),
             "unsupported"]
    rows = [[str(key), *(text_cell(row[n], missing) for n in names)]
            for key, row in frame.iterrows()]
    return names, rows, [True] * len(names)


#: The line under a view with partial rows.
PARTIAL_NOTE = ("partial: a row with unsupported nodes sums the known MACs and FLOPs only "
                "(a lower bound)")


def pyplot():
    """matplotlib.pyplot on a non-interactive backend, or a clear message if it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Plots need matplotlib: pip install 'modelstats[plot]'") from exc
    return plt


def last_feature_map(layers: pd.DataFrame) -> Optional[str]:
    """The last node in graph order whose receptive field is positional (``rf_status`` is
    ``spatial``): the last feature map before pooling or flattening. None without one."""
    if "rf_status" not in layers.columns:
        return None
    spatial = layers.index[layers["rf_status"] == "spatial"]
    return str(spatial[-1]) if len(spatial) else None


def per_axis(row: Any, quantity: str, axes: Sequence[str], missing: str = "-") -> str:
    """``"491x491"``: one receptive-field quantity of a row, its axes joined."""
    values = [text_cell(row.get(f"rf_{quantity}_{a}"), missing) for a in axes]
    return missing if all(v == missing for v in values) else "x".join(values)


# -- plots -------------------------------------------------------------------------------------

#: What one unit of a rankable column counts, for axis labels and titles.
UNITS = {"flops": "FLOPs", "macs": "MACs", "params": "parameters",
         "trainable_params": "trainable parameters", "activations": "activation elements",
         "activation_bytes": "B"}
_GLUED = ("FLOPs", "MACs", "B")  # written after the prefix without a space: MFLOPs, MB


def si_scale(value: float) -> tuple[float, str]:
    """The power of 1000 and its SI prefix that bring ``value`` below 1000.

    Examples
    --------
    >>> si_scale(40_140_800)
    (1000000.0, 'M')
    >>> si_scale(12)
    (1.0, '')
    """
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return factor, prefix
    return 1.0, ""


def unit_label(column: str, prefix: str = "") -> str:
    """The unit of a rankable column with an SI prefix.

    Examples
    --------
    >>> unit_label("flops", "M"), unit_label("params", "k"), unit_label("activation_bytes", "M")
    ('MFLOPs', 'k parameters', 'MB')
    """
    unit = UNITS.get(column, column)
    return prefix + unit if unit in _GLUED else f"{prefix} {unit}".strip()


def with_unit(value: float, column: str) -> str:
    """``625_162_172, "flops"`` -> ``"625.2 MFLOPs"``.

    Examples
    --------
    >>> with_unit(625_162_172, "flops"), with_unit(112, "params")
    ('625.2 MFLOPs', '112 parameters')
    """
    factor, prefix = si_scale(value)
    number = f"{value / factor:,.1f}" if factor > 1 else f"{value:,.0f}"
    return f"{number} {unit_label(column, prefix)}"


def stage_starts(strides: Sequence[Any]) -> list[tuple[int, Any]]:
    """Where a new resolution stage starts, in graph order: each position whose stride is larger
    than every stride before it, with that stride. Missing strides (global or unknown fields)
    are skipped, and a branch returning to a finer map starts no stage.

    Examples
    --------
    >>> stage_starts([1, 1, 2, 2, None, 4, 2, 8])
    [(2, 2), (5, 4), (7, 8)]
    """
    starts: list[tuple[int, Any]] = []
    largest = None
    for position, stride in enumerate(strides):
        if is_missing(stride):
            continue
        if largest is not None and stride > largest:
            starts.append((position, stride))
        largest = stride if largest is None else max(largest, stride)
    return starts


def runs(keys: Sequence[Optional[str]]) -> list[tuple[int, int, str]]:
    """Consecutive runs ``(first, last, key)`` of equal keys; None keys start no run.

    Examples
    --------
    >>> runs([None, "a", "a", None, "b"])
    [(1, 2, 'a'), (4, 4, 'b')]
    """
    found: list[tuple[int, int, str]] = []
    for position, key in enumerate(keys):
        if key is None:
            continue
        if found and found[-1][2] == key and found[-1][1] == position - 1:
            found[-1] = (found[-1][0], position, key)
        else:
            found.append((position, position, key))
    return found


def short_names(nodes: Sequence[str]) -> list[str]:
    """Each node id's last component, or the whole id where the last component is not unique
    among ``nodes``.

    Examples
    --------
    >>> short_names(["base/Conv_1", "block/conv", "block#1/conv"])
    ['Conv_1', 'block/conv', 'block#1/conv']
    """
    last = [str(n).split("/")[-1] for n in nodes]
    return [s if last.count(s) == 1 else str(n) for n, s in zip(nodes, last)]


def draw_cost(ax, values: Sequence[float], column: str, names: Sequence[str],
              top: Sequence[int], stages: Sequence[tuple[int, Any]],
              blocks: Sequence[tuple[int, int, str]], batch_size: int = 1):
    """Bars of one cost per node in graph order, in SI units (``MFLOPs``).

    The ``top`` positions are red and named on the x axis; a dashed line and its stride mark
    where each resolution stage starts (``stages``, from :func:`stage_starts`); nested blocks
    (``blocks``, from :func:`runs`) are shaded and named above the axes. Artists carry a
    ``gid`` (``"stage"``, ``"block"``) so tests can find them.
    """
    factor, prefix = si_scale(max(values, default=0))
    chosen = set(top)
    colours = ["tab:red" if i in chosen else "tab:blue" for i in range(len(values))]
    ax.bar(range(len(values)), [v / factor for v in values], color=colours, width=1.0,
           gid="cost")
    for shade, (first, last, name) in enumerate(blocks):
        ax.axvspan(first - 0.5, last + 0.5, color="0.94" if shade % 2 == 0 else "0.88",
                   zorder=0, gid="block")
        if last - first + 1 >= 0.04 * len(values):  # a name wider than its block would overlap
            ax.text((first + last) / 2, 1.0, name, transform=ax.get_xaxis_transform(),
                    fontsize=8, va="bottom", ha="center", color="0.3", gid="block-label")
    for position, stride in stages:
        ax.axvline(position - 0.5, color="0.4", linestyle="--", linewidth=0.8, gid="stage")
        ax.text(position - 0.5, 0.98, f"stride {text_cell(stride)} ",
                transform=ax.get_xaxis_transform(), fontsize=7, rotation=90, va="top",
                ha="right", color="0.35", gid="stage-label")
    ordered = sorted(chosen)
    ax.set_xticks(ordered)
    ax.set_xticklabels([names[i] for i in ordered], rotation=90, fontsize=7, color="tab:red")
    ax.set_xlim(-0.5, len(values) - 0.5)
    ax.set_xlabel(f"layers in graph order (the top {len(ordered)} named, in red; dashed: a "
                  "new stride)")
    ax.set_ylabel(f"{unit_label(column, prefix)} per layer" + (
        f" (batch {batch_size})" if batch_size != 1 else ""))
    ax.set_title(f"{UNITS.get(column, column)} per layer: total "
                 f"{with_unit(sum(values), column)}", pad=16 if blocks else 6)
    return ax


def field_unit(graph: Any, rf_input: Optional[str]) -> str:
    """What a field is counted in: ``"tokens"`` when it is measured on token ids (a text
    model's input, read by an Embedding), ``"px"`` otherwise."""
    from modelstats.graph import is_integer_dtype

    return "tokens" if rf_input in graph and is_integer_dtype(graph.nodes[rf_input]["dtype"]) \
        else "px"


def draw_field_growth(ax, sizes: Sequence[float], strides: Sequence[float], names: Sequence[str],
                      stages: Sequence[tuple[int, Any]], input_size: Optional[int],
                      axis: str = "x", unit: str = "px"):
    """Receptive-field size and stride along one axis through the network (log scale), with the
    input size (a dotted line, ``gid="input-size"``), the first layer whose field is wider than
    the input (``gid="exceeds"``) and the start of each stride stage (``gid="stage"``).
    ``unit``: what sizes are counted in (``px``, ``tokens``)."""
    positions = list(range(len(sizes)))
    ax.plot(positions, sizes, color="tab:blue", label=f"field size ({unit})", gid="size")
    ax.plot(positions, strides, color="tab:orange", drawstyle="steps-post",
            label=f"stride ({unit} between neighbouring units)", gid="stride")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter

    # Pixels read as 1, 10, 100 (and render faster than matplotlib's 10^n mathtext).
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    for position, stride in stages:
        ax.axvline(position, color="0.5", linestyle="--", linewidth=0.8, gid="stage")
        ax.text(position, 0.98, f"stride {text_cell(stride)} ", transform=ax.get_xaxis_transform(),
                fontsize=7, rotation=90, va="top", ha="right", color="0.35", gid="stage-label")
    if input_size:
        ax.axhline(input_size, color="black", linestyle=":", linewidth=1, gid="input-size",
                   label=f"input size ({input_size} {unit})")
        wider = next((i for i, s in enumerate(sizes) if not is_missing(s) and s > input_size),
                     None)
        if wider is not None:
            ax.plot([wider], [sizes[wider]], "o", color="tab:red", gid="exceeds",
                    label=f"first field wider than the input: {names[wider]}")
    ax.set_xlim(-0.5, max(len(sizes) - 0.5, 0.5))
    ax.set_xlabel("layers in graph order")
    ax.set_ylabel("input pixels (log scale)")
    ax.set_title(f"Receptive field growth along {axis}")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def synthetic_image(height: int, width: int):
    """A neutral test card of the input's size: a soft gradient with a grid every 16 pixels,
    so a field box has something to be drawn on when no photo is given.

    Examples
    --------
    >>> synthetic_image(32, 48).shape
    (32, 48, 3)
    """
    import numpy as np

    y, x = np.mgrid[0:height, 0:width]
    base = 0.75 + 0.15 * (x / max(width - 1, 1)) - 0.1 * (y / max(height - 1, 1))
    base[(y % 16 == 0) | (x % 16 == 0)] -= 0.15
    return np.stack([base, base, base * 1.05], axis=-1).clip(0, 1)


def draw_field_box(ax, image: Any, height: int, width: int,
                   box: Sequence[tuple[int, int]], clipped: Optional[Sequence[tuple[int, int]]],
                   centres: Sequence[tuple[float, float]], title: str,
                   centre: Optional[tuple[float, float]] = None):
    """One unit's receptive field over the model's input image.

    ``image`` is stretched onto the ``height`` x ``width`` input grid (the picture as the model
    sees it; None draws :func:`synthetic_image`). ``box`` is the unit's ``(first, last)`` pixel
    per axis (y, x), drawn in red (``gid="field"``) even where it reaches past the image;
    ``clipped`` (dashed, ``gid="field-clipped"``) the pixels it actually depends on;
    ``centres`` marks the centres of the map's units, one stride apart (``gid="centres"``),
    and ``centre`` the drawn unit's own (``gid="unit-centre"``).
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    picture = synthetic_image(height, width) if image is None else np.asarray(image)
    if picture.ndim == 3 and picture.shape[-1] == 1:
        picture = picture[..., 0]
    if picture.dtype.kind == "f" and picture.size and float(np.nanmax(picture)) > 1.0:
        picture = picture / 255.0  # floats in 0..255, as keras.utils.img_to_array gives
    ax.imshow(picture, extent=(-0.5, width - 0.5, height - 0.5, -0.5),
              cmap="gray" if picture.ndim == 2 else None, gid="image")
    ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, edgecolor="black",
                           linewidth=1, gid="input"))
    (y0, y1), (x0, x1) = box
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False,
                           edgecolor="tab:red", linewidth=2, gid="field",
                           label=f"receptive field {y1 - y0 + 1} x {x1 - x0 + 1} px"))
    if clipped is not None and tuple(clipped) != tuple(box):
        (cy0, cy1), (cx0, cx1) = clipped
        ax.add_patch(Rectangle((cx0 - 0.5, cy0 - 0.5), cx1 - cx0 + 1, cy1 - cy0 + 1,
                               fill=False, edgecolor="tab:orange", linewidth=1.5,
                               linestyle="--", gid="field-clipped",
                               label="pixels it depends on (inside the image)"))
    if centres:
        ys, xs = zip(*centres)
        ax.plot(xs, ys, ".", color="tab:blue", markersize=4, gid="centres",
                label="centres of the map's units")
    if centre is not None:
        ax.plot([centre[1]], [centre[0]], "x", color="tab:red", markersize=9, mew=2,
                gid="unit-centre", label="the unit's centre")
    left, right = min(-0.5, x0 - 0.5), max(width - 0.5, x1 + 0.5)
    top, bottom = min(-0.5, y0 - 0.5), max(height - 0.5, y1 + 0.5)
    margin = 0.03 * max(right - left, bottom - top)
    ax.set_xlim(left - margin, right + margin)
    ax.set_ylim(bottom + margin, top - margin)  # image rows grow downwards
    ax.set_aspect("equal")
    ax.set_xlabel("x (input pixels)")
    ax.set_ylabel("y (input pixels)")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper right", fontsize=7, framealpha=0.9)
    return ax


def figure_png(ax, dpi: int = 90) -> bytes:
    """The figure of ``ax`` as PNG bytes; the figure is closed."""
    plt = pyplot()
    buffer = io.BytesIO()
    try:
        ax.figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(ax.figure)
    return buffer.getvalue()


# -- HTML --------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
.table-wrap { overflow-x: auto; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f5f5f5; }
table.sortable th:hover { background: #e8e8e8; }
.warning { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.6em; }
.note { color: #555; font-size: 0.9em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
"""

# Click a header to sort by it (numbers with thousands separators sort as numbers).
_SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var ascending = th.getAttribute("data-order") !== "asc";
    th.setAttribute("data-order", ascending ? "asc" : "desc");
    var key = function (row) {
      var text = row.children[index].textContent.trim(), bare = text.replace(/,/g, "");
      return /^-?\\d+(\\.\\d+)?$/.test(bare) ? parseFloat(bare) : text;
    };
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      var c = (typeof x === "number" && typeof y === "number") ? x - y
              : String(x).localeCompare(String(y));
      return ascending ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""


_NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?$")


def html_table(header: Sequence[str], rows: Sequence[Sequence[str]], table_id: str,
               sortable: bool = False) -> str:
    """Cells already formatted as an HTML table (escaped here); numbers are right-aligned."""
    css = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "\n".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(c)}</td>' if _NUMBER.match(c)
            else f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"
        for cells in rows
    )
    # (in a box that scrolls sideways: the layers table has some thirty columns, wider
    # than the page, which would otherwise scroll as a whole)
    return (f'<div class="table-wrap"><table id="{table_id}"{css}>\n'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>")


def html_figure(png: bytes, alt: str, caption: str, figure_id: str) -> str:
    """A PNG embedded as a base64 data URI: the page needs no other file."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{figure_id}"><img src="data:image/png;base64,{data}" '
            f'alt="{html.escape(alt)}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def html_page(title: str, body: Sequence[str]) -> str:
    """One self-contained HTML document: inline style and script, no external resource."""
    from modelstats import __version__

    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        *body,
        f'<p class="note">Written by modelstats {html.escape(__version__)}.</p>',
        f"<script>{_SORT_JS}</script>",
        "</body>",
        "</html>",
        "",
    ])


def totals_rows(totals: dict) -> list[list[str]]:
    """``Report.totals`` as (name, value) cells: integers with separators, lists joined."""
    rows = []
    for key, value in totals.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(map(str, value)) or "none"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {text_cell(v)}" for k, v in value.items())
        rows.append([str(key), text_cell(value, missing="n/a")])
    return rows


def comparison_rows(frame: pd.DataFrame, missing: str = "-"
                    ) -> tuple[list[str], list[list[str]], list[bool]]:
    """The table of :func:`modelstats.compare` as text: per-axis fields joined (``491x491``).

    Returns what :func:`summary_rows` returns (headers without the index).
    """
    axes = schema.axes_of(frame.columns)
    header: list[str] = []
    numeric: list[bool] = []
    for name in frame.columns:
        if name.startswith(("rf_size_", "rf_stride_")):
            stem = name.rsplit("_", 1)[0]
            if stem not in header:
                header.append(stem)
                numeric.append(False)
        else:
            header.append(str(name))
            numeric.append(pd.api.types.is_numeric_dtype(frame[name])
                           and not pd.api.types.is_bool_dtype(frame[name]))
    rows = []
    for key, row in frame.iterrows():
        cells = [str(key)]
        for name in header:
            if name in ("rf_size", "rf_stride"):
                cells.append(per_axis(row, name[3:], axes, missing))
            else:
                cells.append(text_cell(row[name], missing))
        rows.append(cells)
    return header, rows, numeric


def report_html(report: Any, *, top: int = 10, by: str = "flops", depth: int = 1,
                plots: bool = True, device: Any = None) -> str:
    """The document of :meth:`modelstats.Report.to_html` (see there for its sections)."""
    t = report.totals
    name = str(report.graph.graph.get("name", "model"))
    axes = schema.axes_of(report.layers.columns)
    body = [f"<h1>{html.escape(name)}</h1>",
            f'<p class="summary">{len(report.layers):,} operation calls; '
            f"{t['params']:,} parameters ({t['trainable_params']:,} trainable); "
            f"{with_unit(t['macs'], 'macs')}, {with_unit(t['flops'], 'flops')} at batch "
            f"{t['batch_size']}.</p>",
            f'<p class="convention">Convention: {html.escape(report.convention)} '
            "(docs/conventions.md).</p>"]
    if t["partial"]:
        body.append(f'<p class="warning" id="partial">Partial totals: no cost rule for '
                    f"{html.escape(', '.join(t['unsupported']))}. Their MACs and FLOPs are "
                    "unknown, so the totals are a lower bound.</p>")
    body += ["<h2>Totals</h2>",
             html_table(["total", "value"], totals_rows(t), "totals")]

    last = last_feature_map(report.layers)
    if last is not None:
        row = report.layers.loc[last]
        body += ["<h2>Receptive field</h2>",
                 f'<p id="field">The last feature map <code>{html.escape(last)}</code> sees '
                 f"{per_axis(row, 'size', axes)} input pixels per unit, with a stride of "
                 f"{per_axis(row, 'stride', axes)} and an effective padding of "
                 f"{per_axis(row, 'padding', axes)} (measured from input "
                 f"<code>{html.escape(str(t.get('rf_input')))}</code>).</p>"]

    heading, rows = report._view(top, by)
    header, cells, _ = summary_rows(rows, schema.cli_table(), missing="n/a")
    body += [f"<h2>{html.escape(heading)}</h2>",
             html_table(["node", *header], cells, "top-layers", sortable=True)]
    blocks = report.by_block(depth)
    header, cells, _ = view_rows(blocks, missing="n/a")
    body += [f"<h2>Cost by block (depth {depth})</h2>",
             html_table(["block", *header], cells, "blocks", sortable=True)]
    if blocks["partial"].any():
        body.append(f'<p class="note">{html.escape(PARTIAL_NOTE)}.</p>')

    bound = None
    if device is not None:
        from modelstats.latency import roofline

        bound = roofline(report, device)
        worst = bound.memory_bound(top)
        body += ["<h2>Roofline</h2>",
                 f'<p id="roofline">On {html.escape(bound.device.name)} one pass takes at '
                 f"least {bound.total_s * 1e3:,.3f} ms (batch {t['batch_size']}: each call "
                 "at the slower of its compute and its memory traffic"
                 + ("; partial: some calls have no count" if bound.partial else "")
                 + "; docs/roofline.md).</p>",
                 html_table(["node", "type", "FLOPs/byte", "memory us", "roofline us"],
                            [[str(node), str(row["type"]), f"{float(row['intensity']):.2f}",
                              f"{float(row['t_memory_s']) * 1e6:,.1f}",
                              f"{float(row['t_roofline_s']) * 1e6:,.1f}"]
                             for node, row in worst.iterrows()], "memory-bound")]
    if plots:
        body.append("<h2>Plots</h2>")
        try:
            pyplot()
        except ImportError as exc:
            body.append(f'<p class="note" id="no-plots">{html.escape(str(exc))}</p>')
        else:
            body += _report_figures(report, top, by, last)
            if bound is not None:
                body.append(html_figure(
                    figure_png(bound.plot()), "roofline",
                    f"Every call under the roof of {bound.device.name}: arithmetic intensity "
                    "against attained FLOP/s.", "plot-roofline"))

    header, cells, _ = summary_rows(report.layers, schema.cli_table(), missing="n/a")
    body += [f"<h2>All {len(report.layers)} layers</h2>",
             '<p class="note">In graph order; click a column header to sort.</p>',
             html_table(["node", *header], cells, "layers", sortable=True)]
    return html_page(f"modelstats: {name}", body)


def _report_figures(report: Any, top: int, by: str, last: Optional[str]) -> list[str]:
    figures = [html_figure(
        figure_png(report.plot_cost(top, by)), f"{by} per layer",
        f"{UNITS.get(by, by)} per layer in graph order; the top {top} are named.", "plot-cost")]
    if schema.axes_of(report.layers.columns):
        figures.append(html_figure(
            figure_png(report.plot_receptive_field()), "receptive field growth",
            "Receptive-field size and stride through the network; the dotted line is the "
            "input size.", "plot-field"))
        if last is not None and len(schema.axes_of(report.layers.columns)) == 2:
            figures.append(html_figure(
                figure_png(report.plot_receptive_field(layer=last)), "field of one unit",
                f"The receptive field of the centre unit of {last} on the input grid.",
                "plot-box"))
    return figures
