"""Layers that move data without arithmetic: padding, cropping, reshapes, and the inference-time
no-ops (dropout, noise, augmentation, lookups)."""

from __future__ import annotations

import keras

from modelstats.geometry import BREAKS, IDENTITY, Geometry, Window
from modelstats.layers._common import split_channels
from modelstats.registry import RuleSet, ZERO

L = keras.layers
RULES = RuleSet()


def _pairs(value, rank):
    """Keras stores paddings/croppings as ((left, right), ...) or (left, right) for 1-D."""
    if rank == 1 and not isinstance(value[0], (tuple, list)):
        return (tuple(value),)
    return tuple(tuple(v) for v in value)


def zero_padding_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    pairs = _pairs(layer.padding, len(spatial_in))
    return Geometry("window", tuple(Window(1, 1, 1, int(left)) for left, _ in pairs))


def cropping_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    pairs = _pairs(layer.cropping, len(spatial_in))
    return Geometry("window", tuple(Window(1, 1, 1, -int(left)) for left, _ in pairs))


def center_crop_geometry(layer, input_shapes, output_shapes) -> Geometry:
    spatial_in, _ = split_channels(layer, input_shapes[0])
    spatial_out, _ = split_channels(layer, output_shapes[0])
    if None in spatial_in:
        return Geometry("window", (), note="center crop of an unknown size")
    if any(n < m for n, m in zip(spatial_in, spatial_out)):
        return Geometry("breaks", note="CenterCrop resizes inputs smaller than the target")
    return Geometry("window", tuple(Window(1, 1, 1, -((n - m) // 2))
                                    for n, m in zip(spatial_in, spatial_out)))


def same_shape_identity(layer, input_shapes, output_shapes) -> Geometry:
    """Augmentation layers are the identity at inference when they keep the shape."""
    if input_shapes and tuple(input_shapes[0]) == tuple(output_shapes[0]):
        return IDENTITY
    return Geometry("breaks", note=f"{type(layer).__name__} changes the shape")


for cls in (L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D):
    RULES.add(cls, cost=ZERO, geometry=zero_padding_geometry)
for cls in (L.Cropping1D, L.Cropping2D, L.Cropping3D):
    RULES.add(cls, cost=ZERO, geometry=cropping_geometry)
RULES.add(L.CenterCrop, cost=ZERO, geometry=center_crop_geometry)
for cls in (L.Flatten, L.Reshape, L.Permute, L.RepeatVector):
    RULES.add(cls, cost=ZERO, geometry=BREAKS)

# Identity at inference: regularisation and noise layers are only active in training.
for cls in (L.InputLayer, L.Identity, L.Dropout, L.SpatialDropout1D, L.SpatialDropout2D,
            L.SpatialDropout3D, L.GaussianDropout, L.GaussianNoise, L.AlphaDropout,
            L.ActivityRegularization):
    RULES.add(cls, cost=ZERO, geometry=IDENTITY)

_AUGMENTATION = (
    "AugMix", "AutoContrast", "CutMix", "Equalization", "MixUp", "RandAugment",
    "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
    "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur",
    "RandomGrayscale", "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization",
    "RandomRotation", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomTranslation",
    "RandomZoom", "Solarization", "MaxNumBoundingBoxes", "Pipeline",
    "ContrastLimitedAdaptiveHistogramEqualization",
)
# Lookups, hashing and encodings move or index data; they do no floating-point arithmetic.
_LOOKUPS = (
    "CategoryEncoding", "Discretization", "HashedCrossing", "Hashing", "IntegerLookup",
    "StringLookup", "TextVectorization",
)
for _name in _AUGMENTATION:
    if hasattr(L, _name):  # the set differs between Keras versions
        RULES.add(getattr(L, _name), cost=ZERO, geometry=same_shape_identity)
for _name in _LOOKUPS:
    if hasattr(L, _name):
        RULES.add(getattr(L, _name), cost=ZERO, geometry=BREAKS)
