"""The default training configuration: the paper's ImageNet recipe.

Tan & Le 2019 (section 5.2) and the official trainer (tensorflow/tpu
``models/official/efficientnet/main.py``): TF1 RMSProp (decay 0.9, momentum 0.9, epsilon
1e-3), learning rate 0.016 per 256 images with 5 warm-up epochs, then x0.97 every 2.4 epochs;
weight decay 1e-5; label smoothing 0.1; EMA 0.9999 (BN statistics included); stochastic depth
0.2; AutoAugment; 350 epochs.

Recipes in ``configs/`` import this and override a few fields; the command line overrides
single fields (``--config.global_batch_size=512``) or uses the shorthand flags of
``effnet_tf.train`` (``--variant b4``).
"""

from __future__ import annotations

import ml_collections

from effnet_tf.modeling import scaling as scaling_lib
from effnet_tf.training.spec import model_scaling
from pipelines import options as pipeline_options
from pipelines import source_specs


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # Model: a published variant, or the compound formula when phi is set.
    c.variant = "b0"
    c.phi = ml_collections.FieldReference(None, field_type=float)
    c.alpha, c.beta, c.gamma = 1.2, 1.1, 1.15
    c.width_coefficient = ml_collections.FieldReference(None, field_type=float)
    c.depth_coefficient = ml_collections.FieldReference(None, field_type=float)
    c.image_size = ml_collections.FieldReference(None, field_type=int)  # default: variant's
    c.dropout = ml_collections.FieldReference(None, field_type=float)  # default: variant's
    c.drop_connect_rate = 0.2
    c.sync_batch_norm = False
    c.remat = "none"  # none | all | high_res: recompute MBConv blocks in the backward pass
    # (less activation memory for more compute; high_res: stages 1-3, where most of it is)
    c.batch_norm_momentum = 0.99

    # Data: any source of the pipelines package ("tfds:<name>", TFRecords, an image folder),
    # "synthetic" (generated JPEGs) or "random" (random pixels in memory, for speed tests).
    c.dataset = "tfds:imagenet2012"
    c.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.train_split = "train"
    c.eval_split = "validation"
    c.num_classes = ml_collections.FieldReference(None, field_type=int)  # default: source's
    c.augment = "autoaugment"  # none | autoaugment | randaugment
    c.randaugment_layers = pipeline_options.RANDAUGMENT_LAYERS
    c.randaugment_magnitude = pipeline_options.RANDAUGMENT_MAGNITUDE
    c.mixup_alpha = 0.0
    c.cutmix_alpha = 0.0
    c.mix_per_image = False  # one mixup ratio / CutMix box per image instead of per batch
    c.cache = False
    c.label_offset = ml_collections.FieldReference(None, field_type=int)  # TFRecords: 1 (1-based
    # labels, ImageNet's) unless metadata.json says otherwise; 0 for 0-based shards
    # Crops (the official ImageNet ones by default; small low-resolution images want others).
    c.crop_area_range = pipeline_options.AREA_RANGE  # training: random-sized crop area,
    c.crop_aspect_range = pipeline_options.ASPECT_RATIO_RANGE  # fraction of the image
    c.flip = True  # random horizontal flip in training
    c.eval_crop_fraction = ml_collections.FieldReference(None, field_type=object)  # None: the
    # official size / (size + 32); a fraction of the short side; "none": resize the whole image
    c.resize_method = pipeline_options.RESIZE_METHODS[0]  # bicubic (official) | bilinear
    c.data_service = ml_collections.FieldReference(None, field_type=str)  # grpc://host:port:
    # the training input runs on tf.data service workers (python -m pipelines.service)

    # Schedule: official RMSProp recipe, learning rate 0.016 per 256 images.
    c.global_batch_size = 4096
    c.epochs = 350
    c.steps_per_epoch = ml_collections.FieldReference(None, field_type=int)  # default: data
    c.eval_steps = ml_collections.FieldReference(None, field_type=int)  # default: whole split
    c.base_learning_rate = 0.016  # per 256 images
    c.warmup_epochs = 5.0
    c.lr_schedule = "exponential"  # exponential | cosine | constant
    c.lr_decay_rate = 0.97
    c.lr_decay_epochs = 2.4
    c.optimizer = "rmsprop_tf"  # rmsprop_tf (TF1's, the paper's) | rmsprop (Keras') | sgd | adam
    c.rmsprop_rho = 0.9
    c.momentum = 0.9
    c.optimizer_epsilon = 1e-3
    c.weight_decay = 1e-5  # L2, as weight_decay * sum(w**2) / 2 over non-BN weights
    c.label_smoothing = 0.1
    c.ema_decay = 0.9999  # 0 turns the moving average off

    # Fine-tuning: start from weights, train a new head with a frozen backbone first.
    c.pretrained = ml_collections.FieldReference(None, field_type=str)
    c.freeze_backbone_epochs = 0
    c.freeze_batch_norm = False  # keep BN in inference mode for the whole run

    # Runtime.
    c.backend = "auto"  # auto (KERAS_BACKEND, else tensorflow) | tensorflow | jax
    c.strategy = "auto"  # auto | cpu | one_device | mirrored | multi_worker | tpu
    c.tpu = ""  # TPU name or address for TPUClusterResolver ("" on Colab)
    c.cpu_devices = 1  # logical CPU devices (for mirrored on a CPU-only machine)
    c.jit_compile = "auto"  # auto | true | false
    c.mixed_precision = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    c.steps_per_execution = 1
    c.deterministic = False
    c.seed = 0
    c.checkpoint_every_steps = 1000
    c.keep_checkpoints = 3
    c.checkpoint_data_position = "auto"  # auto (when deterministic) | true | false
    c.log_every_steps = 100
    return c


