"""The crop, flip, eval-crop and resize knobs: each eagerly, inside tf.data and through build."""

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import preprocess as pp

SIZE = 32
WHOLE = dict(crop_area_range=(1.0, 1.0), crop_aspect_range=(0.5, 2.0))


def eager_and_graph(fn, *args):
    """``fn(*args)`` eagerly and inside ``Dataset.map``; asserts they agree, returns it."""
    eager = np.asarray(fn(*args))
    ds = tf.data.Dataset.from_tensors(tuple(args)).map(lambda *a: fn(*a))
    np.testing.assert_array_equal(eager, next(iter(ds)).numpy())
    return eager


def plain_resize(image, method="bicubic"):
    """The whole image resized to SIZE x SIZE, as tf.image does it (the reference)."""
    resized = tf.image.resize(tf.cast(image, tf.float32), [SIZE, SIZE], method=method)
    return np.clip(resized.numpy(), 0, 255)


@pytest.fixture(scope="module")
def photo(kit):
    """An asymmetric 40x56 JPEG (left-right gradient) and its decoded pixels."""
    data = kit.encode(kit.pattern(40, 56, seed=3))
    return tf.constant(data), tf.io.decode_jpeg(data, channels=3).numpy()


def test_whole_image_crop_is_a_plain_resize(photo):
    data, decoded = photo
    fn = pp.make_train_preprocess(SIZE, flip=False, **WHOLE)
    image = eager_and_graph(fn, data, tf.constant([5, 6], tf.int64))
    np.testing.assert_allclose(image, plain_resize(decoded), atol=1e-4)
    official = pp.make_train_preprocess(SIZE, flip=False)(data, tf.constant([5, 6], tf.int64))
    assert np.abs(official.numpy() - plain_resize(decoded)).max() > 20  # the default crops


def test_flip_off_keeps_every_seed_unflipped_and_on_mirrors_some(photo):
    data, decoded = photo
    seeds = [tf.constant([s, 1], tf.int64) for s in range(8)]
    unflipped = plain_resize(decoded)
    off = pp.make_train_preprocess(SIZE, flip=False, **WHOLE)
    for seed in seeds:
        np.testing.assert_allclose(eager_and_graph(off, data, seed), unflipped, atol=1e-4)
    on = pp.make_train_preprocess(SIZE, flip=True, **WHOLE)
    mirrored = [np.allclose(eager_and_graph(on, data, s), unflipped[:, ::-1], atol=1e-3)
                for s in seeds]
    same = [np.allclose(on(data, s), unflipped, atol=1e-4) for s in seeds]
    assert any(mirrored) and any(same) and all(m != s for m, s in zip(mirrored, same))


def test_crop_ranges_bound_the_sampled_crops():
    shape = tf.constant([300, 400, 3])
    fn = tf.function(lambda seed: pp.random_crop_window(
        shape, seed, 224, area_range=(0.5, 0.6), aspect_ratio_range=(1.0, 1.2)))
    windows = np.array([fn(tf.constant([i, 3])).numpy() for i in range(100)])
    _, _, h, w = windows.T
    sampled = ~((h == 262) & (w == 262))  # not the eval-crop fallback (int(224 / 256 * 300))
    area, aspect = h * w / (300 * 400), w / h
    assert sampled.sum() > 80
    assert (area[sampled] >= 0.5 - 0.01).all() and (area[sampled] <= 0.6 + 0.01).all()
    assert (aspect[sampled] >= 1.0 - 0.02).all() and (aspect[sampled] <= 1.2 + 0.02).all()


def test_eval_no_crop_resizes_the_whole_image(photo):
    data, decoded = photo
    image = eager_and_graph(pp.make_eval_preprocess(SIZE, crop_fraction="none"), data)
    np.testing.assert_allclose(image, plain_resize(decoded), atol=1e-4)
    assert pp.center_crop_window([40, 56, 3], SIZE, "none").numpy().tolist() == [0, 0, 40, 56]


@pytest.mark.parametrize("training", [True, False])
def test_bilinear_is_tf_image_resize_bilinear(photo, training):
    data, decoded = photo
    if training:
        fn = pp.make_train_preprocess(SIZE, flip=False, resize_method="bilinear", **WHOLE)
        image = eager_and_graph(fn, data, tf.constant([1, 2], tf.int64))
    else:
        fn = pp.make_eval_preprocess(SIZE, crop_fraction="none", resize_method="bilinear")
        image = eager_and_graph(fn, data)
    np.testing.assert_allclose(image, plain_resize(decoded, "bilinear"), atol=1e-4)
    assert np.abs(image - plain_resize(decoded, "bicubic")).max() > 1


def test_build_applies_the_knobs_in_train_and_eval(tmp_path, kit):
    """A one-image folder: the training batch is the whole image, unflipped, bilinear; the
    evaluation with crop_fraction="none" sees the black bands a center crop cuts off."""
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255
    image[:, 60:] = 128  # left and right differ, so a flip shows
    kit.write(str(tmp_path / "f/c/a.png"), kit.encode(image, "png"))
    root = str(tmp_path / "f")
    train = pipelines.build(root, "train", image_size=SIZE, batch_size=2,
                            runtime=pipelines.Runtime(seed=0),
                            preprocess=pipelines.Preprocess(flip=False, resize_method="bilinear",
                                                            **WHOLE))
    for x, _ in train.take(3):
        for picture in x.numpy():
            np.testing.assert_allclose(picture, plain_resize(image, "bilinear"), atol=1e-4)
    evaluated = pipelines.build(root, "train", image_size=SIZE, batch_size=1, training=False,
                                preprocess=pipelines.Preprocess(eval_crop_fraction="none"))
    (x, _), = [(x.numpy(), y) for x, y in evaluated]
    np.testing.assert_allclose(x[0], plain_resize(image), atol=1e-4)
    assert x.min() < 5
    (center, _), = [(x.numpy(), y) for x, y in pipelines.build(
        root, "train", image_size=SIZE, batch_size=1, training=False)]
    assert center.min() > 120  # the default center crop: no black band left


@pytest.mark.parametrize("name, value", [
    ("crop_area_range", (0.0, 1.0)), ("crop_area_range", (0.6, 0.2)),
    ("crop_area_range", (0.5, 1.5)), ("crop_area_range", 0.5),
    ("crop_aspect_range", (0.0, 1.0)), ("crop_aspect_range", (2.0, 1.0)),
    ("crop_aspect_range", ("a", "b")), ("resize_method", "nearest"),
    ("eval_crop_fraction", "all"), ("eval_crop_fraction", 0.0), ("flip", "no"),
])
def test_bad_knob_values_raise_naming_the_argument(name, value):
    """Refused where the option is made, before any pipeline exists."""
    with pytest.raises(ValueError, match=name.removeprefix("eval_")) as error:
        pipelines.Preprocess(**{name: value})
    assert repr(value) in str(error.value)
