"""ImageNet-format TFRecord shards as a source (``TFRecordSource``).

A folder of shards named ``{split}-*`` (``train-00000-of-01024``...), a glob
(``gs://bucket/imagenet/train-*``) or a pattern with ``{split}``; local and ``gs://`` paths go
through the same ``tf.io.gfile`` code.
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import tensorflow as tf

from pipelines.source_base import AUTOTUNE, Source, _join, shard_and_read, split_aliases
from pipelines.source_specs import is_glob

# ImageNet TFRecords as the official scripts write them (tensorflow/tpu
# tools/datasets/imagenet_to_gcs.py): JPEG bytes, 1-based labels 1..1000.
IMAGENET_SHARDS = {"train": (1024, 1_281_167), "validation": (128, 50_000)}
IMAGENET_NUM_CLASSES = 1000
METADATA_FILE = "metadata.json"  # written next to the shards by pipelines.make_tfrecords
TFRECORD_BUFFER_BYTES = 8 << 20
MAX_PARALLEL_READS = 16


class TFRecordSource(Source):
    """ImageNet-format TFRecords: ``image/encoded`` and 1-based ``image/class/label``.

    ``path`` is a folder of ``{split}-*`` shards, a glob (used for whatever split is asked
    for), or a pattern containing ``{split}``. ``num_classes``, ``class_names`` and counts
    come from the arguments, else from a ``metadata.json`` next to the shards
    (``make_tfrecords`` writes one), else from the ImageNet shard names.
    """

    def __init__(
        self,
        path: str,
        *,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        label_offset: int | None = None,
        num_examples: dict[str, int] | None = None,
    ):
        self.path = os.fspath(path)
        self.name = self.path
        self._metadata = self._read_metadata()
        names = class_names or self._metadata.get("class_names")
        self.class_names = tuple(names) if names else None
        self.num_classes = len(self.class_names) if self.class_names else None
        self.check_num_classes(num_classes)
        self.num_classes = self.num_classes or num_classes
        if label_offset is None:
            label_offset = self._metadata.get("label_offset", 1)
        self.label_offset = int(label_offset)
        self._num_examples = dict(self._metadata.get("num_examples", {}), **(num_examples or {}))
        if self.num_classes is None and self._looks_like_imagenet():
            self.num_classes = IMAGENET_NUM_CLASSES

    def _folder(self) -> str:
        path = self.path.split("{split}")[0] if "{split}" in self.path else self.path
        if is_glob(path) or not tf.io.gfile.isdir(path):
            path = os.path.dirname(path)
        return path

    def _read_metadata(self) -> dict:
        metadata = _join(self._folder(), METADATA_FILE) if self._folder() else METADATA_FILE
        if not tf.io.gfile.exists(metadata):
            return {}
        with tf.io.gfile.GFile(metadata) as f:
            return json.load(f)

    def _patterns(self, split: str) -> list[str]:
        if "{split}" in self.path:
            return [self.path.format(split=alias) for alias in split_aliases(split)]
        if is_glob(self.path):
            return [self.path]
        if tf.io.gfile.isdir(self.path):
            return [_join(self.path, f"{alias}-*") for alias in split_aliases(split)]
        if tf.io.gfile.exists(self.path):
            return [self.path]
        raise FileNotFoundError(f"TFRecord path not found: {self.path!r}")

    def files(self, split: str) -> list[str]:
        """The split's shard files, sorted."""
        patterns = self._patterns(split)
        for pattern in patterns:
            files = sorted(tf.io.gfile.glob(pattern))
            if files:
                return files
        raise FileNotFoundError(
            f"no TFRecord files for split {split!r}: nothing matches {', '.join(patterns)}"
        )

    def _looks_like_imagenet(self) -> bool:
        for split, (num_shards, _) in IMAGENET_SHARDS.items():
            try:
                files = self.files(split)
            except FileNotFoundError:
                continue
            suffix = f"-of-{num_shards:05d}"
            if len(files) == num_shards and all(f.endswith(suffix) for f in files):
                return True
        return False

    def num_examples(self, split: str) -> int | None:
        if split in self._num_examples:
            return int(self._num_examples[split])
        if split in IMAGENET_SHARDS and self._looks_like_imagenet():
            num_shards, count = IMAGENET_SHARDS[split]
            if len(self.files(split)) == num_shards:
                return count
        return None

    def remember_num_examples(self, split: str, count: int) -> None:
        self._num_examples.setdefault(split, int(count))

    def _parse(self, record, file, index):
        features = tf.io.parse_single_example(
            record,
            {
                "image/encoded": tf.io.FixedLenFeature([], tf.string),
                "image/class/label": tf.io.FixedLenFeature([], tf.int64),
            },
        )
        return {
            "image": features["image/encoded"],
            "label": tf.cast(features["image/class/label"], tf.int32) - self.label_offset,
            "origin": tf.strings.join([file, "#", tf.strings.as_string(index)]),
        }

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        files = self.files(split)

        def read(file_ds, deterministic):
            def read_file(file):
                return tf.data.TFRecordDataset(file, buffer_size=TFRECORD_BUFFER_BYTES).enumerate()

            records = file_ds.interleave(
                lambda file: read_file(file).map(lambda i, r: (r, file, i)),
                cycle_length=min(len(files), MAX_PARALLEL_READS),
                block_length=1,
                num_parallel_calls=AUTOTUNE,
                deterministic=deterministic,
            )
            return records.map(
                self._parse, num_parallel_calls=AUTOTUNE, deterministic=deterministic)

        file_ds = tf.data.Dataset.from_tensor_slices(files)
        return shard_and_read(
            file_ds, len(files), read, input_context=input_context, shuffle=shuffle_files,
            seed=seed, name=self.name,
        )
