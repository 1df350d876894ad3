"""RandAugment and AutoAugment (policy v0) as stateless TF ops on uint8 RGB images.

Written here because neither tf.image nor Keras has these ops with the official semantics
(PIL-style enhance factors, gray fill value 128, level-to-argument rules, policy v0), and
because every op must run inside ``Dataset.map`` with an explicit ``seed`` (reproducible
pipelines, eager == graph). Images are ``uint8 [H, W, 3]``; every op keeps shape and dtype.

Levels are on the official scale where 10 is "full strength" (``MAX_LEVEL``); larger
magnitudes (B5 used M = 17, B7 M = 28) extrapolate the same rules.
"""

from __future__ import annotations

import math
from typing import Callable

import tensorflow as tf

MAX_LEVEL = 10.0
FILL_VALUE = 128  # gray, for pixels that geometric ops and cutout leave empty
# Official constants (in pixels, whatever the image size).
RANDAUGMENT_TRANSLATE_CONST, RANDAUGMENT_CUTOUT_CONST = 100.0, 40.0
AUTOAUGMENT_TRANSLATE_CONST, AUTOAUGMENT_CUTOUT_CONST = 250.0, 100.0

# AutoAugment ImageNet policy v0: 25 sub-policies of two (op, probability, level) each.
POLICY_V0 = (
    (("Equalize", 0.8, 1), ("ShearY", 0.8, 4)),
    (("Color", 0.4, 9), ("Equalize", 0.6, 3)),
    (("Color", 0.4, 1), ("Rotate", 0.6, 8)),
    (("Solarize", 0.8, 3), ("Equalize", 0.4, 7)),
    (("Solarize", 0.4, 2), ("Solarize", 0.6, 2)),
    (("Color", 0.2, 0), ("Equalize", 0.8, 8)),
    (("Equalize", 0.4, 8), ("SolarizeAdd", 0.8, 3)),
    (("ShearX", 0.2, 9), ("Rotate", 0.6, 8)),
    (("Color", 0.6, 1), ("Equalize", 1.0, 2)),
    (("Invert", 0.4, 9), ("Rotate", 0.6, 0)),
    (("Equalize", 1.0, 9), ("ShearY", 0.6, 3)),
    (("Color", 0.4, 7), ("Equalize", 0.6, 0)),
    (("Posterize", 0.4, 6), ("AutoContrast", 0.4, 7)),
    (("Solarize", 0.6, 8), ("Color", 0.6, 9)),
    (("Solarize", 0.2, 4), ("Rotate", 0.8, 9)),
    (("Rotate", 1.0, 7), ("TranslateY", 0.8, 9)),
    (("ShearX", 0.0, 0), ("Solarize", 0.8, 4)),
    (("ShearY", 0.8, 0), ("Color", 0.6, 4)),
    (("Color", 1.0, 0), ("Rotate", 0.6, 2)),
    (("Equalize", 0.8, 4), ("Equalize", 0.0, 8)),
    (("Equalize", 1.0, 4), ("AutoContrast", 0.6, 2)),
    (("ShearY", 0.4, 7), ("SolarizeAdd", 0.6, 7)),
    (("Posterize", 0.8, 2), ("Solarize", 0.6, 10)),
    (("Solarize", 0.6, 8), ("Equalize", 0.6, 1)),
    (("Color", 0.8, 6), ("Rotate", 0.4, 5)),
)


# ---- pixel ops ----------------------------------------------------------------------------


def _to_float(image):
    return tf.cast(image, tf.float32)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def blend(degenerate, image, factor) -> tf.Tensor:
    """PIL ImageEnhance: ``degenerate + factor * (image - degenerate)``, clipped to uint8."""
    degenerate, image = _to_float(degenerate), _to_float(image)
    return _to_uint8(degenerate + factor * (image - degenerate))


def invert(image):
    return 255 - image


def solarize(image, threshold):
    """Inverts the pixels at or above ``threshold`` (256 leaves the image unchanged)."""
    values = tf.cast(image, tf.int32)
    return tf.cast(tf.where(values < threshold, values, 255 - values), tf.uint8)


def solarize_add(image, addition, threshold=128):
    """Adds ``addition`` to the pixels below ``threshold``."""
    values = tf.cast(image, tf.int32)
    added = tf.clip_by_value(values + addition, 0, 255)
    return tf.cast(tf.where(values < threshold, added, values), tf.uint8)


def posterize(image, bits):
    """Keeps the ``bits`` most significant bits of each channel (0 to 8)."""
    shift = tf.cast(8 - tf.clip_by_value(bits, 0, 8), tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def color(image, factor):
    """Saturation: blends with the grayscale image."""
    gray = tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(_to_float(image)))
    return blend(gray, image, factor)


