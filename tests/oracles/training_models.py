"""Models whose training step modelstats counts and the JAX oracle traces (``--training``).

Each builder takes no argument and returns a Functional model with fixed input shapes whose
``trainable`` flags say what a training step differentiates. Both processes build them from
Keras APIs only: the test process (TensorFlow) counts them with
``modelstats.count_flops(model, training=True)``, the oracle's subprocess (JAX) traces
``jax.grad`` of a loss over their trainable variables::

    python -m tests.oracles.jax_macs --training tests.oracles.training_models:text_model
"""

from __future__ import annotations

import keras

from modelstats.models import clothing_classifier


def mobilenet_v2_all_trainable() -> keras.Model:
    """MobileNetV2 (alpha 0.35, 96 px: the architecture at a size the suite traces quickly),
    every layer trainable, batch norms in training mode."""
    return keras.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=0.35, weights=None)


def mobilenet_v2_224() -> keras.Model:
    """MobileNetV2's feature extractor at 224 px (the suite's session model), every layer
    trainable."""
    return keras.applications.MobileNetV2(input_shape=(224, 224, 3), include_top=False,
                                          weights=None)


def classifier_frozen_base() -> keras.Model:
    """The clothing classifier as the seed trains it: MobileNetV2 frozen, the head trained."""
    return clothing_classifier()


def classifier_fine_tuned() -> keras.Model:
    """The clothing classifier fine-tuned from layer 100 of its base (the seed's third
    regime): base layers 100 and later trainable, earlier ones frozen; the base is still
    called with ``training=False``, so its batch norms keep their moving statistics."""
    return clothing_classifier(fine_tune_from=100)


def text_model() -> keras.Model:
    """Embedding -> LSTM -> GRU -> Dense on 20 token ids."""
    tokens = keras.Input((20,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(500, 16, name="embedding")(tokens)
    x = keras.layers.LSTM(24, return_sequences=True, name="lstm")(x)
    x = keras.layers.GRU(12, name="gru")(x)
    y = keras.layers.Dense(5, name="dense")(x)
    return keras.Model(tokens, y, name="text_model")


def text_model_frozen_embedding() -> keras.Model:
    """:func:`text_model` with its embedding frozen: the LSTM's input needs no gradient, but
    its recurrent ``h U`` still needs the state gradient."""
    model = text_model()
    model.get_layer("embedding").trainable = False
    return model


def transformer_block() -> keras.Model:
    """A pre-norm Transformer encoder block on 16 tokens of 32 features: self-attention
    (4 heads of 8) and a 64-wide feed-forward, each with a residual."""
    tokens = keras.Input((16, 32), name="tokens")
    h = keras.layers.LayerNormalization(name="norm_1")(tokens)
    h = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="attention")(h, h)
    x = keras.layers.Add(name="residual_1")([tokens, h])
    h = keras.layers.LayerNormalization(name="norm_2")(x)
    h = keras.layers.Dense(64, activation="gelu", name="ffn_1")(h)
    h = keras.layers.Dense(32, name="ffn_2")(h)
    y = keras.layers.Add(name="residual_2")([x, h])
    return keras.Model(tokens, y, name="transformer_block")


def small_unet() -> keras.Model:
    """A two-level U-Net on 32x32x3 with its first conv frozen: 'same' convolutions, max
    pooling, a stride-2 transposed convolution and a skip concatenation."""
    x = keras.Input((32, 32, 3), name="image")
    e1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="enc_1",
                             trainable=False)(x)
    e1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="enc_2")(e1)
    d = keras.layers.MaxPooling2D(name="down")(e1)
    d = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="mid")(d)
    u = keras.layers.Conv2DTranspose(8, 2, strides=2, name="up")(d)
    u = keras.layers.Concatenate(name="skip")([u, e1])
    u = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="dec")(u)
    y = keras.layers.Conv2D(2, 1, name="logits")(u)
    return keras.Model(x, y, name="small_unet")


def valid_convolution() -> keras.Model:
    """A 3x3 "valid" convolution whose input needs a gradient (a trainable 1x1 conv first):
    JAX writes that input gradient as a "full" convolution and counts its padding taps."""
    x = keras.Input((8, 8, 2), name="image")
    y = keras.layers.Conv2D(3, 1, name="first")(x)
    y = keras.layers.Conv2D(4, 3, name="conv")(y)
    return keras.Model(x, y, name="valid_convolution")


def strided_same_convolution() -> keras.Model:
    """A 3x3 stride-2 "same" convolution whose input needs a gradient: JAX's input gradient
    skips the products that would land on the padding."""
    x = keras.Input((8, 8, 2), name="image")
    y = keras.layers.Conv2D(3, 1, name="first")(x)
    y = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="conv")(y)
    return keras.Model(x, y, name="strided_same_convolution")


#: Every builder, by name (tests/oracles/write_training_golden.py traces them all).
TRAINING_BUILDERS = {
    "mobilenet_v2_all_trainable": mobilenet_v2_all_trainable,
    "mobilenet_v2_224": mobilenet_v2_224,
    "classifier_frozen_base": classifier_frozen_base,
    "classifier_fine_tuned": classifier_fine_tuned,
    "text_model": text_model,
    "text_model_frozen_embedding": text_model_frozen_embedding,
    "transformer_block": transformer_block,
    "small_unet": small_unet,
    "valid_convolution": valid_convolution,
    "strided_same_convolution": strided_same_convolution,
}
