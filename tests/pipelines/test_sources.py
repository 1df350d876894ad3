"""Sources: folders, TFRecord shards (local and another TF filesystem), TFDS; sharding."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import pipelines


def read_all(records):
    """[(origin, label)] of a records dataset."""
    return [(r["origin"].decode(), int(r["label"])) for r in records.as_numpy_iterator()]


def context(pipelines_, index):
    return tf.distribute.InputContext(num_input_pipelines=pipelines_, input_pipeline_id=index,
                                      num_replicas_in_sync=pipelines_)


def read_shards(source, split, num_pipelines, shuffle=False, seed=None):
    return [read_all(source.records(split, shuffle_files=shuffle, seed=seed,
                                    input_context=context(num_pipelines, i)))
            for i in range(num_pipelines)]


def assert_disjoint_cover(parts, everything):
    seen = [origin for part in parts for origin, _ in part]
    assert all(len(part) > 0 for part in parts)
    assert len(seen) == len(set(seen)), "input pipelines read overlapping data"
    assert sorted(seen) == sorted(origin for origin, _ in everything)


# ---- image folders ------------------------------------------------------------------------------


def test_folder_classes_are_sorted_names_and_labels_follow(image_folder):
    source = pipelines.get_source(image_folder)
    assert isinstance(source, pipelines.FolderSource)
    assert source.class_names == ("class_0", "class_1", "class_2")
    assert source.num_classes == 3 and source.num_examples("train") == 18
    for origin, label in read_all(source.records("train")):
        assert os.path.basename(os.path.dirname(origin)) == f"class_{label}"
    assert pipelines.get_source(image_folder, num_classes=3).num_classes == 3
    with pytest.raises(ValueError, match=f"num_classes=4 but dataset '{image_folder}' has 3"):
        pipelines.get_source(image_folder, num_classes=4)


def test_folder_validation_fraction_is_disjoint_stratified_and_stable(image_folder):
    source = pipelines.get_source(image_folder, validation_fraction=1 / 3)
    train, val = source.examples("train"), source.examples("validation")
    assert len(val) == 6 and len(train) == 12
    assert not {p for p, _ in train} & {p for p, _ in val}
    assert sorted(label for _, label in val) == [0, 0, 1, 1, 2, 2]
    again = pipelines.FolderSource(image_folder, validation_fraction=1 / 3)
    assert again.examples("validation") == val
    assert source.num_examples("val") == 6


def test_folder_with_train_and_val_subfolders_and_separate_validation_dir(tmp_path, kit):
    kit.write_folder(str(tmp_path / "data/train"), num_classes=2, per_class=3)
    kit.write_folder(str(tmp_path / "data/val"), num_classes=2, per_class=1)
    source = pipelines.get_source(str(tmp_path / "data"))
    assert source.class_names == ("class_0", "class_1")
    assert source.num_examples("train") == 6 and source.num_examples("validation") == 2
    separate = pipelines.FolderSource(str(tmp_path / "data/train"),
                                      validation_dir=str(tmp_path / "data/val"))
    assert [label for _, label in separate.examples("validation")] == [0, 1]


def test_folder_errors_name_the_path(tmp_path, kit):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        pipelines.get_source(str(tmp_path / "nowhere"))
    os.makedirs(tmp_path / "empty/class_a")
    with pytest.raises(ValueError, match="no images .* in .*empty"):
        pipelines.get_source(str(tmp_path / "empty")).records("train")
    os.makedirs(tmp_path / "flat")
    kit.write(str(tmp_path / "flat/a.jpg"), kit.encode(kit.pattern(8, 8)))
    with pytest.raises(ValueError, match="no class folders in .*flat"):
        pipelines.get_source(str(tmp_path / "flat"))
    with pytest.raises(ValueError, match="no 'validation' split"):
        pipelines.get_source(str(tmp_path / "empty")).examples("validation")


def test_folder_links_are_followed_once_and_loops_are_named_and_skipped(tmp_path, kit, caplog):
    """Real links: a folder linked in from outside the tree is read (once, though linked
    twice); a link back to its own class folder, a link to a sibling class, two files linking
    to each other and a dangling link are left out, named in one warning."""
    root = tmp_path / "data"
    kit.write_folder(str(root / "train"), num_classes=2, per_class=3)
    kit.write_folder(str(tmp_path / "elsewhere"), num_classes=1, per_class=2)
    extra = tmp_path / "elsewhere" / "class_0"
    os.symlink(extra, root / "train/class_1/extra")
    os.symlink(extra, root / "train/class_1/extra_again")
    os.symlink(root / "train/class_0", root / "train/class_0/loop")
    os.symlink(root / "train/class_1", root / "train/class_0/sibling")
    os.symlink(root / "train/class_0/b.jpg", root / "train/class_0/a.jpg")
    os.symlink(root / "train/class_0/a.jpg", root / "train/class_0/b.jpg")
    os.symlink(tmp_path / "gone.jpg", root / "train/class_0/gone.jpg")
    source = pipelines.get_source(str(root / "train"))
    labels = [label for _, label in source.examples("train")]
    assert labels.count(0) == 3 and labels.count(1) == 3 + 2
    assert len(read_all(source.records("train"))) == 8
    warnings = [r.getMessage() for r in caplog.records if "link(s)" in r.getMessage()]
    assert len(warnings) == 1 and "left out 6 link(s)" in warnings[0]
    for name, why in [("class_0/loop", "links back into"), ("class_0/sibling", "links back"),
                      ("class_0/a.jpg", "Too many levels of symbolic links"),
                      ("class_0/b.jpg", "Too many levels of symbolic links"),
                      ("class_0/gone.jpg", "No such file"), ("class_1/extra_again", f"{extra} is listed already")]:
        assert f"{root / 'train' / name} ({why}" in warnings[0]


def test_folder_sharding_is_disjoint_and_covers(image_folder):
    source = pipelines.get_source(image_folder)
    everything = read_all(source.records("train"))
    assert_disjoint_cover(read_shards(source, "train", 2, shuffle=True), everything)
    assert_disjoint_cover(read_shards(source, "train", 3), everything)


# ---- TFRecord shards ----------------------------------------------------------------------------


def test_tfrecord_dir_by_split_with_one_based_labels(shard_dir):
    source = pipelines.get_source(shard_dir)
    assert isinstance(source, pipelines.TFRecordSource)
    assert len(source.files("train")) == 4 and len(source.files("validation")) == 1
    train = read_all(source.records("train"))
    assert len(train) == 20
    assert sorted(label for _, label in train) == sorted([i % 5 for i in range(20)])
    assert train[0][0].endswith("train-00000-of-00004#0")
    assert len(read_all(source.records("validation"))) == 6
    assert source.num_classes is None and source.num_examples("train") is None


def test_tfrecord_glob_and_split_pattern_read_the_same_files(shard_dir):
    by_glob = pipelines.get_source(f"{shard_dir}/train-*")
    by_pattern = pipelines.get_source(f"{shard_dir}/{{split}}-*")
    assert by_glob.files("validation") == by_glob.files("train")  # a glob is the split
    assert by_pattern.files("train") == pipelines.get_source(shard_dir).files("train")
    assert len(by_pattern.files("validation")) == 1


def test_tfrecords_on_another_tf_filesystem_use_the_same_code(kit):
    # gs:// goes through tf.io.gfile exactly like this in-memory file system does.
    kit.write_shards("ram://imagenet_like", "train", 2, 3)
    source = pipelines.get_source("ram://imagenet_like")
    assert [os.path.basename(f) for f in source.files("train")] == [
        "train-00000-of-00002", "train-00001-of-00002"]
    assert len(read_all(source.records("train"))) == 6


def test_tfrecord_metadata_and_imagenet_names(tmp_path, kit):
    folder = str(tmp_path / "meta")
    kit.write_shards(folder, "train", 1, 2)
    with open(f"{folder}/metadata.json", "w") as f:
        json.dump({"class_names": ["a", "b", "c", "d", "e"], "num_examples": {"train": 2}}, f)
    source = pipelines.get_source(folder)
    assert source.num_classes == 5 and source.class_names[0] == "a"
    with pytest.raises(ValueError, match="num_classes=7 but dataset .* has 5 classes"):
        pipelines.get_source(folder, num_classes=7)
    assert source.num_examples("train") == 2
    imagenet = str(tmp_path / "imagenet")
    os.makedirs(imagenet)
    for i in range(128):
        open(f"{imagenet}/validation-{i:05d}-of-00128", "wb").close()
    source = pipelines.get_source(imagenet)
    assert source.num_classes == 1000 and source.num_examples("validation") == 50_000
    assert pipelines.get_source(imagenet, num_classes=10).num_classes == 10  # a subset's


def test_tfrecord_errors_name_the_pattern(tmp_path, shard_dir):
    with pytest.raises(FileNotFoundError, match="nothing matches .*test-"):
        pipelines.get_source(shard_dir).files("test")
    with pytest.raises(FileNotFoundError, match="nothing matches .*nope"):
        pipelines.get_source(str(tmp_path / "nope-*")).files("train")


def test_tfrecord_sharding_by_file_and_by_element(shard_dir, tmp_path, kit):
    source = pipelines.get_source(shard_dir)
    everything = read_all(source.records("train"))
    by_file = read_shards(source, "train", 2, shuffle=True, seed=4)
    assert_disjoint_cover(by_file, everything)
    shard_names = [{o.split("#")[0] for o, _ in part} for part in by_file]
    assert not shard_names[0] & shard_names[1]  # whole files per pipeline
    # One file for two pipelines: every pipeline reads it and keeps alternate records.
    by_element = read_shards(pipelines.get_source(f"{shard_dir}/validation-*"), "validation", 2)
    assert [len(part) for part in by_element] == [3, 3]
    assert_disjoint_cover(by_element, read_all(
        pipelines.get_source(shard_dir).records("validation")))
    # Unseeded shuffling with more pipelines than files still splits the data cleanly.
    kit.write_shards(str(tmp_path / "three"), "train", 3, 4)
    three = pipelines.get_source(str(tmp_path / "three"))
    assert_disjoint_cover(read_shards(three, "train", 4, shuffle=True),
                          read_all(three.records("train")))


def test_file_order_is_really_shuffled_and_seeded(shard_dir):
    source = pipelines.get_source(shard_dir)

    def first_files(seed):
        records = read_all(source.records("train", shuffle_files=True, seed=seed))
        return [o.split("#")[0] for o, _ in records[::5]]

    orders = {tuple(first_files(seed)) for seed in range(8)}
    assert len(orders) > 3
    assert first_files(1) == first_files(1)


# ---- TFDS ---------------------------------------------------------------------------------------


class TinyImages(tfds.core.GeneratorBasedBuilder):
    """A 3-class JPEG dataset written by the test (12 train, 4 test), in 4 train shards."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=["ant", "bee", "cat"]),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(12, 0), "test": self._generate_examples(4, 100)}

    def _generate_examples(self, count, offset):
        rng = np.random.default_rng(offset)
        for i in range(count):
            image = rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)
            yield offset + i, {"image": image, "label": i % 3}


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    TinyImages(data_dir=data_dir).download_and_prepare(
        download_config=tfds.download.DownloadConfig(num_shards=4))
    return data_dir


