"""Spatial axes per node (channels_first), fields at unknown sizes, and multi-output edges.

Regression tests for issue 13: #4 (``box(clip=True)`` of a channels_first model was None,
because propagation took the last axis for the channels), the doc/code disagreement on
``center``/``box`` at unknown sizes, and edges that kept only the first of several tensors one
producer passes to one consumer.
"""

from __future__ import annotations

import pytest

import modelstats


def _convs(keras, data_format, size=16):
    shape = (3, size, size) if data_format == "channels_first" else (size, size, 3)
    x = keras.Input(shape, name="image")
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", data_format=data_format,
                            name="c1")(x)
    y = keras.layers.ReLU(name="relu")(y)
    y = keras.layers.Conv2D(4, 3, data_format=data_format, name="c2")(y)
    y = keras.layers.MaxPooling2D(2, data_format=data_format, name="pool")(y)
    return keras.Model(x, y)


def test_channels_first_fields_equal_the_channels_last_twin(keras):
    """16x16 input; c1: 3x3 stride 2 "same" (TF pads 1 in total, 0 on the left), 8x8;
    c2: 3x3 valid, 6x6, field 3 + 2*2 = 7, stride 2, padding 0; pool 2x2: 3x3,
    field 7 + 1*2 = 9, stride 4.

    Pool unit 2 reads c2 units 4..5, which read c1 units 4..7, which read input pixels
    8..16: unclipped (8, 16), clipped to the 16-pixel image (8, 15). Pool unit 0: c2 0..1,
    c1 0..3, pixels 0..8. (channels_first used to clip the y axis to the 4 channels: None.)
    """
    first = _convs(keras, "channels_first")
    last = _convs(keras, "channels_last")
    graph = modelstats.to_networkx(first)
    assert graph.nodes["image"]["spatial_axes"] == (1, 2)
    assert graph.nodes["relu"]["spatial_axes"] == (1, 2)  # inherits its input's layout
    assert modelstats.to_networkx(last).nodes["image"]["spatial_axes"] == (0, 1)

    rf_first = modelstats.receptive_field(first, "pool")
    rf_last = modelstats.receptive_field(last, "pool")
    assert (rf_first.size, rf_first.stride, rf_first.padding) == ((9, 9), (4, 4), (0, 0))
    assert (rf_last.size, rf_last.stride, rf_last.padding) == ((9, 9), (4, 4), (0, 0))
    assert rf_first.box((2, 2)) == ((8, 16), (8, 16))
    for position in [(0, 0), (1, 2), (2, 2)]:
        clipped = rf_first.box(position, clip=True)
        assert clipped is not None
        assert clipped == rf_last.box(position, clip=True)
    assert rf_first.box((2, 2), clip=True) == ((8, 15), (8, 15))
    assert rf_first.box((0, 0), clip=True) == ((0, 8), (0, 8))


def test_channels_first_costs_equal_the_channels_last_twin(keras):
    first = modelstats.count_flops(_convs(keras, "channels_first"))
    last = modelstats.count_flops(_convs(keras, "channels_last"))
    # c1: 8*8 * 3*3 * 3 * 4 = 6,912 MACs; c2: 6*6 * 3*3 * 4 * 4 = 5,184 MACs
    assert first.loc["c1", "macs"] == last.loc["c1", "macs"] == 6_912
    assert first.loc["c2", "macs"] == last.loc["c2", "macs"] == 5_184
    assert list(first["flops"]) == list(last["flops"])


def test_center_and_box_at_an_unknown_size_raise_asking_for_input_shape(keras):
    x = keras.Input((None, None, 3), name="image")
    y = keras.layers.Conv2D(4, 3, padding="same", name="same1")(x)  # stride 1: padding known
    z = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="same2")(y)
    model = keras.Model(x, z)
    known = modelstats.receptive_field(model, "same1")
    assert known.padding == (1, 1) and known.box((0, 0)) == ((-1, 1), (-1, 1))
    unknown = modelstats.receptive_field(model, "same2")
    assert unknown.size == (5, 5) and unknown.padding == (None, None)
    with pytest.raises(modelstats.ShapeError, match="input_shape"):
        unknown.center((0, 0))
    with pytest.raises(modelstats.ShapeError, match="input_shape"):
        unknown.box((0, 0))
    # With the size given, both are exact: same2 maps 9 -> 5 units, TF pads (5-1)*2 + 3 - 9 = 2
    # in total, 1 on the left; composed with same1's 1: p = 1 + 1*1 = 2, r = 3 + 2*1 = 5.
    fixed = modelstats.receptive_field(model, "same2", input_shape=(9, 9, 3))
    assert fixed.padding == (2, 2) and fixed.box((0, 0)) == ((-2, 2), (-2, 2))


def test_several_outputs_of_one_producer_into_one_consumer(keras):
    """LSTM(return_state=True) gives [output, h, c]; h and c both feed one Add."""
    x = keras.Input((5, 3), name="seq")
    _, h, c = keras.layers.LSTM(4, return_state=True, name="lstm")(x)
    model = keras.Model(x, keras.layers.Add(name="add")([h, c]))
    graph = modelstats.to_networkx(model)
    edge = graph.edges["lstm", "add"]
    assert edge["indices"] == [0, 1]
    assert edge["output_indices"] == [1, 2]
    assert edge["shapes"] == [(4,), (4,)]
    assert graph.nodes["add"]["inputs"] == [("lstm", 1), ("lstm", 2)]
