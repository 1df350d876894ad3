"""Train an EfficientNet: ``python -m effnet_tf.train --variant b4 --model_dir runs/b4``.

The recipe comes from ``--config`` (default: the paper's ImageNet recipe, effnet_tf/config.py;
a shipped recipe by name, ``--config tpu``, or a recipe file by path), overridden by ``--config.<field>=value`` and the shorthand flags.
``--helpfull`` lists them all. Re-running the command with the same --model_dir resumes.
"""

from absl import app, flags

from effnet_tf import flags as effnet_flags

effnet_flags.define_flags()
flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # TensorFlow is imported after flag parsing
    from effnet_tf.trainer import NonFiniteLossError, train_and_evaluate

    try:
        train_and_evaluate(effnet_flags.resolved_config(), flags.FLAGS.model_dir)
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    except NonFiniteLossError as e:
        effnet_flags.fail(str(e), code=1)


if __name__ == "__main__":
    app.run(main, flags_parser=effnet_flags.parse_flags)
