"""Receptive field of every node, per spatial axis, relative to one model input.

Forward propagation over the call graph in topological order with exact fractions; merges check
that their paths are aligned. ``ReceptiveField.box`` walks index intervals backwards through the
real layers, so it is exact for every unit, also after upsampling and transposed convolutions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Iterable, Optional, Sequence, Union

import networkx as nx

from modelstats.errors import MisalignedMergeError, ModelStatsError, ShapeError, user_stacklevel
from modelstats.geometry import (
    IDENTITY,
    Geometry,
    TokenGrid,
    Window,
    _exact,
    compose,
    token_layout,
)
from modelstats.registry import Registry, Unsupported

__all__ = [
    "ReceptiveField",
    "MisalignedMergeWarning",
    "MultipleSpatialInputsWarning",
    "propagate",
    "axis_names",
    "spatial_inputs",
]

Number = Union[int, Fraction]

SPATIAL = "spatial"
GLOBAL = "global"
BROKEN = "broken"
UNSUPPORTED = "unsupported"
UNKNOWN = "unknown"
UNRELATED = "unrelated"


class MisalignedMergeWarning(UserWarning):
    """A merge joins paths whose receptive fields are not aligned (stride or centre differ)."""


class MultipleSpatialInputsWarning(UserWarning):
    """``analyze`` measured receptive fields from the first of several image-like inputs."""


CAUSAL_NOTE = ("a causal mask: position t sees positions up to t, a field that grows with t "
               "(no fixed size)")


def axis_names(n_axes: int) -> tuple[str, ...]:
    """Names of the spatial axes: ``x`` for 1-D, ``y, x`` for 2-D, ``z, y, x`` for 3-D."""
    return ("z", "y", "x")[3 - n_axes:] if n_axes <= 3 else tuple(f"a{i}" for i in range(n_axes))


def _plain(value: Optional[Fraction]) -> Optional[Number]:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else value


def _table_number(value: Optional[Number]) -> Optional[Number]:
    """A field's number in a table: ints as they are, Fractions as floats (or ints when
    whole, as :func:`_plain` makes them)."""
    if value is None or type(value) is int:
        return value
    return _plain(value) if value.denominator == 1 else float(value)


@dataclass
class _State:
    status: str
    size: tuple = ()
    stride: tuple = ()
    padding: tuple = ()
    aligned: bool = True
    global_context: bool = False
    note: str = ""
    geometry: Optional[Geometry] = None
    # The output is tokens whose token axis is this flattened grid: size, stride and padding
    # are the grid's (one per input axis), and units are addressed by grid position.
    tokens: Optional[TokenGrid] = None
    # Every element of the output depends on the whole input (a global path was added or
    # multiplied onto every element), so rearranging it cannot lose positions: it is global.
    # Kept only where it provably holds (``Geometry.complete``).
    everywhere: bool = False
    # For a broken state: axes (of its output, without batch) along which every token of a
    # token grid lies (q, k, v of a traced attention, split into heads and transposed).
    # A product summing over such an axis sees every token: global.
    token_axes: tuple = ()
    # For a broken state: (node, output index) of a mask merged into it (attention scores
    # plus a mask, a masked softmax). A product of such weights summing over every token sees
    # what the mask allows (causal: the positions before), read by modelstats.masks.
    masked_by: tuple = ()
    # For an unrelated state: it depends on another model input (a padding mask), so merged
    # into attention scores it is a mask, not a bias learned in weights.
    from_other_input: bool = False


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one node's output relative to one model input.

    Per spatial axis (for token ids, their positions: sizes in tokens): ``size`` r (input
    pixels one unit can see), ``stride`` j (input pixels between neighbouring units) and
    ``padding`` p (how far the field of unit 0 starts before pixel 0; None where it depends on
    an unknown input size). Unit ``u`` sees
    ``[u*j - p, u*j - p + r - 1]``. Values are ints, or Fractions after upsampling.

    ``status`` is ``spatial`` for a field with these numbers, ``global`` when every unit sees
    the whole input, ``broken`` when spatial correspondence was rearranged (Reshape, Permute,
    Flatten), ``unsupported``/``unknown`` when a layer on the way has no rule or an unknown size
    (or a merge joins a path that cannot be mapped: never the field of the other paths alone;
    or attention under a causal or attention mask, which modelstats does not read),
    ``unrelated`` when the node does not depend on the input. ``aligned`` is False for a merge
    of misaligned paths and everything downstream; ``global_context`` is True when a global
    path (e.g. squeeze-and-excitation, or attention added back onto its tokens) was merged in.

    ``tokens`` is set when the node's output is tokens ``(n, channels)`` made by flattening a
    grid (a ViT's patch embedding, ``Reshape((h*w, C))``): the field is that of the grid's
    units, and a unit is addressed by its token index, token ``t`` being grid position
    ``divmod(t - prefix, w)`` (row-major). The ``prefix``/``suffix`` extra tokens (class,
    register tokens, from weights) have no position on the grid.
    """

    node: str
    status: str
    size: Optional[tuple] = None
    stride: Optional[tuple] = None
    padding: Optional[tuple] = None
    aligned: bool = True
    global_context: bool = False
    note: str = ""
    _propagation: Any = field(default=None, repr=False, compare=False)
    tokens: Optional[TokenGrid] = None

    def __post_init__(self) -> None:
        # A field that agrees over several input sizes (a symbolic report) keeps the layout
        # of its tokens but not the grid's sizes, which depend on the input size.
        if self.tokens is not None and self._propagation is not None \
                and not isinstance(self._propagation, Propagation):
            grid = (None,) * len(self.tokens.grid)
            object.__setattr__(self, "tokens", TokenGrid(grid, self.tokens.prefix,
                                                          self.tokens.suffix))

    @property
    def is_global(self) -> bool:
        return self.status == GLOBAL

    def _require_spatial(self) -> None:
        if self.status != SPATIAL:
            raise ModelStatsError(
                f"Node '{self.node}' has no positional receptive field (status: {self.status}"
                + (f", {self.note}" if self.note else "") + ")."
            )

    def center(self, position) -> tuple:
        """Centre (in input pixel coordinates) of the field of the unit at ``position``.

        ``u*j - p + (r-1)/2`` per axis. Raises :class:`~modelstats.errors.ShapeError` when the
        padding depends on an input size that is unknown (pass ``input_shape=``).
        """
        self._require_spatial()
        position = self._unit(position)
        if any(p is None for p in self.padding):
            raise ShapeError(
                f"The padding of '{self.node}' depends on an unknown input size; pass "
                "input_shape=(...) to locate fields."
            )
        return tuple(
            _plain(Fraction(u) * j - p + Fraction(r - 1, 2))
            for u, r, j, p in zip(position, self.size, self.stride, self.padding)
        )

    def box(self, position, *, clip: bool = False) -> Optional[tuple[tuple[int, int], ...]]:
        """Exact input pixel interval ``(first, last)`` per axis seen by the unit at ``position``.

        Computed by walking index intervals backwards through the layers, so it is exact also
        where strides are fractional. By default the box is the geometric field and may extend
        outside the image (into padding). With ``clip=True`` every intermediate map's extent
        is applied on the way, giving exactly the input pixels the unit depends on. None when
        the unit reads no input pixel at all (e.g. between the taps of a sparse transposed
        conv, or a position that is pure padding). Raises
        :class:`~modelstats.errors.ShapeError` where a layer's padding depends on an input size
        that is unknown (pass ``input_shape=``).
        """
        self._require_spatial()
        position = self._unit(position)
        return self._propagation.box(self.node, position, clip=clip)

    def _unit(self, position) -> tuple[int, ...]:
        """Grid position of a unit: ``position`` itself for a map; for tokens, the token index
        (an int or a 1-tuple) mapped row-major onto the grid, or a grid position given with
        one coordinate per axis of a grid of two or more axes."""
        n_axes = len(self.size)
        if self.tokens is None:
            return _as_position(position, n_axes)
        scalar = hasattr(position, "__index__")
        if not scalar and len(tuple(position)) == n_axes and n_axes > 1:
            return _as_position(position, n_axes)
        token = int(position) if scalar else _as_position(position, 1)[0]
        try:
            unit = self.tokens.unit(int(token))
        except ValueError as exc:
            raise ShapeError(f"Token {token} of '{self.node}': {exc}.") from None
        if unit is None:
            tokens = self.tokens
            raise ModelStatsError(
                f"Token {token} of '{self.node}' is one of its extra tokens ({tokens.prefix} "
                f"before the {'x'.join(str(n) for n in tokens.grid)} grid, {tokens.suffix} "
                "after it: class, register or distillation tokens). It enters from weights, "
                "not from a position of the input, so it has no field on the grid; after "
                "attention it sees the whole input."
            )
        return unit


