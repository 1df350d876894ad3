"""A trained model back from its model_dir, with the averaged (EMA) weights when present."""

from __future__ import annotations

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
    model = recipe.build_model(spec.model)
    if spec.runtime.backend == "jax":
        return _load_jax_run(run_dir, spec, model, use_ema)
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


def _load_jax_run(run_dir: RunDir, spec: RunSpec, model, use_ema: bool) -> TrainedModel:
    """A run trained under JAX (Orbax checkpoints), under either backend: its weights (or
    their average) as NumPy arrays into ``model.weights``, which both backends build alike."""
    from effnet_tf.training.jax_checkpoints import read_weights

    step, weights, average = read_weights(run_dir.checkpoint_dir(None))
    averaged = bool(average is not None and use_ema)
    values = average if averaged else weights
    if len(values) != len(model.weights):
        raise ValueError(f"model_dir {run_dir.path!r}: its checkpoint holds {len(values)} "
                         f"weights, the model of its config.json {len(model.weights)}")
    for variable, value in zip(model.weights, values):
        variable.assign(value)
    return TrainedModel(model, spec, run_dir.class_names(), step, averaged)
