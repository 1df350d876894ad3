"""A trained model back from its model_dir, with the averaged (EMA) weights when present."""

from __future__ import annotations

import dataclasses

import ml_collections
import tensorflow as tf

from effnet_tf.training import recipe
from effnet_tf.training.config import model_scaling
from effnet_tf.training.run_dir import CONFIG_FILE, RunDir


@dataclasses.dataclass
class TrainedModel:
    model: object  # keras.Model, logits
    config: ml_collections.ConfigDict
    class_names: list[str] | None
    image_size: int
    step: int
    averaged: bool


def load_trained(model_dir: str, use_ema: bool = True) -> TrainedModel:
    """Rebuilds the model from ``config.json`` and restores the latest checkpoint."""
    run_dir = RunDir(model_dir)
    saved = run_dir.read_json(CONFIG_FILE)
    if saved is None:
        raise ValueError(f"model_dir {model_dir!r} has no {CONFIG_FILE}: not a training run")
    config = ml_collections.ConfigDict(saved["config"])
    if not run_dir.checkpoint_paths():
        raise ValueError(f"model_dir {model_dir!r} has no checkpoint yet")
    scaling = model_scaling(config)
    model = recipe.build_model(config, scaling, saved["identity"]["num_classes"])
    ema = recipe.ExponentialMovingAverage(model, config.ema_decay) if config.ema_decay else None
    items = {"model": model}
    if ema is not None:
        items["ema"] = ema
    latest = run_dir.restore_latest(tf.train.Checkpoint(**items), partial=True)
    averaged = bool(ema is not None and use_ema)
    if averaged:
        ema.swap()
    step = int(latest.rsplit("-", 1)[-1])
    return TrainedModel(model, config, saved.get("class_names"), scaling.resolution, step,
                        averaged)
