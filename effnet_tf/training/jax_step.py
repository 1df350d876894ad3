"""The JAX training step: loss, gradients, the optimizer update and the weight average as one
``jax.jit``-compiled, stateless function of the run's arrays.

The Keras model, optimizer and loss terms are the TensorFlow trainer's (``training.recipe``);
here they run inside ``keras.StatelessScope``, which maps each Keras variable to an array
of the state, so one step is ``state -> state`` (the old state's buffers are donated). The
batch arrives sharded over the devices' ``batch`` axis and the state replicated
(``keras.distribution.DataParallel``): XLA partitions the step and sums the gradients across
devices by itself. Only the variables trainable in the step's phase (all, or the classifier
while the backbone is frozen) get gradients and updates.
"""

from __future__ import annotations

import jax
import keras
from keras import ops

from effnet_tf.training import recipe


def make_train_step(trainer):
    """``step(state, images, labels) -> (state, loss, correct predictions)`` for the trainer's
    model, optimizer and average; ``state`` is ``trainer.state`` (``variables``, ``optimizer``,
    ``ema``, ``ema_updates``)."""
    optim, model, optimizer = trainer.spec.optim, trainer.model, trainer.optimizer
    num_classes, batch = trainer.spec.model.num_classes, optim.global_batch_size
    variables, optimizer_variables = trainer.variables, list(optimizer.variables)
    trainable_ids = {id(v) for v in model.trainable_variables}
    trained = [i for i, v in enumerate(variables) if id(v) in trainable_ids]
    trained_variables = [variables[i] for i in trained]
    weight_index = trainer.weight_index

    def forward(trained_values, values, images, labels):
        values = list(values)
        for i, value in zip(trained, trained_values):
            values[i] = value
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            logits = model(images, training=True)
            per_example = recipe.classification_loss(labels, logits, num_classes,
                                                      optim.label_smoothing)
            loss = ops.sum(per_example) / batch
            if optim.weight_decay:
                loss = loss + optim.weight_decay * recipe.l2_loss(model)
            scaled = optimizer.scale_loss(loss)
        updated = [_current(scope, v, value) for v, value in zip(variables, values)]
        return scaled, (loss, logits, updated)

    def step(state, images, labels):
        values = state["variables"]
        grads, (loss, logits, values) = jax.grad(forward, has_aux=True)(
            [values[i] for i in trained], values, images, labels)
        mapping = list(zip(optimizer_variables, state["optimizer"])) + [
            (variables[i], values[i]) for i in trained]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            optimizer.apply(grads, trained_variables)
        values = [_current(scope, v, value) for v, value in zip(variables, values)]
        new = {"variables": values,
               "optimizer": [_current(scope, v, value)
                             for v, value in zip(optimizer_variables, state["optimizer"])]}
        if "ema" in state:
            decay = recipe.ema_decay(trainer.spec.optim.ema_decay, state["ema_updates"])
            new["ema"] = [decay * shadow + (1 - decay) * ops.cast(values[i], shadow.dtype)
                          for shadow, i in zip(state["ema"], weight_index)]
            new["ema_updates"] = state["ema_updates"] + 1
        hard = labels if len(labels.shape) == 1 else ops.argmax(labels, axis=-1)
        correct = ops.sum(ops.cast(
            ops.argmax(logits, axis=-1) == ops.cast(hard, "int32"), "float32"))
        return new, loss, correct

    return jax.jit(step, donate_argnums=0)


def _current(scope, variable, value):
    current = scope.get_current_value(variable)
    return value if current is None else current
