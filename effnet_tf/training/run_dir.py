"""The model directory of a run: config, checkpoints, logs, and the guard against mixing runs.

Works the same on local paths and ``gs://`` (``tf.io.gfile``). Under multi-worker training
only the chief writes into ``model_dir``; other workers save their (required) checkpoint
copies under ``model_dir/workers/<id>``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

import tensorflow as tf
from absl import logging

from effnet_tf.training import jax_checkpoints  # its module imports neither JAX nor Orbax
from effnet_tf.training import run_guard
from effnet_tf.training import spec as spec_lib
from effnet_tf.training.runtime import is_chief

CONFIG_FILE = spec_lib.CONFIG_FILE
SUMMARY_FILE = "summary.json"
LOCK_FILE = run_guard.LOCK_FILE


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
        """Whether the run has a checkpoint: TensorFlow's (``ckpt-<step>`` files) or a JAX
        run's (Orbax's ``<step>`` folders: ``training.jax_checkpoints``)."""
        return bool(self.checkpoint_paths() or self.orbax_steps())

    def orbax_steps(self) -> list[int]:
        """The complete steps of a JAX run's Orbax checkpoints, oldest first."""
        return jax_checkpoints.steps(self.checkpoint_dir(None))

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
        tmp = self._file(f".{name}.{os.getpid()}.tmp")  # the processes of a run apart
        with tf.io.gfile.GFile(tmp, "w") as f:
            json.dump(value, f, indent=2, sort_keys=True, default=str)
        tf.io.gfile.rename(tmp, self._file(name), overwrite=True)

    def read_spec(self):
        """The run's spec from ``config.json`` (``training.spec``; files of earlier versions
        migrated, of later ones refused), or None when there is none."""
        saved = self.read_json(CONFIG_FILE)
        if saved is None:
            return None
        return spec_lib.from_json(saved, os.path.join(self.path, CONFIG_FILE))

    def class_names(self) -> list[str] | None:
        return (self.read_json(CONFIG_FILE) or {}).get("class_names")

    def check_compatible(self, spec) -> None:
        """Refuses a model_dir whose checkpoints hold another model, before anything is
        written. Only checkpoints bind a model_dir: after a run that failed before its first
        checkpoint, a corrected command may use the same directory."""
        if not self.has_checkpoint():
            return
        saved = self.read_spec()
        if saved is None:
            return
        if saved.runtime.backend != spec.runtime.backend:
            raise run_guard.other_backend(self.path, saved.runtime.backend)
        identity, before = spec.identity(), saved.identity()
        diff = {k: (before[k], v) for k, v in identity.items() if before[k] != v}
        if diff:
            there = ", ".join(f"{k}={old}" for k, (old, _) in diff.items())
            now = ", ".join(f"{k}={new}" for k, (_, new) in diff.items())
            raise ValueError(
                f"model_dir {self.path!r} was trained with {there}; this run asks for {now}, "
                "which its checkpoints cannot resume: use a new --model_dir, or the same "
                "settings to resume")

    def write_spec(self, spec, config=None, class_names=None) -> None:
        """``config.json``: the spec, with the config it came from and the class names."""
        self.write_json(CONFIG_FILE, spec.to_json(config, class_names))

    def write_summary(self, metrics: dict) -> None:
        self.write_json(SUMMARY_FILE, metrics)

    # ---- checkpoints ----------------------------------------------------------------------

    def checkpoint_paths(self, strategy=None) -> list[str]:
        """Checkpoint prefixes, oldest first (from the ``checkpoint`` file, else the files)."""
        folder = self.checkpoint_dir(strategy)
        try:
            state = tf.train.get_checkpoint_state(folder)
        except (tf.errors.OpError, ValueError):  # the state file itself is damaged
            state = None
        if state is not None and state.all_model_checkpoint_paths:
            # TensorFlow has already put ``folder`` in front of the relative ones (the file
            # holds "ckpt-20"), also when ``folder`` is itself relative.
            return list(state.all_model_checkpoint_paths)
        indexes = tf.io.gfile.glob(os.path.join(folder, "ckpt-*.index"))
        return sorted((p[:-len(".index")] for p in indexes),
                      key=lambda p: int(p.rsplit("-", 1)[1]))

    def restore_latest(self, checkpoint, strategy=None, *, partial: bool = False) -> str | None:
        """Restores the newest checkpoint that reads back whole and returns its path (None:
        there is none). A newer one that is corrupt or truncated is passed over with a
        warning; if none reads back, that is an error (a trainer starting over would rotate
        them away). A checkpoint of another structure (another optimizer) is an error, not
        corruption: it is raised, never silently replaced by an older one."""
        paths = self.checkpoint_paths(strategy)
        for path in reversed(paths):
            try:
                status = checkpoint.restore(path)
            except (tf.errors.OpError, IndexError) as e:  # unreadable: truncated, corrupt
                logging.warning("Checkpoint %s is unreadable (%s); trying the one before it",
                                path, _cause(e))
                print(f"Warning: checkpoint {path} is unreadable ({_cause(e)}); falling back "
                      "to the one before it", file=sys.stderr, flush=True)
                continue
            if partial:
                status.expect_partial()
            else:
                status.assert_existing_objects_matched()
            return path
        if paths:
            raise ValueError(f"model_dir {self.path!r}: none of its {len(paths)} checkpoints "
                             f"reads back (newest {paths[-1]!r}); move them away to start the "
                             "run over")
        return None

    # ---- writing safely -------------------------------------------------------------------

    def check_writable(self) -> None:
        """Fails at once, naming the path and the cause, where the run could not write."""
        probe = self._file(".write_test")
        try:
            tf.io.gfile.makedirs(self.path)
            with tf.io.gfile.GFile(probe, "w") as f:
                f.write("ok")
            tf.io.gfile.remove(probe)
        except (tf.errors.OpError, OSError) as e:
            raise ValueError(f"cannot write to model_dir {self.path!r}: {_cause(e)}") from None

    def remove_partial_checkpoints(self, strategy=None) -> None:
        """Deletes what an interrupted checkpoint write left (``*_temp*`` files and folders);
        the complete checkpoints stay."""
        folder = self.checkpoint_dir(strategy)
        if not tf.io.gfile.isdir(folder):
            return
        for name in tf.io.gfile.listdir(folder):
            if "_temp" in name:
                path = os.path.join(folder, name.rstrip("/"))
                if tf.io.gfile.isdir(path):
                    tf.io.gfile.rmtree(path)
                else:
                    tf.io.gfile.remove(path)

    # ---- one live run per model_dir -------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, enabled: bool = True):
        """Holds ``lock.json`` while a run trains here, so a second run refuses to start
        instead of overwriting the first one's checkpoints. A lock left by a process of this
        host that is gone (killed) is stale and taken over."""
        if not enabled:
            yield
            return
        self._acquire()
        try:
            yield
        finally:
            with contextlib.suppress(tf.errors.OpError, OSError):
                tf.io.gfile.remove(self._file(LOCK_FILE))

    def _acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        path = self._file(LOCK_FILE)
        owner = self.read_json(LOCK_FILE) if tf.io.gfile.exists(path) else None
        if owner is not None:
            if run_guard.is_live(owner):
                raise run_guard.in_use(self.path, owner)
            logging.warning("Taking over the stale lock of pid %s (no longer running)",
                            owner.get("pid"))
            tf.io.gfile.remove(path)
        if "://" in self.path:  # object stores have no exclusive create: last writer wins
            self.write_json(LOCK_FILE, me)
            return
        tf.io.gfile.makedirs(self.path)
        try:  # exclusive create: of two runs starting together, one gets the lock
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            raise ValueError(f"model_dir {self.path!r} is in use by another run that has just "
                             f"started ({path})") from None
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)


def _cause(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error)
    return " ".join(message.split())[:300]
