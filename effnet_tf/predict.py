"""Top-k classes of images with a trained run.

    python -m effnet_tf.predict --model_dir runs/flowers photo1.jpg photo2.png --top_k 3
"""

from __future__ import annotations

from absl import app, flags


def predict_files(model_dir: str, paths: list[str], top_k: int = 5) -> list[list[tuple]]:
    """For each image file: ``[(class_name, probability), ...]``, most likely first."""
    import os

    import numpy as np
    import tensorflow as tf

    from effnet_tf.restore import load_trained
    from pipelines import make_eval_preprocess

    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"image file(s) not found: {', '.join(missing)}")
    trained = load_trained(model_dir)
    preprocess = make_eval_preprocess(trained.image_size)
    images = tf.stack([preprocess(tf.io.read_file(p)) for p in paths])
    probs = tf.nn.softmax(tf.cast(trained.model(images, training=False), tf.float32)).numpy()
    names = trained.class_names or [str(i) for i in range(probs.shape[1])]
    k = min(top_k, probs.shape[1])
    return [[(names[i], float(row[i])) for i in np.argsort(-row)[:k]] for row in probs]


def main(argv):
    paths = argv[1:]
    if not paths:
        raise app.UsageError("give one or more image files")
    try:
        results = predict_files(flags.FLAGS.model_dir, paths, flags.FLAGS.top_k)
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    for path, result in zip(paths, results):
        print(path + ": " + ", ".join(f"{name} {p:.3f}" for name, p in result))


def define_flags():
    flags.DEFINE_string("model_dir", None, "Run directory written by effnet_tf.train.")
    flags.DEFINE_integer("top_k", 5, "Classes to print per image.")
    flags.mark_flag_as_required("model_dir")


if __name__ == "__main__":
    define_flags()
    app.run(main)
