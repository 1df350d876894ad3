"""Training speed under TensorFlow and under JAX, and the JAX trainer against a bare jitted
step of the same model.

    python benchmarks/backend_speed.py                       # tiny and b0 at 224, ~4 min here
    python benchmarks/backend_speed.py --variants tiny --steps 8
    python benchmarks/backend_speed.py --bare-only --variants b0,b4 --precisions bfloat16,float32
                                       # JAX only (no TensorFlow needed): an accelerator machine

Table 1: ``python -m effnet_tf.train --backend tensorflow|jax`` (the official recipe:
RMSProp, EMA, weight decay, label smoothing, stochastic depth, checkpoints) on random
in-memory data (``--dataset random``), one process each: steady-state images/s (the first
call, which traces and compiles, left out), that first call's seconds, peak resident memory.
Table 2: the JAX trainer against a bare step: ``jax.jit`` of the Keras model's
``stateless_call``, the loss and ``optimizer.stateless_apply`` (the way Keras documents a
custom JAX loop) on one NumPy batch, with the same model, optimizer and batch; the trainer's
own cost is the ratio (goal >= 0.95). ``tiny`` is width/depth 0.25 at 64 px.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from train_speed import measured  # benchmarks/ is sys.path[0]

TINY = ["--config.width_coefficient=0.25", "--config.depth_coefficient=0.25", "--image_size=64"]


def _scaling_args(variant: str) -> list[str]:
    return ["--variant=b0", *TINY] if variant == "tiny" else [f"--variant={variant}"]


def _scaling(variant: str):
    from effnet_tf.modeling.scaling import Scaling

    if variant == "tiny":
        return Scaling.variant("b0").replace(width_coefficient=0.25, depth_coefficient=0.25,
                                             resolution=64)
    return Scaling.variant(variant)


def bare_step(variant: str, batch: int, steps: int, precision: str) -> None:
    """The reference: a jitted Keras-on-JAX step, nothing around it (no TensorFlow)."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    from effnet_tf.modeling.efficientnet import EfficientNet
    from effnet_tf.training.optimizers import RMSpropTF

    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    scaling = _scaling(variant)
    model = EfficientNet(scaling, classes=1000, classifier_activation=None,
                         drop_connect_rate=0.2, dtype_policy=policy)
    optimizer = RMSpropTF(0.016)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = jax.device_put(rng.uniform(0, 255, (batch, scaling.resolution, scaling.resolution,
                                                 3)).astype("float32"))
    labels = jax.device_put(rng.integers(0, 1000, batch))

    def step(state, images, labels):
        trainable, non_trainable, opt = state

        def loss_fn(trainable, non_trainable):
            logits, non_trainable = model.stateless_call(trainable, non_trainable, images,
                                                         training=True)
            loss = keras.losses.sparse_categorical_crossentropy(
                labels, keras.ops.cast(logits, "float32"), from_logits=True)
            return keras.ops.mean(loss), non_trainable

        (loss, non_trainable), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            trainable, non_trainable)
        trainable, opt = optimizer.stateless_apply(opt, grads, trainable)
        return (trainable, non_trainable, opt), loss

    compiled = jax.jit(step, donate_argnums=0)
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    started = time.perf_counter()
    state, loss = compiled(state, images, labels)
    float(loss)
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        state, loss = compiled(state, images, labels)
    float(loss)
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"images_per_second": batch * steps / seconds,
                                  "first_call_seconds": first,
                                  "device": str(jax.devices()[0].device_kind)}), flush=True)


def trainer(backend: str, variant: str, batch: int, steps: int, precision: str) -> dict:
    with tempfile.TemporaryDirectory() as model_dir:
        result = measured(["-m", "effnet_tf.train", f"--backend={backend}",
                       f"--model_dir={model_dir}", *_scaling_args(variant), "--dataset=random",
                       f"--batch_size={batch}", "--epochs=1",
                       f"--config.steps_per_epoch={steps + 1}", "--config.eval_steps=1",
                       f"--config.mixed_precision="
                       f"{'mixed_bfloat16' if precision == 'bfloat16' else 'float32'}",
                       f"--config.log_every_steps={steps + 1}"])
        summary = os.path.join(model_dir, "summary.json")
        if os.path.exists(summary):
            result.update(json.load(open(summary)))
    return result


def _cell(result: dict, key: str, fmt: str = "{:.1f}") -> str:
    return fmt.format(result[key]) if key in result else result.get("error", "-")


def _ratio(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.2f}" if key in a and key in b else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bare", nargs=4, metavar=("VARIANT", "BATCH", "STEPS", "PRECISION"))
    parser.add_argument("--variants", default="tiny,b0")
    parser.add_argument("--precisions", default="float32")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--bare-only", action="store_true", help="JAX's bare step only")
    args = parser.parse_args()
    if args.bare:
        variant, batch, steps, precision = args.bare
        bare_step(variant, int(batch), int(steps), precision)
        return
    print(f"# batch {args.batch}, {args.steps} timed steps, {os.cpu_count()} CPUs, random "
          "in-memory data, one process each")
    rows = []
    for variant in args.variants.split(","):
        for precision in args.precisions.split(","):
            bare = measured([__file__, "--bare", variant, str(args.batch), str(args.steps),
                         precision])
            tf_run = jax_run = {}
            if not args.bare_only:
                tf_run = trainer("tensorflow", variant, args.batch, args.steps, precision)
                jax_run = trainer("jax", variant, args.batch, args.steps, precision)
            rows.append((variant, precision, tf_run, jax_run, bare))
    if not args.bare_only:
        print("\n| variant | precision | TF img/s | JAX img/s | JAX / TF | TF first call s "
              "| JAX first call s | TF peak MB | JAX peak MB |")
        print("|" + "---|" * 9)
        for variant, precision, t, j, _ in rows:
            print(f"| {variant} | {precision} | {_cell(t, 'images_per_second')} | "
                  f"{_cell(j, 'images_per_second')} | {_ratio(j, t, 'images_per_second')} | "
                  f"{_cell(t, 'first_call_seconds')} | {_cell(j, 'first_call_seconds')} | "
                  f"{_cell(t, 'peak_mb', '{:.0f}')} | {_cell(j, 'peak_mb', '{:.0f}')} |")
    print("\n| variant | precision | device | JAX trainer img/s | bare jitted step img/s "
          "| trainer / bare | bare first call s | bare peak MB |")
    print("|" + "---|" * 8)
    for variant, precision, _, j, b in rows:
        print(f"| {variant} | {precision} | {b.get('device', '-')} | "
              f"{_cell(j, 'images_per_second')} | {_cell(b, 'images_per_second')} | "
              f"{_ratio(j, b, 'images_per_second')} | {_cell(b, 'first_call_seconds')} | "
              f"{_cell(b, 'peak_mb', '{:.0f}')} |", flush=True)


if __name__ == "__main__":
    main()
