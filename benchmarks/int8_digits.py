"""Float vs int8 top-1 of B0 and Lite0 trained briefly on scikit-learn's digits.

    python benchmarks/int8_digits.py [--epochs 2] [--variants b0,lite0]

Each variant: ``python -m effnet_tf.train --config small_images --variant V`` on the digits
folder of ``benchmarks/small_data.py`` (32 px, 1,438 train / 359 val scans); then, in this
process, the trained (averaged) model's val top-1 in float (Keras) and as full-integer int8
TFLite (``deploy.tflite.convert``, per-channel weights) calibrated on 64 images: of the val
split (what ``export --format tflite_int8`` does today) or of the train split. The val
images need no preprocessing here: ``small_images`` resizes the whole 32 px scan to 32 px.
Results: BUILD.md, "EfficientNet-Lite".
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from small_data import REPO, write_digits  # noqa: E402


def load_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels = [], []
    for path in sorted(glob.glob(os.path.join(root, split, "*", "*.png"))):
        images.append(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32))
        labels.append(int(os.path.basename(os.path.dirname(path))))
    return np.stack(images), np.array(labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--variants", default="b0,lite0")
    args = parser.parse_args()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with tempfile.TemporaryDirectory() as scratch:
        root = os.path.join(scratch, "digits")
        write_digits(root)
        val_x, val_y = load_split(root, "val")
        train_x, _ = load_split(root, "train")
        rng = np.random.default_rng(0)
        calibration = {"val": val_x[rng.permutation(len(val_x))[:64]],
                       "train": train_x[rng.permutation(len(train_x))[:64]]}
        rows = []
        for variant in args.variants.split(","):
            model_dir = os.path.join(scratch, variant)
            subprocess.run([sys.executable, "-m", "effnet_tf.train", "--config=small_images",
                            f"--dataset={root}", f"--model_dir={model_dir}",
                            f"--epochs={args.epochs}", f"--variant={variant}"],
                           cwd=REPO, env=env, check=True, capture_output=True)
            from effnet_tf.deploy import tflite
            from effnet_tf.training.restore import load_trained

            model = load_trained(model_dir).model
            top1 = {"float": np.mean(model.predict(val_x, verbose=0).argmax(1) == val_y)}
            for source, images in calibration.items():
                blob = tflite.convert(model, quantization="int8", representative_data=[images])
                top1[source] = np.mean(tflite.predict(blob, val_x).argmax(1) == val_y)
            rows.append((variant, top1))
    print("| model | epochs | float top-1 | int8, val calibration | int8, train calibration |")
    print("|---|---|---|---|---|")
    for variant, top1 in rows:
        print(f"| {variant} | {args.epochs} | {top1['float']:.3f} | {top1['val']:.3f} | "
              f"{top1['train']:.3f} |")


if __name__ == "__main__":
    main()
