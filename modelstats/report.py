"""Public entry points and the reporting edge: the only module that builds pandas objects.

What the tables hold is declared once in :mod:`modelstats.schema`: the columns and their dtypes,
batch scaling, totals and which columns can be ranked all come from there.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Optional, Sequence, Union

import networkx as nx
import pandas as pd

from modelstats import schema
from modelstats._render import PARTIAL_NOTE, pipe_table, pyplot, summary_rows, view_rows
from modelstats.cost import Convention, node_costs
from modelstats.errors import ModelStatsError, OptionError, UnknownOptionError, user_stacklevel
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


def _attribute(obj: Any, path: str) -> Any:
    """``obj.a.b`` for the path ``"a.b"`` (a column's ``cost:`` source)."""
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _field_columns(propagation, nodes, layout: Sequence[schema.Column]) -> dict[str, list]:
    """Receptive-field columns, one list per column (a frame is built once, column-wise)."""
    wanted = [c for c in layout if c.group == "field"]
    axes = schema.axes_of(c.name for c in wanted)
    columns: dict[str, list] = {c.name: [] for c in wanted}
    getters = [(columns[c.name], c.source.split(":", 1)[1],
                None if c.axis is None else axes.index(c.axis)) for c in wanted]
    for node_id in nodes:
        rf = propagation.field(node_id)
        for values, attribute, axis in getters:
            value = getattr(rf, attribute)
            if axis is not None:  # a per-axis tuple, None when the field has no numbers
                value = None if value is None else _value(value[axis])
            values.append(value)
    return columns


def _cost_columns(graph: nx.DiGraph, records, batch_size: int,
                  layout: Sequence[schema.Column]) -> dict[str, list]:
    """Cost columns from the node records and the graph, scaled by the batch size."""
    wanted = [(c, *c.source.split(":", 1)) for c in layout if c.group == "cost"]
    columns: dict[str, list] = {c.name: [] for c, _, _ in wanted}
    for record in records:
        data = graph.nodes[record.node]
        # Unknown is not zero: an unsupported node's work is missing (<NA>), never counted as 0.
        known = record.status != "unsupported"
        for c, kind, path in wanted:
            if c.nullable and not known:
                value = None
            else:
                value = data[path] if kind == "node" else _attribute(record, path)
            if c.dtype == "shapes":
                value = [list(s) for s in value]
            elif c.per_batch and value is not None:
                value = value * batch_size
            columns[c.name].append(value)
    return columns


def _frame(graph: nx.DiGraph, columns: dict[str, list],
           layout: Sequence[schema.Column]) -> pd.DataFrame:
    """The table in layout order, each column with its declared dtype (e.g. ``Int64`` for the
    counts, so an unsupported row is <NA> rather than a float NaN)."""
    index = pd.Index(list(graph.nodes), name="node")
    data = {}
    for c in layout:
        values = columns[c.name]
        dtype = c.pandas_dtype
        data[c.name] = pd.Series(values, index=index, dtype=dtype) if dtype else values
    return pd.DataFrame(data, index=index)


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
        ``center()``). Without: one row per node, ``type`` and the ``rf_*`` columns of
        :mod:`modelstats.schema` (per-axis ``rf_size_y``, ...).

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
    layout = (schema.column("type"),
              *schema.layout(axis_names(propagation.n_axes), groups=("field",)))
    columns = _field_columns(propagation, graph.nodes, layout)
    columns["type"] = [data["type"] for _, data in graph.nodes(data=True)]
    return _frame(graph, columns, layout)


