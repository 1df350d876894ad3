"""The input normalization, as fixed constants inside the model, following the weights.

Inputs are RGB float pixels in [0, 255] for every weight set; the model normalizes them as
the weights were trained:
  * ``"imagenet"``: ``(x - mean) / std`` with the official ImageNet mean and standard
    deviation (the official EfficientNet preprocessing; keras.applications' files too);
  * ``"advprop"``: ``x / 127.5 - 1``, the Inception preprocessing the official AdvProp
    checkpoints were evaluated with (tensorflow/tpu ``models/official/efficientnet``); it
    is also timm's mean = std = 0.5 on [0, 1] inputs;
  * ``"lite"``: ``(x - 127) / 128``, EfficientNet-Lite's (tensorflow/tpu
    ``models/official/efficientnet/lite/efficientnet_lite_builder.py``: ``MEAN_RGB = [127.0]
    * 3``, ``STDDEV_RGB = [128.0] * 3``).
Unlike keras.applications (whose Normalization layer is an identity unless ImageNet weights
are loaded), this is right for random and loaded weights alike.
"""

from __future__ import annotations

from keras import layers

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)
LITE_MEAN, LITE_STDDEV = 127.0, 128.0
NORMALIZATIONS = ("imagenet", "advprop", "lite")


def for_weights(weights) -> str | None:
    """The normalization weights ``weights`` expect (``weight_sets.normalization_for``)."""
    from effnet_tf.modeling.weight_sets import normalization_for

    return normalization_for(weights)


def normalize_layer(name: str = "normalization", kind: str = "imagenet") -> layers.Layer:
    """``x * scale + offset`` in one float32 ``Rescaling`` (no weights, serializable).

    float32 whatever the global policy: pixel values up to 255 lose precision in float16, and
    the next layer casts the normalized result to its compute dtype.
    """
    if kind == "imagenet":
        scale = [1.0 / s for s in STDDEV_RGB]
        offset = [-m / s for m, s in zip(MEAN_RGB, STDDEV_RGB)]
    elif kind == "advprop":
        scale, offset = 1.0 / 127.5, -1.0
    elif kind == "lite":
        scale, offset = 1.0 / LITE_STDDEV, -LITE_MEAN / LITE_STDDEV
    else:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {kind!r}")
    return layers.Rescaling(scale=scale, offset=offset, dtype="float32", name=name)
