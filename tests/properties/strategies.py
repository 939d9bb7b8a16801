"""Hypothesis strategies for architectures: specs as plain data, built into real Keras models.

A spec is ``(rank, input_size, blocks)``; each block is a tuple naming a layer family and its
hyper-parameters. ``build`` turns a spec into a Keras model whose layers are named ``b{i}...``.

Besides chains of convolutions, pooling, padding, cropping, upsampling, transposed convolutions
and resizing, the blocks cover what merges and indexing do to fields:

- ``twin``: two parallel convolutions with their own (possibly asymmetric: 1xk, kx1) kernels
  and dilations, merged by Add, Multiply or Concatenate (even kernels shift a path's centre);
- ``chslice``: a path whose channels are cut by ``keras.ops`` (``x[..., :c]``, ``take``,
  ``split``) before it is added to the path it came from;
- ``getcrop``: ``x[:, a::s]`` on the spatial axes (a crop with a step);
- ``resizechain`` (2-D): two or three Resizing layers in a row with convolutions between.

``geometry_specs(ops=False)`` leaves out the blocks that create ``keras.ops`` nodes.

``build(spec, data_format="channels_first")`` builds the channels_first twin of a spec (for
``test_channels_first_twin.py``: TensorFlow cannot run it, modelstats only reads its shapes).
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["geometry_blocks", "geometry_specs", "build", "NotExpressible"]


@st.composite
def conv_block(draw):
    kernel = draw(st.integers(1, 7))
    stride = draw(st.integers(1, 3))
    dilation = 1 if stride > 1 else draw(st.integers(1, 3))  # Keras forbids both > 1
    padding = draw(st.sampled_from(["same", "valid"]))
    return ("conv", kernel, stride, dilation, padding)


@st.composite
def twin_block(draw, rank: int):
    """Two parallel "same" convolutions of one stride, each with its own kernel and dilation
    per axis (so 1xk next to kx1), merged by Add, Multiply or Concatenate."""
    merge = draw(st.sampled_from(["add", "multiply", "concat"]))
    stride = draw(st.integers(1, 2))
    branches = []
    for _ in range(2):
        kernel = tuple(draw(st.lists(st.integers(1, 5), min_size=rank, max_size=rank)))
        dilation = (1,) * rank if stride > 1 else tuple(
            draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank)))
        branches.append((kernel, dilation))
    return ("twin", merge, stride, tuple(branches))


def geometry_blocks(rank: int, *, ops: bool = True):
    """One geometry-relevant block for a ``rank``-D net (``ops=False``: no ``keras.ops``
    nodes, only layers)."""
    blocks = [
        conv_block(),
        st.tuples(st.just("avgpool"), st.integers(2, 3), st.integers(1, 3),
                  st.sampled_from(["same", "valid"])),
        st.tuples(st.just("zeropad"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("crop"), st.integers(0, 2), st.integers(0, 2)),
        st.tuples(st.just("upsample"), st.integers(2, 3),
                  st.sampled_from(["nearest", "bilinear"] if rank == 2 else ["nearest"])),
        st.tuples(st.just("transpose"), st.integers(1, 4), st.integers(1, 3),
                  st.sampled_from(["same", "valid"])),
        st.tuples(st.just("branch"), st.sampled_from(["add", "concat"]),
                  st.integers(1, 5), st.integers(1, 5), st.integers(1, 2)),
        # Average, not max: a max pool's gradient reaches only the arg-max, not its window.
        st.tuples(st.just("adaptive"), st.integers(1, 12)),
    ]
    blocks.append(twin_block(rank))
    if ops:
        blocks.append(st.tuples(st.just("chslice"), st.sampled_from(["getitem", "take", "split"]),
                                st.integers(1, 5)))
        blocks.append(st.tuples(st.just("getcrop"), st.integers(0, 3), st.integers(1, 3)))
    if rank == 2:
        blocks.append(st.tuples(st.just("resize"), st.integers(3, 40), st.integers(3, 40),
                                st.sampled_from(["nearest", "bilinear"])))
        blocks.append(resize_chain())
    return st.one_of(*blocks)


#: Interpolations whose gradients the oracle can read (area has no gradient in TensorFlow;
#: lanczos weights of ~1e-16 underflow in float32 along a chain), with antialias or not.
RESIZE_KINDS = [("nearest", False), ("bilinear", False), ("bicubic", False),
                ("bilinear", True), ("bicubic", True)]


@st.composite
def resize_chain(draw):
    """Two or three Resizing layers with a convolution ``(k, s, padding)`` between each."""
    resize = st.tuples(st.integers(3, 40), st.integers(3, 40), st.sampled_from(RESIZE_KINDS))
    conv = st.tuples(st.integers(1, 3), st.integers(1, 2), st.sampled_from(["same", "valid"]))
    steps = [draw(resize)]
    for _ in range(draw(st.integers(1, 2))):
        steps += [draw(conv), draw(resize)]
    return ("resizechain", tuple(steps))


@st.composite
def geometry_specs(draw, max_blocks: int = 5, *, ops: bool = True):
    rank = draw(st.sampled_from([1, 2]))
    size = draw(st.integers(9, 40) if rank == 2 else st.integers(9, 64))
    blocks = draw(st.lists(geometry_blocks(rank, ops=ops), min_size=1, max_size=max_blocks))
    return rank, size, blocks


class NotExpressible(ValueError):
    """A block with no channels_first form (Keras' Cropping1D and UpSampling1D take no
    ``data_format``): the channels_first twin of that spec does not exist."""


def build(spec, channels: int = 2, data_format: str = "channels_last"):
    """Build the Keras model of a spec (raises ValueError when a size would become < 1).

    ``data_format="channels_first"`` builds the same architecture, layer names and spatial
    sizes on ``(channels, *spatial)`` tensors: every layer that takes a ``data_format`` is given
    it, concatenations and channel slices work on axis 1, spatial slices skip it. Nothing needs
    to run (TensorFlow's CPU kernels cannot run channels_first convolutions): the twin is for
    comparing what modelstats reads from shapes. A 1-D crop or upsampling raises
    :class:`NotExpressible`.
    """
    import keras

    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(f"data_format {data_format!r}")
    first = data_format == "channels_first"
    rank, size, blocks = spec
    if first and rank == 1:  # before building anything
        for kind in ("crop", "upsample"):
            if any(block[0] == kind for block in blocks):
                raise NotExpressible(f"a 1-D {kind}: Keras' "
                                     f"{'Cropping1D' if kind == 'crop' else 'UpSampling1D'} "
                                     "takes no data_format")
    L = keras.layers
    conv = {1: L.Conv1D, 2: L.Conv2D}[rank]
    transpose = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose}[rank]
    pool = {1: L.AveragePooling1D, 2: L.AveragePooling2D}[rank]
    pad = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D}[rank]
    crop = {1: L.Cropping1D, 2: L.Cropping2D}[rank]
    up = {1: L.UpSampling1D, 2: L.UpSampling2D}[rank]
    adaptive = {1: L.AdaptiveAveragePooling1D, 2: L.AdaptiveAveragePooling2D}[rank]
    if first:
        # The same constructors with data_format given (the channels_last twin gives none,
        # keeping its models exactly what they were).
        def formatted(cls):
            def make(*args, **kwargs):
                return cls(*args, data_format=data_format, **kwargs)
            return make

        conv, transpose, pool, pad, adaptive = map(formatted,
                                                   (conv, transpose, pool, pad, adaptive))
        if rank == 2:
            crop, up = formatted(crop), formatted(up)
        resizing = formatted(L.Resizing)
        channel_axis = 1
    else:
        resizing = L.Resizing
        channel_axis = -1
    concatenate = L.Concatenate if not first else (
        lambda **kwargs: L.Concatenate(axis=channel_axis, **kwargs))
    shape = (channels,) + (size,) * rank if first else (size,) * rank + (channels,)
    inputs = keras.Input(shape, name="x")
    x = inputs
    for i, block in enumerate(blocks):
        kind, *args = block
        name = f"b{i}"
        if kind == "conv":
            k, s, d, p = args
            x = conv(channels, k, strides=s, dilation_rate=d, padding=p, name=name)(x)
        elif kind == "avgpool":
            k, s, p = args
            x = pool(k, strides=s, padding=p, name=name)(x)
        elif kind == "zeropad":
            left, right = args
            x = pad((left, right) if rank == 1 else ((left, right), (left, right)), name=name)(x)
        elif kind == "crop":
            left, right = args
            x = crop((left, right) if rank == 1 else ((left, right), (left, right)),
                     name=name)(x)
        elif kind == "upsample":
            s, interpolation = args
            if rank == 1:
                x = up(s, name=name)(x)
            else:
                x = up(s, interpolation=interpolation, name=name)(x)
        elif kind == "transpose":
            k, s, p = args
            x = transpose(channels, k, strides=s, padding=p, name=name)(x)
        elif kind == "adaptive":
            (out,) = args
            spatial = x.shape[2:] if first else x.shape[1:-1]
            if any(out > d for d in spatial):
                raise ValueError("adaptive pooling to more positions than its input has")
            x = adaptive(out if rank == 1 else (out, out), name=name)(x)
        elif kind == "resize":
            height, width, interpolation = args
            x = resizing(height, width, interpolation=interpolation, name=name)(x)
        elif kind == "branch":
            merge, k1, k2, s = args
            a = conv(channels, k1, strides=s, padding="same", name=f"{name}a")(x)
            b = conv(channels, k2, strides=s, padding="same", name=f"{name}b")(x)
            if merge == "add":
                x = L.Add(name=name)([a, b])
            else:
                x = concatenate(name=name)([a, b])
                x = conv(channels, 1, name=f"{name}m")(x)
        elif kind == "twin":
            merge, s, branches = args
            paths = [conv(channels, k, strides=s, dilation_rate=d, padding="same",
                          name=f"{name}{tag}")(x) for (k, d), tag in zip(branches, "ab")]
            if merge == "concat":
                x = conv(channels, 1, name=f"{name}m")(concatenate(name=name)(paths))
            else:
                x = {"add": L.Add, "multiply": L.Multiply}[merge](name=name)(paths)
        elif kind == "chslice":
            how, k = args
            wide = conv(2 * channels, k, padding="same", name=f"{name}w")(x)
            if how == "getitem":
                cut = wide[:, :channels] if first else wide[..., :channels]
            elif how == "take":
                cut = keras.ops.take(wide, list(range(channels)), axis=channel_axis)
            else:
                cut = keras.ops.split(wide, 2, axis=channel_axis)[0]
            x = L.Add(name=name)([x, cut])
        elif kind == "getcrop":
            start, step = args
            whole = (slice(None), slice(None)) if first else (slice(None),)
            x = x[whole + (slice(start, None, step),) * rank]
        elif kind == "resizechain":
            for j, step in enumerate(args[0]):
                if len(step) == 3 and isinstance(step[2], tuple):
                    height, width, (interpolation, antialias) = step
                    x = resizing(height, width, interpolation=interpolation,
                                 antialias=antialias, name=f"{name}r{j}")(x)
                else:
                    k, s, p = step
                    x = conv(channels, k, strides=s, padding=p, name=f"{name}c{j}")(x)
        if any(d is not None and d < 1 for d in x.shape[1:]):
            raise ValueError(f"block {i} leaves no positions: {x.shape}")
    return keras.Model(inputs, x)
