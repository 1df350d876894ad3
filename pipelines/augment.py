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
# Ops compute in float32 (exact for 0..255) and avoid tf.where on whole images: TF's SelectV2
# is an order of magnitude slower than the arithmetic below.


def _to_float(image):
    return tf.cast(image, tf.float32)


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def _select(condition, if_true, if_false):
    """``tf.where(condition, if_true, if_false)`` on floats, as arithmetic (broadcasts)."""
    return if_false + tf.cast(condition, tf.float32) * (if_true - if_false)


def blend(degenerate, image, factor) -> tf.Tensor:
    """PIL ImageEnhance: ``degenerate + factor * (image - degenerate)``, clipped to uint8."""
    degenerate, image = _to_float(degenerate), _to_float(image)
    return _to_uint8(degenerate + factor * (image - degenerate))


def invert(image):
    return 255 - image


def solarize(image, threshold):
    """Inverts the pixels at or above ``threshold`` (256 leaves the image unchanged)."""
    values = _to_float(image)
    threshold = tf.cast(threshold, tf.float32)
    return tf.cast(_select(values >= threshold, 255.0 - values, values), tf.uint8)


def solarize_add(image, addition, threshold=128):
    """Adds ``addition`` to the pixels below ``threshold``."""
    values = _to_float(image)
    below = tf.cast(values < tf.cast(threshold, tf.float32), tf.float32)
    return _to_uint8(values + below * tf.cast(addition, tf.float32))


def posterize(image, bits):
    """Keeps the ``bits`` most significant bits of each channel (0 to 8)."""
    shift = tf.cast(8 - tf.clip_by_value(bits, 0, 8), tf.uint8)
    return tf.bitwise.left_shift(tf.bitwise.right_shift(image, shift), shift)


def color(image, factor):
    """Saturation: blends with the grayscale image."""
    gray = tf.image.rgb_to_grayscale(_to_float(image))
    return blend(gray, image, factor)  # broadcasts over the channels


def contrast(image, factor):
    """Blends with a flat image at the mean gray level."""
    mean = tf.reduce_mean(tf.image.rgb_to_grayscale(_to_float(image)))
    return blend(mean, image, factor)


def brightness(image, factor):
    """Blends with black."""
    return blend(0.0, image, factor)


def sharpness(image, factor):
    """Blends with the image smoothed by PIL's 3x3 SMOOTH kernel (borders kept as they are)."""
    values = _to_float(image)
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
    smooth = tf.nn.depthwise_conv2d(values[None], kernel, [1, 1, 1, 1], "VALID")[0]
    smooth = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    border = 1.0 - tf.pad(tf.ones([height - 2, width - 2, 1]), [[1, 1], [1, 1], [0, 0]])
    return blend(smooth + border * values, image, factor)


def auto_contrast(image):
    """Stretches each channel so that its darkest pixel is 0 and its brightest 255."""
    pixels = tf.reshape(image, [-1, 3])  # reducing uint8 rows: ~5x faster than floats [H, W]
    low = _to_float(tf.reduce_min(pixels, axis=0))
    high = _to_float(tf.reduce_max(pixels, axis=0))
    values = _to_float(image)
    stretch = high > low  # a flat channel stays as it is
    scale = tf.where(stretch, 255.0 / tf.maximum(high - low, 1.0), 1.0)
    low = tf.where(stretch, low, 0.0)
    return _to_uint8((values - low) * scale)


