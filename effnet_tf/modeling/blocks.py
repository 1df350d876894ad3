"""The pieces of an EfficientNet: initializers, the stem, MBConv with squeeze-excite, the head.

Functional-API helpers that name every layer exactly as keras.applications does, so weight
files and user code written for it (``block6d_project_bn``) keep working. Rematerialization
(``remat``) is its own module, ``remat``; its names stay importable from here.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from effnet_tf.modeling.remat import (  # noqa: F401  (names kept importable from here)
    FUSE_MIN_DEPTHWISE_ELEMENTS, FUSE_MIN_ELEMENTS, HIGH_RES_STAGES, REMAT_CHOICES,
    EfficientNetModel, check_remat, functional_model)
from effnet_tf.modeling.scaling import Block

BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3
ACTIVATION = "swish"
# "same": TensorFlow's (the official models'; asymmetric on strided convolutions);
# "symmetric": PyTorch's ``(k - 1) // 2`` on every side (timm's own EfficientNets).
PADDINGS = ("same", "symmetric")

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


def dtype_policy(name=None) -> keras.DTypePolicy:
    """The policy called ``name`` (or ``name`` itself, a policy), Keras' global one for None."""
    if isinstance(name, keras.DTypePolicy):
        return name
    return keras.DTypePolicy(name) if name else keras.mixed_precision.dtype_policy()


def explicit_padding(policy: str | None = None) -> bool:
    """The default of ``LayerOptions.explicit_padding``: under a mixed-precision ``policy``
    (None: the global one), where it is faster (BUILD.md, model benchmark:
    ``benchmarks/padding_ab.py``)."""
    return dtype_policy(policy).compute_dtype != "float32"


@dataclasses.dataclass(frozen=True)
class LayerOptions:
    """Layer choices that leave names and weights as they are.

    ``batch_norm_momentum``, ``batch_norm_epsilon``: of every BatchNormalization (0.99 and
    1e-3, the paper's; timm's own models use epsilon 1e-5). ``sync_batch_norm``: statistics
    over all replicas (Keras' ``synchronized``; the official TPU trainer's
    ``tpu_batch_normalization`` over replica groups). ``padding``: ``PADDINGS``.
    ``explicit_padding``: strided convolutions pad with a ``ZeroPadding2D`` + ``"valid"``
    (named ``{name}_pad`` like keras.applications') instead of ``"same"``; the same zeros.
    ``activation``: "swish", or "relu6" (EfficientNet-Lite). ``dtype_policy``: of every
    layer but the normalization (None: Keras' global policy).
    """

    batch_norm_momentum: float = BN_MOMENTUM
    batch_norm_epsilon: float = BN_EPSILON
    sync_batch_norm: bool = False
    padding: str = "same"
    explicit_padding: bool = False
    activation: str = ACTIVATION
    dtype_policy: str | None = None


