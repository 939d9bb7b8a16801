"""Hypothesis strategies for architectures: specs as plain data, built into real Keras models.

A spec is ``(rank, input_size, blocks)``; each block is a tuple naming a layer family and its
hyper-parameters. ``build`` turns a spec into a Keras model whose layers are named ``b{i}...``.
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["geometry_blocks", "geometry_specs", "build"]


@st.composite
def conv_block(draw):
    kernel = draw(st.integers(1, 7))
    stride = draw(st.integers(1, 3))
    dilation = 1 if stride > 1 else draw(st.integers(1, 3))  # Keras forbids both > 1
    padding = draw(st.sampled_from(["same", "valid"]))
    return ("conv", kernel, stride, dilation, padding)


def geometry_blocks(rank: int):
    """One geometry-relevant block for a ``rank``-D net."""
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
    if rank == 2:
        blocks.append(st.tuples(st.just("resize"), st.integers(3, 40), st.integers(3, 40),
                                st.sampled_from(["nearest", "bilinear"])))
    return st.one_of(*blocks)


@st.composite
def geometry_specs(draw, max_blocks: int = 5):
    rank = draw(st.sampled_from([1, 2]))
    size = draw(st.integers(9, 40) if rank == 2 else st.integers(9, 64))
    blocks = draw(st.lists(geometry_blocks(rank), min_size=1, max_size=max_blocks))
    return rank, size, blocks


def build(spec, channels: int = 2):
    """Build the Keras model of a spec (raises ValueError when a size would become < 1)."""
    import keras

    rank, size, blocks = spec
    L = keras.layers
    conv = {1: L.Conv1D, 2: L.Conv2D}[rank]
    transpose = {1: L.Conv1DTranspose, 2: L.Conv2DTranspose}[rank]
    pool = {1: L.AveragePooling1D, 2: L.AveragePooling2D}[rank]
    pad = {1: L.ZeroPadding1D, 2: L.ZeroPadding2D}[rank]
    crop = {1: L.Cropping1D, 2: L.Cropping2D}[rank]
    up = {1: L.UpSampling1D, 2: L.UpSampling2D}[rank]
    adaptive = {1: L.AdaptiveAveragePooling1D, 2: L.AdaptiveAveragePooling2D}[rank]
    inputs = keras.Input((size,) * rank + (channels,), name="x")
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
            if any(out > d for d in x.shape[1:-1]):
                raise ValueError("adaptive pooling to more positions than its input has")
            x = adaptive(out if rank == 1 else (out, out), name=name)(x)
        elif kind == "resize":
            height, width, interpolation = args
            x = L.Resizing(height, width, interpolation=interpolation, name=name)(x)
        elif kind == "branch":
            merge, k1, k2, s = args
            a = conv(channels, k1, strides=s, padding="same", name=f"{name}a")(x)
            b = conv(channels, k2, strides=s, padding="same", name=f"{name}b")(x)
            if merge == "add":
                x = L.Add(name=name)([a, b])
            else:
                x = L.Concatenate(name=name)([a, b])
                x = conv(channels, 1, name=f"{name}m")(x)
        if any(d is not None and d < 1 for d in x.shape[1:]):
            raise ValueError(f"block {i} leaves no positions: {x.shape}")
    return keras.Model(inputs, x)
