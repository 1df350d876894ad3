"""Our B0 against keras.applications.EfficientNetB0: training steps/s, inference images/s and
peak memory, on the same random data, batch and resolution, in one run.

    python benchmarks/model_speed.py                       # the full table (~20 min on 2 cores)
    python benchmarks/model_speed.py --steps 3 --no-xla    # quick look

Each configuration runs in its own subprocess (so peak RSS is its own and the dtype policy is
clean); ours and keras' alternate so that drift on a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def measure(impl: str, precision: str, jit: bool, batch: int, size: int, steps: int) -> dict:
    import keras
    import numpy as np

    keras.mixed_precision.set_dtype_policy(precision)
    if impl == "ours":
        import effnet_tf

        model = effnet_tf.EfficientNet("b0", input_shape=(size, size, 3))
    else:
        model = keras.applications.EfficientNetB0(weights=None, input_shape=(size, size, 3))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y = rng.integers(0, 1000, (batch,))

    start = time.perf_counter()
    model.train_on_batch(x, y)  # trace (and XLA compile)
    compile_s = time.perf_counter() - start
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    train_steps_s = steps / (time.perf_counter() - start)

    model.predict_on_batch(x)
    model.predict_on_batch(x)
    start = time.perf_counter()
    for _ in range(steps):
        model.predict_on_batch(x)
    infer_ips = steps * batch / (time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"train_steps_s": train_steps_s, "train_ips": train_steps_s * batch,
            "infer_ips": infer_ips, "peak_mb": peak_mb, "compile_s": compile_s}


def run_worker(args, impl, precision, jit) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--precision", precision,
           "--batch", str(args.batch), "--size", str(args.size), "--steps", str(args.steps)]
    if jit:
        cmd.append("--jit")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def ratio(a: dict, b: dict, key: str) -> str:
    if key not in a or key not in b:
        return "-"
    return f"{a[key] / b[key]:.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", choices=["ours", "keras"])
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--jit", action="store_true")
    parser.add_argument("--no-xla", action="store_true", help="skip jit_compile=True")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.precision, args.jit, args.batch, args.size,
                                 args.steps)))
        return

    print(f"# b0, batch {args.batch} at {args.size}px, {args.steps} timed steps, "
          f"{os.cpu_count()} CPUs")
    print("| precision | XLA | ours train img/s | keras train img/s | train ratio "
          "| ours infer img/s | keras infer img/s | infer ratio | ours peak MB "
          "| keras peak MB | memory ratio | compile s (ours/keras) |")
    print("|" + "---|" * 12)
    for precision in ("float32", "mixed_bfloat16"):
        for jit in (False,) if args.no_xla else (False, True):
            ours = run_worker(args, "ours", precision, jit)
            theirs = run_worker(args, "keras", precision, jit)
            cell = lambda d, k: f"{d[k]:.1f}" if k in d else d.get("error", "-")  # noqa
            print(f"| {precision} | {'on' if jit else 'off'} | {cell(ours, 'train_ips')} | "
                  f"{cell(theirs, 'train_ips')} | {ratio(ours, theirs, 'train_ips')} | "
                  f"{cell(ours, 'infer_ips')} | {cell(theirs, 'infer_ips')} | "
                  f"{ratio(ours, theirs, 'infer_ips')} | {cell(ours, 'peak_mb')} | "
                  f"{cell(theirs, 'peak_mb')} | {ratio(ours, theirs, 'peak_mb')} | "
                  f"{cell(ours, 'compile_s')}/{cell(theirs, 'compile_s')} |", flush=True)


if __name__ == "__main__":
    main()
