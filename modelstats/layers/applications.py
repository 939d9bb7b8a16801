"""Layers that keras.applications defines for itself (not in ``keras.layers``).

They sit inside models users analyse every day (ConvNeXt, InceptionResNetV2), so an application
must never come out partial.
"""

from __future__ import annotations

from keras.src.applications.convnext import LayerScale, StochasticDepth
from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

from modelstats.geometry import IDENTITY
from modelstats.layers._common import elementwise
from modelstats.registry import RuleSet, ZERO

RULES = RuleSet()

# x * gamma, one multiply per element (gamma is per channel).
RULES.add(LayerScale, cost=elementwise(1), geometry=IDENTITY)
# Drop-path: the identity at inference, which is what is counted.
RULES.add(StochasticDepth, cost=ZERO, geometry=IDENTITY)
# inputs[0] + inputs[1] * scale: a multiply and an add per element.
RULES.add(CustomScaleLayer, cost=elementwise(2), geometry=IDENTITY)
