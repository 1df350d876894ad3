"""Train an EfficientNet: ``python -m effnet_tf.train --variant b4 --model_dir runs/b4``.

The recipe comes from ``--config`` (default: the paper's ImageNet recipe,
effnet_tf/training/config.py; a shipped recipe by name, ``--config tpu``, or a recipe file by
path), overridden by
``--config.<field>=value`` and the shorthand flags. ``--helpfull`` lists them all.
Re-running the command with the same --model_dir resumes. The flags and the config are
checked before TensorFlow is imported: a mistake is one line, at once.
"""

from absl import app, flags

from effnet_tf import flags as effnet_flags
from effnet_tf.training.config import validate

effnet_flags.define_flags()
flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    try:  # the config is checked before TensorFlow is imported (seconds)
        config = effnet_flags.resolved_config()
        validate(config)
    except ValueError as e:
        effnet_flags.fail(str(e))
    effnet_flags.use_backend(config.backend)  # before Keras loads
    try:
        effnet_flags.check_train_model_dir(flags.FLAGS.model_dir, config)
        if config.data_service:  # a dispatcher that is not there: said before TensorFlow
            from pipelines.service import check_reachable
            check_reachable(config.data_service)
    except ValueError as e:
        effnet_flags.fail(str(e))
    from effnet_tf.training.trainer import (CheckpointWriteError, Interrupted, NonFiniteLossError,
                                   train_and_evaluate)

    try:
        train_and_evaluate(config, flags.FLAGS.model_dir)
        effnet_flags.exit_now(0)  # everything is written: no teardown of TensorFlow
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    except (NonFiniteLossError, CheckpointWriteError) as e:
        effnet_flags.fail(str(e), code=1)
    except Interrupted as e:  # SIGTERM / SIGINT: the usual exit codes 128 + signal
        print(str(e)[0].upper() + str(e)[1:], flush=True)
        raise SystemExit(143 if e.signal_name == "SIGTERM" else 130) from None


if __name__ == "__main__":
    app.run(main, flags_parser=effnet_flags.parse_flags)
