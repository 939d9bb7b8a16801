"""Rendering helpers shared by the reports (pandas and matplotlib only: no Keras import)."""

from __future__ import annotations

import numbers

import pandas as pd


def markdown_table(frame: pd.DataFrame, float_format: str = "{}", index_label: str = "") -> str:
    """A DataFrame as a Markdown table: integers with thousands separators, ``<NA>`` as n/a,
    floats through ``float_format``; each column keeps its own type."""
    columns = [str(frame.index.name or index_label), *map(str, frame.columns)]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
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
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib.pyplot on a non-interactive backend, or a clear message if it is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("Plots need matplotlib: pip install 'modelstats[plot]'") from exc
    return plt
