"""Several models side by side: one row per model, for choosing between them.

Each row holds a model's totals (parameters, MACs, FLOPs, activation memory) and the receptive
field of its last feature map, the numbers :func:`modelstats.analyze` gives for each model.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import pandas as pd

from modelstats import schema
from modelstats._render import is_missing, last_feature_map

__all__ = ["compare"]

#: The totals a comparison shows, in this order.
TOTALS = ("params", "trainable_params", "macs", "flops", "activations", "activation_bytes")


def _named(models: Any) -> dict[str, Any]:
    """``{name: model}`` from a mapping, or from a sequence named after each model; a repeated
    name gets ``#1``, ``#2`` (as repeated calls do in node ids)."""
    if isinstance(models, Mapping):
        return {str(k): v for k, v in models.items()}
    if isinstance(models, (str, bytes)) or not hasattr(models, "__iter__"):
        raise TypeError(
            "compare() takes a dict {name: model} or a list of models; received "
            f"{type(models).__name__}."
        )
    named: dict[str, Any] = {}
    for model in models:
        base = _name_of(model)
        name, repeat = base, 0
        while name in named:
            repeat += 1
            name = f"{base}#{repeat}"
        named[name] = model
    return named


def _name_of(model: Any) -> str:
    graph = getattr(model, "graph", None)
    if graph is not None and hasattr(graph, "graph"):  # a Report
        return str(graph.graph.get("name", "model"))
    if hasattr(model, "graph") and isinstance(getattr(model, "graph"), dict):  # a DiGraph
        return str(model.graph.get("name", "model"))
    return str(getattr(model, "name", "model"))


def _field(report: Any, axes: tuple[str, ...]) -> dict[str, Any]:
    """The last feature map and its per-axis size and stride (missing without one)."""
    node = last_feature_map(report.layers)
    values: dict[str, Any] = {"rf_node": node}
    for quantity in ("size", "stride"):
        for a in axes:
            column = f"rf_{quantity}_{a}"
            value = None if node is None or column not in report.layers else \
                report.layers.loc[node, column]
            values[column] = None if is_missing(value) else value
    return values


def _numbers(values: list) -> pd.Series:
    """Integers as nullable ``Int64`` (missing stays ``<NA>``); fractional fields as floats."""
    present = [v for v in values if v is not None]
    integral = all(float(v).is_integer() for v in present)
    return pd.Series([None if v is None else (int(v) if integral else float(v)) for v in values],
                     dtype="Int64" if integral else "Float64")


def compare(
    models: Union[Mapping[str, Any], Any],
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    convention: Any = None,
    expand_nested: bool = True,
    device: Any = None,
    **options: bool,
) -> pd.DataFrame:
    """Totals and last receptive field of several models, one row per model.

    Parameters
    ----------
    models : dict or list
        ``{name: model}``, or a list named after each model's ``name``. A model is a
        ``keras.Model``, a graph from :func:`to_networkx`, or a :class:`Report` already
        computed (then the options below do not apply to it).
    input_shape, batch_size, strict, convention, expand_nested, **options
        As for :func:`analyze`, applied to every model.
    device : Device or str, optional
        Add ``t_roofline_s``: each model's roofline lower-bound latency on that device, a
        catalogue name or ``"measured"`` (see :func:`modelstats.roofline`; for a partial
        model its uncounted calls add only their memory time).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``model``, in the given order: ``nodes``, ``params``, ``trainable_params``,
        ``macs``, ``flops`` (under the convention, at ``batch_size``), ``activations``,
        ``activation_bytes``, ``rf_node`` (the last feature map: the last node whose field is
        positional), ``rf_size_{axis}`` and ``rf_stride_{axis}`` for every spatial axis of any
        model (``<NA>`` where a model has none), and ``partial`` (True when some layer has no
        cost rule, so its MACs and FLOPs are a lower bound).

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((32, 32, 3))
    >>> wide = keras.Model(x, keras.layers.Conv2D(16, 3, name="conv")(x), name="wide")
    >>> y = keras.layers.Conv2D(4, 3, strides=2, name="c1")(x)
    >>> deep = keras.Model(x, keras.layers.Conv2D(4, 3, name="c2")(y), name="deep")
    >>> table = modelstats.compare([wide, deep])
    >>> table[["params", "macs", "rf_node", "rf_size_x", "rf_stride_x"]]
    ... # doctest: +NORMALIZE_WHITESPACE
           params    macs rf_node  rf_size_x  rf_stride_x
    model
    wide      448  388800    conv          3            1
    deep      260   48636      c2          7            2

    ``wide``: 30*30 positions * 27 * 16 MACs; ``deep``: 15*15 * 27 * 4 + 13*13 * 36 * 4.
    """
    from modelstats.report import Report, analyze

    named = _named(models)
    reports = {}
    for name, model in named.items():
        if isinstance(model, Report):
            reports[name] = model
        else:
            reports[name] = analyze(model, input_shape=input_shape, batch_size=batch_size,
                                    strict=strict, convention=convention,
                                    expand_nested=expand_nested, **options)
    axes = [a for a in ("z", "y", "x")
            if any(a in schema.axes_of(r.layers.columns) for r in reports.values())]
    extra = [a for r in reports.values() for a in schema.axes_of(r.layers.columns)
             if a not in axes]
    axes += list(dict.fromkeys(extra))  # beyond 3-D: axes named a0, a1, ...
    rows = []
    for report in reports.values():
        t = report.totals
        row: dict[str, Any] = {"nodes": len(report.layers)}
        row.update((name, t[name]) for name in TOTALS)
        row.update(_field(report, tuple(axes)))
        row["partial"] = bool(t["partial"])
        if device is not None:
            from modelstats.latency import roofline

            row["t_roofline_s"] = roofline(report, device).total_s
        rows.append(row)
    index = pd.Index(list(reports), name="model")
    columns = ["nodes", *TOTALS, "rf_node",
               *(f"rf_{q}_{a}" for q in ("size", "stride") for a in axes), "partial",
               *(["t_roofline_s"] if device is not None else [])]
    data: dict[str, Any] = {}
    for column in columns:
        values = [row[column] for row in rows]
        if column.startswith(("rf_size_", "rf_stride_")):
            data[column] = _numbers(values).array
        elif column == "rf_node":
            data[column] = pd.array(values, dtype=object)
        elif column == "partial":
            data[column] = pd.array(values, dtype=bool)
        elif column == "t_roofline_s":
            data[column] = pd.array(values, dtype="float64")
        else:
            data[column] = pd.array(values, dtype="int64")
    return pd.DataFrame(data, index=index)

