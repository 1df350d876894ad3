"""Top-1 / top-5 accuracy of a logits model on a one-pass dataset, and of a trained run.

A loop of its own rather than ``Model.evaluate``: ``evaluate`` needs ``compile``, which gives
the model a Keras optimizer that every later checkpoint would then hold (and a resumed run
would wait to restore from a file the checkpoint rotation has deleted); and under a strategy
its data adapter starts reading the dataset once more before the real pass, so each
undecodable image of a small split was reported and counted twice.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np
import tensorflow as tf

from effnet_tf.training.data import RunData
from effnet_tf.training.restore import load_trained

# One compiled evaluation step per model (and top-k), kept while the model lives.
_steps: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _sums_fn(model, k: int):
    """``batch -> [sum of loss, top-1 hits, top-k hits, examples]``, weighted by the
    batch's example weights when it has them (padded blanks weigh 0)."""
    cached = _steps.get(model)
    if cached is not None and cached[0] == k:
        return cached[1]

    @tf.function
    def sums(batch):
        images, labels = batch[0], tf.cast(batch[1], tf.int32)
        weights = tf.cast(batch[2], tf.float32) if len(batch) > 2 else tf.ones_like(
            labels, tf.float32)
        logits = tf.cast(model(images, training=False), tf.float32)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits)
        top1 = tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32)
        topk = tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)
        return tf.stack([tf.reduce_sum(weights * loss), tf.reduce_sum(weights * top1),
                         tf.reduce_sum(weights * topk), tf.reduce_sum(weights)])

    _steps[model] = (k, sums)
    return sums


def pads_last_batch(strategy=None) -> bool:
    """Whether evaluation pads its last batch to the full batch size (blanks of weight 0, so
    nothing is counted twice or dropped): where XLA compiles the whole step, one program per
    input shape, so a smaller last batch would be a second compilation (minutes for a large
    model on a TPU): under Keras' JAX backend and on TPUs."""
    return (keras.backend.backend() == "jax"
            or isinstance(strategy, tf.distribute.TPUStrategy))


def evaluate_model(model, dataset, num_classes: int, steps=None, strategy=None) -> dict:
    """``{"loss", "top1", "top5", "images"}``: means over the examples (top-k with
    k = min(5, classes)) and how many were evaluated; ``model`` is left as it was.

    Batches are ``(images, labels)`` or ``(images, labels, weights)`` (the padded last batch
    of ``pipelines.build(..., pad_remainder=True)`` on TPU, whose blanks weigh 0). ``steps``
    limits the batches; ``strategy`` (default: the current one) runs the replicas.
    """
    if keras.backend.backend() == "jax":
        return _evaluate_jax(model, dataset, min(5, num_classes), steps)
    strategy = strategy or tf.distribute.get_strategy()
    sums = _sums_fn(model, min(5, num_classes))
    if strategy.num_replicas_in_sync > 1:
        dataset = strategy.experimental_distribute_dataset(dataset)
    totals = tf.zeros([4])
    for i, batch in enumerate(dataset):
        if steps is not None and i >= steps:
            break
        totals += strategy.reduce("SUM", strategy.run(sums, args=(batch,)), axis=None)
    return _means(*totals.numpy().tolist())


def _means(loss: float, top1: float, topk: float, count: float) -> dict:
    count_or_1 = max(count, 1e-9)
    return {"loss": loss / count_or_1, "top1": top1 / count_or_1, "top5": topk / count_or_1,
            "images": int(round(count))}


def _evaluate_jax(model, dataset, k: int, steps) -> dict:
    """``evaluate_model`` under Keras' JAX backend: logits from one jitted function of the
    model's variables (the batch sharded over the devices when a distribution is set and the
    batch divides among them; each process gets the batch's logits from all of them), the
    sums in NumPy with TensorFlow's ``in_top_k`` rule (a label is in the top k unless k
    other logits are larger)."""
    logits_of = _jax_logits_fn(model)
    totals = np.zeros(4)
    for i, batch in enumerate(dataset.as_numpy_iterator()):
        if steps is not None and i >= steps:
            break
        images, labels = batch[0], batch[1].astype(np.int64)
        weights = (batch[2].astype(np.float64) if len(batch) > 2
                   else np.ones(len(labels), np.float64))
        logits = np.asarray(logits_of(images), np.float64)
        target = logits[np.arange(len(labels)), labels]
        top = logits.max(axis=-1, keepdims=True)
        loss = np.log(np.exp(logits - top).sum(axis=-1)) + top[:, 0] - target
        larger = (logits > target[:, None]).sum(axis=-1)
        totals += [np.sum(weights * loss), np.sum(weights * (larger < 1)),
                   np.sum(weights * (larger < k)), np.sum(weights)]
    return _means(*totals.tolist())


def _jax_logits_fn(model):
    """``images -> logits`` of ``model``'s current weights, compiled once per model."""
    cached = _steps.get(model)
    if cached is not None and cached[0] == "jax":
        compiled = cached[1]
    else:
        import jax

        variables = list(model.variables)

        def logits(values, images):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return keras.ops.cast(model(images, training=False), "float32")

        compiled = jax.jit(logits)
        _steps[model] = ("jax", compiled)
    distribution = keras.distribution.distribution()

    def run(images):
        if distribution is not None and len(images) % len(
                distribution.device_mesh.devices.flatten()) == 0:
            images = keras.distribution.distribute_tensor(
                images, distribution.get_data_layout(images.shape))
        logits = compiled([v.value for v in model.variables], images)
        if not logits.is_fully_addressable:  # sharded over several processes' devices
            from jax.experimental import multihost_utils
            logits = multihost_utils.process_allgather(logits, tiled=True)
        return logits

    return run


def evaluate_run(model_dir: str, split=None, steps=None, batch_size=64, use_ema=True) -> dict:
    """A trained run's figures on ``split`` (default: its eval split), with its averaged
    weights unless ``use_ema=False``: ``{"loss", "top1", "top5", "images", "skipped", "step",
    "ema"}``."""
    trained = load_trained(model_dir, use_ema)
    data = RunData.of_spec(trained.spec, model_dir)
    dataset = data.dataset(split or trained.spec.data.eval_split, False, batch_size,
                           pad_remainder=pads_last_batch())
    result = evaluate_model(trained.model, dataset, data.num_classes, steps)
    result.update(skipped=data.skip_counter(False).count, step=trained.step,
                  ema=trained.averaged)
    return result