def test_tfds_source_reads_encoded_images_and_metadata(tiny_tfds):
    source = pipelines.get_source("tfds:tiny_images", data_dir=tiny_tfds)
    assert source.num_classes == 3 and source.class_names == ("ant", "bee", "cat")
    with pytest.raises(ValueError, match="num_classes=2 but dataset 'tfds:tiny_images' has 3"):
        pipelines.get_source("tfds:tiny_images", data_dir=tiny_tfds, num_classes=2)
    assert source.num_examples("train") == 12
    assert source.num_examples("validation") == 4  # no validation split: its test split
    record = next(source.records("train").as_numpy_iterator())
    assert record["image"][:3] == b"\xff\xd8\xff"  # still JPEG bytes: crop-only decode applies
    assert sorted(label for _, label in read_all(source.records("train"))) == sorted([0, 1, 2] * 4)
    with pytest.raises(ValueError, match="no split 'holdout'"):
        source.records("holdout")


def test_tfds_sharding_by_file_and_by_element(tiny_tfds):
    source = pipelines.get_source("tfds:tiny_images", data_dir=tiny_tfds)
    everything = read_all(source.records("train"))
    assert_disjoint_cover(read_shards(source, "train", 2, shuffle=True, seed=3), everything)
    assert_disjoint_cover(read_shards(source, "train", 5, shuffle=True), everything)


