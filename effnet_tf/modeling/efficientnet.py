"""The functional builder: one EfficientNet for any scaling, and its multi-scale features."""

from __future__ import annotations

import os

import keras
from keras import layers

from effnet_tf.modeling import blocks, remat as remat_lib, weight_sets
from effnet_tf.modeling import weight_loading as weights_lib
from effnet_tf.modeling.normalization import for_weights, normalize_layer
from effnet_tf.modeling.scaling import MIN_IMAGE_SIZE, VARIANTS, Scaling, survival_prob

POOLINGS = (None, "avg", "max")


def feature_info(variant="b0") -> list[dict]:
    """The five feature maps of ``features_only`` models: stride, channels and layer name.

    Each is the output of the last block before the next stride-2 stage (and of the last
    block): strides 2, 4, 8, 16, 32, i.e. the ends of stages 1, 2, 3, 5 and 7 for B0.
    """
    scaling = Scaling.resolve(variant)
    all_blocks = scaling.blocks()
    info, stride = [], 2  # after the stem
    for i, block in enumerate(all_blocks):
        stride *= block.strides
        is_last = i + 1 == len(all_blocks)
        if is_last or all_blocks[i + 1].strides == 2:
            info.append(
                {
                    "stride": stride,
                    "channels": block.filters_out,
                    "layer": blocks.output_layer_name(block),
                    "stage": block.stage,
                }
            )
    return info


def _check_args(scaling, classes, input_shape, pooling, dropout, drop_connect_rate,
                include_preprocessing, weights):
    if isinstance(classes, bool) or not isinstance(classes, int) or classes < 1:
        raise ValueError(f"classes must be an integer >= 1, got {classes!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if dropout is not None and not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1) or None, got {dropout!r}")
    if not 0 <= drop_connect_rate < 1:
        raise ValueError(f"drop_connect_rate must be in [0, 1), got {drop_connect_rate!r}")
    if weights is not None and not _is_set(weights) and not (
        isinstance(weights, (str, os.PathLike))
        and (os.path.isfile(weights) or weights_lib.is_checkpoint(weights))
    ):
        raise ValueError(
            f"weights must be None or the path of an existing weights file or TF checkpoint, "
            f"or a weight set ({', '.join(weight_sets.SETS)}), got {weights!r}"
        )
    if input_shape is None:
        return (scaling.resolution, scaling.resolution, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape!r}")
    for size in input_shape[:2]:
        if size is not None and (not isinstance(size, int) or size < MIN_IMAGE_SIZE):
            raise ValueError(
                f"input_shape height and width must be >= {MIN_IMAGE_SIZE} or None, "
                f"got {input_shape!r}"
            )
    if include_preprocessing and input_shape[2] != 3:
        raise ValueError(
            f"input_shape must have 3 (RGB) channels with include_preprocessing=True, "
            f"got {input_shape!r}"
        )
    return input_shape


def _is_set(weights) -> bool:
    return isinstance(weights, str) and weights in weight_sets.SETS


def _check_weight_set(weights, scaling, include_top, classes) -> weight_sets.WeightFile:
    """The published file for ``weights=<set name>``: the scaling must be a published
    variant's width and depth, the set must have it, and a top must have its 1000 classes."""
    variant = next((name for name, (w, d, _, _) in VARIANTS.items()
                    if (w, d, Scaling.variant(name).lite)
                    == (scaling.width_coefficient, scaling.depth_coefficient, scaling.lite)),
                   None)
    if variant is None:
        raise ValueError(
            f"weights={weights!r} needs the width and depth (and family) of a published variant "
            f"({', '.join(VARIANTS)}), got {scaling.width_coefficient:g}, "
            f"{scaling.depth_coefficient:g}")
    entry = weight_sets.weight_file(weights, variant)
    if include_top and classes != 1000:
        raise ValueError(
            f"weights={weights!r} with include_top=True needs classes=1000 (its classifier), "
            f"got classes={classes}; use include_top=False to add your own head, or "
            f"effnet_tf.modeling.weight_loading.load(model, {weights!r}, skip_mismatch=True)")
    return entry


