"""Pooling: windowed, global and adaptive; upsampling and resizing."""

from __future__ import annotations

import keras

from modelstats.formulas import numel
from modelstats.geometry import GLOBAL, Adaptive, Geometry, Resample, Transposed
from modelstats.layers._common import as_tuple, split_channels, window_geometry
from modelstats.registry import Cost, RuleSet

L = keras.layers
RULES = RuleSet()

#: FLOPs per output element and per interpolated axis-combination, see docs/conventions.md.
#: A 1-D interpolation over t taps costs t multiplies and t-1 adds; a separable n-D resize runs
#: one 1-D interpolation per output element per axis, on intermediate results.
INTERPOLATION_TAPS = {"bilinear": 2, "bicubic": 4, "lanczos3": 6, "lanczos5": 10, "area": 2}


def pool_cost(layer, input_shapes, output_shapes) -> Cost:
    # TensorFlow profiler convention: one op per window tap per output element (compare or add;
    # the average's divide is absorbed). Windows clipped by "same" padding are counted whole.
    return Cost(elementwise=numel(output_shapes[0]) * numel(layer.pool_size))


def pool_geometry(layer, input_shapes, output_shapes) -> Geometry:
    return window_geometry(layer, input_shapes[0], layer.pool_size, layer.strides, 1,
                           layer.padding)


def global_pool_cost(layer, input_shapes, output_shapes) -> Cost:
    # One add (or compare) per input element; the mean's divide per output replaces the first add.
    return Cost(elementwise=numel(input_shapes[0]))


def adaptive_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    spatial_out, _ = split_channels(layer, output_shapes[0])
    if None in spatial_in:
        return Geometry("window", (), note="adaptive pooling of an unknown size")
    return Geometry("window", tuple(Adaptive(n, m) for n, m in zip(spatial_in, spatial_out)))


def interpolation_cost(interpolation: str, output_shape, rank: int) -> Cost:
    if interpolation == "nearest":
        return Cost()
    taps = INTERPOLATION_TAPS[interpolation]
    per_axis = 2 * taps - 1  # taps multiplies + (taps - 1) adds
    return Cost(elementwise=numel(output_shape) * per_axis * rank)


def upsampling_cost(layer, input_shapes, output_shapes) -> Cost:
    spatial_out, _ = split_channels(layer, output_shapes[0])
    return interpolation_cost(getattr(layer, "interpolation", "nearest"), output_shapes[0],
                              len(spatial_out))


def upsampling_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    rank = len(spatial_in)
    factors = as_tuple(layer.size, rank)
    interpolation = getattr(layer, "interpolation", "nearest")
    if interpolation == "nearest":  # ops.repeat: unit o reads floor(o / s)
        return Geometry("window", tuple(Transposed(int(s), int(s)) for s in factors))
    if None in spatial_in:
        return Geometry("window", (), note="interpolated upsampling of an unknown size")
    return Geometry(
        "window",
        tuple(Resample(n, n * int(s), interpolation) for n, s in zip(spatial_in, factors)),
    )


def resizing_cost(layer, input_shapes, output_shapes) -> Cost:
    return interpolation_cost(layer.interpolation, output_shapes[0], 2)


def resizing_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    spatial_out, _ = split_channels(layer, output_shapes[0])
    if layer.crop_to_aspect_ratio or layer.pad_to_aspect_ratio:
        return Geometry("breaks", note="resizing with crop/pad to aspect ratio")
    if None in spatial_in:
        return Geometry("window", (), note="resizing from an unknown size")
    # tf.image.resize: antialias widens the kernel when downscaling (bilinear, bicubic,
    # lanczos); nearest and area ignore it. Resample emulates the kernel in float32.
    antialias = bool(getattr(layer, "antialias", False))
    return Geometry("window", tuple(Resample(n, m, layer.interpolation, antialias)
                                    for n, m in zip(spatial_in, spatial_out)))


for cls in (L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D,
            L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D):
    RULES.add(cls, cost=pool_cost, geometry=pool_geometry)
for cls in (L.GlobalAveragePooling1D, L.GlobalAveragePooling2D, L.GlobalAveragePooling3D,
            L.GlobalMaxPooling1D, L.GlobalMaxPooling2D, L.GlobalMaxPooling3D):
    RULES.add(cls, cost=global_pool_cost, geometry=GLOBAL)
for cls in (L.AdaptiveAveragePooling1D, L.AdaptiveAveragePooling2D, L.AdaptiveAveragePooling3D,
            L.AdaptiveMaxPooling1D, L.AdaptiveMaxPooling2D, L.AdaptiveMaxPooling3D):
    RULES.add(cls, cost=global_pool_cost, geometry=adaptive_geometry)
for cls in (L.UpSampling1D, L.UpSampling2D, L.UpSampling3D):
    RULES.add(cls, cost=upsampling_cost, geometry=upsampling_geometry)
RULES.add(L.Resizing, cost=resizing_cost, geometry=resizing_geometry)
