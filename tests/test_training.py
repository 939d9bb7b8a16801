"""The cost of a training step: backward MACs per layer, checked against JAX's autodiff.

The oracle (:func:`tests.oracles.jax_macs.training_jaxpr`) traces ``jax.grad`` of a loss over
the trainable variables and counts the MACs of every ``dot_general`` and
``conv_general_dilated``: forward and backward together, whatever JAX decided to
differentiate. The 224 px models are recorded in tests/oracles/golden_training_macs.json
(``python -m tests.oracles.write_training_golden``); the small ones are traced live.
"""

from __future__ import annotations

import pytest

import modelstats
from modelstats.errors import OptionError
from tests.oracles import jax_macs, write_training_golden
from tests.oracles import training_models as builders

GOLDEN = write_training_golden.load()
LIVE = ["text_model", "text_model_frozen_embedding", "transformer_block", "small_unet"]
# Where JAX's trace and modelstats' convention (dX = the forward MACs) part, traced live too.
DIFFERING = ["valid_convolution", "strided_same_convolution"]

# The classifier's RandomRotation is active in a training step. Its work is interpolation,
# which modelstats counts as zero like every augmentation (docs/conventions.md); JAX's
# affine_transform computes each output pixel's source coordinates as a 3x3 matrix product,
# for each of the 3 channels: 9 MACs per pixel and channel, all in the forward pass.
ROTATION_COORDINATE_MACS = 9 * 224 * 224 * 3  # 1,354,752


def _train(model, **kwargs):
    return modelstats.count_flops(model, training=True, **kwargs)


@pytest.fixture(scope="module")
def live_oracle():
    return jax_macs.macs_in_subprocess(
        [write_training_golden.spec(n) for n in LIVE + DIFFERING], training=True)


@pytest.mark.parametrize("name", LIVE)
def test_small_models_equal_a_live_jax_trace(name, live_oracle):
    table = _train(getattr(builders, name)())
    assert int(table["train_macs"].sum()) == live_oracle[write_training_golden.spec(name)]["macs"]


def test_where_the_jax_trace_counts_its_input_gradient_differently(live_oracle):
    def difference(name):
        table = _train(getattr(builders, name)())
        assert table.loc["conv", "bwd_input_macs"] == table.loc["conv", "macs"]
        oracle = live_oracle[write_training_golden.spec(name)]["macs"]
        return oracle - int(table["train_macs"].sum())

    # 3x3 "valid" on 8x8x3 -> 6x6x4: JAX's dX is a "full" convolution over the 6x6 output
    # gradient padded to 8x8 outputs, so it also counts (8*8 - 6*6) positions x 9 taps x 3 x 4.
    assert difference("valid_convolution") == (8 * 8 - 6 * 6) * 9 * 3 * 4  # 3,024
    # 3x3 stride 2 "same" on 8x8x3 -> 4x4x4 pads one row and column at the end; per axis 4
    # outputs x 3 taps = 12 pairs, one of which (output 3, tap 2) reads the padding, which
    # JAX's dX never multiplies: it counts 11 x 11 of the 12 x 12 pairs, times 3 x 4.
    assert difference("strided_same_convolution") == -(12 * 12 - 11 * 11) * 3 * 4  # -276


@pytest.mark.parametrize("name", ["text_model", "transformer_block", "small_unet"])
def test_golden_file_is_not_stale(name, live_oracle):
    assert GOLDEN[name]["oracle_macs"] == live_oracle[write_training_golden.spec(name)]["macs"]


@pytest.fixture(scope="module")
def fine_tuned():
    return builders.classifier_fine_tuned()


@pytest.fixture(scope="module")
def transformer():
    return builders.transformer_block()


def test_mobilenet_v2_all_trainable_equals_the_golden_trace(mobilenet):
    # keras.applications.MobileNetV2(weights=None) at 224, every layer trainable
    table = _train(mobilenet)
    assert int(table["train_macs"].sum()) == GOLDEN["mobilenet_v2_224"]["oracle_macs"]


def test_small_mobilenet_v2_equals_the_golden_trace():
    table = _train(builders.mobilenet_v2_all_trainable())
    assert int(table["train_macs"].sum()) == GOLDEN["mobilenet_v2_all_trainable"]["oracle_macs"]


