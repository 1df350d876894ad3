"""Write an image folder as ImageNet-format TFRecord shards (for fast TPU/GCS training).

    python -m pipelines.make_tfrecords --input_dir ~/flowers --output_dir gs://bucket/flowers \\
        --num_shards 64 [--validation_fraction 0.1 | --validation_dir ~/flowers_val]

Input: ``root/<class_name>/*.jpg|png|...`` as ``pipelines.FolderSource`` reads it (also
``root/train`` + ``root/val``). Output: ``train-00000-of-00064`` ... and
``validation-00000-of-000NN`` with ``image/encoded``, ``image/format``,
``image/class/label`` (1-based, as ImageNet), ``image/class/text``, ``image/filename``,
``image/height``, ``image/width``; plus ``metadata.json`` (class names, counts) that
``pipelines.get_source(output_dir)`` reads. Examples are shuffled across shards so every
shard mixes classes. Undecodable images are left out and listed. Non-JPEG images are
re-encoded as JPEG (quality 95) so that training uses the crop-only JPEG decode.
"""

from __future__ import annotations

import concurrent.futures
import json
import os

import numpy as np
import tensorflow as tf
from absl import logging

from pipelines.sources import METADATA_FILE, FolderSource

JPEG_QUALITY = 95


def _bytes_feature(value: bytes):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def make_example(encoded: bytes, image_format: str, label: int, class_name: str,
                 filename: str, height: int, width: int) -> tf.train.Example:
    """One ImageNet-format example; ``label`` is 0-based and stored 1-based."""
    return tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes_feature(encoded),
        "image/format": _bytes_feature(image_format.encode()),
        "image/class/label": _int_feature(label + 1),
        "image/class/text": _bytes_feature(class_name.encode()),
        "image/filename": _bytes_feature(filename.encode()),
        "image/height": _int_feature(height),
        "image/width": _int_feature(width),
    }))


def encode_for_training(data: bytes, convert_to_jpeg: bool = True) -> tuple[bytes, str, int, int]:
    """``(bytes, format, height, width)``; raises ``InvalidArgumentError`` if undecodable."""
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    height, width = int(image.shape[0]), int(image.shape[1])
    if tf.io.is_jpeg(data):
        return data, "JPEG", height, width
    if convert_to_jpeg:
        return tf.io.encode_jpeg(image, quality=JPEG_QUALITY).numpy(), "JPEG", height, width
    return data, "RAW", height, width


def write_shard(path: str, examples, class_names, root: str, convert_to_jpeg: bool):
    """Writes ``examples`` (path, label) to one shard; returns (written, skipped paths)."""
    written, skipped = 0, []
    with tf.io.TFRecordWriter(path) as writer:
        for image_path, label in examples:
            try:
                data = tf.io.read_file(image_path).numpy()
                encoded, image_format, height, width = encode_for_training(data, convert_to_jpeg)
            except tf.errors.InvalidArgumentError:
                skipped.append(image_path)
                continue
            filename = os.path.relpath(image_path, root) if "://" not in root else image_path
            example = make_example(encoded, image_format, label, class_names[label], filename,
                                   height, width)
            writer.write(example.SerializeToString())
            written += 1
    return written, skipped


def write_split(source: FolderSource, split: str, output_dir: str, num_shards: int, *,
                seed: int = 0, convert_to_jpeg: bool = True, num_threads: int | None = None):
    """Writes one split as ``{split}-%05d-of-%05d`` shards; returns (count, skipped paths)."""
    examples = list(source.examples(split))
    order = np.random.default_rng(seed).permutation(len(examples))
    shards = np.array_split(np.asarray(order), num_shards)
    paths = [f"{output_dir.rstrip('/')}/{split}-{i:05d}-of-{num_shards:05d}"
             for i in range(num_shards)]
    threads = num_threads or min(num_shards, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(
            lambda i: write_shard(paths[i], [examples[j] for j in shards[i]],
                                  source.class_names, source.root,
                                  convert_to_jpeg),
            range(num_shards)))
    count = sum(written for written, _ in results)
    skipped = sorted(p for _, skipped in results for p in skipped)
    for path in skipped:
        logging.warning("left out an undecodable image: %s", path)
    logging.info("%s: wrote %d examples in %d shards (%d left out)", split, count, num_shards,
                 len(skipped))
    return count, skipped


def write_tfrecords(input_dir: str, output_dir: str, *, num_shards: int = 16,
                    validation_shards: int | None = None, validation_dir: str | None = None,
                    validation_fraction: float = 0.0, convert_to_jpeg: bool = True,
                    seed: int = 0, num_threads: int | None = None) -> dict[str, int]:
    """Writes every split of the folder; returns the number of examples written per split."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    source = FolderSource(input_dir, validation_dir=validation_dir,
                          validation_fraction=validation_fraction)
    splits = {"train": num_shards}
    if "validation" in source.split_dirs or validation_fraction:
        splits["validation"] = validation_shards or max(1, num_shards // 8)
    tf.io.gfile.makedirs(output_dir)
    counts, skipped = {}, {}
    for split, shards in splits.items():
        counts[split], skipped[split] = write_split(
            source, split, output_dir, shards, seed=seed, convert_to_jpeg=convert_to_jpeg,
            num_threads=num_threads)
    metadata = {"format": "imagenet-tfrecord", "label_offset": 1,
                "class_names": list(source.class_names), "num_examples": counts,
                "left_out": skipped}
    with tf.io.gfile.GFile(f"{output_dir.rstrip('/')}/{METADATA_FILE}", "w") as f:
        json.dump(metadata, f, indent=1)
    return counts


def _define_flags():
    from absl import flags

    flags.DEFINE_string("input_dir", None, "image folder root/<class_name>/*.jpg", required=True)
    flags.DEFINE_string("output_dir", None, "where to write the shards (local or gs://)",
                        required=True)
    flags.DEFINE_integer("num_shards", 16, "training shards")
    flags.DEFINE_integer("validation_shards", None, "validation shards (default num_shards/8)")
    flags.DEFINE_string("validation_dir", None, "separate validation folder, same classes")
    flags.DEFINE_float("validation_fraction", 0.0, "hold out this fraction of each class")
    flags.DEFINE_bool("convert_to_jpeg", True, "re-encode PNG/GIF/BMP/WebP as JPEG")
    flags.DEFINE_integer("seed", 0, "shuffles examples across shards")
    return flags.FLAGS


def main(argv):
    del argv
    flags = _FLAGS
    counts = write_tfrecords(
        flags.input_dir, flags.output_dir, num_shards=flags.num_shards,
        validation_shards=flags.validation_shards, validation_dir=flags.validation_dir,
        validation_fraction=flags.validation_fraction, convert_to_jpeg=flags.convert_to_jpeg,
        seed=flags.seed)
    print(json.dumps(counts))


if __name__ == "__main__":
    from absl import app

    _FLAGS = _define_flags()
    app.run(main)
