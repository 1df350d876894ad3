"""Top-1 / top-5 accuracy of a logits model on a one-pass dataset."""

from __future__ import annotations

import warnings

import keras


def evaluate_model(model: keras.Model, dataset, num_classes: int, steps=None) -> dict:
    """``{"loss", "top1", "top5"}`` (top-k with k = min(5, classes)).

    Batches may carry per-example weights, ``(images, labels, weights)``: the padded last
    batch of ``pipelines.build(..., pad_remainder=True)`` (TPU), whose blanks weigh 0. Every
    figure is a weighted mean over examples, so blanks count for nothing (the compiled loss
    is averaged per batch, so the loss reported is the weighted metric's).
    """
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[
            keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent"),
            keras.metrics.SparseTopKCategoricalAccuracy(1, name="top1"),
            keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5")],
        jit_compile=False)
    with warnings.catch_warnings():  # "ran out of data" is how a one-pass split ends
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        result = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return {"loss": result["xent"], "top1": result["top1"], "top5": result["top5"]}
