"""What every source gives, and the sharding and label check they share.

A source gives, for a split, a ``tf.data.Dataset`` of records
``{"image": encoded bytes, "label": int32 in [0, num_classes), "origin": where it came from}``
(``origin`` names the file, shard record or TFDS id in warnings and errors), already sharded
for a ``tf.distribute.InputContext``: by file when every input pipeline gets at least one
file, else by element (every pipeline then reads all files in the same order and keeps its
share). The preprocessing is the same for all sources (``pipelines.preprocess``).

This module imports no kind of source: the kinds (``pipelines.source_tfrecords``,
``pipelines.source_folders``, ``pipelines.source_tfds``) import it, and ``pipelines.sources``
imports them all for ``get_source``.
"""

from __future__ import annotations

import zlib

import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
# Split names and the file/folder names they are also found under.
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
}


def split_aliases(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(split, (split,))


def _join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def _num_pipelines(input_context) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    return int(input_context.num_input_pipelines), int(input_context.input_pipeline_id)


def _file_seed(seed, by_file: bool, pipeline_id: int):
    """Seed of the file shuffle; shared by all pipelines when they shard by element."""
    if by_file:
        return None if seed is None else zlib.crc32(f"files/{seed}/{pipeline_id}".encode())
    # Sharding by element needs the same file order in every pipeline, so a fixed seed.
    return zlib.crc32(f"files/{0 if seed is None else seed}".encode())


def shard_and_read(items, num_items: int, read, *, input_context, shuffle, seed, name):
    """Shards ``items`` (files) by file when each pipeline gets one, else the records by element.

    ``read(items, deterministic) -> records``. Shuffles the file order (training), anew on
    every pass.
    """
    pipelines, pipeline_id = _num_pipelines(input_context)
    by_file = num_items >= pipelines
    if pipelines > 1 and by_file:
        items = items.shard(pipelines, pipeline_id)
        num_items = len(range(pipeline_id, num_items, pipelines))
    elif pipelines > 1:
        logging.warning(
            "%s: %d files for %d input pipelines; sharding by element (each pipeline reads "
            "every file and keeps 1/%d of the records).", name, num_items, pipelines, pipelines,
        )
    if shuffle:
        items = items.shuffle(
            max(num_items, 1), seed=_file_seed(seed, by_file, pipeline_id),
            reshuffle_each_iteration=True,
        )
    records = read(items, None if by_file else True)
    if pipelines > 1 and not by_file:
        records = records.shard(pipelines, pipeline_id)
    return records


def check_labels(records, num_classes: int | None, name: str):
    """Fails with the record's origin when a label is outside ``[0, num_classes)``."""

    def check(record):
        label = record["label"]
        valid = label >= 0 if num_classes is None else (label >= 0) & (label < num_classes)
        bound = "[0, inf)" if num_classes is None else f"[0, {num_classes})"
        assertion = tf.debugging.Assert(
            valid, [f"{name}: label outside {bound} in", record["origin"], "label:", label]
        )
        with tf.control_dependencies([assertion]):
            return dict(record, label=tf.identity(label))

    return records.map(check, num_parallel_calls=AUTOTUNE, deterministic=None)


class Source:
    """A dataset of encoded images and labels, split by name; see the module docstring."""

    name: str = "source"
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None

    def check_num_classes(self, given: int | None) -> None:
        """The ``num_classes=`` option given to a source that knows its classes must agree."""
        if given is not None and self.num_classes is not None and int(given) != (
                self.num_classes):
            raise ValueError(f"num_classes={given} but dataset {self.name!r} has "
                             f"{self.num_classes} classes")

    def num_examples(self, split: str) -> int | None:
        """Examples in ``split`` when known without reading the data, else None."""
        return None

    def remember_num_examples(self, split: str, count: int) -> None:
        """Told the count of ``split`` once it was read (``pipelines.checks``); sources that
        know their counts ignore it."""

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        """The split's records ``{"image", "label", "origin"}``, sharded for ``input_context``."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes})"
