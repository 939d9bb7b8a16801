"""The TensorFlow profiler's FLOP count of a Keras model, by op type: the independent oracle the
tests check modelstats against, and the reference the benchmarks time.

It freezes the model into a concrete function and asks ``tf.compat.v1.profiler`` for the float
operations it registers per TensorFlow op (Conv2D, DepthwiseConv2dNative, MatMul, BiasAdd, ...).
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["profiler_flops"]


def profiler_flops(model: Any, input_shape: Optional[tuple] = None, batch_size: int = 1) -> dict:
    """Float operations registered by the TensorFlow profiler for one forward pass, by op type.

    Parameters
    ----------
    model : keras.Model
        A single-input model (TensorFlow backend).
    input_shape : tuple, optional
        Input shape without batch; defaults to the model's.

    Returns
    -------
    dict
        ``{op type: float operations}``, e.g. ``{"Conv2D": ..., "BiasAdd": ...}``.

    Examples
    --------
    >>> import keras
    >>> from modelstats.tf_profiler import profiler_flops
    >>> x = keras.Input((8, 8, 3))
    >>> model = keras.Model(x, keras.layers.Conv2D(4, 3, use_bias=False)(x))
    >>> profiler_flops(model)["Conv2D"]  # 2 * 6*6 * 3*3*3 * 4
    7776
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    shape = tuple(input_shape or model.inputs[0].shape[1:])
    spec = tf.TensorSpec((batch_size, *shape), model.inputs[0].dtype)
    function = tf.function(lambda x: model(x, training=False))
    frozen = convert_variables_to_constants_v2(function.get_concrete_function(spec))
    graph_def = frozen.graph.as_graph_def()
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns that its own helpers are deprecated
    try:
        counts = _profile(tf, graph_def)
    finally:
        logger.setLevel(level)
    return counts


def _profile(tf: Any, graph_def: Any) -> dict:
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(graph_def, name="")
        options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
        options["output"] = "none"
        profile = tf.compat.v1.profiler.profile(
            graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    # The "op" view nests op types under one another; each node's own count is float_ops.
    counts: dict = {}
    pending = list(profile.children)
    while pending:
        node = pending.pop()
        counts[node.name] = counts.get(node.name, 0) + int(node.float_ops)
        pending.extend(node.children)
    return counts
