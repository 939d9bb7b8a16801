"""Built-in rules for Keras 3 layers and operations, one module per family.

Each module declares its rules in a :class:`~modelstats.registry.RuleSet` named ``RULES``;
importing them registers nothing. :data:`BUILTIN_RULES` collects them, and
:mod:`modelstats.rules` creates the registry in force from it.
"""

from modelstats.layers import (
    applications,
    attention,
    conv,
    core,
    merge,
    nested,
    norm,
    ops,
    ops_extra,
    pooling,
    recurrent,
    reshaping,
)

#: Every built-in rule, family by family.
BUILTIN_RULES = tuple(
    rule
    for family in (applications, attention, conv, core, merge, nested, norm, ops, ops_extra,
                   pooling, recurrent, reshaping)
    for rule in family.RULES
)
