"""Normalisation layers. Batch normalisation at inference is an affine map (2 FLOPs/element) that
can be folded into the preceding convolution; the others compute statistics per call."""

from __future__ import annotations

import keras

from modelstats.formulas import numel
from modelstats.geometry import IDENTITY
from modelstats.layers._common import elementwise
from modelstats.registry import Cost, RuleSet

L = keras.layers
RULES = RuleSet()


def batch_norm_cost(layer, input_shapes, output_shapes) -> Cost:
    # Inference: y = x * (gamma / sqrt(var + eps)) + (beta - mean * gamma / sqrt(var + eps)),
    # the per-channel factors being constants: one multiply and one add per element.
    return Cost(norm=2 * numel(output_shapes[0]))


def statistics_norm_cost(layer, input_shapes, output_shapes) -> Cost:
    # Layer/Group normalisation per element: mean (1 add), centre (1 sub), square (1 mul),
    # variance (1 add), normalise (1 mul by rsqrt), then gamma (1 mul) and beta (1 add) if used.
    per_element = 5 + int(getattr(layer, "scale", True)) + int(getattr(layer, "center", True))
    return Cost(elementwise=per_element * numel(output_shapes[0]))


def rms_norm_cost(layer, input_shapes, output_shapes) -> Cost:
    # square (1), mean (1), normalise (1 mul by rsqrt), scale (1)
    return Cost(elementwise=4 * numel(output_shapes[0]))


RULES.add(L.BatchNormalization, cost=batch_norm_cost, geometry=IDENTITY)
RULES.add(L.LayerNormalization, cost=statistics_norm_cost, geometry=IDENTITY)
RULES.add(L.GroupNormalization, cost=statistics_norm_cost, geometry=IDENTITY)
RULES.add(L.RMSNormalization, cost=rms_norm_cost, geometry=IDENTITY)
# square (1), sum (1), divide by the norm (1)
RULES.add(L.UnitNormalization, cost=elementwise(3), geometry=IDENTITY)
# preprocessing Normalization: (x - mean) / std, 2 per element
RULES.add(L.Normalization, cost=elementwise(2), geometry=IDENTITY)
