"""Rules for the rest of ``keras.ops``: convolutions, pooling, attention, normalisation,
image resizing, products, statistics, sorting, FFTs, creation ops and declared-opaque ones.

Custom layers are traced into their ``keras.ops`` calls, so every operation class of
``keras.src.ops.{numpy,math,nn,core,image,linalg}`` has a cost rule or is declared opaque
with a reason (tests/test_ops_coverage.py walks them). Conventions are in docs/conventions.md,
section "keras.ops".

An operation's operands that are not graph tensors (a conv kernel held in a variable) are
read from the call's arguments (:func:`~modelstats.adapters.call_arguments_of`); tensors take
the analysed shapes (``input_shapes``, without batch: batch 1 is put back here).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import keras
import keras.src.ops.core as core_ops
import keras.src.ops.image as image_ops
import keras.src.ops.linalg as linalg_ops
import keras.src.ops.math as math_ops
import keras.src.ops.nn as nn_ops
import keras.src.ops.numpy as numpy_ops

from modelstats.adapters import call_arguments_of, is_graph_tensor
from modelstats.formulas import attention_macs, numel
from modelstats.geometry import BREAKS, GLOBAL, IDENTITY, Geometry
from modelstats.layers._common import (
    ACTIVATION_FLOPS,
    as_tuple,
    elementwise,
    split_channels,
    window_geometry,
)
from modelstats.layers.attention import attention_geometry
from modelstats.layers.conv import transposed_geometry
from modelstats.layers.norm import rms_norm_cost
from modelstats.layers.ops import axis_geometry, reduction_geometry
from modelstats.layers.pooling import adaptive_geometry, interpolation_cost, resizing_geometry
from modelstats.registry import BACKEND, Cost, RuleSet, Unsupported, ZERO

RULES = RuleSet()

#: FLOPs per point of a complex FFT of N points: 5 N log2 N (the radix-2 count, as FFTW's
#: benchmarks report); a real FFT is half of that.
FFT_FLOPS_PER_POINT_LOG = 5


# -- helpers -------------------------------------------------------------------------------------

def _operand_shapes(op, input_shapes) -> list:
    """Full shapes (batch 1 for graph tensors) of the call's positional operands; None for
    an operand without a shape. Graph tensors take the analysed shapes, in order."""
    args = call_arguments_of(op)
    if args is None:
        return [(1, *s) for s in input_shapes]
    tensors = iter(input_shapes)
    shapes = []
    for value in args:
        if is_graph_tensor(value):
            shape = next(tensors, None)
            shapes.append(None if shape is None else (1, *shape))
        elif hasattr(value, "shape"):
            try:
                shapes.append(tuple(int(d) for d in value.shape))
            except TypeError:
                shapes.append(None)
        else:
            shapes.append(None)
    return shapes


def _operand(op, input_shapes, index: int, what: str) -> tuple:
    shapes = _operand_shapes(op, input_shapes)
    if len(shapes) <= index or shapes[index] is None:
        raise Unsupported(f"{type(op).__name__}: the shape of the {what} is not known")
    return shapes[index]


def _layout(op):
    """A layer-like object carrying the op's resolved ``data_format``."""
    fmt = getattr(op, "data_format", None) or keras.config.image_data_format()
    return SimpleNamespace(data_format=fmt)


def _padding(op) -> str:
    return str(getattr(op, "padding", "valid")).lower()


# -- convolutions (nn.Conv, DepthwiseConv, SeparableConv, ConvTranspose) --------------------------

def op_conv_cost(op, input_shapes, output_shapes) -> Cost:
    # One MAC per kernel entry at every output position. ops.conv's kernel is
    # (*k, c_in / groups, c_out): taps * (c_in / groups) * c_out, the grouping in its shape;
    # ops.depthwise_conv's is (*k, c_in, multiplier). No bias (the ops add none).
    kernel = _operand(op, input_shapes, 1, "kernel")
    spatial_out, _ = split_channels(_layout(op), output_shapes[0])
    return Cost(macs=numel(spatial_out) * numel(kernel))


