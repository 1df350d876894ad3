"""The compiled training step: loss, gradients, the optimizer update and the weight average.

``steps_per_execution`` steps run in one ``tf.function`` call (a ``tf.range`` loop over the
input iterator), so the host's Python loop is not paid per step.
"""

from __future__ import annotations

import tensorflow as tf

from effnet_tf.training import recipe


def make_train_steps(trainer, trainable_variables):
    """``train_steps(iterator, count) -> (summed loss, correct predictions)`` for the
    trainer's model, optimizer, average and strategy, updating ``trainable_variables``."""
    optim, strategy, model, optimizer = (trainer.spec.optim, trainer.strategy, trainer.model,
                                          trainer.optimizer)
    num_classes, ema = trainer.spec.model.num_classes, trainer.ema

    # no tensor-dependent Python control flow: autograph need not rewrite the model's,
    # the loss's and the optimizer's code (a tenth of the step's tracing time)
    @tf.autograph.experimental.do_not_convert
    def replica_step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_example = recipe.classification_loss(labels, logits, num_classes,
                                                      optim.label_smoothing)
            loss = tf.nn.compute_average_loss(
                per_example, global_batch_size=optim.global_batch_size)
            if optim.weight_decay:
                loss += tf.nn.scale_regularization_loss(
                    optim.weight_decay * recipe.l2_loss(model))
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, trainable_variables)
        optimizer.apply_gradients(zip(grads, trainable_variables))
        hard = labels if labels.shape.rank == 1 else tf.argmax(labels, axis=-1)
        correct = tf.reduce_sum(tf.cast(
            tf.equal(tf.argmax(logits, -1, output_type=tf.int32), tf.cast(hard, tf.int32)),
            tf.float32))
        return loss, correct

    def train_steps(iterator, count):
        loss_sum = tf.constant(0.0)
        correct_sum = tf.constant(0.0)
        for _ in tf.range(count):
            images, labels = trainer.per_replica(next(iterator))
            loss, correct = strategy.run(replica_step, args=(images, labels))
            loss_sum += strategy.reduce("SUM", loss, axis=None)
            correct_sum += strategy.reduce("SUM", correct, axis=None)
            if ema is not None:
                ema.update()
        return loss_sum, correct_sum

    if trainer.spec.runtime.jit_compile and not isinstance(strategy, tf.distribute.TPUStrategy):
        # XLA compiles the step on each replica; the loop around it reads the input
        # iterator, which XLA cannot compile (TPUs compile everything by themselves).
        replica_step = tf.function(replica_step, jit_compile=True)
    return tf.function(train_steps)
