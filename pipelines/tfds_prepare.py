"""A TFDS dataset prepared under a watchdog that stops when nothing moves, not after a time.

``download_and_prepare`` waits on things outside the process (downloads, which TensorFlow
Datasets retries for minutes, a manual archive, a generator reading from elsewhere), and
ImageNet's legitimately takes hours, so a fixed timeout would be wrong. Progress is an example
generated or a change in the files under the dataset's folder and the download folder
(a download growing, an archive extracted, shards written). After ``STALL_S`` seconds with
neither (``PIPELINES_TFDS_STALL_S`` in the environment sets another), ``PreparationStalled``
names the dataset, the folders and the fix.

TFDS has no progress callback and a thread cannot be stopped, so this is by hand: the
preparation runs in a daemon thread that the caller watches, and a stalled one is left behind,
blocked (``pipelines.startup.leave_behind``). Python's exit would wait for its download
threads, so the commands then end with ``os._exit`` (``effnet_tf.flags.fail``); a program of
its own that goes on after ``PreparationStalled`` should do the same.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time

import tensorflow as tf

from pipelines import startup

STALL_ENV = "PIPELINES_TFDS_STALL_S"
STALL_S = 600.0  # 10 minutes without an example or a byte written


class PreparationStalled(ValueError):
    """A TFDS preparation that made no progress for the stall time."""


def stall_seconds() -> float:
    value = os.environ.get(STALL_ENV, "")
    try:
        seconds = float(value) if value else STALL_S
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{STALL_ENV}={value!r}: give the seconds a TFDS preparation may "
                         f"make no progress before it is stopped (default {STALL_S:g})")
    return seconds


def prepare(builder, stall_s: float | None = None) -> None:
    """``builder.download_and_prepare()``, stopped with ``PreparationStalled`` once it has
    generated no example and changed no file for ``stall_s`` seconds (default
    ``stall_seconds()``); its own errors are raised as they are."""
    stall_s = stall_seconds() if stall_s is None else stall_s
    root = str(builder.data_dir_root)
    folders = [os.path.join(root, builder.name), os.path.join(root, "downloads")]
    examples, counted = _count_examples(builder)
    outcome = []

    def run():
        try:
            builder.download_and_prepare()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            outcome.append(e)

    preparing = threading.Thread(target=run, name=f"prepare {builder.name}", daemon=True)
    preparing.start()
    seen, since = None, time.monotonic()
    try:
        while preparing.is_alive():
            preparing.join(min(stall_s / 5, 10.0))
            now = (examples[0], *_files_state(folders))
            if now != seen:
                seen, since = now, time.monotonic()
            elif preparing.is_alive() and time.monotonic() - since >= stall_s:
                sys.stderr.write("\n")  # after TFDS's progress bars, left mid-line
                startup.leave_behind(preparing)
                raise PreparationStalled(_stalled(builder, folders, stall_s))
    finally:
        if counted is not None and builder.__dict__.get("_generate_examples") is counted:
            del builder._generate_examples
    if outcome:
        raise outcome[0]


def _count_examples(builder) -> tuple[list, object]:
    """``[examples generated so far]``, counted as the builder's ``_generate_examples``
    generators yield (other builders, such as Beam's, are left as they are), and the
    counting method set on the builder (None if it has none)."""
    count = [0]
    generate = getattr(builder, "_generate_examples", None)
    if generate is None:
        return count, None

    def counted(*args, **kwargs):
        examples = generate(*args, **kwargs)
        if not inspect.isgenerator(examples):
            return examples
        return _counting(examples, count)

    builder._generate_examples = counted
    return count, counted


def _counting(examples, count):
    for example in examples:
        count[0] += 1
        yield example


def _files_state(folders) -> tuple[int, int]:
    """(files, bytes) under ``folders`` (local or remote; missing ones count nothing)."""
    files = size = 0
    for folder in folders:
        for directory, _, names in tf.io.gfile.walk(folder):
            for name in names:
                try:
                    size += tf.io.gfile.stat(os.path.join(directory, name)).length
                    files += 1
                except tf.errors.OpError:  # renamed or removed meanwhile
                    pass
    return files, size


def _stalled(builder, folders, stall_s: float) -> str:
    manual = os.path.join(folders[1], "manual")
    name = builder.name
    return (
        f"preparing TFDS dataset {name!r} made no progress for {stall_s:g} s (no example "
        f"generated, nothing written under {folders[0]} or {folders[1]}): put its files in "
        f"{manual} (TFDS's manual_dir) if it needs a manual download, or prepare it where it "
        f"can download (`tfds build {name} --data_dir DIR`) and pass that DIR as data_dir "
        f"(--data_dir); {STALL_ENV}=SECONDS waits longer")
