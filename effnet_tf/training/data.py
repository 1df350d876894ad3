"""From a run's data spec to per-replica tf.data pipelines (the ``pipelines`` package)."""

from __future__ import annotations

import dataclasses
import os
import zlib

import tensorflow as tf

import pipelines
from effnet_tf.training.config import RANDOM, SYNTHETIC
from effnet_tf.training.run_dir import RunDir
from pipelines import checks
from pipelines.synthetic import random_batches, write_image_folder

SIZES_FILE = "dataset_size.json"  # in model_dir: examples counted once per source and split
CHECK_FILE = "data_check.json"  # in model_dir: pipelines.checks' counts, by the data's identity


def resolve_source(data, model_dir: str, *, num_classes: int | None = None, seed: int = 0):
    """The ``pipelines`` source of a run's data (``spec.DataSpec``), its ``num_classes``
    known: ``num_classes`` (the config's, checked against a source that knows its own), else
    for TFRecords without metadata.json the labels their training shards hold.
    ``synthetic`` writes its JPEG folder once (under ``data_dir``, default
    ``<model_dir>/data``; ``num_classes`` of them, 4 by default) and holds out 20% for
    validation. ``data_dir`` is TFDS's data_dir for ``tfds:`` datasets; any other dataset
    names its files itself (``config.validate`` refuses a ``data_dir`` there)."""
    if data.dataset == SYNTHETIC:
        root = data.data_dir or os.path.join(model_dir, "data")
        write_image_folder(root, num_classes=num_classes or 4, seed=seed)
        return pipelines.get_source(root, validation_fraction=0.2, num_classes=num_classes)
    options = {"num_classes": num_classes}
    if data.dataset.startswith("tfds:"):  # (a data_dir elsewhere: refused by config.validate)
        options["data_dir"] = data.data_dir
    source = pipelines.get_source(data.dataset, **options)
    if not isinstance(source, pipelines.TFRecordSource):
        if data.label_offset is not None:
            raise ValueError(f"config.label_offset is for TFRecord datasets; {data.dataset!r} "
                             f"is a {type(source).__name__}")
        return source
    check_tfrecords(source, (data.train_split, data.eval_split))
    if data.label_offset is not None:
        source = pipelines.get_source(data.dataset, label_offset=data.label_offset,
                                      num_classes=num_classes)
    if source.num_classes is None:  # no metadata.json: the labels the training shards hold
        source = pipelines.get_source(data.dataset, label_offset=data.label_offset,
                                      num_classes=counted_num_classes(data, source, model_dir))
    return source


def check_tfrecords(source, splits) -> None:
    """Reads the first record of each split's first file, so that a file that is not a
    TFRecord is named at once (TensorFlow's DataLossError, later, names no file)."""
    for split in dict.fromkeys(splits):
        try:
            first = source.files(split)[0]
        except FileNotFoundError:
            continue  # a missing split is reported where it is read
        try:
            for _ in tf.data.TFRecordDataset(first).take(1):
                pass
        except tf.errors.DataLossError:
            raise ValueError(f"dataset file {first!r} is not a TFRecord file (its first record "
                             "does not read: another format, compressed, or corrupt)") from None