def _as_position(position, n_axes: int) -> tuple[int, ...]:
    if isinstance(position, int):
        position = (position,) * n_axes
    position = tuple(int(p) for p in position)
    if len(position) != n_axes:
        raise ModelStatsError(
            f"position needs {n_axes} coordinate(s), one per spatial axis; received {position}."
        )
    return position


class Propagation:
    """Receptive-field states of all nodes of a graph for one input (internal)."""

    def __init__(self, graph: nx.DiGraph, input_node: str, *, strict: bool = False,
                 registry: Optional[Registry] = None):
        if registry is None:
            from modelstats import rules

            registry = rules.active()
        self.registry = registry
        self.graph = graph
        # each node's attributes, read from a plain dict (not through a networkx view,
        # a method call per read)
        self.nodes: dict[str, dict] = dict(graph.nodes(data=True))
        self.input_node = input_node
        self.strict = strict
        self.n_axes = len(graph.nodes[input_node]["spatial_axes"])
        self.input_rank = len(graph.nodes[input_node]["output_shapes"][0])
        self.order = {node: i for i, node in enumerate(graph.nodes)}
        self.states: dict[str, _State] = {}
        self.mask_kinds: dict[tuple, Optional[str]] = {}  # (node, output index) -> kind
        model_inputs = set(graph.graph.get("inputs", ()))
        for node_id, data in self.nodes.items():
            state = self._state(node_id, data)
            self._mark_masks(node_id, state, node_id in model_inputs)
            self.states[node_id] = state

    # -- forward ---------------------------------------------------------------------------
    def _mark_masks(self, node_id: str, state: _State, model_input: bool) -> None:
        """Follow attention masks: what depends on another model input than the field's
        (``from_other_input``), and the broken states (attention scores) such a tensor was
        merged into, and what is computed from those (``masked_by``)."""
        if state.status not in (UNRELATED, BROKEN):
            return
        sources = [self.states[src] for src, _ in self.nodes[node_id]["inputs"]]
        if state.status == UNRELATED:
            state.from_other_input = model_input or any(s.from_other_input for s in sources)
        elif state.status == BROKEN:
            state.masked_by = next((s.masked_by for s in sources if s.masked_by), ())
            if not state.masked_by and any(s.status == BROKEN for s in sources):
                state.masked_by = next(
                    (tuple(source) for source, s in zip(self.nodes[node_id]["inputs"],
                                                        sources)
                     if s.status == UNRELATED and s.from_other_input), ())

    def _geometry(self, node_id: str, data: dict) -> Geometry:
        inputs = data["inputs"]
        axes = self.nodes[inputs[0][0]]["spatial_axes"] if inputs else None
        return self.registry.geometry(data["operation"], data["input_shapes"],
                                      data["output_shapes"], node=node_id, spatial_axes=axes)

    def _state(self, node_id: str, data: dict) -> _State:
        if node_id == self.input_node:
            # Plain ints until an upsampling makes a value fractional: int arithmetic is
            # tens of times faster than Fraction's, and compose() keeps exact values exact.
            return _State(SPATIAL, (1,) * self.n_axes, (1,) * self.n_axes, (0,) * self.n_axes)
        states = self.states
        related = [(src, states[src]) for src, _ in data["inputs"]
                   if states[src].status != UNRELATED]
        if not related or data.get("constant_outputs"):
            # (a call computing its outputs from its weights and its inputs' shapes only, as
            # a table of positions sliced to the sequence length, depends on no input value)
            return _State(UNRELATED)
        try:
            geometry = self._geometry(node_id, data)
        except Unsupported as exc:
            return _State(UNSUPPORTED, note=exc.reason)
        statuses = {s.status for _, s in related}
        if UNSUPPORTED in statuses or UNKNOWN in statuses:
            blind = next(src for src, s in related if s.status in (UNSUPPORTED, UNKNOWN))
            return _State(UNKNOWN, note=f"downstream of '{blind}', which has no field")
        if geometry.kind == "masked":
            return self._masked_attention(data, geometry)
        if geometry.kind == "product":
            product = self._product(data, geometry)
            if product is not None:
                return product
            geometry = IDENTITY  # a product with weights summing over channels: as Dense
        if geometry.kind == "global":
            folded = [src for src, s in related
                      if s.status == BROKEN and self.nodes[src].get("batch_factor", 1) != 1]
            if folded:
                return _State(BROKEN, note=f"'{folded[0]}' holds positions in its batch axis "
                              "(windows): this call sees only some of them")
            return _State(GLOBAL)
        spatial = [s for _, s in related if s.status == SPATIAL]
        if not spatial:
            if BROKEN in statuses:
                return _State(BROKEN, token_axes=self._carried_axes(data, geometry))
            return _State(GLOBAL)
        if geometry.kind in ("breaks", "pick"):
            if geometry.complete and all(s.status == GLOBAL or s.everywhere for _, s in related):
                # Each output element copies (or reads) elements that see the whole input
                # (after attention added back onto every token): no position is lost.
                what = "takes a position of" if geometry.kind == "pick" else "rearranges"
                return _State(GLOBAL, note=f"{what} a tensor every element of which sees the "
                              "whole input")
            if geometry.kind == "pick":
                return self._pick(geometry, spatial[0])
            return _State(BROKEN, note=geometry.note,
                          token_axes=self._carried_axes(data, geometry))
        if BROKEN in statuses:
            # The spatial paths alone would give a field that is too small: the rearranged
            # path feeds pixels from positions nobody tracked. A global path is different: it
            # has no positions, every unit sees all of it (global_context below).
            src, state = next((src, s) for src, s in related if s.status == BROKEN)
            return _State(UNKNOWN, note=f"merges '{src}', whose positions were rearranged"
                          + (f" ({state.note})" if state.note else ""))
        if geometry.kind == "flatten":
            return self._flatten(data, geometry, [s for _, s in related])
        if geometry.kind == "unflatten":
            return self._unflatten(node_id, data, geometry, [s for _, s in related])
        if geometry.kind == "join":
            return self._join(data, geometry)
        if geometry.kind not in ("identity", "window"):
            return _State(UNKNOWN, note=f"geometry of kind {geometry.kind!r} is not known")
        related = [s for _, s in related]
        layouts = {s.tokens for s in spatial}
        if len(layouts) > 1:
            return _State(BROKEN, note="merges tokens with a map, or token grids laid out "
                          "differently: unit u is not the same position on every path")
        (tokens,) = layouts
        rank = len(data["output_shapes"][0])
        if rank != (2 if tokens is not None else self.n_axes + 1) and not (
                tokens is None and rank == self.n_axes == self.input_rank):
            # (token ids have no channel axis: passed on as they are, they keep their rank)
            return _State(BROKEN, note="output rank differs from the input's",
                          token_axes=self._carried_axes(data, geometry))
        state = self._merge(node_id, spatial, tokens.grid if tokens is not None else None)
        state.global_context = state.global_context or any(
            s.status == GLOBAL or s.global_context for s in related
        )
        state.geometry = geometry
        if tokens is not None:
            return self._on_tokens(data, geometry, state, related)
        if geometry.kind == "identity":
            state.everywhere = geometry.complete and any(
                s.status == GLOBAL or s.everywhere for s in related)
            return state
        if len(geometry.axes) != self.n_axes:
            return _State(UNKNOWN, note=geometry.note or "spatial axes do not match the input's")
        state.size, state.stride, state.padding = zip(*(
            compose(r, j, p, axis)
            for r, j, p, axis in zip(state.size, state.stride, state.padding, geometry.axes)
        ))
        return state

    # -- attention masks, read on a full-length input (modelstats.masks) --------------------
    def _mask_kind(self, source: tuple) -> Optional[str]:
        from modelstats.masks import mask_kind, read_mask

        if source not in self.mask_kinds:
            self.mask_kinds[source] = mask_kind(read_mask(self.graph, *source))
        return self.mask_kinds[source]

    def _masked_attention(self, data: dict, geometry: Geometry) -> _State:
        """An attention layer called with a causal mask or an ``attention_mask``: global when
        this call's mask lets every query see every key of a full-length input, unknown
        otherwise, with what the mask is."""
        from modelstats.adapters import attention_mask_argument

        causal, position = attention_mask_argument(data["operation"], data["keras_node"])
        if causal:
            return _State(UNKNOWN, note=f"attention under {CAUSAL_NOTE}")
        if position is None or position >= len(data["inputs"]):
            return _State(GLOBAL)  # this call passes no mask (another call of it does)
        return self._under_mask(data["inputs"][position], geometry.note) or _State(GLOBAL, note=(
            "attention under an attention_mask that lets every query see every key of a "
            "full-length input"))

    def _under_mask(self, source: tuple, note: str) -> Optional[_State]:
        """None when the mask produced at ``source`` (node, output index) lets every query
        see every key of a full-length input; else the unknown state, saying what it is."""
        from modelstats.masks import ALL, CAUSAL

        kind = self._mask_kind(source)
        if kind == ALL:
            return None
        if kind == CAUSAL:
            return _State(UNKNOWN, note=f"attention under '{source[0]}', {CAUSAL_NOTE}")
        return _State(UNKNOWN, note=note)

    # -- products and the axes that hold every token ----------------------------------------
    def _token_axes(self, node_id: str) -> tuple:
        """Axes of ``node_id``'s output along which every token (every position) lies: the
        token axis of a token grid, the one axis of a 1-D map, the axes a broken state kept
        track of. None when positions were folded into the batch axis."""
        data = self.nodes[node_id]
        if data.get("batch_factor", 1) != 1:
            return ()
        state = self.states[node_id]
        if state.status == SPATIAL:
            if state.tokens is not None:
                return (0,)
            axes = tuple(data["spatial_axes"])
            return axes if len(axes) == 1 else ()
        return state.token_axes if state.status == BROKEN else ()

    def _carried_axes(self, data: dict, geometry: Geometry) -> tuple:
        """The axes holding every token that a call's output keeps from its inputs: where the
        geometry's ``axis_map`` sends them, or, for an identity that keeps the axis's size
        (elementwise, per-position work), in place."""
        if data.get("batch_factor", 1) != 1:
            return ()
        out_shape = data["output_shapes"][0]
        carried = set()
        for i, (src, index) in enumerate(data["inputs"]):
            full = self._token_axes(src)
            if not full:
                continue
            if geometry.axis_map:
                mapping = geometry.axis_map[i] if i < len(geometry.axis_map) else ()
                carried |= {mapping[a] for a in full
                            if a < len(mapping) and mapping[a] is not None}
            elif geometry.kind == "identity" and geometry.complete:
                shape = self.nodes[src]["output_shapes"][index]
                if len(shape) == len(out_shape):
                    carried |= {a for a in full
                                if shape[a] is not None and shape[a] == out_shape[a]}
        return tuple(sorted(carried))

    def _product(self, data: dict, geometry: Geometry) -> Optional[_State]:
        """A product of tensors (matmul, einsum, Dot). Global when an operand already sees the
        whole input in every element, or when the product sums over an axis holding every
        token (attention weights times values); a product of two input-dependent tensors
        otherwise pairs their positions (attention scores q kᵀ: unit (i, j) sees tokens i and
        j), which is no field on the grid. None for a product whose only input-dependent
        operand keeps its positions and sums over its channels (einsum with weights): as
        Dense, an identity."""
        inputs = data["inputs"]
        related = [(i, src, self.states[src]) for i, (src, _) in enumerate(inputs)
                   if self.states[src].status != UNRELATED]
        if any(s.status == GLOBAL or s.everywhere for _, _, s in related):
            return _State(GLOBAL, note="a product with a tensor every element of which sees "
                          "the whole input")
        if len(geometry.axis_map) != len(inputs) or len(geometry.contracted) != len(inputs):
            return _State(BROKEN, note=f"{geometry.note or 'a product'}: modelstats does not "
                          "follow its operands' axes")
        carried = set()
        masks = [state.masked_by for _, _, state in related if state.masked_by]
        for i, src, state in related:
            full = self._token_axes(src)
            masked = masks and set(full) & set(geometry.contracted[i]) and self._under_mask(
                masks[0], f"sums over every token of '{src}' with weights under the mask "
                f"'{masks[0][0]}', which modelstats cannot read on a full-length input: each "
                "position sees the positions the mask allows")
            if masked:
                return masked
            if set(full) & set(geometry.contracted[i]):
                return _State(GLOBAL, note=f"sums over every token of '{src}'" + (
                    f" (its mask '{masks[0][0]}' lets every query see every key of a "
                    "full-length input)" if masks else ""))
            mapping = geometry.axis_map[i]
            carried |= {mapping[a] for a in full if a < len(mapping) and mapping[a] is not None}
        if len(related) == 1 and related[0][2].status == SPATIAL:
            i, src, _ = related[0]
            positions = self.nodes[src]["spatial_axes"]
            mapping = geometry.axis_map[i]
            if all(a < len(mapping) and mapping[a] == a for a in positions) \
                    and not set(positions) & set(geometry.contracted[i]):
                return None
        if data.get("batch_factor", 1) != 1:
            carried = set()
        return _State(BROKEN, token_axes=tuple(sorted(carried)), note=(
            f"{geometry.note or 'a product'} of two input-dependent tensors: a unit pairs "
            "positions of both (attention scores), no field on the grid"
            if len(related) > 1 else f"{geometry.note or 'a product'} that moves positions"))

    # -- token grids -----------------------------------------------------------------------
    # A token state keeps the grid's per-axis size, stride and padding; its units are
    # addressed by grid position, so every call that keeps the grid maps units to themselves
    # (``geometry`` IDENTITY for ``box``) and only the layout (prefix, suffix) changes.

    def _layouts(self, data: dict) -> list:
        return [self.states[src].tokens if self.states[src].status == SPATIAL else None
                for src, _ in data["inputs"]]

    def _on_tokens(self, data: dict, geometry: Geometry, state: _State,
                   related: list) -> _State:
        """A per-token call (Dense, LayerNormalization, Add of a position embedding, ...) or
        a slice of the token axis on tokens of a grid."""
        if geometry.kind == "window" and len(geometry.axes) != 1:
            return _State(UNKNOWN, note=geometry.note or "spatial axes do not match the tokens'")
        layout = token_layout(geometry, self._layouts(data), data["input_shapes"],
                              data["output_shapes"][0])
        if layout is None:
            if geometry.kind == "window":
                return _State(BROKEN, note="a window along the token axis: tokens of a "
                              "flattened grid are not a 1-D map (it would mix the ends of rows), "
                              "and a slice must keep every grid token")
            return _State(BROKEN, note="the number of tokens changes")
        state.tokens = layout
        state.geometry = IDENTITY
        state.everywhere = geometry.complete and any(
            s.status == GLOBAL or s.everywhere for s in related)
        return state

    def _flatten(self, data: dict, geometry: Geometry, related: list) -> _State:
        """``(h, w, C) -> (h*w, C)``: the tokens keep the grid's field."""
        (source,) = related if len(related) == 1 else (None,)
        folded = data.get("batch_factor", 1) != 1 \
            or self.nodes[data["inputs"][0][0]].get("batch_factor", 1) != 1
        if source is None or source.tokens is not None or folded \
                or len(data["input_shapes"][0]) != self.n_axes + 1:
            return _State(BROKEN, note="flattens axes that are not the input's spatial axes")
        layout = token_layout(geometry, [None], data["input_shapes"], data["output_shapes"][0])
        if layout is None:
            return _State(BROKEN, note="not a flatten of the spatial axes into tokens")
        return _State(SPATIAL, source.size, source.stride, source.padding, source.aligned,
                      source.global_context, "", IDENTITY, layout, source.everywhere)

    def _unflatten(self, node_id: str, data: dict, geometry: Geometry,
                   related: list) -> _State:
        """``(h*w, C) -> (h, w, C)``: tokens of an ``(h, w)`` grid with no extra tokens laid
        back out on that grid (token ``i*w + j`` becomes position ``(i, j)``), so the map's
        units keep the grid's field; the backward walk maps a unit to the same grid position
        of the tokens (IDENTITY, as for a flatten). Any other layout rearranges positions."""
        (source,) = related if len(related) == 1 else (None,)
        target = tuple(data["output_shapes"][0])
        layout = source.tokens if source is not None else None
        folded = data.get("batch_factor", 1) != 1 \
            or self.nodes[data["inputs"][0][0]].get("batch_factor", 1) != 1
        problem = None
        if layout is None or folded:
            problem = "lays out on a grid tokens that are not a flattened grid"
        elif layout.prefix or layout.suffix:
            problem = (f"lays out on a grid tokens with extra tokens ({layout.prefix} before "
                       f"the grid, {layout.suffix} after it): token i*w + j is not position "
                       "(i, j)")
        elif None in layout.grid or tuple(layout.grid) != target[:-1]:
            grid = "x".join(str(n) for n in layout.grid)
            problem = f"lays out the tokens of a {grid} grid as {target}"
        elif len(target) != self.n_axes + 1 \
                or tuple(self.nodes[node_id]["spatial_axes"]) != tuple(range(self.n_axes)):
            problem = "lays out tokens on axes that are not the map's spatial axes"
        if problem is None:
            return _State(SPATIAL, source.size, source.stride, source.padding, source.aligned,
                          source.global_context, "", IDENTITY, None, source.everywhere)
        if all(s.status == GLOBAL or s.everywhere for s in related):
            return _State(GLOBAL, note="rearranges a tensor every element of which sees the "
                          "whole input")
        return _State(BROKEN, note=f"Reshape {problem}",
                      token_axes=self._carried_axes(data, geometry))

    def _join(self, data: dict, geometry: Geometry) -> _State:
        """Pieces joined along a spatial axis: exactly one depends on the input (its state is
        spatial), the others are constants or unrelated to the input (a class token from a
        weight). On tokens the pieces before the grid become its prefix; on a map they shift
        positions as padding with constants does."""
        inputs = data["inputs"]
        found = None
        for k, (source, _) in enumerate(geometry.parts):
            if source is None:
                continue
            src = inputs[source][0]
            state = self.states[src]
            if state.status == UNRELATED:
                continue
            if state.status != SPATIAL or found is not None:
                return _State(BROKEN, note=f"{geometry.note or 'joins pieces'}: more than one "
                              f"piece depends on the input (also '{src}', {state.status})")
            found = (k, state)
        if found is None:
            return _State(BROKEN, note=geometry.note or "a join of unknown pieces")
        k, state = found
        before = [n for _, n in geometry.parts[:k]]
        rank = len(data["output_shapes"][0])
        if state.tokens is not None:
            layout = token_layout(geometry, self._layouts(data), data["input_shapes"],
                                  data["output_shapes"][0])
            if layout is None or rank != 2:
                return _State(BROKEN, note=f"{geometry.note or 'a join'}: not along the token "
                              "axis, or pieces of unknown length")
            return _State(SPATIAL, state.size, state.stride, state.padding, state.aligned,
                          state.global_context, "", IDENTITY, layout)
        if None in before or rank != self.n_axes + 1 or geometry.axis is None:
            return _State(BROKEN, note=f"{geometry.note or 'a join'}: pieces of unknown length")
        shift = sum(before)
        axes = tuple(Window(1, 1, 1, shift if a == geometry.axis else 0)
                     for a in range(self.n_axes))
        composed = [compose(r, j, p, axis)
                    for r, j, p, axis in zip(state.size, state.stride, state.padding, axes)]
        return _State(SPATIAL, tuple(c[0] for c in composed), tuple(c[1] for c in composed),
                      tuple(c[2] for c in composed), state.aligned, state.global_context,
                      "", Geometry("window", axes))

    def _pick(self, geometry: Geometry, state: _State) -> _State:
        """One position taken (``x[:, 0]``): no position is left, so no field to report,
        except (above) when every element already sees the whole input."""
        if state.tokens is None or len(geometry.index) != 1:
            return _State(BROKEN, note=geometry.note)
        token = geometry.index[0]
        try:
            unit = state.tokens.unit(token)
        except ValueError as exc:
            return _State(BROKEN, note=f"picks token {token}: {exc}")
        if unit is None:
            return _State(BROKEN, note=f"picks token {token}, an extra (class or register) "
                          "token: it has no position on the grid, and no attention has made it "
                          "see the whole input")
        return _State(BROKEN, note=f"picks token {token}, grid position {unit}: one unit, no "
                      "positions left")

    def _merge(self, node_id: str, spatial: list[_State],
               grid: Optional[tuple] = None) -> _State:
        """Field where spatial paths meet: per axis, the union of what the paths' units see.

        With equal strides the union of ``[u*j - p_i, u*j - p_i + r_i - 1]`` over the paths is
        ``[u*j - p, u*j - p + r - 1]`` with ``p = max p_i`` and ``r - 1 - p = max(r_i - 1 -
        p_i)``, for every unit u: the largest field when the paths are centred alike, wider
        when they are shifted. With different strides no affine field bounds every unit; the
        result then bounds the units of the merge's map (see :func:`_union_axis`).
        """
        first = spatial[0]
        if len(spatial) == 1:
            return _State(SPATIAL, first.size, first.stride, first.padding, first.aligned,
                          first.global_context)
        problems = []
        names = axis_names(self.n_axes)
        sources = [src for src, _ in self.nodes[node_id]["inputs"]
                   if self.states[src].status == SPATIAL]
        for axis in range(self.n_axes):
            for source, other in zip(sources[1:], spatial[1:]):
                if other.stride[axis] != first.stride[axis]:
                    problems.append(
                        f"axis {names[axis]}: stride {_plain(first.stride[axis])} via "
                        f"'{sources[0]}' but {_plain(other.stride[axis])} via '{source}'"
                    )
                    continue
                if first.padding[axis] is None or other.padding[axis] is None:
                    continue  # centres depend on the unknown input size
                # Twice the centre of unit 0, (r - 1) - 2p, stays an int on integer fields.
                twice_a = first.size[axis] - 1 - 2 * first.padding[axis]
                twice_b = other.size[axis] - 1 - 2 * other.padding[axis]
                if twice_a != twice_b:
                    shift = _plain(Fraction(abs(twice_a - twice_b)) / 2)
                    problems.append(
                        f"axis {names[axis]}: centres differ by {shift}"
                        f" input pixels between '{sources[0]}' and '{source}'"
                    )
        extent = grid if grid is not None else self._extent(node_id, 0)
        union = [
            _union_axis([(s.size[a], s.stride[a], s.padding[a]) for s in spatial], extent[a])
            for a in range(self.n_axes)
        ]
        global_context = any(s.global_context for s in spatial)
        note = ""
        if problems:
            note = "misaligned merge: " + "; ".join(problems)
            if self.strict:
                raise MisalignedMergeError(f"Node '{node_id}': {note}.")
            warnings.warn(f"modelstats: node '{node_id}': {note}.", MisalignedMergeWarning,
                          stacklevel=user_stacklevel())
        if any(u is None for u in union):
            return _State(UNKNOWN, note=note + "; the strides differ and the map's size or "
                          "padding is unknown, so no field bounds every unit")
        aligned = all(s.aligned for s in spatial) and not problems
        return _State(SPATIAL, tuple(u[0] for u in union), tuple(u[1] for u in union),
                      tuple(u[2] for u in union), aligned, global_context, note)

    # -- backward --------------------------------------------------------------------------
    def _extent(self, node_id: str, output_index: int) -> tuple:
        state = self.states.get(node_id)
        if state is not None and state.tokens is not None:
            return state.tokens.grid  # token units are addressed on their grid
        data = self.nodes[node_id]
        shape = data["output_shapes"][output_index]
        return tuple(shape[a] for a in data["spatial_axes"])

    def box(self, node_id: str, position: tuple[int, ...], clip: bool = False) -> Optional[tuple]:
        """Walk demands backwards from one unit to the input.

        A demand is a list of *boxes*, one value per axis: unclipped an interval (all maps are
        monotone, so endpoints map to endpoints), clipped the exact set of positions (strides
        leave holes that a map's border can cut). Every layer is separable, so it maps a box to
        a box exactly. Paths that meet at a merge can demand different boxes (a 1x3 path wide
        in x, a 3x1 path wide in y) whose union is not a box: the boxes are kept apart, else
        their per-axis union would claim pixels neither path reads (e.g. where the taps of a
        transposed convolution leave gaps). Boxes inside another are dropped; past
        ``_MAX_BOXES`` the boxes are joined into their per-axis union, a superset.
        """
        start = tuple(frozenset((u,)) if clip else (u, u) for u in position)
        demand: dict[str, list] = {node_id: [start]}
        pending = sorted(nx.ancestors(self.graph, node_id) | {node_id},
                         key=self.order.__getitem__, reverse=True)
        for current in pending:
            if current not in demand:
                continue
            if current == self.input_node:
                boxes = demand[current]
                if clip:
                    return tuple((min(min(a) for a in axis), max(max(a) for a in axis))
                                 for axis in zip(*boxes))
                return tuple((min(a for a, _ in axis), max(b for _, b in axis))
                             for axis in zip(*boxes))
            state = self.states[current]
            wanted_here = demand.pop(current)
            windowed = state.geometry is not None and state.geometry.kind == "window"
            axes = state.geometry.axes if windowed else (None,) * len(position)
            for src, index in self.nodes[current]["inputs"]:
                if self.states[src].status != SPATIAL:
                    continue  # global context and unrelated inputs have no position
                extents = self._extent(src, index)
                mapped = []
                for box in wanted_here:
                    try:
                        if clip:
                            wanted = tuple(frozenset(_read_positions(want, axis, n))
                                           for want, axis, n in zip(box, axes, extents))
                        else:
                            wanted = tuple(want if axis is None else axis.interval(*want)
                                           for want, axis in zip(box, axes))
                    except ValueError as exc:
                        raise ShapeError(
                            f"Cannot locate fields through '{current}': {exc}. Pass input_shape."
                        ) from None
                    if all(wanted):  # else along this path the box reads nothing (padding, gaps)
                        mapped.append(wanted)
                if mapped:
                    demand[src] = _join_boxes(demand.get(src, []), mapped, clip)
        if self.input_node in pending:
            return None
        raise ModelStatsError(f"Node '{node_id}' does not depend on input '{self.input_node}'.")

    # -- results ---------------------------------------------------------------------------
    def columns(self, node_ids: Iterable[str],
                wanted: Sequence[tuple[str, Optional[int]]]) -> list[list]:
        """The values :meth:`field` gives, as table columns: one list per ``(attribute, axis)``
        of ``wanted`` (an attribute of :class:`ReceptiveField`; ``axis`` indexes a per-axis
        tuple, None for a scalar attribute), one entry per node. Per-axis values are None
        where the field has no numbers, and Fractions become floats (exact values stay on
        :meth:`field`). Read from the states, without a ReceptiveField per node."""
        columns: list[list] = [[] for _ in wanted]
        per_axis = ("size", "stride", "padding")
        states = self.states
        for node_id in node_ids:
            state = states[node_id]
            spatial = state.status == SPATIAL
            for values, (attribute, axis) in zip(columns, wanted):
                value = getattr(state, attribute)
                if attribute in per_axis:
                    value = value[axis] if spatial else None
                    if value is not None and type(value) is not int:
                        value = _table_number(value)
                values.append(value)
        return columns

    def field(self, node_id: str) -> ReceptiveField:
        state = self.states[node_id]
        if state.status != SPATIAL:
            return ReceptiveField(node_id, state.status, note=state.note,
                                  aligned=state.aligned, global_context=state.global_context,
                                  _propagation=self)
        return ReceptiveField(
            node_id, SPATIAL,
            tuple(_plain(v) for v in state.size),
            tuple(_plain(v) for v in state.stride),
            tuple(_plain(v) for v in state.padding),
            state.aligned, state.global_context, state.note, self, tokens=state.tokens,
        )