SYNTHETIC = "synthetic"  # config.dataset: JPEG files of coloured shapes, through the real pipeline
RANDOM = "random"  # config.dataset: one batch of random pixels in memory (measures the model)
BACKENDS = ("auto", "tensorflow", "jax")
STRATEGIES = ("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
_POSITIVE_INTS = ("global_batch_size", "epochs", "steps_per_execution", "checkpoint_every_steps",
                  "keep_checkpoints", "log_every_steps", "cpu_devices")
_CHOICES = {
    "augment": ("none", "autoaugment", "randaugment"),
    "lr_schedule": ("exponential", "cosine", "constant"),
    "optimizer": ("rmsprop_tf", "rmsprop", "sgd", "adam"),
    "resize_method": pipeline_options.RESIZE_METHODS,
    "remat": ("none", "all", "high_res"),
    "checkpoint_data_position": ("auto", "true", "false"),
    "backend": BACKENDS,
    "strategy": STRATEGIES,
    "mixed_precision": PRECISIONS,
    "jit_compile": ("auto", "true", "false"),
}


def validate(config) -> scaling_lib.Scaling:
    """Fails before anything is built or written, naming the field and the value; returns
    the model's scaling it checked (the one the run spec is resolved with)."""
    for name in _POSITIVE_INTS:
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"config.{name} must be an integer >= 1, got {value!r}")
    for name, choices in _CHOICES.items():
        if str(config[name]).lower() not in choices:
            raise ValueError(f"config.{name} must be one of {', '.join(choices)}, "
                             f"got {config[name]!r}")
    for name in ("base_learning_rate", "weight_decay", "label_smoothing", "ema_decay",
                 "mixup_alpha", "cutmix_alpha", "warmup_epochs", "freeze_backbone_epochs"):
        if not config[name] >= 0:
            raise ValueError(f"config.{name} must be >= 0, got {config[name]!r}")
    if not config.ema_decay < 1 or not config.label_smoothing < 1:
        raise ValueError("config.ema_decay and config.label_smoothing must be < 1")
    for name, top in (("crop_area_range", 1.0), ("crop_aspect_range", float("inf"))):
        lo, hi = _pair(config, name)
        if not 0 < lo <= hi <= top:
            raise ValueError(f"config.{name} must be (low, high) with 0 < low <= high"
                             + (" <= 1" if top == 1.0 else "") + f", got {config[name]!r}")
    crop = config.eval_crop_fraction
    if crop is not None and crop != "none" and (
            isinstance(crop, (bool, str)) or not 0 < float(crop) <= 1):
        raise ValueError("config.eval_crop_fraction must be None (the official size / "
                         f"(size + 32)), a fraction in (0, 1] or 'none', got {crop!r}")
    if config.data_service is not None and "://" not in config.data_service:
        raise ValueError("config.data_service must be an address like grpc://host:port, got "
                         f"{config.data_service!r}")
    for name in ("steps_per_epoch", "eval_steps"):
        if config.get(name) is not None and config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1 (or None: the whole split), got "
                             f"{config[name]!r}")
    if config.data_dir and not (str(config.dataset).startswith("tfds:")
                                or config.dataset == SYNTHETIC):
        raise ValueError(
            f"--data_dir={config.data_dir!r} is for tfds: datasets (and synthetic); dataset "
            f"{config.dataset!r} is read from where it names: drop --data_dir, or give the "
            "folder or TFRecords as --dataset")
    if config.dataset not in (SYNTHETIC, RANDOM):
        problem = source_specs.local_problem(str(config.dataset))
        if problem:
            raise ValueError(problem)
    if config.num_classes is not None and config.num_classes < 2:
        raise ValueError(f"config.num_classes must be >= 2 (or None: the dataset's), got "
                         f"{config.num_classes!r}")
    return _check_model(config)


