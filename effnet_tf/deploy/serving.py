"""What a served model is: the logits model with a softmax on top, its top-k classes for
image files, and its SavedModel signatures (float pixels in [0, 255], and encoded images
prepared by the run's own ``EvalPreprocess``, the one its evaluation uses: same crop, same
resize).

Keras and TensorFlow are imported inside the functions: ``python -m effnet_tf.export`` and
``predict`` check their arguments before TensorFlow loads.
"""

from __future__ import annotations

import os
import re


def with_softmax(model):
    """The logits model with a float32 softmax on top (what serving callers want)."""
    import keras

    outputs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(
        model.output)
    return keras.Model(model.input, outputs, name=model.name)


def export_saved_model(model, path: str, eval_preprocess) -> None:
    """SavedModel with a pixel signature and an encoded-image signature; ``eval_preprocess``
    (a ``pipelines.EvalPreprocess``) prepares the encoded images, as in evaluation."""
    import keras
    import tensorflow as tf

    size = eval_preprocess.image_size
    prepare = eval_preprocess.fn()

    def from_bytes(encoded):
        images = tf.map_fn(prepare, encoded, fn_output_signature=tf.float32)
        return model(images, training=False)

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    archive.add_endpoint("serve_image_bytes", from_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string)])
    # no gradient functions: a served model is not differentiated, and tracing them for
    # every custom-gradient op was a fifth of the export's time
    archive.write_out(path, options=tf.saved_model.SaveOptions(
        experimental_custom_gradients=False), verbose=False)


def check_predict_args(paths: list[str], top_k) -> None:
    """The arguments' mistakes, before TensorFlow is imported."""
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
    check_predict_args(paths, top_k)
    import numpy as np
    import tensorflow as tf

    from effnet_tf.training.restore import load_trained

    trained = load_trained(model_dir)
    preprocess = trained.spec.eval_preprocess().fn()
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
