"""Where images come from: TFDS datasets, ImageNet-format TFRecord shards, image folders.

Every source gives, for a split, a ``tf.data.Dataset`` of records
``{"image": encoded bytes, "label": int32 in [0, num_classes), "origin": where it came from}``,
already sharded for a ``tf.distribute.InputContext`` (``pipelines.source_base``). The
preprocessing is the same for all sources (``pipelines.preprocess``).

``get_source(spec)`` turns a string into a source:
  * ``"tfds:tf_flowers"`` (any TFDS image-classification dataset; ``data_dir=`` optional);
  * a folder of TFRecord shards named ``{split}-*`` (``train-00000-of-01024``...), a glob
    (``gs://bucket/imagenet/train-*``) or a pattern with ``{split}``; local and ``gs://``
    paths go through the same ``tf.io.gfile`` code;
  * an image folder ``root/<class_name>/*.jpg`` (class names sorted give the labels), with
    ``root/train`` + ``root/val`` sub-folders, ``validation_dir=`` or ``validation_fraction=``.

The code is in one module per concern, all importable from here as before:
  * ``pipelines.source_base``: ``Source``, ``shard_and_read``, ``check_labels``,
    ``split_aliases``, the path and sharding helpers;
  * ``pipelines.source_tfrecords``: ``TFRecordSource`` and the ImageNet shard facts;
  * ``pipelines.source_folders``: ``FolderSource``, ``list_images``, ``IMAGE_EXTENSIONS``;
  * ``pipelines.source_tfds``: ``TFDSSource``;
  * this module: ``get_source``, which needs every kind, so the kinds import the base and not
    this module (no import cycle).
They are flat modules rather than a ``pipelines/sources/`` package because ``setup.cfg`` lists
the packages it installs by name: a sub-package would be missing from the wheel.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

from pipelines.source_base import (
    AUTOTUNE,
    SPLIT_ALIASES,
    Source,
    check_labels,
    shard_and_read,
    split_aliases,
)
from pipelines.source_folders import IMAGE_EXTENSIONS, FolderSource, list_images
from pipelines.source_specs import is_glob, not_found
from pipelines.source_tfds import TFDSSource
from pipelines.source_tfrecords import (
    IMAGENET_NUM_CLASSES,
    IMAGENET_SHARDS,
    MAX_PARALLEL_READS,
    METADATA_FILE,
    TFRECORD_BUFFER_BYTES,
    TFRecordSource,
)

__all__ = [
    "AUTOTUNE",
    "FolderSource",
    "IMAGENET_NUM_CLASSES",
    "IMAGENET_SHARDS",
    "IMAGE_EXTENSIONS",
    "MAX_PARALLEL_READS",
    "METADATA_FILE",
    "SPLIT_ALIASES",
    "Source",
    "TFDSSource",
    "TFRECORD_BUFFER_BYTES",
    "TFRecordSource",
    "check_labels",
    "get_source",
    "list_images",
    "shard_and_read",
    "split_aliases",
]


_SHARD_NAME = re.compile(r"(-\d{5}-of-\d{5}$)|(\.tfrecords?(-\d+)?$)|(\.tfrec$)")


def _has_tfrecords(folder: str) -> bool:
    return any(_SHARD_NAME.search(name) for name in tf.io.gfile.listdir(folder))


def get_source(spec, **options) -> Source:
    """A ``Source`` from a string spec (module docstring); a ``Source`` is returned as is.

    ``options`` go to the source's constructor: ``num_classes`` (any source: the count of
    TFRecords that do not say; checked against the classes of a source that knows them);
    ``data_dir``, ``download`` (TFDS); ``class_names``, ``label_offset``, ``num_examples``
    (TFRecords); ``validation_dir``, ``validation_fraction`` (folders).
    """
    if isinstance(spec, Source):
        if options:
            raise ValueError(f"source options {sorted(options)} given with a Source object")
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"source must be a Source or a string spec, got {spec!r}")
    spec = os.fspath(spec)
    if spec.startswith("tfds:"):
        return TFDSSource(spec[len("tfds:"):], **options)
    if is_glob(spec) or "{split}" in spec:
        return TFRecordSource(spec, **options)
    if tf.io.gfile.isdir(spec):
        if _has_tfrecords(spec):
            return TFRecordSource(spec, **options)
        return FolderSource(spec, **options)
    if tf.io.gfile.exists(spec):
        return TFRecordSource(spec, **options)
    raise FileNotFoundError(not_found(spec))