class TinyPixels(tfds.core.GeneratorBasedBuilder):
    """Images stored as raw uint8 tensors (grayscale), not as encoded Image features."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "pixels": tfds.features.Tensor(shape=(6, 9), dtype=np.uint8),
                "digit": tfds.features.ClassLabel(num_classes=2),
            }),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(4):
            yield i, {"pixels": TinyPixels.pixels(i), "digit": i % 2}

    @staticmethod
    def pixels(i):
        return np.arange(54, dtype=np.uint8).reshape(6, 9) * (i + 1)


def test_tfds_raw_pixel_images_are_read_losslessly(tmp_path):
    TinyPixels(data_dir=str(tmp_path)).download_and_prepare()
    source = pipelines.get_source("tfds:tiny_pixels", data_dir=str(tmp_path))
    assert source.num_classes == 2
    found = []
    for record in source.records("train").as_numpy_iterator():
        decoded = tf.io.decode_png(record["image"]).numpy()
        assert decoded.shape == (6, 9, 1)
        found += [j for j in range(4) if np.array_equal(decoded[..., 0], TinyPixels.pixels(j))
                  and record["label"] == j % 2]
    assert sorted(found) == [0, 1, 2, 3]
    images, labels = next(iter(pipelines.build("tfds:tiny_pixels", "train", image_size=32,
                                               batch_size=4, training=False,
                                               data_dir=str(tmp_path))))
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
    # grayscale pixels become three equal channels
    np.testing.assert_array_equal(images[..., 0], images[..., 2])


def test_tfds_build_under_mock_data():
    with tfds.testing.mock_data(num_examples=5):
        for name, num_classes in [("tf_flowers", 5), ("imagenet2012", 1000)]:
            ds = pipelines.build(f"tfds:{name}", "train", image_size=32, batch_size=5,
                                 batching=pipelines.Batching(repeat=False),
                                 runtime=pipelines.Runtime(seed=0))
            images, labels = next(iter(ds))
            assert images.shape == (5, 32, 32, 3) and images.dtype == tf.float32
            assert 0 <= int(tf.reduce_min(labels)) and int(tf.reduce_max(labels)) < num_classes
            assert pipelines.num_classes(f"tfds:{name}") == num_classes


def test_unknown_spec_says_what_it_tried():
    with pytest.raises(FileNotFoundError, match="no such dataset: 'not/here'"):
        pipelines.get_source("not/here")
    with pytest.raises(TypeError):
        pipelines.get_source(42)