def contrast(image, factor):
    """Blends with a flat image at the mean gray level."""
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(_to_float(image)))
    return blend(tf.fill(tf.shape(image), mean), image, factor)


def brightness(image, factor):
    """Blends with black."""
    return blend(tf.zeros_like(image), image, factor)


def sharpness(image, factor):
    """Blends with the image smoothed by PIL's 3x3 SMOOTH kernel (borders kept as they are)."""
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(_to_float(image)[None], kernel, [1, 1, 1, 1], "VALID")[0]
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    interior = tf.pad(tf.ones([height - 2, width - 2, 3], tf.bool), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior, smooth, _to_float(image))
    return blend(degenerate, image, factor)


def auto_contrast(image):
    """Stretches each channel so that its darkest pixel is 0 and its brightest 255."""
    values = _to_float(image)
    low = tf.reduce_min(values, axis=[0, 1])
    high = tf.reduce_max(values, axis=[0, 1])
    scale = 255.0 / tf.maximum(high - low, 1.0)
    stretched = (values - low) * scale
    return _to_uint8(tf.where(high > low, stretched, values))


def equalize(image):
    """PIL ImageOps.equalize, channel by channel."""
    values = tf.cast(image, tf.int32)
    # One histogram per channel: channel c's values are counted in bins [256 c, 256 c + 256).
    offsets = tf.range(3) * 256
    hist = tf.reshape(tf.math.bincount(values + offsets, minlength=768, maxlength=768), [3, 256])
    last_nonzero = tf.reduce_max(tf.where(hist > 0, tf.range(256), -1), axis=1)
    last_count = tf.gather(hist, last_nonzero, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    lut = (tf.cumsum(hist, axis=1, exclusive=True) + step[:, None] // 2) // tf.maximum(
        step[:, None], 1
    )
    lut = tf.clip_by_value(lut, 0, 255)
    equalized = tf.gather(tf.reshape(lut, [-1]), values + offsets)
    return tf.cast(tf.where(step > 0, equalized, values), tf.uint8)


def cutout(image, pad_size, seed):
    """Fills a gray square of side up to ``2 * pad_size`` at a random centre."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    centre = tf.random.stateless_uniform([2], seed, maxval=1.0)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (
        (rows >= cy - pad_size) & (rows < cy + pad_size) & (cols >= cx - pad_size)
        & (cols < cx + pad_size)
    )
    return tf.where(inside[:, :, None], tf.constant(FILL_VALUE, tf.uint8), image)


# ---- geometric ops ------------------------------------------------------------------------


def transform(image, matrix):
    """Samples ``image`` at ``(a0 x + a1 y + a2, a3 x + a4 y + a5)`` for each output pixel.

    ``matrix`` is the 8-vector of ``ImageProjectiveTransformV3``; empty pixels are gray.
    """
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=tf.cast(tf.reshape(matrix, [1, 8]), tf.float32),
        output_shape=tf.shape(image)[:2],
        fill_value=tf.constant(FILL_VALUE, tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return out[0]


def rotate(image, degrees):
    """Rotates about the image centre."""
    angle = tf.cast(degrees, tf.float32) * math.pi / 180.0
    cos, sin = tf.cos(angle), tf.sin(angle)
    cy = (tf.cast(tf.shape(image)[0], tf.float32) - 1.0) / 2.0
    cx = (tf.cast(tf.shape(image)[1], tf.float32) - 1.0) / 2.0
    matrix = [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, 0.0, 0.0]
    return transform(image, tf.stack(matrix))


def shear_x(image, shear):
    return transform(image, tf.stack([1.0, shear, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))


def shear_y(image, shear):
    return transform(image, tf.stack([1.0, 0.0, 0.0, shear, 1.0, 0.0, 0.0, 0.0]))


def translate_x(image, pixels):
    """Moves the content ``pixels`` to the right (left if negative)."""
    return transform(image, tf.stack([1.0, 0.0, -pixels, 0.0, 1.0, 0.0, 0.0, 0.0]))


def translate_y(image, pixels):
    """Moves the content ``pixels`` down (up if negative)."""
    return transform(image, tf.stack([1.0, 0.0, 0.0, 0.0, 1.0, -pixels, 0.0, 0.0]))


# ---- levels to arguments: the official rules ------------------------------------------------


def _random_sign(value, seed):
    return tf.where(tf.random.stateless_uniform([], seed) < 0.5, -value, value)


def _enhance_factor(level):
    return level / MAX_LEVEL * 1.8 + 0.1


def named_op(
    name: str,
    level: float,
    *,
    translate_const: float = RANDAUGMENT_TRANSLATE_CONST,
    cutout_const: float = RANDAUGMENT_CUTOUT_CONST,
) -> Callable:
    """``fn(image, seed) -> image`` for one of ``OP_NAMES`` at ``level`` (official rules).

    Rotate, Shear* and Translate* take a random sign; Cutout a random position.
    """
    fraction = float(level) / MAX_LEVEL
    signed = {
        "Rotate": (rotate, 30.0 * fraction),
        "ShearX": (shear_x, 0.3 * fraction),
        "ShearY": (shear_y, 0.3 * fraction),
        "TranslateX": (translate_x, translate_const * fraction),
        "TranslateY": (translate_y, translate_const * fraction),
    }
    if name in signed:
        op, value = signed[name]
        return lambda image, seed: op(image, _random_sign(tf.constant(value, tf.float32), seed))
    fixed = {
        "AutoContrast": auto_contrast,
        "Equalize": equalize,
        "Invert": invert,
        "Posterize": lambda image: posterize(image, int(fraction * 4)),
        "Solarize": lambda image: solarize(image, int(fraction * 256)),
        "SolarizeAdd": lambda image: solarize_add(image, int(fraction * 110)),
        "Color": lambda image: color(image, _enhance_factor(level)),
        "Contrast": lambda image: contrast(image, _enhance_factor(level)),
        "Brightness": lambda image: brightness(image, _enhance_factor(level)),
        "Sharpness": lambda image: sharpness(image, _enhance_factor(level)),
    }
    if name in fixed:
        op = fixed[name]
        return lambda image, seed: op(image)
    if name == "Cutout":
        pad_size = int(fraction * cutout_const)
        return lambda image, seed: cutout(image, pad_size, seed)
    raise ValueError(f"unknown augmentation op {name!r}; expected one of {', '.join(OP_NAMES)}")


# The 16 ops RandAugment chooses from.
OP_NAMES = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout",
    "SolarizeAdd",
)  # fmt: skip


def _switch(index, branches):
    """``tf.switch_case``; eagerly just the chosen branch (eager switch_case traces them all)."""
    if tf.executing_eagerly():
        return branches[int(index)]()
    return tf.switch_case(index, branches)


def _keep_shape(fn):
    def wrapped(image, seed):
        return tf.ensure_shape(fn(image, seed), image.shape)

    return wrapped


# ---- the two policies ------------------------------------------------------------------------


def randaugment(
    num_layers: int = 2,
    magnitude: float = 10.0,
    *,
    translate_const: float = RANDAUGMENT_TRANSLATE_CONST,
    cutout_const: float = RANDAUGMENT_CUTOUT_CONST,
) -> Callable:
    """RandAugment(N, M): ``num_layers`` ops drawn uniformly from the 16, each at ``magnitude``."""
    if num_layers < 0 or magnitude < 0:
        raise ValueError(f"need num_layers >= 0 and magnitude >= 0, got {num_layers}, {magnitude}")
    ops = [
        named_op(name, magnitude, translate_const=translate_const, cutout_const=cutout_const)
        for name in OP_NAMES
    ]

    @_keep_shape
    def augment(image, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2 * num_layers)
        for layer in range(num_layers):
            choice_seed, op_seed = seeds[2 * layer], seeds[2 * layer + 1]
            choice = tf.random.stateless_uniform([], choice_seed, 0, len(ops), dtype=tf.int32)
            image = _switch(choice, [lambda op=op: op(image, op_seed) for op in ops])
        return image

    return augment


def autoaugment(
    policy=POLICY_V0,
    *,
    translate_const: float = AUTOAUGMENT_TRANSLATE_CONST,
    cutout_const: float = AUTOAUGMENT_CUTOUT_CONST,
) -> Callable:
    """AutoAugment: one sub-policy drawn uniformly; each of its ops applied with its probability."""
    if policy == "v0":
        policy = POLICY_V0
    sub_policies = [
        [
            (named_op(name, level, translate_const=translate_const, cutout_const=cutout_const), prob)
            for name, prob, level in sub_policy
        ]
        for sub_policy in policy
    ]

    def apply_sub_policy(image, sub_policy, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2 * len(sub_policy))
        for i, (op, prob) in enumerate(sub_policy):
            apply = tf.random.stateless_uniform([], seeds[2 * i]) < prob
            image = tf.cond(apply, lambda op=op, s=seeds[2 * i + 1]: op(image, s), lambda: image)
        return image

    @_keep_shape
    def augment(image, seed):
        choice_seed, policy_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        choice = tf.random.stateless_uniform([], choice_seed, 0, len(sub_policies), dtype=tf.int32)
        branches = [
            lambda sub_policy=sub_policy: apply_sub_policy(image, sub_policy, policy_seed)
            for sub_policy in sub_policies
        ]
        return _switch(choice, branches)

    return augment
