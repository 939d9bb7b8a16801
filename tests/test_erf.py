"""Effective receptive field (modelstats.erf): the gradient heat-map against closed forms,
against the theoretical field, across backends, and on bad input."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

import modelstats
from modelstats.errors import ModelStatsError, OptionError, ShapeError

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The real dataset next to the project (../shared), or wherever CLOTHING_DATASET points.
CLOTHING = pathlib.Path(os.environ.get(
    "CLOTHING_DATASET", ROOT.parent / "shared" / "data" / "clothing-dataset-small"))


def ones_chain(keras, k, size, kernel=3, padding="same"):
    """``k`` convolutions ``kernel x kernel`` of ones (2 -> 2 channels, no bias, linear)."""
    x = keras.Input((size, size, 2), name="image")
    y = x
    for i in range(k):
        y = keras.layers.Conv2D(2, kernel, padding=padding, use_bias=False,
                                kernel_initializer="ones", name=f"c{i + 1}")(y)
    return keras.Model(x, y, name=f"ones_{k}")


@pytest.fixture(scope="module")
def chains(keras):
    return {k: ones_chain(keras, k, 15) for k in (3, 5)}


def trinomial(k):
    """Coefficients of (1 + z + z^2)^k: the 3-tap box convolved with itself k times."""
    row = np.array([1.0])
    for _ in range(k):
        row = np.convolve(row, [1.0, 1.0, 1.0])
    return row


@pytest.mark.parametrize("k", [3, 5])
def test_ones_chain_map_is_the_k_fold_box_convolution(chains, k):
    erf = modelstats.effective_receptive_field(chains[k], n_images=2)
    assert erf.layer == f"c{k}" and erf.position == (7, 7)
    # The field, 2k+1 pixels centred on pixel 7, lies inside the 15 x 15 image: no border
    # effect, the normalised map is the outer product of the trinomial row, zero around it.
    row = trinomial(k)
    assert len(row) == 2 * k + 1 and row.sum() == 3**k
    expected = np.zeros((15, 15))
    expected[7 - k:8 + k, 7 - k:8 + k] = np.outer(row, row) / 9**k
    assert np.abs(erf.normalized - expected).max() < 1e-6
    assert erf.box == ((7 - k, 7 + k),) * 2 and erf.receptive_field.size == (2 * k + 1,) * 2
    assert erf.map.dtype == np.float64 and erf.n_images == 2 and erf.n_dropped == 0


def test_unknown_sizes_come_from_the_images_or_input_shape(keras, chains):
    x = keras.Input((None, None, 2), name="image")
    y = x
    for i in range(3):
        y = keras.layers.Conv2D(2, 3, padding="same", use_bias=False,
                                kernel_initializer="ones", name=f"c{i + 1}")(y)
    any_size = keras.Model(x, y)
    fixed = modelstats.effective_receptive_field(chains[3], n_images=1)
    from_images = modelstats.effective_receptive_field(any_size, images=np.ones((1, 15, 15, 2)))
    from_shape = modelstats.effective_receptive_field(any_size, input_shape=(15, 15, 2),
                                                      n_images=1)
    for erf in (from_images, from_shape):
        assert erf.map.shape == (15, 15) and erf.box == fixed.box
        np.testing.assert_array_equal(erf.map, fixed.map)
    with pytest.raises(ShapeError, match="unknown sizes.*images=.*input_shape="):
        modelstats.effective_receptive_field(any_size)


def test_area_ratio_on_the_trinomial_map(chains):
    erf = modelstats.effective_receptive_field(chains[3], n_images=1)
    # k = 3: the row is [1, 3, 6, 7, 6, 3, 1] / 27. The square of side 1, 3, 5, 7 around the
    # centre (7, 7) holds (7/27)^2 = 0.067, (19/27)^2 = 0.495, (25/27)^2 = 0.857 and all of
    # the mass; the input has 15 * 15 = 225 pixels.
    assert erf.center == (7, 7)
    assert erf.area_ratio(0.06) == 1 / 225
    assert erf.area_ratio(0.45) == 9 / 225
    assert erf.area_ratio(0.5) == 25 / 225  # 0.495 is not enough
    assert erf.area_ratio(0.86) == 49 / 225  # nor is 0.857
    assert erf.area_ratio(1.0) == 49 / 225


def test_area_ratio_clips_at_the_border_and_grows_even_squares(keras):
    # One 3x3 "same" conv on 8 x 8: unit (0, 0) is centred on pixel (0, 0) and reads the four
    # pixels [0, 1] x [0, 1] with equal weight. The 1-pixel square holds 1/4 of the mass; the
    # 3 x 3 square around (0, 0) has 4 of its 9 pixels in the image and holds all of it.
    corner = modelstats.effective_receptive_field(ones_chain(keras, 1, 8), position=(0, 0),
                                                  n_images=1)
    assert corner.box == ((0, 1), (0, 1)) and corner.center == (0, 0)
    assert corner.area_ratio(0.25) == 1 / 64
    assert corner.area_ratio(0.3) == 4 / 64
    # One 2x2 "valid" conv on 7 x 7: the centre unit (3, 3) reads [3, 4] x [3, 4], centred on
    # (3.5, 3.5), between pixels: the smallest square is 2 x 2 and holds everything.
    even = modelstats.effective_receptive_field(ones_chain(keras, 1, 7, 2, "valid"),
                                                n_images=1)
    assert even.box == ((3, 4), (3, 4)) and [float(c) for c in even.center] == [3.5, 3.5]
    assert even.area_ratio(0.01) == even.area_ratio(1.0) == 4 / 49


# -- a ReLU network with random weights on real-looking images ------------------------------

def relu_net(keras):
    """64x64x3 -> conv 3x3 s2 same -> conv 3x3 same -> max pool 2 -> conv 5x5 dilation 2 valid,
    each with ReLU: field 41 (r: 3, 7, 9, 9 + 8*4), stride 4, padding 2; output 8 x 8."""
    keras.utils.set_random_seed(1)
    L = keras.layers
    x = keras.Input((64, 64, 3), name="image")
    y = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c1")(x)
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="c2")(y)
    y = L.MaxPooling2D(2, name="pool")(y)
    y = L.Conv2D(8, 5, dilation_rate=2, activation="relu", name="c3")(y)
    return keras.Model(x, y, name="relu_net")


@pytest.fixture(scope="module")
def relu_model(keras):
    return relu_net(keras)


def clothing_images(n, size):
    """The first ``n`` training images (one per class, in name order), resized, in [0, 1]."""
    from PIL import Image

    folders = sorted(p for p in (CLOTHING / "train").iterdir() if p.is_dir())
    images = []
    for folder in folders[:n]:
        first = sorted(folder.glob("*.jpg"))[0]
        with Image.open(first) as image:
            resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
            images.append(np.asarray(resized, dtype="float32") / 255.0)
    return np.stack(images)


def smooth_images(n, size, seed=0):
    """Noise blurred by a 9-tap binomial filter along both axes: smooth like photographs."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 1, (n, size + 8, size + 8, 3))
    taps = np.array([1.0])
    for _ in range(8):
        taps = np.convolve(taps, [0.5, 0.5])
    rows = np.apply_along_axis(lambda v: np.convolve(v, taps, "valid"), 1, noise)
    return np.apply_along_axis(lambda v: np.convolve(v, taps, "valid"), 2, rows)


