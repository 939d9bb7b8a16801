"""Fuzzing ``analyze`` over generated architectures Keras accepts.

1-D, 2-D and 3-D inputs; convolutions (plain, dilated, grouped, depthwise, separable,
transposed), pooling, padding, cropping, upsampling, normalisation, activations, dense layers on
the last axis, global pooling; branches that merge (Add, Multiply, Concatenate), layers shared
between call sites, nesting (one and two levels, a sub-model called twice) and models with two
inputs and two outputs. For every model Keras builds:

- ``analyze`` raises nothing;
- the totals equal the sums of the rows, and the parameters equal ``count_params()``;
- there is one node per operation call (nested models counted by their contents);
- every row's output shape equals Keras' own.
"""

from __future__ import annotations

import warnings

from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import modelstats

SPATIAL_BLOCKS = ("conv", "depthwise", "separable", "transpose", "pool", "pad", "crop",
                  "upsample", "norm", "activation", "dense", "branch", "share")


def _layers(keras, rank):
    L = keras.layers
    pick = lambda *classes: classes[rank - 1]  # noqa: E731 - 1-D, 2-D, 3-D variants
    return {
        "conv": pick(L.Conv1D, L.Conv2D, L.Conv3D),
        "depthwise": pick(L.DepthwiseConv1D, L.DepthwiseConv2D, None),
        "separable": pick(L.SeparableConv1D, L.SeparableConv2D, None),
        "transpose": pick(L.Conv1DTranspose, L.Conv2DTranspose, L.Conv3DTranspose),
        "maxpool": pick(L.MaxPooling1D, L.MaxPooling2D, L.MaxPooling3D),
        "avgpool": pick(L.AveragePooling1D, L.AveragePooling2D, L.AveragePooling3D),
        "pad": pick(L.ZeroPadding1D, L.ZeroPadding2D, L.ZeroPadding3D),
        "crop": pick(L.Cropping1D, L.Cropping2D, L.Cropping3D),
        "upsample": pick(L.UpSampling1D, L.UpSampling2D, L.UpSampling3D),
        "global": pick(L.GlobalAveragePooling1D, L.GlobalMaxPooling2D, L.GlobalAveragePooling3D),
    }


def _block(data, keras, rank, tensor, name, shared):
    """Apply one drawn block to ``tensor``; return the new tensor (Keras may refuse: ValueError)."""
    L = keras.layers
    family = _layers(keras, rank)
    kind = data.draw(st.sampled_from(SPATIAL_BLOCKS), label="block")
    channels = int(tensor.shape[-1])
    kernel = data.draw(st.integers(1, 4), label="kernel")
    stride = data.draw(st.integers(1, 2), label="stride")
    dilation = 1 if stride > 1 else data.draw(st.integers(1, 2), label="dilation")
    padding = data.draw(st.sampled_from(["same", "valid"]), label="padding")
    if kind == "conv":
        groups = data.draw(st.sampled_from([g for g in (1, 2) if channels % g == 0]))
        filters = groups * data.draw(st.integers(1, 3))
        layer = family["conv"](filters, kernel, strides=stride, dilation_rate=dilation,
                               padding=padding, groups=groups, name=name)
    elif kind in ("depthwise", "separable") and family[kind] is not None:
        extra = {"depth_multiplier": data.draw(st.integers(1, 2))}
        if kind == "separable":
            extra["filters"] = data.draw(st.integers(1, 4))
        layer = family[kind](kernel_size=kernel, strides=stride, dilation_rate=dilation,
                             padding=padding, name=name, **extra)
    elif kind == "transpose":
        layer = family["transpose"](data.draw(st.integers(1, 3)), kernel, strides=stride,
                                    padding=padding, name=name)
    elif kind == "pool":
        pool = family[data.draw(st.sampled_from(["maxpool", "avgpool"]))]
        layer = pool(pool_size=max(kernel, 2), strides=stride, padding=padding, name=name)
    elif kind == "pad":
        layer = family["pad"](data.draw(st.integers(0, 2)), name=name)
    elif kind == "crop":
        layer = family["crop"](data.draw(st.integers(0, 1)), name=name)
    elif kind == "upsample":
        layer = family["upsample"](data.draw(st.integers(1, 2)), name=name)
    elif kind == "norm":
        layer = data.draw(st.sampled_from([L.BatchNormalization, L.LayerNormalization]))(name=name)
    elif kind == "activation":
        layer = L.Activation(data.draw(st.sampled_from(["relu", "sigmoid", "swish", "tanh"])),
                             name=name)
    elif kind == "dense":
        layer = L.Dense(data.draw(st.integers(1, 4)), activation="relu", name=name)
    elif kind == "share" and shared:
        compatible = [s for s in shared if s[0] == tuple(tensor.shape[1:])]
        if compatible:
            event("shared layer called again")
            return data.draw(st.sampled_from(compatible))[1](tensor)
        return tensor
    elif kind == "branch":
        other = family["conv"](channels, kernel, padding="same", name=f"{name}_side")(tensor)
        merge = data.draw(st.sampled_from(["add", "multiply", "concat"]))
        joined = {"add": L.Add, "multiply": L.Multiply, "concat": L.Concatenate}[merge]
        event(f"branch merged by {merge}")
        return joined(name=name)([tensor, other])
    else:
        return tensor
    output = layer(tensor)
    event(f"{rank}-D {type(layer).__name__}")
    if kind in ("conv", "activation", "norm") and tuple(output.shape) == tuple(tensor.shape):
        shared.append((tuple(tensor.shape[1:]), layer))  # may be called again later: shared
    return output


