"""examples/train_clothing.py end to end on a tiny generated dataset, on bad data, and a smoke run
on the real clothing dataset when ../shared has it; progress bars and one-line errors of both
examples."""

from __future__ import annotations

import json
import os
import pathlib
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import load_example

ROOT = pathlib.Path(__file__).resolve().parent.parent
# The real dataset next to the project (../shared), or wherever CLOTHING_DATASET points.
REAL_DATA = pathlib.Path(os.environ.get(
    "CLOTHING_DATASET", ROOT.parent / "shared" / "data" / "clothing-dataset-small"))
# Three classes, three shades each. Solid colours make RandomFlip and RandomRotation exact
# identities, and PNG keeps them exact: a randomly initialised MobileNetV2 is chaotic (tiny input
# changes scramble its features), so these tests check that the pipeline learns and keeps the
# labels straight, not that random features generalise (docs/training.md reports that honestly).
SHADES = {
    "blue": [(30, 50, 200), (60, 90, 230), (20, 30, 150)],
    "green": [(40, 180, 60), (90, 210, 90), (20, 120, 40)],
    "red": [(210, 40, 40), (240, 90, 80), (150, 20, 30)],
}


@pytest.fixture(scope="module")
def example():
    return load_example("train_clothing")


def _write_image(path, colour, size=40):
    from PIL import Image

    Image.fromarray(np.full((size, size, 3), colour, dtype="uint8")).save(path)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """Three colour classes: train 12, validation 3, test 6 images per class."""
    root = tmp_path_factory.mktemp("tiny")
    for split, count in (("train", 12), ("validation", 3), ("test", 6)):
        for name, shades in SHADES.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                _write_image(folder / f"{i}.png", shades[i % len(shades)])
    return root


def _run(example, data_dir, out, *extra):
    # alpha 0.35: the same layers at a third of the width, so each run (calibration, caching,
    # training, saving and reloading the checkpoint) takes less of the suite's time. Batch 9
    # divides every split of tiny_data (36, 9, 18 images): Keras traces a predict function
    # once more for a smaller last batch, and a trace of MobileNetV2 costs seconds.
    args = example.parse_args(["--data-dir", str(data_dir), "--out", str(out), "--img-size", "32",
                               "--alpha", "0.35", "--batch-size", "9", "--learning-rate", "0.01",
                               "--quiet", *extra])
    # Random weights (offline) with calibrated batch norm: features that carry the colours.
    args.calibrate_batchnorm = True
    return example.run(args, log=lambda *a: None)


PLOTS = ("confusion.png", "learning_curves.png", "distribution.png")


# Epochs: with these settings the validation accuracy reached 1.0 by epoch 3 at the latest for
# every seed tried (cached: 0-39 and 42; full: 0-19 and 42). The checkpoint keeps the first best
# epoch, so more epochs (these runs had 30 and 10) only cost time.
# The plots do not depend on the mode: drawn (and checked) in one run, --no-plots in the other.
@pytest.mark.parametrize("mode, epochs, plots", [("cached", "6", True), ("full", "5", False)])
def test_end_to_end_on_generated_data(example, tiny_data, tmp_path, keras, mode, epochs, plots):
    out = tmp_path / mode
    metrics = _run(example, tiny_data, out, "--mode", mode, "--epochs", epochs,
                   *([] if plots else ["--no-plots"]))

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["accuracy"] == metrics["accuracy"] and on_disk["n"] == 18
    assert metrics["accuracy"] >= 0.9, metrics["accuracy"]  # chance is 1/3
    per_class = pd.read_csv(out / "per_class.csv", index_col="class")
    assert list(per_class.index) == ["blue", "green", "red", "macro avg", "weighted avg"]
    confusion = pd.read_csv(out / "confusion.csv", index_col="true")
    assert confusion.to_numpy().sum() == 18
    history = pd.read_csv(out / "history.csv")
    assert len(history) == int(epochs) and {"loss", "val_accuracy"} <= set(history.columns)
    for name in PLOTS:
        assert (out / name).stat().st_size > 0 if plots else not (out / name).exists()

    # The checkpoint is the whole classifier and reproduces the reported test accuracy.
    reloaded = keras.saving.load_model(out / "best.keras")
    images, labels, _ = example.load_split(
        example.scan_split(tiny_data / "test"), ["blue", "green", "red"], 32)
    # one eager call on the 18 images: predict() would trace the whole network once more
    predicted = np.asarray(reloaded(images.astype("float32"), training=False)).argmax(axis=1)
    assert np.mean(predicted == labels) == pytest.approx(metrics["accuracy"])


