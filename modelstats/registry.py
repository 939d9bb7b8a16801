"""Rules keyed by operation class, held by a :class:`Registry` object.

Each class may have a *cost* rule (MACs and elementwise work) and a *geometry* rule (what the
operation does to spatial positions). A cost rule may be :data:`ZERO`: the operation is known to
cost nothing at inference (dropout, reshapes, augmentation). A class with no rule anywhere on its
MRO is *unsupported*: reported as such, never counted as zero.

A registry holds two tables: the built-in rules it was created with and the rules a user
registers on it. Lookup walks the class's MRO; at each class the user's rule comes before the
built-in one, so a user's registration always wins over a built-in rule for the same class, and
a rule for a subclass wins over one for its base.

This module imports no Keras and no rule module: the built-in rules are collected by
:mod:`modelstats.layers` and the registry in force is made in :mod:`modelstats.rules`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Optional, Union

from modelstats.errors import RuleError
from modelstats.geometry import Geometry

__all__ = [
    "Cost",
    "ZERO",
    "NESTED",
    "BACKEND",
    "Unsupported",
    "Rule",
    "RuleSet",
    "Registry",
    "LayerSupport",
    "dispatching",
]

Shapes = Sequence[tuple]


@dataclass(frozen=True, slots=True)  # (slots: built for every call, half the time to build)
class Cost:
    """Work of one call, per sample.

    macs: multiply-accumulates (each is 2 FLOPs).
    bias: bias additions (1 FLOP each).
    elementwise: other elementwise FLOPs (activations, pooling, merges, softmax, ...).
    norm: batch-norm style affine work that can be folded into a preceding conv.
    state_macs: the part of ``macs`` that multiplies a weight by state the call computes
        itself (a recurrent layer's ``h U``); its input gradient is needed whenever the
        call trains or its input needs a gradient, not only in the latter case.
    pair_macs: the part of ``macs`` that multiplies two activations (attention scores and
        the weighted sum of values); the backward pass computes one product per operand.

    The rest of ``macs`` multiplies the call's input by a weight (a convolution, a Dense),
    or, for a call that reads no weight, its inputs by each other or by constants.
    """

    macs: int = 0
    bias: int = 0
    elementwise: int = 0
    norm: int = 0
    state_macs: int = 0
    pair_macs: int = 0

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.macs + other.macs, self.bias + other.bias,
                    self.elementwise + other.elementwise, self.norm + other.norm,
                    self.state_macs + other.state_macs, self.pair_macs + other.pair_macs)

    def scaled(self, factor: int) -> "Cost":
        return Cost(self.macs * factor, self.bias * factor, self.elementwise * factor,
                    self.norm * factor, self.state_macs * factor, self.pair_macs * factor)


class _Marker:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


#: Cost rule meaning "known to cost nothing at inference".
ZERO: Any = _Marker("ZERO")
#: Cost rule of a nested model kept as one node: the cost engine sums its inner graph with the
#: caller's convention (so folding and every other choice apply identically inside).
NESTED: Any = _Marker("NESTED")
#: Cost rule meaning "count each call from its trace under the active backend"
#: (:mod:`modelstats.backend_trace`, status ``traced``): for operations whose work is not a
#: Keras graph, such as control flow (``keras.ops.fori_loop``, ``cond``), or a layer written
#: with backend code that should not be traced into Keras nodes.
BACKEND: Any = _Marker("BACKEND")


class Unsupported(Exception):
    """Raised by a rule that cannot describe this particular call; the reason is reported.

    A rule raises it for a call it cannot count or map (an activation without a FLOP count, a
    wrapped layer without a rule). Any other exception escaping a rule is a bug in the rule and
    surfaces as :class:`~modelstats.errors.RuleError` naming the layer and the rule.

    Examples
    --------
    >>> from modelstats.registry import Unsupported
    >>> def cost(layer, input_shapes, output_shapes):
    ...     raise Unsupported("the kernel is chosen at run time")
    """

    @property
    def reason(self) -> str:
        return str(self.args[0]) if self.args else "the rule cannot describe this call"


CostRule = Callable[[Any, Shapes, Shapes], Cost]
GeometryRule = Callable[[Any, Shapes, Shapes], Geometry]


@dataclass(frozen=True)
class Rule:
    """Everything registered for one class.

    ``cost`` and ``geometry`` are None where nothing is registered (lookup goes on along the
    MRO). ``foldable`` says a batch normalisation right after this operation can be folded into
    its weights. ``unsupported`` (a reason) marks a class as deliberately opaque, e.g. Lambda.
    """

    cls: type
    cost: Union[CostRule, Any, None] = None
    geometry: Union[GeometryRule, Geometry, None] = None
    foldable: Optional[bool] = None
    unsupported: Optional[str] = None


class RuleSet(list):
    """An ordered list of :class:`Rule` s, as each module of built-in rules declares them."""

    def add(self, cls: type, *, cost=None, geometry=None, foldable: Optional[bool] = None) -> None:
        self.append(Rule(cls, cost, geometry, foldable))

    def opaque(self, cls: type, reason: str) -> None:
        self.append(Rule(cls, unsupported=reason))


#: The rule running now: ``(its registry, the spatial axes of the call's first input or
#: None)``; one context variable, set once per rule call.
_RUNNING: contextvars.ContextVar[tuple["Registry", Optional[tuple]]] = contextvars.ContextVar(
    "modelstats_running_rule"
)


def dispatching() -> "Registry":
    """The registry whose rule is running (for wrapper rules that count an inner layer)."""
    return _RUNNING.get()[0]


def input_spatial_axes(rank: int) -> tuple[int, ...]:
    """Positions (counted with the batch axis) of the spatial axes of the first input of the
    call whose rule is running, a tensor of ``rank`` axes with the batch.

    The graph records each node's layout (channels_last or channels_first, from the
    ``data_format`` of the layers around it); a rule of an operation that has no
    ``data_format`` of its own (a concatenation, a slice, ``keras.ops.take``) reads it here.
    Channels last when the rule runs outside an analysis.
    """
    axes = _RUNNING.get((None, None))[1]
    if axes is None or len(axes) != rank - 2:
        return tuple(range(1, rank - 1))
    return tuple(a + 1 for a in axes)


class LayerSupport(NamedTuple):
    """How modelstats covers one registered class."""

    name: str
    module: str
    cost: str  # "counted", "zero" or "unsupported"
    geometry: str  # "rule", a Geometry kind, or "unsupported"


def _merge(old: Optional[Rule], new: Rule) -> Rule:
    """Registering again for a class replaces what the new rule gives and keeps the rest."""
    if old is None or new.unsupported is not None:
        return new
    return replace(
        old,
        cost=old.cost if new.cost is None else new.cost,
        geometry=old.geometry if new.geometry is None else new.geometry,
        foldable=old.foldable if new.foldable is None else new.foldable,
        unsupported=None,
    )


#: Subclasses from outside Keras that override ``call`` of a class with a rule but do the work
#: that rule counts (checked against the JAX-trace oracle), so the rule still applies. Any other
#: such subclass is traced: its call may compute something else (keras-hub XLNet's
#: ``TwoStreamRelativeAttention`` adds positional and segment attention to
#: ``MultiHeadAttention``'s, which its rule would have missed).
SAME_WORK_OVERRIDES = {
    # adds a key/value cache, None when a model is analysed (keras-hub's TransformerDecoder:
    # GPT-2, BART)
    "keras_hub.src.layers.modeling.cached_multi_head_attention.CachedMultiHeadAttention",
    # adds reverse=True (logits from the table), which the Embedding rule counts
    "keras_hub.src.layers.modeling.reversible_embedding.ReversibleEmbedding",
}


def _own_call(subclasses: Sequence[type]) -> bool:
    """Whether a class below the one with the rule (``subclasses``, from the MRO) defines its
    own ``call``, outside Keras (whose own hierarchy the built-in rules are written for) and
    outside :data:`SAME_WORK_OVERRIDES`."""
    return any("call" in vars(k) and k.__module__.split(".")[0] not in ("keras", "tf_keras")
               and f"{k.__module__}.{k.__qualname__}" not in SAME_WORK_OVERRIDES
               for k in subclasses)


class Registry:
    """Cost and geometry rules per class: the built-in ones and the user's.

    Parameters
    ----------
    builtin : iterable of Rule
        The built-in rules (see :data:`modelstats.layers.BUILTIN_RULES`).

    Examples
    --------
    >>> import keras
    >>> from modelstats.registry import Cost, Registry, ZERO
    >>> registry = Registry()
    >>> registry.register(keras.layers.Dropout, cost=ZERO)
    >>> registry.cost(keras.layers.Dropout(0.5), [(4,)], [(4,)])
    Cost(macs=0, bias=0, elementwise=0, norm=0, state_macs=0, pair_macs=0)
    >>> registry.cost_rule(keras.layers.Dense) is None
    True
    """

    def __init__(self, builtin: Iterable[Rule] = ()) -> None:
        self._builtin: dict[type, Rule] = {}
        self._user: dict[type, Rule] = {}
        self._aliases: dict[type, type] = {}
        # (class, attribute) -> what _find resolved; emptied by every registration. An analysis
        # asks several times per node, and walking the MRO each time was its largest cost.
        self._found: dict[tuple[type, str], tuple[Any, Optional[str]]] = {}
        for rule in builtin:
            self.add_builtin(rule)

    # -- registering ------------------------------------------------------------------------
    def register(self, cls: type, *, cost=None, geometry=None,
                 foldable: Optional[bool] = None) -> None:
        """Register the user's rules for ``cls``; they win over built-in ones.

        See :func:`modelstats.register_layer` for the parameters.
        """
        if not isinstance(cls, type):
            raise TypeError(f"register_layer needs a class, not {cls!r}.")
        if cost is None and geometry is None and foldable is None:
            raise TypeError("register_layer needs cost=, geometry= or both.")
        if geometry is not None and not (isinstance(geometry, Geometry) or callable(geometry)):
            raise TypeError(f"geometry= must be a Geometry or a callable, not {geometry!r}.")
        if cost is not None and not (cost is ZERO or cost is BACKEND or callable(cost)):
            raise TypeError(f"cost= must be ZERO, BACKEND or a callable, not {cost!r}.")
        self._user[cls] = _merge(self._user.get(cls), Rule(cls, cost, geometry, foldable))
        self._found.clear()

    def mark_unsupported(self, cls: type, reason: str) -> None:
        """Declare ``cls`` deliberately opaque: unsupported (with ``reason``) unless a rule is
        registered for it afterwards."""
        self._user[cls] = Rule(cls, unsupported=reason)
        self._found.clear()

    def add_builtin(self, rule: Rule) -> None:
        """Add a built-in rule (a user's rule for the same class still wins)."""
        self._builtin[rule.cls] = _merge(self._builtin.get(rule.cls), rule)
        self._found.clear()

    def alias(self, foreign: type, target: type) -> None:
        """Resolve ``foreign`` (e.g. ``tf_keras.layers.Conv2D``) with the rules of ``target``
        when nothing on its own MRO has a rule."""
        self._aliases[foreign] = target
        self._found.clear()

    def copy(self) -> "Registry":
        """An independent registry with the same rules (for tests and scoped registrations)."""
        other = Registry()
        other._builtin = dict(self._builtin)
        other._user = dict(self._user)
        other._aliases = dict(self._aliases)
        return other

    # -- lookup -----------------------------------------------------------------------------
    def _find(self, cls: type, attribute: str) -> tuple[Any, Optional[str]]:
        """(rule, None) for the first class on the MRO with ``attribute`` set, or (None,
        reason) when an opaque class comes first or nothing is found."""
        key = (cls, attribute)
        if key not in self._found:
            self._found[key] = self._resolve(cls, attribute)
        return self._found[key]

    def _resolve(self, cls: type, attribute: str) -> tuple[Any, Optional[str]]:
        for depth, klass in enumerate(cls.__mro__):
            for table in (self._user, self._builtin):
                rule = table.get(klass)
                if rule is None:
                    continue
                if rule.unsupported is not None:
                    return None, rule.unsupported
                value = getattr(rule, attribute)
                if value is not None:
                    if value is not NESTED and _own_call(cls.__mro__[:depth]):
                        return None, None  # it computes its own call: traced, not this rule
                    return value, None
        for klass in cls.__mro__:
            if klass in self._aliases:
                return self._find(self._aliases[klass], attribute)
        return None, None

    def cost_rule(self, cls: type) -> Any:
        """The cost rule for ``cls``: a callable, :data:`ZERO`, :data:`NESTED`,
        :data:`BACKEND` or None."""
        return self._find(cls, "cost")[0]

    def geometry_rule(self, cls: type) -> Any:
        """The geometry rule for ``cls``: a callable, a Geometry or None."""
        return self._find(cls, "geometry")[0]

    def foldable(self, cls: type) -> bool:
        """Whether a batch normalisation right after ``cls`` can be folded into its weights."""
        return bool(self._find(cls, "foldable")[0])

    def traceable(self, cls: type) -> bool:
        """True when ``cls`` has no cost rule and is not declared opaque: its calls are traced
        into their sublayer and ``keras.ops`` calls instead."""
        rule, reason = self._find(cls, "cost")
        return rule is None and reason is None

    def unsupported_reason(self, cls: type, kind: str = "cost") -> str:
        """Why ``cls`` has no ``kind`` rule (a declared reason, or "no rule")."""
        reason = self._find(cls, kind)[1]
        return reason or f"no {kind} rule for {cls.__name__}"

    # -- dispatch ---------------------------------------------------------------------------
    def cost(self, operation: Any, input_shapes: Shapes, output_shapes: Shapes,
             node: Optional[str] = None, as_class: Optional[type] = None,
             spatial_axes: Optional[tuple] = None) -> Cost:
        """The cost of one call, by the rule for the operation's class (or ``as_class``).

        Raises :class:`Unsupported` when there is no rule or the rule cannot describe this
        call, and :class:`~modelstats.errors.RuleError` when the rule itself fails.
        """
        cls = as_class or type(operation)
        rule = self.cost_rule(cls)
        if rule is ZERO:
            return Cost()
        if rule is NESTED:
            raise Unsupported(f"{cls.__name__} is a nested model: count it with node_costs")
        if rule is BACKEND:
            raise Unsupported(f"{cls.__name__} is counted from its backend trace: count it "
                              "with node_costs")
        return self._apply("cost", rule, cls, operation, input_shapes, output_shapes, node,
                           spatial_axes)

    def geometry(self, operation: Any, input_shapes: Shapes, output_shapes: Shapes,
                 node: Optional[str] = None, as_class: Optional[type] = None,
                 spatial_axes: Optional[tuple] = None) -> Geometry:
        """The geometry of one call (same contract as :meth:`cost`). ``spatial_axes``: those
        of the call's first input (without batch), for :func:`input_spatial_axes`."""
        cls = as_class or type(operation)
        rule = self.geometry_rule(cls)
        if isinstance(rule, Geometry):
            return rule
        return self._apply("geometry", rule, cls, operation, input_shapes, output_shapes, node,
                           spatial_axes)

    def _apply(self, kind, rule, cls, operation, input_shapes, output_shapes, node,
               spatial_axes=None):
        if rule is None:
            raise Unsupported(self.unsupported_reason(cls, kind))
        token = _RUNNING.set((self, spatial_axes))
        try:
            return rule(operation, input_shapes, output_shapes)
        except Unsupported:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug in a rule: surfaced, never hidden
            where = f"'{node}'" if node else f"'{getattr(operation, 'name', operation)}'"
            name = getattr(rule, "__qualname__", repr(rule))
            raise RuleError(
                f"The {kind} rule {name} for layer {where} ({type(operation).__name__}) raised "
                f"{type(exc).__name__}: {exc}. Fix the rule (if it cannot describe this call, "
                "raise modelstats.Unsupported(reason) instead)."
            ) from exc
        finally:
            _RUNNING.reset(token)

    # -- listing ----------------------------------------------------------------------------
    def supported(self) -> list[LayerSupport]:
        """One :class:`LayerSupport` per class with a rule, sorted by name."""
        rows = []
        for cls in {*self._builtin, *self._user}:
            cost, cost_reason = self._find(cls, "cost")
            geometry, geometry_reason = self._find(cls, "geometry")
            rows.append(LayerSupport(
                cls.__name__,
                cls.__module__,
                "unsupported" if cost is None else "zero" if cost is ZERO else "counted",
                "unsupported" if geometry is None
                else geometry.kind if isinstance(geometry, Geometry) else "rule",
            ))
        return sorted(rows, key=lambda row: (row.name, row.module))
