"""Mixup and CutMix on batches, with soft (one-hot mixed) labels.

Each batch is mixed with itself reversed (image i with image B-1-i), one mixing ratio per
batch, as timm and the official TPU recipes do. Ops are stateless with an explicit ``seed``
so that they run the same eagerly and inside ``Dataset.map``. Written here because
tf.image / Keras have no graph-mode, seedable mixup/cutmix on (images, one-hot labels).
"""

from __future__ import annotations

import tensorflow as tf


def sample_beta(alpha: float, seed) -> tf.Tensor:
    """One draw of Beta(alpha, alpha), as G1 / (G1 + G2) with G ~ Gamma(alpha)."""
    seeds = tf.random.experimental.stateless_split(seed, 2)
    g1 = tf.random.stateless_gamma([], seeds[0], alpha)
    g2 = tf.random.stateless_gamma([], seeds[1], alpha)
    return g1 / tf.maximum(g1 + g2, 1e-12)


def _mix_labels(labels, ratio):
    labels = tf.cast(labels, tf.float32)
    return ratio * labels + (1.0 - ratio) * tf.reverse(labels, [0])


def mixup(images, labels, alpha: float, seed):
    """``ratio * x + (1 - ratio) * x_reversed`` with ratio ~ Beta(alpha, alpha); same for labels."""
    ratio = sample_beta(alpha, seed)
    images = tf.cast(images, tf.float32)
    mixed = ratio * images + (1.0 - ratio) * tf.reverse(images, [0])
    return mixed, _mix_labels(labels, ratio)


def cutmix_box(height, width, ratio, seed):
    """``(y0, y1, x0, x1)`` of a box of area about ``(1 - ratio)`` at a random centre, clipped."""
    cut = tf.sqrt(1.0 - ratio)
    cut_h = tf.cast(cut * tf.cast(height, tf.float32), tf.int32)
    cut_w = tf.cast(cut * tf.cast(width, tf.float32), tf.int32)
    centre = tf.random.stateless_uniform([2], seed)
    cy = tf.cast(centre[0] * tf.cast(height, tf.float32), tf.int32)
    cx = tf.cast(centre[1] * tf.cast(width, tf.float32), tf.int32)
    y0 = tf.clip_by_value(cy - cut_h // 2, 0, height)
    y1 = tf.clip_by_value(cy + cut_h // 2, 0, height)
    x0 = tf.clip_by_value(cx - cut_w // 2, 0, width)
    x1 = tf.clip_by_value(cx + cut_w // 2, 0, width)
    return y0, y1, x0, x1


def cutmix(images, labels, alpha: float, seed):
    """Pastes a box of the reversed batch; labels weighted by the area actually pasted."""
    ratio_seed, box_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    y0, y1, x0, x1 = cutmix_box(height, width, sample_beta(alpha, ratio_seed), box_seed)
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)
    images = tf.cast(images, tf.float32)
    # Arithmetic rather than tf.where (SelectV2 is slow on whole batches).
    mask = tf.cast(inside, tf.float32)[None, :, :, None]
    mixed = images + mask * (tf.reverse(images, [0]) - images)
    pasted = tf.cast((y1 - y0) * (x1 - x0), tf.float32) / tf.cast(height * width, tf.float32)
    return mixed, _mix_labels(labels, 1.0 - pasted)


@tf.autograph.experimental.do_not_convert  # plain TF ops; autograph only slows tracing
def mix_batch(images, labels, seed, *, mixup_alpha=0.0, cutmix_alpha=0.0, switch_prob=0.5):
    """Mixup, CutMix, or (both alphas > 0) one of them per batch, CutMix with ``switch_prob``."""
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ValueError(f"alphas must be >= 0, got mixup {mixup_alpha}, cutmix {cutmix_alpha}")
    choice_seed, mix_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if mixup_alpha > 0 and cutmix_alpha > 0:
        use_cutmix = tf.random.stateless_uniform([], choice_seed) < switch_prob
        return tf.cond(
            use_cutmix,
            lambda: cutmix(images, labels, cutmix_alpha, mix_seed),
            lambda: mixup(images, labels, mixup_alpha, mix_seed),
        )
    if mixup_alpha > 0:
        return mixup(images, labels, mixup_alpha, mix_seed)
    if cutmix_alpha > 0:
        return cutmix(images, labels, cutmix_alpha, mix_seed)
    return tf.cast(images, tf.float32), tf.cast(labels, tf.float32)
