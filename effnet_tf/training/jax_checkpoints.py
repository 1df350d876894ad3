"""A JAX run's checkpoints: Orbax (``orbax.checkpoint.CheckpointManager``) for the arrays, and
a TensorFlow checkpoint for the input pipeline's position.

``<model_dir>/checkpoints/<step>/``: Orbax's folder of one step, with multi-host
coordination when ``jax.distributed`` is initialized. On a local disk it is written to a
temporary folder and renamed when complete (a kill during a write leaves no step folder; the
temporary one is removed on the next start); on ``gs://``, which has no folder rename, it is
written in place and complete once it holds ``commit_success.txt``. It holds ``state``:

    weights    {"0000": array, ...}  model.weights in order (BatchNorm statistics included)
    seeds      {"0000": array, ...}  the other model variables (dropout's seed states)
    optimizer  {"0000": array, ...}  optimizer.variables in order (iterations first)
    ema        {"0000": array, ...}  the weight average, aligned with ``weights`` (if any)
    ema_updates  array               updates of the average so far

and ``run``, JSON: the run state (the epoch's sums, the per-epoch losses).

``<model_dir>/checkpoints_input/process_<i>/step-<step>``: the tf.data iterator and the
count of skipped images of process ``i`` (tf.data's iterators are TensorFlow objects; Orbax
has no handler for them), written before the Orbax step, so a step folder that exists has
its input position beside it. Beside Orbax's folder, not in it: on ``gs://`` Orbax takes
every folder of its own without ``commit_success.txt`` for an unfinished step and deletes it
when a run starts. Readers of the weights only (``evaluate``, ``export``) need
neither TensorFlow nor Keras' backend to be JAX: ``read_weights`` returns NumPy arrays.
"""

from __future__ import annotations

import os
import sys

import numpy as np
from absl import logging

STATE, RUN = "state", "run"
INPUT_SUFFIX = "_input"  # the input positions' folder: Orbax's, with this suffix
# Where runs written before 2026-12-07 (local disks only) keep their input positions:
# ``<Orbax's folder>/input/process_<i>/``; read, never written.
OLD_INPUT_FOLDER = "input"
COMMIT_FILE = "commit_success.txt"  # Orbax's mark of a complete step folder on gs://


def _ocp():
    import orbax.checkpoint as ocp  # the [jax] extra; imported where a JAX run needs it

    return ocp


def _local_or_remote(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def as_tree(arrays: list) -> dict:
    """A list as Orbax saves it unambiguously (keys in order)."""
    return {f"{i:04d}": a for i, a in enumerate(arrays)}


def from_tree(tree: dict) -> list:
    return [tree[k] for k in sorted(tree)]


def steps(directory: str) -> list[int]:
    """The complete steps in ``directory``, oldest first (Orbax's folders are named by the
    step; its unfinished ones carry a suffix, or on gs:// lack ``COMMIT_FILE``)."""
    import tensorflow as tf  # gfile: local paths and gs:// alike

    if not tf.io.gfile.isdir(directory):
        return []
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(directory)]
    found = [n for n in names if n.isdigit()]
    if directory.startswith("gs://"):
        found = [n for n in found if tf.io.gfile.exists(f"{directory}/{n}/{COMMIT_FILE}")]
    return sorted(int(n) for n in found)


