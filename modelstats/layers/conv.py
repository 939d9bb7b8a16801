"""Convolutions: Conv, DepthwiseConv, SeparableConv and ConvTranspose in 1-3 D."""

from __future__ import annotations

import keras

from modelstats.formulas import (
    conv_macs,
    depthwise_macs,
    numel,
    same_padding,
    transposed_conv_macs,
)
from modelstats.geometry import Geometry, Transposed
from modelstats.layers._common import (
    activation_cost,
    as_tuple,
    split_channels,
    window_geometry,
)
from modelstats.registry import Cost, RuleSet

L = keras.layers
RULES = RuleSet()


def _bias_and_activation(layer, out_shape) -> Cost:
    bias = numel(out_shape) if getattr(layer, "use_bias", False) else 0  # one add per output
    return Cost(bias=bias) + activation_cost(layer.activation, numel(out_shape))


def conv_cost(layer, input_shapes, output_shapes) -> Cost:
    _, c_in = split_channels(layer, input_shapes[0])
    spatial_out, c_out = split_channels(layer, output_shapes[0])
    macs = conv_macs(spatial_out, layer.kernel_size, c_in, c_out, getattr(layer, "groups", 1))
    return Cost(macs=macs) + _bias_and_activation(layer, output_shapes[0])


def depthwise_cost(layer, input_shapes, output_shapes) -> Cost:
    _, c_in = split_channels(layer, input_shapes[0])
    spatial_out, _ = split_channels(layer, output_shapes[0])
    macs = depthwise_macs(spatial_out, layer.kernel_size, c_in, layer.depth_multiplier)
    return Cost(macs=macs) + _bias_and_activation(layer, output_shapes[0])


def separable_cost(layer, input_shapes, output_shapes) -> Cost:
    _, c_in = split_channels(layer, input_shapes[0])
    spatial_out, c_out = split_channels(layer, output_shapes[0])
    depthwise = depthwise_macs(spatial_out, layer.kernel_size, c_in, layer.depth_multiplier)
    pointwise = numel(spatial_out) * c_in * layer.depth_multiplier * c_out  # 1x1 conv
    return Cost(macs=depthwise + pointwise) + _bias_and_activation(layer, output_shapes[0])


def transposed_cost(layer, input_shapes, output_shapes) -> Cost:
    spatial_in, c_in = split_channels(layer, input_shapes[0])
    _, c_out = split_channels(layer, output_shapes[0])
    macs = transposed_conv_macs(spatial_in, layer.kernel_size, c_in, c_out)
    return Cost(macs=macs) + _bias_and_activation(layer, output_shapes[0])


def conv_geometry(layer, input_shapes, output_shapes) -> Geometry:
    return window_geometry(layer, input_shapes[0], layer.kernel_size, layer.strides,
                           layer.dilation_rate, layer.padding)


def transposed_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Transposed conv = the adjoint of a forward conv from the output map to the input map;
    TensorFlow pads that forward conv as "same"/"valid" for the *output* size."""
    spatial_out, _ = split_channels(layer, output_shapes[0])
    rank = len(spatial_out)
    axes = []
    for n, k, s, d in zip(
        spatial_out, as_tuple(layer.kernel_size, rank), as_tuple(layer.strides, rank),
        as_tuple(layer.dilation_rate, rank),
    ):
        if layer.padding == "valid":
            left = 0
        elif n is None:
            left = None
        else:
            left = same_padding(n, k, s, d)[0]
        axes.append(Transposed(int(k), int(s), int(d), left))
    return Geometry("window", tuple(axes))


for cls in (L.Conv1D, L.Conv2D, L.Conv3D):
    RULES.add(cls, cost=conv_cost, geometry=conv_geometry, foldable=True)
for cls in (L.DepthwiseConv1D, L.DepthwiseConv2D):
    RULES.add(cls, cost=depthwise_cost, geometry=conv_geometry, foldable=True)
for cls in (L.SeparableConv1D, L.SeparableConv2D):
    RULES.add(cls, cost=separable_cost, geometry=conv_geometry, foldable=True)
for cls in (L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose):
    RULES.add(cls, cost=transposed_cost, geometry=transposed_geometry, foldable=True)
