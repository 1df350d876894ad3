"""Top-1 / top-5 accuracy of a logits model on a one-pass dataset."""

from __future__ import annotations

import warnings

import keras


def evaluate_model(model: keras.Model, dataset, num_classes: int, steps=None) -> dict:
    """``{"loss", "top1", "top5"}`` (top-k with k = min(5, classes))."""
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseTopKCategoricalAccuracy(1, name="top1"),
                 keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5")],
        jit_compile=False)
    with warnings.catch_warnings():  # "ran out of data" is how a one-pass split ends
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        return model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
