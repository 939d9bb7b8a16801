"""Complexity guards (counts, not timings): analysing an N-node model does O(N) work.

Timings live in benchmarks/ (docs/benchmarks.md); here the work itself is counted, so the test is
deterministic on any machine.
"""

from __future__ import annotations

import inspect
import sys
from collections import Counter

import pytest

import modelstats
from modelstats import rules
from modelstats.models import deep_conv_net
from modelstats.propagation import Propagation

# Deep enough that any per-layer recursion would pass the recursion limit of
# test_no_recursion_per_layer (the frames already in use + 150) by far, small enough to build
# quickly (Keras builds about 100 layers a second here: 2,000 took 27 s of the suite's budget
# for the two models, 1,000 took 12 s).
N_LAYERS = 500
# Frames an analysis needs on top of its caller's (measured: 150 suffice outside pytest).
ANALYSIS_FRAMES = 150


@pytest.fixture(scope="module")
def chain():
    return deep_conv_net(N_LAYERS)


@pytest.fixture(scope="module")
def residual():
    return deep_conv_net(N_LAYERS, residual=True)


def _counting(monkeypatch, keras, registry):
    """Wrap every rule (in ``registry``, a copy) and Keras' shape inference for the classes in
    the model with counters."""
    calls: Counter = Counter()
    calls["callable rules"] = set()
    for cls in (keras.layers.Conv2D, keras.layers.ReLU, keras.layers.Add):
        for kind in ("cost", "geometry"):
            rule = getattr(registry, f"{kind}_rule")(cls)  # may be registered on a base class
            if callable(rule):
                calls["callable rules"].add((kind, cls.__name__))

                def counted(*args, _rule=rule, _key=(kind, cls.__name__)):
                    calls[_key] += 1
                    return _rule(*args)

                registry.register(cls, **{kind: counted})
        inference = cls.compute_output_spec

        def counted_inference(self, *args, _inference=inference, _key=cls.__name__, **kwargs):
            calls[("shape", _key)] += 1
            return _inference(self, *args, **kwargs)

        monkeypatch.setattr(cls, "compute_output_spec", counted_inference)
    state = Propagation._state

    def counted_state(self, node_id, data):
        calls[("field", "node")] += 1
        return state(self, node_id, data)

    monkeypatch.setattr(Propagation, "_state", counted_state)
    return calls


@pytest.mark.parametrize("model_name", ["chain", "residual"])
def test_each_node_is_inferred_counted_and_mapped_once(request, monkeypatch, keras, model_name):
    model = request.getfixturevalue(model_name)
    per_class = Counter(type(layer).__name__ for layer in model.layers)
    assert sum(per_class.values()) == N_LAYERS
    registry = rules.active().copy()
    calls = _counting(monkeypatch, keras, registry)

    # input_shape makes modelstats re-run Keras' shape inference over the whole graph.
    with rules.using(registry):
        report = modelstats.analyze(model, input_shape=(16, 16, 4))

    assert len(report.layers) == N_LAYERS
    for name in ("Conv2D", "ReLU", "Add"):
        assert calls[("shape", name)] == per_class[name], name
    # Rules that are functions (fixed Geometry values such as ReLU's IDENTITY are not called).
    assert calls["callable rules"] >= {("cost", "Conv2D"), ("geometry", "Conv2D"), ("cost", "ReLU")}
    for kind, name in calls["callable rules"]:
        assert calls[(kind, name)] == per_class[name], (kind, name)
    assert calls[("field", "node")] == N_LAYERS


def test_no_recursion_per_layer(chain):
    """A 500-layer chain analysed with the recursion limit far below the depth."""
    limit = sys.getrecursionlimit()
    allowed = len(inspect.stack(0)) + ANALYSIS_FRAMES
    assert allowed < N_LAYERS * 2 // 3  # a frame per layer could not fit
    sys.setrecursionlimit(allowed)
    try:
        report = modelstats.analyze(chain)
    finally:
        sys.setrecursionlimit(limit)
    last = report.receptive_field(chain.layers[-1].name)
    # 250 stride-1 3x3 convs: size = 1 + 250 * 2
    assert last.size == (501, 501) and last.stride == (1, 1)


def test_the_benchmarks_read_floor_reads_what_analyze_reports(mobilenet):
    """benchmarks/bench_analysis.py times ``read_floor`` as the least any per-node analysis
    costs: to be a fair floor it must read every node ``analyze`` reports (MobileNetV2
    without its top: 154 calls) and build a table of as many columns, with the same
    parameter and shape reads (2,257,984 parameters, a 7x7x1280 map at the end)."""
    from tests.conftest import load_script

    bench = load_script("benchmarks", "bench_analysis")
    report = modelstats.analyze(mobilenet)
    floor = bench.read_floor(mobilenet, len(report.layers.columns))
    assert floor.shape == report.layers.shape == (154, len(report.layers.columns))
    assert list(floor["node"]) == list(report.layers.index)
    assert floor["params_0"].sum() == report.totals["params"] == 2_257_984
    assert floor["output_shapes"].iloc[-1] == [(7, 7, 1280)]
