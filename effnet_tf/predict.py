"""Top-k classes of images with a trained run.

    python -m effnet_tf.predict --model_dir runs/flowers photo1.jpg photo2.png --top_k 3

A file that does not decode as an image is named in a warning and the others are still
predicted; the exit code is then 1.
"""

from __future__ import annotations

import os
import re

from absl import app, flags

from effnet_tf import flags as effnet_flags


def check_args(model_dir: str, paths: list[str], top_k) -> None:
    """The arguments' mistakes, before TensorFlow is imported."""
    effnet_flags.check_model_dir(model_dir)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"--top_k must be an integer >= 1, got {top_k!r}")
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"image file(s) not found: {', '.join(missing)}")


def predict_files(model_dir: str, paths: list[str], top_k: int = 5,
                  on_error=None) -> list[list[tuple] | None]:
    """For each image file: ``[(class_name, probability), ...]``, most likely first.

    A file that does not decode gives ``None`` and ``on_error(path, reason)`` is called;
    without ``on_error`` it raises ValueError naming the file.
    """
    check_args(model_dir, paths, top_k)
    import numpy as np
    import tensorflow as tf

    from effnet_tf.training.restore import load_trained
    from pipelines import make_eval_preprocess

    trained = load_trained(model_dir)
    preprocess = make_eval_preprocess(trained.image_size)
    images = {}
    for path in paths:
        try:
            images[path] = preprocess(tf.io.read_file(path))
        except tf.errors.InvalidArgumentError as e:
            reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message).strip()
            if on_error is None:
                raise ValueError(f"{path}: not an image that decodes ({reason})") from None
            on_error(path, reason)
    if not images:
        return [None] * len(paths)
    logits = trained.model(tf.stack(list(images.values())), training=False)
    probs = dict(zip(images, tf.nn.softmax(tf.cast(logits, tf.float32)).numpy()))
    names = trained.class_names or [str(i) for i in range(logits.shape[1])]
    k = min(top_k, logits.shape[1])
    return [[(names[i], float(probs[p][i])) for i in np.argsort(-probs[p])[:k]]
            if p in probs else None for p in paths]


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
