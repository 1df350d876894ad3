"""RandAugment / AutoAugment ops: shape, dtype, range, semantics, eager == tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import augment as aug


@pytest.fixture(scope="module")
def image(kit):
    return tf.constant(kit.pattern(24, 32, seed=5))


def run_both(fn, image, seed=(3, 4)):
    """``fn(image, seed)`` eagerly and inside Dataset.map; asserts equal; returns numpy."""
    seed = tf.constant(seed, tf.int64)
    eager = fn(image, seed).numpy()
    ds = tf.data.Dataset.from_tensors((image, seed)).map(fn)
    graph = next(iter(ds)).numpy()
    np.testing.assert_array_equal(eager, graph)
    return eager


@pytest.mark.parametrize("name", aug.OP_NAMES)
@pytest.mark.parametrize("level", [0, 7, 17])
def test_every_op_keeps_shape_dtype_range_and_is_the_same_in_tf_data(name, level, image):
    out = run_both(aug.named_op(name, level), image)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8


def test_invert_solarize_posterize_semantics():
    x = tf.constant(np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, -1))
    values = x.numpy().astype(int)
    np.testing.assert_array_equal(aug.invert(x), 255 - values)
    np.testing.assert_array_equal(aug.solarize(x, 128),
                                  np.where(values < 128, values, 255 - values))
    np.testing.assert_array_equal(aug.solarize(x, 256), values)  # level 10: unchanged
    np.testing.assert_array_equal(aug.posterize(x, 4), values & 0xF0)
    np.testing.assert_array_equal(aug.solarize_add(x, 110),
                                  np.where(values < 128, np.minimum(values + 110, 255), values))


def test_auto_contrast_stretches_each_channel_to_the_full_range(image):
    low_contrast = tf.cast(tf.cast(image, tf.float32) * 0.3 + 50, tf.uint8)
    out = aug.auto_contrast(low_contrast).numpy()
    assert out.min(axis=(0, 1)).tolist() == [0, 0, 0]
    assert out.max(axis=(0, 1)).tolist() == [255, 255, 255]


def test_equalize_flattens_the_histogram():
    rng = np.random.default_rng(0)
    skewed = (rng.beta(2, 8, (64, 64, 3)) * 255).astype(np.uint8)  # mostly dark
    out = aug.equalize(tf.constant(skewed)).numpy()
    # Equalized values spread over the range: their quartiles sit near 64, 128, 192.
    quartiles = np.percentile(out[..., 0], [25, 50, 75])
    np.testing.assert_allclose(quartiles, [64, 128, 192], atol=20)
    flat = np.full((8, 8, 3), 7, np.uint8)
    np.testing.assert_array_equal(aug.equalize(tf.constant(flat)), flat)  # one value: identity


def test_geometric_ops_move_pixels_as_stated():
    x = np.zeros((9, 9, 3), np.uint8)
    x[4, 2] = 200
    moved = aug.translate_x(tf.constant(x), 3.0).numpy()
    assert moved[4, 5, 0] == 200 and moved[4, 2, 0] != 200
    moved = aug.translate_y(tf.constant(x), -2.0).numpy()
    assert moved[2, 2, 0] == 200
    np.testing.assert_array_equal(aug.rotate(tf.constant(x), 0.0), x)
    turned = aug.rotate(tf.constant(x), 90.0).numpy()
    assert turned[..., 0].max() == 200 and turned[4, 2, 0] != 200  # moved around the centre
    assert aug.shear_x(tf.constant(x), 0.0).numpy().tolist() == x.tolist()
    # Pixels moved in from outside are gray (128).
    assert (aug.translate_x(tf.constant(x), 4.0).numpy()[:, :4] == 128).all()


def test_cutout_fills_a_gray_square(image):
    out = aug.cutout(image, 4, tf.constant([1, 2])).numpy()
    changed = (out != image.numpy()).any(-1)
    assert 0 < changed.sum() <= 64 and (out[changed] == 128).all()


def test_enhance_ops_at_factor_one_are_identity(image):
    for op in (aug.color, aug.contrast, aug.brightness, aug.sharpness):
        np.testing.assert_array_equal(op(image, 1.0), image)
    np.testing.assert_array_equal(aug.brightness(image, 0.0), np.zeros_like(image))


@pytest.mark.parametrize("make", [lambda: aug.randaugment(2, 10), lambda: aug.randaugment(3, 28),
                                  lambda: aug.autoaugment("v0")])
def test_policies_keep_shape_dtype_and_depend_on_the_seed(make, image):
    policy = make()
    seeds = tf.constant([[i, 9] for i in range(12)], tf.int64)
    in_dataset = tf.data.Dataset.from_tensor_slices(seeds).map(lambda s: policy(image, s))
    outputs = [policy(image, s).numpy() for s in seeds]
    for eager, graph in zip(outputs, in_dataset):
        np.testing.assert_array_equal(eager, graph)
    for out in outputs:
        assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    distinct = {out.tobytes() for out in outputs}
    assert len(distinct) >= 6  # different ops for different seeds


@pytest.mark.parametrize("level", [3.0, 7.0, 10.0])
def test_ops_chosen_by_tensors_in_tf_data_equal_the_named_ops(image, level):
    seed = tf.constant([5, 6], tf.int64)
    chosen = tf.data.Dataset.range(len(aug.OP_NAMES)).map(
        lambda i: aug.apply_op(image, tf.cast(i, tf.int32), tf.constant(level), seed))
    for name, out in zip(aug.OP_NAMES, chosen):
        np.testing.assert_array_equal(out, aug.named_op(name, level)(image, seed), err_msg=name)


def test_autoaugment_applies_each_step_with_its_probability(image):
    always_then_never = aug.autoaugment([[("Invert", 1.0, 0), ("Invert", 0.0, 0)]])
    twice = aug.autoaugment([[("Invert", 1.0, 0), ("Invert", 1.0, 0)]])
    for i in range(5):
        seed = tf.constant([i, 0], tf.int64)
        np.testing.assert_array_equal(always_then_never(image, seed), 255 - image.numpy())
        np.testing.assert_array_equal(twice(image, seed), image)
    half = aug.autoaugment([[("Invert", 0.5, 0), ("Invert", 0.0, 0)]])
    inverted = [bool((half(image, tf.constant([i, 1])).numpy() != image.numpy()).any())
                for i in range(200)]
    assert 0.38 < np.mean(inverted) < 0.62
    with pytest.raises(ValueError, match="unknown augmentation op 'Blur'"):
        aug.autoaugment([[("Blur", 1.0, 3)]])


def test_policy_v0_has_25_sub_policies_of_known_ops():
    assert len(aug.POLICY_V0) == 25
    assert all(len(sub) == 2 for sub in aug.POLICY_V0)
    assert {name for sub in aug.POLICY_V0 for name, _, _ in sub} <= set(aug.OP_NAMES)
    assert len(aug.OP_NAMES) == 16


def test_policies_run_on_a_static_shape_inside_a_pipeline(image):
    policy = aug.randaugment(2, 10)
    ds = tf.data.Dataset.from_tensors(image).repeat(4).enumerate().map(
        lambda i, im: policy(im, tf.stack([i, i])))
    assert ds.element_spec.shape == (24, 32, 3)
    assert sum(1 for _ in ds) == 4


def test_unknown_op_and_bad_arguments_raise():
    with pytest.raises(ValueError, match="unknown augmentation op"):
        aug.named_op("Blur", 5)
    with pytest.raises(ValueError, match="num_layers"):
        aug.randaugment(-1, 10)