def count_examples(source, split: str, model_dir: str) -> int:
    """Examples in ``split``: from the source when it knows (TFDS metadata, metadata.json),
    else counted once by reading the split and remembered in ``<model_dir>/dataset_size.json``.
    A TFDS dataset that is not prepared yet is prepared first (as reading it would)."""
    count = source.num_examples(split)
    if count is None and isinstance(source, pipelines.TFDSSource):
        source.prepare()
        count = source.num_examples(split)
    if count is not None:
        return count
    run_dir = RunDir(model_dir)
    key = f"{source.name}|{split}"
    known = run_dir.read_json(SIZES_FILE) or {}
    if key not in known:
        print(f"Counting the examples of {source.name} split {split!r} (once; kept in "
              f"{os.path.join(model_dir, SIZES_FILE)}; set --config.steps_per_epoch to skip) ...",
              flush=True)
        known[key] = int(source.records(split).reduce(
            tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())
        run_dir.write_json(SIZES_FILE, known)
    return known[key]


def check_data(data, source, model_dir: str, global_batch_size: int = 1) -> checks.DataCheck:
    """``pipelines.checks`` on the run's splits (``spec.DataSpec``) and batch; its counting
    is kept in ``<model_dir>/data_check.json`` (done once per data set)."""
    run_dir = RunDir(model_dir)
    known = run_dir.read_json(CHECK_FILE) or {}
    result = checks.check_data(source, train_split=data.train_split,
                               eval_split=data.eval_split,
                               global_batch_size=global_batch_size, cache=known)
    if not result.cached:
        run_dir.write_json(CHECK_FILE, known)
    return result


def counted_num_classes(data, source, model_dir: str) -> int:
    """The classes of a dataset that does not say (TFRecords without metadata.json): the
    largest label the training shards hold, plus one."""
    result = check_data(data, source, model_dir)
    if result.counted_num_classes() is None or result.fatal:
        raise ValueError((result.fatal or [
            f"dataset {data.dataset!r} does not say how many classes it has and holds no "
            "labels to count: set --config.num_classes"])[0])
    return result.counted_num_classes()


@dataclasses.dataclass
class RunData:
    """A run's data (``spec.DataSpec``) opened: the source, the classes, the pipelines."""

    data: object  # spec.DataSpec
    source: object  # a pipelines Source; None for "random"
    image_size: int
    num_classes: int
    model_dir: str
    seed: int = 0
    deterministic: bool = False
    skips: dict = dataclasses.field(default_factory=dict)  # "train"/"eval" -> SkipCounter

    @classmethod
    def open(cls, data, *, image_size: int, model_dir: str, num_classes: int | None = None,
             seed: int = 0, deterministic: bool = False) -> "RunData":
        """``num_classes``: the config's (None: the source's, see ``resolve_source``) or the
        spec's."""
        if data.dataset == RANDOM:
            return cls(data, None, image_size, num_classes or 1000, model_dir, seed,
                       deterministic)
        source = resolve_source(data, model_dir, num_classes=num_classes, seed=seed)
        return cls(data, source, image_size, source.num_classes, model_dir, seed,
                   deterministic)

    @classmethod
    def of_spec(cls, spec, model_dir: str) -> "RunData":
        """The data of a resolved run, as it trained."""
        return cls.open(spec.data, image_size=spec.model.image_size, model_dir=model_dir,
                        num_classes=spec.model.num_classes, seed=spec.runtime.seed,
                        deterministic=spec.runtime.deterministic)

    def check(self, global_batch_size: int) -> None:
        """The data check before the first step (``pipelines.checks``), printed as one block;
        a fatal finding is a ValueError naming the path and the fix."""
        if self.source is None:
            return
        result = check_data(self.data, self.source, self.model_dir, global_batch_size)
        print(result.report(), flush=True)
        if result.fatal:
            more = len(result.fatal) - 1
            raise ValueError(result.fatal[0] + (f" (and {more} more problem(s) listed above)"
                                                if more else ""))

    def train_examples(self) -> int | None:
        """Examples in the training split (counted once if the source does not know)."""
        if self.source is None:
            return None
        return count_examples(self.source, self.data.train_split, self.model_dir)

    def skip_counter(self, training: bool) -> pipelines.SkipCounter:
        """Counts the undecodable images skipped by this run's training or eval pipelines."""
        kind = "train" if training else "eval"
        if kind not in self.skips:
            self.skips[kind] = pipelines.SkipCounter()
        return self.skips[kind]

    def dataset(self, split, training, batch_size, input_context=None, pad_remainder=False):
        d = self.data
        if self.source is None:
            data = random_batches(batch_size, self.image_size, self.num_classes, self.seed)
            return data if training else data.take(2)
        service = None
        if training and d.data_service:
            # the trainers of one run share one job (each batch goes to one of them)
            service = pipelines.Service(
                d.data_service, job_name=f"effnet_tf-{zlib.crc32(self.model_dir.encode()):08x}")
        return pipelines.build(
            self.source, split, image_size=self.image_size, batch_size=batch_size,
            training=training, preprocess=d.preprocess,
            augment=d.augment if training else None,
            mix=d.mix if training else pipelines.Mix(),
            batching=pipelines.Batching(drop_remainder=training, repeat=training,
                                        pad_remainder=pad_remainder, cache=d.cache),
            runtime=pipelines.Runtime(
                seed=self.seed if self.deterministic or training else None,
                input_context=input_context, service=service,
                skip_counter=self.skip_counter(training)))

    def calibration_images(self, batches: int, batch_size: int = 8):
        """``batches`` batches of training images (no labels) for int8 calibration, prepared
        as the model takes images (the eval preprocessing) and drawn from all over the split
        (shuffled with the run's seed: a folder's files are sorted by class)."""
        return pipelines.build(
            self.source, self.data.train_split, image_size=self.image_size,
            batch_size=batch_size, training=False, preprocess=self.data.preprocess,
            batching=pipelines.Batching(shuffle=True),
            runtime=pipelines.Runtime(seed=self.seed, skip_counter=self.skip_counter(False)),
        ).map(lambda images, labels: images).take(batches)

    def train_dataset(self, input_context: tf.distribute.InputContext, batch_size: int):
        """The endless training pipeline of one input pipeline, batches of ``batch_size``."""
        return self.dataset(self.data.train_split, True, batch_size, input_context)

    def eval_dataset(self, global_batch_size: int, pad_remainder: bool = False):
        """One pass over the eval split; ``pad_remainder``: full batches only, the last one
        filled with blanks of weight 0 (TPUs need static shapes; nothing is dropped)."""
        return self.dataset(self.data.eval_split, False, global_batch_size,
                            pad_remainder=pad_remainder)