def test_bad_files_are_skipped_and_counted(example, tiny_data, tmp_path, capsys):
    # Loading alone (a whole run to check this took 17 s of the suite's budget).
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    from PIL import Image

    Image.open(data / "train" / "red" / "0.png").save(data / "train" / "red" / "good.jpg")
    good = (data / "train" / "red" / "good.jpg").read_bytes()
    (data / "train" / "red" / "broken.jpg").write_bytes(good[: len(good) // 3])
    (data / "train" / "green" / "notes.txt").write_text("not an image")
    classes = example.scan_split(data / "train")
    images, labels, bad = example.load_split(classes, ["blue", "green", "red"], 32,
                                             example.progress_bar(40, quiet=True))
    assert sorted(pathlib.Path(path).name for path, _ in bad) == ["broken.jpg", "notes.txt"]
    distribution = example.distribution_table({"train": labels}, ["blue", "green", "red"])
    assert distribution.loc["red", "train"] == 13 and distribution.loc["green", "train"] == 12
    assert images.shape == (37, 32, 32, 3)
    assert capsys.readouterr().out == ""  # quiet: no progress bar


def test_mismatched_class_folders_are_named(example, tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "test" / "red").rename(data / "test" / "crimson")
    with pytest.raises(example.DataError, match=r"test split's class folders differ from "
                                                r"train's: missing \['red'\], extra \['crimson'\]"):
        _run(example, data, tmp_path / "out", "--epochs", "1")


def test_empty_split_is_an_error(example, tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    shutil.rmtree(data / "validation")
    (data / "validation").mkdir()
    code = example.main(["--data-dir", str(data), "--out", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "train_clothing: error: the validation split is empty (no class folders with files)"
    )


@pytest.mark.skipif(not REAL_DATA.is_dir(), reason="the real clothing dataset is not in ../shared")
def test_smoke_on_the_real_dataset(example, tmp_path):
    # batch 10: no smaller last batch in the 30 images of each split (see _run)
    metrics = _run(example, REAL_DATA, tmp_path / "real", "--max-per-class", "3",
                   "--batch-size", "10", "--epochs", "2", "--no-plots")
    assert metrics["classes"] == ["dress", "hat", "longsleeve", "outwear", "pants", "shirt",
                                  "shoes", "shorts", "skirt", "t-shirt"]
    assert metrics["n"] == 30 and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["skipped_files"] == []


def test_image_loading_shows_progress_unless_quiet(example, tiny_data, capsys):
    classes = example.scan_split(tiny_data / "test")
    images, labels, _ = example.load_split(classes, ["blue", "green", "red"], 32,
                                           example.progress_bar(18))
    shown = capsys.readouterr().out
    assert len(labels) == 18 and "18/18" in shown and "image" in shown  # Keras' Progbar
    example.load_split(classes, ["blue", "green", "red"], 32, example.progress_bar(18, True))
    assert capsys.readouterr().out == ""


def test_examples_refuse_a_missing_weights_file_in_one_line(example, tiny_data, capsys):
    code = example.main(["--data-dir", str(tiny_data), "--weights", "missing.h5"])
    assert code == 2
    assert capsys.readouterr().err == (
        "train_clothing: error: --weights missing.h5: no such file (pass none, imagenet, or the "
        "path of a MobileNetV2 weights file)\n")
    report = load_example("mobilenet_report")
    assert report.main(["--weights", "missing.h5"]) == 2
    assert capsys.readouterr().err == (
        "mobilenet_report: error: --weights missing.h5: no such file (pass none, imagenet, or "
        "the path of a MobileNetV2 weights file)\n")


def test_mode_help_says_cached_is_the_default(example, capsys):
    with pytest.raises(SystemExit):
        example.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "cached (default): train the head on cached base features" in help_text
    # "the default on a CPU" was wrong: cached is the default everywhere
    assert "default on a CPU" not in help_text


def test_scratch_mode_trains_every_layer_with_batch_statistics(example):
    import modelstats

    args = example.parse_args(["--mode", "scratch", "--alpha", "0.35", "--img-size", "96"])
    model = example.build_model(args, n_classes=10)
    assert model.get_layer("mobilenetv2_0.35_96").trainable
    table = modelstats.count_flops(model, training=True)
    # Counted by modelstats: the whole network learns. Every conv but the first (whose input,
    # the image, needs no gradient) computes its input gradient, and every batch norm
    # normalises by the batch's own statistics (the base is not called with training=False).
    convs = table[table["type"].isin(["Conv2D", "DepthwiseConv2D"])]
    assert (convs["bwd_weight_macs"] == convs["macs"]).all()
    assert (convs["bwd_input_macs"].iloc[1:] == convs["macs"].iloc[1:]).all()
    norms = table[table["type"] == "BatchNormalization"]
    assert len(norms) == 52 and (norms["train_flops"] - norms["flops"]
                                 > norms["bwd_input_flops"] + norms["bwd_weight_flops"]).all()
    assert table["trainable_params"].sum() == sum(
        int(np.prod(w.shape)) for w in model.trainable_weights)


def test_fine_tune_at_names_a_base_layer(example):
    """--fine-tune-at block_16_expand trains the base's last 11 layers (block_16's expand,
    its BN and ReLU, the depthwise conv with its BN and ReLU, the projection and its BN,
    Conv_1, its BN and out_relu: 154 - 143); an unknown name is refused naming some."""
    classifier = example.build_model(example.parse_args(["--alpha", "0.35", "--img-size", "96"]),
                                     n_classes=3)
    assert example.unfreeze_from(classifier, "block_16_expand") == 11
    base = example.base_of(classifier)
    assert [layer.name for layer in base.layers if layer.trainable][:2] == [
        "block_16_expand", "block_16_expand_BN"]
    assert sum(layer.trainable for layer in base.layers) == 11
    with pytest.raises(example.DataError, match=r"^--fine-tune-at block_99: mobilenetv2_0.35_96 "
                                                r"has no layer 'block_99'; its layers include "
                                                r"block_1_expand, "):
        example.unfreeze_from(classifier, "block_99")