@pytest.fixture(scope="module", params=["clothing", "smooth"])
def photos(request):
    if request.param == "clothing":
        if not (CLOTHING / "train").is_dir():
            pytest.skip(f"the clothing dataset is not at {CLOTHING}")
        return clothing_images(6, 64)
    return smooth_images(6, 64)


@pytest.mark.parametrize("position", [(4, 4), (0, 7)])
def test_relu_net_puts_no_mass_outside_the_clipped_box(relu_model, photos, position):
    erf = modelstats.effective_receptive_field(relu_model, "c3", images=photos,
                                               position=position)
    u, v = position
    # [u*4 - 2, u*4 - 2 + 40] per axis, cut by the image: (4, 4) -> [14, 54]; column 7 ->
    # [26, 66] -> [26, 63]; row 0 -> [-2, 38] -> [0, 38].
    expected = {(4, 4): ((14, 54), (14, 54)), (0, 7): ((0, 38), (26, 63))}[position]
    assert erf.box == expected
    (y0, y1), (x0, x1) = erf.box
    inside = np.zeros(erf.map.shape, dtype=bool)
    inside[y0:y1 + 1, x0:x1 + 1] = True
    assert erf.map[~inside].max() == 0.0
    assert erf.map[inside].sum() > 0
    assert erf.n_images == 6 and erf.n_dropped == 0
    # The effective field is smaller than the theoretical one (Luo et al.): half the mass
    # lies in a square smaller than the box.
    assert erf.area_ratio(0.5) < inside.sum() / inside.size


