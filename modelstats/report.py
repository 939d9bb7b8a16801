"""Public entry points and the reporting edge: the only module that builds pandas objects."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional

import networkx as nx
import pandas as pd

from modelstats import layers as _layers  # noqa: F401 - registers the built-in rules
from modelstats.cost import Convention, node_costs
from modelstats._render import markdown_table, pyplot
from modelstats.errors import user_stacklevel
from modelstats.graph import to_networkx
from modelstats.propagation import (
    MultipleSpatialInputsWarning,
    ReceptiveField,
    axis_names,
    propagate,
    spatial_inputs,
)

__all__ = ["receptive_field", "count_flops", "analyze", "Report"]


def _graph(model: Any, input_shape: Any, expand_nested: bool = True) -> nx.DiGraph:
    if isinstance(model, nx.DiGraph):
        return model
    return to_networkx(model, expand_nested=expand_nested, input_shape=input_shape)


def _find_node(graph: nx.DiGraph, layer: str) -> str:
    if layer in graph:
        return layer
    matches = [n for n, d in graph.nodes(data=True) if d["name"] == layer]
    if len(matches) == 1:
        return matches[0]
    from modelstats.errors import ModelStatsError

    if matches:
        raise ModelStatsError(
            f"Layer name {layer!r} is called at several nodes {matches}; pass a node id."
        )
    raise ModelStatsError(
        f"No node or layer named {layer!r} in the model; node ids look like "
        f"{list(graph.nodes)[:3]}."
    )


def _value(v):
    """Fractions become floats in tables (exact values stay on ReceptiveField)."""
    return float(v) if isinstance(v, Fraction) else v


def _field_columns(propagation, nodes) -> dict[str, list]:
    """Receptive-field columns, one list per column (a frame is built once, column-wise)."""
    names = axis_names(propagation.n_axes)
    columns: dict[str, list] = {"rf_status": []}
    for quantity in ("size", "stride", "padding"):
        for axis in names:
            columns[f"rf_{quantity}_{axis}"] = []
    columns.update(rf_aligned=[], rf_global_context=[], rf_note=[])
    for node_id in nodes:
        rf = propagation.field(node_id)
        columns["rf_status"].append(rf.status)
        for quantity in ("size", "stride", "padding"):
            values = getattr(rf, quantity)
            for i, axis in enumerate(names):
                columns[f"rf_{quantity}_{axis}"].append(
                    None if values is None else _value(values[i])
                )
        columns["rf_aligned"].append(rf.aligned)
        columns["rf_global_context"].append(rf.global_context)
        columns["rf_note"].append(rf.note)
    return columns


_NULLABLE_INTEGERS = ("macs", "flops")  # <NA> on unsupported rows


def _frame(graph: nx.DiGraph, columns: dict[str, list]) -> pd.DataFrame:
    data = {
        name: pd.array(values, dtype="Int64") if name in _NULLABLE_INTEGERS else values
        for name, values in columns.items()
    }
    return pd.DataFrame(data, index=pd.Index(list(graph.nodes), name="node"))


def receptive_field(
    model: Any,
    layer: Optional[str] = None,
    *,
    input_shape: Any = None,
    input: Optional[str] = None,
    strict: bool = False,
) -> "ReceptiveField | pd.DataFrame":
    """Receptive field of one layer, or of every node as a table.

    Parameters
    ----------
    model : keras.Model or networkx.DiGraph
        A Functional or Sequential model, or a graph from :func:`to_networkx`.
    layer : str, optional
        A node id (``"mobilenetv2_1.00_224/Conv_1"``) or a layer name called once.
    input_shape : tuple, optional
        Input shape without batch, replacing the model's (e.g. for ``None`` sizes).
    input : str, optional
        The model input to measure on, for models with several image-like inputs.
    strict : bool, default False
        Raise :class:`MisalignedMergeError` at a misaligned merge instead of warning.

    Returns
    -------
    ReceptiveField or pandas.DataFrame
        With ``layer``: its field (``size``, ``stride``, ``padding`` per axis, ``box()``,
        ``center()``). Without: one row per node with per-axis columns ``rf_size_y``, ...

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((32, 32, 3))
    >>> y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(x)
    >>> y = keras.layers.Conv2D(4, 3, dilation_rate=2, name="c2")(y)
    >>> rf = modelstats.receptive_field(keras.Model(x, y), "c2")
    >>> rf.size, rf.stride, rf.padding
    ((11, 11), (2, 2), (0, 0))
    >>> rf.box((0, 0))
    ((0, 10), (0, 10))
    """
    graph = _graph(model, input_shape)
    propagation = propagate(graph, input, strict=strict)
    if layer is not None:
        return propagation.field(_find_node(graph, layer))
    types = [data["type"] for _, data in graph.nodes(data=True)]
    return _frame(graph, {"type": types, **_field_columns(propagation, graph.nodes)})


def _cost_columns(graph: nx.DiGraph, records, batch_size: int) -> dict[str, list]:
    names = ("type", "input_shape", "output_shape", "params", "trainable_params", "macs",
             "flops", "activations", "activation_bytes", "status", "note")
    columns: dict[str, list] = {name: [] for name in names}
    for record in records:
        data = graph.nodes[record.node]
        # Unknown is not zero: an unsupported node's work is missing (<NA>), never counted as 0.
        known = record.status != "unsupported"
        values = (
            record.type,
            [list(s) for s in data["input_shapes"]],
            [list(s) for s in data["output_shapes"]],
            data["params"],
            data["trainable_params"],
            record.cost.macs * batch_size if known else None,
            record.flops * batch_size if known else None,
            record.activations * batch_size,
            record.activation_bytes * batch_size,
            record.status,
            record.reason,
        )
        for name, value in zip(names, values):
            columns[name].append(value)
    return columns


def _cost_table(graph, batch_size, strict, convention, options) -> tuple[dict, dict]:
    """Cost columns and the frame attributes (convention, partial, batch size)."""
    chosen = _convention(convention, options)
    records = node_costs(graph, chosen, strict=strict)
    columns = _cost_columns(graph, records, batch_size)
    attrs = {
        "convention": chosen.describe(),
        "partial": "unsupported" in columns["status"],
        "batch_size": batch_size,
    }
    return columns, attrs


def _convention(convention: Optional[str], options: dict) -> Convention:
    base = Convention.preset(convention or "default")
    fields = {"elementwise", "bias", "fold_batchnorm"}
    unknown = set(options) - fields
    if unknown:
        raise TypeError(f"unknown convention option(s) {sorted(unknown)}; expected {sorted(fields)}")
    return Convention(**{**base.__dict__, **options})


def count_flops(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    convention: Optional[str] = None,
    expand_nested: bool = True,
    **options: bool,
) -> pd.DataFrame:
    """MACs, FLOPs, parameters and activation memory of every call node.

    Parameters
    ----------
    model : keras.Model or networkx.DiGraph
    input_shape : tuple, optional
        Input shape without batch (required when the model has unknown sizes).
    batch_size : int, default 1
        Multiplies MACs, FLOPs and activations (parameters are per model).
    strict : bool, default False
        Raise :class:`UnsupportedLayerError` listing every layer class without a rule, instead of
        warning and marking rows ``unsupported``.
    convention : {"default", "macs_only", "folded"}, optional
        A preset; ``**options`` (``elementwise``, ``bias``, ``fold_batchnorm``) refine it.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id, columns ``type``, ``input_shape``, ``output_shape``, ``params``,
        ``trainable_params``, ``macs``, ``flops``, ``activations``, ``activation_bytes``,
        ``status`` (``counted``, ``zero`` or ``unsupported``) and ``note``. The frame's
        ``attrs`` hold the convention and whether the totals are partial.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((8, 8, 3))
    >>> y = keras.layers.Conv2D(4, 3, use_bias=False, name="conv")(x)
    >>> table = modelstats.count_flops(keras.Model(x, y))
    >>> int(table.loc["conv", "macs"])  # 6*6 positions * 3*3 taps * 3 in * 4 out
    3888
    >>> int(table.loc["conv", "flops"])
    7776
    """
    graph = _graph(model, input_shape, expand_nested)
    columns, attrs = _cost_table(graph, batch_size, strict, convention, options)
    frame = _frame(graph, columns)
    frame.attrs.update(attrs)
    return frame


@dataclass
class Report:
    """Receptive fields and costs of every node of a model, with totals and exports.

    Build it with :func:`analyze`.
    """

    layers: pd.DataFrame
    totals: dict
    convention: str
    graph: nx.DiGraph = field(repr=False)
    _propagation: Any = field(default=None, repr=False)

    def top(self, k: int = 10, by: str = "flops") -> pd.DataFrame:
        """The ``k`` most expensive nodes by a column; ties keep graph order."""
        return self.layers.sort_values(by, ascending=False, kind="stable").head(k)

    def receptive_field(self, layer: str) -> ReceptiveField:
        """The :class:`ReceptiveField` of one node id or layer name."""
        if self._propagation is None:
            from modelstats.errors import ModelStatsError

            raise ModelStatsError("This model has no input with spatial axes.")
        return self._propagation.field(_find_node(self.graph, layer))

    # -- exports --------------------------------------------------------------------------
    def to_csv(self, path=None, **kwargs):
        """Per-node table as CSV (returns the text when ``path`` is None)."""
        return self.layers.to_csv(path, **kwargs)

    def to_dict(self) -> dict:
        records = json.loads(self.layers.reset_index().to_json(orient="records"))
        return {"convention": self.convention, "totals": self.totals, "layers": records}

    def to_json(self, path=None, indent: int = 2):
        """Totals, convention and per-node rows as JSON (returns the text when ``path`` is None)."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return None

    def totals_table(self) -> pd.DataFrame:
        return pd.DataFrame({"value": self.totals}).rename_axis("total")

    def to_markdown(self, top: Optional[int] = 10, by: str = "flops") -> str:
        """Totals, convention and the ``top`` layers by ``by`` as a Markdown document
        (``top=None``: every layer, in graph order)."""
        t = self.totals
        columns = ["type", "output_shape", "macs", "flops", "params"]
        if top is None:
            heading, rows = f"All {len(self.layers)} layers, in graph order", self.layers
        else:
            heading, rows = f"Top {top} layers by {by}", self.top(top, by)
        lines = [
            f"# {self.graph.graph.get('name', 'model')}",
            "",
            f"- parameters: {t['params']:,} ({t['trainable_params']:,} trainable)",
            f"- MACs: {t['macs']:,}",
            f"- FLOPs: {t['flops']:,} ({self.convention})",
            f"- activation memory: {t['activation_bytes']:,} bytes",
            f"- totals partial: {t['partial']}"
            + (f" (a lower bound: no rule for {', '.join(t['unsupported'])})" if t["partial"] else ""),
            "",
            f"## {heading}",
            "",
            markdown_table(rows[columns], index_label="node"),
        ]
        return "\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        head = "".join(
            f"<tr><th>{k}</th><td>{v:,}</td></tr>" if isinstance(v, int) and not isinstance(v, bool)
            else f"<tr><th>{k}</th><td>{v}</td></tr>"
            for k, v in self.totals.items()
        )
        return f"<table>{head}</table>" + self.top(10).to_html()

    # -- plots ----------------------------------------------------------------------------
    def plot_cost(self, k: int = 10, by: str = "flops", ax=None):
        """Bar chart of ``by`` per node in graph order, the top ``k`` highlighted."""
        plt = pyplot()
        ax = ax or plt.subplots(figsize=(12, 4))[1]
        values = self.layers[by].astype("Float64").fillna(0).to_numpy(dtype=float)
        top = set(self.top(k, by).index)
        colours = ["tab:red" if n in top else "tab:blue" for n in self.layers.index]
        ax.bar(range(len(values)), values, color=colours, width=1.0)
        ax.set_xlabel("node (graph order)")
        ax.set_ylabel(by)
        ax.set_title(f"{by} per node; top {k} in red")
        return ax

    def plot_receptive_field(self, ax=None):
        """Receptive-field size and stride (first axis) through the network, in graph order."""
        plt = pyplot()
        ax = ax or plt.subplots(figsize=(12, 4))[1]
        size_cols = [c for c in self.layers.columns if c.startswith("rf_size_")]
        stride_cols = [c for c in self.layers.columns if c.startswith("rf_stride_")]
        if not size_cols:
            raise ValueError("no receptive-field columns: the model has no spatial input")
        positions = range(len(self.layers))
        ax.plot(positions, self.layers[size_cols[-1]].astype(float), label="size")
        ax.plot(positions, self.layers[stride_cols[-1]].astype(float), label="stride")
        ax.set_yscale("log")
        ax.set_xlabel("node (graph order)")
        ax.set_ylabel("input pixels")
        ax.set_title("Receptive field growth")
        ax.legend()
        return ax


