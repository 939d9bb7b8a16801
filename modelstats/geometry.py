"""Receptive-field algebra, pure: how one layer maps output positions to input positions, per axis.

Each spatial layer is described, along one axis, by an *index map*: output unit ``o`` reads the
input units ``[lo(o), hi(o)]`` (integers, may be outside the map: that is padding). Convolutions and
pooling are affine (``lo = o*s - q``); transposed convolutions, upsampling and resizing are periodic
in ``o``. From an index map we derive

* the exact box of any unit, by walking intervals backwards (``interval``), and
* the layer's affine *envelope* ``(K, S, Q)``: the tightest kernel, stride and left padding such
  that ``[o*S - Q, o*S - Q + K - 1]`` contains ``[lo(o), hi(o)]`` for every ``o``. Composing
  envelopes gives the summary ``size``/``stride``/``padding`` of a node; with integer strides it is
  exact, with fractional strides (upsampling) it bounds every unit's field.

Recurrences (Araujo, Norris & Sim, Distill 2019), with ``r`` size, ``j`` stride (jump), ``p``
effective padding of the input map: ``r' = r + (K-1)*j``, ``j' = j*S``, ``p' = p + Q*j``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Union

from modelstats.formulas import effective_kernel

__all__ = [
    "AxisMap",
    "Window",
    "Transposed",
    "Resample",
    "Adaptive",
    "Geometry",
    "IDENTITY",
    "GLOBAL",
    "BREAKS",
    "REARRANGES",
    "FLATTEN",
    "TokenGrid",
    "token_layout",
    "reshape_axis_map",
    "compose",
]

Number = Union[int, Fraction]  # whole values are kept as int


class AxisMap:
    """Index map of one layer along one spatial axis."""

    # The maps are built for every call (slotted dataclasses below, built in half the time
    # of ones with an instance dict); the base adds no dict of its own.
    __slots__ = ()

    #: Input units per output unit (Fraction); below one for upsampling layers.
    slope: Fraction

    def unit(self, o: int) -> Optional[tuple[int, int]]:
        """Input interval read by output unit ``o`` (None when it reads no input unit)."""
        raise NotImplementedError

    @property
    def period(self) -> int:
        return self.slope.denominator

    def taps(self, o: int) -> list[int]:
        """Input positions that output unit ``o`` really reads (holes of dilation excluded)."""
        unit = self.unit(o)
        return [] if unit is None else list(range(unit[0], unit[1] + 1))

    def interval(self, a: int, b: int, extent: Optional[int] = None) -> Optional[tuple[int, int]]:
        """Bounding input interval of the output units ``a..b`` (None if they read nothing,
        as between the taps of a transposed conv whose stride exceeds its kernel).

        With ``extent`` (the input map's size) only positions inside the map count: padding
        is not a pixel. Without it, lo(o + P) = lo(o) + P*slope for the period P, so the
        minimum lies in the first period and the maximum in the last one.
        """
        if extent is not None:
            read = [t for o in range(a, b + 1) for t in self.taps(o) if 0 <= t < extent]
            return (min(read), max(read)) if read else None
        period = self.period
        los = [u[0] for o in range(a, min(b, a + period - 1) + 1) if (u := self.unit(o))]
        his = [u[1] for o in range(max(a, b - period + 1), b + 1) if (u := self.unit(o))]
        if not los or not his:
            return None
        return min(los), max(his)

    def envelope(self) -> tuple[Fraction, Fraction, Optional[Fraction]]:
        """The tightest affine bound ``(K, S, Q)`` of this map over one period."""
        slope = self.slope
        q = max(o * slope - u[0] for o in range(self.period) if (u := self.unit(o)))
        reach = max(u[1] - o * slope for o in range(self.period) if (u := self.unit(o)))
        return reach + q + 1, slope, q


@dataclass(frozen=True, slots=True)
class Window(AxisMap):
    """Convolution / pooling / padding / cropping: unit ``o`` reads ``o*s - q .. o*s - q + k_eff - 1``.

    ``pad_left`` is None when it depends on an input size that is unknown. Zero padding is a
    window of one with ``pad_left`` = pad, cropping one with ``pad_left`` = -crop.

    >>> Window(3, 2, 1, 0).unit(5)
    (10, 12)
    """

    kernel: int
    stride: int = 1
    dilation: int = 1
    pad_left: Optional[int] = 0

    @property
    def slope(self) -> Fraction:
        return Fraction(self.stride)

    def unit(self, o):
        if self.pad_left is None:
            raise ValueError("padding is unknown: give the input size")
        start = o * self.stride - self.pad_left
        return start, start + effective_kernel(self.kernel, self.dilation) - 1

    def taps(self, o):
        start = self.unit(o)[0]
        return [start + m * self.dilation for m in range(self.kernel)]

    def interval(self, a, b, extent=None):
        if extent is None:
            return self.unit(a)[0], self.unit(b)[1]
        # Closed form per kernel tap m: positions o*s - q + m*d for o in a..b, inside the map.
        lows, highs = [], []
        s, q, d = self.stride, self.pad_left, self.dilation
        if q is None:
            raise ValueError("padding is unknown: give the input size")
        for m in range(self.kernel):
            offset = m * d - q
            first = max(a, math.ceil(-offset / s)) if offset < 0 else a
            last = min(b, (extent - 1 - offset) // s)
            if first <= last:
                lows.append(first * s + offset)
                highs.append(last * s + offset)
        return (min(lows), max(highs)) if lows else None

    def envelope(self):
        return effective_kernel(self.kernel, self.dilation), self.stride, self.pad_left


@dataclass(frozen=True, slots=True)
class Transposed(AxisMap):
    """Transposed convolution: input unit ``i`` writes output units ``i*s - q + m*d``, m < k.

    ``pad_left`` is the left padding of the forward convolution it transposes. Nearest
    upsampling by ``s`` is ``Transposed(s, s)``.

    >>> Transposed(3, 2, 1, 1).unit(4)  # taps m with (4 + 1 - m) even: m=1 -> i=2
    (2, 2)
    """

    kernel: int
    stride: int
    dilation: int = 1
    pad_left: Optional[int] = 0

    @property
    def slope(self) -> Fraction:
        return Fraction(1, self.stride)

    def unit(self, o):
        if self.pad_left is None:
            raise ValueError("padding is unknown: give the input size")
        sources = [
            (o + self.pad_left - m * self.dilation) // self.stride
            for m in range(self.kernel)
            if (o + self.pad_left - m * self.dilation) % self.stride == 0
        ]
        return (min(sources), max(sources)) if sources else None

    def taps(self, o):
        return sorted({
            (o + self.pad_left - m * self.dilation) // self.stride
            for m in range(self.kernel)
            if (o + self.pad_left - m * self.dilation) % self.stride == 0
        })

    def envelope(self):
        k_eff = effective_kernel(self.kernel, self.dilation)
        s = self.stride
        size = 1 + Fraction(k_eff - 1, s)
        q = None if self.pad_left is None else Fraction(k_eff - 1 - self.pad_left, s)
        return size, Fraction(1, s), q


#: Resizing kernels of ``tf.image.resize`` that run through its ``ScaleAndTranslate`` op: the
#: kernel's radius in input units (times the downscaling factor with ``antialias``).
SCALE_AND_TRANSLATE_RADIUS = {"bilinear": 1, "bicubic": 2, "lanczos3": 3, "lanczos5": 5}


@dataclass(frozen=True, slots=True)
class Resample(AxisMap):
    """Resizing from ``n_in`` to ``n_out`` positions as TensorFlow's ``tf.image.resize`` computes
    it (Keras ``Resizing`` and interpolated ``UpSampling`` on the TensorFlow backend).

    Half-pixel centres: output unit ``o`` samples ``x = (o + 1/2) * n_in/n_out - 1/2``; bilinear
    reads ``floor(x)`` and ``ceil(x)``, nearest ``floor((o + 1/2) * n_in/n_out)``, bicubic the
    four taps around x, area the input cells overlapping ``[o, o+1) * n_in/n_out``, lanczos (and
    any kernel with ``antialias``) the positions within the kernel radius. What is read is
    decided in float32, exactly as the kernels do: where ``x`` is a whole number in exact
    arithmetic, float rounding can put it just below, and bilinear then reads ``x - 1`` with a
    weight of about 1e-7 (a real dependency, seen by gradients). Taps whose weight is exactly
    zero (bilinear at a whole ``x``, bicubic's outer taps there) are not read. Both were checked
    against ``tf.image.resize`` on one-hot inputs and its gradients.

    ``unit`` is the geometric field (it may leave the map: TensorFlow clamps reads to the edge,
    ``taps`` clamps too); it is computed for the units of the map and extended to others by
    the period ``n_out`` (``unit(o + n_out) = unit(o) + n_in``), so the affine envelope over
    one period bounds every unit.

    >>> Resample(4, 8, "bilinear").unit(3)  # x = 3.5/2 - 0.5 = 1.25
    (1, 2)
    >>> Resample(7, 23, "bilinear").taps(11)  # x = 3 exactly, 2.9999998 in float32
    [2, 3]
    """

    n_in: int
    n_out: int
    interpolation: str = "bilinear"
    antialias: bool = False

    @property
    def slope(self) -> Fraction:
        return Fraction(self.n_in, self.n_out)

    @property
    def period(self) -> int:
        # Float rounding is periodic only over the whole map (``slope.denominator`` divides it).
        return self.n_out

    def _table(self) -> tuple:
        return _resample_table(self.n_in, self.n_out, self.interpolation, self.antialias)

    def unit(self, o):
        turns, o = divmod(o, self.n_out)
        lo, hi, _ = self._table()[o]
        return lo + turns * self.n_in, hi + turns * self.n_in

    def taps(self, o):
        if 0 <= o < self.n_out:
            return list(self._table()[o][2])
        lo, hi = self.unit(o)  # outside the map: the geometric extension, clamped
        return sorted({min(max(t, 0), self.n_in - 1) for t in range(lo, hi + 1)})


@functools.lru_cache(maxsize=512)
def _resample_table(n_in: int, n_out: int, interpolation: str, antialias: bool) -> tuple:
    """Per output unit of the map: ``(lo, hi, taps)``, the unclamped field and the positions of
    the map read with a non-zero weight, emulating TensorFlow's resize kernels in float32."""
    import numpy as np  # float32 arithmetic, rounded as the C++ kernels round it

    f32 = np.float32
    o = np.arange(n_out, dtype=f32)
    last = n_in - 1

    def clamp(t: int) -> int:
        return min(max(int(t), 0), last)

    if interpolation in SCALE_AND_TRANSLATE_RADIUS and (
        antialias or interpolation.startswith("lanczos")
    ):
        return _scale_and_translate(n_in, n_out, interpolation, antialias)
    scale = f32(n_in) / f32(n_out)  # CalculateResizeScale
    rows = []
    if interpolation == "nearest":  # ResizeNearestNeighbor, HalfPixelScalerForNN
        for v in (o + f32(0.5)) * scale:
            t = clamp(math.floor(v))
            rows.append((t, t, (t,)))
    elif interpolation == "bilinear":  # ResizeBilinear: floor and ceil, weights 1-lerp, lerp
        for v in (o + f32(0.5)) * scale - f32(0.5):
            lo, hi = math.floor(v), math.ceil(v)  # equal when lerp == 0: one tap
            rows.append((lo, hi, tuple(sorted({clamp(lo), clamp(hi)}))))
    elif interpolation == "bicubic":  # ResizeBicubic, Keys a=-0.5, 1024-entry weight table
        v = (o + f32(0.5)) * scale - f32(0.5)
        floor = np.floor(v)
        offsets = np.rint((v - floor) * f32(1024)).astype(int)  # lrintf: half to even
        for base, offset in zip(floor.astype(int).tolist(), offsets.tolist()):
            # Taps base-1 .. base+2; the table is exactly 0 at distances 1 and 2, i.e. at
            # offset 0 for all but `base`, at offset 1024 for all but `base + 1`.
            kept = [base] if offset == 0 else [base + 1] if offset == 1024 else \
                [base - 1, base, base + 1, base + 2]
            inside = tuple(t for t in kept if 0 <= t <= last)  # outside: weight 0
            rows.append((kept[0], kept[-1], inside))
    elif interpolation == "area":  # ResizeArea: cells overlapping [o*s, (o+1)*s)
        for start_f, end_f in zip(o * scale, (o + f32(1)) * scale):
            lo, hi = math.floor(start_f), math.ceil(end_f) - 1
            rows.append((lo, hi, tuple(sorted({clamp(t) for t in range(lo, hi + 1)}))))
    else:
        raise ValueError(f"unknown interpolation {interpolation!r}")
    return tuple(rows)


def _scale_and_translate(n_in: int, n_out: int, interpolation: str, antialias: bool) -> tuple:
    """TensorFlow's ScaleAndTranslate (lanczos, and every kernel with ``antialias``): unit o
    samples ``(o + 1/2) / scale`` and reads the span within the kernel radius (times the
    downscaling factor with antialias), minus positions where the kernel is exactly 0."""
    import numpy as np

    f32 = np.float32
    scale = f32(n_out) / f32(n_in)
    inv_scale = f32(1.0 / float(scale))
    kernel_scale = max(inv_scale, f32(1)) if antialias else f32(1)
    one_over = f32(1) / kernel_scale
    radius = f32(SCALE_AND_TRANSLATE_RADIUS[interpolation])
    reach = radius * kernel_scale
    kind = {"bilinear": "triangle", "bicubic": "keyscubic"}.get(interpolation, "lanczos")

    def weighs(source: int, sample) -> bool:
        x = abs((f32(source) + f32(0.5) - sample) * one_over)
        if kind == "triangle":
            return bool(x < f32(1))
        if kind == "keyscubic":
            if x >= f32(2):
                return False
            if x >= f32(1):
                return bool(((f32(-0.5) * x + f32(2.5)) * x - f32(4)) * x + f32(2) != 0)
            return bool(((f32(1.5) * x - f32(2.5)) * x) * x + f32(1) != 0)
        return bool(x <= radius)  # lanczos: sin(pi x) of a float is never exactly 0

    rows = []
    for sample in (np.arange(n_out, dtype=f32) + f32(0.5)) * inv_scale:
        lo = math.ceil(sample - reach - f32(0.5))
        hi = math.floor(sample + reach - f32(0.5))
        kept = [t for t in range(lo, hi + 1) if weighs(t, sample)]
        if not kept:  # not seen in practice: every span holds its centre
            rows.append((lo, hi, ()))
            continue
        rows.append((kept[0], kept[-1], tuple(t for t in kept if 0 <= t < n_in)))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class Adaptive(AxisMap):
    """Adaptive pooling from ``n_in`` to ``n_out`` positions: unit ``o`` reads
    ``floor(o*n_in/n_out) .. ceil((o+1)*n_in/n_out) - 1``.

    >>> Adaptive(10, 4).unit(1)
    (2, 4)
    """

    n_in: int
    n_out: int

    @property
    def slope(self) -> Fraction:
        return Fraction(self.n_in, self.n_out)

    def unit(self, o):
        return math.floor(o * self.slope), math.ceil((o + 1) * self.slope) - 1


@dataclass(frozen=True, slots=True)
class Geometry:
    """What one layer does to spatial correspondence.

    kind:
      ``identity``  every spatial position maps to itself (elementwise, normalisation, 1x1 work,
                    merges of aligned inputs);
      ``window``    per-axis index maps in ``axes`` (conv, pooling, padding, resampling);
      ``global``    every output unit sees the whole input (global pooling, attention, RNNs);
      ``breaks``    spatial positions are rearranged (Reshape, Permute, Flatten): not guessed;
      ``flatten``   the spatial axes of a channels-last map merged into one token axis in
                    row-major order, channels kept last: ``(h, w, C) -> (h*w, C)`` (a ViT's
                    patch tokens); the tokens keep their positions on the ``(h, w)`` grid;
      ``unflatten`` the reverse, tokens laid back out on a grid, channels kept last:
                    ``(h*w, C) -> (h, w, C)``; exact (token ``i*w + j`` becomes position
                    ``(i, j)``) only when the input is a token grid of exactly that ``(h, w)``
                    with no extra tokens, which the propagation checks (it breaks otherwise);
      ``join``      tensors joined along spatial axis ``axis`` (an index into the input's
                    spatial axes): ``parts`` lists the pieces in order, each ``(graph input
                    index, or None for a constant operand, length along that axis or None)``
                    (a class token concatenated in front of patch tokens);
      ``pick``      an integer ``index`` taken on every spatial axis (``x[:, 0]``): no
                    position is left;
      ``masked``    attention under a mask it may be given (``attention_mask``, a causal
                    mask): each query sees the positions its mask allows. The propagation
                    reads the call's mask on a full-length input (modelstats.masks): global
                    when it allows every key, unknown otherwise (causal: the positions up to
                    t), with ``note`` saying why;
      ``product``   a product of tensors (matmul, einsum, Dot): per graph input, the axes it
                    sums over (``contracted``) and where its other axes go (``axis_map``).
                    Summing over every token makes each output global; a product of two
                    input-dependent tensors otherwise pairs their positions (attention
                    scores) and breaks the field; a product with weights that sums over the
                    channels only keeps positions, as Dense does.

    ``axis_map`` (``breaks`` that rearrange, ``product``): one tuple per graph input giving,
    for each of its axes (without batch), the output axis it becomes intact, or None. It lets
    the propagation follow an axis that holds every token of a grid through the reshapes and
    transposes of a traced attention (q, k, v split into heads), until a product sums over it.

    ``complete``: every output element reads at least one element of every graph input (an
    elementwise op, a per-position channel mix such as Dense, a copy that rearranges one
    tensor). False when some elements come from only one of the inputs or from constants
    (concatenation, padding, ``zeros_like``), and for rules that do not say: it lets an input
    every element of which sees the whole input make the output global, so it is only ever
    claimed where it holds.
    """

    kind: str
    axes: tuple[AxisMap, ...] = ()
    note: str = ""
    complete: bool = False
    axis: Optional[int] = None
    parts: tuple = ()
    index: tuple = ()
    axis_map: tuple = ()
    contracted: tuple = ()


IDENTITY = Geometry("identity", complete=True)
GLOBAL = Geometry("global")
BREAKS = Geometry("breaks")
#: A rearrangement of one tensor (reshape, transpose, flatten, tile): every output element is a
#: copy of an input element, so the positions are lost but not the dependence.
REARRANGES = Geometry("breaks", complete=True)
FLATTEN = Geometry("flatten", complete=True)


@dataclass(frozen=True)
class TokenGrid:
    """A token axis that is a flattened grid: ``prefix`` extra tokens (class, register or
    distillation tokens), then the ``prod(grid)`` positions of the grid in row-major order,
    then ``suffix`` extra tokens. ``grid`` holds the sizes of the flattened spatial axes (None
    where unknown).

    >>> TokenGrid((4, 4), prefix=1).unit(6)  # token 6 = grid position 5 = row 1, column 1
    (1, 1)
    """

    grid: tuple
    prefix: int = 0
    suffix: int = 0

    @property
    def n_grid(self) -> Optional[int]:
        """Number of grid tokens (None when a size is unknown)."""
        return None if None in self.grid else math.prod(self.grid)

    @property
    def n_tokens(self) -> Optional[int]:
        n = self.n_grid
        return None if n is None else self.prefix + n + self.suffix

    def unit(self, token: int) -> Optional[tuple[int, ...]]:
        """Grid position of ``token`` (an index along the token axis), row-major; None for an
        extra token. ValueError when it is outside the axis or the grid's sizes are unknown."""
        n_grid = self.n_grid
        n_tokens = self.n_tokens
        if token < 0 or (n_tokens is not None and token >= n_tokens):
            raise ValueError(f"token {token} is outside the token axis of {n_tokens} tokens")
        offset = token - self.prefix
        if offset < 0 or (n_grid is not None and offset >= n_grid):
            return None
        if None in self.grid[1:]:
            raise ValueError("the grid's size is unknown: it depends on the input size (pass "
                             "input_shape=, or evaluate a symbolic report with .at())")
        coordinates = []
        for n in reversed(self.grid[1:]):
            offset, c = divmod(offset, n)
            coordinates.append(c)
        return (offset, *reversed(coordinates))


def reshape_axis_map(source: tuple, target: tuple) -> tuple:
    """For each axis of ``source`` (sizes, without batch), the axis of ``target`` it stays
    intact as under a row-major reshape, or None: same size, and as many elements before and
    after it. Axes of size 1 are not followed.

    >>> reshape_axis_map((17, 576), (17, 3, 3, 64))  # tokens stay, channels split into heads
    (0, None)
    >>> reshape_axis_map((64, 32), (8, 8, 32))  # the tokens are split into rows
    (None, 2)
    """
    if None in source or None in target:
        return ()
    result = []
    for q, n in enumerate(source):
        found = None
        if n > 1:
            before, after = math.prod(source[:q]), math.prod(source[q + 1:])
            for k, m in enumerate(target):
                if m == n and math.prod(target[:k]) == before \
                        and math.prod(target[k + 1:]) == after:
                    found = k
                    break
        result.append(found)
    return tuple(result)


def token_layout(geometry: Geometry, layouts: list, input_shapes: list,
                 output_shape: tuple) -> Optional[TokenGrid]:
    """The token grid of a call's output (a tensor ``(tokens, channels)``), from its geometry
    and the token grids of its graph inputs (None for an input that is not one); None when
    the output is not a token grid.

    ``flatten`` makes one; an identity keeps its inputs' (which must agree, and the token
    count must stay), attention (``global``) its query's; a ``join`` along the token axis
    adds the other pieces to the prefix or suffix of the one piece that is a grid; a window of one with stride 1 (a slice or a
    constant pad of the token axis) shifts the tokens, as long as the whole grid stays.
    Pure: the graph records it for every node, the propagation for the nodes whose field it
    follows.

    >>> flat = token_layout(FLATTEN, [None], [(4, 4, 8)], (16, 8))
    >>> flat
    TokenGrid(grid=(4, 4), prefix=0, suffix=0)
    >>> token_layout(Geometry("join", axis=0, parts=((None, 1), (0, 16))), [flat],
    ...              [(16, 8)], (17, 8))
    TokenGrid(grid=(4, 4), prefix=1, suffix=0)
    """
    if len(output_shape) != 2:
        return None
    kind = geometry.kind
    if kind == "flatten":
        if not layouts or layouts[0] is not None:
            return None
        return TokenGrid(tuple(input_shapes[0][:-1]))
    known = [layout for layout in layouts if layout is not None]
    if not known:
        return None
    if kind == "global":
        # Attention: output token i answers query token i (the first input): the layout
        # stays, though every token now sees the whole input.
        n_tokens, n = known[0].n_tokens, output_shape[0]
        same = layouts[0] is not None and (n is None or n_tokens is None or n == n_tokens)
        return layouts[0] if same else None
    if kind == "identity":
        if any(layout != known[0] for layout in known[1:]):
            return None
        n_tokens, n = known[0].n_tokens, output_shape[0]
        return known[0] if n is None or n_tokens is None or n == n_tokens else None
    if kind == "join" and geometry.axis == 0:
        grids = [k for k, (source, _) in enumerate(geometry.parts)
                 if source is not None and source < len(layouts) and layouts[source] is not None]
        if len(grids) != 1:
            return None
        k = grids[0]
        layout = layouts[geometry.parts[k][0]]
        before = [n for _, n in geometry.parts[:k]]
        after = [n for _, n in geometry.parts[k + 1:]]
        if None in before or None in after:
            return None
        return TokenGrid(layout.grid, layout.prefix + sum(before), layout.suffix + sum(after))
    if kind == "window" and len(geometry.axes) == 1 and len(known) == 1:
        axis = geometry.axes[0]
        if not (isinstance(axis, Window) and axis.kernel == 1 and axis.stride == 1
                and axis.pad_left is not None):
            return None
        layout, n = known[0], output_shape[0]
        if layout.n_grid is None or n is None:
            return None
        prefix = layout.prefix + axis.pad_left
        suffix = n - prefix - layout.n_grid
        if prefix < 0 or suffix < 0:
            return None  # the slice cuts into the grid
        return TokenGrid(layout.grid, prefix, suffix)
    return None


def compose(
    size: Fraction, stride: Fraction, padding: Optional[Fraction], axis: AxisMap
) -> tuple[Fraction, Fraction, Optional[Fraction]]:
    """Field of a layer's output from the field of its input along one axis.

    Values stay ``int`` while they are whole numbers and become ``Fraction`` only after an
    upsampling makes them fractional.

    >>> compose(1, 1, 0, Window(3, 2, 1, 0))
    (3, 2, 0)
    >>> compose(1, 1, 0, Transposed(2, 2))  # nearest 2x upsampling: half-pixel units
    (Fraction(3, 2), Fraction(1, 2), Fraction(1, 2))
    """
    k, s, q = axis.envelope()
    new_padding = None if padding is None or q is None else _exact(padding + q * stride)
    return _exact(size + (k - 1) * stride), _exact(stride * s), new_padding


def _exact(value: Number) -> Number:
    """A Fraction with denominator 1 becomes an int (exact either way, ints are faster)."""
    if type(value) is Fraction and value.denominator == 1:
        return value.numerator
    return value