def _union_axis(fields: list[tuple], n_units: Optional[int]) -> Optional[tuple]:
    """Union, along one axis, of the fields ``(r, j, p)`` of paths that meet at a merge.

    Equal strides: unit u of path i sees ``[u*j - p_i, u*j - p_i + r_i - 1]``; the union is
    the interval from ``u*j - max(p_i)`` to ``u*j + max(r_i - 1 - p_i)``, the same for every
    u. With an unknown padding the offsets between paths are unknown: the largest size is
    kept (the union when the paths are centred alike, as "same" convolutions with odd kernels
    are) and the padding stays None.

    Different strides: the paths drift apart with u, so no affine field bounds every unit
    of an unbounded map. Over the ``n_units`` units of the merge's map the field with stride
    ``j`` must reach from ``min_i(u*j_i - p_i)`` to ``max_i(u*j_i - p_i + r_i - 1)``; both
    ends are linear in u per path, so units 0 and ``n_units - 1`` decide. Of the paths'
    strides the one giving the smallest size is taken. None when ``n_units`` or a padding
    is unknown.

    >>> _union_axis([(3, 1, 1), (5, 1, 2)], 8)  # aligned: the larger field
    (5, 1, 2)
    >>> _union_axis([(3, 1, 0), (3, 1, 2)], 8)  # shifted by 2: [u-2, u+2]
    (5, 1, 2)
    >>> _union_axis([(1, 2, 0), (1, 1, -4)], 8)  # [2u, 2u] and [u+4, u+4] for u < 8
    (8, 2, 3)
    """
    strides = {j for _, j, _ in fields}
    if len(strides) == 1:
        (j,) = strides
        if any(p is None for _, _, p in fields):
            return max(r for r, _, _ in fields), j, None
        p = max(p for _, _, p in fields)
        reach = max(r - 1 - q for r, _, q in fields)
        return _exact(reach + p + 1), j, p
    if n_units is None or any(p is None for _, _, p in fields):
        return None
    best = None
    for j in sorted(strides, reverse=True):
        ends = (0, n_units - 1)
        p = max(u * (j - ji) + pi for _, ji, pi in fields for u in ends)
        reach = max(u * (ji - j) - pi + ri - 1 for ri, ji, pi in fields for u in ends)
        candidate = (_exact(reach + p + 1), j, _exact(p))
        if best is None or candidate[0] < best[0]:
            best = candidate
    return best


