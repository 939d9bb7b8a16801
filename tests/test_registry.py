"""The registry object: who wins, how rules fail, and folding that does not depend on nesting.

Regression tests for three wrong answers of issue 13 (6: a user's rule overwritten by the lazily
loaded built-ins; 7: a bug in a user's rule reported as "no rule"; 8: ``convention="folded"``
giving different totals with ``expand_nested=True`` and ``False``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import modelstats
from modelstats.registry import ZERO, Cost, Registry, Rule, Unsupported


def _dense_model(keras):
    x = keras.Input((5,), name="x")
    return keras.Model(x, keras.layers.Dense(3, use_bias=False, name="dense")(x))


def test_a_rule_registered_before_the_first_analysis_wins():
    """In a fresh process (nothing analysed yet, the state in which the built-ins used to load
    lazily over the user's rule): the user's Dense rule gives its 7 MACs, not the built-in
    5 x 3 = 15."""
    script = textwrap.dedent("""
        import keras, modelstats
        from modelstats.registry import Cost
        modelstats.register_layer(keras.layers.Dense, cost=lambda layer, i, o: Cost(macs=7))
        x = keras.Input((5,))
        model = keras.Model(x, keras.layers.Dense(3, use_bias=False, name="dense")(x))
        print(int(modelstats.count_flops(model).loc["dense", "macs"]))
    """)
    env = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
    import os

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "7"


def test_user_rule_wins_over_builtin_for_the_same_class(keras, registry):
    model = _dense_model(keras)
    assert modelstats.count_flops(model).loc["dense", "macs"] == 5 * 3  # built-in
    modelstats.register_layer(keras.layers.Dense, cost=lambda layer, i, o: Cost(macs=7))
    assert modelstats.count_flops(model).loc["dense", "macs"] == 7
    # only the cost was replaced: the built-in geometry still applies
    assert registry.geometry_rule(keras.layers.Dense) is not None


def test_lookup_order_along_the_mro():
    class Base:
        pass

    class Child(Base):
        pass

    def base_rule(*_):
        return Cost(macs=1)

    def child_rule(*_):
        return Cost(macs=2)

    def user_base_rule(*_):
        return Cost(macs=3)

    registry = Registry([Rule(Base, cost=base_rule), Rule(Child, cost=child_rule)])
    assert registry.cost_rule(Child) is child_rule
    # A user's rule for the base does not override the built-in rule of the more specific class,
    registry.register(Base, cost=user_base_rule)
    assert registry.cost_rule(Child) is child_rule and registry.cost_rule(Base) is user_base_rule
    # but one for the class itself does.
    registry.register(Child, cost=ZERO)
    assert registry.cost_rule(Child) is ZERO
    # A copy is independent of its original.
    copy = registry.copy()
    copy.mark_unsupported(Child, "opaque on purpose")
    assert registry.cost_rule(Child) is ZERO and copy.cost_rule(Child) is None
    with pytest.raises(Unsupported, match="opaque on purpose"):
        copy.cost(Child(), [()], [()])


def test_a_bug_in_a_users_rule_names_the_layer_and_the_rule(keras, registry):
    """A typo'd dict key inside a user's rule (a KeyError, a LookupError) used to be reported
    as "no rule, register one"; it is a RuleError naming the node and the rule."""
    per_class = {"Dense": 1}

    def dense_rule(layer, input_shapes, output_shapes):
        return Cost(macs=per_class["Dnese"])

    modelstats.register_layer(keras.layers.Dense, cost=dense_rule)
    with pytest.raises(modelstats.RuleError) as raised:
        modelstats.count_flops(_dense_model(keras))
    message = str(raised.value)
    assert "'dense'" in message and "dense_rule" in message and "KeyError" in message
    assert isinstance(raised.value, modelstats.ModelStatsError)


def test_a_rule_may_say_unsupported_with_a_reason(keras, registry):
    def dense_rule(layer, input_shapes, output_shapes):
        raise Unsupported("kernel chosen at run time")

    modelstats.register_layer(keras.layers.Dense, cost=dense_rule)
    with pytest.warns(modelstats.UnsupportedLayerWarning):
        table = modelstats.count_flops(_dense_model(keras))
    assert table.loc["dense", "status"] == "unsupported"
    assert table.loc["dense", "note"] == "kernel chosen at run time"
    assert table.attrs["partial"]


def test_bad_registrations_are_refused(keras, registry):
    with pytest.raises(TypeError, match="cost=, geometry="):
        modelstats.register_layer(keras.layers.Dense)
    with pytest.raises(TypeError, match="needs a class"):
        modelstats.register_layer("Dense", cost=ZERO)
    with pytest.raises(TypeError, match="Geometry or a callable"):
        modelstats.register_layer(keras.layers.Dense, geometry="identity")


@pytest.mark.parametrize("convention, expected", [("default", 14_336), ("folded", 14_080)])
def test_folding_does_not_depend_on_expand_nested(keras, convention, expected):
    """Input 8x8x3 -> nested [Conv2D(4, 3, same, no bias) -> BatchNormalization].

    conv: 8*8 positions * 3*3 taps * 3 in * 4 out = 6,912 MACs = 13,824 FLOPs;
    batch norm: 2 FLOPs per element, 2 * 8*8*4 = 512, folded into the conv: 1 add, 256.
    Collapsed (expand_nested=False) the nested model used to be counted with folding off.
    """
    inner_in = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inner_in)
    y = keras.layers.BatchNormalization(name="bn")(y)
    inner = keras.Model(inner_in, y, name="block")
    x = keras.Input((8, 8, 3), name="x")
    model = keras.Model(x, inner(x))
    for expand in (True, False):
        table = modelstats.count_flops(model, convention=convention, expand_nested=expand)
        assert int(table["flops"].sum()) == expected, expand
        assert int(table["macs"].sum()) == 6_912