def op_separable_cost(op, input_shapes, output_shapes) -> Cost:
    # depthwise: positions * taps * c_in * multiplier; pointwise (1.., c_in*mult, c_out):
    # positions * c_in * multiplier * c_out.
    depthwise = _operand(op, input_shapes, 1, "depthwise kernel")
    pointwise = _operand(op, input_shapes, 2, "pointwise kernel")
    spatial_out, _ = split_channels(_layout(op), output_shapes[0])
    return Cost(macs=numel(spatial_out) * (numel(depthwise) + numel(pointwise)))


def op_transposed_cost(op, input_shapes, output_shapes) -> Cost:
    # kernel (*k, c_out, c_in): every input value times a full kernel of outputs, as the
    # Conv*Transpose layers: input positions * taps * c_in * c_out MACs.
    kernel = _operand(op, input_shapes, 1, "kernel")
    spatial_in, _ = split_channels(_layout(op), input_shapes[0])
    return Cost(macs=numel(spatial_in) * numel(kernel))


def op_conv_geometry(op, input_shapes, output_shapes) -> Geometry:
    kernel = _operand(op, input_shapes, 1, "kernel")
    rank = len(kernel) - 2
    return window_geometry(_layout(op), input_shapes[0], kernel[:rank],
                           as_tuple(op.strides, rank), as_tuple(op.dilation_rate, rank),
                           _padding(op))


def op_transposed_geometry(op, input_shapes, output_shapes) -> Geometry:
    kernel = _operand(op, input_shapes, 1, "kernel")
    rank = len(kernel) - 2
    if op.output_padding is not None:
        return Geometry("breaks", note="ConvTranspose with output_padding")
    shim = SimpleNamespace(data_format=_layout(op).data_format, kernel_size=kernel[:rank],
                           strides=op.strides, dilation_rate=op.dilation_rate,
                           padding=_padding(op))
    return transposed_geometry(shim, input_shapes, output_shapes)


# -- pooling ---------------------------------------------------------------------------------------

def op_pool_cost(op, input_shapes, output_shapes) -> Cost:
    # As the pooling layers: one compare or add per window tap per output element.
    spatial_out, _ = split_channels(_layout(op), output_shapes[0])
    return Cost(elementwise=numel(output_shapes[0]) * numel(as_tuple(op.pool_size,
                                                                     len(spatial_out))))


