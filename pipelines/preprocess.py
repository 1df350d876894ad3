"""Decode, crop, resize, flip: the official EfficientNet input preprocessing.

The official recipe (tensorflow/tpu ``models/official/efficientnet/preprocessing.py``).
Train: a random-sized crop (area 0.08-1 of the image, aspect 3/4-4/3, min object covered 0.1,
10 attempts, else the eval crop) sampled from the image's shape and decoded alone
(``decode_and_crop_jpeg``), bicubic resize, random horizontal flip. Eval: the centred square
of side ``int(size / (size + CROP_PADDING) * min(h, w))``, bicubic resize.

Knobs for other data, official values by default: the crop's area and aspect ranges
(``crop_area_range=(1.0, 1.0)``: the whole image, never cropped), ``flip`` (off for digits
and text), the eval ``crop_fraction`` (``"none"``: the whole image resized to a square, what
small low-resolution images need: a 0.5 crop at 32 px throws half the digit away) and
``resize_method`` (``"bilinear"`` is NVIDIA's EfficientNet input, DeepLearningExamples
``TensorFlow2/Classification/ConvNets``; cheaper than bicubic).

Every function here maps tensors to tensors with no Python-side state, so it gives the same
result eagerly and inside ``Dataset.map``. Random ops are stateless and take an explicit
``seed`` (an int tensor of shape [2]); the pipeline hands each image its own seed, which is
what makes a seeded pipeline reproducible. Images come out as float32 RGB in [0, 255]: the
model normalizes (mean/std) itself, so nothing here does.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from effnet_tf.modeling.scaling import Scaling, check_image_size

from pipelines.options import (  # noqa: F401  (re-exported: the public names of this module)
    AREA_RANGE,
    ASPECT_RATIO_RANGE,
    CROP_PADDING,
    MAX_ATTEMPTS,
    MIN_OBJECT_COVERED,
    NO_CROP,
    RESIZE_METHODS,
    check_crop_ranges,
    check_resize_method,
    eval_crop_fraction,
)

# libjpeg can decode at 1/2, 1/4 or 1/8 scale (DCT scaling), far cheaper than decoding whole.
JPEG_SCALES = (2, 4, 8)

Seed = tf.Tensor  # int32/int64, shape [2], as the tf.random.stateless_* ops take it


def image_size_of(image_size: int | None = None, variant=None) -> int:
    """The square input size: ``image_size`` as given, or the resolution of ``variant``.

    ``variant`` is anything ``Scaling.resolve`` takes: a name (``"b4"`` -> 380), a
    ``Scaling`` or a phi number.
    """
    if (image_size is None) == (variant is None):
        raise ValueError(
            "give exactly one of image_size= or variant= "
            f"(got image_size={image_size!r}, variant={variant!r})"
        )
    if variant is not None:
        return Scaling.resolve(variant).resolution
    return check_image_size(image_size)


def center_crop_size(height, width, image_size: int, crop_fraction: float | None = None):
    """Side of the eval crop: ``int(image_size / (image_size + 32) * min(height, width))``.

    With ``crop_fraction`` (e.g. 0.875) the side is ``int(crop_fraction * min(h, w))``
    (``"none"`` is no square crop: see ``center_crop_window``).
    Computed in float64 so that it equals the Python expression exactly (float32 can round
    e.g. ``380 / 412 * 412`` up to 380 where Python gets 379).
    """
    fraction = eval_crop_fraction(image_size, crop_fraction)
    short_side = tf.cast(tf.minimum(height, width), tf.float64)
    side = tf.cast(tf.constant(fraction, tf.float64) * short_side, tf.int32)
    return tf.maximum(side, 1)








def center_crop_window(image_shape, image_size: int, crop_fraction: float | None = None):
    """``[offset_y, offset_x, height, width]`` of the centred square eval crop (the whole
    image when ``crop_fraction="none"``)."""
    height = tf.cast(image_shape[0], tf.int32)
    width = tf.cast(image_shape[1], tf.int32)
    if crop_fraction == NO_CROP:
        return tf.stack([0, 0, height, width])
    side = center_crop_size(height, width, image_size, crop_fraction)
    return tf.stack([(height - side + 1) // 2, (width - side + 1) // 2, side, side])


def random_crop_window(
    image_shape,
    seed: Seed,
    image_size: int,
    *,
    area_range=AREA_RANGE,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    min_object_covered: float = MIN_OBJECT_COVERED,
    max_attempts: int = MAX_ATTEMPTS,
):
    """``[offset_y, offset_x, height, width]`` of a random-sized training crop.

    When every attempt fails the sampler returns the whole image; the official recipe then
    falls back to the eval center crop, and so does this. An area range of ``(1.0, 1.0)``
    asks for the whole image itself: no sampling, no fallback.
    """
    image_shape = tf.cast(image_shape, tf.int32)
    if float(area_range[0]) >= 1.0:
        return tf.stack([0, 0, image_shape[0], image_shape[1]])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        seed=seed,
        min_object_covered=min_object_covered,
        aspect_ratio_range=aspect_ratio_range,
        area_range=area_range,
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
    whole_image = tf.reduce_all(tf.equal(size[:2], image_shape[:2]))
    return tf.where(whole_image, center_crop_window(image_shape, image_size), sampled)


def jpeg_scale_index(window, min_size: int | None) -> tf.Tensor:
    """How many of ``JPEG_SCALES`` the crop ``window`` can be decoded at while its short side
    stays >= ``min_size`` (0: full scale; always 0 when ``min_size`` is None)."""
    if min_size is None:
        return tf.constant(0)
    short = tf.minimum(window[2], window[3])
    return tf.add_n([tf.cast(short // scale >= min_size, tf.int32) for scale in JPEG_SCALES])


def decode_and_crop(image_bytes, window_fn: Callable, min_size: int | None = None) -> tf.Tensor:
    """Decodes the crop ``window_fn(image_shape)`` of an encoded image, as uint8 RGB.

    JPEGs are decoded crop-only (far cheaper than the whole image); PNG, GIF (first frame),
    BMP and WebP are decoded whole and then cropped. Grayscale, CMYK and RGBA inputs all come
    out with 3 channels. A corrupt image raises ``InvalidArgumentError``: the pipeline skips
    and counts those (``pipelines.skipping``).

    ``min_size`` (the fast decode of large photos): a JPEG crop whose short side is at least
    2, 4 or 8 times ``min_size`` is decoded at that reduced scale by libjpeg (the largest
    that keeps the short side >= ``min_size``), which costs a fraction of a full-scale decode
    and of the resize after it. Not the official preprocessing (which decodes at full scale
    and lets the bicubic resize do all the downscaling), hence off by default.
    """

    def jpeg():
        window = window_fn(tf.image.extract_jpeg_shape(image_bytes))

        def at_scale(scale):
            # The crop window of a scaled decode is in scaled coordinates.
            scaled = window if scale == 1 else window // scale
            return lambda: tf.io.decode_and_crop_jpeg(image_bytes, scaled, channels=3,
                                                      ratio=scale)

        if min_size is None:
            return at_scale(1)()
        return tf.switch_case(jpeg_scale_index(window, min_size),
                               [at_scale(scale) for scale in (1, *JPEG_SCALES)])

    def other_format():
        image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
        window = window_fn(tf.shape(image))
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    image = tf.cond(tf.io.is_jpeg(image_bytes), jpeg, other_format)
    image.set_shape([None, None, 3])
    return image


def random_flip(image, seed: Seed) -> tf.Tensor:
    return tf.image.stateless_random_flip_left_right(image, seed)


def resize(image, image_size: int, method: str = "bicubic") -> tf.Tensor:
    """Resize to a square (``tf.image.resize``, antialias off as in the official input),
    float32 clipped to [0, 255] (bicubic overshoots at edges)."""
    # Same result, but TF's bicubic kernel is about 35% faster on float32 input than on uint8.
    image = tf.image.resize(tf.cast(image, tf.float32), [image_size, image_size], method=method)
    return tf.clip_by_value(image, 0.0, 255.0)


def to_uint8(image) -> tf.Tensor:
    return tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)


# ---- the two preprocessing factories the pipeline uses ------------------------------------


def make_train_preprocess(
    image_size: int,
    *,
    augment: Callable | None = None,
    crop_area_range=AREA_RANGE,
    crop_aspect_range=ASPECT_RATIO_RANGE,
    flip: bool = True,
    resize_method: str = "bicubic",
    fast_decode: bool = False,
) -> Callable:
    """``fn(image_bytes, seed) -> float32 [image_size, image_size, 3]`` for training.

    ``augment`` is an ``fn(uint8 image, seed) -> uint8 image`` applied after the resize
    (``pipelines.augment.randaugment(...)`` or ``autoaugment()``), as the official recipe does.
    ``crop_area_range``, ``crop_aspect_range``, ``flip``, ``resize_method``: see the module
    doc. ``fast_decode``: decode large JPEG crops at a reduced scale (see ``decode_and_crop``).
    """
    image_size = check_image_size(image_size)
    area_range, aspect_ratio_range = check_crop_ranges(crop_area_range, crop_aspect_range)
    check_resize_method(resize_method)

    @tf.autograph.experimental.do_not_convert  # plain TF ops; autograph only slows tracing
    def preprocess(image_bytes, seed):
        crop_seed, flip_seed, augment_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed, 3)
        )
        image = decode_and_crop(
            image_bytes,
            lambda shape: random_crop_window(
                shape,
                crop_seed,
                image_size,
                area_range=area_range,
                aspect_ratio_range=aspect_ratio_range,
            ),
            min_size=image_size if fast_decode else None,
        )
        # Flipping commutes with the (symmetric) resize; on the small uint8 crop it is cheaper.
        if flip:
            image = random_flip(image, flip_seed)
        image = resize(image, image_size, resize_method)
        if augment is not None:
            image = tf.cast(augment(to_uint8(image), augment_seed), tf.float32)
        return tf.ensure_shape(image, [image_size, image_size, 3])

    return preprocess


def make_eval_preprocess(
    image_size: int, *, crop_fraction: float | str | None = None, resize_method: str = "bicubic",
    fast_decode: bool = False,
) -> Callable:
    """``fn(image_bytes) -> float32 [image_size, image_size, 3]``: center crop (none when
    ``crop_fraction="none"``) and resize; ``fast_decode`` as in ``make_train_preprocess``."""
    image_size = check_image_size(image_size)
    eval_crop_fraction(image_size, crop_fraction)  # fail here, not inside Dataset.map
    check_resize_method(resize_method)

    @tf.autograph.experimental.do_not_convert
    def preprocess(image_bytes):
        image = decode_and_crop(
            image_bytes, lambda shape: center_crop_window(shape, image_size, crop_fraction),
            min_size=image_size if fast_decode else None,
        )
        return tf.ensure_shape(resize(image, image_size, resize_method),
                               [image_size, image_size, 3])

    return preprocess
