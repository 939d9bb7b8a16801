"""Small third-party models (keras-hub, kimm) for the "any Keras model" measuring stick.

Real models are built from custom layers (keras-hub's ``TransformerEncoder``, kimm's
``ReparameterizableConv2D``...). Each builder here takes no argument and returns a built Keras
model with random weights: never ``from_preset``, nothing downloaded, small configurations so
that building and tracing take a second or two. The builders use the packages' public
constructors only, so they build under the TensorFlow backend (modelstats, in the test process)
and the JAX backend (the oracle of :mod:`tests.oracles.jax_macs`, in a subprocess).

Each builder declares :attr:`HubModel.inputs`, the concrete input of one sample: a dict from
input name to ``(shape without batch, dtype)``. keras-hub's text backbones take a dict of int
inputs (``token_ids``, ``padding_mask``, ``segment_ids``) whose sequence dimension is ``None``
in the model; the shapes here fix it (16 tokens). A single-input model matches its one entry
whatever the input's name (kimm and some keras-hub image backbones leave Keras' generated
names).

``keras_hub`` and ``kimm`` are imported inside the builders, so importing this module costs
nothing, and tracing a kimm model does not import keras-hub (and with it tensorflow-text).

    python -m tests.oracles.jax_macs tests.oracles.hub_models:kimm_repvgg_a0
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Callable, Mapping

__all__ = ["EXPLAINED_DIFFERENCES", "HubModel", "MODELS", "input_shape_argument",
           "input_specs"]

SEQUENCE = 16  # tokens per sample for the text backbones
VOCABULARY = 100


@dataclasses.dataclass(frozen=True)
class HubModel:
    """A named third-party model: how to build it and what one sample looks like.

    Attributes
    ----------
    name : str
        Key in :data:`MODELS` and in ``golden_macs.json``.
    package : {"keras_hub", "kimm"}
        The distribution that defines the model (its version goes in the golden file).
    build : callable
        No argument; returns a built ``keras.Model`` with random weights.
    inputs : dict
        ``{input name: (shape without batch, dtype)}``.
    """

    name: str
    package: str
    build: Callable[[], Any]
    inputs: Mapping[str, tuple[tuple[int, ...], str]]

    def __call__(self) -> Any:
        """Build the model (kimm warns that ``weights=None`` has no pretrained weights)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return self.build()

    @property
    def input_specs(self) -> Mapping[str, tuple[tuple[int, ...], str]]:
        """The declared inputs, under the name :func:`tests.oracles.jax_macs.trace_builder`
        looks for."""
        return self.inputs


MODELS: dict[str, HubModel] = {}

# Where modelstats and the JAX trace count differently by convention: the exact difference
# (modelstats minus the trace), asserted, so that a change either way is seen.
EXPLAINED_DIFFERENCES: dict[str, int] = {
    # keras-hub's RotaryEmbedding builds its tables with einsum("i,j->ij", positions,
    # inverse_freq) on constants: a symbolic trace runs that eagerly (no node), the JAX trace
    # records it. It does not depend on the inputs (a compiler folds it into a constant), and
    # modelstats counts work that does (docs/custom_layers.md). 2 layers x 2 tables (query and
    # key) x 16 positions x 8 frequencies (head_dim 64 / 4 heads = 16, halved) = 512 MACs.
    "hub_llama": -2 * 2 * 16 * 8,
    # Gemma's attention rotates queries and keys with the same RotaryEmbedding: 2 layers x 2
    # tables x 16 positions x 8 frequencies (head_dim 16, halved) = 512 MACs. (Until its
    # attention was traced on symbolic tensors, its TensorFlow graph counted them.)
    "hub_gemma": -2 * 2 * 16 * 8,
    # Mixtral's rotary tables, as Llama's: 2 layers x 2 tables x 16 positions x 8 frequencies.
    "hub_mixtral": -2 * 2 * 16 * 8,
}


def _register(package: str, inputs: Mapping[str, tuple[tuple[int, ...], str]]):
    def wrap(build: Callable[[], Any]) -> HubModel:
        model = HubModel(build.__name__, package, build, dict(inputs))
        MODELS[model.name] = model
        return model

    return wrap