def _draw_model(data, keras):
    rank = data.draw(st.integers(1, 3), label="rank")
    size = data.draw(st.integers(6, 20 if rank < 3 else 9), label="size")
    channels = data.draw(st.integers(1, 3), label="channels")
    inputs = keras.Input((size,) * rank + (channels,), name="x")
    tensor, shared = inputs, []
    for i in range(data.draw(st.integers(1, 6), label="blocks")):
        try:
            tensor = _block(data, keras, rank, tensor, f"b{i}", shared)
        except ValueError:  # Keras refuses this block at this size: skip it, keep the net
            continue
    model = keras.Model(inputs, tensor, name="inner")
    head = data.draw(st.sampled_from(["none", "global", "nested", "two_levels", "multi_io"]),
                     label="head")
    event(f"head: {head}")
    if head == "none":
        return model
    outer = keras.Input(inputs.shape[1:], name="outer")
    features = model(outer)
    if head == "global":
        out = _layers(keras, rank)["global"](name="pool")(features)
        return keras.Model(outer, keras.layers.Dense(3, name="classes")(out), name="outer_model")
    if head == "two_levels":  # a model nested in a model nested in the analysed one
        middle_input = keras.Input(inputs.shape[1:], name="middle_x")
        middle = keras.Model(middle_input, model(middle_input), name="middle")
        return keras.Model(outer, middle(outer), name="outer_model")
    if head == "multi_io":  # two inputs, two outputs, the sub-model called on both
        second = keras.Input(inputs.shape[1:], name="outer2")
        pooled = _layers(keras, rank)["global"](name="pool2")(model(second))
        return keras.Model([outer, second], [features, keras.layers.Dense(2, name="d2")(pooled)],
                           name="outer_model")
    # nested twice: the same sub-model called on two branches, then merged
    twin = model(keras.layers.Activation("relu", name="pre")(outer))
    return keras.Model(outer, keras.layers.Add(name="join")([features, twin]), name="outer_model")


def _operation_calls(model) -> int:
    """Operation calls of a Functional model, nested models counted by their contents."""
    import keras

    total, stack = 0, [model]
    while stack:
        current = stack.pop()
        for nodes in current._nodes_by_depth.values():
            for node in nodes:
                if isinstance(node.operation, keras.Model):
                    stack.append(node.operation)
                else:
                    total += 1
    return total


def _keras_output_shapes(model):
    """node id -> Keras' output shape, for the outer model's own (non-nested) calls."""
    import keras

    shapes = {}
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if not isinstance(node.operation, keras.Model):
                shapes[node.operation.name] = [tuple(t.shape[1:]) for t in node.outputs]
    return shapes


# Cheap (about 60 ms an example here), so four times the profile's count: 100 in CI, 8,000
# with HYPOTHESIS_PROFILE=long.
@settings(max_examples=4 * settings.default.max_examples)
@given(data=st.data())
def test_analyze_generated_architectures(data):
    import keras

    try:
        model = _draw_model(data, keras)
    except ValueError:
        assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.MisalignedMergeWarning)
        warnings.simplefilter("ignore", modelstats.MultipleSpatialInputsWarning)
        warnings.simplefilter("error", modelstats.UnsupportedLayerWarning)  # all are supported
        report = modelstats.analyze(model)

    rows, totals = report.layers, report.totals
    for column in ("params", "trainable_params", "macs", "flops", "activations",
                   "activation_bytes"):
        assert totals[column] == int(rows[column].sum()), column
    assert totals["params"] == model.count_params()
    assert not totals["partial"] and (rows["status"] != "unsupported").all()
    assert len(rows) == _operation_calls(model)
    for name, shapes in _keras_output_shapes(model).items():
        assert [tuple(s) for s in rows.loc[name, "output_shape"]] == shapes, name
    assert (rows[["macs", "flops", "activations"]] >= 0).all().all()
