"""One trial of a search: build a candidate, train it briefly, and measure it fairly.

``train_candidate`` is the default ``train_fn`` of ``search.search`` and ``search.tune``; it
returns the metrics keras-tuner ranks by (``OBJECTIVE``). A brief run is only comparable
across candidates when they start from the same noise (one seed) and when validation
measures the weights rather than stale BN statistics (``recalibrate_batch_norm``).
"""

from __future__ import annotations

import time
from typing import Callable

from effnet_tf.modeling.scaling import Scaling

OBJECTIVE = "val_accuracy"
# Brief training leaves BN's moving statistics (momentum 0.99) near their initial values, and
# validation accuracy would measure that instead of the architecture: they are re-estimated
# on this many training batches before evaluating (see recalibrate_batch_norm).
BN_BATCHES = 10


def train_candidate(
    scaling: Scaling,
    dataset_fn: Callable,
    *,
    classes: int,
    epochs: int = 2,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    dropout: float | None = None,
    bn_batches: int = BN_BATCHES,
    dataset_kwargs: dict | None = None,
    seed: int = 0,
    verbose: int = 0,
    clear_session: bool = False,
) -> dict:
    """Builds ``scaling``, trains it briefly, re-estimates BN statistics, and returns the
    validation accuracy and loss and the wall time (build and tracing included: what the
    trial cost).

    ``clear_session``: first free every Keras model of the process, so that a search of many
    trials does not keep them all; off by default, as it would also drop the caller's.
    """
    import keras

    from effnet_tf.modeling.efficientnet import EfficientNet

    start = time.perf_counter()
    if clear_session:
        keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)  # every candidate starts from comparable noise
    model = EfficientNet(scaling, classes=classes, dropout=dropout)
    model.compile(optimizer=make_optimizer(optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    train = dataset_fn(image_size=scaling.resolution, training=True, **(dataset_kwargs or {}))
    val = dataset_fn(image_size=scaling.resolution, training=False)
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
              verbose=verbose)  # the pipeline shuffles
    recalibrate_batch_norm(model, train, bn_batches)
    loss, accuracy = model.evaluate(val, steps=validation_steps, verbose=verbose)
    return {OBJECTIVE: float(accuracy), "val_loss": float(loss),
            "train_seconds": time.perf_counter() - start}


def recalibrate_batch_norm(model, dataset, batches: int = BN_BATCHES) -> None:
    """Sets every BN layer's moving mean and variance to their average over ``batches``
    training batches (Wu & Johnson's "precise BN"), keeping the weights.

    Keras BN keeps an exponential average; momentum ``i / (i + 1)`` at batch ``i`` turns it
    into the plain mean. Eager calls, so the changed momentum is read (a traced train step
    has its momentum baked in).
    """
    import keras

    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for i, batch in enumerate(dataset.take(batches)):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(batch[0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def make_optimizer(name: str, learning_rate: float):
    """``adam`` (Keras' defaults), or ``rmsprop``: the training recipe's optimizer (the paper's
    TF1 RMSProp with the recipe's decay, momentum and epsilon, ``recipe.create_optimizer``) at
    a constant ``learning_rate``, so that a rate tuned here carries over to training."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "rmsprop":
        from effnet_tf.training import recipe
        from effnet_tf.training.config import get_config

        config = get_config()
        config.update(global_batch_size=recipe.REFERENCE_BATCH, base_learning_rate=learning_rate,
                      lr_schedule="constant", warmup_epochs=0.0)
        return recipe.create_optimizer(config, steps_per_epoch=1)
    raise ValueError(f"optimizer must be adam or rmsprop, got {name!r}")
