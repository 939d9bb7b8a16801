"""Public entry points and the reporting edge: the only module that builds pandas objects.

What the tables hold is declared once in :mod:`modelstats.schema`: the columns and their dtypes,
batch scaling, totals and which columns can be ranked all come from there.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import networkx as nx
import numpy as np
import pandas as pd

from modelstats import schema, symbolic
from modelstats._collector import collector_paused
from modelstats._render import (
    PARTIAL_NOTE,
    draw_cost,
    draw_field_box,
    draw_field_growth,
    field_unit,
    is_missing as _missing,
    pipe_table,
    pyplot,
    report_html,
    runs,
    short_names,
    stage_starts,
    summary_rows,
    text_cell,
    view_rows,
)
from modelstats.cost import Convention, node_costs
from modelstats.training import optimizer_flops
from modelstats.errors import ModelStatsError, OptionError, UnknownOptionError
from modelstats.graph import find_node, to_networkx
from modelstats.propagation import (
    default_field_input,
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


def _field_columns(propagation, nodes, layout: Sequence[schema.Column]) -> dict[str, list]:
    """Receptive-field columns, one list per column (a frame is built once, column-wise)."""
    wanted = [c for c in layout if c.group == "field"]
    axes = schema.axes_of(c.name for c in wanted)
    sources = [(c.source.split(":", 1)[1], None if c.axis is None else axes.index(c.axis))
               for c in wanted]
    return dict(zip((c.name for c in wanted), propagation.columns(nodes, sources)))


def _cost_columns(graph: nx.DiGraph, records, batch_size: int,
                  layout: Sequence[schema.Column]) -> dict[str, list]:
    """Cost columns from the node records and the graph, scaled by the batch size: built a
    column at a time, each column's getter resolved once rather than once per node."""
    node_data = [graph.nodes[record.node] for record in records]
    # Unknown is not zero: an unsupported node's work is missing (<NA>), never counted as 0.
    known = [record.status != "unsupported" for record in records]
    columns: dict[str, list] = {}
    for c in layout:
        if c.group != "cost":
            continue
        kind, path = c.source.split(":", 1)
        if kind == "ratio":  # of values already batch-scaled (declared after their terms)
            numerator, denominators = c.ratio_terms
            columns[c.name] = [_ratio(terms[0], terms[1:]) for terms in zip(
                columns[numerator], *(columns[n] for n in denominators))]
            continue
        if kind == "node":
            values = [data[path] for data in node_data]
        else:
            values = list(map(operator.attrgetter(path), records))
        if c.nullable:
            values = [value if ok else None for value, ok in zip(values, known)]
        if c.dtype == "shapes":
            values = [[list(s) for s in value] for value in values]
        elif c.per_batch and batch_size != 1:
            get_fixed = operator.attrgetter(c.unbatched.split(":", 1)[1]) if c.unbatched else None
            values = [c.at_batch(value, batch_size, get_fixed(record) if get_fixed else 0)
                      for value, record in zip(values, records)]
        columns[c.name] = values
    return columns


def _ratio(numerator: Any, denominators: Sequence[Any]) -> Optional[float]:
    """A ``ratio:`` column's value: missing when a term is unknown or the denominator is 0."""
    if numerator is None or None in denominators:
        return None
    denominator = sum(denominators)
    return numerator / denominator if denominator else None


def _frame(graph: nx.DiGraph, columns: dict[str, list],
           layout: Sequence[schema.Column]) -> pd.DataFrame:
    """The table in layout order, each column with its declared dtype (e.g. ``Int64`` for the
    counts, so an unsupported row is <NA> rather than a float NaN)."""
    data = {c.name: _number_array(columns[c.name]) if c.dtype == "number"
            else _column_array(columns[c.name], c.pandas_dtype) for c in layout}
    return pd.DataFrame(data, index=pd.Index(list(graph.nodes), name="node"))


def _number_array(values: list) -> Any:
    """A ``number`` column (receptive-field sizes, strides, paddings): the int64 or float64
    array pandas would infer, made directly (pandas' inference is a pass over the column's
    Python objects); the list itself when it holds anything else (sympy expressions in a
    symbolic report) or only missing values."""
    kinds = set(map(type, values))
    if kinds == {int}:
        return np.asarray(values, dtype="int64")
    if kinds <= {int, float, type(None)} and kinds != {type(None)}:
        return np.asarray([np.nan if value is None else value for value in values],
                          dtype="float64")
    return values


