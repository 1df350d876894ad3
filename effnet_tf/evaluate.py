"""Top-1/top-5 of a trained run on a split, with its averaged weights when it has them.

    python -m effnet_tf.evaluate --model_dir runs/b0 [--split validation] [--steps 100]
"""

from absl import app, flags


def evaluate_run(model_dir: str, split=None, steps=None, batch_size=64, use_ema=True) -> dict:
    from effnet_tf.data import DataSpec
    from effnet_tf.evaluation import evaluate_model
    from effnet_tf.restore import load_trained

    trained = load_trained(model_dir, use_ema)
    config = trained.config
    data = DataSpec.from_config(config, trained.image_size, model_dir)
    dataset = data.dataset(split or config.eval_split, False, batch_size)
    result = evaluate_model(trained.model, dataset, data.num_classes, steps)
    result.update(step=trained.step, ema=trained.averaged)
    return result


def main(argv):
    del argv
    try:
        result = evaluate_run(flags.FLAGS.model_dir, flags.FLAGS.split, flags.FLAGS.steps,
                              flags.FLAGS.batch_size, flags.FLAGS.ema)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
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
    app.run(main)
