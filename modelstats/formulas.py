"""Pure counting and geometry formulas. No Keras, no TensorFlow: shapes and hyper-parameters in,
integers or fractions out. Every term carries a comment saying what it counts.

Conventions (see docs/conventions.md): a MAC is one multiply-accumulate; shapes exclude the batch
dimension; spatial sizes are tuples, one entry per spatial axis.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence

__all__ = [
    "effective_kernel",
    "same_padding",
    "conv_output_size",
    "conv_macs",
    "depthwise_macs",
    "transposed_conv_macs",
    "dense_macs",
    "einsum_macs",
    "simple_rnn_step_macs",
    "lstm_step_macs",
    "gru_step_macs",
    "attention_macs",
    "numel",
    "dim_size",
]


def dim_size(dim):
    """One dimension as an ``int``; a symbolic size (a sympy expression) is kept as it is, so
    the formulas here give exact sympy formulas of the input size (``count_flops(model,
    input_shape=("H", "W", 3))``).

    >>> dim_size(7), type(dim_size(7.0))
    (7, <class 'int'>)
    """
    # sympy expressions carry free_symbols; any other dimension (numpy or TF integers) is
    # made a Python int, as every formula did before symbolic sizes.
    return dim if hasattr(dim, "free_symbols") else int(dim)


def _larger(a, b):
    """``max(a, b)``, also when a size is symbolic (then a sympy ``Max``)."""
    if hasattr(a, "free_symbols") or hasattr(b, "free_symbols"):
        import sympy

        return sympy.Max(a, b)
    return max(a, b)


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a shape (product of its dimensions; 1 for a scalar).

    >>> numel((7, 7, 1280))
    62720
    >>> numel(d for d in (2, 3.0))  # a generator, with a dimension that is not an int
    6
    """
    if type(shape) is tuple:
        # The common case, a tuple of Python ints: their product is an int, and only theirs
        # (a float, NumPy or sympy dimension makes it another type), computed without a
        # call per dimension.
        try:
            product = math.prod(shape)
        except TypeError:  # None, or another dimension without a product: said below
            product = None
        if type(product) is int:
            return product
    shape = tuple(shape)  # (a generator could not be read twice)
    try:  # whole numbers (NumPy integers too)
        return math.prod(map(operator.index, shape))
    except TypeError:  # a symbolic or float dimension
        return math.prod(dim_size(d) for d in shape)


