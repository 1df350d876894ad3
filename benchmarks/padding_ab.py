"""Training-step time of our model with ``same`` padding vs explicit ``ZeroPadding2D`` on
strided convolutions, against keras.applications, under one dtype policy, in one process.

    python benchmarks/padding_ab.py --policy mixed_bfloat16 --variant b0 --rounds 5

This is the measurement behind ``effnet_tf.modeling.blocks.explicit_padding`` (explicit padding
under mixed precision only). Rounds of 3 ``train_on_batch`` steps alternate between the
three models; medians in ms per step and keras' time over each model's are printed.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", default="mixed_bfloat16")
    parser.add_argument("--variant", default="b0")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    import keras
    import numpy as np

    import effnet_tf
    from effnet_tf.modeling.scaling import Scaling

    keras.mixed_precision.set_dtype_policy(args.policy)
    size = Scaling.variant(args.variant).resolution

    def ours(explicit: bool):
        return effnet_tf.EfficientNet(args.variant, explicit_padding=explicit)

    builders = {
        "ours, same": lambda: ours(False),
        "ours, explicit": lambda: ours(True),
        "keras.applications": lambda: getattr(
            keras.applications, f"EfficientNet{args.variant.upper()}")(weights=None),
    }
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (args.batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (args.batch,))
    models = {}
    for name, build in builders.items():
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
        for _ in range(2):  # trace, then warm up
            model.train_on_batch(x, y)
        models[name] = model
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            start = time.perf_counter()
            for _ in range(3):
                model.train_on_batch(x, y)
            times[name].append((time.perf_counter() - start) / 3)
    reference = statistics.median(times["keras.applications"])
    print(f"# {args.variant} at {size}px, batch {args.batch}, {args.policy}, "
          f"median of {args.rounds} rounds")
    print("| model | ms per step | keras / this |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.0f} | {reference / median:.2f} |")


if __name__ == "__main__":
    main()
