"""Custom layers and a subclassed model, as research code writes them: counted by tracing.

Importable under any backend (the JAX-trace oracle builds them in a subprocess, by
``tests.oracles.custom_models:<builder>``). The builders return Functional wrappers with fixed
input shapes, as the oracle needs; the tests analyse the subclassed model itself too.
"""

from __future__ import annotations

import keras


class Affine(keras.layers.Layer):
    """A dense layer written by hand: its own weights (``add_weight``) and ``keras.ops``."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return keras.ops.matmul(x, self.kernel) + self.bias


class ConvBlock(keras.layers.Layer):
    """conv 3x3 -> batch norm -> relu -> per-channel scale, plus a residual (1x1 projection
    when the channels change)."""

    def __init__(self, channels: int, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name="conv")
        self.norm = keras.layers.BatchNormalization(name="norm")
        self.project = None

    def build(self, input_shape):
        if input_shape[-1] != self.channels:
            self.project = keras.layers.Conv2D(self.channels, 1, name="project")
        self.gamma = self.add_weight(shape=(self.channels,), initializer="ones", name="gamma")

    def call(self, x, training=None):
        y = keras.ops.relu(self.norm(self.conv(x), training=training))
        shortcut = x if self.project is None else self.project(x)
        return shortcut + y * self.gamma


class ResidualNet(keras.Model):
    """Stem (3x3 stride 2), one block, then a second block called twice (shared weights),
    global pooling and a hand-written dense head."""

    def __init__(self, classes: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.stem = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="stem")
        self.block = ConvBlock(8, name="block")
        self.wide = ConvBlock(16, name="wide")
        self.shared = ConvBlock(16, name="shared")
        self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
        self.head = Affine(classes, name="head")

    def call(self, x):
        x = self.block(self.stem(x))
        x = self.wide(x)
        x = self.shared(self.shared(x))
        return self.head(self.pool(x))


def custom_affine() -> keras.Model:
    """6 tokens of 5 features through a hand-written dense layer of 7 units."""
    x = keras.Input((6, 5), name="tokens")
    return keras.Model(x, Affine(7, name="affine")(x), name="custom_affine")


def residual_net() -> keras.Model:
    """:class:`ResidualNet` on 16x16x3 images, wrapped as a Functional for the oracle."""
    x = keras.Input((16, 16, 3), name="image")
    return keras.Model(x, ResidualNet(name="net")(x), name="residual_net")
