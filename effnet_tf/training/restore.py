"""A trained model back from its model_dir, with the averaged (EMA) weights when present."""

from __future__ import annotations

import contextlib
import dataclasses

import keras
import tensorflow as tf

from effnet_tf.training import recipe
from effnet_tf.training.run_dir import CONFIG_FILE, RunDir
from effnet_tf.training.spec import RunSpec


@dataclasses.dataclass
class TrainedModel:
    model: object  # keras.Model, logits
    spec: RunSpec
    class_names: list[str] | None
    step: int
    averaged: bool

    @property
    def image_size(self) -> int:
        return self.spec.model.image_size


def load_trained(model_dir: str, use_ema: bool = True) -> TrainedModel:
    """Rebuilds the model from the run's spec (``config.json``) and restores the latest
    checkpoint; every later decision (image size, preprocessing, classes) is the spec's.
    Runs trained under JAX load under either backend; TensorFlow's under TensorFlow."""
    run_dir = RunDir(model_dir)
    spec = run_dir.read_spec()
    if spec is None:
        raise ValueError(f"model_dir {model_dir!r} has no {CONFIG_FILE}: not a training run")
    if not run_dir.has_checkpoint():
        raise ValueError(f"model_dir {model_dir!r} has no checkpoint yet")
    if spec.runtime.backend == "jax":
        return _load_jax_run(run_dir, spec, use_ema)
    model = recipe.build_model(spec.model)
    if keras.backend.backend() != "tensorflow":
        raise ValueError(f"model_dir {model_dir!r} was trained under TensorFlow; its "
                         "checkpoints read under TensorFlow only: KERAS_BACKEND=tensorflow")
    ema = (recipe.ExponentialMovingAverage(model, spec.optim.ema_decay)
           if spec.optim.ema_decay else None)
    items = {"model": model}
    if ema is not None:
        items["ema"] = ema
    latest = run_dir.restore_latest(tf.train.Checkpoint(**items), partial=True)
    averaged = bool(ema is not None and use_ema)
    if averaged:
        ema.swap()
    step = int(latest.rsplit("-", 1)[-1])
    return TrainedModel(model, spec, run_dir.class_names(), step, averaged)


def _load_jax_run(run_dir: RunDir, spec: RunSpec, use_ema: bool) -> TrainedModel:
    """A run trained under JAX (Orbax checkpoints), under either backend: its weights (or
    their average) as NumPy arrays into ``model.weights``, which both backends build alike."""
    from effnet_tf.training.jax_checkpoints import read_weights

    step, weights, average = read_weights(run_dir.checkpoint_dir(None))
    averaged = bool(average is not None and use_ema)
    values = average if averaged else weights
    model = _built_with(spec.model, values, run_dir.path)
    return TrainedModel(model, spec, run_dir.class_names(), step, averaged)


def _built_with(model_spec, values: list, path: str):
    """The model with ``values`` as its weights. Under Keras' JAX backend, built as usual,
    every initializer would run as XLA compilations of its own, per shape (120 for a tiny
    EfficientNet: 20 of an evaluation's 28 CPU seconds on 2 cores), for values the checkpoint
    replaces: its variables are made in a ``keras.StatelessScope``, which defers their
    initialization, then initialized from ``values`` (NumPy, copied to the device: nothing
    compiled), the few others (dropout seeds) with their own initializers. This uses Keras
    3's deferred initialization (``initialize_all_variables``, a variable's
    ``_initializer``); where a Keras lacks it, the values are assigned to a model built as
    usual."""
    import numpy as np

    try:
        from keras.src.backend.common.variables import initialize_all_variables
    except ImportError:
        initialize_all_variables = None
    deferred = keras.backend.backend() == "jax" and initialize_all_variables is not None
    scope = keras.StatelessScope(initialize_variables=False) if deferred else None
    with scope or contextlib.nullcontext():
        model = recipe.build_model(model_spec)
    if len(values) != len(model.weights):
        raise ValueError(f"model_dir {path!r}: its checkpoint holds {len(values)} weights, the "
                         f"model of its config.json {len(model.weights)}")
    if deferred:
        for variable, value in zip(model.weights, values):
            if tuple(variable.shape) != np.shape(value):
                raise ValueError(f"model_dir {path!r}: its checkpoint's {variable.path} has "
                                 f"shape {np.shape(value)}, the model's {tuple(variable.shape)}")
            variable._initializer = lambda shape, dtype, value=value: np.asarray(value, dtype)
        initialize_all_variables()
        first = model.weights[0]
        if np.array_equal(np.asarray(first.value), np.asarray(values[0], first.dtype)):
            return model
    for variable, value in zip(model.weights, values):
        variable.assign(value)  # (checks the shapes)
    return model
