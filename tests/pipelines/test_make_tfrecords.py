"""make_tfrecords: an image folder as ImageNet-format shards the pipeline reads back."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines.make_tfrecords import write_tfrecords


def parse_all(files):
    spec = {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/format": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
        "image/class/text": tf.io.FixedLenFeature([], tf.string),
        "image/filename": tf.io.FixedLenFeature([], tf.string),
        "image/height": tf.io.FixedLenFeature([], tf.int64),
        "image/width": tf.io.FixedLenFeature([], tf.int64),
    }
    records = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec))
    return list(records.as_numpy_iterator())


def test_writes_shards_metadata_and_skips_undecodable_images(messy_folder, tmp_path):
    out = str(tmp_path / "shards")
    counts = write_tfrecords(messy_folder, out, num_shards=3, validation_fraction=0.25)
    folder = pipelines.get_source(messy_folder, validation_fraction=0.25)
    bad = ("corrupt.jpg", "truncated.jpg")
    assert counts == {split: sum(not p.endswith(bad) for p, _ in folder.examples(split))
                      for split in ("train", "validation")}
    assert sum(counts.values()) == 10  # 12 files, 2 undecodable
    names = sorted(os.listdir(out))
    assert names == ["metadata.json", "train-00000-of-00003", "train-00001-of-00003",
                     "train-00002-of-00003", "validation-00000-of-00001"]
    metadata = json.load(open(f"{out}/metadata.json"))
    assert metadata["class_names"] == ["class_0", "class_1"]
    left_out = sorted(os.path.basename(p) for split in metadata["left_out"].values() for p in split)
    assert left_out == ["corrupt.jpg", "truncated.jpg"]

    examples = parse_all([f"{out}/{n}" for n in names if n.startswith("train")])
    assert len(examples) == counts["train"]
    for ex in examples:
        label = int(ex["image/class/label"])
        assert label in (1, 2)  # 1-based, as ImageNet
        assert ex["image/class/text"].decode() == f"class_{label - 1}"
        assert ex["image/filename"].decode().startswith(f"class_{label - 1}/")
        assert ex["image/format"] == b"JPEG" and ex["image/encoded"][:3] == b"\xff\xd8\xff"
        decoded = tf.io.decode_jpeg(ex["image/encoded"], channels=3)
        assert decoded.shape[:2] == (ex["image/height"], ex["image/width"])
    everything = examples + parse_all([f"{out}/validation-00000-of-00001"])
    png, = [ex for ex in everything if ex["image/filename"].endswith(b"picture.png")]
    assert png["image/format"] == b"JPEG"  # re-encoded for the crop-only JPEG decode
    assert (png["image/height"], png["image/width"]) == (30, 50)


def test_shards_read_back_through_the_pipeline(image_folder, tmp_path):
    out = str(tmp_path / "shards")
    write_tfrecords(image_folder, out, num_shards=2, validation_fraction=1 / 3)
    source = pipelines.get_source(out)
    assert isinstance(source, pipelines.TFRecordSource)
    assert source.class_names == ("class_0", "class_1", "class_2")
    assert source.num_examples("train") == 12 and source.num_examples("validation") == 6
    folder = pipelines.get_source(image_folder, validation_fraction=1 / 3)
    ds = pipelines.build(out, "validation", image_size=32, batch_size=6, training=False)
    (images, labels), = [(x.numpy(), y.numpy()) for x, y in ds]
    assert sorted(labels) == sorted(label for _, label in folder.examples("validation"))
    train = pipelines.build(out, "train", image_size=32, batch_size=4,
                            runtime=pipelines.Runtime(seed=0))
    assert train.element_spec[1].shape == (4,)
    # Shards mix classes (examples are shuffled before sharding).
    first_shard = parse_all([f"{out}/train-00000-of-00002"])
    assert len({int(ex["image/class/label"]) for ex in first_shard}) > 1


def test_command_line(image_folder, tmp_path):
    out = str(tmp_path / "cli")
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.make_tfrecords", f"--input_dir={image_folder}",
         f"--output_dir={out}", "--num_shards=2"],
        capture_output=True, text=True, timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                 PYTHONPATH=os.path.dirname(os.path.dirname(pipelines.__file__))))
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"train": 18}
    assert len(tf.io.gfile.glob(f"{out}/train-*")) == 2


def test_missing_input_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_tfrecords(str(tmp_path / "nowhere"), str(tmp_path / "out"))
    assert not np.any([os.path.exists(tmp_path / "out")])