def effective_kernel(kernel: int, dilation: int = 1) -> int:
    """Span of a dilated kernel: ``d*(k-1)+1`` input positions.

    >>> effective_kernel(3, 2)
    5
    """
    return dilation * (kernel - 1) + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow "same" padding (left, right) for an input of ``size`` positions.

    The output has ``ceil(size/stride)`` positions; the padding needed for that is split with the
    smaller half on the left, so an odd total pads one more on the right.

    >>> same_padding(112, 3, 2)  # 56 outputs need (56-1)*2 + 3 - 112 = 1 pad: all on the right
    (0, 1)
    >>> same_padding(7, 3, 1)
    (1, 1)
    """
    k_eff = effective_kernel(kernel, dilation)
    outputs = conv_output_size(size, kernel, stride, dilation, "same")
    total = max((outputs - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel: int, stride: int, dilation: int, padding: str) -> int:
    """Output positions of a convolution or pooling window along one axis (TensorFlow rules).

    >>> conv_output_size(113, 3, 2, 1, "valid")
    56
    """
    if padding == "same":
        return math.ceil(size / stride)
    return (size - effective_kernel(kernel, dilation)) // stride + 1


def conv_macs(
    out_spatial: Sequence[int],
    kernel: Sequence[int],
    in_channels: int,
    out_channels: int,
    groups: int = 1,
) -> int:
    """MACs of a (grouped) convolution: one MAC per kernel tap, input channel of the group and
    output channel, at every output position.

    >>> conv_macs((7, 7), (1, 1), 320, 1280)  # MobileNetV2 Conv_1: 49 * 1 * 320 * 1280
    20070400
    """
    positions = numel(out_spatial)  # output positions
    taps = numel(kernel)  # kernel taps per input channel
    return positions * taps * (in_channels // groups) * out_channels


def depthwise_macs(
    out_spatial: Sequence[int],
    kernel: Sequence[int],
    in_channels: int,
    depth_multiplier: int = 1,
) -> int:
    """MACs of a depthwise convolution: each of ``in_channels * depth_multiplier`` output
    channels sees one input channel. Counted on the real output size, never input/stride.

    >>> depthwise_macs((56, 56), (3, 3), 96)  # MobileNetV2 block_1_depthwise: 3136 * 9 * 96
    2709504
    """
    return numel(out_spatial) * numel(kernel) * in_channels * depth_multiplier


def transposed_conv_macs(
    in_spatial: Sequence[int],
    kernel: Sequence[int],
    in_channels: int,
    out_channels: int,
    groups: int = 1,
) -> int:
    """MACs of a transposed convolution, counted over *input* positions: every input value is
    multiplied into a full kernel of output values (what the kernel really computes; taps that
    land in cropped borders are still computed).

    >>> transposed_conv_macs((4, 4), (3, 3), 8, 2)  # 16 positions * 9 taps * 8 * 2
    2304
    """
    return numel(in_spatial) * numel(kernel) * (in_channels // groups) * out_channels


def dense_macs(input_shape: Sequence[int], units: int) -> int:
    """MACs of a Dense layer on an N-D input: a ``in x units`` product at every leading position.

    >>> dense_macs((1280,), 10)
    12800
    >>> dense_macs((5, 7, 16), 4)  # 35 positions * 16 * 4
    2240
    """
    return numel(input_shape[:-1]) * dim_size(input_shape[-1]) * units


def einsum_macs(equation: str, operand_shapes: Sequence[Sequence[int]]) -> int:
    """MACs of a two-operand einsum: one MAC per point of the joint index space.

    Every index letter (free or summed) ranges once, so the MACs are the product of all index
    sizes. A leading ``...`` takes the unmatched leading dims of the first operand.

    >>> einsum_macs("ab,bc->ac", [(2, 3), (3, 4)])
    24
    >>> einsum_macs("...b,bc->...c", [(5, 2, 3), (3, 4)])
    120
    """
    inputs = equation.split("->")[0].split(",")
    sizes: dict[str, int] = {}
    ellipsis = 1
    for spec, shape in zip(inputs, operand_shapes):
        shape = tuple(dim_size(d) for d in shape)
        if "..." in spec:
            explicit = spec.replace("...", "")
            head = len(shape) - len(explicit)
            ellipsis = _larger(ellipsis, numel(shape[:head]))
            shape = shape[head:]
            spec = explicit
        for letter, dim in zip(spec, shape):
            sizes[letter] = dim
    return ellipsis * numel(sizes.values())


def simple_rnn_step_macs(input_dim: int, units: int) -> int:
    """One SimpleRNN step: input projection plus recurrent projection.

    >>> simple_rnn_step_macs(8, 16)  # 8*16 + 16*16
    384
    """
    return input_dim * units + units * units  # x W + h U


def lstm_step_macs(input_dim: int, units: int) -> int:
    """One LSTM step: four gates, each with an input and a recurrent projection.

    >>> lstm_step_macs(8, 16)  # 4 * (8*16 + 16*16)
    1536
    """
    return 4 * (input_dim * units + units * units)


def gru_step_macs(input_dim: int, units: int) -> int:
    """One GRU step: three gates (update, reset, candidate), input and recurrent projections.

    >>> gru_step_macs(8, 16)  # 3 * (8*16 + 16*16)
    1152
    """
    return 3 * (input_dim * units + units * units)


def attention_macs(query_len: int, key_len: int, heads: int, key_dim: int, value_dim: int) -> int:
    """MACs of scaled dot-product attention after the projections: scores ``Q Kᵀ`` and the
    weighted sum of values, per head.

    >>> attention_macs(10, 12, 2, 4, 4)  # 2 * (10*12*4 + 10*12*4)
    1920
    """
    scores = query_len * key_len * key_dim  # Q Kᵀ
    weighted = query_len * key_len * value_dim  # softmax(scores) V
    return heads * (scores + weighted)