def test_images_with_a_nan_unit_are_dropped_and_counted(chains):
    # A linear chain: the gradient (the weights) stays finite on a NaN image, the unit does not.
    images = np.random.default_rng(5).uniform(0, 1, (4, 15, 15, 2)).astype("float32")
    clean = modelstats.effective_receptive_field(chains[3], images=images[:3])
    poisoned = images.copy()
    poisoned[3, 5, 9, 1] = np.nan  # inside the centre unit's field [4, 10] x [4, 10]
    # two batches: the computation is traced (tf.function) once and run twice
    erf = modelstats.effective_receptive_field(chains[3], images=poisoned, batch_size=2)
    assert (erf.n_images, erf.n_dropped) == (3, 1)
    np.testing.assert_array_equal(erf.map, clean.map)
    with pytest.raises(ModelStatsError, match="Every one of the 1 images gave a non-finite"):
        modelstats.effective_receptive_field(chains[3], images=poisoned[3:])


def test_images_with_an_infinite_gradient_are_dropped(keras):
    # sqrt of a 3x3 sum of ones: on a black image the unit is sqrt(0) = 0, finite, but its
    # gradient 1 / (2 sqrt(0)) is infinite.
    x = keras.Input((8, 8, 1))
    y = keras.layers.Conv2D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
                            name="sum")(x)
    model = keras.Model(x, keras.ops.sqrt(y))
    images = np.stack([np.full((8, 8, 1), 4.0), np.zeros((8, 8, 1)), np.full((8, 8, 1), 1.0)])
    # the op's node is named by a process-wide counter (sqrt, sqrt_5, ...): the default layer,
    # the last map, is that node
    erf = modelstats.effective_receptive_field(model, images=images, position=(4, 4))
    assert erf.layer.startswith("sqrt")
    assert (erf.n_images, erf.n_dropped) == (2, 1)
    # 1 / (2 sqrt(9 * 4)) = 1/12 and 1 / (2 sqrt(9)) = 1/6 on the 3 x 3 pixels: mean 1/8
    np.testing.assert_allclose(erf.map[3:6, 3:6], np.full((3, 3), 1 / 8), rtol=1e-6)
    assert erf.map.sum() == pytest.approx(9 / 8, rel=1e-6)


# -- nested models, default layer ----------------------------------------------------------

def test_default_layer_is_the_last_map_inside_a_nested_model(keras):
    import tensorflow as tf

    from tests.conftest import nested_block_model

    keras.utils.set_random_seed(2)
    model = nested_block_model(keras, keras.layers.Dense(3, name="head"))
    images = smooth_images(3, 8, seed=1).astype("float32")
    erf = modelstats.effective_receptive_field(model, images=images, position=(1, 6))
    # stem -> block -> block -> global pool: the last map is the second call's ReLU.
    assert erf.layer == "block#1/relu"
    # Independently: the same layers called directly, differentiated by TensorFlow.
    stem, block = model.get_layer("stem"), model.get_layer("block")
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        unit = tf.reduce_sum(block(block(stem(x)))[:, 1, 6, :])
    expected = np.abs(tape.gradient(unit, x).numpy()).sum(axis=-1).mean(axis=0)
    np.testing.assert_allclose(erf.map, expected, rtol=1e-6, atol=1e-12 * expected.max())
    assert erf.map.max() > 0


