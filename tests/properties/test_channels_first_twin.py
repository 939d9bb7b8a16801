"""channels_first models against their channels_last twins.

TensorFlow's CPU kernels cannot run channels_first convolutions, so the gradient oracle
(``test_rf_oracle.py``) probes only channels_last models. modelstats never runs a model, it
reads shapes: on the channels_first twin of a spec (``build(spec, data_format=
"channels_first")``: the same layers, names and spatial sizes, channels on axis 1) every answer
must be the one the oracle already checked on the channels_last model. Per node: the recorded
layout and shapes, the ``rf_*`` columns of ``receptive_field(model)`` and the ``count_flops``
costs; for the output, ``box(position)`` and ``box(position, clip=True)`` at the corners, the
centre and two random positions (spatial coordinates: the same in both twins).

Nothing is run, so this is cheap: only building and analysing two models per example.

This property found rules that assumed the channels are the last axis (Concatenate(axis=1),
``keras.ops.take``/``split`` along axis 1, GetItem crops of a channels_first tensor); their
smallest specs are kept as regression tests (:data:`FOUND_SPECS`).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, event, example, given, note, settings
from hypothesis import strategies as st

import modelstats
from tests.properties.strategies import NotExpressible, build, geometry_specs

FIRST, LAST = "channels_first", "channels_last"
RF_COLUMNS_PREFIX = "rf_"
COST_COLUMNS = ["params", "macs", "flops", "activations", "status"]


def build_twins(spec):
    """(channels_last, channels_first) models of a spec, each built after ``clear_session`` so
    auto-named ``keras.ops`` nodes (``get_item``, ``take``, ...) get the same ids in both.
    Raises what ``build`` raises (the channels_first build first: NotExpressible is raised
    before any layer is made)."""
    import keras

    keras.backend.clear_session(free_memory=False)  # no gc.collect: 0.5 s a call
    first = build(spec, data_format=FIRST)
    keras.backend.clear_session(free_memory=False)  # no gc.collect: 0.5 s a call
    last = build(spec, data_format=LAST)
    return last, first


def plain(value):
    """A table cell as a comparable Python value (NaN and <NA> as None)."""
    if value is None or (not isinstance(value, (str, list, tuple)) and pd.isna(value)):
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return int(value) if value.is_integer() else value
    return value


def same(a, b) -> bool:
    a, b = plain(a), plain(b)
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    return a == b


def assert_tables_agree(last: pd.DataFrame, first: pd.DataFrame, columns, what: str):
    missing = [n for n in last.index if n not in first.index]
    assert not missing, f"{what}: nodes missing from the channels_first twin: {missing}"
    assert list(first.index) == list(last.index), what
    diffs = [
        f"{node}.{column}: channels_last {plain(last.at[node, column])!r}, "
        f"channels_first {plain(first.at[node, column])!r}"
        for node in last.index for column in columns
        if not same(last.at[node, column], first.at[node, column])
    ]
    assert not diffs, f"{what} differ:\n" + "\n".join(diffs)


def probe_positions(out_spatial, rng):
    corners = [tuple(0 for _ in out_spatial), tuple(n - 1 for n in out_spatial)]
    centre = [tuple(n // 2 for n in out_spatial)]
    random = [tuple(int(rng.integers(0, n)) for n in out_spatial) for _ in range(2)]
    return corners + centre + random


def assert_twins_agree(spec, seed: int = 0, models=None):
    last, first = build_twins(spec) if models is None else models
    rank = spec[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.MisalignedMergeWarning)
        g_last, g_first = modelstats.to_networkx(last), modelstats.to_networkx(first)

        # The same graph, channels moved to axis 1 on every node.
        assert list(g_first.nodes) == list(g_last.nodes)
        assert set(g_first.edges) == set(g_last.edges)
        for node, data in g_last.nodes(data=True):
            twin = g_first.nodes[node]
            assert twin["data_format"] == FIRST, node
            assert data["data_format"] == LAST, node
            assert twin["spatial_axes"] == tuple(a + 1 for a in data["spatial_axes"]), node
            shapes = [tuple(s) for s in data["output_shapes"]]  # split: several
            assert all(len(s) == rank + 1 for s in shapes), node
            assert [tuple(s) for s in twin["output_shapes"]] == \
                [(s[-1], *s[:-1]) for s in shapes], node

        # Every node's field.
        # (On the graphs: each call on a model would convert it again.)
        rf_last, rf_first = modelstats.receptive_field(g_last), modelstats.receptive_field(g_first)
        assert list(rf_first.columns) == list(rf_last.columns)
        columns = [c for c in rf_last.columns if c.startswith(RF_COLUMNS_PREFIX)]
        assert_tables_agree(rf_last, rf_first, columns, "receptive fields")

        # Every node's cost.
        cost_last, cost_first = modelstats.count_flops(g_last), modelstats.count_flops(g_first)
        assert_tables_agree(cost_last, cost_first, COST_COLUMNS, "costs")

        # The output's boxes.
        (out_name,) = g_last.graph["outputs"]
        assert list(g_first.graph["outputs"]) == [out_name]
        field_last = modelstats.receptive_field(g_last, out_name)
        field_first = modelstats.receptive_field(g_first, out_name)
    assert field_first.status == field_last.status
    assert (field_first.size, field_first.stride, field_first.padding) == \
        (field_last.size, field_last.stride, field_last.padding)
    if field_last.status != "spatial":
        return
    out_spatial = tuple(last.output.shape[1:-1])
    assert tuple(first.output.shape[2:]) == out_spatial
    rng = np.random.default_rng(seed)
    for position in probe_positions(out_spatial, rng):
        assert field_first.box(position) == field_last.box(position), position
        assert field_first.box(position, clip=True) == field_last.box(position, clip=True), \
            position


# A channel slice from 0 and a 0::1 GetItem (which agree, unlike the gaps), a resize and a
# product of per-axis paths; in 1-D, padding, a strided transposed convolution, adaptive
# pooling and a strided branch.
@example(spec=(2, 16, [("conv", 3, 2, 1, "same"), ("chslice", "getitem", 3),
                       ("getcrop", 0, 1), ("resize", 11, 7, "bilinear"),
                       ("twin", "multiply", 1, (((1, 3), (2, 1)), ((3, 1), (1, 2))))]), seed=0)
@example(spec=(1, 20, [("zeropad", 2, 1), ("transpose", 3, 2, "same"), ("adaptive", 7),
                       ("branch", "add", 2, 5, 2)]), seed=0)
@given(spec=geometry_specs(), seed=st.integers(0, 2**16))
# More than the ci profile's default: nothing runs, an example is two builds (~0.1 s).
@settings(max_examples=max(40, settings.default.max_examples))
def test_channels_first_twin_agrees(spec, seed):
    if all(block[0] == "getcrop" for block in spec[2]):
        # Only x[:, a::s] calls: no layer says where the channels are, and modelstats takes a
        # layout nothing declares to be channels_last (documented), so there is no twin.
        event("skipped: no layer declares a data_format")
        assume(False)
    try:
        models = build_twins(spec)
    except NotExpressible as e:  # a 1-D Cropping1D or UpSampling1D: no channels_first form
        event(f"skipped: {e}")
        assume(False)
    except Exception:  # noqa: BLE001 - a size became invalid: not an architecture
        # The sizes are the same in both twins: the channels_last build must fail too.
        with pytest.raises(Exception):  # noqa: B017
            build(spec)
        assume(False)
    note(repr(spec))
    for kind in {b[0] for b in spec[2]}:
        event(f"block {kind}")
    assert_twins_agree(spec, seed, models)


# What this property found (rules assuming channels last), each on its smallest spec.
FOUND_SPECS = [
    pytest.param((2, 12, [("branch", "concat", 3, 3, 1)]), id="branch-concat-axis1"),
    pytest.param((1, 20, [("twin", "concat", 1, (((2,), (1,)), ((4,), (1,))))]),
                 id="twin-concat-axis1"),
    pytest.param((2, 16, [("conv", 3, 1, 1, "valid"), ("chslice", "take", 5)]),
                 id="ops-take-axis1"),
    pytest.param((2, 16, [("conv", 3, 1, 1, "valid"), ("chslice", "split", 5)]),
                 id="ops-split-axis1"),
    pytest.param((2, 16, [("conv", 3, 1, 1, "valid"), ("getcrop", 1, 2)]), id="getitem-crop-2d"),
    pytest.param((1, 16, [("conv", 3, 1, 1, "valid"), ("getcrop", 1, 2)]), id="getitem-crop-1d"),
]


@pytest.mark.parametrize("spec", FOUND_SPECS)
def test_found_specs_agree(spec):
    assert_twins_agree(spec)


def test_channels_first_twin_of_a_1d_crop_does_not_exist():
    with pytest.raises(NotExpressible):
        build((1, 16, [("crop", 1, 1)]), data_format=FIRST)
    with pytest.raises(NotExpressible):
        build((1, 16, [("upsample", 2, "nearest")]), data_format=FIRST)
