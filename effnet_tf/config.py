"""The default training configuration: the paper's ImageNet recipe (REFERENCE.md section 5).

Recipes in ``configs/`` import this and override a few fields; the command line overrides
single fields (``--config.global_batch_size=512``) or uses the shorthand flags of
``effnet_tf.train`` (``--variant b4``).
"""

from __future__ import annotations

import ml_collections


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
    c.remat = False  # recompute block interiors in the backward pass (less memory)
    c.batch_norm_momentum = 0.99

    # Data: any source of the pipelines package ("tfds:<name>", TFRecords, an image folder),
    # "synthetic" (generated JPEGs) or "random" (random pixels in memory, for speed tests).
    c.dataset = "tfds:imagenet2012"
    c.data_dir = ml_collections.FieldReference(None, field_type=str)
    c.train_split = "train"
    c.eval_split = "validation"
    c.num_classes = ml_collections.FieldReference(None, field_type=int)  # default: source's
    c.augment = "autoaugment"  # none | autoaugment | randaugment
    c.randaugment_layers = 2
    c.randaugment_magnitude = 10
    c.mixup_alpha = 0.0
    c.cutmix_alpha = 0.0
    c.mix_per_image = False  # one mixup ratio / CutMix box per image instead of per batch
    c.cache = False
    c.label_offset = ml_collections.FieldReference(None, field_type=int)  # TFRecords: 1 (1-based
    # labels, ImageNet's) unless metadata.json says otherwise; 0 for 0-based shards
    # Crops (the official ImageNet ones by default; small low-resolution images want others).
    c.crop_area_range = (0.08, 1.0)  # training: random-sized crop area, fraction of the image
    c.crop_aspect_range = (3.0 / 4.0, 4.0 / 3.0)
    c.flip = True  # random horizontal flip in training
    c.eval_crop_fraction = ml_collections.FieldReference(None, field_type=object)  # None: the
    # official size / (size + 32); a fraction of the short side; "none": resize the whole image
    c.resize_method = "bicubic"  # bicubic (official) | bilinear
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


_POSITIVE_INTS = ("global_batch_size", "epochs", "steps_per_execution", "checkpoint_every_steps",
                  "keep_checkpoints", "log_every_steps", "cpu_devices")
_CHOICES = {
    "augment": ("none", "autoaugment", "randaugment"),
    "lr_schedule": ("exponential", "cosine", "constant"),
    "optimizer": ("rmsprop_tf", "rmsprop", "sgd", "adam"),
    "resize_method": ("bicubic", "bilinear"),
    "checkpoint_data_position": ("auto", "true", "false"),
}


def validate(config) -> None:
    """Fails before anything is built or written, naming the field and the value."""
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
    if config.steps_per_epoch is not None and config.steps_per_epoch < 1:
        raise ValueError(f"config.steps_per_epoch must be >= 1, got {config.steps_per_epoch!r}")


def _pair(config, name) -> tuple[float, float]:
    value = config[name]
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"config.{name} must be two numbers (low, high), got {value!r}") from None
    return lo, hi