def test_tf_keras_models_run_through_their_adapter():
    tf_keras = pytest.importorskip("tf_keras")
    L = tf_keras.layers

    def ones(name):
        return L.Conv2D(2, 3, padding="same", use_bias=False, kernel_initializer="ones",
                        name=name)

    inner = tf_keras.Input((9, 9, 2))
    block = tf_keras.Model(inner, ones("inner_conv")(inner), name="block")
    x = tf_keras.Input((9, 9, 2))
    y = L.Dropout(0.9, name="drop")(block(ones("outer_conv")(x)))  # inference: the identity
    erf = modelstats.effective_receptive_field(tf_keras.Model(x, y), n_images=2)
    assert erf.layer == "drop" and erf.box == ((2, 6), (2, 6))
    row = trinomial(2)  # [1, 2, 3, 2, 1]
    np.testing.assert_allclose(erf.normalized[2:7, 2:7], np.outer(row, row) / 81, atol=1e-12)


# -- backends ------------------------------------------------------------------------------

def probe_model(keras, data_format="channels_last"):
    """A small net with batch norm, a depthwise conv and a nested residual block, with weights
    drawn from a fixed seed in the order of ``model.weights`` (the same in both layouts)."""
    L = keras.layers
    last = data_format == "channels_last"
    # Constant initialisers: JAX compiles a random initialiser per weight shape (seconds).
    zeros = {"kernel_initializer": "zeros", "data_format": data_format}
    x = keras.Input((20, 20, 3) if last else (3, 20, 20), name="image")
    y = L.Conv2D(4, 3, strides=2, padding="same", name="stem", **zeros)(x)
    y = L.BatchNormalization(axis=-1 if last else 1, name="bn")(y)
    y = L.ReLU(name="relu")(y)
    inner = keras.Input(tuple(y.shape[1:]), name="block_in")
    z = L.DepthwiseConv2D(3, padding="same", depthwise_initializer="zeros",
                          data_format=data_format, name="dw")(inner)
    z = L.Conv2D(4, 1, activation="relu", name="pw", **zeros)(z)
    block = keras.Model(inner, L.Add(name="add")([inner, z]), name="block")
    y = L.AveragePooling2D(2, data_format=data_format, name="pool")(block(y))
    y = L.GlobalAveragePooling2D(data_format=data_format, name="gap")(y)
    head = L.Dense(2, kernel_initializer="zeros", name="head")
    model = keras.Model(x, head(y), name="probe")
    rng = np.random.default_rng(7)
    for variable in model.weights:
        shape = tuple(variable.shape)
        positive = "variance" in variable.path or "gamma" in variable.path
        value = rng.uniform(0.5, 1.5, shape) if positive else rng.normal(0, 0.5, shape)
        variable.assign(value.astype("float32"))
    return model


def probe_images(data_format="channels_last"):
    images = np.random.default_rng(11).standard_normal((5, 20, 20, 3)).astype("float32")
    return images if data_format == "channels_last" else images.transpose(0, 3, 1, 2)


def jax_maps_in_worker() -> dict:
    """The probe model's ERF map per data format, computed on JAX: run in the JAX worker
    (:mod:`tests.oracles.jax_worker`), where the backend is JAX and, unlike TensorFlow's CPU
    kernels, channels_first convolutions run. Returns ``{data_format: (dtype, nested list)}``
    (JSON: a float32 survives the round trip through a Python float exactly)."""
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    maps = {}
    for data_format in ("channels_last", "channels_first"):
        erf = modelstats.effective_receptive_field(
            probe_model(keras, data_format), images=probe_images(data_format), batch_size=2)
        assert erf.layer == "pool", erf.layer
        maps[data_format] = (str(erf.map.dtype), erf.map.tolist())
    return maps


JAX_TEST = "test_jax_gives_the_tensorflow_map_also_channels_first"


