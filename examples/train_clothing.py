"""Train and evaluate the clothing classifier: MobileNetV2 transfer learning on 10 clothing classes.

The original study's pipeline: 224x224 inputs scaled to [-1, 1], RandomFlip("horizontal") +
RandomRotation(0.2), a frozen MobileNetV2 base, GlobalAveragePooling2D + Dropout(0.5) +
Dense(10, softmax), Adam(1e-4), categorical cross-entropy, best checkpoint by validation accuracy.
Then the error analysis with modelstats.evaluation on the test split.

--mode cached (the default) runs the frozen base once per image and once per horizontally flipped
image, and trains the head on the cached pooled features, drawing the flipped or the original
copy of each image every epoch (RandomFlip). It is the same model and the same checkpoint,
at a tiny fraction of the compute per epoch; RandomRotation is NOT applied in this mode.
--mode full runs the original pipeline: every batch goes through augmentation and the base.
--mode scratch trains the whole network from random weights (what learns offline, where the
ImageNet weights cannot be downloaded): a MobileNetV2 of width --alpha at --img-size, with the
same augmentation and head, its batch norms in training mode (--weights is not used); e.g.
--alpha 0.35 --img-size 96 --learning-rate 2e-3.

Every step that takes more than a moment (loading images, calibrating batch norm, caching
features, training, predicting) shows a Keras progress bar; --quiet keeps only the summary lines.

Data layout: DATA_DIR/{train,validation,test}/<class>/*.jpg (the clothing-dataset-small layout).
Unreadable or non-image files are reported and skipped; a split whose class folders differ from
train's, or an empty split, is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SPLITS = ("train", "validation", "test")
CALIBRATION_IMAGES = 256


class DataError(Exception):
    """A problem with the inputs (dataset folders, weights file) that stops the run; printed as
    one line."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Cached mode skips RandomRotation; see the module docstring.",
    )
    parser.add_argument("--data-dir", type=Path, default=Path("clothing-dataset-small"),
                        help="folder with train/ validation/ test/ class subfolders "
                             "(default ./clothing-dataset-small)")
    parser.add_argument("--weights", default="none",
                        help="none (random base, offline; default), imagenet (downloads), or a "
                             "weights file for the MobileNetV2 base")
    parser.add_argument("--mode", choices=("cached", "full", "scratch"), default="cached",
                        help="cached (default): train the head on cached base features; "
                             "full: augmentation and base on every batch; scratch: train the "
                             "whole network from random weights")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="width of the MobileNetV2 base (default 1.0, the study's; "
                             "0.35-0.75 for a from-scratch run on a CPU)")
    parser.add_argument("--epochs", type=int, default=200, help="epochs (default 200)")
    parser.add_argument("--img-size", type=int, default=224, help="image side (default 224)")
    parser.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="Adam (default 1e-4)")
    parser.add_argument("--calibrate-batchnorm", action="store_true",
                        help="with random weights: set the base's batch-norm statistics from "
                             f"{CALIBRATION_IMAGES} training images, so its features do not "
                             "vanish (no ImageNet knowledge is added)")
    parser.add_argument("--fine-tune-at", metavar="LAYER",
                        help="second phase: unfreeze the base from this layer on (e.g. block_13_expand)")
    parser.add_argument("--fine-tune-epochs", type=int, default=10)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-5)
    parser.add_argument("--max-per-class", type=int,
                        help="use at most this many images per class and split (quick runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("clothing_run"),
                        help="output folder (default ./clothing_run/)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars or per-epoch lines; only the summary")
    args = parser.parse_args(argv)
    for name in ("epochs", "img_size", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.img_size < 32:
        parser.error("--img-size must be at least 32 (MobileNetV2's smallest input)")
    return args


# -- data --------------------------------------------------------------------------------------

def scan_split(folder: Path, max_per_class=None) -> dict[str, list[Path]]:
    """``{class: [files]}`` of one split; every regular file counts, readable or not."""
    if not folder.is_dir():
        raise DataError(f"split folder '{folder}' does not exist")
    classes = {}
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        files = sorted(p for p in class_dir.iterdir() if p.is_file())
        classes[class_dir.name] = files[:max_per_class] if max_per_class else files
    return classes


def check_splits(splits: dict[str, dict[str, list[Path]]]) -> list[str]:
    """The training classes; raises DataError when a split is empty or its classes differ."""
    class_names = sorted(splits["train"])
    for name, classes in splits.items():
        if not classes or not any(classes.values()):
            raise DataError(f"the {name} split is empty (no class folders with files)")
        if sorted(classes) != class_names:
            missing = sorted(set(class_names) - set(classes))
            extra = sorted(set(classes) - set(class_names))
            parts = [f"missing {missing}" if missing else "", f"extra {extra}" if extra else ""]
            raise DataError(
                f"the {name} split's class folders differ from train's: "
                + ", ".join(p for p in parts if p)
            )
    return class_names


class _Silent:
    """A progress bar that shows nothing (``--quiet``)."""

    def add(self, n, values=None):
        pass


def progress_bar(total: int, quiet: bool = False, unit: str = "image"):
    """A Keras progress bar over ``total`` items (``.add(n)`` after each), or a silent one."""
    if quiet or total <= 0:
        return _Silent()
    import keras

    return keras.utils.Progbar(total, unit_name=unit)


def load_split(classes: dict[str, list[Path]], class_names: list[str], img_size: int,
               bar=None):
    """uint8 images (N, S, S, 3), integer labels, and the files skipped with their reasons.

    ``bar`` (from :func:`progress_bar`) advances by one per file.
    """
    import numpy as np
    from keras.utils import img_to_array, load_img

    bar = bar or _Silent()
    images, labels, skipped = [], [], []
    for label, name in enumerate(class_names):
        for path in classes[name]:
            try:
                image = load_img(path, target_size=(img_size, img_size), color_mode="rgb")
                images.append(img_to_array(image, dtype="uint8"))
            except Exception as exc:  # noqa: BLE001 - PIL raises many types for bad files
                skipped.append((str(path), f"{type(exc).__name__}: {exc}".splitlines()[0]))
                continue
            finally:
                bar.add(1)
            labels.append(label)
    shape = (0, img_size, img_size, 3)
    stacked = np.stack(images) if images else np.zeros(shape, dtype="uint8")
    return stacked, np.array(labels, dtype="int64"), skipped


def distribution_table(labels_by_split: dict, class_names: list[str]):
    import numpy as np
    import pandas as pd

    table = pd.DataFrame(
        {split: np.bincount(labels, minlength=len(class_names))
         for split, labels in labels_by_split.items()},
        index=pd.Index(class_names, name="class"),
    )
    table.loc["total"] = table.sum()
    return table


# -- model -------------------------------------------------------------------------------------

def check_weights(weights: str) -> None:
    """Refuse a weights file that does not exist before any image is loaded."""
    if weights not in ("none", "imagenet") and not Path(weights).is_file():
        raise DataError(f"--weights {weights}: no such file (pass none, imagenet, or the path "
                        "of a MobileNetV2 weights file)")


def build_model(args, n_classes: int):
    """The classifier; weights Keras cannot load are a DataError (one line)."""
    import keras

    from modelstats.models import clothing_classifier

    check_weights(args.weights)
    scratch = args.mode == "scratch"
    weights = None if args.weights == "none" or scratch else args.weights
    try:
        model = clothing_classifier(weights=weights, num_classes=n_classes, alpha=args.alpha,
                                    input_shape=(args.img_size, args.img_size, 3),
                                    train_base=scratch)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types; one line instead
        first = " ".join(str(exc).strip().split("\n")[0].split()) or type(exc).__name__
        raise DataError(f"--weights {args.weights}: {first}") from None
    if scratch:
        # Keras' MobileNetV2 keeps moving statistics with momentum 0.999: from scratch, at
        # 96 steps an epoch, validation would see statistics hundreds of steps stale (the
        # first run here stayed at the largest class for 10 epochs). 0.9 follows the batches.
        for layer in base_of(model).layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.9
    return model


def base_of(classifier):
    """The nested MobileNetV2 (named after its input size, e.g. mobilenetv2_1.00_224)."""
    return next(layer for layer in classifier.layers if layer.name.startswith("mobilenetv2"))


def calibrate_batchnorm(classifier, images, seed: int, batch_size: int = 32,
                        quiet: bool = True) -> int:
    """Set every batch-norm layer's moving statistics from training images.

    A randomly initialised MobileNetV2 shrinks activations layer after layer (its pooled
    features are about 1e-13), so a head cannot learn from them. Forward passes in training
    mode store each layer's batch statistics, computed with all earlier layers normalised:
    the features get unit scale. The momentum of pass i is (i - 1) / i, so the stored
    statistics are the average over the passes (small batches keep the memory bounded).
    Returns the number of images used.
    """
    import numpy as np
    import keras
    from keras.applications.mobilenet_v2 import preprocess_input

    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(images), size=min(CALIBRATION_IMAGES, len(images)), replace=False)
    base = base_of(classifier)
    norms = [layer for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    base.trainable = True  # a frozen BatchNormalization ignores training=True
    bar = progress_bar(len(chosen), quiet)
    try:
        for index, start in enumerate(range(0, len(chosen), batch_size)):
            for layer in norms:
                layer.momentum = index / (index + 1)
            batch = preprocess_input(images[chosen[start:start + batch_size]].astype("float32"))
            base(batch, training=True)
            bar.add(len(batch))
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        base.trainable = False
    return len(chosen)


def feature_extractor(classifier):
    """Image -> pooled base features: the classifier's own layers up to the pooling."""
    import keras

    pooled = classifier.get_layer("global_average_pooling2d").output
    return keras.Model(classifier.inputs, pooled, name="features")


def head(classifier):
    """Pooled features -> class probabilities, sharing the classifier's Dropout and Dense."""
    import keras

    features = keras.Input(classifier.get_layer("global_average_pooling2d").output.shape[1:])
    x = classifier.get_layer("dropout")(features)
    return keras.Model(features, classifier.get_layer("dense")(x), name="head")


def make_keep_best(checkpoint: Path, classifier, save_each_improvement: bool):
    """Keep the weights of the epoch with the best validation accuracy (the first, on ties)."""
    import keras

    class KeepBest(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best, self.best_epoch, self.weights = -1.0, None, None
            self.epochs_seen = 0
            self.saved = False  # does the checkpoint hold the best weights already?

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_seen += 1
            accuracy = float((logs or {}).get("val_accuracy", -1.0))
            if accuracy > self.best:
                self.best, self.best_epoch = accuracy, self.epochs_seen
                self.weights = classifier.get_weights()
                self.saved = save_each_improvement
                if save_each_improvement:
                    classifier.save(checkpoint)

        def restore_and_save(self):
            """Put the best weights back in the classifier; save them unless the checkpoint
            holds them already (saved at their epoch)."""
            if self.weights is not None:
                classifier.set_weights(self.weights)
            if not self.saved:
                classifier.save(checkpoint)
                self.saved = True

    return KeepBest()


def compile_for_training(model, learning_rate: float) -> None:
    """Adam, categorical cross-entropy and accuracy, with their variables created now.

    TensorFlow traces the training step again when its first trace creates variables (Keras
    creates the optimizer's slots and the metric's totals lazily, inside that trace): for
    MobileNetV2 that second trace took several seconds of every ``fit``. Creating them here
    makes one trace; the training itself is unchanged.
    """
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="categorical_crossentropy",
                  # what "accuracy" resolves to for one-hot labels, built now
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
    model.optimizer.build(model.trainable_variables)


def one_hot(labels, n_classes):
    import numpy as np

    return np.eye(n_classes, dtype="float32")[labels]


def train_cached(args, classifier, data, n_classes, keep_best, log):
    """Cache pooled features of every image and its mirror image; train the head on them."""
    import tensorflow as tf

    extractor = feature_extractor(classifier)
    started = time.perf_counter()
    train_images = data["train"][0]
    verbose = 0 if args.quiet else 1  # the base runs once per image here: minutes on a CPU
    if not args.quiet:
        log("caching base features: training images, their mirror images, validation images")
    original = extractor.predict(train_images.astype("float32"), batch_size=args.batch_size,
                                 verbose=verbose)
    flipped = extractor.predict(train_images[:, :, ::-1].astype("float32"),
                                batch_size=args.batch_size, verbose=verbose)
    validation = extractor.predict(data["validation"][0].astype("float32"),
                                   batch_size=args.batch_size, verbose=verbose)
    cache_seconds = time.perf_counter() - started
    log(f"cached base features of {len(original)} training images (+ mirrored) and "
        f"{len(validation)} validation images in {cache_seconds:.1f} s")

    labels = one_hot(data["train"][1], n_classes)

    def pick_flip(a, b, y):  # RandomFlip("horizontal"): each copy with probability 1/2
        return tf.where(tf.random.uniform(()) < 0.5, b, a), y

    dataset = (
        tf.data.Dataset.from_tensor_slices((original, flipped, labels))
        .shuffle(len(labels), seed=args.seed, reshuffle_each_iteration=True)
        .map(pick_flip)
        .batch(args.batch_size)
    )
    model = head(classifier)
    compile_for_training(model, args.learning_rate)
    started = time.perf_counter()
    history = model.fit(dataset, validation_data=(validation, one_hot(data["validation"][1],
                                                                      n_classes)),
                        epochs=args.epochs, verbose=0 if args.quiet else 2,
                        callbacks=[keep_best], shuffle=False)
    train_seconds = time.perf_counter() - started
    return history.history, {"cache_features": cache_seconds, "train": train_seconds}


def image_dataset(images, labels, n_classes, batch_size, seed=None):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images, one_hot(labels, n_classes)))
    if seed is not None:
        dataset = dataset.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    return dataset.map(lambda x, y: (tf.cast(x, "float32"), y)).batch(batch_size)


