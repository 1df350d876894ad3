"""Mixup and CutMix on batches, with soft (one-hot mixed) labels.

Each batch is mixed with itself reversed (image i with image B-1-i). The mixing ratio is
drawn once per batch (the official TPU recipes; timm's ``mode="batch"``) or, with
``per_image=True``, once per image (timm's ``mode="elem"``; CutMix then pastes a box of its
own size and place in every image). Ops are stateless with an explicit ``seed`` so that they
run the same eagerly and inside ``Dataset.map``. Written here because tf.image / Keras have
no graph-mode, seedable mixup/cutmix on (images, one-hot labels).
"""

from __future__ import annotations

import tensorflow as tf


def sample_beta(alpha: float, seed, shape=()) -> tf.Tensor:
    """Draws of Beta(alpha, alpha), as G1 / (G1 + G2) with G ~ Gamma(alpha)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    g1 = tf.random.stateless_gamma(shape, seeds[0], alpha)
    g2 = tf.random.stateless_gamma(shape, seeds[1], alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def _ratio_shape(images, per_image: bool):
    return tf.shape(images)[:1] if per_image else ()


def _mix_labels(labels, ratio):
    """``ratio`` is a scalar or one value per image."""
    labels = tf.cast(labels, tf.float32)
    ratio = tf.reshape(ratio, [-1, 1])
    return ratio * labels + (1.0 - ratio) * tf.reverse(labels, [0])


def mixup(images, labels, alpha: float, seed, *, per_image: bool = False):
    """``ratio * x + (1 - ratio) * x_reversed`` with ratio ~ Beta(alpha, alpha); same for labels."""
    ratio = sample_beta(alpha, seed, _ratio_shape(images, per_image))
    images = tf.cast(images, tf.float32)
    r = tf.reshape(ratio, [-1, 1, 1, 1])
    mixed = r * images + (1.0 - r) * tf.reverse(images, [0])
    return mixed, _mix_labels(labels, ratio)


def cutmix_box(height, width, ratio, seed):
    """``(y0, y1, x0, x1)`` of boxes of area about ``(1 - ratio)`` at random centres, clipped;
    ``ratio`` is a scalar (one box) or a vector (one box each)."""
    cut = tf.sqrt(1.0 - ratio)
    cut_h = tf.cast(cut * tf.cast(height, tf.float32), tf.int32)
    cut_w = tf.cast(cut * tf.cast(width, tf.float32), tf.int32)
    centre = tf.random.stateless_uniform(tf.concat([tf.shape(ratio), [2]], 0), seed)
    cy = tf.cast(centre[..., 0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[..., 1] * tf.cast(width, tf.float32), tf.int32)
    y0 = tf.clip_by_value(cy - cut_h // 2, 0, height)
    y1 = tf.clip_by_value(cy + cut_h // 2, 0, height)
    x0 = tf.clip_by_value(cx - cut_w // 2, 0, width)
    x1 = tf.clip_by_value(cx + cut_w // 2, 0, width)
    return y0, y1, x0, x1


def cutmix(images, labels, alpha: float, seed, *, per_image: bool = False):
    """Pastes a box of the reversed batch; labels weighted by the area actually pasted."""
    ratio_seed, box_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    ratio = sample_beta(alpha, ratio_seed, _ratio_shape(images, per_image))
    y0, y1, x0, x1 = (tf.reshape(t, [-1, 1, 1])
                      for t in cutmix_box(height, width, ratio, box_seed))
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    images = tf.cast(images, tf.float32)
    # Arithmetic rather than tf.where (SelectV2 is slow on whole batches).
    mask = tf.cast(inside, tf.float32)[..., None]
    mixed = images + mask * (tf.reverse(images, [0]) - images)
    pasted = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(height * width, tf.float32)
    return mixed, _mix_labels(labels, 1.0 - pasted)


@tf.autograph.experimental.do_not_convert  # plain TF ops; autograph only slows tracing
def mix_batch(images, labels, seed, *, mixup_alpha=0.0, cutmix_alpha=0.0, switch_prob=0.5,
              per_image=False):
    """Mixup, CutMix, or (both alphas > 0) one of them per batch, CutMix with ``switch_prob``;
    ``per_image``: a ratio (and CutMix box) per image instead of one per batch."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"alphas must be >= 0, got mixup {mixup_alpha}, cutmix {cutmix_alpha}")
    choice_seed, mix_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    mixup_fn = lambda: mixup(images, labels, mixup_alpha, mix_seed, per_image=per_image)  # noqa
    cutmix_fn = lambda: cutmix(images, labels, cutmix_alpha, mix_seed, per_image=per_image)  # noqa
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], choice_seed) < switch_prob
        return tf.cond(use_cutmix, cutmix_fn, mixup_fn)
    if mixup_alpha > 0:
        return mixup_fn()
    if cutmix_alpha > 0:
        return cutmix_fn()
    return tf.cast(images, tf.float32), tf.cast(labels, tf.float32)