#: More boxes than this in one demand of ``Propagation.box`` are joined into their per-axis union.
_MAX_BOXES = 64


def _join_boxes(boxes: list, new: list, clip: bool) -> list:
    """``boxes`` plus ``new``, without boxes contained in another (see ``Propagation.box``)."""

    def inside(inner, outer) -> bool:
        if clip:
            return all(i <= o for i, o in zip(inner, outer))
        return all(o[0] <= i[0] and i[1] <= o[1] for i, o in zip(inner, outer))

    boxes = list(boxes)
    for box in new:
        if any(inside(box, other) for other in boxes):
            continue
        boxes = [other for other in boxes if not inside(other, box)]
        boxes.append(box)
    if len(boxes) > _MAX_BOXES:
        boxes = [tuple(frozenset().union(*axis) if clip
                       else (min(a for a, _ in axis), max(b for _, b in axis))
                       for axis in zip(*boxes))]
    return boxes


def _read_positions(positions: set, axis, extent: Optional[int]) -> set:
    """Positions of the input map read by a set of output positions (inside the map)."""
    read = positions if axis is None else {t for o in positions for t in axis.taps(o)}
    if extent is None:
        return set(read)
    return {t for t in read if 0 <= t < extent}


def spatial_inputs(graph: nx.DiGraph) -> list[str]:
    """Model inputs with at least one spatial axis (shape ``(*spatial, channels)``)."""
    return [n for n in graph.graph["inputs"] if graph.nodes[n]["spatial_axes"]]


