"""Parameters and multiply-adds of a built Keras model (or of a variant, by arithmetic)."""

from __future__ import annotations

import math

import keras

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import Scaling, check_image_size


def flops(model_or_variant, image_size: int | None = None) -> int:
    """Multiply-adds of one image through convolutions and dense layers (the paper's FLOPs).

    A variant name, phi or ``Scaling`` is counted by arithmetic (``effnet_tf.modeling.costs``); a Keras
    model by walking its layers, at ``image_size`` if given (needed when its input size is
    ``None``).
    """
    if not isinstance(model_or_variant, keras.Model):
        return costs(Scaling.resolve(model_or_variant), image_size).flops
    model = _at_size(model_or_variant, image_size)
    total = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            # Each output position costs one multiply-add per kernel weight (depthwise and
            # grouped kernels already hold only the weights one output sees).
            total += math.prod(layer.output.shape[1:-1]) * math.prod(layer.kernel.shape)
        elif isinstance(layer, keras.layers.Dense):
            total += math.prod(layer.kernel.shape)
    return int(total)


def count_params(model_or_variant) -> int:
    """All weights (BN statistics included), as ``keras.Model.count_params``."""
    if isinstance(model_or_variant, keras.Model):
        return model_or_variant.count_params()
    return costs(Scaling.resolve(model_or_variant)).params


def _at_size(model: keras.Model, image_size):
    shape = tuple(model.inputs[0].shape[1:])
    if image_size is None:
        if None in shape[:2]:
            raise ValueError(
                f"model {model.name!r} has input shape {shape}: pass image_size to count FLOPs"
            )
        return model
    size = check_image_size(image_size)
    if shape[:2] == (size, size):
        return model
    inputs = keras.Input((size, size) + shape[2:])
    return keras.models.clone_model(model, input_tensors=inputs)