#: The nullable dtypes of the schema: their array type, the NumPy dtype of its values, and
#: what a missing value's slot holds under the mask.
_MASKED_ARRAYS = {
    "Int64": (pd.arrays.IntegerArray, "int64", 0),
    "Float64": (pd.arrays.FloatingArray, "float64", 0.0),
    "boolean": (pd.arrays.BooleanArray, "bool", False),
}


def _column_array(values: list, dtype: Optional[str]) -> Any:
    """A column's values as an array of its pandas dtype (arrays rather than Series: no
    index to build and align per column); the list itself where the dtype is inferred."""
    if dtype is None:
        return values
    if dtype in ("int64", "float64", "bool"):
        return np.asarray(values, dtype=dtype)
    array_type, numpy_dtype, fill = _MASKED_ARRAYS[dtype]
    # Values and mask given to the array type directly: pd.array(values, dtype) infers and
    # checks every value again, six times slower on a column of a few hundred nodes.
    missing = [value is None or value is pd.NA or value != value for value in values]
    data = [fill if gone else value for value, gone in zip(values, missing)]
    return array_type(np.asarray(data, dtype=numpy_dtype), np.asarray(missing, dtype=bool))


@collector_paused
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
        return propagation.field(find_node(graph, layer))
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


def _features(training: bool, chosen: Convention) -> tuple[str, ...]:
    """The optional computations asked for (``schema.FEATURES``), checked."""
    if not isinstance(training, bool):
        raise OptionError(f"training is True or False; received {training!r}.")
    if training and chosen.fold_batchnorm:
        raise OptionError(
            "fold_batchnorm describes a deployed model; a training step cannot fold batch "
            "normalisation (it computes batch statistics). Pass training=False, or a convention "
            "without fold_batchnorm."
        )
    return ("training",) if training else ()


def _costs(graph: nx.DiGraph, batch_size: int, strict: bool, chosen: Convention,
           layout: Sequence[schema.Column], features: Sequence[str] = ()) -> tuple[dict, dict]:
    """Cost columns and the frame attributes (convention, partial, batch size, and in a
    training step the optimizer's update FLOPs)."""
    training = "training" in features
    records = node_costs(graph, chosen, strict=strict, training=training)
    columns = _cost_columns(graph, records, batch_size, layout)
    attrs = {
        "convention": chosen.describe(),
        "partial": any(r.status == "unsupported" for r in records),
        "batch_size": batch_size,
    }
    if training:
        attrs["optimizer_flops"] = optimizer_flops(
            sum(graph.nodes[r.node]["trainable_params"] for r in records))
    return columns, attrs


@collector_paused
def count_flops(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    convention: Union[str, Convention, None] = None,
    expand_nested: bool = True,
    training: bool = False,
    **options: bool,
) -> pd.DataFrame:
    """MACs, FLOPs, parameters and activation memory of every call node.

    Parameters
    ----------
    model : keras.Model or networkx.DiGraph
    input_shape : tuple, optional
        Input shape without batch (required when the model has unknown sizes). Strings name
        sizes, ``("H", "W", 3)``: the counts are then exact sympy formulas of them
        (:func:`modelstats.symbolic.count_flops`, docs/conventions.md).
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
    expand_nested : bool, default True
        One row per call inside nested models and traced layers; False keeps each whole,
        with the sum of its calls.
    training : bool, default False
        Also count one training step: the backward columns ``bwd_input_macs``,
        ``bwd_weight_macs``, ``train_macs`` and their ``_flops`` twins, following which
        layers are trainable (a frozen prefix does no backward work; docs/conventions.md),
        and ``attrs["optimizer_flops"]``, the update FLOPs per optimizer.

    Returns
    -------
    pandas.DataFrame
        Indexed by node id, the cost columns of :mod:`modelstats.schema` (docs/api.md):
        ``type``, ``input_shape``, ``output_shape``, ``params``, ``trainable_params``, ``macs``,
        ``flops``, ``activations``, ``activation_bytes``, (with ``training``: the backward
        columns), ``status`` (``counted``, ``zero``, ``traced`` or ``unsupported``) and
        ``note``. The frame's ``attrs`` hold the convention, whether the totals are partial, the
        batch size (and with ``training`` the optimizer FLOPs).

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

    A training step: the first layer's input (the model's) needs no gradient, so the conv
    only adds its weight gradient, as many MACs as its forward pass.

    >>> table = modelstats.count_flops(keras.Model(x, y), training=True)
    >>> table.loc["conv", ["macs", "bwd_input_macs", "bwd_weight_macs", "train_macs"]].tolist()
    [3888, 0, 3888, 7776]
    >>> table.attrs["optimizer_flops"]["adam"]  # 3*3*3*4 trainable parameters x 12
    1296
    """
    if symbolic.is_symbolic(input_shape):  # sizes named by strings: sympy formulas
        return symbolic.count_flops(model, input_shape=input_shape, batch_size=batch_size,
                                    strict=strict, convention=convention,
                                    expand_nested=expand_nested, training=training, **options)
    batch_size = schema.check_batch_size(batch_size)
    chosen = _convention(convention, options)
    features = _features(training, chosen)
    graph = _graph(model, input_shape, expand_nested)
    layout = schema.layout(features=features)
    columns, attrs = _costs(graph, batch_size, strict, chosen, layout, features)
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


