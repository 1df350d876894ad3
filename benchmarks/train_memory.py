"""Peak training memory and step time: our EfficientNet with ``remat`` off/on against
keras.applications at the same batch.

    python benchmarks/train_memory.py                       # b0, b2; float32, mixed_bfloat16
    python benchmarks/train_memory.py --variants b0 --policies float32 --steps 2
    python benchmarks/train_memory.py --variants b0 --policies float32 --budget_gb 4
    python benchmarks/train_memory.py --variants b0 --policies float32 --xla --steps 1

Every configuration is its own process (this script run with ``--child``): it builds the model,
compiles it (RMSProp, sparse cross-entropy) and fits ``--steps`` + 1 steps on one random
in-memory batch at the variant's resolution. Memory is the process's resident-set high-water
mark (``getrusage(RUSAGE_SELF).ru_maxrss``): "peak" is the whole process (TensorFlow, the
model, the batch, the training step); "baseline" is the same mark before the first step
(imports, model, optimizer, data), so "peak - baseline" is what training adds (activations,
gradients, optimizer slots, and the traced training graph); "tensor peak" is TensorFlow's
allocator's own high-water mark (``tf.config.experimental.get_memory_info("CPU:0")``): what
the tensors needed at most, without the graph or the allocator's pooled free memory. Step
time is the median of the steps after the first (which traces). ``--budget_gb``: for each
row, the largest batch whose peak stays within the budget (doubling, then bisection to
``--budget_resolution`` images; one step per probe).

The last line is the goal of issue 13: peak ratio of ``remat="all"`` to keras.applications for
the first variant and policy at ``--batch_size`` (32 by default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = ("keras.applications", "remat=False", "remat=high_res", "remat=all")
HEADLINE = "remat=all"


def child(spec: dict) -> dict:
    """Builds and trains one configuration in this process; returns its measurements."""
    import resource

    import keras

    from effnet_tf.modeling.scaling import Scaling
    from effnet_tf.training.data import random_batches

    keras.mixed_precision.set_dtype_policy(spec["policy"])
    variant, kind = spec["variant"], spec["model"]
    size = spec.get("image_size") or Scaling.variant(variant).resolution
    if kind == "keras.applications":
        model = getattr(keras.applications, f"EfficientNet{variant.upper()}")(
            weights=None, input_shape=(size, size, 3))
    elif kind == "keras.RematScope":
        with keras.RematScope(mode="full"):
            model = getattr(keras.applications, f"EfficientNet{variant.upper()}")(
                weights=None, input_shape=(size, size, 3))
    else:
        import effnet_tf

        remat = kind.split("=", 1)[1]
        model = effnet_tf.EfficientNet(variant, input_shape=(size, size, 3),
                                       remat=False if remat == "False" else remat)
    model.compile(optimizer=keras.optimizers.RMSprop(0.001, rho=0.9, momentum=0.9,
                                                     epsilon=1e-3),
                  loss="sparse_categorical_crossentropy", jit_compile=spec["xla"])
    data = random_batches(spec["batch"], size, 1000)
    from step_clock import StepClock  # benchmarks/ is sys.path[0]

    clock = StepClock()
    times = clock.times

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model.fit(data, steps_per_epoch=spec["steps"] + 1, epochs=1, verbose=0, callbacks=[clock])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    import tensorflow as tf

    # TensorFlow's own allocator: the most its tensors held at once (documented for GPUs; the
    # CPU allocator reports it too). RSS adds what no tensor holds: the traced and optimized
    # training graph, and the pool's free pages, which are never given back to the system.
    try:
        tensors = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**20
    except ValueError:  # no statistics (TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's plain allocator)
        tensors = None
    return {"baseline_mb": baseline, "peak_mb": peak, "tensor_peak_mb": tensors,
            "step_s": statistics.median(times[1:]) if len(times) > 1 else None}


def measure(spec: dict) -> dict:
    """Runs ``child(spec)`` in a fresh process (so each high-water mark is its own)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"configuration {spec} failed:\n{proc.stderr[-3000:]}")


def largest_batch(spec: dict, budget_mb: float, resolution: int) -> int:
    """The largest batch whose one-step peak stays within ``budget_mb`` (0 if none)."""
    def fits(batch):
        return measure({**spec, "batch": batch, "steps": 0})["peak_mb"] <= budget_mb

    low, high = 0, resolution
    while fits(high):
        low, high = high, high * 2
    while high - low > resolution:
        middle = (low + high) // 2 // resolution * resolution or resolution
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def table(rows: list[dict]) -> str:
    lines = ["| variant | policy | model | batch | peak MB | peak - baseline MB | step s | "
             "peak vs keras.applications | (peak - baseline) vs | tensor peak MB | "
             "tensor peak vs | step vs | largest batch |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        ref = next(r for r in rows if r["variant"] == row["variant"]
                   and r["policy"] == row["policy"] and r["model"] == "keras.applications")
        train, ref_train = (r["peak_mb"] - r["baseline_mb"] for r in (row, ref))
        step = row["step_s"]
        tensors, ref_tensors = row["tensor_peak_mb"], ref["tensor_peak_mb"]
        tensor_cells = (f"{tensors:.0f} | {tensors / ref_tensors:.2f}" if tensors and ref_tensors
                        else "- | -")  # no statistics from this allocator
        lines.append(
            f"| {row['variant']} | {row['policy']} | {row['model']} | {row['batch']} | "
            f"{row['peak_mb']:.0f} | {train:.0f} | "
            f"{step:.2f} | {row['peak_mb'] / ref['peak_mb']:.2f} | {train / ref_train:.2f} | "
            f"{tensor_cells} | "
            f"{step / ref['step_s']:.2f} | {row.get('largest_batch', '')} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="b0,b2")
    parser.add_argument("--policies", default="float32,mixed_bfloat16")
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"from {MODELS + ('keras.RematScope',)}")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--image_size", type=int, default=None,
                        help="default: each variant's resolution")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    parser.add_argument("--xla", action="store_true", help="jit_compile=True (slow on CPU)")
    parser.add_argument("--budget_gb", type=float, default=None)
    parser.add_argument("--budget_resolution", type=int, default=8)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))))
        return
    models = args.models.split(",")
    if "keras.applications" not in models:
        raise ValueError(f"--models must include keras.applications (the reference), "
                         f"got {args.models!r}")
    rows = []
    for variant in args.variants.split(","):
        for policy in args.policies.split(","):
            for model in models:
                spec = {"variant": variant, "policy": policy, "model": model,
                        "batch": args.batch_size, "steps": args.steps, "xla": args.xla,
                        "image_size": args.image_size}
                row = {**spec, **measure(spec)}
                if args.budget_gb:
                    row["largest_batch"] = largest_batch(spec, args.budget_gb * 1024,
                                                         args.budget_resolution)
                rows.append(row)
                print(json.dumps(row), flush=True)
    print(table(rows))
    first = [r for r in rows if r["variant"] == rows[0]["variant"]
             and r["policy"] == rows[0]["policy"]]
    ours = next((r for r in first if r["model"] == HEADLINE), None)
    if ours is not None:
        ratio = ours["peak_mb"] / next(r for r in first
                                       if r["model"] == "keras.applications")["peak_mb"]
        print(f"remat/keras.applications peak memory ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
