"""Top-1/top-5 of a trained run on a split, with its averaged weights when it has them.

    python -m effnet_tf.evaluate --model_dir runs/b0 [--split validation] [--steps 100]

Prints the figures with ``images`` (evaluated) and ``skipped`` (images of the split that did
not decode, left out of top-1). The work is ``effnet_tf.training.evaluation.evaluate_run``.
"""

from absl import app, flags

from effnet_tf import flags as effnet_flags


def check_args(model_dir: str, steps, batch_size) -> None:
    """The arguments' mistakes, before TensorFlow is imported."""
    effnet_flags.check_model_dir(model_dir)
    if steps is not None and steps < 1:
        raise ValueError(f"--steps must be >= 1 (or unset: the whole split), got {steps}")
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    f = flags.FLAGS
    try:
        check_args(f.model_dir, f.steps, f.batch_size)
        from effnet_tf.training.evaluation import evaluate_run

        result = evaluate_run(f.model_dir, f.split, f.steps, f.batch_size, f.ema)
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in result.items()))


def define_flags():
    flags.DEFINE_string("model_dir", None, "Run directory written by effnet_tf.train.")
    flags.DEFINE_string("split", None, "Split to evaluate (default: the run's eval_split).")
    flags.DEFINE_integer("steps", None, "Batches to evaluate (default: the whole split).")
    flags.DEFINE_integer("batch_size", 64, "Batch size.")
    flags.DEFINE_bool("ema", True, "Use the exponential moving average of the weights.")
    flags.mark_flag_as_required("model_dir")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
