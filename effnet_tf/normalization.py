"""The official input normalization, as fixed constants inside the model.

Inputs are RGB float pixels in [0, 255]; the model computes ``(x - mean) / std``. Unlike
keras.applications (whose Normalization layer is an identity unless ImageNet weights are
loaded), this is right for random and loaded weights alike.
"""

from __future__ import annotations

from keras import layers

MEAN_RGB = (0.485 * 255, 0.456 * 255, 0.406 * 255)
STDDEV_RGB = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def normalize_layer(name: str = "normalization") -> layers.Layer:
    """``x * (1/std) - mean/std`` in one float32 ``Rescaling`` (no weights, serializable).

    float32 whatever the global policy: pixel values up to 255 lose precision in float16, and
    the next layer casts the normalized result to its compute dtype.
    """
    return layers.Rescaling(
        scale=[1.0 / s for s in STDDEV_RGB],
        offset=[-m / s for m, s in zip(MEAN_RGB, STDDEV_RGB)],
        dtype="float32",
        name=name,
    )
