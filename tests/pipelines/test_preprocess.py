"""Crop rules, decoding and the train/eval preprocessing, eagerly and inside tf.data."""

import numpy as np
import pytest
import tensorflow as tf

from pipelines import preprocess as pp

SHAPES = [(375, 500), (500, 375), (224, 224), (412, 600), (1080, 1920), (33, 47)]


def in_dataset(fn, *args):
    """``fn(*args)`` computed inside Dataset.map (graph mode)."""
    ds = tf.data.Dataset.from_tensors(tuple(args)).map(lambda *a: fn(*a))
    return tf.nest.map_structure(lambda t: t.numpy(), next(iter(ds)))


def assert_same_eager_and_graph(fn, *args):
    eager = tf.nest.map_structure(lambda t: np.asarray(t), fn(*args))
    graph = in_dataset(fn, *args)
    tf.nest.map_structure(np.testing.assert_array_equal, eager, graph)
    return eager


def official_center_window(height, width, size, crop_fraction=None):
    side = int(size / (size + 32) * min(height, width)) if crop_fraction is None else int(
        crop_fraction * min(height, width))
    return [(height - side + 1) // 2, (width - side + 1) // 2, side, side]


@pytest.mark.parametrize("size", [224, 380, 600])
@pytest.mark.parametrize("shape", SHAPES)
def test_eval_crop_window_is_the_official_rule(shape, size):
    window = assert_same_eager_and_graph(
        lambda s: pp.center_crop_window(s, size), tf.constant([*shape, 3]))
    assert window.tolist() == official_center_window(*shape, size)


def test_eval_crop_rule_matches_python_where_float32_would_not():
    # 380 / 412 * 412 is 379.99999999999994 in Python (so 379); float32 rounds it to 380.
    assert pp.center_crop_window([412, 500, 3], 380).numpy().tolist()[2] == int(380 / 412 * 412)
    assert pp.eval_crop_fraction(224) == 0.875 and round(pp.eval_crop_fraction(600), 3) == 0.949


@pytest.mark.parametrize("shape", SHAPES)
def test_crop_fraction_option(shape):
    window = pp.center_crop_window([*shape, 3], 380, crop_fraction=0.875).numpy().tolist()
    assert window == official_center_window(*shape, 380, crop_fraction=0.875)
    with pytest.raises(ValueError, match="crop_fraction"):
        pp.make_eval_preprocess(224, crop_fraction=1.5)


def test_train_crops_stay_within_area_and_aspect_bounds():
    shape = tf.constant([375, 500, 3])
    fn = tf.function(lambda seed: pp.random_crop_window(shape, seed, 224))
    windows = np.array([fn(tf.constant([i, 17])).numpy() for i in range(400)])
    y, x, h, w = windows.T
    assert (y >= 0).all() and (x >= 0).all() and (y + h <= 375).all() and (x + w <= 500).all()
    area = h * w / (375 * 500)
    aspect = w / h
    assert area.min() >= 0.08 and area.max() <= 1.0
    # Integer crop sides move the aspect ratio by at most a pixel's worth.
    assert aspect.min() >= 0.75 * (1 - 1 / h.min()) - 1e-6
    assert aspect.max() <= 4 / 3 * (1 + 1 / h.min()) + 1e-6
    assert len({tuple(wd) for wd in windows}) > 300  # really random
    assert area.min() < 0.15 and area.max() > 0.85  # the whole range is sampled


def test_train_crop_falls_back_to_the_center_crop():
    # No crop of a 1000x10 strip has aspect in [3/4, 4/3] and area >= 8%: the fallback.
    window = pp.random_crop_window(tf.constant([1000, 10, 3]), tf.constant([1, 2]), 224)
    assert window.numpy().tolist() == official_center_window(1000, 10, 224)


def test_random_crop_window_same_eagerly_and_in_dataset():
    assert_same_eager_and_graph(
        lambda s, seed: pp.random_crop_window(s, seed, 380),
        tf.constant([375, 500, 3]), tf.constant([3, 4], tf.int64))


@pytest.mark.parametrize("fmt", ["jpeg", "png", "gray", "cmyk", "gif", "bmp", "webp"])
def test_decode_and_crop_gives_rgb_for_every_format(fmt, kit):
    image = kit.pattern(30, 40, seed=3)
    data = tf.constant(kit.encode(image, fmt))
    window = [5, 7, 20, 25]
    crop = assert_same_eager_and_graph(
        lambda d: pp.decode_and_crop(d, lambda shape: tf.constant(window)), data)
    assert crop.shape == (20, 25, 3) and crop.dtype == np.uint8
    reference = image[5:25, 7:32].astype(float)
    if fmt == "gray":
        assert (crop[..., 0] == crop[..., 1]).all() and (crop[..., 1] == crop[..., 2]).all()
    elif fmt in ("png", "bmp"):  # lossless
        np.testing.assert_array_equal(crop, reference)
    elif fmt == "gif":  # palette-quantized: close, not exact
        assert np.abs(crop - reference).mean() < 20
    else:
        assert np.abs(crop - reference).mean() < 12


def test_jpeg_crop_decode_equals_full_decode_then_crop(kit):
    data = tf.constant(kit.encode(kit.pattern(64, 80, seed=1)))
    window = pp.center_crop_window([64, 80, 3], 224)
    cropped = pp.decode_and_crop(data, lambda shape: window).numpy().astype(int)
    y, x, h, w = window.numpy()
    full = tf.io.decode_jpeg(data, channels=3).numpy()[y:y + h, x:x + w].astype(int)
    # Equal but at the crop's edge pixels, where chroma upsampling sees different neighbours.
    np.testing.assert_array_equal(cropped[1:-1, 1:-1], full[1:-1, 1:-1])
    assert np.abs(cropped - full).max() <= 8


@pytest.mark.parametrize("short_side, size, expected_scale", [
    (600, 64, 8), (300, 64, 4), (200, 64, 2), (127, 64, 1), (600, 200, 2), (600, 600, 1)])
def test_jpeg_scale_follows_the_crop_and_the_image_size(short_side, size, expected_scale):
    window = tf.constant([0, 0, short_side, short_side + 50])
    index = int(pp.jpeg_scale_index(window, size))
    assert (1, *pp.JPEG_SCALES)[index] == expected_scale
    assert int(pp.jpeg_scale_index(window, None)) == 0


def test_fast_decode_of_a_large_photo_is_close_to_the_full_decode(kit):
    data = tf.constant(kit.encode(kit.pattern(768, 1024, seed=3)))
    y, x, h, w = pp.center_crop_window([768, 1024, 3], 64).numpy()
    crop = tf.io.decode_jpeg(data, channels=3)[y:y + h, x:x + w]
    averaged = tf.image.resize(crop, [64, 64], method="area").numpy()  # an 8x8 mean per pixel
    fast_fn = pp.make_eval_preprocess(64, fast_decode=True)
    fast = assert_same_eager_and_graph(fast_fn, data)
    window = pp.center_crop_window([768, 1024, 3], 64)  # short side 512: decoded at 1/8
    assert int(pp.jpeg_scale_index(window, 64)) == 3
    assert fast.shape == (64, 64, 3) and fast.dtype == np.float32
    assert 0 <= fast.min() and fast.max() <= 255
    # The same picture: the 1/8 decode averages 8x8 blocks as the area resize does.
    assert np.abs(fast - averaged).mean() < 2
    train = pp.make_train_preprocess(64, fast_decode=True)
    out = assert_same_eager_and_graph(train, data, tf.constant([4, 5], tf.int64))
    assert out.shape == (64, 64, 3) and out.std() > 10
    small = tf.constant(kit.encode(kit.pattern(60, 80, seed=2)))  # nothing to downscale
    np.testing.assert_array_equal(fast_fn(small), pp.make_eval_preprocess(64)(small))


def test_corrupt_image_raises_inside_the_op():
    with pytest.raises(tf.errors.InvalidArgumentError):
        pp.decode_and_crop(tf.constant(b"not an image"), lambda s: tf.constant([0, 0, 1, 1]))


def test_flip_is_applied_about_half_the_time(kit):
    image = tf.constant(kit.pattern(8, 12))
    flipped = [bool(np.array_equal(pp.random_flip(image, tf.constant([i, 0])), image[:, ::-1]))
               for i in range(400)]
    assert 0.42 < np.mean(flipped) < 0.58


def test_resize_is_bicubic_float_in_range(kit):
    image = tf.constant(kit.pattern(20, 30))
    out = assert_same_eager_and_graph(lambda im: pp.resize(im, 64), image)
    assert out.shape == (64, 64, 3) and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    expected = np.clip(tf.image.resize(image, [64, 64], method="bicubic").numpy(), 0, 255)
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("variant, size", [("b0", 224), ("b4", 380)])
def test_train_and_eval_preprocess_shapes_from_the_variant(variant, size, kit):
    image_size = pp.image_size_of(variant=variant)
    assert image_size == size
    data = tf.constant(kit.encode(kit.pattern(60, 80, seed=2)))
    train = assert_same_eager_and_graph(
        pp.make_train_preprocess(image_size), data, tf.constant([1, 2], tf.int64))
    evaluated = assert_same_eager_and_graph(pp.make_eval_preprocess(image_size), data)
    for out in (train, evaluated):
        assert out.shape == (size, size, 3) and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 255 and out.std() > 10  # not normalized


def test_train_preprocess_depends_only_on_the_seed(kit):
    fn = pp.make_train_preprocess(32)
    data = tf.constant(kit.encode(kit.pattern(60, 80, seed=2)))
    a, b = fn(data, tf.constant([1, 2])), fn(data, tf.constant([1, 2]))
    c = fn(data, tf.constant([1, 3]))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_image_size_of_needs_exactly_one():
    with pytest.raises(ValueError, match="exactly one"):
        pp.image_size_of(224, "b0")
    with pytest.raises(ValueError, match="exactly one"):
        pp.image_size_of()
    assert pp.image_size_of(variant=1.0) % 8 == 0  # a phi number goes through Scaling
    with pytest.raises(ValueError, match=">= 32"):
        pp.image_size_of(16)
