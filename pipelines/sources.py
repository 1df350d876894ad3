"""Where images come from: TFDS datasets, ImageNet-format TFRecord shards, image folders.

Every source gives, for a split, a ``tf.data.Dataset`` of records
``{"image": encoded bytes, "label": int32 in [0, num_classes), "origin": where it came from}``
(``origin`` names the file, shard record or TFDS id in warnings and errors), already sharded
for a ``tf.distribute.InputContext``: by file when every input pipeline gets at least one
file, else by element (every pipeline then reads all files in the same order and keeps its
share). The preprocessing is the same for all sources (``pipelines.preprocess``).

``get_source(spec)`` turns a string into a source:
  * ``"tfds:tf_flowers"`` (any TFDS image-classification dataset; ``data_dir=`` optional);
  * a folder of TFRecord shards named ``{split}-*`` (``train-00000-of-01024``...), a glob
    (``gs://bucket/imagenet/train-*``) or a pattern with ``{split}``; local and ``gs://``
    paths go through the same ``tf.io.gfile`` code;
  * an image folder ``root/<class_name>/*.jpg`` (class names sorted give the labels), with
    ``root/train`` + ``root/val`` sub-folders, ``validation_dir=`` or ``validation_fraction=``.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from typing import Sequence

import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")
# Split names and the file/folder names they are also found under.
SPLIT_ALIASES = {
    "train": ("train",),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
}
# ImageNet TFRecords as the official scripts write them (tensorflow/tpu
# tools/datasets/imagenet_to_gcs.py): JPEG bytes, 1-based labels 1..1000.
IMAGENET_SHARDS = {"train": (1024, 1_281_167), "validation": (128, 50_000)}
IMAGENET_NUM_CLASSES = 1000
METADATA_FILE = "metadata.json"  # written next to the shards by pipelines.make_tfrecords
TFRECORD_BUFFER_BYTES = 8 << 20
MAX_PARALLEL_READS = 16


def split_aliases(split: str) -> tuple[str, ...]:
    return SPLIT_ALIASES.get(split, (split,))


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


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

    def num_examples(self, split: str) -> int | None:
        """Examples in ``split`` when known without reading the data, else None."""
        return None

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        """The split's records ``{"image", "label", "origin"}``, sharded for ``input_context``."""
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({self.name!r}, num_classes={self.num_classes})"


# ---- TFRecord shards ---------------------------------------------------------------------


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
        self.num_classes = num_classes or (len(self.class_names) if self.class_names else None)
        if label_offset is None:
            label_offset = self._metadata.get("label_offset", 1)
        self.label_offset = int(label_offset)
        self._num_examples = dict(self._metadata.get("num_examples", {}), **(num_examples or {}))
        if self.num_classes is None and self._looks_like_imagenet():
            self.num_classes = IMAGENET_NUM_CLASSES

    def _folder(self) -> str:
        path = self.path.split("{split}")[0] if "{split}" in self.path else self.path
        if _is_glob(path) or not tf.io.gfile.isdir(path):
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
        if _is_glob(self.path):
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


# ---- image folders -----------------------------------------------------------------------