def _image(height: int, width: int | None = None, channels: int = 3) -> dict:
    return {"images": ((height, width or height, channels), "float32")}


def _text(*names: str) -> dict:
    return {name: ((SEQUENCE,), "int32") for name in names}


def input_specs(model: Any, inputs: Mapping[str, tuple[tuple[int, ...], str]]) -> list:
    """``(shape, dtype)`` for each of ``model.inputs`` in order, from the declared ``inputs``.

    A model with one input takes the one declared entry whatever its name; otherwise each
    model input is looked up by its name.
    """
    if len(model.inputs) == 1 and len(inputs) == 1:
        return list(inputs.values())
    missing = [t.name for t in model.inputs if t.name not in inputs]
    if missing:
        raise KeyError(f"Model inputs {missing} are not declared; declared: {sorted(inputs)}.")
    return [inputs[tensor.name] for tensor in model.inputs]


def input_shape_argument(model: Any, inputs: Mapping[str, tuple[tuple[int, ...], str]]) -> Any:
    """The ``input_shape=`` to give modelstats: one shape, or shapes by input name."""
    specs = input_specs(model, inputs)
    if len(specs) == 1:
        return tuple(specs[0][0])
    return {tensor.name: tuple(shape) for tensor, (shape, _) in zip(model.inputs, specs)}


# -- keras-hub: text backbones (dict of int inputs, sequence dimension None in the model) -----

@_register("keras_hub", _text("token_ids", "segment_ids", "padding_mask"))
def hub_bert():
    """BertBackbone: 2 encoder layers, hidden 64, 2 heads."""
    import keras_hub

    return keras_hub.models.BertBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=SEQUENCE,
    )


@_register("keras_hub", _text("token_ids", "padding_mask"))
def hub_gpt2():
    """GPT2Backbone: 2 causal decoder layers, hidden 64, 2 heads."""
    import keras_hub

    return keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128, max_sequence_length=SEQUENCE,
    )


@_register("keras_hub", _text("token_ids", "padding_mask"))
def hub_llama():
    """LlamaBackbone: 2 layers, hidden 64, 4 query heads sharing 2 key/value heads, RoPE."""
    import keras_hub

    return keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=64, intermediate_dim=128,
    )


@_register("keras_hub", _text("token_ids", "padding_mask"))
def hub_gemma():
    """GemmaBackbone: 2 layers, hidden 64, 4 query heads of 16, 2 key/value heads."""
    import keras_hub

    return keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=64, intermediate_dim=128, head_dim=16,
    )


# -- keras-hub: image backbones ---------------------------------------------------------------

@_register("keras_hub", _image(32))
def hub_vit():
    """ViTBackbone: 32x32 image, 8x8 patches (16 + class token), 2 layers, hidden 64."""
    import keras_hub

    return keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=64,
        mlp_dim=128,
    )


@_register("keras_hub", _image(32))
def hub_deit():
    """DeiTBackbone: as :func:`hub_vit` plus the distillation token."""
    import keras_hub

    return keras_hub.models.DeiTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128,
    )


@_register("keras_hub", _image(32))
def hub_dinov2():
    """DINOV2Backbone: 32x32 image, 8x8 patches, 2 layers, hidden 64, layer scale.

    The position embedding is made for 32x32 too, so no interpolation happens.
    """
    import keras_hub

    return keras_hub.models.DINOV2Backbone(
        patch_size=8, num_layers=2, hidden_dim=64, num_heads=2, intermediate_dim=128,
        image_shape=(32, 32, 3), position_embedding_shape=(32, 32, 3),
    )


@_register("keras_hub", _image(32))
def hub_swin():
    """SwinTransformerBackbone: 32x32 image, 4x4 patches, two stages of 2 blocks, window 4."""
    import keras_hub

    return keras_hub.models.SwinTransformerBackbone(
        image_shape=(32, 32, 3), embed_dim=32, depths=(2, 2), num_heads=(2, 4),
        window_size=4, patch_size=4,
    )


@_register("keras_hub", _image(64))
def hub_mit():
    """MiTBackbone (SegFormer's encoder): 64x64 image, 2 stages of 1 block, reduction 4 and 2."""
    import keras_hub

    return keras_hub.models.MiTBackbone(
        layerwise_depths=[1, 1], num_layers=2, layerwise_num_heads=[1, 2],
        layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.1, layerwise_patch_sizes=[7, 3],
        layerwise_strides=[4, 2], image_shape=(64, 64, 3), hidden_dims=[32, 64],
    )


