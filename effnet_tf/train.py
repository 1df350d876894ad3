"""Train an EfficientNet: ``python -m effnet_tf.train --variant b4 --model_dir runs/b4``.

The recipe comes from ``--config`` (default: the paper's ImageNet recipe, effnet_tf/config.py;
others in configs/), overridden by ``--config.<field>=value`` and the shorthand flags.
``--helpfull`` lists them all. Re-running the command with the same --model_dir resumes.
"""

from absl import app, flags

from effnet_tf import flags as effnet_flags

effnet_flags.define_flags()
flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from effnet_tf.trainer import train_and_evaluate  # imports TensorFlow after flag parsing

    try:
        train_and_evaluate(effnet_flags.resolved_config(), flags.FLAGS.model_dir)
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(str(e)) from None


if __name__ == "__main__":
    app.run(main)
