"""Rules keyed by operation class, resolved along the class's MRO.

Two tables: a *cost* rule (MACs and elementwise work) and a *geometry* rule (what the layer does
to spatial positions). A cost rule may be :data:`ZERO`: the layer is known to cost nothing at
inference (dropout, reshapes, augmentation). A class with no rule anywhere on its MRO is
*unsupported*: reported as such, never counted as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional, Union

from modelstats.geometry import Geometry

__all__ = [
    "Cost",
    "ZERO",
    "register_layer",
    "supported_layers",
    "cost_rule",
    "geometry_rule",
    "LayerSupport",
]

Shapes = Sequence[tuple]


@dataclass(frozen=True)
class Cost:
    """Work of one call, per sample.

    macs: multiply-accumulates (each is 2 FLOPs).
    bias: bias additions (1 FLOP each).
    elementwise: other elementwise FLOPs (activations, pooling, merges, softmax, ...).
    norm: batch-norm style affine work that can be folded into a preceding conv.
    """

    macs: int = 0
    bias: int = 0
    elementwise: int = 0
    norm: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(
            self.macs + other.macs,
            self.bias + other.bias,
            self.elementwise + other.elementwise,
            self.norm + other.norm,
        )

    def scaled(self, factor: int) -> "Cost":
        return Cost(self.macs * factor, self.bias * factor, self.elementwise * factor,
                    self.norm * factor)


class _Zero:
    def __repr__(self) -> str:
        return "ZERO"


#: Cost rule meaning "known to cost nothing at inference".
ZERO: Any = _Zero()

CostRule = Callable[[Any, Shapes, Shapes], Cost]
GeometryRule = Callable[[Any, Shapes, Shapes], Geometry]

_COST: dict[type, Union[CostRule, _Zero]] = {}
_GEOMETRY: dict[type, Union[GeometryRule, Geometry]] = {}
_UNSUPPORTED: dict[type, str] = {}  # deliberately opaque classes and why
_ALIASES: dict[type, type] = {}  # another framework's class -> the Keras 3 class with its rules


def register_layer(
    cls: type,
    *,
    cost: Union[CostRule, _Zero, None] = None,
    geometry: Union[GeometryRule, Geometry, None] = None,
) -> None:
    """Register how modelstats counts and maps a layer (or operation) class.

    Rules apply to subclasses too (resolved along the MRO), and a user's registration replaces
    the built-in one.

    Parameters
    ----------
    cls : type
        The layer class, e.g. a custom ``keras.layers.Layer`` subclass.
    cost : callable or ZERO, optional
        ``cost(layer, input_shapes, output_shapes) -> Cost``, shapes without batch; or
        :data:`ZERO` for a layer that does no arithmetic at inference.
    geometry : callable or Geometry, optional
        ``geometry(layer, input_shapes, output_shapes) -> Geometry``, or a fixed Geometry such
        as :data:`modelstats.geometry.IDENTITY`.

    Examples
    --------
    >>> import keras, modelstats
    >>> from modelstats.registry import Cost
    >>> class Scale(keras.layers.Layer):
    ...     def call(self, x):
    ...         return x * 2.0
    >>> modelstats.register_layer(
    ...     Scale,
    ...     cost=lambda layer, ins, outs: Cost(elementwise=modelstats.formulas.numel(outs[0])),
    ...     geometry=modelstats.geometry.IDENTITY,
    ... )
    """
    if cost is None and geometry is None:
        raise TypeError("register_layer needs cost=, geometry= or both.")
    if cost is not None:
        _COST[cls] = cost
    if geometry is not None:
        _GEOMETRY[cls] = geometry
    _UNSUPPORTED.pop(cls, None)


def mark_unsupported(cls: type, reason: str) -> None:
    """Declare a class deliberately opaque (e.g. Lambda): counted as unsupported unless a user
    registers a rule for it."""
    _UNSUPPORTED[cls] = reason


def register_alias(foreign: type, keras_class: type) -> None:
    """Count ``foreign`` (e.g. ``tf_keras.layers.Conv2D``) with the rules of ``keras_class``.

    A rule registered for ``foreign`` itself (or one of its bases) still takes precedence.
    """
    _ALIASES[foreign] = keras_class


_BUILTINS_LOADED = False


def _load_builtins() -> None:
    """Register the built-in rules on first lookup (``import modelstats`` stays light)."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from modelstats import layers  # noqa: F401 - registers every built-in rule


def _resolve(table: dict, cls: type) -> Optional[tuple[type, Any]]:
    _load_builtins()
    for klass in cls.__mro__:
        if klass in _UNSUPPORTED:
            return None
        if klass in table:
            return klass, table[klass]
    for klass in cls.__mro__:
        if klass in _ALIASES:
            return _resolve(table, _ALIASES[klass])
    return None


def cost_rule(cls: type) -> Union[CostRule, _Zero, None]:
    """The cost rule for ``cls`` (None: unsupported)."""
    found = _resolve(_COST, cls)
    return None if found is None else found[1]


def geometry_rule(cls: type) -> Union[GeometryRule, Geometry, None]:
    """The geometry rule for ``cls`` (None: unsupported)."""
    found = _resolve(_GEOMETRY, cls)
    return None if found is None else found[1]


def unsupported_reason(cls: type) -> Optional[str]:
    _load_builtins()
    for klass in cls.__mro__:
        if klass in _UNSUPPORTED:
            return _UNSUPPORTED[klass]
    for klass in cls.__mro__:
        if klass in _ALIASES:
            return unsupported_reason(_ALIASES[klass])
    return None


class LayerSupport(NamedTuple):
    """How modelstats covers one registered class."""

    name: str
    module: str
    cost: str  # "counted", "zero" or "unsupported"
    geometry: str  # "rule", a Geometry kind, or "unsupported"


def supported_layers() -> list[LayerSupport]:
    """List every class with a registered rule, and how it is counted and mapped.

    Returns
    -------
    list of LayerSupport
        Sorted by class name; ``cost`` is ``counted`` or ``zero`` (``unsupported`` for classes
        kept opaque on purpose, such as ``Lambda``).

    Examples
    --------
    >>> import modelstats
    >>> rows = {row.name: row for row in modelstats.supported_layers()}
    >>> rows["Conv2D"].cost, rows["Dropout"].cost, rows["Lambda"].cost
    ('counted', 'zero', 'unsupported')
    """
    from modelstats import layers  # noqa: F401 - make sure the built-in rules are registered

    classes = set(_COST) | set(_GEOMETRY) | set(_UNSUPPORTED)
    rows = []
    for cls in classes:
        if cls in _UNSUPPORTED:
            rows.append(LayerSupport(cls.__name__, cls.__module__, "unsupported", "unsupported"))
            continue
        cost = cost_rule(cls)
        geometry = geometry_rule(cls)
        rows.append(
            LayerSupport(
                cls.__name__,
                cls.__module__,
                "unsupported" if cost is None else "zero" if cost is ZERO else "counted",
                "unsupported" if geometry is None
                else geometry.kind if isinstance(geometry, Geometry) else "rule",
            )
        )
    return sorted(rows, key=lambda row: (row.name, row.module))