@pytest.fixture(scope="module", autouse=True)
def jax_maps(request):
    """The JAX half of the backend test, sent to the JAX worker with the module (from a
    thread) so that it runs while the TensorFlow tests do (starting JAX and Keras takes most of
    its time when this is the worker's first request); not sent when the test is deselected."""
    import concurrent.futures
    import importlib.util

    if importlib.util.find_spec("jax") is None or \
            not any(item.name == JAX_TEST for item in request.session.items):
        yield None
        return
    from tests.oracles import jax_worker

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = executor.submit(jax_worker.call, "tests.test_erf:jax_maps_in_worker", timeout=300)

    def result():
        return {f: np.asarray(values, dtype=dtype) for f, (dtype, values) in
                future.result().items()}

    yield result
    executor.shutdown(wait=True)  # a request cannot be cancelled once sent; it is short


def test_jax_gives_the_tensorflow_map_also_channels_first(keras, jax_maps):
    pytest.importorskip("jax")
    reference = modelstats.effective_receptive_field(probe_model(keras), images=probe_images())
    assert reference.layer == "pool" and reference.map.max() > 0
    for data_format, jax_map in jax_maps().items():
        # float32 arithmetic in another order (8e-8 of the peak apart when written)
        np.testing.assert_allclose(jax_map, reference.map, rtol=1e-5,
                                   atol=1e-6 * reference.map.max(), err_msg=data_format)


def test_channels_first_on_tensorflow_cpu_names_the_fix(keras):
    model = probe_model(keras, "channels_first")
    with pytest.raises(ModelStatsError, match="KERAS_BACKEND=jax"):
        modelstats.effective_receptive_field(model, images=probe_images("channels_first"))


# -- bad input -----------------------------------------------------------------------------

def test_bad_input_gives_clear_errors(keras, chains):
    model = chains[3]
    with pytest.raises(ModelStatsError, match="No node or layer named 'nope'"):
        modelstats.effective_receptive_field(model, "nope", n_images=1)
    with pytest.raises(ModelStatsError, match=r"inside the output map of 'c3'.*\(15, 15\)"):
        modelstats.effective_receptive_field(model, "c3", position=(15, 0), n_images=1)
    with pytest.raises(ModelStatsError, match="one index per spatial axis"):
        modelstats.effective_receptive_field(model, "c3", position=(1, 2, 3), n_images=1)
    with pytest.raises(ShapeError, match=r"\(15, 15, 2\)"):
        modelstats.effective_receptive_field(model, images=np.zeros((2, 16, 16, 2)))
    with pytest.raises(OptionError, match="n_images"):
        modelstats.effective_receptive_field(model, n_images=0)
    erf = modelstats.effective_receptive_field(model, n_images=1)
    with pytest.raises(OptionError, match=r"\(0, 1\]"):
        erf.area_ratio(0)


def test_a_layer_without_positions_is_refused(keras):
    probe = probe_model(keras)
    with pytest.raises(ModelStatsError, match=r"'gap' has no map.*global.*last spatial node is "
                                              r"'pool'"):
        modelstats.effective_receptive_field(probe, "gap", n_images=1)
    with pytest.raises(ModelStatsError, match="'image' has no map.*model input"):
        modelstats.effective_receptive_field(probe, "image", n_images=1)


def test_plot_draws_the_map_and_the_box(relu_model):
    pytest.importorskip("matplotlib")
    from modelstats._render import pyplot

    images = smooth_images(2, 64).astype("float32")
    erf = modelstats.effective_receptive_field(relu_model, images=images, position=(0, 7))
    ax = erf.plot(image=images[0], log=True, full_field=True)
    clipped, whole = ([p.get_x(), p.get_y(), p.get_width(), p.get_height()] for p in ax.patches)
    # pixel i spans [i - 0.5, i + 0.5]: the clipped box ((0, 38), (26, 63)) and, dashed, the
    # geometric field ((-2, 38), (26, 66)), past the image's right edge
    assert clipped == [25.5, -0.5, 38, 39] and whole == [25.5, -2.5, 41, 41]
    assert ax.get_xlim()[1] > 66.5 and ax.get_ylim()[1] < -2.5  # the axes show all of it
    assert len(ax.images) == 2  # the photograph under the heat-map
    pyplot().close(ax.figure)