def EfficientNet(
    variant="b0",
    *,
    include_top: bool = True,
    classes: int = 1000,
    input_shape=None,
    pooling=None,
    dropout=None,
    drop_connect_rate: float = 0.2,
    include_preprocessing: bool = True,
    classifier_activation="softmax",
    weights=None,
    normalization=None,
    name=None,
    features_only: bool = False,
    remat=False,
    batch_norm_momentum: float = blocks.BN_MOMENTUM,
    sync_batch_norm: bool = False,
    explicit_padding: bool | None = None,
    padding: str | None = None,
    batch_norm_epsilon: float | None = None,
    dtype_policy: str | None = None,
) -> keras.Model:
    """Builds an EfficientNet as a Keras functional model.

    Args:
      variant: "b0".."b7", "b8", "l2", "lite0".."lite4" (the published tables; Lite: no
        squeeze-excite, ReLU6, fixed stem and head, see ``Scaling``), a number (phi, by the
        compound formula ``1.2**phi, 1.1**phi, 1.15**phi``) or a ``Scaling``.
      include_top: end with pooling, dropout and the ``predictions`` dense layer.
      classes: outputs of the classifier.
      input_shape: (height, width, 3); default the variant's resolution. Sizes >= 32 or None.
      pooling: without the top, None (4D output), "avg" or "max".
      dropout: rate before the classifier; default the variant's.
      drop_connect_rate: stochastic depth; block i of N drops with ``rate * i / N``.
      include_preprocessing: inputs are RGB floats in [0, 255], normalized inside the model
        as the weights expect (see ``normalization``); False: feed normalized inputs.
      classifier_activation: activation of ``predictions``; None returns logits.
      weights: None (random); a published set, fetched once into ``$KERAS_HOME/models``:
        "imagenet" (keras.applications' files; the official Lite checkpoints), "baseline",
        "autoaugment", "randaugment", "advprop", "noisy-student", "noisy-student-475",
        "timm", "timm-ra4" (``python -m effnet_tf.weights list``); or the path of a by-name
        ``.h5`` file, an official TF checkpoint or a PyTorch ``.pth``/``.safetensors``
        (timm's or lukemelas' layout). A set's classifier needs ``classes=1000``;
        ``include_top=False`` drops it.
      normalization: "imagenet" (``(x - mean) / std``), "advprop" (``x / 127.5 - 1``) or
        "lite" (``(x - 127) / 128``); default the one ``weights`` were trained with, else the
        variant's ("lite" for Lite, "imagenet" for the others).
      name: model name; default "efficientnetb0" etc.
      features_only: return the five feature maps at strides 2, 4, 8, 16, 32 (a list, see
        ``feature_info``) instead of the head.
      remat: recompute MBConv blocks in the backward pass, keeping only block inputs (less
        training memory, more compute): False; "all" (or True) every block; "high_res" the
        stride-2..8 stages (1-3), where most activation memory is. See
        ``remat.EfficientNetModel``; ``benchmarks/train_memory.py`` measures it.
      batch_norm_momentum: of every BatchNormalization (0.99, the paper's).
      sync_batch_norm: BatchNormalization statistics over all replicas of a strategy.
      explicit_padding: strided convolutions padded by ``ZeroPadding2D`` layers (``*_pad``,
        as keras.applications) instead of ``"same"``: the same zeros; None chooses it under a
        mixed-precision ``dtype_policy``, where it is faster (``blocks.explicit_padding``).
      padding: "same" (TensorFlow's, the official models') or "symmetric" (PyTorch's
        ``(k - 1) // 2``, timm's own models); default the weight set's, else "same".
      batch_norm_epsilon: of every BatchNormalization; default the weight set's, else 1e-3.
      dtype_policy: the Keras dtype policy of the layers ("float32", "mixed_bfloat16", ...);
        None: the global one (``keras.mixed_precision.dtype_policy()``) at build time.

    Returns:
      A ``keras.Model``. Layer names equal keras.applications' (``block6d_project_bn``).
    """
    scaling = Scaling.resolve(variant)
    remat = remat_lib.check_remat(remat)
    model_options = {"padding": "same", "batch_norm_epsilon": blocks.BN_EPSILON}
    if _is_set(weights):
        entry = _check_weight_set(weights, scaling, include_top and not features_only, classes)
        input_shape = input_shape or (entry.resolution, entry.resolution, 3)
        model_options = weight_sets.model_options(weights)
        _check_model_options(weights, model_options, padding, batch_norm_epsilon)
    input_shape = _check_args(scaling, classes, input_shape, pooling, dropout,
                              drop_connect_rate, include_preprocessing, weights)
    dropout = scaling.dropout_rate if dropout is None else dropout

    inputs = keras.Input(shape=input_shape, name="input_layer")
    normalization = normalization or for_weights(weights) or scaling.normalization
    x = normalize_layer(kind=normalization)(inputs) if include_preprocessing else inputs
    options = _layer_options(scaling, batch_norm_momentum, sync_batch_norm, explicit_padding,
                             padding or model_options["padding"],
                             batch_norm_epsilon or model_options["batch_norm_epsilon"],
                             dtype_policy)
    x = blocks.conv_bn(x, scaling.stem_filters, 3, 2, name="stem_", options=options)

    all_blocks = scaling.blocks()
    feature_layers = {f["layer"] for f in feature_info(scaling)}
    features = []
    for i, block in enumerate(all_blocks):
        rate = 1.0 - survival_prob(i, len(all_blocks), drop_connect_rate)
        x = blocks.mbconv(x, block, rate, options)
        if blocks.output_layer_name(block) in feature_layers:
            features.append(x)

    if features_only:
        outputs = features
    else:
        x = blocks.conv_bn(x, scaling.head_filters, 1, 1, name="top_", options=options)
        if include_top:
            outputs = blocks.classifier(x, classes, classifier_activation, dropout, options)
        elif pooling == "avg":
            outputs = layers.GlobalAveragePooling2D(dtype=options.dtype_policy,
                                                    name="avg_pool")(x)
        elif pooling == "max":
            outputs = layers.GlobalMaxPooling2D(dtype=options.dtype_policy, name="max_pool")(x)
        else:
            outputs = x

    model = remat_lib.functional_model(inputs, outputs, name or _default_name(scaling), remat)
    if weights is not None:
        weights_lib.load(model, weights)
    return model