def op_pool_geometry(op, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(_layout(op), input_shapes[0])
    rank = len(spatial_in)
    pool = as_tuple(op.pool_size, rank)
    strides = pool if op.strides is None else as_tuple(op.strides, rank)
    return window_geometry(_layout(op), input_shapes[0], pool, strides, 1, _padding(op))


def op_adaptive_geometry(op, input_shapes, output_shapes) -> Geometry:
    return adaptive_geometry(_layout(op), input_shapes, output_shapes)


# -- attention -------------------------------------------------------------------------------------

def op_attention_cost(op, input_shapes, output_shapes) -> Cost:
    # query (T, N, H), key (S, K, H), value (S, K, Hv) without batch (K divides N, grouped):
    # Q Kᵀ and softmax(scores) V: attention_macs(T, S, N, H, Hv) = N * (T*S*H + T*S*Hv) MACs;
    # scaling the scores (1 per score) and softmax (5 per score) as elementwise.
    q = _operand(op, input_shapes, 0, "query")
    k = _operand(op, input_shapes, 1, "key")
    v = _operand(op, input_shapes, 2, "value")
    if len(q) == 3:  # (batch, T, H): one head
        q, k, v = (*q[:2], 1, q[2]), (*k[:2], 1, k[2]), (*v[:2], 1, v[2])
    _, t, heads, h = q
    s, hv = k[1], v[-1]
    scores = heads * t * s
    return Cost(macs=attention_macs(t, s, heads, h, hv),
                elementwise=scores * (1 + ACTIVATION_FLOPS["softmax"]))


# -- normalisation ---------------------------------------------------------------------------------

def op_layer_norm_cost(op, input_shapes, output_shapes) -> Cost:
    # mean (1), centre (1), square (1), variance (1), normalise (1): 5 per element, plus a
    # multiply for gamma and an add for beta when they are passed (as the LayerNormalization
    # layer rule).
    args = call_arguments_of(op) or ()
    gamma = len(args) > 1 and args[1] is not None
    beta = len(args) > 2 and args[2] is not None
    return Cost(elementwise=(5 + int(gamma) + int(beta)) * numel(output_shapes[0]))


def op_batch_norm_cost(op, input_shapes, output_shapes) -> Cost:
    # Inference form with given statistics: one multiply and one add per element (foldable
    # work, as the BatchNormalization layer rule).
    return Cost(norm=2 * numel(output_shapes[0]))


def op_moments_cost(op, input_shapes, output_shapes) -> Cost:
    # mean (1 add) and variance (sub, square, add): 4 per input element.
    return Cost(elementwise=4 * numel(input_shapes[0]))


def op_moments_geometry(op, input_shapes, output_shapes) -> Geometry:
    return reduction_geometry(SimpleNamespace(axis=op.axes), input_shapes, output_shapes)


# -- image -----------------------------------------------------------------------------------------

def op_resize_cost(op, input_shapes, output_shapes) -> Cost:
    # As the Resizing layer: (2*taps - 1) FLOPs per output element per resized axis (2 axes);
    # nearest is a copy.
    interpolation = op.interpolation
    if interpolation != "nearest" and interpolation not in ("bilinear", "bicubic", "lanczos3",
                                                             "lanczos5", "area"):
        raise Unsupported(f"Resize with interpolation {interpolation!r}")
    return interpolation_cost(interpolation, output_shapes[0], 2)


def op_resize_geometry(op, input_shapes, output_shapes) -> Geometry:
    shim = SimpleNamespace(data_format=_layout(op).data_format, interpolation=op.interpolation,
                           antialias=op.antialias, crop_to_aspect_ratio=op.crop_to_aspect_ratio,
                           pad_to_aspect_ratio=op.pad_to_aspect_ratio)
    return resizing_geometry(shim, input_shapes, output_shapes)


def op_extract_patches_geometry(op, input_shapes, output_shapes) -> Geometry:
    rank = len(input_shapes[0]) - 1
    size = as_tuple(op.size, rank)
    strides = size if op.strides is None else as_tuple(op.strides, rank)
    return window_geometry(_layout(op), input_shapes[0], size, strides,
                           as_tuple(op.dilation_rate, rank), _padding(op))


def gaussian_blur_cost(op, input_shapes, output_shapes) -> Cost:
    # A depthwise kh x kw filter per channel: output elements * kh * kw MACs.
    kernel = as_tuple(op.kernel_size, 2)
    return Cost(macs=numel(output_shapes[0]) * numel(kernel))


def gaussian_blur_geometry(op, input_shapes, output_shapes) -> Geometry:
    return window_geometry(_layout(op), input_shapes[0], as_tuple(op.kernel_size, 2), (1, 1),
                           (1, 1), "same")


def ssim_cost(op, input_shapes, output_shapes) -> Cost:
    # Five Gaussian filterings (mu_x, mu_y, E[x^2], E[y^2], E[xy]) of f x f taps per input
    # element; ~10 elementwise FLOPs per element for the products and the SSIM map, reduced.
    taps = int(op.filter_size) ** 2
    elements = numel(input_shapes[0])
    return Cost(macs=5 * elements * taps, elementwise=10 * elements)


# -- products --------------------------------------------------------------------------------------

def _two_operands(op, input_shapes) -> tuple:
    return (_operand(op, input_shapes, 0, "first operand"),
            _operand(op, input_shapes, 1, "second operand"))


def dot_cost(op, input_shapes, output_shapes) -> Cost:
    # numpy.dot: a's last axis contracted with b's (second-to-)last: one MAC per output
    # element per contracted position; both vectors: len(a) MACs.
    a, b = _two_operands(op, input_shapes)
    contracted = a[-1] if a else 1
    return Cost(macs=numel(output_shapes[0]) * contracted)


def tensordot_cost(op, input_shapes, output_shapes) -> Cost:
    # One MAC per output element per point of the contracted axes of a.
    a, _ = _two_operands(op, input_shapes)
    axes = op.axes
    if isinstance(axes, int):
        contracted = numel(a[len(a) - axes:]) if axes else 1
    else:
        first = axes[0] if isinstance(axes[0], (tuple, list)) else (axes[0],)
        contracted = numel([a[i] for i in first])
    return Cost(macs=numel(output_shapes[0]) * contracted)


def inner_cost(op, input_shapes, output_shapes) -> Cost:
    # Last axes contracted: output elements * len(last axis) MACs.
    a, _ = _two_operands(op, input_shapes)
    return Cost(macs=numel(output_shapes[0]) * (a[-1] if a else 1))


def outer_cost(op, input_shapes, output_shapes) -> Cost:
    # One multiply per output element (kron and outer alike).
    return Cost(macs=numel(output_shapes[0]))


def vdot_cost(op, input_shapes, output_shapes) -> Cost:
    # Flattened dot product: numel(a) MACs (per sample: the batch axis is a's own).
    a, _ = _two_operands(op, input_shapes)
    return Cost(macs=numel(a))


def cross_cost(op, input_shapes, output_shapes) -> Cost:
    # 3-vectors: 6 multiplies and 3 subtracts per output vector = 3 per output element each.
    return Cost(elementwise=3 * numel(output_shapes[0]), macs=numel(output_shapes[0]))


def correlate_cost(op, input_shapes, output_shapes) -> Cost:
    # 1-D correlation: every output element sums len(v) products.
    _, v = _two_operands(op, input_shapes)
    return Cost(macs=numel(output_shapes[0]) * v[-1])


def trace_cost(op, input_shapes, output_shapes) -> Cost:
    # One add per diagonal element of each (last two axes) matrix: numel / max(n, m).
    shape = (1, *input_shapes[0])
    return Cost(elementwise=numel(shape) // max(shape[-2], shape[-1], 1))


def cdist_cost(op, input_shapes, output_shapes) -> Cost:
    # x1 (..., P, M), x2 (..., R, M): each of the P*R distances: M subtractions, M
    # multiply-adds (squares summed or |d|^p approximated as such), one root.
    a, _ = _two_operands(op, input_shapes)
    m = a[-1]
    out = numel(output_shapes[0])
    return Cost(macs=out * m, elementwise=out * (m + 1))


# -- statistics, scans, sorting --------------------------------------------------------------------

def per_input(per_element: int, plus_output: int = 0):
    """``per_element`` FLOPs per input element (+ ``plus_output`` per output element)."""
    def rule(op, input_shapes, output_shapes) -> Cost:
        out = numel(output_shapes[0]) if output_shapes else 0
        return Cost(elementwise=per_element * numel(input_shapes[0]) + plus_output * out)
    rule.__name__ = f"per_input_{per_element}_plus_{plus_output}_per_output"
    return rule


def sort_cost(op, input_shapes, output_shapes) -> Cost:
    # Comparison sort along ``axis`` of length n: ceil(log2 n) comparisons per element.
    shape = (1, *input_shapes[0])
    axis = getattr(op, "axis", -1)
    n = numel(shape) if axis is None else shape[axis]
    return Cost(elementwise=numel(input_shapes[0]) * max(1, math.ceil(math.log2(max(n, 2)))))


def last_axis_geometry(op, input_shapes, output_shapes) -> Geometry:
    """Ops along the last axis (top_k, argpartition): like axis_geometry with axis -1."""
    return axis_geometry(SimpleNamespace(axis=-1), input_shapes, output_shapes)


def argreduce_geometry(op, input_shapes, output_shapes) -> Geometry:
    return reduction_geometry(op, input_shapes, output_shapes)


# -- FFTs ------------------------------------------------------------------------------------------

def fft_cost(axes: int, real: bool = False, inverse_real: bool = False):
    """5 N log2 N FLOPs per transform of N points (half for a real transform), the transform
    taken over the last ``axes`` axes; ops.fft takes a (real, imag) pair."""
    def rule(op, input_shapes, output_shapes) -> Cost:
        shape = (1, *(output_shapes[0] if inverse_real else input_shapes[0]))
        n = numel(shape[len(shape) - axes:])
        transforms = numel(shape) // max(n, 1)
        flops = FFT_FLOPS_PER_POINT_LOG * n * math.log2(max(n, 2)) * transforms
        return Cost(elementwise=int(flops / 2 if (real or inverse_real) else flops))
    rule.__name__ = f"fft_{axes}d_cost"
    return rule


def stft_cost(op, input_shapes, output_shapes) -> Cost:
    # Frames * (window multiply of fft_length + real FFT 2.5 * L log2 L).
    out = (1, *output_shapes[0])  # (..., frames, bins)
    frames = numel(out[:-1])
    length = op.fft_length
    return Cost(elementwise=int(frames * (length + FFT_FLOPS_PER_POINT_LOG / 2 * length
                                           * math.log2(max(length, 2)))))


def istft_cost(op, input_shapes, output_shapes) -> Cost:
    # Frames * (inverse real FFT 2.5 * L log2 L + window multiply and overlap-add 2 * L).
    frames = numel((1, *input_shapes[0])[:-1])
    length = op.fft_length
    return Cost(elementwise=int(frames * (2 * length + FFT_FLOPS_PER_POINT_LOG / 2 * length
                                           * math.log2(max(length, 2)))))


def dot_op_geometry(op, input_shapes, output_shapes) -> Geometry:
    """``ops.dot``, ``ops.inner`` and ``ops.tensordot(axes=1)`` of a graph tensor with a weight
    matrix mix the channels of each position and keep positions, as Dense: ``x (..., C)``
    with ``W (C, D)`` (``inner``: ``W (D, C)``). Any other product (two graph tensors, other
    axes) is one whose axes are not followed: no field (never global, which a product of two
    input-dependent tensors need not be)."""
    name = type(op).__name__
    args = call_arguments_of(op)
    with_weight = (args is not None and len(args) >= 2 and len(input_shapes) == 1
                   and is_graph_tensor(args[0]) and not is_graph_tensor(args[1])
                   and len(getattr(args[1], "shape", ())) == 2)
    if with_weight and (name != "Tensordot" or getattr(op, "axes", None) == 1):
        return IDENTITY
    return Geometry("product", note=name)


def control_flow_geometry(op, input_shapes, output_shapes):
    """No field through control flow: which positions its body reads is not a Keras graph."""
    raise Unsupported(f"{type(op).__name__}: control flow, whose body is not a Keras graph "
                      "(its positions are not followed)")


# -- registration ----------------------------------------------------------------------------------

def _register(module, names, **rules):
    for name in names:
        cls = getattr(module, name, None)
        if cls is not None:  # the set of operations differs between Keras versions
            RULES.add(cls, **rules)


def _opaque(module, names, reason: str):
    for name in names:
        cls = getattr(module, name, None)
        if cls is not None:
            RULES.opaque(cls, reason)


# nn
_register(nn_ops, ("Conv",), cost=op_conv_cost, geometry=op_conv_geometry, foldable=True)
_register(nn_ops, ("DepthwiseConv",), cost=op_conv_cost, geometry=op_conv_geometry,
          foldable=True)
_register(nn_ops, ("SeparableConv",), cost=op_separable_cost, geometry=op_conv_geometry,
          foldable=True)
_register(nn_ops, ("ConvTranspose",), cost=op_transposed_cost, geometry=op_transposed_geometry,
          foldable=True)
_register(nn_ops, ("MaxPool", "AveragePool"), cost=op_pool_cost, geometry=op_pool_geometry)
_register(nn_ops, ("AdaptiveAveragePool", "AdaptiveMaxPool"), cost=per_input(1),
          geometry=op_adaptive_geometry)  # one add or compare per input element
_register(nn_ops, ("DotProductAttention",), cost=op_attention_cost,
          geometry=attention_geometry)  # global, unless causal or masked
_register(nn_ops, ("LayerNorm",), cost=op_layer_norm_cost, geometry=IDENTITY)
_register(nn_ops, ("RMSNorm",), cost=rms_norm_cost, geometry=IDENTITY)
_register(nn_ops, ("BatchNorm",), cost=op_batch_norm_cost, geometry=IDENTITY)
_register(nn_ops, ("Moments",), cost=op_moments_cost, geometry=op_moments_geometry)
# square (1), sum (1), divide by the root (1) per element: as UnitNormalization.
_register(nn_ops, ("Normalize",), cost=elementwise(3), geometry=IDENTITY)
_register(nn_ops, ("OneHot", "MultiHot"), cost=ZERO, geometry=BREAKS)
_register(nn_ops, ("SparseSigmoid",), cost=elementwise(3), geometry=IDENTITY)  # mul, add, clip
_register(nn_ops, ("Polar",), cost=elementwise(2), geometry=IDENTITY)  # abs*cos, abs*sin
# Losses and metrics: a few FLOPs per input element (log, multiply, sum), reduced: GLOBAL.
_register(nn_ops, ("BinaryCrossentropy",), cost=per_input(4), geometry=GLOBAL)
_register(nn_ops, ("CategoricalCrossentropy",), cost=per_input(3), geometry=GLOBAL)
_register(nn_ops, ("SparseCategoricalCrossentropy",), cost=per_input(3), geometry=GLOBAL)
_register(nn_ops, ("PSNR",), cost=per_input(3), geometry=GLOBAL)  # sub, square, sum
_register(nn_ops, ("Unfold",), cost=ZERO, geometry=BREAKS)  # im2col: a copy
_register(nn_ops, ("Fold",), cost=per_input(1), geometry=BREAKS)  # col2im: overlap-add
_opaque(nn_ops, ("CTCLoss", "CTCDecode"),
        "CTC: dynamic programming over label paths, no shape-only count")

# image
_register(image_ops, ("Resize",), cost=op_resize_cost, geometry=op_resize_geometry)
_register(image_ops, ("ExtractPatches",), cost=ZERO, geometry=op_extract_patches_geometry)
_register(image_ops, ("CropImages", "PadImages"), cost=ZERO, geometry=BREAKS)
_register(image_ops, ("RGBToGrayscale",), cost=elementwise(5, of="input"),  # 3 mul, 2 add / px
          geometry=IDENTITY)
# hsv<->rgb: max/min, differences, divides and selects: ~10 per element.
_register(image_ops, ("RGBToHSV", "HSVToRGB"), cost=elementwise(10), geometry=IDENTITY)
# Sampling transforms: bilinear resampling of every output element (4 taps: 7 per axis, 2 axes
# as interpolation_cost) plus the coordinate transform; positions are moved arbitrarily.
_register(image_ops, ("AffineTransform", "PerspectiveTransform", "MapCoordinates",
                      "ScaleAndTranslate", "ElasticTransform"),
          cost=elementwise(14), geometry=BREAKS)
# 3x3 Sobel pair: 2 * 9 MACs per element; magnitude ignored (ops.image.sobel_edges returns both).
_register(image_ops, ("SobelEdges",), cost=elementwise(18, of="input"), geometry=BREAKS)
_register(image_ops, ("GaussianBlur",), cost=gaussian_blur_cost, geometry=gaussian_blur_geometry)
_register(image_ops, ("SSIM",), cost=ssim_cost, geometry=GLOBAL)

# numpy: products
_register(numpy_ops, ("Dot",), cost=dot_cost, geometry=dot_op_geometry)
_register(numpy_ops, ("Tensordot",), cost=tensordot_cost, geometry=dot_op_geometry)
_register(numpy_ops, ("Inner",), cost=inner_cost, geometry=dot_op_geometry)
_register(numpy_ops, ("Outer", "Kron"), cost=outer_cost, geometry=BREAKS)
_register(numpy_ops, ("Vdot",), cost=vdot_cost, geometry=GLOBAL)
_register(numpy_ops, ("Cross",), cost=cross_cost, geometry=IDENTITY)
_register(numpy_ops, ("Correlate",), cost=correlate_cost, geometry=BREAKS)
_register(numpy_ops, ("Trace",), cost=trace_cost, geometry=GLOBAL)
_register(math_ops, ("CDist",), cost=cdist_cost, geometry=GLOBAL)

# numpy: statistics (per input element: mean 1, variance 3 more; std adds a root per output)
_AXIS_STATS = {
    "Var": per_input(4), "Nanvar": per_input(5), "Std": per_input(4, 1),
    "Nanstd": per_input(5, 1), "Average": per_input(2),  # weight multiply + add
    "Ptp": per_input(2),  # max and min
    "CountNonzero": per_input(2),  # compare + add
    "Nanprod": per_input(2),  # isnan select + multiply
    "Argmax": per_input(1), "Argmin": per_input(1),  # one compare per element
    "Nanargmax": per_input(2), "Nanargmin": per_input(2),
    # selection (quickselect): ~1 compare per element, plus the interpolation per output
    "Median": per_input(1, 2), "Nanmedian": per_input(2, 2), "Percentile": per_input(1, 2),
    "Nanpercentile": per_input(2, 2), "Quantile": per_input(1, 2),
    "Nanquantile": per_input(2, 2),
}
for _name, _rule in _AXIS_STATS.items():
    _register(numpy_ops, (_name,), cost=_rule, geometry=argreduce_geometry)
# Scans and differences along one axis: one op per element.
_register(numpy_ops, ("Cumsum", "Cumprod", "Diff"), cost=per_input(1), geometry=axis_geometry)
_register(numpy_ops, ("Nancumsum", "Nancumprod"), cost=per_input(2), geometry=axis_geometry)
_register(numpy_ops, ("Trapezoid",), cost=per_input(3), geometry=argreduce_geometry)
_register(numpy_ops, ("Sort", "Argsort"), cost=sort_cost, geometry=axis_geometry)
_register(numpy_ops, ("Argpartition",), cost=per_input(1), geometry=axis_geometry)
_register(math_ops, ("TopK",), cost=per_input(1), geometry=last_axis_geometry)
_register(math_ops, ("InTopK",), cost=per_input(1), geometry=GLOBAL)
_register(numpy_ops, ("Corrcoef",), cost=per_input(4), geometry=GLOBAL)
_register(numpy_ops, ("Histogram", "Bincount", "Digitize", "SearchSorted", "IsIn"),
          cost=per_input(1), geometry=BREAKS)  # one bucket lookup/compare per element
_register(numpy_ops, ("Nonzero",), cost=per_input(1), geometry=BREAKS)
_opaque(numpy_ops, ("Unique",), "Unique: output size depends on the data")

# numpy: one op per element, position by position
_register(numpy_ops, (
    "Isnan", "Isinf", "Isfinite", "Isneginf", "Isposinf", "Isreal", "Signbit", "Angle",
    "Ldexp", "Nextafter", "Logaddexp2", "Gcd", "Lcm", "I0", "BitwiseAnd", "BitwiseInvert",
    "BitwiseNot", "BitwiseOr", "BitwiseXor", "BitwiseLeftShift", "BitwiseRightShift",
    "LeftShift", "RightShift",
), cost=elementwise(1), geometry=IDENTITY)
_register(numpy_ops, ("Sinc",), cost=elementwise(3), geometry=IDENTITY)  # mul, sin, div
_register(numpy_ops, ("Isclose",), cost=elementwise(4), geometry=IDENTITY)  # sub, abs, mul-add
_register(numpy_ops, ("AllClose",), cost=per_input(5), geometry=GLOBAL)  # isclose + all
_register(numpy_ops, ("Real", "Imag", "Conj", "Conjugate"), cost=ZERO, geometry=IDENTITY)
_register(numpy_ops, ("Tril", "Triu", "Diag", "Diagflat"), cost=ZERO, geometry=BREAKS)
_register(numpy_ops, ("Dsplit", "Hsplit", "Vsplit"), cost=ZERO, geometry=BREAKS)
_register(numpy_ops, ("Vander",), cost=elementwise(1), geometry=BREAKS)  # one mul per power
_register(math_ops, ("ViewAsComplex", "ViewAsReal"), cost=ZERO, geometry=IDENTITY)
_register(math_ops, ("ExtractSequences",), cost=ZERO, geometry=BREAKS)
# Creation and metadata: no tensor arithmetic.
_register(numpy_ops, ("Arange", "Full", "Linspace", "Logspace", "Geomspace", "Array",
                      "Meshgrid", "Ndim", "Size", "UnravelIndex"), cost=ZERO, geometry=BREAKS)

# math: segment reductions (one op per input element), FFTs
_register(math_ops, ("SegmentSum", "SegmentMax", "SegmentMin", "SegmentProd",
                     "SegmentReduction"), cost=per_input(1), geometry=BREAKS)
_register(math_ops, ("FFT",), cost=fft_cost(1), geometry=BREAKS)
_register(math_ops, ("FFT2", "IFFT2"), cost=fft_cost(2), geometry=BREAKS)
_register(math_ops, ("RFFT",), cost=fft_cost(1, real=True), geometry=BREAKS)
_register(math_ops, ("IRFFT",), cost=fft_cost(1, inverse_real=True), geometry=BREAKS)
_register(math_ops, ("STFT",), cost=stft_cost, geometry=BREAKS)
_register(math_ops, ("ISTFT",), cost=istft_cost, geometry=BREAKS)

# core: scatters write into a copy. Control flow's body is not a Keras graph: its work is
# counted from the backend's trace of the call (a loop's body times its static trip count, a
# cond whose branches cost alike; modelstats.backend_trace), its positions are unknown.
_register(core_ops, ("Scatter", "ScatterUpdate", "SliceUpdate"), cost=ZERO, geometry=BREAKS)
_register(core_ops, ("Cond", "WhileLoop", "Scan", "Map", "ForiLoop", "Switch", "VectorizedMap",
                     "AssociativeScan"), cost=BACKEND, geometry=control_flow_geometry)

# linalg: iterative or pivoting factorizations have no shape-only count that is standard.
_opaque(linalg_ops, ("Cholesky", "CholeskyInverse", "Det", "Eig", "Eigh", "Inv", "Lstsq",
                     "LuFactor", "MatrixRank", "Pinv", "Qr", "SVD", "Solve", "SolveTriangular"),
        "linear algebra factorization: no agreed shape-only FLOP count")
_opaque(numpy_ops, ("Slogdet",), "linear algebra factorization: no agreed shape-only FLOP count")
_opaque(math_ops, ("Logdet",), "linear algebra factorization: no agreed shape-only FLOP count")
_opaque(linalg_ops, ("JVP",), "JVP: differentiates a Python function, not a Keras graph")
# Norm: |x|^p summed: abs, power, add per element (p=2: square and add), root per output.
_register(linalg_ops, ("Norm",), cost=per_input(2, 1), geometry=GLOBAL)
