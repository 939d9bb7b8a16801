"""The registry in force: every built-in rule, plus what the user registers.

:data:`DEFAULT` is created with the built-in rules when this module is imported, so a user's
registration always comes after them and wins. :func:`using` makes another registry (e.g. a
:meth:`~modelstats.registry.Registry.copy`) the one in force within a ``with`` block.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any, Optional

from modelstats.layers import BUILTIN_RULES
from modelstats.registry import LayerSupport, Registry

__all__ = ["DEFAULT", "active", "using", "register_layer", "supported_layers"]

#: The process-wide registry: the built-in rules and every ``register_layer`` call.
DEFAULT = Registry(BUILTIN_RULES)

_ACTIVE: contextvars.ContextVar[Registry] = contextvars.ContextVar(
    "modelstats_registry", default=DEFAULT
)


def active() -> Registry:
    """The registry analyses use now (:data:`DEFAULT` unless inside :func:`using`)."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using(registry: Registry) -> Iterator[Registry]:
    """Analyse with ``registry`` inside the block.

    Examples
    --------
    >>> import keras
    >>> from modelstats import rules
    >>> from modelstats.registry import ZERO
    >>> with rules.using(rules.DEFAULT.copy()) as scoped:
    ...     rules.register_layer(keras.layers.Dense, cost=ZERO)
    ...     scoped.cost_rule(keras.layers.Dense) is ZERO
    True
    >>> rules.DEFAULT.cost_rule(keras.layers.Dense) is ZERO
    False
    """
    token = _ACTIVE.set(registry)
    try:
        yield registry
    finally:
        _ACTIVE.reset(token)


def register_layer(
    cls: type,
    *,
    cost: Any = None,
    geometry: Any = None,
    foldable: Optional[bool] = None,
) -> None:
    """Register how modelstats counts and maps a layer (or operation) class.

    Rules apply to subclasses too (resolved along the MRO). A user's registration always wins
    over the built-in rule for the same class, whenever it is made.

    Parameters
    ----------
    cls : type
        The layer class, e.g. a custom ``keras.layers.Layer`` subclass.
    cost : callable, ZERO or BACKEND, optional
        ``cost(layer, input_shapes, output_shapes) -> Cost``, shapes without batch;
        :data:`~modelstats.registry.ZERO` for a layer that does no arithmetic at inference; or
        :data:`~modelstats.registry.BACKEND` to count each call, kept as one node, from its
        trace under the backend (:mod:`modelstats.backend_trace`).
        A rule that cannot describe a particular call raises :class:`modelstats.Unsupported`
        with the reason; any other exception is reported as a bug in the rule
        (:class:`~modelstats.errors.RuleError`).
    geometry : callable or Geometry, optional
        ``geometry(layer, input_shapes, output_shapes) -> Geometry``, or a fixed Geometry such
        as :data:`modelstats.geometry.IDENTITY`.
    foldable : bool, optional
        True when a batch normalisation right after this layer can be folded into its weights
        (``convention="folded"``), as for convolutions and dense layers.

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
    active().register(cls, cost=cost, geometry=geometry, foldable=foldable)


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
    return active().supported()

