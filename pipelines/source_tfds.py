"""A TFDS image-classification dataset as a source (``TFDSSource``): ``"tfds:<name>"``.

``tensorflow_datasets`` is imported by the constructor, not here: only this source needs it.
"""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from pipelines import tfds_prepare
from pipelines.source_base import AUTOTUNE, Source, _file_seed, _num_pipelines, split_aliases


class TFDSSource(Source):
    """A TFDS image-classification dataset, read as encoded images (no TFDS-side decoding).

    An ``Image`` feature is read as its stored JPEG/PNG bytes, so the crop-only JPEG decode
    applies; an image stored as raw ``uint8`` pixels (a ``Tensor`` feature of shape ``(h, w)``
    or ``(h, w, c)``) is encoded to PNG, which is lossless, for the same preprocessing.
    ``data_dir`` as in ``tfds.load``; with ``download=True`` the dataset is prepared on first
    use (datasets with manual downloads, such as ``imagenet2012``, say how), under a watchdog
    that stops a preparation making no progress (``pipelines.tfds_prepare``).
    """

    def __init__(self, dataset: str, *, data_dir: str | None = None, download: bool = True,
                 num_classes: int | None = None):
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
        self.check_num_classes(num_classes)
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

    def prepare(self) -> None:
        """The dataset prepared in its data_dir (once; nothing to do when it is already):
        a ``ValueError`` that names the data_dir and the fix when it cannot be, and
        ``PreparationStalled`` when preparing makes no progress."""
        if self._prepared:
            return
        if not self.download:
            raise ValueError(f"{self.name} is not prepared in its data_dir and download is off")
        try:
            tfds_prepare.prepare(self.builder)
        except tfds_prepare.PreparationStalled:
            raise
        except Exception as e:  # TFDS raises many kinds (manual downloads, network, disk)
            why = " ".join(str(e).split())[:600] or type(e).__name__
            raise ValueError(
                f"dataset {self.name} is not prepared in data_dir {self.builder.data_dir!r} "
                f"and preparing it failed: {why} (prepare it once with `tfds build "
                f"{self.name[5:]} --data_dir DIR` and pass --data_dir DIR)") from e
        self._prepared = True

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        tfds = self._tfds
        if self.download:
            self.prepare()
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
