"""Top-1 / top-5 accuracy of a logits model on a one-pass dataset."""

from __future__ import annotations

import warnings
import weakref

import keras
from keras import ops

# One compiled twin per evaluated model, kept while the model lives (compiled once per run).
_twins: "weakref.WeakKeyDictionary[keras.Model, keras.Model]" = weakref.WeakKeyDictionary()


class ExampleCount(keras.metrics.Metric):
    """Examples evaluated (their weights summed: padded blanks weigh 0)."""

    def __init__(self, name="images", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is None:
            sample_weight = ops.ones(ops.shape(y_pred)[:1])
        self.total.assign_add(ops.sum(ops.cast(sample_weight, self.dtype)))

    def result(self):
        return self.total


def _compiled_twin(model: keras.Model, num_classes: int) -> keras.Model:
    """A functional model over ``model``'s own layers (same variables), compiled for
    evaluation. The trained model itself is never compiled: ``compile`` would give it a Keras
    optimizer, which every later checkpoint of the model would then hold, and which a resumed
    run would wait to restore from a file the checkpoint rotation has deleted."""
    twin = _twins.get(model)
    if twin is None:
        twin = keras.Model(model.inputs, model.outputs, name=f"{model.name}_eval")
        twin.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[
                keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="xent"),
                keras.metrics.SparseTopKCategoricalAccuracy(1, name="top1"),
                keras.metrics.SparseTopKCategoricalAccuracy(min(5, num_classes), name="top5"),
                ExampleCount()],
            jit_compile=False)
        _twins[model] = twin
    return twin


def evaluate_model(model: keras.Model, dataset, num_classes: int, steps=None) -> dict:
    """``{"loss", "top1", "top5", "images"}`` (top-k with k = min(5, classes); ``images``
    evaluated); ``model`` is unchanged.

    Batches may carry per-example weights, ``(images, labels, weights)``: the padded last
    batch of ``pipelines.build(..., pad_remainder=True)`` (TPU), whose blanks weigh 0. Every
    figure is a weighted mean over examples, so blanks count for nothing (the compiled loss
    is averaged per batch, so the loss reported is the weighted metric's).
    """
    twin = _compiled_twin(model, num_classes)
    with warnings.catch_warnings():  # "ran out of data" is how a one-pass split ends
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        result = twin.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
    return {"loss": result["xent"], "top1": result["top1"], "top5": result["top5"],
            "images": int(round(float(result["images"])))}