def _pair(config, name) -> tuple[float, float]:
    value = config[name]
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"config.{name} must be two numbers (low, high), got {value!r}") from None
    return lo, hi


def _check_model(config) -> scaling_lib.Scaling:
    """phi or the coefficients, and both within the bounds of modeling.scaling. phi with
    image_size is allowed: the formula at another base resolution (as ``scale fit`` prints)."""
    lo, hi = scaling_lib.MIN_COEFFICIENT, scaling_lib.MAX_COEFFICIENT
    bounds = (f"width and depth coefficients in [{lo:g}, {hi:g}], image size in "
              f"[{scaling_lib.MIN_IMAGE_SIZE}, {scaling_lib.MAX_IMAGE_SIZE}]")
    if config.phi is not None:
        given = [f"config.{f}={config[f]!r}" for f in ("width_coefficient", "depth_coefficient")
                 if config[f] is not None]
        if given:
            raise ValueError(
                f"config.phi={config.phi:g} and {given[0]} are both set: phi sets the width "
                "and depth coefficients by the formula; give phi (and image_size for another "
                "resolution) or the coefficients, not both")
        for name in ("alpha", "beta", "gamma"):
            if not 0 < config[name] < float("inf"):
                raise ValueError(f"config.{name} must be a positive number, got "
                                 f"{config[name]!r}")
        gamma = 1.0 if config.image_size is not None else config.gamma  # size given
        low, high = scaling_lib.phi_bounds(config.alpha, config.beta, gamma)
        if not low <= config.phi <= high:
            raise ValueError(
                f"config.phi={config.phi:g} is out of range: with alpha={config.alpha:g}, "
                f"beta={config.beta:g}, gamma={config.gamma:g} phi must be in "
                f"[{low:.2f}, {high:.2f}] ({bounds})")
    for name in ("width_coefficient", "depth_coefficient"):
        if config[name] is not None and not lo <= config[name] <= hi:
            raise ValueError(f"config.{name}={config[name]:g} is out of range [{lo:g}, {hi:g}]")
    if config.image_size is not None:
        scaling_lib.check_image_size(config.image_size, "config.image_size")
    for name in ("dropout", "drop_connect_rate"):
        if config[name] is not None and not 0 <= config[name] < 1:
            raise ValueError(f"config.{name} must be in [0, 1), got {config[name]!r}")
    scaling = model_scaling(config)
    if scaling.resolution > scaling_lib.MAX_IMAGE_SIZE:
        batch = config.global_batch_size
        size = activation_bytes(scaling, batch)
        raise ValueError(
            f"config.image_size={scaling.resolution} is above {scaling_lib.MAX_IMAGE_SIZE} "
            f"pixels, the largest accepted: one training batch of {batch} would keep about "
            f"{_human_bytes(size)} of activations ({_human_bytes(size / batch)} per image; an "
            "estimate: the float32 feature maps kept for the backward pass)")
    return scaling


def activation_bytes(scaling: scaling_lib.Scaling, batch_size: int = 1) -> float:
    """Estimated float32 activations a training step keeps for the backward pass: the output
    of every convolution, its batch norm and its activation (hand-counted from the block
    structure, no Keras: a guide to memory, not a measurement)."""
    size = -(-scaling.resolution // 2)
    values = 3 * scaling.stem_filters * size**2
    for block in scaling.blocks():
        if block.expand_ratio != 1:
            values += 3 * block.expanded_filters * size**2
        size = -(-size // block.strides)
        values += 4 * block.expanded_filters * size**2  # depthwise, BN, swish, SE multiply
        values += 2 * block.filters_out * size**2  # project conv, BN
    values += 3 * scaling.head_filters * size**2
    return 4.0 * values * batch_size


def _human_bytes(n: float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"
