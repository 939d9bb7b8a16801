"""Shape inference at new input sizes (``analyze(model, input_shape=...)``): modelstats asks a
layer's own ``compute_output_shape`` directly where Keras' ``compute_output_spec`` would only
wrap it (one tensor, plain keyword values, one shape parameter). The oracle is Keras itself:
the same shape and dtype as ``compute_output_spec`` at every node it answers, and Keras left
to answer wherever it would do more."""

from __future__ import annotations

from modelstats.adapters import adapter_for


def test_each_answer_is_keras_own(mobilenet_any_size):
    """MobileNetV2 built for any size (154 calls): every single-tensor call the shortcut
    answers gets Keras' shape and dtype. It answers for the 52 Conv2D and DepthwiseConv2D,
    the 52 BatchNormalization (called with mask=None), the 35 ReLU and the 4
    ZeroPadding2D: 143. Not for the 10 Add (two tensors) or the input."""
    adapter = adapter_for(mobilenet_any_size)
    answered = 0
    for node in adapter.nodes_in_topological_order(mobilenet_any_size):
        args = node.arguments.args
        if len(args) != 1:
            continue
        if adapter.is_input(node):
            continue
        spec = adapter._output_shape_spec(node.operation, args[0])
        if spec is None:
            continue
        answered += 1
        keras_spec = node.operation.compute_output_spec(*args, **node.arguments.kwargs)
        assert (spec.shape, spec.dtype) == (keras_spec.shape, keras_spec.dtype), \
            node.operation.name
    assert answered == 143


def test_keras_answers_where_it_would_do_more(keras):
    """A call taking ``*args`` (Keras passes its shape function None), a shape function of
    two shapes, and one Keras' inference does not reach (compute_output_spec overridden)."""
    L = keras.layers

    class StarArgs(L.Layer):
        def call(self, *args):
            return args[0]

        def compute_output_shape(self, input_shape):
            return input_shape

    class TwoShapes(L.Layer):
        def call(self, x, y=None):
            return x

        def compute_output_shape(self, x_shape, y_shape=None):
            return x_shape

    class OwnSpec(L.Layer):
        def call(self, x):
            return x

        def compute_output_shape(self, input_shape):
            return input_shape

        def compute_output_spec(self, x):
            return keras.KerasTensor((None, 5), dtype="float32")

    x = keras.KerasTensor((None, 3), dtype="float32")
    adapter = adapter_for(L.Dense(2))
    for layer in (StarArgs(), TwoShapes(), OwnSpec()):
        assert adapter._output_shape_spec(layer, x) is None, type(layer).__name__


def test_mixed_precision_keeps_the_compute_dtype(keras):
    """Under mixed_float16 a Dense computes in float16: the answer says so, as Keras'."""
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        dense = keras.layers.Dense(4)
        dense.build((None, 3))
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    x = keras.KerasTensor((None, 3), dtype="float16")
    spec, keras_spec = adapter_for(dense)._output_shape_spec(dense, x), dense.compute_output_spec(x)
    assert spec is not None
    assert (spec.shape, spec.dtype) == (keras_spec.shape, keras_spec.dtype) \
        == ((None, 4), "float16")


def test_an_instance_with_its_own_inference_is_left_to_it(keras):
    """A spec set on the instance (as modelstats' own tracing does for a moment) wins over
    the class's shape function: Keras' call would use it, so the shortcut steps aside."""
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    dense.compute_output_spec = lambda x: keras.KerasTensor((None, 7))
    x = keras.KerasTensor((None, 3), dtype="float32")
    assert adapter_for(dense)._output_shape_spec(dense, x) is None