def _total(c: schema.Column, values: Sequence[Any]):
    """The sum of a column's values, skipping missing ones (the totals then say they are
    partial)."""
    total = sum(v for v in values if v is not None and v is not pd.NA)
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
    #: With symbolic sizes (``input_shape=("H", "W", 3)``): what :meth:`at` evaluates.
    symbolic: Any = field(default=None, repr=False)

    def _rank_column(self, by: str) -> str:
        choices = [c.name for c in schema.rankable(schema.FEATURES)
                   if c.name in self.layers.columns]
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

    def at(self, **sizes: int) -> "Report":
        """This report, made with symbolic sizes, evaluated at concrete ones.

        The formulas are evaluated and the receptive fields propagated at ``sizes`` (Keras is
        not called again): the result is the report :func:`analyze` gives at those sizes.

        Parameters
        ----------
        **sizes : int
            A positive integer for every symbol of ``input_shape`` (``H=224, W=224``).

        Raises
        ------
        ShapeError
            A symbol is missing or not a positive integer, or the model does not build at those
            sizes (a layer's output would be empty, or a merge would join unequal sizes).

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((None, None, 3))
        >>> y = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
        >>> report = modelstats.analyze(keras.Model(x, y), input_shape=("H", "W", 3))
        >>> concrete = report.at(H=97, W=131)
        >>> int(concrete.layers.loc["conv", "macs"])  # 49 * 66 positions * 3*3*3 * 8
        698544
        >>> concrete.receptive_field("conv").padding  # "same" pads 1 on the left at odd sizes
        (1, 1)
        """
        if self.symbolic is None:
            raise ModelStatsError(
                "at() evaluates a report made with symbolic sizes (input_shape=('H', 'W', 3)); "
                "this report is already concrete."
            )
        return self.symbolic.at(self, sizes)

    def receptive_field(self, layer: str) -> ReceptiveField:
        """The :class:`ReceptiveField` of one node id or layer name."""
        if self._propagation is None:
            raise ModelStatsError("This model has no input with spatial axes.")
        return self._propagation.field(find_node(self.graph, layer))

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

    def to_html(self, path=None, *, top: int = 10, by: str = "flops", depth: int = 1,
                plots: bool = True, device=None):
        """The report as one self-contained HTML page, to open in any browser or attach.

        No network is needed to view it: styles and the small table-sorting script are inline
        and the plots are embedded as base64 PNG images.

        Parameters
        ----------
        path : str or path-like, optional
            Where to write the page (UTF-8); None returns the text.
        top : int, default 10
            How many of the most expensive layers the "top layers" table and the cost plot
            name.
        by : str, default "flops"
            The rankable column they are ranked by.
        depth : int, default 1
            The nesting depth of the per-block table (:meth:`by_block`).
        plots : bool, default True
            Embed the cost plot, the receptive-field growth and the field of the last feature
            map's centre unit; needs matplotlib (without it the page says so).
        device : Device or str, optional
            Add the roofline on that device (a :class:`~modelstats.Device`, a catalogue name
            or ``"measured"``): the lower-bound latency, ``<table id="memory-bound">`` and,
            with plots, ``<figure id="plot-roofline">``.

        Returns
        -------
        str or None
            The page when ``path`` is None. Its sections: a summary line and the convention, a
            warning when the totals are partial, ``<table id="totals">``, the receptive field
            of the last feature map, ``<table id="top-layers">``, ``<table id="blocks">``, the
            plots (``<figure id="plot-cost">``, ``"plot-field"``, ``"plot-box"``) and every
            layer in ``<table id="layers">``; tables sort by a click on a header.

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((8, 8, 3))
        >>> y = keras.layers.Conv2D(4, 3, name="conv")(x)
        >>> page = modelstats.analyze(keras.Model(x, y)).to_html(plots=False)
        >>> page.startswith("<!DOCTYPE html>"), '<table id="top-layers"' in page
        (True, True)
        """
        text = report_html(self, top=top, by=by, depth=depth, plots=plots, device=device)
        if path is None:
            return text
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return None

    # -- plots ----------------------------------------------------------------------------
    def _stages(self) -> list:
        """Where each new stride starts along the last spatial axis (positions in the rows)."""
        axes = schema.axes_of(self.layers.columns)
        if not axes:
            return []
        return stage_starts(list(self.layers[f"rf_stride_{axes[-1]}"]))

    def _input_size(self) -> Optional[tuple]:
        """The spatial size of the input the fields are measured from, e.g. ``(224, 224)``."""
        source = self.totals.get("rf_input")
        if source is None or source not in self.graph:
            return None
        data = self.graph.nodes[source]
        shape = data["output_shapes"][0]
        return tuple(shape[i] for i in data.get("spatial_axes", ()))

    def plot_cost(self, k: int = 10, by: str = "flops", ax=None):
        """Bar chart of ``by`` (a rankable column) per node in graph order, in readable units.

        The ``k`` most expensive nodes are red and named on the x axis; a dashed line marks
        where each new stride starts (a resolution stage), and each nested model or traced
        layer is shaded and named above the bars. Unsupported rows (unknown cost) draw no bar.
        Needs matplotlib; returns the ``Axes``.

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((16, 16, 3))
        >>> y = keras.layers.Conv2D(8, 3, strides=2, name="c1")(x)
        >>> y = keras.layers.Conv2D(8, 3, name="c2")(y)
        >>> ax = modelstats.analyze(keras.Model(x, y)).plot_cost(k=1)
        >>> [label.get_text() for label in ax.get_xticklabels()], ax.get_ylabel()
        (['c2'], 'kFLOPs per layer')
        >>> # 2 x (c1 7*7 * 27*8 + c2 5*5 * 72*8 MACs) + one bias add per output (392 + 200)
        >>> ax.get_title()
        'FLOPs per layer: total 50.6 kFLOPs'
        """
        by = self._rank_column(by)
        plt = pyplot()
        ax = ax or plt.subplots(figsize=(12, 4.5))[1]
        values = self.layers[by].astype("Float64").fillna(0).to_numpy(dtype=float)
        nodes = list(self.layers.index)
        position = {node: i for i, node in enumerate(nodes)}
        keys = []
        for node in nodes:
            path = self.graph.nodes[node].get("path", ()) if node in self.graph else ()
            keys.append(path[0] if path else None)
        per_batch = schema.column(by).per_batch
        return draw_cost(ax, list(values), by, short_names(nodes),
                         [position[n] for n in self.top(k, by).index], self._stages(),
                         runs(keys), self.totals["batch_size"] if per_batch else 1)

    def plot_receptive_field(self, ax=None, *, layer: Optional[str] = None, unit=None,
                             image: Any = None):
        """The receptive field: its growth through the network, or one unit's box on an image.

        Without ``layer``: field size and stride along the last spatial axis per node in graph
        order (log scale), the input size as a dotted line, the first node whose field is
        wider than the input, and a dashed line where each new stride starts.

        With ``layer`` (a 2-D feature map): the input pixels one of its units sees, drawn over
        ``image`` stretched to the input size (the picture as the model receives it), with the
        pixels it actually depends on dashed when the field reaches past the image, and the
        centres of the map's units, one stride apart.

        Parameters
        ----------
        ax : matplotlib Axes, optional
        layer : str, optional
            Node id or layer name of a feature map with a positional field.
        unit : tuple of int, optional
            The unit's position in that map; default its centre.
        image : array-like, optional
            ``(H, W)`` or ``(H, W, C)``, integers 0-255 or floats (0-1, or 0-255 as
            ``keras.utils.img_to_array`` gives); a PIL image works too. Default: a neutral
            test card of the input size.

        Returns
        -------
        matplotlib Axes

        Examples
        --------
        >>> import keras, modelstats
        >>> x = keras.Input((32, 32, 3))
        >>> y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="c1")(x)
        >>> y = keras.layers.Conv2D(4, 5, strides=2, name="c2")(y)
        >>> report = modelstats.analyze(keras.Model(x, y))
        >>> ax = report.plot_receptive_field(layer="c2", unit=(0, 0))
        >>> field = next(p for p in ax.patches if p.get_gid() == "field")
        >>> field.get_xy(), field.get_width()  # pixels 0..10: 3 + (5-1)*2 = 11 px
        ((-0.5, -0.5), 11)
        """
        axes = schema.axes_of(self.layers.columns)
        if not axes:
            raise ModelStatsError("No receptive-field columns: the model has no spatial input.")
        plt = pyplot()
        if layer is not None:
            return self._plot_field_box(ax or plt.subplots(figsize=(6, 6))[1], layer, unit,
                                        image)
        ax = ax or plt.subplots(figsize=(12, 4))[1]
        size = self._input_size()
        return draw_field_growth(
            ax, [float("nan") if _missing(v) else float(v)
                 for v in self.layers[f"rf_size_{axes[-1]}"]],
            [float("nan") if _missing(v) else float(v)
             for v in self.layers[f"rf_stride_{axes[-1]}"]],
            short_names(list(self.layers.index)), self._stages(),
            size[-1] if size else None, axes[-1],
            field_unit(self.graph, self.totals.get("rf_input")))

    def _plot_field_box(self, ax, layer: str, unit, image):
        node = find_node(self.graph, layer)
        rf = self.receptive_field(node)
        if rf.status != "spatial":
            raise ModelStatsError(f"'{node}' has no positional receptive field (status: "
                                  f"{rf.status}), so no box to draw.")
        size = self._input_size()
        if len(rf.size) != 2 or not size or None in size:
            raise ModelStatsError(f"The field picture needs a 2-D input of known size; "
                                  f"'{node}' is measured on an input of spatial size {size}.")
        data = self.graph.nodes[node]
        shape = data["output_shapes"][0]
        grid = [shape[i] for i in data.get("spatial_axes", ())]
        if unit is None:
            unit = tuple((n or 1) // 2 for n in grid)
        unit = tuple(int(u) for u in unit)
        box = rf.box(unit)
        if box is None:
            raise ModelStatsError(f"Unit {unit} of '{node}' reads no input pixel.")
        centres = []
        if len(grid) == 2 and None not in grid and max(grid) <= 32:
            centres = [tuple(float(c) for c in rf.center((i, j)))
                       for i in range(grid[0]) for j in range(grid[1])]
        name = short_names([node])[0]
        title = (f"{name}, unit {unit}: a {rf.size[0]} x {rf.size[1]} px field on the "
                 f"{size[0]} x {size[1]} px input (stride {text_cell(rf.stride[0])} x "
                 f"{text_cell(rf.stride[1])})")
        return draw_field_box(ax, image, size[0], size[1], box, rf.box(unit, clip=True),
                              centres, title, tuple(float(c) for c in rf.center(unit)))

@collector_paused
def analyze(
    model: Any,
    *,
    input_shape: Any = None,
    batch_size: int = 1,
    strict: bool = False,
    input: Optional[str] = None,
    convention: Union[str, Convention, None] = None,
    expand_nested: bool = True,
    training: bool = False,
    **options: bool,
) -> Report:
    """Receptive fields and costs of every node, joined, with totals.

    Parameters are those of :func:`count_flops` and :func:`receptive_field`.

    Returns
    -------
    Report
        ``report.layers`` (one row per node, the columns of :mod:`modelstats.schema`),
        ``report.totals`` (every summed column, ``partial``, ``unsupported``, ``batch_size``,
        ``rf_input``; with ``training``, ``optimizer_flops``), ``report.top(k)``,
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
    if symbolic.is_symbolic(input_shape):  # sizes named by strings: sympy formulas
        return symbolic.analyze(model, input_shape=input_shape, batch_size=batch_size,
                                strict=strict, input=input, convention=convention,
                                expand_nested=expand_nested, training=training, **options)
    batch_size = schema.check_batch_size(batch_size)
    chosen = _convention(convention, options)
    features = _features(training, chosen)
    graph = _graph(model, input_shape, expand_nested)
    columns, attrs = _costs(graph, batch_size, strict, chosen, schema.layout(features=features),
                            features)
    spatial = spatial_inputs(graph)
    input = default_field_input(graph, input)
    propagation = propagate(graph, input, strict=strict) if spatial or input else None
    layout = schema.layout(None if propagation is None else axis_names(propagation.n_axes),
                           features=features)
    if propagation is not None:
        columns.update(_field_columns(propagation, graph.nodes, layout))
    table = _frame(graph, columns, layout)
    table.attrs.update(attrs)
    totals = {c.name: _total(c, columns[c.name]) for c in layout if c.summed}
    extra = {
        "partial": attrs["partial"],
        "unsupported": sorted({kind for kind, status in zip(columns["type"], columns["status"])
                               if status == "unsupported"}),
        "batch_size": batch_size,
        "rf_input": None if propagation is None else propagation.input_node,
        "optimizer_flops": attrs.get("optimizer_flops"),
    }
    totals.update((t.name, extra[t.name]) for t in schema.totals(features))
    return Report(table, totals, attrs["convention"], graph, propagation)
