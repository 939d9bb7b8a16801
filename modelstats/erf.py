"""Effective receptive field: where one unit's gradient mass lies in the input.

The theoretical field says which pixels a unit *can* see. Luo, Li, Urtasun & Zemel (*Understanding
the effective receptive field in deep convolutional neural networks*, NeurIPS 2016) showed that
the pixels it is sensitive to form a much smaller, roughly Gaussian blob: the effective receptive
field (ERF), measured as the magnitude of the gradient of the unit with respect to the input.

:func:`effective_receptive_field` measures it on a Keras model under the TensorFlow or JAX
backend: the graph of :func:`modelstats.to_networkx` is run call by call from the model input up
to the chosen node (inner layers of nested models included), one batch of images at a time, in
inference mode, and differentiated by the backend. It never changes the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import networkx as nx
import numpy as np

from modelstats.errors import ModelStatsError, OptionError, ShapeError
from modelstats.propagation import SPATIAL, Propagation, ReceptiveField, choose_input

__all__ = ["effective_receptive_field", "EffectiveReceptiveField"]

#: Memory one batch may take (activations kept for the backward pass, and their gradients).
_BATCH_BYTES = 2 << 30
#: Beyond this, a bigger batch does not run faster on a few CPU cores.
_MAX_BATCH = 16


@dataclass(frozen=True, eq=False)
class EffectiveReceptiveField:
    """The gradient heat-map of one unit, next to its theoretical receptive field.

    Attributes
    ----------
    map : numpy.ndarray
        float64, one value per input pixel (shape: the input's spatial size, ``(H, W)`` for
        images): ``|d unit / d input|`` summed over the input channels and averaged over the
        images whose unit and gradient are finite.
    layer : str
        Node id of the layer (see :func:`modelstats.to_networkx`).
    position : tuple of int
        The unit's position in the layer's output map (one index per spatial axis).
    receptive_field : ReceptiveField
        The layer's theoretical field.
    box : tuple of (int, int), or None
        ``receptive_field.box(position, clip=True)``: per axis, the first and last input pixel
        the unit depends on. No gradient can fall outside it.
    n_images : int
        Images averaged into ``map``.
    n_dropped : int
        Images left out because their unit or its gradient had a NaN or an infinity.
    """

    map: np.ndarray
    layer: str
    position: tuple
    receptive_field: ReceptiveField
    box: Optional[tuple]
    n_images: int
    n_dropped: int = 0

    def __repr__(self) -> str:
        return (f"EffectiveReceptiveField(layer={self.layer!r}, position={self.position}, "
                f"map shape={self.map.shape}, box={self.box}, n_images={self.n_images}, "
                f"n_dropped={self.n_dropped})")

    @property
    def center(self) -> tuple:
        """The unit's theoretical centre in input pixels, per axis (ints, or halves for even
        fields): ``u*j - p + (r-1)/2``."""
        return self.receptive_field.center(self.position)

    @property
    def normalized(self) -> np.ndarray:
        """``map`` divided by its sum (the share of the gradient mass on each pixel)."""
        total = self.map.sum()
        if not total > 0:
            raise ModelStatsError(
                f"The ERF of '{self.layer}' at {self.position} has no gradient mass (every "
                "gradient was zero, e.g. behind dead ReLUs); try other images or weights."
            )
        return self.map / total

    def area_ratio(self, t: float) -> float:
        """RepLKNet's high-contribution area ratio: the area of the smallest square centred on
        the unit's theoretical centre that holds at least a fraction ``t`` of the mass, as a
        fraction of the input area.

        The squares grow one pixel on every side at a time from the pixels nearest the centre,
        ``floor(c) - k .. ceil(c) + k`` per axis for k = 0, 1, ...: sides 1, 3, 5, ... when the
        centre is a pixel, 2, 4, 6, ... when it lies between two (a field of even size). The
        area counted is the number of input pixels inside the square: a square crossing the
        image border is clipped to the image (outside it there are neither pixels nor mass),
        so the ratio is at most 1.

        Parameters
        ----------
        t : float
            The fraction of the gradient mass, in (0, 1].

        Returns
        -------
        float
            Pixels in that square divided by the input's pixels.

        Examples
        --------
        After one 3x3 convolution the centre unit's mass lies evenly on 3 x 3 pixels of a
        9 x 9 input: the centre pixel holds 1/9 of it, the 3 x 3 square all of it.

        >>> import numpy as np
        >>> from modelstats import ReceptiveField
        >>> rf = ReceptiveField("conv", "spatial", size=(3, 3), stride=(1, 1), padding=(1, 1))
        >>> erf = EffectiveReceptiveField(np.pad(np.ones((3, 3)), 3), "conv", (4, 4), rf,
        ...                               box=((3, 5), (3, 5)), n_images=1)
        >>> erf.center
        (4, 4)
        >>> erf.area_ratio(0.1), erf.area_ratio(0.5)  # 1 and 9 pixels of 81
        (0.012345679012345678, 0.1111111111111111)
        """
        if not 0 < t <= 1:
            raise OptionError(f"area_ratio needs a fraction t in (0, 1]. Received: t={t!r}")
        total = self.map.sum()
        if not total > 0:
            self.normalized  # raises with the reason
        centre = self.center
        first = [math.floor(c) for c in centre]
        last = [math.ceil(c) for c in centre]
        shape = self.map.shape
        # After this many steps the square covers the whole image on every axis.
        steps = max(max(f, n - 1 - l) for f, l, n in zip(first, last, shape))
        for k in range(max(steps, 0) + 1):
            window = tuple(slice(max(f - k, 0), max(min(l + k, n - 1) + 1, 0))
                           for f, l, n in zip(first, last, shape))
            inside = self.map[window]
            # The whole image is compared as "all of the mass", not as a sum in another order.
            if inside.size == self.map.size or inside.sum() >= t * total:
                return inside.size / self.map.size
        return 1.0  # pragma: no cover - the last square covers the image

    def plot(self, ax: Any = None, image: Any = None, *, log: bool = False,
             full_field: bool = False, cmap: str = "inferno") -> Any:
        """Draw the heat-map with the theoretical field's clipped box and centre on it.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw (a new figure when None).
        image : array-like, optional
            An input image ``(H, W)`` or ``(H, W, C)``, shown under a translucent map.
        log : bool, default False
            Colour by ``log10`` of the normalised map (down to 1e-6 of its peak): the ERF is
            peaked, and the log scale shows how far its tails reach.
        full_field : bool, default False
            Also draw, dashed, the whole geometric field (``receptive_field.box(position)``),
            which may reach far past the image, and widen the axes to show it.
        cmap : str, default "inferno"

        Returns
        -------
        matplotlib.axes.Axes
        """
        from modelstats._render import pyplot

        plt = pyplot()
        if self.map.ndim != 2:
            raise ModelStatsError(
                f"plot() draws 2-D maps; this ERF has {self.map.ndim} spatial axes. Plot "
                ".map yourself."
            )
        if ax is None:
            _, ax = plt.subplots(figsize=(5, 5))
        values = self.normalized
        if log:
            values = np.log10(np.maximum(values, values.max() * 1e-6))
        alpha = 1.0
        if image is not None:
            shown = np.asarray(image, dtype="float64")
            if shown.shape[:2] != self.map.shape:
                raise ShapeError(
                    f"image must be the input's size {self.map.shape} (H, W[, C]). Received "
                    f"an array of shape {shown.shape}."
                )
            low, high = np.nanmin(shown), np.nanmax(shown)
            shown = (shown - low) / (high - low) if high > low else np.zeros_like(shown)
            ax.imshow(shown.squeeze(), cmap="gray" if shown.squeeze().ndim == 2 else None)
            alpha = 0.7
        ax.imshow(values, cmap=cmap, alpha=alpha)
        (top, bottom), (left, right) = (-0.5, self.map.shape[0] - 0.5), \
            (-0.5, self.map.shape[1] - 0.5)

        def rectangle(box: tuple, **style: Any) -> None:
            # pixel i covers [i - 0.5, i + 0.5]
            (y0, y1), (x0, x1) = box
            ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1,
                                       fill=False, edgecolor="cyan", **style))

        if self.box is not None:
            rectangle(self.box, linewidth=1.5)
        whole = self.receptive_field.box(self.position) if full_field else None
        if whole is not None:
            rectangle(whole, linewidth=1, linestyle="--")
            (y0, y1), (x0, x1) = whole
            margin = 0.03 * max(y1 - y0, x1 - x0)  # else the frame hides the dashes
            top, bottom = min(top, y0 - 0.5 - margin), max(bottom, y1 + 0.5 + margin)
            left, right = min(left, x0 - 0.5 - margin), max(right, x1 + 0.5 + margin)
        cy, cx = (float(c) for c in self.center)
        ax.plot([cx], [cy], marker="+", color="cyan", markersize=10)
        size = "x".join(str(s) for s in self.receptive_field.size)
        ax.set_title(f"ERF of {self.layer} at {self.position}\n(theoretical field {size})",
                     fontsize=9)
        ax.set_xlim(left, right)
        ax.set_ylim(bottom, top)
        return ax


def effective_receptive_field(
    model: Any,
    layer: Optional[str] = None,
    *,
    images: Any = None,
    n_images: int = 32,
    position: Any = None,
    seed: int = 0,
    input_shape: Any = None,
    batch_size: Optional[int] = None,
) -> EffectiveReceptiveField:
    """Measure the effective receptive field of one unit (Luo et al., 2016).

    The unit is the output of ``layer`` at ``position`` **summed over that layer's channels**:
    one number per image whose gradient shows what every feature at that position looks at.
    Luo et al. back-propagate a gradient of 1 from the centre pixel of the output plane and 0
    from everywhere else; summing the channels sets that 1 on every channel of the pixel. The map is ``|d unit / d input|`` summed over the input
    channels and averaged over the images. The model runs in inference mode (``training=False``:
    no augmentation or dropout, batch normalisation with its moving statistics), so the images
    of a batch do not interact.

    Parameters
    ----------
    model : keras.Model
        A Functional or Sequential model (Keras 3 on the TensorFlow or JAX backend, or tf_keras)
        with one input with spatial axes.
    layer : str, optional
        A node id (``"mobilenetv2_1.00_224/out_relu"``, also inside nested models) or a layer
        name called once. Default: the last node whose output still has positions (for a
        classifier, its last feature map).
    images : array-like, optional
        Input images, ``(N, *input shape)`` (or one image without the batch axis), in the value
        range the model expects. Default: ``n_images`` images of independent standard normal
        pixels. For a text model (an input of token ids looked up by an Embedding): token ids,
        by default uniform over the vocabulary; the map is then taken at the looked-up vectors
        (token ids have no gradient), one value per token position.
    n_images : int, default 32
        How many random images to draw when ``images`` is None.
    position : int or tuple of int, optional
        The unit's position in the layer's output map, one index per spatial axis (an int is
        used on every axis). Default: the centre unit, ``n // 2`` on an axis of n positions.
    seed : int, default 0
        Seed of the random images.
    input_shape : tuple, optional
        Input shape without batch, for a model with unknown sizes (``(None, None, 3)``) and no
        ``images``; given ``images`` set it themselves.
    batch_size : int, optional
        Images per forward and backward pass. Default: as many as fit in about 2 GiB of
        activations (11 images for MobileNetV2 at 224), at most 16; 1 when the path to the
        unit goes through a custom layer's traced call (its arguments may hold the batch size
        it was traced with), where any other value is refused.

    Returns
    -------
    EffectiveReceptiveField
        ``.map`` (input-sized, float64), ``.receptive_field`` and ``.box`` (the theoretical
        field and the pixels the unit depends on), ``.area_ratio(t)``, ``.plot()``.

    Raises
    ------
    ModelStatsError
        For an unknown layer, a layer without positions (after global pooling, Flatten, ...), a
        position outside the map, an unsupported backend, a channels_first model on
        TensorFlow's CPU kernels, or when every image's unit or gradient is non-finite.
    ShapeError
        When ``images`` do not fit the model input.

    Examples
    --------
    Two 3x3 convolutions of ones: the centre unit's gradient is the 3x3 box convolved with
    itself, the outer product of ``[1, 2, 3, 2, 1]`` with itself.

    >>> import keras, numpy as np, modelstats
    >>> x = keras.Input((9, 9, 1))
    >>> y = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
    ...                         name="c1")(x)
    >>> y = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
    ...                         name="c2")(y)
    >>> erf = modelstats.effective_receptive_field(keras.Model(x, y), "c2", n_images=2)
    >>> erf.position, erf.box, erf.receptive_field.size
    ((4, 4), ((2, 6), (2, 6)), (5, 5))
    >>> erf.map[4, 2:7]
    array([3., 6., 9., 6., 3.])
    >>> erf.area_ratio(0.5)  # the 3x3 square holds (2+3+2)**2 / 9**2 = 0.60 of it: 9 of 81 px
    0.1111111111111111
    """
    from modelstats.adapters import adapter_for
    from modelstats.graph import to_networkx

    adapter = adapter_for(model)
    batch = None
    model_shape = _model_input_shape(model)
    if images is not None:
        batch = np.asarray(images)
        if model_shape is not None and batch.ndim == len(model_shape):
            batch = batch[None]  # one image
        rank = 3 if model_shape is None else len(model_shape) + 1  # (token ids: (N, T))
        if batch.ndim < rank or len(batch) == 0:
            raise ShapeError(
                "images must be an array (N, *input shape) of at least one image. Received an "
                f"array of shape {batch.shape}."
            )
        if input_shape is None and model_shape is not None and None in model_shape:
            input_shape = batch.shape[1:]
    graph = to_networkx(model, input_shape=input_shape)
    if len(graph.graph["inputs"]) != 1:
        raise ModelStatsError(
            "effective_receptive_field needs a model with one input; this one has "
            f"{graph.graph['inputs']}."
        )
    input_node = choose_input(graph)
    shape = graph.nodes[input_node]["output_shapes"][0]
    if any(d is None for d in shape):
        raise ShapeError(
            f"The model input has unknown sizes {shape}: pass images=... or "
            "input_shape=(...) without the batch dimension."
        )
    propagation = Propagation(graph, input_node)
    node = _choose_layer(graph, propagation, input_node, layer)
    field = propagation.field(node)
    out_shape = graph.nodes[node]["output_shapes"][0]
    out_axes = graph.nodes[node]["spatial_axes"]
    position = _position(position, tuple(out_shape[a] for a in out_axes), node)
    box = field.box(position, clip=True)

    probe, vocabulary = _token_embedding(graph, input_node)
    if batch is None:
        if not (isinstance(n_images, int) and n_images >= 1):
            raise OptionError(f"n_images must be a positive int. Received: {n_images!r}")
        rng = np.random.default_rng(seed)
        batch = rng.standard_normal((n_images, *shape)) if probe is None else \
            rng.integers(0, vocabulary, (n_images, *shape))
    elif tuple(batch.shape[1:]) != tuple(shape):
        raise ShapeError(
            f"images must have the model input's shape {tuple(shape)} after the batch axis. "
            f"Received an array of shape {batch.shape}."
        )
    batch = batch.astype(graph.nodes[input_node]["dtype"] or "float32", copy=False)
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise OptionError(f"batch_size must be a positive int. Received: {batch_size!r}")
    traced = _traced_ancestor(graph, node)
    if traced is not None:
        # A traced call's arguments may hold the batch size it was traced with (a class
        # token tiled to ops.shape(x)[0], which was 1): replayed one image at a time.
        if batch_size not in (None, 1):
            raise OptionError(
                f"'{traced}' is inside a custom layer's traced call, which may have fixed the "
                f"batch size at 1 (e.g. ops.tile(token, [ops.shape(x)[0], 1, 1])); pass "
                f"batch_size=1 (or leave it out). Received: {batch_size!r}")
        batch_size = 1
    elif batch_size is None:
        batch_size = _auto_batch_size(graph, node)

    in_axes = graph.nodes[input_node]["spatial_axes"]
    # the axes summed: the channels of what is differentiated (the token vectors' for ids)
    start = probe or input_node
    channel_axes = tuple(a + 1 for a in range(len(graph.nodes[start]["output_shapes"][0]))
                         if a not in graph.nodes[start]["spatial_axes"])
    # The unit of every image at once: batch and channels sliced whole, the position fixed.
    index = (slice(None), *(position[out_axes.index(a)] if a in out_axes else slice(None)
                            for a in range(len(out_shape))))
    run = _Runner(graph, adapter, input_node, node, index, probe)
    gradient = _gradient_function(adapter, run, graph, traced=len(batch) > batch_size)

    total = np.zeros(tuple(shape[a] for a in in_axes), dtype="float64")
    kept = dropped = 0
    for start in range(0, len(batch), batch_size):
        chunk = batch[start:start + batch_size]
        grads, units = gradient(chunk, batch_size)
        per_image = np.abs(grads.astype("float64")).sum(axis=channel_axes)
        # A NaN input can leave a finite gradient behind a ReLU (NaN > 0 is False): the unit
        # is checked too.
        finite = np.isfinite(per_image).reshape(len(per_image), -1).all(axis=1) \
            & np.isfinite(units)
        total += per_image[finite].sum(axis=0)
        kept += int(finite.sum())
        dropped += int((~finite).sum())
    if kept == 0:
        raise ModelStatsError(
            f"Every one of the {dropped} images gave a non-finite unit or gradient of "
            f"'{node}' at {position}: the map would be empty. Check the images (NaN, huge "
            "values) and the weights."
        )
    return EffectiveReceptiveField(total / kept, node, position, field, box, kept, dropped)


def _token_embedding(graph: nx.DiGraph, input_node: str) -> tuple[Optional[str], int]:
    """For an input of token ids: the Embedding node that looks them up (the largest
    vocabulary, as for the field) and its vocabulary size; ``(None, 0)`` for any other input.
    Raises when integer ids reach no Embedding: nothing there can be differentiated."""
    from modelstats.graph import is_integer_dtype, token_lookups

    dtype = graph.nodes[input_node]["dtype"]
    if not is_integer_dtype(dtype):
        return None, 0
    lookups = token_lookups(graph, input_node)
    if not lookups:
        raise ModelStatsError(
            f"The model input '{input_node}' holds {dtype} values and no Embedding looks them "
            "up: there is nothing to differentiate. The effective receptive field needs a "
            "float input, or token ids read by an Embedding.")
    vocabulary, node = max(lookups, key=lambda lookup: lookup[0])
    return node, vocabulary


def _model_input_shape(model: Any) -> Optional[tuple]:
    """The model's single input shape without batch, or None when it is not one known rank."""
    try:
        inputs = model.inputs
        return tuple(inputs[0].shape[1:]) if inputs and len(inputs) == 1 else None
    except (AttributeError, TypeError, ValueError):  # an unbuilt Sequential has no inputs yet
        return None


