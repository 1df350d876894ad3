"""Small real data from scratch: B0 on scikit-learn's digits, ours against keras.applications.

    python benchmarks/small_data.py [--epochs 10] [--keras_epochs 20]

The 1,797 digit scans (8x8, shipped with scikit-learn) are written as a 32 px image folder
``train/`` + ``val/`` (80/20, stratified). Ours: ``python -m effnet_tf.train --config
small_images`` (B0 from scratch). Reference: ``keras.applications.EfficientNetB0(weights=None)``
+ ``fit`` with Adam 1e-3 on ``keras.utils.image_dataset_from_directory`` (no augmentation),
the way its tutorials train. Each runs in its own process, one after the other; printed: val
top-1 and wall time (from the start of the process) after every epoch.
Goal: ours >= 0.95 top-1 within 10 epochs, sooner than keras.applications reaches its best.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

KERAS_RUN = r"""
import sys, time, json
start = float(sys.argv[3])
import keras
root, epochs = sys.argv[1], int(sys.argv[2])
load = lambda split, shuffle: keras.utils.image_dataset_from_directory(
    f"{root}/{split}", image_size=(32, 32), batch_size=32, shuffle=shuffle, seed=0)
train, val = load("train", True), load("val", False)
model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3), classes=10)
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
class Report(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        print(f"EPOCH {epoch + 1} {logs['val_accuracy']:.4f} {time.time() - start:.1f}", flush=True)
model.fit(train, validation_data=val, epochs=epochs, verbose=0, callbacks=[Report()])
"""


def write_digits(root: str) -> tuple[int, int]:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    scans = load_digits()
    rng = np.random.default_rng(0)
    counts = [0, 0]
    for digit in range(10):
        index = rng.permutation(np.flatnonzero(scans.target == digit))
        cut = int(round(0.8 * len(index)))
        for n, i in enumerate(index):
            split = "train" if n < cut else "val"
            counts[split == "val"] += 1
            folder = os.path.join(root, split, str(digit))
            os.makedirs(folder, exist_ok=True)
            pixels = (scans.images[i] / 16 * 255).astype("uint8")
            Image.fromarray(pixels).convert("RGB").resize((32, 32), Image.BICUBIC).save(
                os.path.join(folder, f"{i}.png"))
    return counts[0], counts[1]


def timed_lines(cmd, env):
    """Runs ``cmd``, yielding (seconds since start, line) as its stdout lines arrive."""
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        yield time.time() - start, line.rstrip()
    if proc.wait():
        raise SystemExit(f"{cmd[:4]} failed with exit code {proc.returncode}")


def run_ours(root, model_dir, epochs, env):
    curve = []
    cmd = [sys.executable, "-m", "effnet_tf.train", "--config=small_images",
           f"--dataset={root}", f"--model_dir={model_dir}", f"--epochs={epochs}"]
    for seconds, line in timed_lines(cmd, env):
        match = re.match(r"\s+epoch (\d+) .* top1 ([0-9.]+)", line)
        if match:
            curve.append((int(match.group(1)), float(match.group(2)), seconds))
    return curve


def run_keras(root, epochs, env):
    curve = []
    cmd = [sys.executable, "-c", KERAS_RUN, root, str(epochs), str(time.time())]
    for _, line in timed_lines(cmd, env):
        if line.startswith("EPOCH "):
            _, epoch, top1, seconds = line.split()
            curve.append((int(epoch), float(top1), float(seconds)))
    return curve


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="ours")
    parser.add_argument("--keras_epochs", type=int, default=20,
                        help="keras.applications (longer: to find its best)")
    args = parser.parse_args()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "digits")
        n_train, n_val = write_digits(root)
        print(f"digits: {n_train} train / {n_val} val scans at 32 px", flush=True)
        ours = run_ours(root, os.path.join(tmp, "run"), args.epochs, env)
        theirs = run_keras(root, args.keras_epochs, env)

    print("\n| epoch | ours top-1 | ours wall s | keras.applications top-1 | keras wall s |")
    print("|---|---|---|---|---|")
    for e in range(max(len(ours), len(theirs))):
        a = ours[e] if e < len(ours) else None
        b = theirs[e] if e < len(theirs) else None
        print(f"| {e + 1} | " + (f"{a[1]:.4f} | {a[2]:.0f}" if a else " | ") + " | "
              + (f"{b[1]:.4f} | {b[2]:.0f}" if b else " | ") + " |")
    best_ours = max(ours, key=lambda r: r[1])
    first_95 = next((r for r in ours if r[1] >= 0.95), None)
    best_theirs = max(theirs, key=lambda r: (r[1], -r[0]))
    print(f"\nours: best {best_ours[1]:.4f} (epoch {best_ours[0]}); >= 0.95 "
          + (f"at epoch {first_95[0]}, {first_95[2]:.0f} s" if first_95 else "not reached"))
    print(f"keras.applications: best {best_theirs[1]:.4f} at epoch {best_theirs[0]}, "
          f"{best_theirs[2]:.0f} s")
    met = bool(first_95) and first_95[0] <= 10 and first_95[2] < best_theirs[2]
    print(f"goal (>= 0.95 within 10 epochs, sooner than keras reaches its best): "
          f"{'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
