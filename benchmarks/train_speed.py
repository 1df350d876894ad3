"""The whole training command against a plain ``model.fit`` loop on keras.applications.

    python benchmarks/train_speed.py                  # b0, XLA off and on (~15 min, 2 cores)
    python benchmarks/train_speed.py --variants b0,b1 --no-xla --steps 8 --repeats 4
    python benchmarks/train_speed.py --variants b0 --xla-only --steps 3

Both train on the same random in-memory batch (``--dataset random``), same batch size and
resolution: ours is ``python -m effnet_tf.train`` with the official recipe (RMSProp, EMA,
weight decay, label smoothing, stochastic depth, checkpoints); theirs is
``keras.applications.EfficientNetB0(weights=None)`` compiled with RMSProp and fit. Images/s
are steady-state (the first step, which traces and compiles, is left out); peak memory is
each process's maximum resident set; page faults are each process's minor faults in thousands
(fresh pages mapped and zeroed; a step that faults its buffers in anew each time is slow:
BUILD.md). Every run is its own process; ours and theirs alternate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plain_fit(variant: str, batch: int, steps: int, jit: bool) -> None:
    """The reference: what a user writes with keras.applications and fit."""
    import keras

    from effnet_tf.modeling.scaling import Scaling
    from effnet_tf.training.data import random_batches

    size = Scaling.variant(variant).resolution
    model = getattr(keras.applications, f"EfficientNet{variant.upper()}")(weights=None)
    model.compile(optimizer=keras.optimizers.RMSprop(0.001, rho=0.9, momentum=0.9,
                                                     epsilon=1e-3),
                  loss="sparse_categorical_crossentropy", jit_compile=jit)
    from step_clock import StepClock  # benchmarks/ is sys.path[0]

    clock = StepClock()
    times = clock.times

    model.fit(random_batches(batch, size, 1000), steps_per_epoch=steps + 1, epochs=1,
              verbose=0, callbacks=[clock])
    print("RESULT " + json.dumps({"images_per_second": batch * steps / sum(times[1:])}))


def measured(args: list[str], env: dict | None = None) -> dict:
    """Runs ``python args`` in a new process: its RESULT lines, and its peak resident memory
    and minor page faults as the kernel counted them (``os.wait4``: right also for a process
    that ends with ``os._exit``, as the train command does once it is done)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out, stderr=err,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {})))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    result = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            result.update(json.loads(line[len("RESULT "):]))
    result.update(peak_mb=usage.ru_maxrss / 1024, page_faults=usage.ru_minflt)
    if proc.returncode != 0:
        result["error"] = (stderr.strip().splitlines() or ["?"])[-1][:80]
    return result


def ours(variant: str, batch: int, steps: int, jit: bool) -> dict:
    with tempfile.TemporaryDirectory() as model_dir:
        result = measured(["-m", "effnet_tf.train", f"--model_dir={model_dir}",
                      f"--variant={variant}", "--dataset=random", f"--batch_size={batch}",
                      "--epochs=1", f"--config.steps_per_epoch={steps + 1}",
                      "--config.eval_steps=1", "--strategy=cpu",
                      f"--jit_compile={'true' if jit else 'false'}"])
        summary = os.path.join(model_dir, "summary.json")
        if os.path.exists(summary):
            result.update(json.load(open(summary)))
    return result


def _median(runs: list[dict]) -> dict:
    import statistics

    good = [r for r in runs if "images_per_second" in r]
    if not good:
        return runs[0]
    return {k: statistics.median(r[k] for r in good)
            for k in ("images_per_second", "peak_mb", "page_faults") if k in good[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--plain", nargs=4, metavar=("VARIANT", "BATCH", "STEPS", "JIT"))
    parser.add_argument("--variants", default="b0")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument("--xla-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="alternating runs of each; the table shows medians")
    args = parser.parse_args()
    if args.plain:
        variant, batch, steps, jit = args.plain
        plain_fit(variant, int(batch), int(steps), jit == "True")
        return

    print(f"# batch {args.batch}, {args.steps} timed steps, {os.cpu_count()} CPUs, "
          "random in-memory data")
    print("| variant | XLA | effnet_tf.train img/s | plain fit img/s | speed ratio "
          "| ours peak MB | plain peak MB | memory ratio | ours page faults (k) "
          "| plain page faults (k) |")
    print("|" + "---|" * 10)
    for variant in args.variants.split(","):
        for jit in (False,) if args.no_xla else (True,) if args.xla_only else (False, True):
            runs_a, runs_b = [], []
            for _ in range(args.repeats):
                runs_a.append(ours(variant, args.batch, args.steps, jit))
                runs_b.append(measured([__file__, "--plain", variant, str(args.batch),
                                        str(args.steps), str(jit)]))
            a, b = _median(runs_a), _median(runs_b)
            cell = lambda d, k: f"{d[k]:.1f}" if k in d else d.get("error", "-")  # noqa
            ratio = lambda k: f"{a[k] / b[k]:.2f}" if k in a and k in b else "-"  # noqa
            print(f"| {variant} | {'on' if jit else 'off'} | {cell(a, 'images_per_second')} | "
                  f"{cell(b, 'images_per_second')} | {ratio('images_per_second')} | "
                  f"{cell(a, 'peak_mb')} | {cell(b, 'peak_mb')} | {ratio('peak_mb')} | "
                  f"{a.get('page_faults', 0) / 1000:.0f} | {b.get('page_faults', 0) / 1000:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
