"""The pipeline's option groups and their official defaults: the one place for each (no
TensorFlow here, so that a training config can take its defaults from this module before
TensorFlow loads).

The official values (tensorflow/tpu ``models/official/efficientnet/preprocessing.py``):
training takes a random-sized crop of 8-100% of the image's area with an aspect ratio in
[3/4, 4/3] (10 attempts, min object covered 0.1), resized bicubic, flipped at random;
evaluation takes the centred square of side ``size / (size + 32)`` of the short side,
resized bicubic.

``Preprocess`` says how an encoded image becomes a ``size x size`` array in training and in
evaluation; ``EvalPreprocess`` is its evaluation half bound to an image size: the one object
that a trained run's evaluation, ``predict``, the SavedModel's ``serve_image_bytes`` and int8
calibration all prepare images with. ``Augment``, ``Mix`` and ``Service`` group the other
knobs of ``pipelines.build``; ``Batching`` its batch and order options; ``Runtime`` the
pipeline's place in a job (its seed, its shard, the service workers that run it, the counter
of its skipped images), which no config file holds.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Callable

# The official eval crop: a centred square of side size / (size + CROP_PADDING) of the short side.
CROP_PADDING = 32
# Random-sized crop of the official training recipe.
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
MIN_OBJECT_COVERED = 0.1
MAX_ATTEMPTS = 10
NO_CROP = "none"  # eval crop_fraction: resize the whole image, aspect not kept
RESIZE_METHODS = ("bicubic", "bilinear")
AUGMENT_POLICIES = (None, "randaugment", "autoaugment")
# RandAugment as the paper's later checkpoints: N = 2 layers, magnitude 10 (B5 17, B7 28).
RANDAUGMENT_LAYERS = 2
RANDAUGMENT_MAGNITUDE = 10.0
DEFAULT_SHUFFLE_BUFFER = 1024  # records per input pipeline, as the official ImageNet input
OUTPUT_DTYPES = ("float32", "bfloat16", "uint8")


def check_crop_ranges(crop_area_range, crop_aspect_range):
    """The training crop's ranges as float pairs: ``0 < lo <= hi <= 1`` for the area (a
    fraction of the image), ``0 < lo <= hi`` for the aspect (width / height)."""
    ranges = []
    for name, value, top in (("crop_area_range", crop_area_range, 1.0),
                             ("crop_aspect_range", crop_aspect_range, float("inf"))):
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            lo = hi = float("nan")
        if not 0.0 < lo <= hi <= top:
            bound = " <= 1" if top == 1.0 else ""
            raise ValueError(f"{name} must be (lo, hi) with 0 < lo <= hi{bound}, got {value!r}")
        ranges.append((lo, hi))
    return tuple(ranges)


def eval_crop_fraction(image_size: int, crop_fraction: float | str | None = None) -> float:
    """The share of the short side the eval crop keeps: 0.875 at 224, 0.949 at 600."""
    if crop_fraction is None or crop_fraction == NO_CROP:
        return image_size / (image_size + CROP_PADDING)
    if isinstance(crop_fraction, (bool, str)) or not 0.0 < float(crop_fraction) <= 1.0:
        raise ValueError(f"crop_fraction must be None, a number in (0, 1] or {NO_CROP!r}, got "
                         f"{crop_fraction!r}")
    return float(crop_fraction)


def check_resize_method(resize_method: str) -> str:
    if resize_method not in RESIZE_METHODS:
        raise ValueError(f"resize_method must be one of {RESIZE_METHODS}, got {resize_method!r}")
    return resize_method


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How an encoded image becomes a ``size x size`` float array in [0, 255].

    Training: the random-sized crop (``crop_area_range`` of the area, ``(1.0, 1.0)``: the
    whole image; ``crop_aspect_range`` width / height), decoded alone, resized, ``flip``ped at
    random. Evaluation: the centred square (``eval_crop_fraction`` None: the official
    ``size / (size + 32)``; a number: that share of the short side; ``"none"``: the whole image
    resized, aspect not kept), resized. ``resize_method``: ``"bicubic"`` (official) or
    ``"bilinear"``. ``fast_decode``: JPEG crops of 2x, 4x or 8x the size are decoded at that
    reduced scale (libjpeg; not the official full-scale decode, so off by default).
    """

    crop_area_range: tuple = AREA_RANGE
    crop_aspect_range: tuple = ASPECT_RATIO_RANGE
    flip: bool = True
    eval_crop_fraction: float | str | None = None
    resize_method: str = "bicubic"
    fast_decode: bool = False

    def __post_init__(self):
        area, aspect = check_crop_ranges(self.crop_area_range, self.crop_aspect_range)
        object.__setattr__(self, "crop_area_range", area)
        object.__setattr__(self, "crop_aspect_range", aspect)
        for name in ("flip", "fast_decode"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        eval_crop_fraction(224, self.eval_crop_fraction)
        check_resize_method(self.resize_method)

    def for_eval(self, image_size: int) -> "EvalPreprocess":
        return EvalPreprocess(image_size, self.eval_crop_fraction, self.resize_method,
                              self.fast_decode)


@dataclasses.dataclass(frozen=True)
class EvalPreprocess:
    """A trained model's input contract: encoded image -> float32 ``[size, size, 3]`` RGB in
    [0, 255] (the model normalizes itself). ``fn()`` makes the function that prepares one
    image (eagerly or in a graph); ``describe()`` says it in words."""

    image_size: int
    crop_fraction: float | str | None = None
    resize_method: str = "bicubic"
    fast_decode: bool = False

    def __post_init__(self):
        eval_crop_fraction(self.image_size, self.crop_fraction)
        check_resize_method(self.resize_method)

    def fn(self) -> Callable:
        """``fn(image_bytes) -> float32 [size, size, 3]`` (imports TensorFlow)."""
        from pipelines.preprocess import make_eval_preprocess

        return make_eval_preprocess(self.image_size, crop_fraction=self.crop_fraction,
                                    resize_method=self.resize_method,
                                    fast_decode=self.fast_decode)

    def describe(self) -> str:
        size = self.image_size
        if self.crop_fraction == NO_CROP:
            crop = "the whole image (aspect not kept)"
        else:
            crop = (f"the centred square of {eval_crop_fraction(size, self.crop_fraction):.4f} "
                    "of the short side")
        return (f"RGB, {crop} resized {self.resize_method} to {size} x {size}, float pixels "
                "in [0, 255] (the model normalizes them)")


@dataclasses.dataclass(frozen=True)
class Augment:
    """Per-image augmentation after the crop: ``policy`` None, ``"randaugment"``
    (``layers`` ops of ``magnitude``), ``"autoaugment"`` (policy v0), or a callable
    ``fn(uint8 image, seed) -> uint8 image``."""

    policy: str | Callable | None = None
    layers: int = RANDAUGMENT_LAYERS
    magnitude: float = RANDAUGMENT_MAGNITUDE

    def __post_init__(self):
        if not (callable(self.policy) or self.policy in AUGMENT_POLICIES):
            raise ValueError(f"augment must be one of {AUGMENT_POLICIES} or a callable, got "
                             f"{self.policy!r}")

    @classmethod
    def of(cls, value) -> "Augment":
        """An ``Augment`` from itself, a policy name, a callable, ``"none"`` or None."""
        if isinstance(value, Augment):
            return value
        return cls(None if value == "none" else value)


@dataclasses.dataclass(frozen=True)
class Mix:
    """Mixup / CutMix of training batches: one ratio (and one CutMix box) per batch, or per
    image with ``per_image`` (timm's ``mode="elem"``); 0 turns each off."""

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    per_image: bool = False

    def __post_init__(self):
        for name in ("mixup_alpha", "cutmix_alpha"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0


@dataclasses.dataclass(frozen=True)
class Service:
    """The training input on tf.data service workers (``python -m pipelines.service``):
    ``address`` ``grpc://host:port`` of the dispatcher; ``mode`` ``"distributed_epoch"``,
    ``"parallel_epochs"`` or None (auto); trainers of one run share ``job_name``."""

    address: str
    mode: str | None = None
    job_name: str | None = None


@dataclasses.dataclass(frozen=True)
class Batching:
    """Order and batching: ``repeat``, ``drop_remainder`` and ``shuffle`` (files and records)
    default to ``training`` (a shuffled one-pass evaluation pipeline: calibration images
    from all over a sorted split);
    ``pad_remainder`` fills the last eval batch with blanks of weight 0 (static shapes, none
    dropped); ``cache`` True (memory) or a file path; ``dtype`` of the images; ``one_hot``
    labels."""

    drop_remainder: bool | None = None
    pad_remainder: bool = False
    repeat: bool | None = None
    shuffle: bool | None = None
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    cache: bool | str = False
    dtype: str = "float32"
    one_hot: bool = False

    def __post_init__(self):
        if str(self.dtype) not in OUTPUT_DTYPES:
            raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {self.dtype!r}")


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How this copy of the pipeline runs within a job, none of it a property of the data:

    ``seed``: its random streams (file order, shuffle, crops, augmentation, mixing), derived
    per input pipeline; None: not reproducible, faster. ``input_context``: its shard under
    ``tf.distribute`` (``distribute_datasets_from_function``). ``service``: a ``Service``
    whose workers run it instead (training only); the service then decides the sharding and
    the seed is not used (which worker makes which batch depends on timing).
    ``skip_counter``: the ``SkipCounter`` its undecodable images count into (None: the
    process-wide one behind ``pipelines.skipped_images()``).
    """

    seed: int | None = None
    input_context: object = None  # tf.distribute.InputContext (no TensorFlow in this module)
    service: Service | None = None
    skip_counter: object = None  # pipelines.SkipCounter

    def __post_init__(self):
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(
                self.seed, numbers.Integral)):
            raise ValueError(f"Runtime(seed=) must be an integer or None, got {self.seed!r}")
        if self.service is not None and not isinstance(self.service, Service):
            raise ValueError("Runtime(service=) takes a pipelines.Service(address, ...), got "
                             f"{self.service!r}")


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or (
            batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)