def test_docs_example_runs():
    from tests.test_docs import examples, run

    text = (ROOT / "docs" / "receptive_field.md").read_text()
    section = text[text.index("## Effective receptive field"):]
    blocks = examples(section)
    assert blocks
    namespace: dict = {}
    for code, expected in blocks:
        printed = run(code, namespace)
        if expected is not None:
            assert printed.rstrip().splitlines() == expected.rstrip().splitlines()


def test_a_traced_class_token_runs_one_image_at_a_time(keras):
    """A custom layer that tiles a class token to ``ops.shape(x)[0]`` is traced with batch 1,
    which its replay keeps: several images at once failed in its concatenation (found on kimm's
    ViT). The path through a traced call runs one image per pass; a larger batch_size is
    refused naming the node. Unit: token 6 of 1 + 4x4 (grid position (1, 1)) of a patchify
    with k = s = 4, so the map lies in rows and columns 4-7."""
    L, ops = keras.layers, keras.ops

    class ClassToken(L.Layer):
        def build(self, shape):
            self.token = self.add_weight(shape=(1, 1, shape[-1]), name="token")

        def call(self, x):
            return ops.concatenate([ops.tile(self.token, [ops.shape(x)[0], 1, 1]), x], axis=1)

    image = keras.Input((16, 16, 3), name="image")
    x = L.Reshape((16, 4), name="tokens")(L.Conv2D(4, 4, strides=4, name="patchify")(image))
    model = keras.Model(image, L.Dense(4, name="mix")(ClassToken(name="cls")(x)))
    images = smooth_images(3, 16)
    erf = modelstats.effective_receptive_field(model, "mix", images=images, position=(6,))
    assert erf.n_images == 3
    rows, cols = np.nonzero(erf.map)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (4, 7, 4, 7)
    with pytest.raises(modelstats.OptionError, match=r"'cls/.*traced call.*batch_size=1"):
        modelstats.effective_receptive_field(model, "mix", images=images, position=(6,),
                                             batch_size=2)


def _text_cnn(keras):
    L = keras.layers
    ids = keras.Input((12,), dtype="int32", name="ids")
    x = L.Embedding(50, 1, embeddings_initializer="ones", name="embedding")(ids)
    x = L.Conv1D(1, 3, padding="same", use_bias=False, kernel_initializer="ones",
                 name="c1")(x)
    x = L.Conv1D(1, 3, dilation_rate=2, use_bias=False, kernel_initializer="ones",
                 name="c2")(x)
    return keras.Model(ids, x)


def test_a_text_model_map_is_taken_at_the_token_vectors(keras):
    """Token ids have no gradient, so the map is |d unit / d looked-up vector|, one value per
    token position (it was all zeros, silently). c2[4] = c1[4] + c1[6] + c1[8], each c1 three
    neighbours of ones: tokens 3..9 counted 1, 1, 2, 1, 2, 1, 1 times, whatever the ids. The
    field: r 3 + 2*2 = 7, p 1, so unit 4 sees tokens 3 to 9: the map's support."""
    erf = modelstats.effective_receptive_field(_text_cnn(keras), "c2", n_images=3)
    assert erf.position == (4,) and erf.box == ((3, 9),)
    np.testing.assert_array_equal(erf.map, [0, 0, 0, 1, 1, 2, 1, 2, 1, 1, 0, 0])
    given = np.array([[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]])
    np.testing.assert_array_equal(
        modelstats.effective_receptive_field(_text_cnn(keras), "c2", images=given).map,
        erf.map)


def test_integer_input_without_an_embedding_is_refused(keras):
    x = keras.Input((6, 2), dtype="int32", name="x")
    y = keras.layers.Conv1D(1, 3, name="conv")(keras.ops.cast(x, "float32"))
    with pytest.raises(ModelStatsError, match="no Embedding looks them up"):
        modelstats.effective_receptive_field(keras.Model(x, y), "conv")
