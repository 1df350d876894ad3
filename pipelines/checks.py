"""One check of a source's data before a run's first step: pure data, no model.

What a long run would otherwise meet late (a missing validation split or a class of it that
training lacks, after a whole epoch), or never notice (an empty class folder that becomes an
output class with no data, a batch larger than the split, files that cannot be read, links
that loop): per split, the examples per class; then the findings, each either fatal (the run
must not start: one line naming the path and the fix) or a warning. Reported in one block.

The counting is kept in a cache (a dict the caller stores; the trainer keeps it in the run
directory) under the data's identity: the files and their sizes for TFRecords, the listing
for image folders, name and data_dir for TFDS. So a resumed run does not count again, and a
changed data set is checked anew. Counting reads only what is cheap: folder listings; the
labels of TFRecords only when their metadata does not give the counts (then the number of
classes comes from the labels the shards hold); TFDS from its metadata.

Empty class folders are refused, not dropped: labels are the sorted folder names (as in
``keras.utils.image_dataset_from_directory``, which keeps an empty folder as a class),
so dropping one would renumber every class after it and the model's outputs would no longer
match the folder names a user reads; keeping it silently trains an output that has no data.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import stat

import numpy as np
import tensorflow as tf

from pipelines.source_folders import FolderSource
from pipelines.source_tfds import TFDSSource
from pipelines.source_tfrecords import TFRecordSource

LABEL_BATCH = 8192  # labels read at a time when TFRecords must be counted


@dataclasses.dataclass
class DataCheck:
    """The counts and findings of one data set, for one run's splits and batch."""

    name: str
    counts: dict  # split -> {class name: examples}, or {"examples": n} if per-class unknown
    labels: dict  # training label -> examples, when TFRecords were read to count them
    fatal: list  # one line each: path and fix
    warnings: list
    cached: bool = False

    def examples(self, split: str) -> int | None:
        counts = self.counts.get(split)
        return sum(counts.values()) if counts else None

    def counted_num_classes(self) -> int | None:
        """Classes as the training labels give them (largest label + 1), when they were read."""
        labels = [int(k) for k in self.labels]
        return max(labels) + 1 if labels else None

    def report(self) -> str:
        """The block printed before training: counts per split, then the findings."""
        lines = [f"Data check of {self.name}" + (" (as checked before)" if self.cached else "")
                 + ":"]
        for split, counts in self.counts.items():
            if not counts:
                continue
            values = list(counts.values())
            line = f"  {split}: {sum(values):,} examples"
            if list(counts) != ["examples"] and min(values) == max(values):
                line += f" in {len(counts)} classes, {min(values):,} per class"
            elif list(counts) != ["examples"]:
                fewest = min(counts, key=counts.get)
                line += (f" in {len(counts)} classes, {min(values):,}-{max(values):,} per class"
                         f" (fewest: {fewest!r})")
            lines.append(line)
        if self.labels:
            lines.append(f"  classes: {self.counted_num_classes()}, counted from the labels the "
                         "training shards hold (--config.num_classes sets them)")
        lines += [f"  warning: {w}" for w in self.warnings]
        lines += [f"  error: {f}" for f in self.fatal]
        return "\n".join(lines)


def check_data(source, *, train_split: str, eval_split: str, global_batch_size: int,
               cache: dict | None = None) -> DataCheck:
    """Counts ``source``'s splits (or takes them from ``cache``, which it adds to) and checks
    them against each other and against one global batch."""
    cache = {} if cache is None else cache
    key = identity(source, (train_split, eval_split))
    cached = key in cache
    if not cached:
        cache[key] = _count_and_check(source, train_split, eval_split)
    entry = cache[key]
    result = DataCheck(source.name, dict(entry["counts"]), dict(entry["labels"]),
                       list(entry["fatal"]), list(entry["warnings"]), cached)
    examples = result.examples(train_split)
    if examples and examples < global_batch_size:
        result.fatal.append(
            f"dataset {source.name!r} has {examples:,} training examples, fewer than one "
            f"global batch of {global_batch_size:,} (steps_per_epoch or not, each step would "
            f"repeat images within its batch): lower --batch_size to at most {examples:,}")
    for split in (train_split, eval_split):
        if result.examples(split) is not None:  # so that nothing counts them again
            source.remember_num_examples(split, result.examples(split))
    return result


def identity(source, splits) -> str:
    """What the data is, as a short hash: changes when images or shards are added or removed,
    and when a shard is rewritten (its size and time)."""
    parts = [type(source).__name__, source.name, *splits]
    if isinstance(source, FolderSource):
        for split in splits:
            try:
                parts += [p for p, _ in source.examples(split)]
            except (ValueError, FileNotFoundError) as e:
                parts.append(str(e))
    elif isinstance(source, TFRecordSource):
        parts.append(str(source.label_offset))
        for split in splits:
            try:
                for file in source.files(split):
                    stat = tf.io.gfile.stat(file)
                    parts.append(f"{file}:{stat.length}:{stat.mtime_nsec}")
            except FileNotFoundError as e:
                parts.append(str(e))
    elif isinstance(source, TFDSSource):
        parts.append(str(source.builder.data_dir))
    return hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:16]


