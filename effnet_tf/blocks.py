"""The pieces of an EfficientNet: initializers, the stem, MBConv with squeeze-excite, the head.

Functional-API helpers that name every layer exactly as keras.applications does, so weight
files and user code written for it (``block6d_project_bn``) keep working.
"""

from __future__ import annotations

import keras
from keras import layers

from effnet_tf.scaling import Block

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
ACTIVATION = "swish"

# Official initializers: conv weights ~ N(0, sqrt(2 / fan_out)) (fan_out = k * k * out_channels),
# classifier weights ~ U(-1/sqrt(classes), 1/sqrt(classes)).
CONV_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 2.0, "mode": "fan_out", "distribution": "untruncated_normal"},
}
DENSE_INIT = {
    "class_name": "VarianceScaling",
    "config": {"scale": 1.0 / 3.0, "mode": "fan_out", "distribution": "uniform"},
}


def explicit_padding() -> bool:
    """Whether strided convolutions pad with a ``ZeroPadding2D`` + ``"valid"`` (named
    ``{name}_pad`` like keras.applications') instead of ``"same"``: under a mixed-precision
    policy. Measured on this CPU (oneDNN, ``benchmarks/padding_ab.py``): b0 trains about 8%
    faster in bfloat16 with explicit padding, and about 2% slower in float32."""
    return keras.mixed_precision.dtype_policy().compute_dtype != "float32"


def same_padding(x, kernel_size: int, strides: int, name: str):
    """``(x, padding)`` for a convolution that must pad like ``"same"``: the very zeros
    ``"same"`` adds, so outputs and weights are identical either way. Without a static
    spatial size (fully convolutional use): ``"same"``."""
    height, width = x.shape[1:3]
    if strides == 1 or height is None or width is None or not explicit_padding():
        return x, "same"
    pads = []
    for size in (height, width):
        total = max((-(-size // strides) - 1) * strides + kernel_size - size, 0)
        pads.append((total // 2, total - total // 2))
    return layers.ZeroPadding2D(tuple(pads), name=f"{name}_pad")(x), "valid"


def conv_bn(x, filters: int, kernel_size: int, strides: int, name: str, activation=ACTIVATION):
    """Conv (no bias, ``same`` padding) -> BN -> optional swish, named ``{name}conv/bn/activation``."""
    x, padding = same_padding(x, kernel_size, strides, f"{name}conv")
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=CONV_INIT,
        name=f"{name}conv",
    )(x)
    return batch_norm_activation(x, f"{name}bn", f"{name}activation" if activation else None)


def batch_norm_activation(x, bn_name: str, activation_name: str | None):
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=bn_name)(x)
    if activation_name:
        x = layers.Activation(ACTIVATION, name=activation_name)(x)
    return x


def squeeze_excite(x, block: Block):
    """Channel attention: global mean -> 1x1 reduce (swish) -> 1x1 expand (sigmoid) -> scale."""
    name = block.name
    se = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}se_squeeze")(x)
    se = layers.Conv2D(
        block.se_filters,
        1,
        activation=ACTIVATION,
        kernel_initializer=CONV_INIT,
        name=f"{name}se_reduce",
    )(se)
    se = layers.Conv2D(
        block.expanded_filters,
        1,
        activation="sigmoid",
        kernel_initializer=CONV_INIT,
        name=f"{name}se_expand",
    )(se)
    return layers.Multiply(name=f"{name}se_excite")([x, se])


def mbconv(inputs, block: Block, drop_rate: float):
    """Mobile inverted bottleneck: expand 1x1 -> depthwise kxk -> SE -> project 1x1 (+ residual).

    ``drop_rate`` is this block's stochastic-depth rate: the residual branch of a whole sample
    is dropped and the kept ones divided by the keep probability (``Dropout`` with a per-sample
    noise shape); identity at inference.
    """
    name = block.name
    x = inputs
    if block.expand_ratio != 1:
        x = conv_bn(x, block.expanded_filters, 1, 1, name=f"{name}expand_")
    x, padding = same_padding(x, block.kernel_size, block.strides, f"{name}dwconv")
    x = layers.DepthwiseConv2D(
        block.kernel_size,
        strides=block.strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=CONV_INIT,
        name=f"{name}dwconv",
    )(x)
    x = batch_norm_activation(x, f"{name}bn", f"{name}activation")
    x = squeeze_excite(x, block)
    x = conv_bn(x, block.filters_out, 1, 1, name=f"{name}project_", activation=None)
    if block.has_residual:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}drop")(x)
        x = layers.Add(name=f"{name}add")([x, inputs])
    return x


def output_layer_name(block: Block) -> str:
    """The name of the layer whose output is ``block``'s output."""
    return f"{block.name}add" if block.has_residual else f"{block.name}project_bn"


def classifier(x, classes: int, activation, dropout_rate: float):
    """Global average pool -> dropout -> dense, as keras.applications names them."""
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="top_dropout")(x)
    # Under a mixed-precision policy the classifier computes in float32 for a stable softmax.
    policy = keras.mixed_precision.dtype_policy()
    dtype = "float32" if policy.compute_dtype != policy.variable_dtype else None
    return layers.Dense(
        classes,
        activation=activation,
        kernel_initializer=DENSE_INIT,
        dtype=dtype,
        name="predictions",
    )(x)
