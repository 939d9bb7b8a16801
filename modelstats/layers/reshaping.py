"""Layers that move data without arithmetic: padding, cropping, reshapes, and the inference-time
no-ops (dropout, noise, augmentation, lookups)."""

from __future__ import annotations

import math

import keras

from modelstats.geometry import (
    BREAKS,
    FLATTEN,
    IDENTITY,
    REARRANGES,
    Geometry,
    Window,
    reshape_axis_map,
)
from modelstats.layers._common import split_channels
from modelstats.registry import RuleSet, ZERO, input_spatial_axes

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


def reshape_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """A reshape (the ``Reshape`` layer, ``keras.ops.reshape``) rearranges positions, except:

    * one that keeps the shape changes nothing;
    * one that merges all spatial axes of a channels-last map into one token axis, row-major,
      keeping the channel axis last, ``(h, w, C) -> (h*w, C)``, is a *flatten*: token
      ``t`` is grid position ``divmod(t, w)`` (a ViT's patch tokens keep their 2-D field);
    * the reverse, tokens laid out on a grid with the channel axis kept last, ``(h*w, C) ->
      (h, w, C)``, is an *unflatten*: exact when the tokens are a grid of that ``(h, w)``
      with no extra tokens (the propagation checks the layout, and breaks the field
      otherwise), as SegFormer does before its spatial-reduction convolution.

    Any other reshape breaks the field.
    """
    source, target = tuple(input_shapes[0]), tuple(output_shapes[0])
    if source == target and None not in source:
        return IDENTITY
    rank = len(source) + 1  # with batch
    channels = source[-1] if source else None
    if len(source) >= 3 and len(target) == 2 and channels is not None \
            and target[-1] == channels and input_spatial_axes(rank) == tuple(range(1, rank - 1)):
        grid = source[:-1]
        n = None if None in grid else math.prod(grid)
        if target[0] == n:  # both None: the -1 is the product of the unknown sizes
            return FLATTEN
    if len(source) == 2 and len(target) >= 3 and channels is not None \
            and target[-1] == channels and None not in target and source[0] is not None \
            and math.prod(target[:-1]) == source[0]:
        # (h*w, C) -> (h, w, C); whether the tokens are that grid is the propagation's check
        return Geometry("unflatten", complete=True,
                        axis_map=(reshape_axis_map(source, target),))
    return Geometry("breaks", note="Reshape other than a flatten of the spatial axes into "
                    "tokens", complete=True, axis_map=(reshape_axis_map(source, target),))


def permute_geometry(layer, input_shapes, output_shapes) -> Geometry:
    """Permute(dims): positions rearranged; output axis k is input axis ``dims[k] - 1``."""
    dims = [int(d) - 1 for d in layer.dims]
    return Geometry("breaks", complete=True,
                    axis_map=(tuple(dims.index(q) for q in range(len(dims))),))


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
RULES.add(L.Reshape, cost=ZERO, geometry=reshape_geometry)
RULES.add(L.Permute, cost=ZERO, geometry=permute_geometry)
for cls in (L.Flatten, L.RepeatVector):
    RULES.add(cls, cost=ZERO, geometry=REARRANGES)

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
