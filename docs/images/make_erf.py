"""Draw docs/images/erf_mobilenetv2.png: the effective receptive field of the clothing
classifier's last feature map (MobileNetV2 at 224 x 224, random weights) next to its 491-pixel
theoretical field.

    python docs/images/make_erf.py [--images N] [--data-dir DIR] [--out PATH]

Averages the gradient over N clothing images (the first of each class, then the second, ...)
from ../shared/data/clothing-dataset-small when present, else over N random images. Under a
minute on two CPU cores, most of it starting TensorFlow and building the model. The weights are
random (no download): a trained network's ERF differs (Luo et al. saw it grow with training),
so the picture illustrates the tool, not what a trained MobileNetV2 looks at.
"""

from __future__ import annotations

import argparse
import os
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DATA = pathlib.Path(os.environ.get(
    "CLOTHING_DATASET", ROOT.parent / "shared" / "data" / "clothing-dataset-small"))


def clothing_images(data_dir: pathlib.Path, n: int, size: int = 224) -> np.ndarray:
    """``n`` training images, classes taken in turn, as float32 pixels in [0, 255]."""
    from PIL import Image

    folders = sorted(p for p in (data_dir / "train").iterdir() if p.is_dir())
    files = [sorted(f.glob("*.jpg")) for f in folders]
    chosen = [files[i % len(files)][i // len(files)] for i in range(n)]
    images = []
    for path in chosen:
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((size, size), Image.BILINEAR)
            images.append(np.asarray(resized, dtype="float32"))
    return np.stack(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--data-dir", type=pathlib.Path, default=DATA)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "erf_mobilenetv2.png")
    args = parser.parse_args()

    import keras

    import modelstats
    from modelstats._render import pyplot
    from modelstats.models import clothing_classifier

    keras.utils.set_random_seed(0)
    model = clothing_classifier()
    if (args.data_dir / "train").is_dir():
        images, source = clothing_images(args.data_dir, args.images), "clothing images"
    else:  # random pixels in the classifier's input range
        images = np.random.default_rng(0).uniform(0, 255, (args.images, 224, 224, 3))
        source = "random images"
    erf = modelstats.effective_receptive_field(model, images=images)
    size = erf.receptive_field.size[0]
    ratios = ", ".join(f"{t:.0%}: {erf.area_ratio(t):.1%}" for t in (0.2, 0.5, 0.9))
    print(f"{erf!r}\ntheoretical field {size} px, centre {erf.center}; "
          f"area ratios (mass: area) {ratios}")

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 5.4))
    erf.plot(left, image=images[0], full_field=True)
    erf.plot(right, log=True)
    half = erf.area_ratio(0.5)
    left.set_title(f"mean over {erf.n_images} {source}, on the first; dashed: the {size} px "
                   "theoretical field", fontsize=9)
    right.set_title("log10 of the normalised map (solid box: the field cut by the image)",
                    fontsize=9)
    fig.suptitle(f"MobileNetV2 at 224 x 224 (random weights), {erf.layer} unit {erf.position}:"
                 f"\nhalf the gradient mass lies in a square of {half:.1%} of the image "
                 f"({round((half * 224 * 224) ** 0.5)} px a side)", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
