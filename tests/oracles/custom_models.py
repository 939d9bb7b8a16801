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


class RepeatedProjection(keras.layers.Layer):
    """``keras.ops.fori_loop``: the same (features x features) projection applied ``steps``
    times; the body reads only its loop variable and the layer's weight."""

    def __init__(self, steps: int, **kwargs):
        super().__init__(**kwargs)
        self.steps = steps

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="kernel")

    def call(self, x):
        return keras.ops.fori_loop(0, self.steps,
                                   lambda i, h: keras.ops.tanh(keras.ops.matmul(h, self.kernel)),
                                   x)


class GatedProjection(keras.layers.Layer):
    """``keras.ops.cond`` whose branches close over the call's input and cost alike: one
    (features x features) projection or the other, chosen by the sign of the input's sum."""

    def build(self, input_shape):
        self.up = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="up")
        self.down = self.add_weight(shape=(input_shape[-1], input_shape[-1]), name="down")

    def call(self, x):
        return keras.ops.cond(keras.ops.sum(x) > 0, lambda: keras.ops.matmul(x, self.up),
                              lambda: keras.ops.matmul(x, self.down))


def fori_loop_model() -> keras.Model:
    """5 tokens of 8 features through 3 steps of a projection in ``ops.fori_loop``."""
    x = keras.Input((5, 8), name="tokens")
    return keras.Model(x, RepeatedProjection(3, name="repeat")(x), name="fori_loop_model")


def cond_model() -> keras.Model:
    """5 tokens of 8 features through ``ops.cond`` of two projections of equal cost."""
    x = keras.Input((5, 8), name="tokens")
    return keras.Model(x, GatedProjection(name="gate")(x), name="cond_model")
