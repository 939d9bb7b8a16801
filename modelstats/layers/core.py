"""Dense-type layers, embeddings, activation layers, rescaling, spectrograms and the opaque
wrappers that modelstats cannot see into (reported as unsupported, never as zero)."""

from __future__ import annotations

import math

import keras

from modelstats.formulas import dense_macs, dim_size, einsum_macs, numel
from modelstats.geometry import BREAKS, GLOBAL, IDENTITY, Geometry
from modelstats.layers._common import ACTIVATION_FLOPS, activation_cost, elementwise
from modelstats.registry import Cost, RuleSet

L = keras.layers
RULES = RuleSet()


def dense_cost(layer, input_shapes, output_shapes) -> Cost:
    macs = dense_macs(input_shapes[0], layer.units)
    bias = numel(output_shapes[0]) if layer.use_bias else 0  # one add per output
    return Cost(macs=macs, bias=bias) + activation_cost(layer.activation, numel(output_shapes[0]))


def mixes_positions_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Dense-like layers act on the last axis: per position on an N-D input, everything at once
    on a vector (which, after Flatten, means the whole image)."""
    return IDENTITY if len(input_shapes[0]) > 1 else GLOBAL


def einsum_dense_cost(layer, input_shapes, output_shapes) -> Cost:
    kernel_shape = tuple(int(d) for d in layer.kernel.shape)
    macs = einsum_macs(layer.equation, [(1, *input_shapes[0]), kernel_shape])
    bias = numel(output_shapes[0]) if layer.bias_axes else 0
    return Cost(macs=macs, bias=bias) + activation_cost(layer.activation, numel(output_shapes[0]))


def einsum_dense_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Per position when the input's leading letters reach the output in order (a
    projection of each token, possibly into heads: ``btd,dnh->btnh``). The ``axis_map``
    says where each input axis goes, so that a token axis is followed into the heads of a
    traced attention (the output's rank differs from the input's there)."""
    inputs, output = layer.equation.split("->")
    first = inputs.split(",")[0]
    # The positions are kept when the input's leading letters reach the output in order.
    leading = first.replace("...", "")[1:-1]
    if "..." in first:
        return mixes_positions_geometry(layer, input_shapes, output_shapes)
    if all(letter in output for letter in leading):
        kept = mixes_positions_geometry(layer, input_shapes, output_shapes)
        if kept.kind != "identity":
            return kept
        out = output[1:]  # without the batch letter
        mapping = tuple(out.index(letter) if letter in out else None for letter in first[1:])
        return Geometry("identity", complete=True, axis_map=(mapping,))
    return BREAKS


def embedding_cost(layer, input_shapes, output_shapes) -> Cost:
    if len(output_shapes[0]) == len(input_shapes[0]):
        # ReversibleEmbedding(reverse=True): logits = x @ embeddingsᵀ, a Dense without bias.
        return Cost(macs=dense_macs(input_shapes[0], dim_size(output_shapes[0][-1])))
    return Cost()  # a table lookup: no arithmetic


def embedding_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """A lookup of each position's token id: ``(T,) -> (T, C)`` keeps every position (the
    ids have no channel axis; the vectors add one). ReversibleEmbedding's ``reverse=True``
    (logits from vectors, same rank) mixes the channels of each position, as Dense."""
    if len(output_shapes[0]) in (len(input_shapes[0]), len(input_shapes[0]) + 1):
        return IDENTITY
    return BREAKS


def activation_layer_cost(layer, input_shapes, output_shapes) -> Cost:
    return activation_cost(layer.activation, numel(output_shapes[0]))


def relu_cost(layer, input_shapes, output_shapes) -> Cost:
    per_element = 1  # max(x, threshold)
    per_element += layer.max_value is not None  # min(., max_value)
    per_element += bool(layer.negative_slope)  # slope * (x - threshold) below the threshold
    return Cost(elementwise=per_element * numel(output_shapes[0]))


def rescaling_cost(layer, input_shapes, output_shapes) -> Cost:
    offset = layer.offset
    has_offset = not (isinstance(offset, (int, float)) and offset == 0)
    return Cost(elementwise=(1 + has_offset) * numel(output_shapes[0]))  # x * scale (+ offset)


def _fft_flops(n: int) -> int:
    # Radix-2 estimate of one complex FFT of n points: 5 n log2 n.
    return int(5 * n * math.log2(n)) if n > 1 else 0


def stft_cost(layer, input_shapes, output_shapes) -> Cost:
    frames = dim_size(output_shapes[0][0])
    n = layer.fft_length or 2 ** math.ceil(math.log2(layer.frame_length))
    bins = n // 2 + 1
    per_frame = layer.frame_length + _fft_flops(n) + 3 * bins  # window, FFT, |z|^2
    channels = numel(input_shapes[0][1:]) if len(input_shapes[0]) > 1 else 1
    return Cost(elementwise=frames * per_frame * channels)


def mel_cost(layer, input_shapes, output_shapes) -> Cost:
    n = layer.fft_length
    bins = n // 2 + 1
    frames = numel(output_shapes[0]) // layer.num_mel_bins
    per_frame = layer.sequence_length + _fft_flops(n) + 3 * bins  # window, FFT, |z|^2
    per_frame += 2 if layer.power_to_db else 0  # log and scale per mel bin, approximately
    return Cost(macs=frames * bins * layer.num_mel_bins, elementwise=frames * per_frame)


RULES.add(L.Dense, cost=dense_cost, geometry=mixes_positions_geometry, foldable=True)
RULES.add(L.EinsumDense, cost=einsum_dense_cost, geometry=einsum_dense_geometry,
          foldable=True)
RULES.add(L.Embedding, cost=embedding_cost, geometry=embedding_geometry)
RULES.add(L.Activation, cost=activation_layer_cost, geometry=IDENTITY)
RULES.add(L.ReLU, cost=relu_cost, geometry=IDENTITY)
RULES.add(L.LeakyReLU, cost=elementwise(ACTIVATION_FLOPS["leaky_relu"]), geometry=IDENTITY)
RULES.add(L.ELU, cost=elementwise(ACTIVATION_FLOPS["elu"]), geometry=IDENTITY)
# max(0, x) + alpha * min(0, x): max, min, mul, add
RULES.add(L.PReLU, cost=elementwise(4), geometry=IDENTITY)
RULES.add(L.Softmax, cost=elementwise(ACTIVATION_FLOPS["softmax"]), geometry=IDENTITY)
RULES.add(L.Rescaling, cost=rescaling_cost, geometry=IDENTITY)
# mask = any(x != mask_value) over channels (compare + or), then x * mask: 3 per element
RULES.add(L.Masking, cost=elementwise(3), geometry=IDENTITY)
RULES.add(L.STFTSpectrogram, cost=stft_cost, geometry=BREAKS)
RULES.add(L.MelSpectrogram, cost=mel_cost, geometry=BREAKS)

RULES.opaque(L.Lambda, "a Lambda layer runs arbitrary Python code that modelstats cannot see")
for _name, _why in {
    "TFSMLayer": "a TensorFlow SavedModel wrapper has no Keras graph to read",
    "JaxLayer": "a JAX function wrapper has no Keras graph to read",
    "FlaxLayer": "a Flax module wrapper has no Keras graph to read",
    "TorchModuleWrapper": "a PyTorch module wrapper has no Keras graph to read",
}.items():
    if hasattr(L, _name):
        RULES.opaque(getattr(L, _name), _why)