def padded(x, kernel_size: int, strides: int, name: str, options: LayerOptions = LayerOptions()):
    """``(x, padding)`` for a convolution: ``"same"`` padding (TensorFlow's zeros, by a
    ``{name}_pad`` layer with ``explicit_padding``) or PyTorch's symmetric ``(k - 1) // 2``.
    For odd kernels at stride 1 the two are equal and ``"same"`` is used. Without a static
    spatial size (fully convolutional use), ``"same"`` cannot be made explicit."""
    if strides == 1 and kernel_size % 2:
        return x, "same"
    if options.padding == "symmetric":
        pad = (kernel_size - 1) // 2
        pads = ((pad, pad), (pad, pad))
    else:
        height, width = x.shape[1:3]
        if height is None or width is None or not options.explicit_padding:
            return x, "same"
        pads = []
        for size in (height, width):
            total = max((-(-size // strides) - 1) * strides + kernel_size - size, 0)
            pads.append((total // 2, total - total // 2))
    return layers.ZeroPadding2D(tuple(pads), name=f"{name}_pad",
                                dtype=options.dtype_policy)(x), "valid"


def conv_bn(x, filters: int, kernel_size: int, strides: int, name: str, activation=True,
            options: LayerOptions = LayerOptions()):
    """Conv (no bias) -> BN -> optional activation, named ``{name}conv/bn/activation``."""
    x, padding = padded(x, kernel_size, strides, f"{name}conv", options)
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=CONV_INIT,
        dtype=options.dtype_policy,
        name=f"{name}conv",
    )(x)
    return batch_norm_activation(x, f"{name}bn", f"{name}activation" if activation else None,
                                 options)


def batch_norm_activation(x, bn_name: str, activation_name: str | None,
                          options: LayerOptions = LayerOptions()):
    x = layers.BatchNormalization(momentum=options.batch_norm_momentum,
                                  epsilon=options.batch_norm_epsilon,
                                  synchronized=options.sync_batch_norm,
                                  dtype=options.dtype_policy, name=bn_name)(x)
    if activation_name:
        x = layers.Activation(options.activation, dtype=options.dtype_policy,
                              name=activation_name)(x)
    return x


def squeeze_excite(x, block: Block, options: LayerOptions = LayerOptions()):
    """Channel attention: global mean -> 1x1 reduce (swish) -> 1x1 expand (sigmoid) -> scale."""
    name = block.name
    dtype = options.dtype_policy
    se = layers.GlobalAveragePooling2D(keepdims=True, dtype=dtype, name=f"{name}se_squeeze")(x)
    se = layers.Conv2D(
        block.se_filters,
        1,
        activation=options.activation,
        kernel_initializer=CONV_INIT,
        dtype=dtype,
        name=f"{name}se_reduce",
    )(se)
    se = layers.Conv2D(
        block.expanded_filters,
        1,
        activation="sigmoid",
        kernel_initializer=CONV_INIT,
        dtype=dtype,
        name=f"{name}se_expand",
    )(se)
    return layers.Multiply(dtype=dtype, name=f"{name}se_excite")([x, se])


def mbconv(inputs, block: Block, drop_rate: float, options: LayerOptions = LayerOptions()):
    """Mobile inverted bottleneck: expand 1x1 -> depthwise kxk -> SE -> project 1x1 (+ residual).

    ``drop_rate`` is this block's stochastic-depth rate: the residual branch of a whole sample
    is dropped and the kept ones divided by the keep probability (``Dropout`` with a per-sample
    noise shape); identity at inference. Lite blocks have no squeeze-excite.
    """
    name = block.name
    dtype = options.dtype_policy
    x = inputs
    if block.expand_ratio != 1:
        x = conv_bn(x, block.expanded_filters, 1, 1, name=f"{name}expand_", options=options)
    x, padding = padded(x, block.kernel_size, block.strides, f"{name}dwconv", options)
    x = layers.DepthwiseConv2D(
        block.kernel_size,
        strides=block.strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=CONV_INIT,
        dtype=dtype,
        name=f"{name}dwconv",
    )(x)
    x = batch_norm_activation(x, f"{name}bn", f"{name}activation", options)
    if block.has_se:
        x = squeeze_excite(x, block, options)
    x = conv_bn(x, block.filters_out, 1, 1, name=f"{name}project_", activation=False,
                options=options)
    if block.has_residual:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), dtype=dtype,
                               name=f"{name}drop")(x)
        x = layers.Add(dtype=dtype, name=f"{name}add")([x, inputs])
    return x


def output_layer_name(block: Block) -> str:
    """The name of the layer whose output is ``block``'s output."""
    return f"{block.name}add" if block.has_residual else f"{block.name}project_bn"


def classifier(x, classes: int, activation, dropout_rate: float,
               options: LayerOptions = LayerOptions()):
    """Global average pool -> dropout -> dense, as keras.applications names them."""
    x = layers.GlobalAveragePooling2D(dtype=options.dtype_policy, name="avg_pool")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, dtype=options.dtype_policy, name="top_dropout")(x)
    # Under a mixed-precision policy the classifier computes in float32 for a stable softmax.
    policy = dtype_policy(options.dtype_policy)
    dtype = "float32" if policy.compute_dtype != policy.variable_dtype else policy.name
    return layers.Dense(
        classes,
        activation=activation,
        kernel_initializer=DENSE_INIT,
        dtype=dtype,
        name="predictions",
    )(x)