def _count_and_check(source, train_split: str, eval_split: str) -> dict:
    counts, labels, fatal, warnings = {}, {}, [], []
    for split in dict.fromkeys((train_split, eval_split)):
        try:
            counts[split], read = _count(source, split, labels_too=split == train_split)
        except (ValueError, FileNotFoundError, tf.errors.OpError) as e:
            fatal.append(_missing_split(source, split, e, split == eval_split))
            continue
        labels.update(read)
        if counts[split] and sum(counts[split].values()) == 0:
            fatal.append(f"split {split!r} of dataset {source.name!r} holds no examples "
                         "(an empty file?): give data with examples")
    if isinstance(source, FolderSource):
        _check_folders(source, counts, train_split, eval_split, fatal, warnings)
    if labels and min(int(k) for k in labels) < 0:
        fatal.append(f"dataset {source.name!r} holds {labels['-1']} label(s) of -1 or less "
                     f"after subtracting label_offset {source.label_offset} (0-based labels?):"
                     " pass --label_offset 0")
    elif labels and source.num_classes and max(int(k) for k in labels) >= source.num_classes:
        fatal.append(f"dataset {source.name!r} has labels up to {max(int(k) for k in labels)} "
                     f"for {source.num_classes} classes: set --config.num_classes or "
                     "--label_offset to match the shards")
    return {"counts": counts, "labels": labels, "fatal": fatal, "warnings": warnings}


def _count(source, split: str, labels_too: bool) -> tuple[dict, dict]:
    """({class: examples}, {}) of a folder split; ({"examples": n}, label counts) elsewhere,
    the labels read from TFRecords when their count or number of classes is unknown."""
    if isinstance(source, FolderSource):
        by_label = collections.Counter(label for _, label in source.examples(split))
        return {name: by_label.get(i, 0) for i, name in enumerate(source.class_names)}, {}
    known = source.num_examples(split)
    if isinstance(source, TFRecordSource) and (known is None or (
            labels_too and source.num_classes is None)):
        found = np.zeros(0, np.int64)
        negative = 0
        labels = source.records(split).map(lambda r: r["label"]).batch(LABEL_BATCH)
        for batch in labels.as_numpy_iterator():
            negative += int((batch < 0).sum())
            counts = np.bincount(batch[batch >= 0].astype(np.int64))
            found = np.pad(found, (0, max(0, len(counts) - len(found))))
            found[:len(counts)] += counts
        labels = {str(i): int(n) for i, n in enumerate(found) if n} if labels_too else {}
        if negative and labels_too:
            labels["-1"] = negative
        return {"examples": int(found.sum()) + negative}, labels
    if known is None:  # TFDS not prepared yet: counted where it is prepared
        return {}, {}
    return {"examples": known}, {}


def _missing_split(source, split: str, error: Exception, is_eval: bool) -> str:
    why = " ".join(str(error).split())[:400]
    fix = ("add it, or name one it has with --config.eval_split" if is_eval
           else "check the path, or name another split with --config.train_split")
    if isinstance(source, FolderSource) and is_eval and "has no" in why:
        fix = (f"add {os.path.join(source.root, 'val')}/<class>/<images> next to "
               f"{source.split_dirs['train']}, or name another split with --config.eval_split")
    return f"split {split!r} of dataset {source.name!r}: {why}; {fix}"


def _check_folders(source, counts, train_split, eval_split, fatal, warnings) -> None:
    train_dir = source.split_dirs["train"]
    for name, n in counts.get(train_split, {}).items():
        if n == 0:
            fatal.append(
                f"class folder {os.path.join(train_dir, name)!r} has no images: add images or "
                "remove the folder (a class without training data would still be an output "
                "of the model)")
    for name, n in counts.get(eval_split, {}).items():
        if n == 0 and counts.get(train_split, {}).get(name):
            warnings.append(f"class {name!r} has no {eval_split} images: its accuracy is not "
                            "measured")
    for folder, skipped in source.skipped_links.items():
        if skipped:
            warnings.append(
                f"{folder}: left out {len(skipped)} link(s) that loop, do not resolve or lead "
                "back into the folder: " + "; ".join(f"{p} ({why})" for p, why in skipped))
    if "://" in source.root:
        return
    for split in (train_split, eval_split):
        if split not in counts:
            continue
        unreadable = [(p, why) for p, _ in source.examples(split) if (why := why_unreadable(p))]
        if unreadable:
            fatal.append(f"{len(unreadable)} image file(s) of split {split!r} cannot be read "
                         f"(first: {unreadable[0][0]!r}: {unreadable[0][1]}): fix their "
                         f"permissions, put image files in their place or move them out of "
                         f"{source.root!r}")


_NOT_FILES = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
              (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def why_unreadable(path: str) -> str | None:
    """Why the pipeline could not read ``path`` as a file (None when it can): opened for
    reading as the pipeline opens it, but without waiting (a named pipe would block the
    reader until something writes to it), and a regular file. Not ``os.access``, which
    answers for the real user id: root may read any file, but not a pipe, a socket or a
    device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:  # EACCES, ENXIO (a socket), ELOOP, ENOENT (removed meanwhile)
        return e.strerror or type(e).__name__
    try:
        mode = os.fstat(fd).st_mode
    finally:
        os.close(fd)
    if stat.S_ISREG(mode):
        return None
    kind = next((name for is_kind, name in _NOT_FILES if is_kind(mode)), "something else")
    return f"{kind}, not a file"