def list_images(folder: str) -> list[str]:
    """Image files under ``folder`` (recursively), by extension, sorted."""
    found = []
    for directory, _, files in tf.io.gfile.walk(folder):
        found += [
            _join(directory, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    return sorted(found)


def _subfolders(folder: str) -> list[str]:
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(folder)]
    return sorted(n for n in names if tf.io.gfile.isdir(_join(folder, n)))


def _stable_key(path: str) -> int:
    """Order used to pick the validation fraction: stable across runs and machines."""
    return zlib.crc32(os.path.basename(path).encode())


class FolderSource(Source):
    """Images in ``root/<class_name>/...``; sorted class names give labels 0, 1, ...

    Validation images come from ``root/val`` (or ``root/validation``) next to ``root/train``,
    from ``validation_dir`` (same class names), or from ``validation_fraction`` of each class
    (picked by a hash of the file name, so the split is stable as files are added).
    """

    def __init__(
        self,
        root: str,
        *,
        validation_dir: str | None = None,
        validation_fraction: float = 0.0,
    ):
        self.root = os.fspath(root).rstrip("/")
        self.name = self.root
        if not tf.io.gfile.isdir(self.root):
            raise FileNotFoundError(f"image folder not found: {self.root!r}")
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
        self.validation_fraction = float(validation_fraction)
        self.split_dirs = self._split_dirs(validation_dir)
        if self.validation_fraction and "validation" in self.split_dirs:
            raise ValueError(
                f"validation_fraction= given but {self.root!r} already has a validation folder "
                f"({self.split_dirs['validation']!r}); use one or the other"
            )
        self.class_names = tuple(_subfolders(self.split_dirs["train"]))
        if not self.class_names:
            raise ValueError(
                f"no class folders in {self.split_dirs['train']!r} "
                "(expected <root>/<class_name>/<image files>)"
            )
        self.num_classes = len(self.class_names)
        self._examples: dict[str, list[tuple[str, int]]] = {}

    def _split_dirs(self, validation_dir):
        subfolders = set(_subfolders(self.root))
        dirs = {"train": self.root}
        if "train" in subfolders and validation_dir is None:
            dirs["train"] = _join(self.root, "train")
            for alias in split_aliases("validation"):
                if alias in subfolders:
                    dirs["validation"] = _join(self.root, alias)
                    break
            if "test" in subfolders:
                dirs["test"] = _join(self.root, "test")
        if validation_dir is not None:
            if not tf.io.gfile.isdir(validation_dir):
                raise FileNotFoundError(f"validation folder not found: {validation_dir!r}")
            dirs["validation"] = os.fspath(validation_dir).rstrip("/")
        return dirs

    def _list_split_folder(self, folder: str) -> list[tuple[str, int]]:
        labels = {name: i for i, name in enumerate(self.class_names)}
        examples = []
        for name in _subfolders(folder):
            if name not in labels:
                raise ValueError(
                    f"class folder {_join(folder, name)!r} is not a class of "
                    f"{self.split_dirs['train']!r}"
                )
            examples += [(path, labels[name]) for path in list_images(_join(folder, name))]
        return examples

    def examples(self, split: str) -> list[tuple[str, int]]:
        """``(path, label)`` of every image of ``split``, sorted by path."""
        split = "validation" if split in split_aliases("validation") else split
        if split not in self._examples:
            self._examples[split] = self._list_split(split)
        return self._examples[split]

    def _list_split(self, split):
        if split in self.split_dirs and (split != "train" or not self.validation_fraction):
            examples = self._list_split_folder(self.split_dirs[split])
        elif split in ("train", "validation") and self.validation_fraction:
            train, validation = self._split_by_fraction(
                self._list_split_folder(self.split_dirs["train"])
            )
            examples = train if split == "train" else validation
        else:
            raise ValueError(
                f"{self.root!r} has no {split!r} split: it has {sorted(self.split_dirs)}; "
                "use root/train + root/val folders, validation_dir= or validation_fraction="
            )
        if not examples:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) for split {split!r} "
                             f"in {self.split_dirs.get(split, self.root)!r}")
        return sorted(examples)

    def _split_by_fraction(self, examples):
        by_class: dict[int, list[str]] = {}
        for path, label in examples:
            by_class.setdefault(label, []).append(path)
        train, validation = [], []
        for label, paths in by_class.items():
            paths = sorted(paths, key=lambda p: (_stable_key(p), p))
            cut = int(round(self.validation_fraction * len(paths)))
            validation += [(p, label) for p in paths[:cut]]
            train += [(p, label) for p in paths[cut:]]
        return train, validation

    def num_examples(self, split: str) -> int | None:
        return len(self.examples(split))

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        examples = self.examples(split)
        paths = [p for p, _ in examples]
        labels = [label for _, label in examples]
        items = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))

        def read(items, deterministic):
            def read_image(path, label):
                return {"image": tf.io.read_file(path), "label": label, "origin": path}

            return items.map(read_image, num_parallel_calls=AUTOTUNE, deterministic=deterministic)

        return shard_and_read(
            items, len(paths), read, input_context=input_context, shuffle=shuffle_files,
            seed=seed, name=self.name,
        )


# ---- TFDS --------------------------------------------------------------------------------