class Checkpoints:
    """Save and restore of one JAX run's state; ``input_items``: TensorFlow objects (the
    iterator, the skip counter) saved per process beside each step."""

    def __init__(self, directory: str, keep: int, input_items: dict | None = None,
                 process_index: int = 0):
        ocp = _ocp()
        self.directory = _local_or_remote(directory)
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(
                max_to_keep=keep, create=True, enable_async_checkpointing=False,
                cleanup_tmp_directories=True))
        self.input_items = input_items or {}
        self.input_dir = os.path.join(self.directory.rstrip("/") + INPUT_SUFFIX,
                                      f"process_{process_index}")
        self.old_input_dir = os.path.join(self.directory, OLD_INPUT_FOLDER,
                                          f"process_{process_index}")
        self._input = None
        if self.input_items:
            import tensorflow as tf

            self._input = tf.train.Checkpoint(**self.input_items)

    def latest(self) -> str | None:
        step = self.manager.latest_step()
        return None if step is None else os.path.join(self.directory, str(step))

    def save(self, step: int, state: dict, run_state: dict) -> None:
        ocp = _ocp()
        if self._input is not None:
            self._input.write(self._input_prefix(step))
        self.manager.save(step, args=ocp.args.Composite(**{
            STATE: ocp.args.StandardSave(state), RUN: ocp.args.JsonSave(run_state)}),
            force=True)
        self.manager.wait_until_finished()
        self._remove_stale_inputs()

    def restore_latest(self, target: dict):
        """(step, state, run state) of the newest step that reads back whole, ``target``'s
        structure, shapes and shardings; None when there is none. A newer one that does not
        read (truncated, corrupt, its input position missing) is passed over with a warning;
        if none reads, that is an error."""
        import jax

        ocp = _ocp()
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        found = self.manager.all_steps()
        for step in sorted(found, reverse=True):
            try:
                restored = self.manager.restore(step, args=ocp.args.Composite(**{
                    STATE: ocp.args.StandardRestore(abstract), RUN: ocp.args.JsonRestore()}))
                if self._input is not None:
                    self._input.read(self._saved_input(step)).assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001  Orbax raises many kinds; each means unreadable
                cause = " ".join(str(e).split())[:300]
                logging.warning("Checkpoint step %d is unreadable (%s)", step, cause)
                print(f"Warning: checkpoint {self.directory}/{step} is unreadable ({cause}); "
                      "falling back to the one before it", file=sys.stderr, flush=True)
                continue
            return step, restored[STATE], dict(restored[RUN] or {})
        if found:
            raise ValueError(f"{self.directory}: none of its {len(found)} checkpoints reads "
                             f"back (newest step {max(found)}); move them away to start the "
                             "run over")
        return None

    def _input_prefix(self, step: int) -> str:
        return os.path.join(self.input_dir, f"step-{step}")

    def _saved_input(self, step: int) -> str:
        """The input position of ``step`` to read: in its folder, or an older run's."""
        import tensorflow as tf

        prefix = self._input_prefix(step)
        old = os.path.join(self.old_input_dir, f"step-{step}")
        if not tf.io.gfile.exists(prefix + ".index") and tf.io.gfile.exists(old + ".index"):
            return old
        return prefix

    def _remove_stale_inputs(self) -> None:
        import tensorflow as tf

        if self._input is None:
            return
        kept = {f"step-{s}" for s in self.manager.all_steps()}
        for path in tf.io.gfile.glob(os.path.join(self.input_dir, "step-*")):
            if os.path.basename(path).split(".")[0] not in kept:
                tf.io.gfile.remove(path)

    def close(self) -> None:
        self.manager.close()


def read_weights(directory: str) -> tuple[int, list, list | None]:
    """(step, model weights, their average or None) of the newest step that reads, as NumPy
    arrays in ``model.weights`` order; for evaluation and export under either backend."""
    import jax

    ocp = _ocp()
    directory = _local_or_remote(directory)
    manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(create=False),
        item_handlers={STATE: ocp.StandardCheckpointHandler(), RUN: ocp.JsonCheckpointHandler()})
    here = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    try:
        for step in sorted(manager.all_steps(), reverse=True):
            try:  # onto this process's CPU, whatever devices wrote it
                saved = manager.item_metadata(step)[STATE]
                target = jax.tree.map(
                    lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=here), saved)
                state = manager.restore(step, args=ocp.args.Composite(**{
                    STATE: ocp.args.StandardRestore(target)}))[STATE]
            except Exception as e:  # noqa: BLE001
                print(f"Warning: checkpoint {directory}/{step} is unreadable "
                      f"({' '.join(str(e).split())[:300]}); falling back to the one before it",
                      file=sys.stderr, flush=True)
                continue
            weights = [np.asarray(a) for a in from_tree(state["weights"])]
            ema = state.get("ema")
            return step, weights, [np.asarray(a) for a in from_tree(ema)] if ema else None
    finally:
        manager.close()
    raise ValueError(f"{directory}: no checkpoint reads back")