def analyze(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    input: Optional[str] = None,
    convention: Optional[str] = None,
    expand_nested: bool = True,
    **options: bool,
) -> Report:
    """Receptive fields and costs of every node, joined, with totals.

    Parameters are those of :func:`count_flops` and :func:`receptive_field`.

    Returns
    -------
    Report
        ``report.layers`` (one row per node), ``report.totals``, ``report.top(k)``,
        ``report.receptive_field(layer)``, exports and plots.

    Examples
    --------
    >>> import keras, modelstats
    >>> x = keras.Input((16, 16, 3))
    >>> y = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    >>> y = keras.layers.MaxPooling2D(name="pool")(y)
    >>> report = modelstats.analyze(keras.Model(x, y))
    >>> report.totals["macs"]  # 16*16 * 3*3 * 3 * 8
    55296
    >>> report.receptive_field("pool").size
    (4, 4)
    """
    graph = _graph(model, input_shape, expand_nested)
    columns, attrs = _cost_table(graph, batch_size, strict, convention, options)
    spatial = spatial_inputs(graph)
    if input is None and len(spatial) > 1:
        input = spatial[0]
        warnings.warn(
            f"The model has several inputs with spatial axes {spatial}; receptive fields are "
            f"measured from '{input}'. Pass input= to choose another.",
            MultipleSpatialInputsWarning,
            stacklevel=user_stacklevel(),
        )
    propagation = propagate(graph, input, strict=strict) if spatial or input else None
    if propagation is not None:
        columns.update(_field_columns(propagation, graph.nodes))
    table = _frame(graph, columns)
    table.attrs.update(attrs)
    totals = {
        "params": int(table["params"].sum()),
        "trainable_params": int(table["trainable_params"].sum()),
        "macs": int(table["macs"].sum()),
        "flops": int(table["flops"].sum()),
        "activations": int(table["activations"].sum()),
        "activation_bytes": int(table["activation_bytes"].sum()),
        "partial": attrs["partial"],
        "unsupported": sorted(set(table.loc[table["status"] == "unsupported", "type"])),
        "batch_size": batch_size,
        "rf_input": None if propagation is None else propagation.input_node,
    }
    return Report(table, totals, attrs["convention"], graph, propagation)