class TFDSSource(Source):
    """A TFDS image-classification dataset, read as encoded images (no TFDS-side decoding).

    An ``Image`` feature is read as its stored JPEG/PNG bytes, so the crop-only JPEG decode
    applies; an image stored as raw ``uint8`` pixels (a ``Tensor`` feature of shape ``(h, w)``
    or ``(h, w, c)``) is encoded to PNG, which is lossless, for the same preprocessing.
    ``data_dir`` as in ``tfds.load``; with ``download=True`` the dataset is prepared on first
    use (datasets with manual downloads, such as ``imagenet2012``, say how).
    """

    def __init__(self, dataset: str, *, data_dir: str | None = None, download: bool = True):
        import tensorflow_datasets as tfds  # imported here: only this source needs it

        self._tfds = tfds
        self.name = f"tfds:{dataset}"
        self.builder = tfds.builder(dataset, data_dir=data_dir)
        self.download = download
        self.image_key, self.label_key = self._feature_keys()
        self.raw_pixels = self._is_raw_pixels(self.builder.info.features[self.image_key])
        label_feature = self.builder.info.features[self.label_key]
        self.num_classes = int(label_feature.num_classes)
        self.class_names = tuple(label_feature.names)
        self._prepared = False

    def _feature_keys(self) -> tuple[str, str]:
        features = self.builder.info.features
        keys = self.builder.info.supervised_keys
        if keys and len(keys) == 2 and isinstance(keys[0], str):
            return keys[0], keys[1]
        tfds = self._tfds
        labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
        images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)] or [
            k for k, f in features.items() if self._is_raw_pixels(f)]
        if not images or not labels:
            raise ValueError(f"{self.name} is not an image-classification dataset: {features}")
        return images[0], labels[0]

    def _is_raw_pixels(self, feature) -> bool:
        """An image stored as a ``uint8`` tensor of shape (h, w) or (h, w, 1|3|4)."""
        tensor, label = self._tfds.features.Tensor, self._tfds.features.ClassLabel
        if not isinstance(feature, tensor) or isinstance(feature, label):
            return False
        shape = tuple(feature.shape)
        return feature.tf_dtype == tf.uint8 and (
            len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)))

    def split_name(self, split: str) -> str:
        """``split`` as the dataset names it ("validation" is "test" for e.g. cifar10)."""
        available = list(self.builder.info.splits.keys())
        base = split.split("[")[0]
        if not available or base in available:
            return split
        for alias in split_aliases(base) + (("test",) if base == "validation" else ()):
            if alias in available:
                logging.info("%s has no %r split; using %r", self.name, base, alias)
                return alias + split[len(base):]
        raise ValueError(
            f"{self.name} has no split {split!r}; it has {available} "
            "(slices such as 'train[90%:]' work too)"
        )

    def num_examples(self, split: str) -> int | None:
        try:
            count = self.builder.info.splits[self.split_name(split)].num_examples
        except (KeyError, ValueError):
            return None
        return int(count) if count else None

    def _num_files(self, split: str) -> int:
        try:
            return len(self.builder.info.splits[split].file_instructions)
        except (KeyError, ValueError, AttributeError):
            return 1

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        tfds = self._tfds
        if self.download and not self._prepared:
            self.builder.download_and_prepare()
            self._prepared = True
        split = self.split_name(split)
        pipelines, pipeline_id = _num_pipelines(input_context)
        by_file = pipelines == 1 or self._num_files(split) >= pipelines
        if not by_file:
            logging.warning(
                "%s[%s]: fewer files than %d input pipelines; sharding by element.",
                self.name, split, pipelines,
            )
        read_config = tfds.ReadConfig(
            add_tfds_id=True,
            try_autocache=False,
            skip_prefetch=True,
            shuffle_seed=_file_seed(seed, by_file, pipeline_id) if shuffle_files else None,
            input_context=input_context if (by_file and pipelines > 1) else None,
        )
        ds = self.builder.as_dataset(
            split=split,
            decoders=None if self.raw_pixels else {self.image_key: tfds.decode.SkipDecoding()},
            read_config=read_config,
            shuffle_files=shuffle_files,
        )
        if self.num_examples(split) == 0:
            raise ValueError(f"{self.name} split {split!r} is empty")
        ds = ds.map(
            lambda ex: {
                "image": _png(ex[self.image_key]) if self.raw_pixels else ex[self.image_key],
                "label": tf.cast(ex[self.label_key], tf.int32),
                "origin": ex["tfds_id"],
            },
            num_parallel_calls=AUTOTUNE,
        )
        if not by_file:
            ds = ds.shard(pipelines, pipeline_id)
        return ds


def _png(pixels: tf.Tensor) -> tf.Tensor:
    return tf.io.encode_png(pixels[..., None] if pixels.shape.rank == 2 else pixels)


# ---- strings to sources ------------------------------------------------------------------


_SHARD_NAME = re.compile(r"(-\d{5}-of-\d{5}$)|(\.tfrecords?(-\d+)?$)|(\.tfrec$)")


def _has_tfrecords(folder: str) -> bool:
    return any(_SHARD_NAME.search(name) for name in tf.io.gfile.listdir(folder))


def get_source(spec, **options) -> Source:
    """A ``Source`` from a string spec (module docstring); a ``Source`` is returned as is.

    ``options`` go to the source's constructor: ``data_dir``, ``download`` (TFDS);
    ``num_classes``, ``class_names``, ``label_offset``, ``num_examples`` (TFRecords);
    ``validation_dir``, ``validation_fraction`` (folders).
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
    if _is_glob(spec) or "{split}" in spec:
        return TFRecordSource(spec, **options)
    if tf.io.gfile.isdir(spec):
        if _has_tfrecords(spec):
            return TFRecordSource(spec, **options)
        return FolderSource(spec, **options)
    if tf.io.gfile.exists(spec):
        return TFRecordSource(spec, **options)
    raise FileNotFoundError(
        f"no such dataset: {spec!r} is not a 'tfds:<name>', an existing folder, a TFRecord "
        "file or a glob"
    )
