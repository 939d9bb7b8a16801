"""The receptive-field oracle: gradient probing of real Keras models.

With positive weights, zero biases and linear activations, an output unit's gradient with
respect to the input is non-zero exactly on the pixels it depends on. ``box(position,
clip=True)`` (every map's extent applied on the way) must equal the bounding box of those
pixels exactly, for every unit; the geometric ``box(position)`` must contain it, and with
integer strides equal the affine summary ``[u*j - p, u*j - p + r - 1]``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import assume, given, note
from hypothesis import strategies as st

import modelstats
from tests.properties.strategies import build, geometry_specs

tf = pytest.importorskip("tensorflow")


def positive_weights(model, rng):
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") if w.ndim > 1
                               else np.zeros_like(w) for w in weights])


def gradient_support(model, position, rank):
    """Bounding box (per axis) of input pixels with non-zero gradient of one output unit."""
    shape = (1, *model.input.shape[1:])
    image = tf.ones(shape)
    with tf.GradientTape() as tape:
        tape.watch(image)
        out = model(image)
        index = (0, *position, 0)
        unit = out[index]
    grad = tape.gradient(unit, image).numpy()[0]
    nonzero = np.argwhere(np.abs(grad).sum(axis=-1) > 0)
    if len(nonzero) == 0:
        return None
    return tuple((int(nonzero[:, a].min()), int(nonzero[:, a].max())) for a in range(rank))


def probe_positions(out_spatial, rng):
    corners = [tuple(0 for _ in out_spatial), tuple(n - 1 for n in out_spatial)]
    centre = [tuple(n // 2 for n in out_spatial)]
    random = [tuple(int(rng.integers(0, n)) for n in out_spatial) for _ in range(2)]
    return corners + centre + random


@given(spec=geometry_specs(), seed=st.integers(0, 2**16))
def test_box_equals_gradient_support(spec, seed):
    try:
        model = build(spec)
    except Exception:  # noqa: BLE001 - a size became invalid: not an architecture
        assume(False)
    note(repr(spec))
    rank, size, blocks = spec
    # Upsampling, transposed convolutions, resizing and adaptive pooling with a ratio that is
    # not a whole number give units fields of varying shape: the summary is then an envelope.
    fractional = any(
        (b[0] in ("upsample", "transpose") and b[2 if b[0] == "transpose" else 1] > 1)
        or b[0] in ("resize", "adaptive")
        for b in blocks
    )
    rng = np.random.default_rng(seed)
    positive_weights(model, rng)
    out_name = model.layers[-1].name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", modelstats.MisalignedMergeWarning)
        rf = modelstats.receptive_field(model, out_name)
    assert rf.status == "spatial"
    out_spatial = tuple(model.output.shape[1:-1])
    for position in probe_positions(out_spatial, rng):
        box = rf.box(position)
        support = gradient_support(model, position, rank)
        # Clipped to every intermediate map, the box is exactly the gradient support.
        assert rf.box(position, clip=True) == support
        if box is None:  # the unit reads no pixel: a gap between transposed-conv taps
            assert support is None
            continue
        note(f"position {position}: box {box}, support {support}")
        if support is not None:
            # The geometric field contains what is read; padding of the image or of an
            # intermediate map (e.g. after a crop) can only cut it, never extend it.
            for (lo, hi), (slo, shi) in zip(box, support):
                assert max(lo, 0) <= slo and shi <= min(hi, size - 1)
        if rf.aligned and not fractional:
            # With integer strides the affine summary is the exact field of every unit.
            assert box == tuple(
                (u * j - p, u * j - p + r - 1)
                for u, r, j, p in zip(position, rf.size, rf.stride, rf.padding)
            )
        else:
            # Otherwise the summary is an envelope of every unit's field.
            centre_lo = [u * j - p for u, j, p in zip(position, rf.stride, rf.padding)]
            for (lo, hi), start, r in zip(box, centre_lo, rf.size):
                assert start <= lo and hi <= start + r - 1