def default_field_input(graph: nx.DiGraph, requested: Optional[str]) -> Optional[str]:
    """The input a report measures fields from: ``requested``, else the first of several
    spatial inputs (with a :class:`MultipleSpatialInputsWarning` saying so), else None (the
    only spatial input, or none, is then found by :func:`choose_input`)."""
    spatial = spatial_inputs(graph)
    if requested is None and len(spatial) > 1:
        requested = spatial[0]
        warnings.warn(
            f"The model has several inputs with spatial axes {spatial}; receptive fields are "
            f"measured from '{requested}'. Pass input= to choose another.",
            MultipleSpatialInputsWarning,
            stacklevel=user_stacklevel(),
        )
    return requested


def choose_input(graph: nx.DiGraph, requested: Optional[str] = None) -> str:
    """The model input the fields are measured on: ``requested`` (node id or name), or the
    only input with spatial axes."""
    inputs = graph.graph["inputs"]
    if requested is not None:
        for node in inputs:
            if requested in (node, graph.nodes[node]["name"]):
                return node
        raise ModelStatsError(f"input={requested!r} is not a model input; inputs are {inputs}.")
    spatial = spatial_inputs(graph)
    if len(spatial) == 1:
        return spatial[0]
    if not spatial:
        raise ModelStatsError(
            f"No model input has spatial axes (inputs: {inputs}); receptive fields need an "
            "input of shape (..., channels) with at least one spatial axis."
        )
    raise ModelStatsError(
        f"The model has several inputs with spatial axes ({spatial}); choose one with input=."
    )


def propagate(graph: nx.DiGraph, input: Optional[str] = None, *, strict: bool = False) -> Propagation:
    """Receptive fields of every node of ``graph`` relative to one input (internal engine)."""
    return Propagation(graph, choose_input(graph, input), strict=strict)
