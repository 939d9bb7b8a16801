"""Helpers shared by the layer adapters: data formats, activations, common rule factories."""

from __future__ import annotations

from collections.abc import Callable

from modelstats.formulas import dim_size, numel, same_padding
from modelstats.geometry import Window
from modelstats.registry import Cost, Unsupported

#: Elementary operations per element for each activation function (transcendental functions
#: such as exp, tanh and erf count as one). The per-function derivation is in docs/conventions.md.
ACTIVATION_FLOPS: dict[str, int] = {
    "linear": 0,
    "relu": 1,  # max(x, 0)
    "relu6": 2,  # min(max(x, 0), 6)
    "leaky_relu": 2,  # mul, max
    "elu": 3,  # exp, sub, select
    "selu": 4,  # exp, sub, mul, select (+ scale folded)
    "celu": 4,
    "sigmoid": 4,  # neg, exp, add, div
    "tanh": 1,
    "hard_sigmoid": 3,  # mul, add, clip
    "hard_silu": 4,  # hard_sigmoid + mul
    "hard_swish": 4,
    "silu": 5,  # sigmoid + mul
    "swish": 5,
    "gelu": 9,  # tanh approximation: x^3 (2), mul, add, mul, tanh, add, mul, mul
    "gelu_approximate": 9,  # keras-hub's name for the same tanh approximation
    "quick_gelu": 6,  # x * sigmoid(1.702 x): mul, sigmoid (4), mul (keras-hub's CLIP)
    "softplus": 3,  # exp, add, log
    "softsign": 3,  # abs, add, div
    "softmax": 5,  # shift (2), exp, sum and divide (2): TensorFlow profiler's 5
    "log_softmax": 5,
    "exponential": 1,
    "mish": 5,  # softplus (3), tanh, mul
    "log_sigmoid": 5,
    "hard_tanh": 2,
    "hard_shrink": 2,
    "soft_shrink": 3,
    "tanh_shrink": 2,
    "squareplus": 4,
    "sparse_plus": 3,
    "sparsemax": 5,
    "threshold": 2,
    "glu": 5,
}


def activation_name(fn) -> str:
    return getattr(fn, "__name__", str(fn)) if fn is not None else "linear"


def activation_cost(fn, elements: int) -> Cost:
    """Elementwise cost of an activation function applied to ``elements`` values."""
    name = activation_name(fn)
    if name not in ACTIVATION_FLOPS:
        raise Unsupported(
            f"no FLOP count for activation '{name}'; register the layer with register_layer()"
        )
    return Cost(elementwise=ACTIVATION_FLOPS[name] * elements)


def channels_last(layer) -> bool:
    return getattr(layer, "data_format", "channels_last") != "channels_first"


def split_channels(layer, shape: tuple) -> tuple[tuple, int]:
    """(spatial dims, channels) of a shape without batch, honouring ``data_format``."""
    if channels_last(layer):
        return tuple(shape[:-1]), dim_size(shape[-1])
    return tuple(shape[1:]), dim_size(shape[0])


def as_tuple(value, rank: int) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def window_axes(layer, spatial_in: tuple, kernel, strides, dilation, padding: str) -> tuple:
    """Per-axis windows of a conv or pooling layer, resolving TensorFlow "same" padding from
    the input size of each axis (unknown size: padding None, unless the stride is 1)."""
    axes = []
    for n, k, s, d in zip(spatial_in, kernel, strides, dilation):
        if padding == "valid":
            left = 0
        elif padding == "causal":
            left = d * (k - 1)
        elif n is None and s != 1:
            left = None  # depends on the unknown input size
        else:
            left = same_padding(n if n is not None else 1, k, s, d)[0]
        axes.append(Window(int(k), int(s), int(d), left))
    return tuple(axes)


def window_geometry(layer, input_shape: tuple, kernel, strides, dilation, padding: str):
    """Geometry of a conv or pooling layer from its (possibly scalar) hyper-parameters."""
    from modelstats.geometry import Geometry

    spatial_in, _ = split_channels(layer, input_shape)
    rank = len(spatial_in)
    return Geometry("window", window_axes(
        layer, spatial_in, as_tuple(kernel, rank), as_tuple(strides, rank),
        as_tuple(dilation, rank), padding,
    ))


def elementwise(per_element: int = 1, of: str = "output") -> Callable:
    """Cost rule factory: ``per_element`` FLOPs for every output (or input) element."""

    def rule(layer, input_shapes, output_shapes) -> Cost:
        shape = output_shapes[0] if of == "output" else input_shapes[0]
        return Cost(elementwise=per_element * numel(shape))

    rule.__name__ = f"elementwise_{per_element}_per_{of}"
    return rule
