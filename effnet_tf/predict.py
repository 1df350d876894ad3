"""Top-k classes of images with a trained run.

    python -m effnet_tf.predict --model_dir runs/flowers photo1.jpg photo2.png --top_k 3

A file that does not decode as an image is named in a warning and the others are still
predicted; the exit code is then 1. The work is ``effnet_tf.deploy.serving.predict_files``.
"""

from __future__ import annotations

from absl import app, flags

from effnet_tf import flags as effnet_flags

effnet_flags.tensorflow_backend("predict")  # before Keras loads
from effnet_tf.deploy.serving import predict_files  # noqa: E402


def main(argv):
    paths = argv[1:]
    if not paths:
        effnet_flags.fail("give one or more image files: python -m effnet_tf.predict "
                          "--model_dir=DIR photo.jpg ...")
    failed = []

    def skip(path, reason):
        failed.append(path)
        effnet_flags.warn(f"{path} is not an image that decodes, skipped ({reason})")

    try:
        effnet_flags.check_model_dir(flags.FLAGS.model_dir)
        results = predict_files(flags.FLAGS.model_dir, paths, flags.FLAGS.top_k, on_error=skip)
    except ValueError as e:
        effnet_flags.fail(str(e))
    for path, result in zip(paths, results):
        if result is not None:
            print(path + ": " + ", ".join(f"{name} {p:.3f}" for name, p in result))
    if failed:
        effnet_flags.fail(f"{len(failed)} of {len(paths)} files could not be predicted: "
                          f"{', '.join(failed)}", code=1)


def define_flags():
    flags.DEFINE_string("model_dir", None, "Run directory written by effnet_tf.train.")
    flags.DEFINE_integer("top_k", 5, "Classes to print per image (at most the run's classes).")
    flags.mark_flag_as_required("model_dir")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
