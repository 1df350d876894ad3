"""Mixup and CutMix: shapes, range, soft labels that sum to 1, eager == tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import mix


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = tf.constant(rng.uniform(0, 255, (6, 16, 20, 3)).astype(np.float32))
    labels = tf.one_hot([0, 1, 2, 3, 4, 0], 5)
    return images, labels


def run_both(fn, images, labels, seed):
    seed = tf.constant(seed, tf.int64)
    eager = [t.numpy() for t in fn(images, labels, seed)]
    ds = tf.data.Dataset.from_tensors((images, labels, seed)).map(fn)
    graph = [t.numpy() for t in next(iter(ds))]
    for e, g in zip(eager, graph):
        np.testing.assert_array_equal(e, g)
    return eager


@pytest.mark.parametrize("fn", [
    lambda x, y, s: mix.mixup(x, y, 0.2, s),
    lambda x, y, s: mix.cutmix(x, y, 1.0, s),
    lambda x, y, s: mix.mix_batch(x, y, s, mixup_alpha=0.8, cutmix_alpha=1.0),
    lambda x, y, s: mix.mix_batch(x, y, s, mixup_alpha=0.8, cutmix_alpha=1.0, per_image=True),
])
def test_mixing_keeps_shape_dtype_range_and_labels_sum_to_one(fn, batch):
    images, labels = batch
    for seed in range(8):
        mixed, soft = run_both(fn, images, labels, (seed, 1))
        assert mixed.shape == images.shape and mixed.dtype == np.float32
        assert mixed.min() >= 0 and mixed.max() <= 255
        assert soft.shape == (6, 5) and soft.dtype == np.float32
        np.testing.assert_allclose(soft.sum(-1), 1.0, atol=1e-6)
        assert (soft >= 0).all()


def test_mixup_blends_with_the_reversed_batch(batch):
    images, labels = batch
    mixed, soft = mix.mixup(images, labels, 0.4, tf.constant([5, 6]))
    ratio = float(soft[1, 1])  # label 1 of image 1, mixed with image 4 (label 4)
    assert 0 < ratio < 1
    np.testing.assert_allclose(mixed[1], ratio * images[1] + (1 - ratio) * images[4], rtol=1e-5)
    assert float(soft[1, 4]) == pytest.approx(1 - ratio)


def test_cutmix_label_weight_is_the_pasted_area(batch):
    images, labels = batch
    for seed in range(10):
        mixed, soft = mix.cutmix(images, labels, 1.0, tf.constant([seed, 3]))
        # image 1 (label 1) receives a box of image 4 (label 4)
        pasted = (mixed[1].numpy() != images[1].numpy()).any(-1).mean()
        assert float(soft[1, 4]) == pytest.approx(pasted, abs=1e-6)
        assert float(soft[1, 1]) == pytest.approx(1 - pasted, abs=1e-6)


def test_per_image_mixup_draws_a_ratio_for_each_image(batch):
    images, labels = batch
    mixed, soft = mix.mixup(images, labels, 0.4, tf.constant([5, 6]), per_image=True)
    ratios = [float(soft[i, int(np.argmax(labels[i]))]) for i in (1, 2)]
    for i, ratio in zip((1, 2), ratios):  # image i is mixed with image 5 - i
        np.testing.assert_allclose(mixed[i], ratio * images[i] + (1 - ratio) * images[5 - i],
                                   rtol=1e-5)
    assert ratios[0] != pytest.approx(ratios[1], abs=1e-3)


def test_per_image_cutmix_pastes_a_box_of_its_own_in_each_image(batch):
    images, labels = batch
    mixed, soft = mix.cutmix(images, labels, 1.0, tf.constant([2, 3]), per_image=True)
    areas = []
    for i in (1, 2):  # images 1 and 2 (labels 1, 2) receive boxes of images 4 and 3
        pasted = (mixed[i].numpy() != images[i].numpy()).any(-1).mean()
        partner = int(np.argmax(labels[5 - i]))
        assert float(soft[i, partner]) == pytest.approx(pasted, abs=1e-6)
        assert float(soft[i, i]) == pytest.approx(1 - pasted, abs=1e-6)
        areas.append(pasted)
    assert areas[0] != pytest.approx(areas[1], abs=1e-3)


def test_beta_samples_have_the_right_mean():
    draws = [float(mix.sample_beta(0.4, tf.constant([i, 0]))) for i in range(400)]
    assert all(0 <= d <= 1 for d in draws)
    assert np.mean(draws) == pytest.approx(0.5, abs=0.06)


def test_no_mixing_returns_float_images_and_labels(batch):
    images, labels = batch
    out, soft = mix.mix_batch(images, labels, tf.constant([1, 1]))
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(soft, labels)
    with pytest.raises(ValueError, match="alphas"):
        mix.mix_batch(images, labels, tf.constant([1, 1]), mixup_alpha=-1.0)
