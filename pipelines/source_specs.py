"""What a dataset string names, decided without TensorFlow: ``python -m effnet_tf.train``
refuses a local dataset that is not there (in the words ``pipelines.get_source`` uses when it
is given one) or an empty file before TensorFlow loads."""

from __future__ import annotations

import os


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def not_found(spec: str) -> str:
    return (f"no such dataset: {spec!r} is not a 'tfds:<name>', an existing folder, a TFRecord "
            "file or a glob")


def local_problem(spec: str) -> str | None:
    """What is wrong with ``spec`` where it is a local path (no ``tfds:``, no ``scheme://``,
    no glob, no ``{split}``): not there (``not_found``), or an empty file, which holds no
    examples; None otherwise (the others are looked up through TensorFlow's file systems,
    and what a file holds is the data check's: ``pipelines.checks``)."""
    if spec.startswith("tfds:") or "://" in spec or is_glob(spec) or "{split}" in spec:
        return None
    if not os.path.exists(spec):
        return not_found(spec)
    if os.path.isfile(spec) and os.path.getsize(spec) == 0:
        return (f"dataset {spec!r} is an empty file: it holds no examples; give a TFRecord "
                "file with examples, a folder of images or shards, a glob or tfds:<name>")
    return None
