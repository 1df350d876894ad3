"""The official training recipe as objects: the model it trains, learning-rate schedule,
optimizer, loss terms, EMA.

Schedules and the EMA are written here because Keras has neither the warm-up + staircase
decay nor a moving average that also covers BatchNorm statistics (``use_ema`` in Keras
optimizers averages trainable weights only).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf
from keras import ops

from effnet_tf.modeling.efficientnet import EfficientNet
from effnet_tf.training.optimizers import RMSpropTF

REFERENCE_BATCH = 256


def scaled_learning_rate(base_learning_rate: float, global_batch_size: int) -> float:
    """Linear scaling: ``base`` per 256 images (0.016 -> 0.256 at batch 4096)."""
    return base_learning_rate * global_batch_size / REFERENCE_BATCH


@keras.saving.register_keras_serializable("effnet_tf")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``peak``, then exponential staircase decay, cosine, or constant."""

    def __init__(self, peak, warmup_steps, total_steps, kind="exponential",
                 decay_rate=0.97, decay_steps=1):
        self.peak = float(peak)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.decay_rate = float(decay_rate)
        self.decay_steps = max(1, int(decay_steps))
        if kind not in ("exponential", "cosine", "constant"):
            raise ValueError(f"lr_schedule must be exponential, cosine or constant, got {kind!r}")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        after = ops.maximum(step - self.warmup_steps, 0.0)
        if self.kind == "exponential":
            decayed = self.peak * ops.power(self.decay_rate, ops.floor(after / self.decay_steps))
        elif self.kind == "cosine":
            span = max(1, self.total_steps - self.warmup_steps)
            decayed = self.peak * 0.5 * (1 + ops.cos(math.pi * ops.minimum(after / span, 1.0)))
        else:
            decayed = ops.full_like(step, self.peak)
        warm = self.peak * (step + 1) / max(1, self.warmup_steps)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "kind": self.kind,
                "decay_rate": self.decay_rate, "decay_steps": self.decay_steps}


def learning_rate_schedule(optim, steps_per_epoch: int) -> WarmupDecay:
    """The schedule of a run's ``spec.OptimSpec`` (or a config: the fields have its names)."""
    return WarmupDecay(
        peak=scaled_learning_rate(optim.base_learning_rate, optim.global_batch_size),
        warmup_steps=round(optim.warmup_epochs * steps_per_epoch),
        total_steps=optim.epochs * steps_per_epoch,
        kind=optim.lr_schedule,
        decay_rate=optim.lr_decay_rate,
        decay_steps=round(optim.lr_decay_epochs * steps_per_epoch),
    )


def create_optimizer(optim, steps_per_epoch: int,
                     precision: str = "float32") -> keras.optimizers.Optimizer:
    """The optimizer of a run's ``spec.OptimSpec``; loss scaling under ``mixed_float16``."""
    lr = learning_rate_schedule(optim, steps_per_epoch)
    if optim.optimizer == "rmsprop_tf":  # the paper's: TF1 semantics (training.optimizers)
        optimizer = RMSpropTF(lr, rho=optim.rmsprop_rho, momentum=optim.momentum,
                              epsilon=optim.optimizer_epsilon)
    elif optim.optimizer == "rmsprop":  # Keras' (accumulator from 0: larger first steps)
        optimizer = keras.optimizers.RMSprop(lr, rho=optim.rmsprop_rho,
                                             momentum=optim.momentum,
                                             epsilon=optim.optimizer_epsilon)
    elif optim.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(lr, momentum=optim.momentum, nesterov=True)
    elif optim.optimizer == "adam":
        optimizer = keras.optimizers.Adam(lr, epsilon=optim.optimizer_epsilon)
    else:
        raise ValueError(f"optimizer must be rmsprop_tf, rmsprop, sgd or adam, "
                         f"got {optim.optimizer!r}")
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def l2_loss(model: keras.Model):
    """``sum(w**2) / 2`` over trainable weights that are not BatchNorm's (official decay)."""
    terms = [
        ops.sum(ops.square(ops.cast(w, "float32"))) / 2
        for layer in model.layers
        if not isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.trainable_weights
    ]
    return sum(terms[1:], terms[0]) if terms else ops.zeros((), "float32")


def classification_loss(labels, logits, num_classes: int, label_smoothing: float):
    """Per-example cross-entropy on logits; integer or (mixup) soft labels."""
    logits = ops.cast(logits, "float32")
    if len(labels.shape) == 1:
        labels = ops.one_hot(ops.cast(labels, "int32"), num_classes)
    labels = ops.cast(labels, "float32")
    return keras.losses.categorical_crossentropy(
        labels, logits, from_logits=True, label_smoothing=label_smoothing)


def ema_decay(decay: float, updates):
    """The average's decay after ``updates`` updates: ``min(decay, (1 + n) / (10 + n))``, the
    official trainer's warm-up (useful averages early in a run)."""
    n = ops.cast(updates, "float32")
    return ops.minimum(decay, (1.0 + n) / (10.0 + n))


class ExponentialMovingAverage(tf.Module):
    """Shadow copies of every model weight, BN statistics included, averaged after each step.

    ``decay`` warms up (``ema_decay``). Create it in ``strategy.scope()``; it checkpoints with
    ``tf.train.Checkpoint(ema=...)``. TensorFlow's trainer; the JAX trainer averages the same
    way in its compiled step (``training.jax_step``).
    """

    def __init__(self, model: keras.Model, decay: float):
        super().__init__(name="ema")
        self.decay = decay
        self._weights = [w.value if hasattr(w, "value") else w for w in model.weights]
        self.shadow = [
            tf.Variable(w, trainable=False, name=f"ema_{i}") for i, w in enumerate(self._weights)
        ]
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="ema_updates")

    def update(self):
        """Call in cross-replica context (after ``strategy.run``) or without a strategy."""
        decay = ema_decay(self.decay, self.updates)
        for shadow, weight in zip(self.shadow, self._weights):
            shadow.assign(decay * shadow + (1 - decay) * tf.cast(weight, shadow.dtype))
        self.updates.assign_add(1)

    def swap(self):
        """Exchanges model weights and averages (call twice to undo)."""
        for shadow, weight in zip(self.shadow, self._weights):
            current = tf.identity(weight)
            weight.assign(shadow)
            shadow.assign(current)


def build_model(model, dtype_policy: str = "float32") -> keras.Model:
    """The logits model of a run's ``spec.ModelSpec``, in one call of the builder: the
    trainer builds it in the run's precision, evaluation and export in float32 (the same
    layers and weights: the padding layers are the spec's, not the precision's)."""
    return EfficientNet(model.scaling(), classes=model.num_classes,
                        classifier_activation=None,
                        drop_connect_rate=model.drop_connect_rate,
                        normalization=model.normalization,
                        remat=False if model.remat == "none" else model.remat,
                        batch_norm_momentum=model.batch_norm_momentum,
                        sync_batch_norm=model.sync_batch_norm,
                        explicit_padding=model.explicit_padding, padding=model.padding,
                        batch_norm_epsilon=model.batch_norm_epsilon,
                        dtype_policy=dtype_policy)


def set_backbone_trainable(model: keras.Model, trainable: bool, freeze_batch_norm: bool):
    """Freezes everything but the classifier (``trainable=False``), or unfreezes; frozen BN
    layers run in inference mode in Keras 3, which is what fine-tuning wants."""
    for layer in model.layers:
        if layer.name == "predictions":
            continue
        if isinstance(layer, keras.layers.BatchNormalization) and freeze_batch_norm:
            layer.trainable = False
        else:
            layer.trainable = trainable