@_register("keras_hub", _text("token_ids", "padding_mask"))
def hub_mixtral():
    """MixtralBackbone: 2 decoder layers, hidden 64, 4 experts (top 2), sliding window 8. Its
    expert bank is einsum("th,ehm->etm", tokens, kernel): a weight operand (every expert runs
    every token in the dense form keras-hub traces)."""
    import keras_hub

    return keras_hub.models.MixtralBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=64, intermediate_dim=128, num_experts=4, top_k=2, sliding_window=8,
    )


@_register("keras_hub", _text("token_ids", "segment_ids", "padding_mask"))
def hub_xlnet():
    """XLNetBackbone: 2 layers, hidden 64, 2 heads. Its ContentAndQueryEmbedding refuses
    symbolic tensors and returns a relative position table of 2 x sequence rows while
    declaring one (tests/test_xlnet_regression.py)."""
    import keras_hub

    return keras_hub.models.XLNetBackbone(
        vocabulary_size=VOCABULARY, num_layers=2, num_heads=2, hidden_dim=64,
        intermediate_dim=128,
    )


@_register("keras_hub", _image(64))
def hub_vitdet():
    """ViTDetBackbone: 64x64 image, 8x8 patches, 2 layers (window 4, then global attention),
    relative positions as einsum("bhwc,hkc->bhwk", q, table): a weight operand."""
    import keras_hub

    return keras_hub.models.ViTDetBackbone(
        hidden_size=64, num_layers=2, intermediate_dim=128, num_heads=2,
        global_attention_layer_indices=[1], image_shape=(64, 64, 3), patch_size=8,
        num_output_channels=32, window_size=4,
    )


# -- kimm: image classifiers (weights=None: random weights, nothing downloaded) ---------------

@_register("kimm", _image(64))
def kimm_vit():
    """kimm VisionTransformerTiny16 (width 192, 3 heads) cut to 2 blocks, 64x64 image.

    kimm defines its variants by class attributes and does not export the base class, so the
    public variant is subclassed with ``depth = 2``.
    """
    import kimm

    class VisionTransformerTiny16Depth2(kimm.models.VisionTransformerTiny16):
        depth = 2

    return VisionTransformerTiny16Depth2(input_shape=(64, 64, 3), weights=None, classes=10)


@_register("kimm", _image(128))
def kimm_mobilevit_xxs():
    """kimm MobileViTXXS at 128x128: its last stage (4x4, 2x2 patches) still attends over 4
    patches (at 64x64 it would be one, a softmax over a single score)."""
    import kimm

    return kimm.models.MobileViTXXS(input_shape=(128, 128, 3), weights=None, classes=10)


@_register("kimm", _image(32))
def kimm_repvgg_a0():
    """kimm RepVGGA0 in its training form (3x3, 1x1 and identity branches) at 32x32."""
    import kimm

    return kimm.models.RepVGGA0(input_shape=(32, 32, 3), weights=None, classes=10)


@_register("kimm", _image(32))
def kimm_convnext_atto():
    """kimm ConvNeXtAtto at 32x32."""
    import kimm

    return kimm.models.ConvNeXtAtto(input_shape=(32, 32, 3), weights=None, classes=10)


@_register("kimm", _image(64))
def kimm_hgnet_tiny():
    """kimm HGNetTiny (PP-HGNet v1) at 64x64."""
    import kimm

    return kimm.models.HGNetTiny(input_shape=(64, 64, 3), weights=None, classes=10)


@_register("kimm", _image(64))
def kimm_hgnetv2_b0():
    """kimm HGNetV2B0 at 64x64."""
    import kimm

    return kimm.models.HGNetV2B0(input_shape=(64, 64, 3), weights=None, classes=10)


@_register("kimm", _image(64))
def kimm_ghostnetv2_100():
    """kimm GhostNetV2W100 at 64x64 (its attention branch needs static sizes)."""
    import kimm

    return kimm.models.GhostNetV2W100(input_shape=(64, 64, 3), weights=None, classes=10)
