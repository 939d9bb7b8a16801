"""MAC counts against the TensorFlow profiler's float operations (an independent oracle).

The profiler registers 2 FLOPs per multiply-accumulate for Conv2D, Conv3D,
DepthwiseConv2dNative, Conv2DBackpropInput (transposed convs) and MatMul, and one per element
for BiasAdd, so ``2 x macs`` and ``bias`` must match those ops exactly.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelstats
from modelstats.rules import DEFAULT
from modelstats.tf_profiler import profiler_flops
from tests.conftest import APPLICATIONS
from tests.oracles import write_profiler_golden

MATMUL_OPS = ("Conv2D", "Conv3D", "DepthwiseConv2dNative", "Conv2DBackpropInput",
              "Conv3DBackpropInputV2", "MatMul", "BatchMatMulV2", "BatchMatMulV3")


@st.composite
def single_layer(draw):
    """(input shape, layer factory, dilated?) — the layer is built inside the test, since Keras
    layers draw random seeds when constructed."""
    return draw(_single_layer())


@st.composite
def _single_layer(draw):
    import keras

    L = keras.layers
    kind = draw(st.sampled_from(["conv1d", "conv2d", "conv3d", "depthwise", "separable",
                                 "transpose", "dense2d", "densend"]))
    use_bias = draw(st.booleans())
    k = draw(st.integers(1, 4))
    s = draw(st.integers(1, 3))
    d = 1 if s > 1 else draw(st.integers(1, 2))
    padding = draw(st.sampled_from(["same", "valid"]))
    size = draw(st.integers(8, 16))
    c_in = draw(st.integers(1, 5))
    c_out = draw(st.integers(1, 6))
    multiplier = draw(st.integers(1, 3))
    if kind == "conv1d":
        return (size, c_in), lambda: L.Conv1D(c_out, k, s, padding, dilation_rate=d,
                                              use_bias=use_bias), d > 1
    if kind == "conv2d":
        return (size, size + 1, c_in), lambda: L.Conv2D(c_out, (k, k + 1), s, padding,
                                                        dilation_rate=d, use_bias=use_bias), d > 1
    if kind == "conv3d":
        return (6, 7, 8, c_in), lambda: L.Conv3D(c_out, k, s, padding, use_bias=use_bias), False
    if kind == "depthwise":
        return (size, size, c_in), lambda: L.DepthwiseConv2D(
            k, s, padding, dilation_rate=d, depth_multiplier=multiplier, use_bias=use_bias), d > 1
    if kind == "separable":
        return (size, size, c_in), lambda: L.SeparableConv2D(
            c_out, k, s, padding, depth_multiplier=min(multiplier, 2), use_bias=use_bias), False
    if kind == "transpose":
        # TensorFlow's Conv2DBackpropInput formula assumes an output of exactly n * stride,
        # which is what "same" padding gives (see docs/conventions.md).
        return (size, size, c_in), lambda: L.Conv2DTranspose(c_out, k, s, "same",
                                                             use_bias=use_bias), False
    if kind == "dense2d":
        return (c_in * 7,), lambda: L.Dense(c_out, use_bias=use_bias), False
    return (3, 5, c_in), lambda: L.Dense(c_out, use_bias=use_bias), False


@settings(max_examples=30)
@given(case=single_layer())
def test_single_layer_macs_match_profiler(case, keras):
    shape, factory, dilated = case
    layer = factory()
    x = keras.Input(shape)
    model = keras.Model(x, layer(x))
    table = modelstats.count_flops(model)
    row = table.iloc[-1]
    counted = DEFAULT.cost(layer, [shape], [tuple(model.output.shape[1:])])
    ops = profiler_flops(model)
    profiled = sum(ops.get(op, 0) for op in MATMUL_OPS)
    if dilated:
        # TensorFlow runs a dilated conv as SpaceToBatchND + conv on a padded grid, so its op
        # does (and the profiler counts) at least the mathematical work; see docs/conventions.md.
        assert profiled >= 2 * row["macs"]
    else:
        assert 2 * row["macs"] == profiled
    assert counted.bias == ops.get("BiasAdd", 0) + ops.get("AddV2", 0)


# Profiling an application takes 8-20 s here: every one is compared with the profiler's numbers
# recorded by tests/oracles/write_profiler_golden.py, and two are profiled again live.
PROFILED = write_profiler_golden.load()


def _visible_macs(model) -> int:
    graph = modelstats.to_networkx(model)
    table = modelstats.count_flops(graph)
    # Grouped convs (ConvNeXt's depthwise 7x7) run as a loop the profiler cannot see into.
    grouped = [n for n, d in graph.nodes(data=True) if getattr(d["operation"], "groups", 1) > 1]
    return int(table.drop(index=grouped)["macs"].sum())


@pytest.mark.parametrize("name", APPLICATIONS)
def test_application_matmul_flops_match_profiler(application, name):
    ops = PROFILED[name]
    assert 2 * _visible_macs(application(name)) == sum(ops.get(op, 0) for op in MATMUL_OPS)


@pytest.mark.slow
@pytest.mark.parametrize("name", write_profiler_golden.LIVE)
def test_profiler_golden_file_is_not_stale(application, name):
    found = {op: int(value) for op, value in profiler_flops(application(name)).items()}
    assert found == PROFILED[name]


def test_grouped_conv_golden(keras):
    """Grouped convs run on TensorFlow's CPU as a loop the profiler cannot see into, so the
    closed form is the check: each output channel sees C_in / groups input channels."""
    x = keras.Input((10, 10, 6))
    model = keras.Model(x, keras.layers.Conv2D(9, 3, groups=3, use_bias=False, name="g")(x))
    assert modelstats.count_flops(model).loc["g", "macs"] == 8 * 8 * 3 * 3 * (6 // 3) * 9
