"""The model directory of a run: config, checkpoints, logs, and the guard against mixing runs.

Works the same on local paths and ``gs://`` (``tf.io.gfile``). Under multi-worker training
only the chief writes into ``model_dir``; other workers save their (required) checkpoint
copies under ``model_dir/workers/<id>``.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


def is_chief(strategy=None) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


class RunDir:
    def __init__(self, path: str):
        if not path:
            raise ValueError("model_dir must be given (a local path or gs://...)")
        self.path = path

    def _file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _worker_path(self, sub: str, strategy) -> str:
        if is_chief(strategy):
            return self._file(sub)
        resolver = strategy.cluster_resolver
        return self._file(f"workers/{resolver.task_type}_{resolver.task_id}/{sub}")

    def checkpoint_dir(self, strategy=None) -> str:
        return self._worker_path("checkpoints", strategy)

    def has_checkpoint(self) -> bool:
        return tf.train.latest_checkpoint(self.checkpoint_dir(None)) is not None

    def log_dir(self, strategy) -> str:
        return self._worker_path("logs", strategy)

    def read_json(self, name: str) -> dict | None:
        path = self._file(name)
        if not tf.io.gfile.exists(path):
            return None
        with tf.io.gfile.GFile(path) as f:
            return json.load(f)

    def write_json(self, name: str, value: dict) -> None:
        """Atomic: written beside, then renamed over the old file."""
        tf.io.gfile.makedirs(self.path)
        tmp = self._file(f".{name}.tmp")
        with tf.io.gfile.GFile(tmp, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True, default=str)
        tf.io.gfile.rename(tmp, self._file(name), overwrite=True)

    def check_compatible(self, identity: dict) -> None:
        """Refuses a model_dir whose checkpoints hold another model, before anything is
        written. Only checkpoints bind a model_dir: after a run that failed before its first
        checkpoint, a corrected command may use the same directory."""
        saved = self.read_json(CONFIG_FILE)
        if not saved or "identity" not in saved or not self.has_checkpoint():
            return
        diff = {k: (saved["identity"].get(k), v) for k, v in identity.items()
                if saved["identity"].get(k) != v}
        if diff:
            details = ", ".join(f"{k}: {old} there, {new} now" for k, (old, new) in diff.items())
            raise ValueError(
                f"model_dir {self.path!r} holds a run of another model ({details}); "
                "use a new --model_dir or the same settings to resume")

    def write_config(self, config, identity: dict, class_names=None) -> None:
        self.write_json(CONFIG_FILE, {"identity": identity, "config": config.to_dict(),
                                      "class_names": class_names})

    def write_summary(self, metrics: dict) -> None:
        self.write_json(SUMMARY_FILE, metrics)
