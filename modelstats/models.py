"""Reference models: the clothing classifier that the worked example and the tests analyse."""

from __future__ import annotations

from typing import Any

__all__ = ["clothing_classifier", "deep_conv_net", "CLOTHING_CLASSES"]

#: The ten classes of the clothing dataset, in the alphabetical order Keras' loaders use.
CLOTHING_CLASSES = (
    "dress", "hat", "longsleeve", "outwear", "pants",
    "shirt", "shoes", "shorts", "skirt", "t-shirt",
)


def clothing_classifier(
    weights: str | None = None,
    *,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    alpha: float = 1.0,
    num_classes: int = 10,
    dropout: float = 0.5,
    augment: bool = True,
    keras_module: Any = None,
    train_base: bool = False,
) -> Any:
    """Build the clothing classifier: a frozen MobileNetV2 base with a small softmax head.

    The architecture of the original study: augmentation (RandomFlip("horizontal") +
    RandomRotation(0.2)), ``mobilenet_v2.preprocess_input`` (scale to [-1, 1]), MobileNetV2
    without its top, GlobalAveragePooling2D, Dropout and a Dense softmax layer.

    Parameters
    ----------
    weights : None, "imagenet" or str, default None
        Weights of the MobileNetV2 base, passed to ``keras.applications.MobileNetV2``: None
        (random, works offline), ``"imagenet"`` (downloads; needs internet) or the path of a
        local weights file.
    input_shape : tuple of int, default (224, 224, 3)
    alpha : float, default 1.0
        Width multiplier of the MobileNetV2 base (the study's is 1.0; ImageNet weights exist
        for 0.35, 0.5, 0.75, 1.0, 1.3 and 1.4).
    num_classes : int, default 10
    dropout : float, default 0.5
    augment : bool, default True
        Include the augmentation block (it is the identity at inference).
    keras_module : module, optional
        The Keras to build with: ``keras`` (Keras 3, the default) or ``tf_keras`` (legacy
        Keras 2, as the original study was written).
    train_base : bool, default False
        Train the whole network (from scratch, offline): the base is trainable and called
        without ``training=False``, so its batch norms learn their statistics.

    Returns
    -------
    keras.Model
        2,270,794 parameters of which 12,810 trainable at the default sizes.

    Examples
    --------
    >>> from modelstats.models import clothing_classifier
    >>> model = clothing_classifier()
    >>> model.count_params()
    2270794
    """
    if keras_module is None:
        import keras
    else:
        keras = keras_module

    base = keras.applications.MobileNetV2(
        input_shape=input_shape, alpha=alpha, include_top=False, weights=weights
    )
    base.trainable = train_base
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    if augment:
        x = keras.Sequential(
            [keras.layers.RandomFlip("horizontal", name="random_flip"),
             keras.layers.RandomRotation(0.2, name="random_rotation")],
            name="augmentation",
        )(x)
    x = keras.applications.mobilenet_v2.preprocess_input(x)
    # Transfer learning keeps the frozen base's batch norms in inference mode even when some
    # layers are later unfrozen for fine-tuning; from scratch they learn from each batch.
    x = base(x) if train_base else base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="dense")(x)
    return keras.Model(inputs, outputs, name="clothing_classifier")


def deep_conv_net(n_layers: int, *, residual: bool = False, size: int = 16,
                  channels: int = 4) -> Any:
    """A synthetic model of exactly ``n_layers`` operation calls, for scaling benchmarks.

    A plain chain alternates ``Conv2D(3x3, same)`` and ``ReLU``; with ``residual=True`` each
    block is ``Conv2D -> ReLU -> Add(skip)``, a DAG with one merge every three layers. The input
    layer counts as one of the ``n_layers``.

    Keras' own graph builder recurses once per layer, so building thousands of layers needs a
    higher ``sys.setrecursionlimit``; this function raises it for the build only. modelstats
    analyses the result at the default limit.

    Examples
    --------
    >>> model = deep_conv_net(10, residual=True)
    >>> sum(len(nodes) for nodes in model._nodes_by_depth.values())
    10
    """
    import sys

    import keras

    L = keras.layers
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * n_layers + 1000))
    try:
        inputs = keras.Input((size, size, channels), name="x")
        x, made = inputs, 1
        while made < n_layers:
            skip = x
            x = L.Conv2D(channels, 3, padding="same", name=f"conv{made}")(x)
            made += 1
            if made < n_layers:
                x = L.ReLU(name=f"relu{made}")(x)
                made += 1
            if residual and made < n_layers:
                x = L.Add(name=f"add{made}")([x, skip])
                made += 1
        name = f"{'residual' if residual else 'chain'}_{n_layers}"
        return keras.Model(inputs, x, name=name)
    finally:
        sys.setrecursionlimit(limit)