def _choose_layer(graph: nx.DiGraph, propagation: Propagation, input_node: str,
                  layer: Optional[str]) -> str:
    spatial = [n for n in graph.nodes
               if n != input_node and propagation.states[n].status == SPATIAL]
    if layer is None:
        if not spatial:
            raise ModelStatsError(
                "No node of the model has an output with positions that depends on the input; "
                "the effective receptive field needs a feature map."
            )
        return spatial[-1]
    from modelstats.graph import find_node

    node = find_node(graph, layer)
    state = propagation.states[node]
    if state.status != SPATIAL or node == input_node:
        why = "it is the model input" if node == input_node else \
            f"its receptive field is {state.status}" + (f": {state.note}" if state.note else "")
        hint = f" The last spatial node is '{spatial[-1]}'." if spatial else ""
        raise ModelStatsError(
            f"Layer '{node}' has no map of positions to take a unit from ({why}); the "
            f"effective receptive field needs a feature map.{hint}"
        )
    return node


def _position(position: Any, extent: tuple, node: str) -> tuple:
    if position is None:
        return tuple(n // 2 for n in extent)
    if isinstance(position, (int, np.integer)):
        position = (position,) * len(extent)
    position = tuple(position)
    if len(position) != len(extent) or not all(
            isinstance(p, (int, np.integer)) and 0 <= p < n for p, n in zip(position, extent)):
        raise ModelStatsError(
            f"position must give one index per spatial axis inside the output map of '{node}', "
            f"whose spatial size is {extent}. Received: position={position!r}"
        )
    return tuple(int(p) for p in position)


def _traced_ancestor(graph: nx.DiGraph, node: str) -> Optional[str]:
    """The first node up to ``node`` that lies inside a layer's traced call, or None."""
    needed = nx.ancestors(graph, node) | {node}
    return next((n for n in graph.nodes if n in needed and graph.nodes[n].get("in_traced_call")),
                None)


def _auto_batch_size(graph: nx.DiGraph, node: str) -> int:
    """Images per pass: the activations of the nodes up to ``node``, kept for the backward
    pass plus their gradients, should fit in ``_BATCH_BYTES``."""
    needed = nx.ancestors(graph, node) | {node}
    elements = sum(math.prod(d or 1 for d in shape)
                   for n in needed for shape in graph.nodes[n]["output_shapes"])
    per_image = 2 * 4 * max(elements, 1)  # float32 values and their gradients
    return max(1, min(_MAX_BATCH, _BATCH_BYTES // per_image))


class _Runner:
    """The graph run call by call from the model input to one node: the unit of a batch.

    Walking the networkx graph (not a Keras sub-model) reaches every node id, also inside
    nested models, whose inner tensors no Keras model built on the outer input can output.
    """

    def __init__(self, graph: nx.DiGraph, adapter: Any, input_node: str, node: str,
                 index: tuple, probe: Optional[str] = None) -> None:
        needed = nx.ancestors(graph, node) | {node}
        self.steps = [(n, graph.nodes[n]) for n in graph.nodes if n in needed]
        self.adapter = adapter
        self.input_node = input_node
        self.node = node
        self.index = index
        # Token ids cannot be differentiated: the map is taken at the output of their
        # Embedding (the probe), which keeps every position; the ids still feed the rest.
        self.probe = probe

    def start(self, inputs: Any) -> tuple:
        """``(what to differentiate, the model input)``: the images twice, or the looked-up
        vectors of the token ids and the ids."""
        if self.probe is None:
            return inputs, inputs
        data = dict(self.steps)[self.probe]
        return self.adapter.call_node(data["keras_node"], [inputs], training=False)[0], inputs

    def output(self, x: Any, inputs: Any = None) -> Any:
        from modelstats.adapters import run_calls

        values: dict = {(self.input_node, 0): x if self.probe is None else inputs}
        if self.probe is not None:
            values[(self.probe, 0)] = x
        steps = [(n, d) for n, d in self.steps if n not in (self.input_node, self.probe)]
        return run_calls(self.adapter, steps, values)[(self.node, 0)]

    def unit(self, x: Any, inputs: Any = None) -> tuple:
        """The unit summed over the batch, and its value per image. Each image's unit depends
        on that image only, so the gradient of the sum holds every image's gradient."""
        import keras

        units = self.output(x, inputs)[self.index]
        per_image = keras.ops.sum(keras.ops.reshape(units, (keras.ops.shape(units)[0], -1)),
                                  axis=1)
        return keras.ops.sum(per_image), per_image


def _gradient_function(adapter: Any, run: _Runner, graph: nx.DiGraph, traced: bool):
    """``gradient(images, batch_size) -> (d unit / d image, unit)`` per image, as numpy.

    ``traced``: trace the computation into one graph (``tf.function``, ``jax.jit``). Tracing
    costs about one eager pass and makes every later batch several times faster (eager runs
    dispatch the layers one by one: 8x slower on MobileNetV2), so it pays from two batches on.
    """
    backend = "tensorflow" if adapter.name == "tf_keras" else _keras_backend()
    if backend == "tensorflow":
        import tensorflow as tf

        channels_first = any(d.get("data_format") == "channels_first" for _, d in run.steps)
        start = run.probe or run.input_node
        shape = graph.nodes[start]["output_shapes"][0]
        dtype = graph.nodes[start]["dtype"] or "float32"
        inputs_shape = graph.nodes[run.input_node]["output_shapes"][0]
        inputs_dtype = graph.nodes[run.input_node]["dtype"] or "float32"

        def differentiate(x: Any, inputs: Any) -> tuple:
            with tf.GradientTape() as tape:
                tape.watch(x)
                unit, units = run.unit(x, inputs)
            grads = tape.gradient(unit, x)
            return (tf.zeros_like(x) if grads is None else grads), units

        if traced:  # one trace for every batch size
            differentiate = tf.function(differentiate, input_signature=[
                tf.TensorSpec((None, *shape), dtype),
                tf.TensorSpec((None, *inputs_shape), inputs_dtype)])

        def gradient(images: np.ndarray, batch_size: int) -> tuple:
            try:
                x, inputs = run.start(tf.convert_to_tensor(images))
                grads, units = differentiate(x, inputs)
                return grads.numpy(), units.numpy()
            except tf.errors.OpError as exc:
                if channels_first:
                    raise ModelStatsError(
                        "TensorFlow cannot run this channels_first model here (its CPU kernels "
                        "support channels_last only). Measure the ERF under the JAX backend "
                        "(KERAS_BACKEND=jax), on a GPU, or on a channels_last build of the "
                        f"model. TensorFlow said: {str(exc).strip().splitlines()[0]}"
                    ) from exc
                raise

        return gradient
    if backend == "jax":
        import jax

        differentiate = jax.grad(run.unit, has_aux=True)
        if traced:  # one program for all batches: the last one is padded to the same size
            differentiate = jax.jit(differentiate)

        def gradient(images: np.ndarray, batch_size: int) -> tuple:
            n = len(images)
            if traced and n < batch_size:
                images = np.concatenate([images, np.repeat(images[:1], batch_size - n, 0)])
            grads, units = differentiate(*run.start(images))
            return np.asarray(grads)[:n], np.asarray(units)[:n]

        return gradient
    raise ModelStatsError(
        "effective_receptive_field differentiates with TensorFlow or JAX; the Keras backend "
        f"is {backend!r}. Set KERAS_BACKEND=tensorflow or jax before importing keras."
    )


def _keras_backend() -> str:
    import keras

    return keras.backend.backend()
