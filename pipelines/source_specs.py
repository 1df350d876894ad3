"""What a dataset string names, decided without TensorFlow: ``python -m effnet_tf.train``
refuses a local dataset that is not there before TensorFlow loads, in the words
``pipelines.get_source`` uses when it is given one."""

from __future__ import annotations

import os


def is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def not_found(spec: str) -> str:
    return (f"no such dataset: {spec!r} is not a 'tfds:<name>', an existing folder, a TFRecord "
            "file or a glob")


def missing_local(spec: str) -> str | None:
    """``not_found(spec)`` where ``spec`` is a local path (no ``tfds:``, no ``scheme://``, no
    glob, no ``{split}``) that does not exist; otherwise None (the others are looked up
    through TensorFlow's file systems)."""
    if spec.startswith("tfds:") or "://" in spec or is_glob(spec) or "{split}" in spec:
        return None
    return None if os.path.exists(spec) else not_found(spec)