def _check_model_options(weights, needed, padding, batch_norm_epsilon) -> None:
    """A weight set's padding and epsilon, if given, must be the ones it was trained with."""
    for name, given in (("padding", padding), ("batch_norm_epsilon", batch_norm_epsilon)):
        if given is not None and given != needed[name]:
            raise ValueError(f"weights={weights!r} were trained with {name}={needed[name]!r}, "
                             f"got {name}={given!r}")


def _layer_options(scaling, batch_norm_momentum, sync_batch_norm, explicit_padding, padding,
                   batch_norm_epsilon, dtype_policy) -> blocks.LayerOptions:
    if not 0 <= batch_norm_momentum < 1:
        raise ValueError(f"batch_norm_momentum must be in [0, 1), got {batch_norm_momentum!r}")
    if not 0 < batch_norm_epsilon < 1:
        raise ValueError(f"batch_norm_epsilon must be in (0, 1), got {batch_norm_epsilon!r}")
    if padding not in blocks.PADDINGS:
        raise ValueError(f"padding must be one of {blocks.PADDINGS}, got {padding!r}")
    policy = blocks.dtype_policy(dtype_policy).name  # None: the global one, now
    return blocks.LayerOptions(
        batch_norm_momentum=batch_norm_momentum, batch_norm_epsilon=batch_norm_epsilon,
        sync_batch_norm=bool(sync_batch_norm), padding=padding,
        explicit_padding=blocks.explicit_padding(policy) if explicit_padding is None
        else bool(explicit_padding),
        activation=scaling.activation, dtype_policy=policy)


def _default_name(scaling: Scaling) -> str:
    if scaling.source == "table":
        return f"efficientnet{scaling.name}"
    return f"efficientnet_{scaling.name}".replace(".", "_").replace("-", "m")


def _variant_builder(variant: str):
    def build(**kwargs) -> keras.Model:
        return EfficientNet(variant, **kwargs)

    build.__name__ = f"EfficientNet{variant.capitalize()}"
    build.__qualname__ = build.__name__
    build.__doc__ = (
        f"EfficientNet-{variant.capitalize()} from the published table; "
        f"``{build.__name__}(**kw) == EfficientNet('{variant}', **kw)``.\n\n"
        + EfficientNet.__doc__.split("Args:", 1)[1].join(("Keyword args:", ""))
    )
    return build


EfficientNetB0 = _variant_builder("b0")
EfficientNetB1 = _variant_builder("b1")
EfficientNetB2 = _variant_builder("b2")
EfficientNetB3 = _variant_builder("b3")
EfficientNetB4 = _variant_builder("b4")
EfficientNetB5 = _variant_builder("b5")
EfficientNetB6 = _variant_builder("b6")
EfficientNetB7 = _variant_builder("b7")
EfficientNetLite0 = _variant_builder("lite0")
EfficientNetLite1 = _variant_builder("lite1")
EfficientNetLite2 = _variant_builder("lite2")
EfficientNetLite3 = _variant_builder("lite3")
EfficientNetLite4 = _variant_builder("lite4")