def test_classifier_with_frozen_base_equals_the_golden_trace(classifier):
    table = _train(classifier)
    oracle = GOLDEN["classifier_frozen_base"]["oracle_macs"]
    assert int(table["train_macs"].sum()) + ROTATION_COORDINATE_MACS == oracle


def test_fine_tuned_classifier_equals_the_golden_trace(fine_tuned):
    table = _train(fine_tuned)
    oracle = GOLDEN["classifier_fine_tuned"]["oracle_macs"]
    assert int(table["train_macs"].sum()) + ROTATION_COORDINATE_MACS == oracle


def test_frozen_base_does_no_backward_work_and_the_head_only_its_weight_gradient(classifier):
    table = _train(classifier)
    base = table[table.index.str.startswith("mobilenetv2_1.00_224/")]
    # the 154 calls of the base, 299,507,072 MACs of the classifier minus the head's 12,800
    assert len(base) == 154 and base["macs"].sum() == 299_507_072 - 12_800
    assert base["bwd_input_macs"].sum() == 0 and base["bwd_weight_macs"].sum() == 0
    head = table.loc["dense"]
    # Dense(10) on 1280 pooled features: 1280*10 MACs forward; its input (frozen features)
    # needs no gradient, its kernel does.
    assert (head["macs"], head["bwd_input_macs"], head["bwd_weight_macs"]) == (12_800, 0, 12_800)
    assert table.attrs["optimizer_flops"] == {
        "sgd": 12_810 * 2, "momentum": 12_810 * 4, "adam": 12_810 * 12, "adamw": 12_810 * 15}


def test_fine_tuning_from_layer_100_starts_the_backward_pass_there(fine_tuned):
    table = _train(fine_tuned)
    base = fine_tuned.get_layer("mobilenetv2_1.00_224")
    first_trainable = base.layers[100].name  # block_11_expand_relu: base.layers[0] is input
    order = list(table.index)
    start = order.index(f"mobilenetv2_1.00_224/{first_trainable}")
    before, after = table.iloc[:start], table.iloc[start:]
    assert before["bwd_input_macs"].sum() == 0 and before["bwd_weight_macs"].sum() == 0
    convs = after[after["type"].isin(["Conv2D", "DepthwiseConv2D"])]
    # The first trainable conv reads frozen features: weight gradient only.
    assert convs.index[0] == "mobilenetv2_1.00_224/block_11_depthwise"
    assert convs.iloc[0]["bwd_input_macs"] == 0
    # Every later conv gets its input gradient, and all of them their weight gradient.
    assert (convs["bwd_input_macs"].iloc[1:] == convs["macs"].iloc[1:]).all()
    assert (convs["bwd_weight_macs"] == convs["macs"]).all()


def test_recurrent_state_gradient_is_needed_without_an_input_gradient():
    table = _train(builders.text_model_frozen_embedding())
    lstm, gru = table.loc["lstm"], table.loc["gru"]
    # LSTM(24) on 16 features over 20 steps: 20 * 4 * (16*24 + 24*24) = 76,800 MACs, of which
    # the recurrent h U is 20 * 4 * 24*24 = 46,080. The frozen embedding's output needs no
    # gradient, so only h U's state gradient is computed; both kernels get theirs.
    assert (lstm["macs"], lstm["bwd_input_macs"], lstm["bwd_weight_macs"]) == (
        76_800, 46_080, 76_800)
    # GRU(12) on 24 features: 20 * 3 * (24*12 + 12*12) = 25,920; its input needs a gradient.
    assert (gru["macs"], gru["bwd_input_macs"], gru["bwd_weight_macs"]) == (
        25_920, 25_920, 25_920)


def test_attention_backward_differentiates_both_operands_of_its_products(transformer):
    table = _train(transformer)
    attention = table.loc["attention"]
    # Projections Q, K, V, output: 4 * 16 positions * 32*32 = 65,536 MACs; scores and
    # weighted sum: 4 heads * 16*16 * (8 + 8) = 16,384. Backward: the projections once for
    # dX and once for dW, the two activation products twice (dQ and dK, dA and dV).
    assert attention["macs"] == 65_536 + 16_384
    assert attention["bwd_weight_macs"] == 65_536
    assert attention["bwd_input_macs"] == 65_536 + 2 * 16_384