def train_full(args, classifier, data, n_classes, keep_best, epochs, learning_rate):
    """The original pipeline: augmentation and the (frozen) base run on every batch."""
    compile_for_training(classifier, learning_rate)
    started = time.perf_counter()
    history = classifier.fit(
        image_dataset(*data["train"], n_classes, args.batch_size, seed=args.seed),
        validation_data=image_dataset(*data["validation"], n_classes, args.batch_size),
        epochs=epochs, verbose=0 if args.quiet else 2, callbacks=[keep_best],
        shuffle=False,  # tf.data shuffles
    )
    return history.history, {"train": time.perf_counter() - started}


def unfreeze_from(classifier, layer_name: str) -> int:
    """Make the base trainable from ``layer_name`` on; returns how many layers train."""
    from modelstats.models import fine_tune_base

    try:
        return fine_tune_base(classifier, layer_name)
    except ValueError as exc:
        raise DataError(f"--fine-tune-at {layer_name}: {exc}") from None


# -- outputs -----------------------------------------------------------------------------------

def save_plots(out: Path, history, distribution, evaluation):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = range(1, len(history["loss"]) + 1)
    for key, style in (("loss", "-"), ("val_loss", "--")):
        loss_ax.plot(epochs, history[key], style, label=key)
    for key, style in (("accuracy", "-"), ("val_accuracy", "--")):
        acc_ax.plot(epochs, history[key], style, label=key)
    loss_ax.set_xlabel("epoch")
    acc_ax.set_xlabel("epoch")
    loss_ax.set_title("cross-entropy")
    acc_ax.set_title("accuracy")
    loss_ax.legend()
    acc_ax.legend()
    figure.savefig(out / "learning_curves.png", dpi=100, bbox_inches="tight")
    plt.close(figure)

    ax = distribution.drop(index="total").plot.bar(figsize=(10, 4), rot=45)
    ax.set_ylabel("images")
    ax.set_title("Images per class and split")
    ax.figure.savefig(out / "distribution.png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)

    ax = evaluation.plot_confusion()
    ax.figure.savefig(out / "confusion.png", dpi=100, bbox_inches="tight")
    plt.close(ax.figure)


def run(args, log=print) -> dict:
    check_weights(args.weights)  # before TensorFlow starts: a typo fails at once
    import keras
    import pandas as pd

    from modelstats.evaluation import evaluate

    keras.utils.set_random_seed(args.seed)
    try:
        import PIL  # noqa: F401 - keras.utils.load_img reads images with Pillow
    except ImportError:
        raise DataError("reading images needs Pillow: pip install 'modelstats[examples]'") from None
    if not args.data_dir.is_dir():
        raise DataError(f"data folder '{args.data_dir}' does not exist; pass --data-dir "
                        "(layout: train|validation|test/<class>/*.jpg)")
    started = time.perf_counter()
    splits = {name: scan_split(args.data_dir / name, args.max_per_class) for name in SPLITS}
    class_names = check_splits(splits)
    data, skipped = {}, []
    for name in SPLITS:
        files = sum(len(f) for f in splits[name].values())
        if not args.quiet:
            log(f"loading {files} {name} files")
        images, labels, bad = load_split(splits[name], class_names, args.img_size,
                                         progress_bar(files, args.quiet))
        if len(labels) == 0:
            raise DataError(f"the {name} split has no readable image")
        data[name] = (images, labels)
        skipped += [(name, *item) for item in bad]
    load_seconds = time.perf_counter() - started
    for split, path, reason in skipped:
        log(f"skipped {split} file {path}: {reason}")
    log(f"loaded {sum(len(d[1]) for d in data.values())} images in {load_seconds:.1f} s; "
        f"skipped {len(skipped)} unreadable file(s)")
    distribution = distribution_table({k: v[1] for k, v in data.items()}, class_names)
    log("\nImages per class and split:\n" + distribution.to_string() + "\n")

    n_classes = len(class_names)
    classifier = build_model(args, n_classes)
    if args.calibrate_batchnorm:
        used = calibrate_batchnorm(classifier, data["train"][0], args.seed, args.batch_size,
                                   args.quiet)
        log(f"calibrated the base's batch-norm statistics on {used} training images")
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint = args.out / "best.keras"
    keep_best = make_keep_best(checkpoint, classifier,
                               save_each_improvement=args.mode in ("full", "scratch"))
    if args.mode == "cached":
        history, timings = train_cached(args, classifier, data, n_classes, keep_best, log)
    else:
        history, timings = train_full(args, classifier, data, n_classes, keep_best,
                                      args.epochs, args.learning_rate)
    if args.fine_tune_at:
        keep_best.restore_and_save()  # fine-tuning starts from the best head
        trainable = unfreeze_from(classifier, args.fine_tune_at)
        log(f"fine-tuning {trainable} base layers from {args.fine_tune_at} for "
            f"{args.fine_tune_epochs} epochs (full pipeline)")
        more, tune_timings = train_full(args, classifier, data, n_classes, keep_best,
                                        args.fine_tune_epochs, args.fine_tune_learning_rate)
        history = {k: list(history[k]) + list(more.get(k, [])) for k in history}
        timings["fine_tune"] = tune_timings["train"]
    keep_best.restore_and_save()
    log(f"best validation accuracy {keep_best.best:.4f} at epoch {keep_best.best_epoch}; "
        f"checkpoint {checkpoint}")

    test_images, test_labels = data["test"]
    probabilities = classifier.predict(test_images.astype("float32"), batch_size=args.batch_size,
                                       verbose=0 if args.quiet else 1)
    evaluation = evaluate(test_labels, probabilities, class_names)
    log("\nTest set:\n" + evaluation.to_markdown())

    pd.DataFrame(history).rename_axis("epoch").to_csv(args.out / "history.csv")
    distribution.to_csv(args.out / "distribution.csv")
    evaluation.per_class.to_csv(args.out / "per_class.csv")
    evaluation.confusion.to_csv(args.out / "confusion.csv")
    (args.out / "evaluation.md").write_text(evaluation.to_markdown(), encoding="utf-8")
    metrics = {
        **evaluation.to_dict(),
        "mode": args.mode,
        "weights": args.weights,
        "calibrate_batchnorm": args.calibrate_batchnorm,
        "epochs": args.epochs,
        "img_size": args.img_size,
        "alpha": args.alpha,
        "batch_size": args.batch_size,
        "best_epoch": keep_best.best_epoch,
        "best_val_accuracy": keep_best.best,
        "skipped_files": [{"split": s, "path": p, "reason": r} for s, p, r in skipped],
        "timings_seconds": {"load_images": load_seconds, **timings},
        "checkpoint": str(checkpoint),
    }
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    plotted = False
    if not args.no_plots:
        try:
            save_plots(args.out, history, distribution, evaluation)
            plotted = True
        except ImportError as exc:
            log(f"(plots skipped: {exc}; pip install -e \".[examples]\" adds them)")
    log(f"wrote metrics.json, per_class.csv, confusion.csv, evaluation.md, history.csv, "
        f"distribution.csv, best.keras"
        f"{' and learning_curves.png, distribution.png, confusion.png' if plotted else ''} "
        f"to {args.out}/")
    return metrics


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except DataError as exc:
        print(f"train_clothing: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
