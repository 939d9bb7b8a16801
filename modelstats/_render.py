"""Rendering helpers shared by the reports (pandas and matplotlib only: no Keras import)."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import pandas as pd

from modelstats import schema


def pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Cells already formatted as a Markdown pipe table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
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