def test_frozen_first_convolution_of_the_unet():
    table = _train(builders.small_unet())
    # enc_1 (frozen, on the image): 32*32 * 3*3*3 * 8 = 221,184 MACs and no backward work;
    # enc_2 (trainable, on enc_1's output, which needs no gradient): 32*32 * 3*3*8 * 8.
    assert table.loc["enc_1", ["macs", "bwd_input_macs", "bwd_weight_macs"]].tolist() == [
        221_184, 0, 0]
    assert table.loc["enc_2", ["macs", "bwd_input_macs", "bwd_weight_macs"]].tolist() == [
        589_824, 0, 589_824]


def test_training_flops_add_batch_statistics_and_gradient_elementwise_work(keras):
    x = keras.Input((4, 4, 2))
    y = keras.layers.Conv2D(3, 1, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU(name="relu")(y)
    table = _train(keras.Model(x, y))
    conv, bn, relu = table.loc["conv"], table.loc["bn"], table.loc["relu"]
    # conv: 16 positions * 2 * 3 = 96 MACs; its input is the model's: no dX; dW 96 MACs
    # = 192 FLOPs plus the bias gradient, one add per bias addition (48).
    assert (conv["bwd_input_flops"], conv["bwd_weight_flops"]) == (0, 192 + 48)
    # bn on 48 elements: 2 FLOPs each forward (inference form), 4 each for the batch's mean
    # and variance in training mode, and its elementwise work again backward.
    assert bn["flops"] == 96
    assert bn["train_flops"] == 96 + 4 * 48 + 96
    # relu: 1 per element forward and backward
    assert (relu["flops"], relu["train_flops"]) == (48, 96)


def test_a_base_called_with_training_false_keeps_its_moving_statistics(classifier, fine_tuned):
    frozen, tuned = _train(classifier), _train(fine_tuned)
    bn = "mobilenetv2_1.00_224/Conv_1_bn"
    # trainable in the fine-tuned model (the gradient flows through it), but the base is
    # called with training=False: no batch statistics on top of forward and backward work
    assert tuned.loc[bn, "bwd_input_flops"] > 0 and tuned.loc[bn, "train_flops"] > 0
    assert (tuned.loc[bn, "train_flops"] - tuned.loc[bn, "flops"]
            == tuned.loc[bn, "bwd_input_flops"] + tuned.loc[bn, "bwd_weight_flops"])
    assert frozen.loc[bn, "train_flops"] == frozen.loc[bn, "flops"]


def test_batch_size_scales_the_step_but_not_the_optimizer(transformer):
    one, eight = _train(transformer), _train(transformer, batch_size=8)
    for column in ("bwd_input_macs", "bwd_weight_macs", "train_macs", "train_flops"):
        assert int(eight[column].sum()) == 8 * int(one[column].sum())
    assert eight.attrs["optimizer_flops"] == one.attrs["optimizer_flops"]


def test_collapsed_nested_model_has_the_same_training_totals(fine_tuned):
    expanded = _train(fine_tuned)
    collapsed = _train(fine_tuned, expand_nested=False)
    for column in ("train_macs", "bwd_input_macs", "bwd_weight_macs", "train_flops"):
        assert int(collapsed[column].sum()) == int(expanded[column].sum())


def test_report_totals_and_ranking(transformer):
    report = modelstats.analyze(transformer, training=True)
    assert report.totals["train_macs"] == GOLDEN["transformer_block"]["oracle_macs"]
    assert report.totals["optimizer_flops"]["adam"] == 12 * report.totals["trainable_params"]
    assert report.top(1, by="train_macs").index[0] == "attention"
    assert "train_macs" not in modelstats.analyze(transformer).layers


@pytest.mark.parametrize("options, message", [
    (dict(training="yes"), "training is True or False"),
    (dict(training=True, fold_batchnorm=True), "cannot fold batch"),
])
def test_bad_training_options(transformer, options, message):
    with pytest.raises(OptionError, match=message):
        modelstats.count_flops(transformer, **options)
