"""pipelines.build end to end: shapes from the variant, options, determinism, bad input."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import pipelines


def take(ds, n):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(n)]


@pytest.mark.parametrize("variant, size", [("b0", 224), ("b4", 380), ("b7", 600)])
def test_static_shapes_and_dtypes_match_the_variant(image_folder, variant, size):
    ds = pipelines.build(image_folder, "train", variant=variant, batch_size=4)
    images, labels = ds.element_spec
    assert images.shape == (4, size, size, 3) and images.dtype == tf.float32
    assert labels.shape == (4,) and labels.dtype == tf.int32
    evaluation = pipelines.build(image_folder, "train", variant=variant, batch_size=4,
                                 training=False)
    assert evaluation.element_spec[0].shape.as_list() == [None, size, size, 3]


def test_train_batches_values_and_labels(image_folder):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=6,
                         runtime=pipelines.Runtime(seed=0))
    (images, labels), = take(ds, 1)
    assert images.shape == (6, 32, 32, 3) and 0 <= images.min() and images.max() <= 255
    assert images.max() > 200  # [0, 255] pixels, not normalized
    assert set(labels) <= {0, 1, 2}


def test_eval_is_one_ordered_pass_with_every_image(image_folder):
    source = pipelines.get_source(image_folder)
    ds = pipelines.build(source, "train", image_size=32, batch_size=4, training=False)
    batches = take(ds, 100)
    assert [len(y) for _, y in batches] == [4, 4, 4, 4, 2]  # drop_remainder off for eval
    labels = np.concatenate([y for _, y in batches])
    assert labels.tolist() == [label for _, label in source.examples("train")]


def test_pad_remainder_keeps_every_eval_example_in_full_batches(image_folder):
    source = pipelines.get_source(image_folder)
    ds = pipelines.build(source, "train", image_size=32, batch_size=4, training=False,
                         batching=pipelines.Batching(pad_remainder=True))
    assert [spec.shape.as_list() for spec in ds.element_spec] == [[4, 32, 32, 3], [4], [4]]
    batches = [[t.numpy() for t in batch] for batch in ds]
    assert len(batches) == 5  # 18 images: four full batches and 2 + 2 blanks
    images, labels, weights = (np.concatenate(parts) for parts in zip(*batches))
    assert weights.tolist() == [1.0] * 18 + [0.0] * 2
    assert labels[:18].tolist() == [label for _, label in source.examples("train")]
    assert not images[18:].any()
    unpadded = np.concatenate([x for x, _ in take(pipelines.build(
        source, "train", image_size=32, batch_size=4, training=False), 10)])
    np.testing.assert_array_equal(images[:18], unpadded)
    exact = pipelines.build(source, "train", image_size=32, batch_size=6, training=False,
                            batching=pipelines.Batching(pad_remainder=True))
    assert [b[2].numpy().tolist() for b in exact] == [[1.0] * 6] * 3  # no blank batch


def test_eval_center_crop_and_crop_fraction(tmp_path, kit):
    image = np.zeros((40, 80, 3), np.uint8)
    image[:, 20:60] = 255  # a white square in the middle, black bands left and right
    kit.write(str(tmp_path / "f/c/a.png"), kit.encode(image, "png"))
    center = pipelines.build(str(tmp_path / "f"), "train", image_size=32, batch_size=1,
                             training=False)
    (x, _), = take(center, 1)
    assert x.min() > 250  # the 35x35 centre crop holds only white
    wide = pipelines.build(str(tmp_path / "f"), "train", image_size=32, batch_size=1,
                           training=False,
                           preprocess=pipelines.Preprocess(eval_crop_fraction=1.0))
    (x, _), = take(wide, 1)
    assert x.min() > 250  # 40x40 still inside the white band
    assert pipelines.CROP_PADDING == 32


def test_same_seed_same_batches_other_seed_other_batches(image_folder):
    def first(seed):
        return take(pipelines.build(image_folder, "train", image_size=32, batch_size=5,
                                    runtime=pipelines.Runtime(seed=seed),
                                    augment="randaugment",
                                    mix=pipelines.Mix(cutmix_alpha=1.0)), 4)

    a, b, c = first(7), first(7), first(8)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not all(np.array_equal(xa, xc) for (xa, _), (xc, _) in zip(a, c))


def test_iterator_checkpoint_resumes_exactly(image_folder, tmp_path):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                         runtime=pipelines.Runtime(seed=1),
                         mix=pipelines.Mix(mixup_alpha=0.2))
    iterator = iter(ds)
    for _ in range(3):
        next(iterator)
    checkpoint = tf.train.Checkpoint(data=iterator)
    path = checkpoint.write(str(tmp_path / "ckpt"))
    expected = [next(iterator) for _ in range(3)]
    checkpoint.restore(path)
    for (x, y), (ex, ey) in zip([next(iterator) for _ in range(3)], expected):
        np.testing.assert_array_equal(x, ex)
        np.testing.assert_array_equal(y, ey)


def test_training_repeats_and_reshuffles_every_epoch(image_folder):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=6,
                         runtime=pipelines.Runtime(seed=2))
    labels = [y for _, y in take(ds, 9)]  # 54 images from 18: three epochs
    epochs = [np.concatenate(labels[i:i + 3]) for i in (0, 3, 6)]
    assert all(sorted(e) == [0] * 6 + [1] * 6 + [2] * 6 for e in epochs)
    assert not np.array_equal(epochs[0], epochs[1])


def test_one_hot_mixup_and_cutmix_labels(image_folder):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=6,
                         runtime=pipelines.Runtime(seed=3),
                         mix=pipelines.Mix(mixup_alpha=0.4, cutmix_alpha=1.0))
    for images, labels in take(ds, 4):
        assert labels.shape == (6, 3) and labels.dtype == np.float32
        np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-6)
        assert images.dtype == np.float32 and images.min() >= 0 and images.max() <= 255
    per_image = pipelines.build(image_folder, "train", image_size=32, batch_size=6,
                                runtime=pipelines.Runtime(seed=3),
                                mix=pipelines.Mix(mixup_alpha=0.4, per_image=True))
    for _, labels in take(per_image, 2):
        np.testing.assert_allclose(labels.sum(-1), 1.0, atol=1e-6)
        assert len(set(np.round(labels.max(-1), 5))) > 2  # a ratio per image
    (_, labels), = take(pipelines.build(image_folder, "train", image_size=32, batch_size=6,
                                        batching=pipelines.Batching(one_hot=True),
                                        runtime=pipelines.Runtime(seed=3)), 1)
    assert set(labels.ravel()) <= {0.0, 1.0} and (labels.sum(-1) == 1).all()


@pytest.mark.parametrize("dtype", ["bfloat16", "uint8"])
def test_output_dtype_option(image_folder, dtype):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                         batching=pipelines.Batching(dtype=dtype),
                         runtime=pipelines.Runtime(seed=0))
    assert ds.element_spec[0].dtype == tf.as_dtype(dtype)
    reference = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                                runtime=pipelines.Runtime(seed=0))
    (x, _), = take(ds, 1)
    (ref, _), = take(reference, 1)
    assert np.abs(x.astype(np.float32) - ref).max() <= 1.0  # rounding only


@pytest.mark.parametrize("augment", ["randaugment", "autoaugment"])
def test_augmented_pipelines_keep_shape_and_range(image_folder, augment):
    ds = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                         augment=pipelines.Augment(augment, magnitude=17),
                         runtime=pipelines.Runtime(seed=0))
    (x, y), = take(ds, 1)
    assert x.shape == (4, 32, 32, 3) and x.min() >= 0 and x.max() <= 255


def test_corrupt_images_are_skipped_counted_and_reported(messy_folder, capfd):
    counter = pipelines.SkipCounter()
    ds = pipelines.build(messy_folder, "train", image_size=32, batch_size=4, training=False,
                         runtime=pipelines.Runtime(skip_counter=counter))
    labels = np.concatenate([y for _, y in take(ds, 100)])
    assert len(labels) == 10  # 8 JPEGs + PNG + grayscale; the corrupt and truncated left out
    assert counter.count == 2 and counter.seen == 12
    err = capfd.readouterr().err
    assert "skipped 2 image(s) that could not be decoded" in err
    assert "corrupt.jpg" in err and "truncated.jpg" in err
    before = pipelines.skipped_images()
    training = pipelines.build(messy_folder, "train", image_size=32, batch_size=4,
                               batching=pipelines.Batching(repeat=False, drop_remainder=False))
    assert sum(len(y) for _, y in take(training, 100)) == 10
    assert pipelines.skipped_images() == before + 2  # the process-wide default counter


def test_a_folder_of_undecodable_files_fails_clearly(tmp_path, kit, image_folder):
    for i in range(70):
        kit.write(str(tmp_path / f"bad/c/{i}.jpg"), b"\xff\xd8\xff this is not an image")
    # Decided per pipeline: images that other pipelines decoded do not hide the problem.
    take(pipelines.build(image_folder, "train", image_size=32, batch_size=18,
                         training=False), 1)
    ds = pipelines.build(str(tmp_path / "bad"), "train", image_size=32, batch_size=4,
                         training=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="none of the first images"):
        take(ds, 100)


def test_label_outside_the_classes_names_the_file(tmp_path, kit):
    kit.write_shards(str(tmp_path / "s"), "train", 1, 4, label_of=lambda i: [1, 2, 9, 1][i])
    ds = pipelines.build(str(tmp_path / "s"), "train", image_size=32, batch_size=2,
                         training=False, num_classes=3)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"label outside \[0, 3\)(.|\n)*train-00000-of-00001#2"):
        take(ds, 10)
    negative = pipelines.build(str(tmp_path / "s"), "train", image_size=32, batch_size=2,
                               training=False, label_offset=3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="label outside"):
        take(negative, 10)


def test_option_errors():
    with pytest.raises(ValueError, match="exactly one of image_size= or variant="):
        pipelines.build("tfds:mnist", image_size=224, variant="b0", batch_size=2)
    with pytest.raises(FileNotFoundError, match="no such dataset: '/no/such/dir'"):
        pipelines.build("/no/such/dir", image_size=224, batch_size=2)
    with pytest.raises(TypeError, match=r"runtime=pipelines.Runtime\(seed=...\)"):
        pipelines.build("/no/such/dir", image_size=224, batch_size=2, seed=0)
    with pytest.raises(ValueError, match=r"Runtime\(seed=\) must be an integer"):
        pipelines.Runtime(seed="0")
    with pytest.raises(ValueError, match=r"Runtime\(service=\) takes a pipelines.Service"):
        pipelines.Runtime(service="grpc://host:1")


def test_option_errors_on_a_source(image_folder, shard_dir):
    kwargs = dict(image_size=32, batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        pipelines.build(image_folder, image_size=32, batch_size=0)
    with pytest.raises(ValueError, match="dtype"):
        pipelines.build(image_folder, batching=pipelines.Batching(dtype="float16"), **kwargs)
    with pytest.raises(ValueError, match="training only"):
        pipelines.build(image_folder, training=False, augment="randaugment", **kwargs)
    with pytest.raises(ValueError, match="pad_remainder=True.* is for one-pass evaluation"):
        pipelines.build(image_folder, training=True,
                        batching=pipelines.Batching(pad_remainder=True), **kwargs)
    with pytest.raises(ValueError, match="augment must be one of"):
        pipelines.build(image_folder, augment="trivialaugment", **kwargs)
    with pytest.raises(ValueError, match="num_classes .* is unknown"):
        pipelines.build(shard_dir, mix=pipelines.Mix(mixup_alpha=0.2), **kwargs)


def test_num_examples_and_num_classes(image_folder, shard_dir):
    assert pipelines.num_examples(image_folder, "train") == 18
    assert pipelines.num_classes(image_folder) == 3
    assert pipelines.num_examples(shard_dir, "train") is None  # unknown without reading


def test_cache_keeps_the_records(image_folder, tmp_path):
    for cache in (True, str(tmp_path / "cache")):
        ds = pipelines.build(image_folder, "train", image_size=32, batch_size=6, training=False,
                             batching=pipelines.Batching(cache=cache))
        first, second = take(ds, 3), take(ds, 3)
        assert [y.tolist() for _, y in first] == [y.tolist() for _, y in second]


def test_input_contexts_read_disjoint_halves_of_the_pipeline(image_folder):
    def labels_and_pixels(index):
        context = tf.distribute.InputContext(2, index, 2)
        ds = pipelines.build(image_folder, "train", image_size=32, batch_size=3,
                             training=False, runtime=pipelines.Runtime(input_context=context))
        return [x for x, _ in take(ds, 10)]

    halves = [np.concatenate(labels_and_pixels(i)) for i in (0, 1)]
    assert len(halves[0]) == len(halves[1]) == 9
    everything = np.concatenate([x for x, _ in take(pipelines.build(
        image_folder, "train", image_size=32, batch_size=18, training=False), 1)])
    fingerprints = sorted(x.tobytes() for x in np.concatenate(halves))
    assert fingerprints == sorted(x.tobytes() for x in everything)


@pytest.mark.slow
def test_distribute_datasets_from_function_with_two_replicas(image_folder):
    script = textwrap.dedent(f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import pipelines
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():  # a strategy scope must not break the skip counter
            dist = strategy.distribute_datasets_from_function(lambda ctx: pipelines.build(
                {image_folder!r}, "train", image_size=32, training=False,
                runtime=pipelines.Runtime(input_context=ctx),
                batch_size=ctx.get_per_replica_batch_size(6),
                batching=pipelines.Batching(drop_remainder=True)))
        counts = []
        for images, labels in dist:
            counts.append([int(t.shape[0]) for t in strategy.experimental_local_results(images)])
        print("COUNTS", counts, pipelines.skipped_images())
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "COUNTS [[3, 3], [3, 3], [3, 3]] 0" in result.stdout