def equalize(image):
    """PIL ImageOps.equalize, channel by channel."""
    values = tf.cast(image, tf.int32)
    # One histogram per channel: channel c's values are counted in bins [256 c, 256 c + 256).
    offsets = tf.range(3) * 256
    hist = tf.reshape(tf.math.bincount(values + offsets, minlength=768, maxlength=768), [3, 256])
    last_nonzero = tf.reduce_max(tf.where(hist > 0, tf.range(256), -1), axis=1)
    last_count = tf.gather(hist, last_nonzero, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count)[:, None] // 255
    lut = (tf.cumsum(hist, axis=1, exclusive=True) + step // 2) // tf.maximum(step, 1)
    # A channel with a single value (step 0) is left as it is.
    lut = tf.where(step > 0, tf.clip_by_value(lut, 0, 255), tf.range(256)[None, :])
    return tf.cast(tf.gather(tf.reshape(lut, [-1]), values + offsets), tf.uint8)


def cutout(image, pad_size, seed):
    """Fills a gray square of side up to ``2 * pad_size`` at a random centre."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    centre = tf.random.stateless_uniform([2], seed, maxval=1.0)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    rows = tf.range(height)[:, None, None]
    cols = tf.range(width)[None, :, None]
    inside = (
        (rows >= cy - pad_size) & (rows < cy + pad_size) & (cols >= cx - pad_size)
        & (cols < cx + pad_size)
    )
    return tf.cast(_select(inside, float(FILL_VALUE), _to_float(image)), tf.uint8)


# ---- geometric ops ------------------------------------------------------------------------


def transform(image, matrix):
    """Samples ``image`` at ``(a0 x + a1 y + a2, a3 x + a4 y + a5)`` for each output pixel
    (nearest pixel; ``matrix`` as in ``ImageProjectiveTransformV3``); empty pixels are gray."""
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=_to_float(image)[None],  # the float32 kernel is faster than the uint8 one
        transforms=tf.cast(tf.reshape(matrix, [1, 8]), tf.float32),
        output_shape=tf.shape(image)[:2],
        fill_value=tf.constant(FILL_VALUE, tf.float32),
        interpolation="NEAREST",
        fill_mode="CONSTANT",
    )
    return tf.cast(out[0], tf.uint8)


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


def _shift(image, pixels, axis: int):
    """Moves the content by ``pixels`` (rounded) along ``axis``; uncovered pixels are gray.

    The same as ``transform`` with a translation, by slicing and padding (much cheaper)."""
    size = tf.shape(image)[axis]
    shift = tf.clip_by_value(tf.cast(tf.round(pixels), tf.int32), -size, size)
    before, after = tf.maximum(shift, 0), tf.maximum(-shift, 0)
    begin = tf.one_hot(axis, 3, on_value=after, off_value=0)
    kept = tf.one_hot(axis, 3, on_value=size - before - after, off_value=-1)
    paddings = tf.one_hot(axis, 3, on_value=1, off_value=0, dtype=tf.int32)[:, None] * tf.stack(
        [before, after])[None, :]
    return tf.pad(tf.slice(image, begin, kept), paddings, constant_values=FILL_VALUE)


def translate_x(image, pixels):
    """Moves the content ``pixels`` to the right (left if negative)."""
    return _shift(image, pixels, axis=1)


def translate_y(image, pixels):
    """Moves the content ``pixels`` down (up if negative)."""
    return _shift(image, pixels, axis=0)


# ---- levels to arguments: the official rules ------------------------------------------------

# The 16 ops RandAugment chooses from (AutoAugment policies use the same names).
OP_NAMES = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX", "TranslateY", "Cutout",
    "SolarizeAdd",
)  # fmt: skip


def _random_sign(value, seed):
    return tf.where(tf.random.stateless_uniform([], seed) < 0.5, -value, value)


def _op_branches(image, level, seed, translate_const, cutout_const):
    """The ops of ``OP_NAMES`` at ``level`` (a number or a tensor), as argument-free callables.

    Rotate, Shear* and Translate* take a random sign; Cutout a random position.
    """
    fraction = tf.cast(level, tf.float32) / MAX_LEVEL
    enhance = fraction * 1.8 + 0.1

    def signed(value):
        return _random_sign(value, seed)

    def integer(value):
        return tf.cast(value, tf.int32)  # truncates, as Python's int() on these positives

    return [
        lambda: auto_contrast(image),
        lambda: equalize(image),
        lambda: invert(image),
        lambda: rotate(image, signed(30.0 * fraction)),
        lambda: posterize(image, integer(fraction * 4)),
        lambda: solarize(image, integer(fraction * 256)),
        lambda: color(image, enhance),
        lambda: contrast(image, enhance),
        lambda: brightness(image, enhance),
        lambda: sharpness(image, enhance),
        lambda: shear_x(image, signed(0.3 * fraction)),
        lambda: shear_y(image, signed(0.3 * fraction)),
        lambda: translate_x(image, signed(translate_const * fraction)),
        lambda: translate_y(image, signed(translate_const * fraction)),
        lambda: cutout(image, integer(fraction * cutout_const), seed),
        lambda: solarize_add(image, integer(fraction * 110)),
    ]


def _switch(index, branches):
    """``tf.switch_case``, or just the chosen branch when the index is known (a Python int,
    or eagerly: eager switch_case would trace every branch)."""
    if isinstance(index, int):
        return branches[index]()
    if tf.executing_eagerly():
        return branches[int(index)]()
    return tf.switch_case(index, branches)


def apply_op(
    image,
    op_index,
    level,
    seed,
    *,
    translate_const: float = RANDAUGMENT_TRANSLATE_CONST,
    cutout_const: float = RANDAUGMENT_CUTOUT_CONST,
):
    """Op ``OP_NAMES[op_index]`` at ``level``; index and level may be tensors."""
    return _switch(op_index, _op_branches(image, level, seed, translate_const, cutout_const))


def named_op(name: str, level: float, **constants) -> Callable:
    """``fn(image, seed) -> image`` for the op ``name`` at ``level`` (official rules)."""
    if name not in OP_NAMES:
        raise ValueError(f"unknown augmentation op {name!r}; expected one of {', '.join(OP_NAMES)}")
    index = OP_NAMES.index(name)
    return lambda image, seed: apply_op(image, index, level, seed, **constants)


def _keep_shape(fn):
    # Plain TF ops, no Python control flow on tensors: skipping autograph makes the
    # policies trace about 3x faster inside Dataset.map.
    @tf.autograph.experimental.do_not_convert
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
    constants = dict(translate_const=translate_const, cutout_const=cutout_const)

    @_keep_shape
    def augment(image, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2 * num_layers)
        for layer in range(num_layers):
            choice = tf.random.stateless_uniform(
                [], seeds[2 * layer], 0, len(OP_NAMES), dtype=tf.int32)
            image = apply_op(image, choice, magnitude, seeds[2 * layer + 1], **constants)
        return image

    return augment


def autoaugment(
    policy="v0",
    *,
    translate_const: float = AUTOAUGMENT_TRANSLATE_CONST,
    cutout_const: float = AUTOAUGMENT_CUTOUT_CONST,
) -> Callable:
    """AutoAugment: one sub-policy drawn uniformly; each of its ops applied with its probability.

    ``policy`` is ``"v0"`` or a list of sub-policies of ``(op name, probability, level)``.
    """
    if isinstance(policy, str):
        if policy != "v0":
            raise ValueError(f"unknown AutoAugment policy {policy!r}; 'v0' or a list")
        policy = POLICY_V0
    for sub_policy in policy:
        for name, _, _ in sub_policy:
            named_op(name, 0)  # validates the name now, not inside Dataset.map
    # The policy as tables [sub-policy, step]: one switch over the 16 ops per step, instead
    # of a branch per sub-policy, keeps the graph small and quick to trace.
    ops = tf.constant([[OP_NAMES.index(name) for name, _, _ in sub] for sub in policy])
    probs = tf.constant([[prob for _, prob, _ in sub] for sub in policy], tf.float32)
    levels = tf.constant([[level for _, _, level in sub] for sub in policy], tf.float32)
    constants = dict(translate_const=translate_const, cutout_const=cutout_const)

    @_keep_shape
    def augment(image, seed):
        seeds = tf.random.experimental.stateless_split(seed, 1 + 2 * ops.shape[1])
        choice = tf.random.stateless_uniform([], seeds[0], 0, ops.shape[0], dtype=tf.int32)
        for step in range(ops.shape[1]):
            apply_seed, op_seed = seeds[1 + 2 * step], seeds[2 + 2 * step]
            image = tf.cond(
                tf.random.stateless_uniform([], apply_seed) < probs[choice, step],
                lambda: apply_op(image, ops[choice, step], levels[choice, step], op_seed,
                                 **constants),
                lambda: image,
            )
        return image

    return augment
