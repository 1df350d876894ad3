"""Our B0 (or another variant) against keras.applications': training steps/s, inference
images/s and peak memory, on the same random data, batch and resolution, in one run.

    python benchmarks/model_speed.py                 # float32 / mixed_bfloat16, XLA off / on
    python benchmarks/model_speed.py --no-xla --rounds 3
    python benchmarks/model_speed.py --variant b1 --no-xla --precisions float32

Speed: one process per (precision, XLA) builds both models and alternates timed rounds
between them (so load on a shared machine hits both alike), reporting medians. Memory: each
model trains a few steps in a process of its own, whose peak resident set is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


def build(impl: str, variant: str, size: int):
    import keras

    if impl == "ours":
        import effnet_tf

        return effnet_tf.EfficientNet(variant, input_shape=(size, size, 3))
    return getattr(keras.applications, f"EfficientNet{variant.upper()}")(
        weights=None, input_shape=(size, size, 3))


def compiled(impl, variant, precision, jit, size):
    import keras

    keras.mixed_precision.set_dtype_policy(precision)
    model = build(impl, variant, size)
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit)
    return model


def data(batch, size):
    import numpy as np

    rng = np.random.default_rng(0)
    return (rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"),
            rng.integers(0, 1000, (batch,)))


def speed(variant: str, precision: str, jit: bool, batch: int, size: int, rounds: int,
          steps: int) -> dict:
    x, y = data(batch, size)
    models, compile_s = {}, {}
    for impl in ("ours", "keras"):
        models[impl] = compiled(impl, variant, precision, jit, size)
        start = time.perf_counter()
        models[impl].train_on_batch(x, y)
        models[impl].predict_on_batch(x)
        compile_s[impl] = time.perf_counter() - start
    train = {impl: [] for impl in models}
    infer = {impl: [] for impl in models}
    for _ in range(rounds):
        for impl, model in models.items():
            start = time.perf_counter()
            for _ in range(steps):
                model.train_on_batch(x, y)
            train[impl].append(steps * batch / (time.perf_counter() - start))
            start = time.perf_counter()
            for _ in range(steps):
                model.predict_on_batch(x)
            infer[impl].append(steps * batch / (time.perf_counter() - start))
    return {impl: {"train_ips": statistics.median(train[impl]),
                   "infer_ips": statistics.median(infer[impl]),
                   "compile_s": compile_s[impl]} for impl in models}


def memory(impl: str, variant: str, batch: int, size: int) -> dict:
    x, y = data(batch, size)
    model = compiled(impl, variant, "float32", False, size)
    for _ in range(3):
        model.train_on_batch(x, y)
    return {"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child(args: list[str]) -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                         text=True, env=env)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["?"])[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", nargs="+")
    parser.add_argument("--no-xla", action="store_true", help="skip jit_compile=True")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--variant", default="b0", help="b0..b7")
    parser.add_argument("--size", type=int, default=None, help="default: the variant's")
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    if args.size is None:
        from effnet_tf.modeling.scaling import Scaling

        args.size = Scaling.variant(args.variant).resolution
    if args.child:
        kind, *rest = args.child
        if kind == "speed":
            result = speed(args.variant, rest[0], rest[1] == "True", args.batch, args.size,
                           args.rounds, args.steps)
        else:
            result = memory(rest[0], args.variant, args.batch, args.size)
        print(json.dumps(result))
        return

    sizes = ["--variant", args.variant, "--batch", str(args.batch), "--size", str(args.size),
             "--rounds", str(args.rounds), "--steps", str(args.steps)]
    print(f"# {args.variant}, batch {args.batch} at {args.size}px, median of {args.rounds} "
          f"alternating rounds of {args.steps} steps, {os.cpu_count()} CPUs")
    print("| precision | XLA | ours train img/s | keras train img/s | train ratio "
          "| ours infer img/s | keras infer img/s | infer ratio | first step s (ours/keras) |")
    print("|" + "---|" * 9)
    for precision in args.precisions.split(","):
        for jit in (False,) if args.no_xla else (False, True):
            r = child(["speed", precision, str(jit), *sizes])
            if "error" in r:
                print(f"| {precision} | {'on' if jit else 'off'} | {r['error']} |" + " |" * 7)
                continue
            a, b = r["ours"], r["keras"]
            print(f"| {precision} | {'on' if jit else 'off'} | {a['train_ips']:.2f} | "
                  f"{b['train_ips']:.2f} | {a['train_ips'] / b['train_ips']:.2f} | "
                  f"{a['infer_ips']:.1f} | {b['infer_ips']:.1f} | "
                  f"{a['infer_ips'] / b['infer_ips']:.2f} | "
                  f"{a['compile_s']:.0f}/{b['compile_s']:.0f} |", flush=True)
    mem = {impl: child(["memory", impl, *sizes]) for impl in ("ours", "keras")}
    if all("peak_mb" in m for m in mem.values()):
        print(f"\nPeak memory, float32 training, batch {args.batch}: ours "
              f"{mem['ours']['peak_mb']:.0f} MB, keras {mem['keras']['peak_mb']:.0f} MB, "
              f"ratio {mem['ours']['peak_mb'] / mem['keras']['peak_mb']:.2f}")
    else:
        print(f"\nPeak memory: {mem}")


if __name__ == "__main__":
    main()
