"""Every column modelstats reports, declared once.

A :class:`Column` says what one per-node column holds and how the reporting edge treats it: its
dtype, whether it can be missing, whether a batch size multiplies it, whether it is summed into
``Report.totals``, whether ``Report.top`` and ``--by`` may rank by it and whether the short tables
(the CLI table and the Markdown export) show it. The frames of :mod:`modelstats.report`, their
dtypes, the totals, batch scaling, the CLI's table and ``--by`` choices, the Markdown columns and
the column table in docs/api.md are all derived from :data:`COLUMNS`, so adding a column is one
entry here (plus, for new data, the attribute its ``source`` names).

Pure Python, no pandas and no Keras: the command line reads it before TensorFlow starts, and the
pandas dtypes are named here as strings for the reporting edge to apply.

>>> from modelstats import schema
>>> [c.name for c in schema.rankable()]  # doctest: +NORMALIZE_WHITESPACE
['params', 'trainable_params', 'macs', 'flops', 'activations', 'activation_bytes',
 'bytes_read', 'bytes_written']
>>> [c.name for c in schema.layout(axes=("y", "x")) if c.name.startswith("rf_size")]
['rf_size_y', 'rf_size_x']
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, replace
from typing import Any, Iterable, Optional, Sequence

from modelstats.errors import OptionError, ShapeError

__all__ = [
    "Column",
    "Total",
    "COLUMNS",
    "TOTALS",
    "FEATURES",
    "totals",
    "column",
    "layout",
    "summed",
    "rankable",
    "cli_table",
    "axes_of",
    "check_batch_size",
    "docs_table",
]

AXIS = "{axis}"

# dtype -> (pandas dtype, pandas dtype when nullable); None lets pandas infer from the values.
_PANDAS_DTYPES = {
    "int": ("int64", "Int64"),  # Int64: <NA> for an unknown count, never a float NaN or a 0
    "float": ("float64", "Float64"),
    "bool": ("bool", "boolean"),
    "str": (None, None),
    # an int, or a float where the exact value is a Fraction (after upsampling); missing as NaN
    "number": (None, None),
    "shapes": (None, None),  # one list of ints per tensor
}
_NUMERIC = {"int", "float", "number"}
# node:<key> reads the graph node's attribute, cost:<a.b> the NodeCost record's attribute path,
# field:<attr> the ReceptiveField's attribute (indexed by axis for per-axis columns).
# ratio:<a>/<b>+<c> divides column a by the sum of columns b, c, ... of the same row after
# batch scaling (a ratio of batch-scaled quantities is not itself multiplied by the batch).
_SOURCES = {"node": "cost", "cost": "cost", "field": "field", "ratio": "cost"}


@dataclass(frozen=True)
class Column:
    """One per-node output column.

    Parameters
    ----------
    name : str
        The column name; ``"{axis}"`` in it makes a per-axis template (``"rf_size_{axis}"``)
        expanded once per spatial axis name (``rf_size_y``, ``rf_size_x``).
    dtype : {"int", "float", "bool", "str", "number", "shapes"}
        What the values are (see :attr:`pandas_dtype`).
    nullable : bool
        Values can be missing. A nullable column computed by a cost rule is missing (``<NA>``)
        on rows whose layer has no rule: unknown, never 0.
    per_batch : bool
        Multiplied by the batch size (work and activations are; parameters are per model).
    summed : bool
        Summed into ``Report.totals`` under the column's name.
    rankable : bool
        Allowed as ``by`` in ``Report.top`` and ``--by`` on the command line.
    in_cli_table : bool
        Shown in the short tables (CLI ``--format table`` and ``Report.to_markdown``).
    description : str
        One line for docs/api.md.
    source : str
        Where a value comes from: ``"node:<key>"`` (graph node attribute), ``"cost:<attr.path>"``
        (the node's :class:`~modelstats.cost.NodeCost`) or ``"field:<attr>"`` (its
        :class:`~modelstats.ReceptiveField`).
    requires : str, optional
        Present only when this feature was computed (e.g. ``"training"``); None: always.
    unbatched : str, optional
        For a ``per_batch`` column, the ``"cost:<attr>"`` source of the part of the value a
        batch does not multiply (weights are read once per batch, inputs once per sample).
    axis : str, optional
        Set on a column expanded from a per-axis template.

    Examples
    --------
    >>> from modelstats.schema import Column
    >>> c = Column("rf_size_{axis}", "number", nullable=True, source="field:size")
    >>> [e.name for e in c.expand(("y", "x"))], c.stem
    (['rf_size_y', 'rf_size_x'], 'rf_size')
    >>> Column("macs", "int", nullable=True, source="cost:cost.macs").pandas_dtype
    'Int64'
    """

    name: str
    dtype: str
    nullable: bool = False
    per_batch: bool = False
    summed: bool = False
    rankable: bool = False
    in_cli_table: bool = False
    description: str = ""
    source: str = ""
    requires: Optional[str] = None
    unbatched: Optional[str] = None
    axis: Optional[str] = None
    template: Optional[str] = None

    def __post_init__(self) -> None:
        # Declarations are code: a wrong one should fail at import, not in a user's report.
        if self.dtype not in _PANDAS_DTYPES:
            raise ValueError(f"column {self.name!r}: dtype {self.dtype!r} not in "
                             f"{sorted(_PANDAS_DTYPES)}")
        if self.source.split(":", 1)[0] not in _SOURCES or ":" not in self.source:
            raise ValueError(f"column {self.name!r}: source {self.source!r} is not "
                             "node:<key>, cost:<attr>, field:<attr> or ratio:<a>/<b>+<c>")
        if self.source.startswith("ratio:") and not re.fullmatch(
                r"ratio:\w+/\w+(\+\w+)*", self.source):
            raise ValueError(f"column {self.name!r}: source {self.source!r} is not "
                             "ratio:<column>/<column>+<column>...")
        if self.unbatched is not None and not (self.per_batch
                                               and self.unbatched.startswith("cost:")):
            raise ValueError(f"column {self.name!r}: unbatched names the cost:<attr> part of "
                             "a per_batch column")
        if (self.per_batch or self.summed or self.rankable) and self.dtype not in _NUMERIC:
            raise ValueError(f"column {self.name!r}: only numeric columns can be batch-scaled, "
                             "summed or ranked")

    @property
    def is_template(self) -> bool:
        """True for a per-axis template not yet expanded."""
        return AXIS in self.name

    @property
    def stem(self) -> str:
        """The name without its axis: the header of a per-axis column shown as ``"3x3"``."""
        base = self.template or self.name
        return base.replace("_" + AXIS, "").replace(AXIS, "")

    @property
    def group(self) -> str:
        """``"cost"`` (built with the costs) or ``"field"`` (built with the receptive fields)."""
        return _SOURCES[self.source.split(":", 1)[0]]

    @property
    def pandas_dtype(self) -> Optional[str]:
        """The pandas dtype the reporting edge gives the column (None: inferred)."""
        plain, nullable = _PANDAS_DTYPES[self.dtype]
        return nullable if self.nullable else plain

    @property
    def ratio_terms(self) -> Optional[tuple[str, tuple[str, ...]]]:
        """``(numerator, denominators)`` column names of a ``ratio:`` column, else None.

        >>> Column("x", "float", source="ratio:flops/bytes_read+bytes_written").ratio_terms
        ('flops', ('bytes_read', 'bytes_written'))
        """
        if not self.source.startswith("ratio:"):
            return None
        numerator, denominators = self.source.split(":", 1)[1].split("/")
        return numerator, tuple(denominators.split("+"))

    def at_batch(self, value: Any, batch_size: int, fixed: Any = 0) -> Any:
        """A per-sample value for ``batch_size`` samples: a ``per_batch`` column is multiplied,
        except its ``fixed`` part (the value of its ``unbatched`` source), counted once.

        >>> Column("b", "int", per_batch=True, source="cost:b",
        ...        unbatched="cost:w").at_batch(10 + 3, 8, fixed=3)  # 8 x 10 + 3
        83
        """
        if not self.per_batch or value is None:
            return value
        return (value - fixed) * batch_size + fixed

    def expand(self, axes: Sequence[str]) -> tuple["Column", ...]:
        """One column per axis for a template; the column itself otherwise."""
        if not self.is_template:
            return (self,)
        return tuple(replace(self, name=self.name.replace(AXIS, a), axis=a, template=self.name)
                     for a in axes)


@dataclass(frozen=True)
class Total:
    """A total that is not the sum of a column (``Report.totals[name]``)."""

    name: str
    description: str
    requires: Optional[str] = None


#: Optional computations a report can hold (the ``requires`` of columns and totals).
FEATURES = ("training",)

COLUMNS: tuple[Column, ...] = (
    Column("type", "str", in_cli_table=True, source="cost:type",
           description="Class name of the called operation (a layer class or a keras.ops "
                       "function)."),
    Column("input_shape", "shapes", source="node:input_shapes",
           description="Input shapes without the batch dimension, one list per input."),
    Column("output_shape", "shapes", in_cli_table=True, source="node:output_shapes",
           description="Output shapes without the batch dimension, one list per output."),
    Column("params", "int", summed=True, rankable=True, in_cli_table=True,
           source="node:params",
           description="Parameters, counted at the first call of a layer (shared weights once)."),
    Column("trainable_params", "int", summed=True, rankable=True, source="node:trainable_params",
           description="Trainable parameters, counted like `params`."),
    Column("macs", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           in_cli_table=True, source="cost:cost.macs",
           description="Multiply-accumulates; `<NA>` when the layer has no cost rule (unknown, "
                       "not 0)."),
    Column("flops", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           in_cli_table=True, source="cost:flops",
           description="FLOPs under the report's convention (2 x MACs + bias adds + "
                       "elementwise work); `<NA>` when the layer has no cost rule."),
    Column("activations", "int", per_batch=True, summed=True, rankable=True,
           source="cost:activations",
           description="Output elements (activation memory in elements)."),
    Column("activation_bytes", "int", per_batch=True, summed=True, rankable=True,
           source="cost:activation_bytes",
           description="Output elements times the size of their dtype, in bytes."),
    Column("bwd_input_macs", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           source="cost:bwd_input_macs", requires="training",
           description="MACs of the input gradient in a training step: the forward MACs of "
                       "each product whose input needs a gradient (docs/conventions.md)."),
    Column("bwd_weight_macs", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           source="cost:bwd_weight_macs", requires="training",
           description="MACs of the weight gradient in a training step: the forward MACs of "
                       "each product with a trainable weight."),
    Column("train_macs", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           source="cost:train_macs", requires="training",
           description="`macs` + `bwd_input_macs` + `bwd_weight_macs`."),
    Column("bwd_input_flops", "int", nullable=True, per_batch=True, summed=True,
           rankable=True, source="cost:bwd_input_flops", requires="training",
           description="2 x `bwd_input_macs`, plus the elementwise work again where the "
                       "gradient flows through the call."),
    Column("bwd_weight_flops", "int", nullable=True, per_batch=True, summed=True,
           rankable=True, source="cost:bwd_weight_flops", requires="training",
           description="2 x `bwd_weight_macs`, plus one add per bias element where the call "
                       "trains."),
    Column("train_flops", "int", nullable=True, per_batch=True, summed=True, rankable=True,
           source="cost:train_flops", requires="training",
           description="`flops` + batch-normalisation statistics in training mode (4 per "
                       "element) + `bwd_input_flops` + `bwd_weight_flops`."),
    Column("bytes_read", "int", per_batch=True, summed=True, rankable=True,
           source="cost:bytes_read", unbatched="cost:weight_bytes",
           description="Bytes the call reads: its inputs, each in its producer's dtype, and "
                       "the variables it reads (weights, bias, statistics) in their stored "
                       "dtype, at every call of a shared layer. Inputs scale with the batch; "
                       "the variables are read once per batch. An input layer reads nothing."),
    Column("bytes_written", "int", per_batch=True, summed=True, rankable=True,
           source="cost:bytes_written",
           description="Bytes of the outputs the call writes, in their dtype (0 for an input "
                       "layer)."),
    Column("intensity", "float", nullable=True, source="ratio:flops/bytes_read+bytes_written",
           description="Arithmetic intensity: `flops` / (`bytes_read` + `bytes_written`), "
                       "FLOPs per byte moved at the report's batch size; `<NA>` when the "
                       "FLOPs are unknown or nothing is moved."),
    Column("status", "str", source="cost:status",
           description="`counted` (by a cost rule), `zero` (known to cost nothing), `traced` "
                       "(a call that Keras symbolic tensors refused, counted from its trace "
                       "under the backend: docs/custom_layers.md), or `unsupported` (no cost "
                       "rule: `macs` and `flops` are `<NA>` and the totals partial)."),
    Column("note", "str", source="cost:reason",
           description="Why a row is unsupported, or how a `traced` row was counted; empty "
                       "otherwise."),
    Column("rf_status", "str", source="field:status",
           description="`spatial`, `global`, `broken`, `unsupported`, `unknown` or `unrelated` "
                       "(see `ReceptiveField`)."),
    Column("rf_size_{axis}", "number", nullable=True, in_cli_table=True, source="field:size",
           description="Receptive-field size along the axis: input pixels one output unit "
                       "sees."),
    Column("rf_stride_{axis}", "number", nullable=True, in_cli_table=True, source="field:stride",
           description="Input pixels between neighbouring output units (the jump)."),
    Column("rf_padding_{axis}", "number", nullable=True, source="field:padding",
           description="How far the field of unit 0 starts before pixel 0; missing where it "
                       "depends on an unknown input size."),
    Column("rf_aligned", "bool", source="field:aligned",
           description="False at a merge of misaligned paths and everything downstream."),
    Column("rf_global_context", "bool", source="field:global_context",
           description="True when a global path (e.g. squeeze-and-excitation) was multiplied "
                       "in."),
    Column("rf_note", "str", source="field:note",
           description="Why the field is not spatial, or how a merge is misaligned."),
)

def _check_ratios(columns: Sequence[Column]) -> None:
    """A ratio divides columns of its own row computed before it: declared earlier, numeric."""
    seen: dict[str, Column] = {}
    for c in columns:
        terms = c.ratio_terms
        if terms is not None:
            numerator, denominators = terms
            for name in (numerator, *denominators):
                if name not in seen or seen[name].dtype not in _NUMERIC \
                        or seen[name].group != "cost":
                    raise ValueError(f"column {c.name!r}: {name!r} must be a numeric cost "
                                     "column declared before it")
        seen[c.name] = c


_check_ratios(COLUMNS)

# The totals after the summed columns, in this order.
TOTALS: tuple[Total, ...] = (
    Total("partial", "True when some node has no cost rule: the work totals are a lower bound."),
    Total("unsupported", "Sorted class names of the nodes without a cost rule."),
    Total("batch_size", "The batch size the `per batch` columns were multiplied by."),
    Total("optimizer_flops", "FLOPs of one optimizer update per step, per optimizer "
                             "(`sgd`, `momentum`, `adam`, `adamw`): trainable parameters "
                             "times 2, 4, 12, 15 (docs/conventions.md); not multiplied by the "
                             "batch size.", requires="training"),
    Total("rf_input", "The model input receptive fields are measured from (None without "
                      "spatial input)."),
)


def _wanted(c: Column, features: Iterable[str]) -> bool:
    return c.requires is None or c.requires in set(features)


def column(name: str) -> Column:
    """The declared column called ``name``; a per-axis name resolves to its expanded template.

    Raises
    ------
    OptionError
        No such column; the message lists the declared names.

    Examples
    --------
    >>> from modelstats.schema import column
    >>> column("macs").per_batch, column("rf_padding_x").axis
    (True, 'x')
    """
    for c in COLUMNS:
        if c.name == name:
            return c
        if c.is_template:
            head, tail = c.name.split(AXIS)
            axis = name[len(head):len(name) - len(tail)]
            if (name.startswith(head) and name.endswith(tail)
                    and re.fullmatch(r"[a-z][a-z0-9]*", axis)):
                return c.expand((axis,))[0]
    raise OptionError(f"No column {name!r}; the columns are {[c.name for c in COLUMNS]}.")


def layout(axes: Optional[Sequence[str]] = None, *, groups: Sequence[str] = ("cost", "field"),
           features: Iterable[str] = ()) -> tuple[Column, ...]:
    """The concrete columns of a frame, in order.

    Parameters
    ----------
    axes : sequence of str, optional
        Spatial axis names when receptive fields were computed; None leaves out every
        ``field`` column (a model without spatial input, or costs only).
    groups : sequence of {"cost", "field"}
        Which computations the frame holds.
    features : iterable of str
        Optional computations that were run (columns with ``requires`` in it are kept).

    Examples
    --------
    >>> from modelstats.schema import layout
    >>> [c.name for c in layout()][:4]
    ['type', 'input_shape', 'output_shape', 'params']
    >>> [c.name for c in layout(("x",), groups=("field",))][:3]
    ['rf_status', 'rf_size_x', 'rf_stride_x']
    """
    features = tuple(features)
    chosen = []
    for c in COLUMNS:
        if c.group not in groups or not _wanted(c, features):
            continue
        if c.group == "field" and axes is None:
            continue
        chosen.extend(c.expand(axes or ()))
    return tuple(chosen)


def totals(features: Iterable[str] = ()) -> tuple[Total, ...]:
    """The totals that are not column sums, in order, for the computations run."""
    return tuple(t for t in TOTALS if t.requires is None or t.requires in set(features))


def summed(features: Iterable[str] = ()) -> tuple[Column, ...]:
    """Columns summed into ``Report.totals``, in column order."""
    return tuple(c for c in COLUMNS if c.summed and _wanted(c, tuple(features)))


def rankable(features: Iterable[str] = ()) -> tuple[Column, ...]:
    """Columns ``Report.top(by=...)`` and ``--by`` accept, in column order."""
    return tuple(c for c in COLUMNS if c.rankable and _wanted(c, tuple(features)))


def cli_table() -> tuple[Column, ...]:
    """Columns of the short tables (CLI, Markdown); per-axis ones stay templates."""
    return tuple(c for c in COLUMNS if c.in_cli_table)


def axes_of(names: Iterable[str]) -> tuple[str, ...]:
    """The spatial axis names present among frame column names, in order of appearance.

    >>> axes_of(["type", "rf_status", "rf_size_y", "rf_size_x", "rf_stride_y"])
    ('y', 'x')
    """
    found: list[str] = []
    for name in names:
        try:
            axis = column(str(name)).axis
        except OptionError:  # a column a user added to the frame
            continue
        if axis is not None and axis not in found:
            found.append(axis)
    return tuple(found)


def check_batch_size(value: Any, name: str = "batch_size") -> int:
    """``value`` as an int if it is a positive integer (not a bool), else :class:`ShapeError`.

    The batch size multiplies every ``per_batch`` column, so 0, a negative or a fractional
    value would give zero, negative or fractional counts instead of an error.

    Examples
    --------
    >>> check_batch_size(8)
    8
    >>> check_batch_size(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    modelstats.errors.ShapeError: batch_size must be a positive integer ...; received 0. Pass ...
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ShapeError(
            f"{name} must be a positive integer (the number of samples the costs are "
            f"multiplied by); received {value!r}. Pass {name}=1 for per-sample counts."
        )
    return int(value)


# How the dtypes pandas infers read in the docs.
_DOC_DTYPES = {"str": "str", "number": "int or float", "shapes": "list of shapes"}


def _yes(flag: bool) -> str:
    return "yes" if flag else ""


def docs_table() -> str:
    """The Markdown table of columns and totals that docs/api.md embeds (``python -m
    modelstats.schema`` prints it)."""
    lines = [
        "| column | dtype | nullable | per batch | summed | rankable | CLI & Markdown | "
        "description |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in COLUMNS:
        dtype = c.pandas_dtype or _DOC_DTYPES[c.dtype]
        flags = [c.nullable, c.per_batch, c.summed, c.rankable, c.in_cli_table]
        when = f" Only with `{c.requires}`." if c.requires else ""
        lines.append(f"| `{c.name}` | {dtype} | " + " | ".join(_yes(f) for f in flags)
                     + f" | {c.description}{when} |")
    lines += ["", "| total | description |", "|---|---|"]
    lines += [f"| `{c.name}` | Sum of the column" + (" (`<NA>` rows skipped)." if c.nullable
                                                     else ".") + " |"
              for c in summed(FEATURES)]
    lines += [f"| `{t.name}` | {t.description}"
              + (f" Only with `{t.requires}`." if t.requires else "") + " |" for t in TOTALS]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - a documentation helper
    print(docs_table())