def _convention(convention: Union[str, Convention, None], options: dict) -> Convention:
    """A preset name or a Convention, refined by keyword options (``bias=False``, ...)."""
    if convention is None:
        base = Convention()
    elif isinstance(convention, Convention):
        base = convention
    else:
        base = Convention.preset(convention)
    fields = [f.name for f in dataclasses.fields(Convention)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise UnknownOptionError(
            f"unknown convention option(s) {unknown}; the options are {fields} (each True or "
            "False), or pass convention=Convention(...)."
        )
    not_bool = {k: v for k, v in options.items() if not isinstance(v, bool)}
    if not_bool:
        raise OptionError(f"Convention options are True or False; received {not_bool}.")
    return dataclasses.replace(base, **options)


def _costs(graph: nx.DiGraph, batch_size: int, strict: bool, chosen: Convention,
           layout: Sequence[schema.Column]) -> tuple[dict, dict]:
    """Cost columns and the frame attributes (convention, partial, batch size)."""
    records = node_costs(graph, chosen, strict=strict)
    columns = _cost_columns(graph, records, batch_size, layout)
    attrs = {
        "convention": chosen.describe(),
        "partial": any(r.status == "unsupported" for r in records),
        "batch_size": batch_size,
    }
    return columns, attrs


def count_flops(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    convention: Union[str, Convention, None] = None,
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
        A positive integer multiplying MACs, FLOPs and activations (parameters are per model);
        anything else raises :class:`ShapeError`.
    strict : bool, default False
        Raise :class:`UnsupportedLayerError` listing every layer class without a rule, instead of
        warning and marking rows ``unsupported``.
    convention : {"default", "macs_only", "folded"} or Convention, optional
        A preset name or a :class:`Convention`; ``**options`` (``elementwise``, ``bias``,
        ``fold_batchnorm``) refine it. An unknown preset raises :class:`OptionError`, an
        unknown option :class:`UnknownOptionError` (also a ``TypeError``).

    Returns
    -------
    pandas.DataFrame
        Indexed by node id, the cost columns of :mod:`modelstats.schema` (docs/api.md):
        ``type``, ``input_shape``, ``output_shape``, ``params``, ``trainable_params``, ``macs``,
        ``flops``, ``activations``, ``activation_bytes``, ``status`` (``counted``, ``zero`` or
        ``unsupported``) and ``note``. The frame's ``attrs`` hold the convention, whether the
        totals are partial, and the batch size.

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
    >>> table = modelstats.count_flops(keras.Model(x, y), batch_size=2,
    ...                                convention=modelstats.Convention(elementwise=False))
    >>> int(table.loc["conv", "flops"])
    15552
    """
    batch_size = schema.check_batch_size(batch_size)
    chosen = _convention(convention, options)
    graph = _graph(model, input_shape, expand_nested)
    layout = schema.layout()
    columns, attrs = _costs(graph, batch_size, strict, chosen, layout)
    frame = _frame(graph, columns, layout)
    frame.attrs.update(attrs)
    return frame


def _summed_columns(frame: pd.DataFrame) -> list[schema.Column]:
    """The declared ``summed`` columns present in a per-node frame, in its column order."""
    found = []
    for name in frame.columns:
        try:
            c = schema.column(str(name))
        except OptionError:  # a column a user added to the frame
            continue
        if c.summed:
            found.append(c)
    return found


def _grouped(layers: pd.DataFrame, keys: Sequence[str], index_name: str) -> pd.DataFrame:
    """Per-node rows summed per key, groups in order of first appearance.

    ``nodes`` counts the rows of a group, ``unsupported`` those without a cost rule, and
    ``partial`` is True when there is one: a nullable column (``macs``, ``flops``) then sums
    only the known values, a lower bound (``<NA>`` when no value of the group is known).
    """
    key = pd.Series(list(keys), index=layers.index, name=index_name)
    groups = layers.groupby(key, sort=False)
    unsupported = (layers["status"] == "unsupported").groupby(key, sort=False).sum()
    data = {"nodes": groups.size().astype("int64")}
    for c in _summed_columns(layers):
        sums = groups[c.name].sum(min_count=1) if c.nullable else groups[c.name].sum()
        data[c.name] = sums.astype(c.pandas_dtype) if c.pandas_dtype else sums
    data["unsupported"] = unsupported.astype("int64")
    data["partial"] = unsupported.astype("int64") > 0
    frame = pd.DataFrame(data)
    frame.index.name = index_name
    return frame


def _total(c: schema.Column, values: pd.Series):
    """The sum of a column, skipping <NA> (the totals then say they are partial)."""
    total = values.sum()
    return int(total) if c.dtype == "int" else float(total)


@dataclass
class Report:
    """Receptive fields and costs of every node of a model, with totals and exports.

    Build it with :func:`analyze`. ``layers`` has the columns of :mod:`modelstats.schema`;
    ``totals`` the sum of every summed column, then ``partial``, ``unsupported``,
    ``batch_size`` and ``rf_input``. :meth:`by_block` and :meth:`by_type` sum the rows per
    nested block or per operation class.
    """

    layers: pd.DataFrame
    totals: dict
    convention: str
    graph: nx.DiGraph = field(repr=False)
    _propagation: Any = field(default=None, repr=False)

    def _rank_column(self, by: str) -> str:
        choices = [c.name for c in schema.rankable() if c.name in self.layers.columns]
        if by not in choices:
            raise OptionError(f"Cannot rank layers by {by!r}; choose one of {choices}.")
        return by

    def top(self, k: int = 10, by: str = "flops") -> pd.DataFrame:
        """The ``k`` most expensive nodes by a rankable column; ties keep graph order.

        Parameters
        ----------
        k : int, default 10
        by : str, default "flops"
            A column declared ``rankable`` in :mod:`modelstats.schema` (``params``,
            ``trainable_params``, ``macs``, ``flops``, ``activations``, ``activation_bytes``);
            another name raises :class:`OptionError` listing them.

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((8, 8, 3))
        >>> y = keras.layers.Conv2D(4, 3, name="conv")(x)
        >>> report = modelstats.analyze(keras.Model(x, keras.layers.Dense(2, name="head")(y)))
        >>> list(report.top(2, by="params").index)  # 3*3*3*4 + 4 = 112; 4*2 + 2 = 10
        ['conv', 'head']
        """
        by = self._rank_column(by)
        return self.layers.sort_values(by, ascending=False, kind="stable").head(k)

    def by_block(self, depth: int = 1) -> pd.DataFrame:
        """Costs summed per block: the nodes nested in one model or layer call, ``depth`` levels
        down (fvcore's ``by_module``).

        A node's block is the first ``depth`` names of its ``path`` (its id without the last
        component: ``"wide/conv"`` is in ``"wide"``); a node nested less deeply is its own row
        (``"stem"``, or ``"net/stem"`` at depth 2). Rows keep graph order of first appearance.

        Parameters
        ----------
        depth : int, default 1
            A positive integer; another value raises :class:`OptionError`.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``block``: ``nodes`` (how many), every ``summed`` column of
            :mod:`modelstats.schema` summed, ``unsupported`` (nodes without a cost rule) and
            ``partial``. A block with an unsupported node is ``partial``: its ``macs`` and
            ``flops`` sum the known nodes only, a lower bound (``<NA>`` when none is known).
            Each column sums to ``totals``.

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((8, 8, 3), name="x")
        >>> inner = keras.Input((8, 8, 3))
        >>> block = keras.Model(inner, keras.layers.Conv2D(4, 3, name="conv")(inner),
        ...                     name="block")
        >>> y = keras.layers.GlobalAveragePooling2D(name="gap")(block(x))
        >>> report = modelstats.analyze(keras.Model(x, keras.layers.Dense(2, name="head")(y)))
        >>> # block: its input and conv, 6*6 * 3*3*3 * 4 MACs; head 4*2
        >>> report.by_block()[["nodes", "macs", "params"]]  # doctest: +NORMALIZE_WHITESPACE
               nodes  macs  params
        block
        x          1     0       0
        block      2  3888     112
        gap        1     0       0
        head       1     8      10
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise OptionError(f"depth must be a positive integer (how many levels of nesting "
                              f"name a block); received {depth!r}.")
        keys = []
        for node in self.layers.index:
            data = self.graph.nodes[node] if node in self.graph else {}
            path = tuple(data.get("path", str(node).split("/")[:-1]))
            keys.append("/".join(path[:depth]) if len(path) >= depth else str(node))
        return _grouped(self.layers, keys, "block")

    def by_type(self, by: str = "flops") -> pd.DataFrame:
        """Costs summed per operation class (``type``), the most expensive first.

        Parameters
        ----------
        by : str, default "flops"
            The rankable column to sort by (descending; ties and ``<NA>`` keep graph order,
            ``<NA>`` last).

        Returns
        -------
        pandas.DataFrame
            Indexed by ``type``, the columns of :meth:`by_block`.

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((8, 8, 3), name="x")
        >>> y = keras.layers.Conv2D(4, 3, name="c1")(x)
        >>> y = keras.layers.Conv2D(4, 3, name="c2")(y)
        >>> report = modelstats.analyze(keras.Model(x, y))
        >>> # c1 6*6 * 3*3*3 * 4 + c2 4*4 * 3*3*4 * 4
        >>> report.by_type()[["nodes", "macs"]]  # doctest: +NORMALIZE_WHITESPACE
                     nodes  macs
        type
        Conv2D           2  6192
        InputLayer       1     0
        """
        by = self._rank_column(by)
        view = _grouped(self.layers, self.layers["type"], "type")
        return view.sort_values(by, ascending=False, kind="stable", na_position="last")

    def receptive_field(self, layer: str) -> ReceptiveField:
        """The :class:`ReceptiveField` of one node id or layer name."""
        if self._propagation is None:
            raise ModelStatsError("This model has no input with spatial axes.")
        return self._propagation.field(_find_node(self.graph, layer))

    # -- exports --------------------------------------------------------------------------
    def to_csv(self, path=None, **kwargs):
        """Per-node table as CSV (returns the text when ``path`` is None)."""
        return self.layers.to_csv(path, **kwargs)

    def to_dict(self) -> dict:
        """Convention, totals and per-node rows as JSON-ready Python objects."""
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

    def _view(self, top: Optional[int], by: str, depth: Optional[int] = None,
              by_type: bool = False) -> tuple[str, pd.DataFrame]:
        """The rows the short renderings show, with their heading: per node, per block
        (``depth``) or per type; ``top`` keeps the most expensive by ``by``."""
        if depth is not None and by_type:
            raise OptionError("Choose one view: per block (depth=K) or per type (by_type=True).")
        if by_type:
            rows = self.by_type(by)
            if top is None:
                return f"All {len(rows)} layer types, by {by}", rows
            return f"Top {top} layer types by {by}", rows.head(top)
        if depth is not None:
            rows = self.by_block(depth)
            if top is None:
                return f"All {len(rows)} blocks at depth {depth}, in graph order", rows
            by = self._rank_column(by)
            ranked = rows.sort_values(by, ascending=False, kind="stable", na_position="last")
            return f"Top {top} blocks at depth {depth} by {by}", ranked.head(top)
        if top is None:
            return f"All {len(self.layers)} layers, in graph order", self.layers
        return f"Top {top} layers by {by}", self.top(top, by)

    def to_markdown(self, top: Optional[int] = 10, by: str = "flops", *,
                    depth: Optional[int] = None, by_type: bool = False) -> str:
        """Totals, convention and the ``top`` layers by ``by`` as a Markdown document
        (``top=None``: every layer, in graph order). The table shows the schema's
        ``in_cli_table`` columns, per-axis receptive fields as ``"3x3"``.

        ``depth=K`` shows the blocks of :meth:`by_block` instead of the layers, ``by_type=True``
        the rows of :meth:`by_type` (``nodes``, ``params``, ``macs``, ``flops``,
        ``unsupported``).
        """
        t = self.totals
        heading, rows = self._view(top, by, depth, by_type)
        view = depth is not None or by_type
        if view:
            header, cells, _ = view_rows(rows, missing="n/a")
            first = rows.index.name
        else:
            header, cells, _ = summary_rows(rows, schema.cli_table(), missing="n/a")
            first = "node"
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
            pipe_table([first, *header], cells),
        ]
        if view and rows["partial"].any():
            lines += ["", PARTIAL_NOTE + "."]
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
        """Bar chart of ``by`` (a rankable column) per node in graph order, the top ``k``
        highlighted."""
        by = self._rank_column(by)
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
        """Receptive-field size and stride (last axis) through the network, in graph order."""
        axes = schema.axes_of(self.layers.columns)
        if not axes:
            raise ModelStatsError("No receptive-field columns: the model has no spatial input.")
        plt = pyplot()
        ax = ax or plt.subplots(figsize=(12, 4))[1]
        positions = range(len(self.layers))
        ax.plot(positions, self.layers[f"rf_size_{axes[-1]}"].astype(float), label="size")
        ax.plot(positions, self.layers[f"rf_stride_{axes[-1]}"].astype(float), label="stride")
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
    convention: Union[str, Convention, None] = None,
    expand_nested: bool = True,
    **options: bool,
) -> Report:
    """Receptive fields and costs of every node, joined, with totals.

    Parameters are those of :func:`count_flops` and :func:`receptive_field`.

    Returns
    -------
    Report
        ``report.layers`` (one row per node, the columns of :mod:`modelstats.schema`),
        ``report.totals`` (every summed column, ``partial``, ``unsupported``, ``batch_size``,
        ``rf_input``), ``report.top(k)``, ``report.receptive_field(layer)``, exports and plots.

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
    batch_size = schema.check_batch_size(batch_size)
    chosen = _convention(convention, options)
    graph = _graph(model, input_shape, expand_nested)
    columns, attrs = _costs(graph, batch_size, strict, chosen, schema.layout())
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
    layout = schema.layout(None if propagation is None else axis_names(propagation.n_axes))
    if propagation is not None:
        columns.update(_field_columns(propagation, graph.nodes, layout))
    table = _frame(graph, columns, layout)
    table.attrs.update(attrs)
    totals = {c.name: _total(c, table[c.name]) for c in layout if c.summed}
    extra = {
        "partial": attrs["partial"],
        "unsupported": sorted(set(table.loc[table["status"] == "unsupported", "type"])),
        "batch_size": batch_size,
        "rf_input": None if propagation is None else propagation.input_node,
    }
    totals.update((t.name, extra[t.name]) for t in schema.TOTALS)
    return Report(table, totals, attrs["convention"], graph, propagation)
