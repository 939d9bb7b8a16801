"""Reference models: the clothing classifier that the worked example and the tests analyse."""

from __future__ import annotations

from typing import Any

__all__ = ["clothing_classifier", "fine_tune_base", "deep_conv_net", "CLOTHING_CLASSES"]

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
    fine_tune_from: int | str | None = None,
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
    fine_tune_from : int or str, optional
        Fine-tune the base from this layer (index or name) on, as :func:`fine_tune_base` (the
        study's third regime: ``100``); the base is still called with ``training=False``.

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
    model = keras.Model(inputs, outputs, name="clothing_classifier")
    if fine_tune_from is not None:
        fine_tune_base(model, fine_tune_from)
    return model


def fine_tune_base(classifier: Any, start: int | str) -> int:
    """Make the classifier's MobileNetV2 base trainable from layer ``start`` on, the layers
    before it frozen (how transfer learning fine-tunes once the head has learnt).

    Parameters
    ----------
    classifier : keras.Model
        A :func:`clothing_classifier`, or any model whose base is its largest nested model.
    start : int or str
        The first base layer to train: its index in ``base.layers`` or its name.

    Returns
    -------
    int
        How many base layers train.

    Raises
    ------
    ValueError
        When the base has no such layer (the message lists some names).

    Examples
    --------
    >>> model = clothing_classifier()
    >>> fine_tune_base(model, "block_11_expand_relu"), fine_tune_base(model, 100)  # 154 - 100
    (54, 54)
    >>> import math
    >>> sum(math.prod(w.shape) for w in model.trainable_weights)  # as in docs/training.md
    1874250
    """
    # the nested model with the most layers (the augmentation block is a small Sequential)
    base = max((layer for layer in classifier.layers if hasattr(layer, "layers")),
               key=lambda layer: len(layer.layers))
    names = [layer.name for layer in base.layers]
    if isinstance(start, str):
        if start not in names:
            examples = ", ".join(n for n in names if n.endswith("_expand"))
            raise ValueError(f"{base.name} has no layer {start!r}; its layers include "
                             f"{examples[:120]}...")
        start = names.index(start)
    if not 0 <= start < len(names):
        raise ValueError(f"{base.name} has {len(names)} layers; received index {start}.")
    base.trainable = True
    for layer in base.layers[:start]:
        layer.trainable = False
    return len(names) - start


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
