"""Float vs int8 top-1 of B0 and Lite0 trained briefly on scikit-learn's digits, through the
export command's own path.

    python benchmarks/int8_digits.py [--epochs 2] [--variants b0,lite0]

Each variant: ``python -m effnet_tf.train --config small_images --variant V`` on the digits
folder of ``benchmarks/small_data.py`` (32 px, 1,438 train / 359 val scans); then in this
process ``evaluate_run`` (the float Keras model, averaged weights) and the run exported by
``export_run`` as ``tflite`` and ``tflite_int8`` (what ``python -m effnet_tf.export`` does:
per-channel int8 weights, calibrated on 64 training images drawn from all over the split,
prepared as the model takes images), scored on the same validation images with the TFLite
interpreter. The last column calibrates as the export did before the run spec: the first 64
images of the validation split in file order (a folder is sorted by class, so 0s and 1s).
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


def score(variant: str, model_dir: str, scratch: str, val_x, val_y) -> dict:
    from effnet_tf.deploy import tflite
    from effnet_tf.deploy.formats import export_run
    from effnet_tf.deploy.serving import with_softmax
    from effnet_tf.training.evaluation import evaluate_run
    from effnet_tf.training.restore import load_trained

    top1 = {"evaluate": evaluate_run(model_dir)["top1"]}
    for fmt in ("tflite", "tflite_int8"):
        path = export_run(model_dir, fmt, os.path.join(scratch, f"{variant}_{fmt}.tflite"))
        top1[fmt] = float(np.mean(tflite.predict(path, val_x).argmax(1) == val_y))
    model = with_softmax(load_trained(model_dir).model)
    before = tflite.convert(model, quantization="int8", representative_data=[val_x[:64]])
    top1["before"] = float(np.mean(tflite.predict(before, val_x).argmax(1) == val_y))
    return top1


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
        rows = []
        for variant in args.variants.split(","):
            model_dir = os.path.join(scratch, variant)
            subprocess.run([sys.executable, "-m", "effnet_tf.train", "--config=small_images",
                            f"--dataset={root}", f"--model_dir={model_dir}",
                            f"--epochs={args.epochs}", f"--variant={variant}"],
                           cwd=REPO, env=env, check=True, capture_output=True)
            rows.append((variant, score(variant, model_dir, scratch, val_x, val_y)))
    print("| model | epochs | evaluate (Keras float) | export tflite | export tflite_int8 | "
          "int8 - float | int8 calibrated as before (first 64 val files) |")
    print("|---|---|---|---|---|---|---|")
    for variant, t in rows:
        print(f"| {variant} | {args.epochs} | {t['evaluate']:.3f} | {t['tflite']:.3f} | "
              f"{t['tflite_int8']:.3f} | {100 * (t['tflite_int8'] - t['evaluate']):+.1f} pts | "
              f"{t['before']:.3f} |")


if __name__ == "__main__":
    main()
