"""The trainer under Keras' JAX backend: the run's global batch sharded over every device
(``keras.distribution.DataParallel``), a ``jax.jit``-compiled step (``training.jax_step``),
Orbax checkpoints (``training.jax_checkpoints``), the same tf.data pipelines as input.

This is how the JAX ecosystem's anchors train (big_vision, flax's ``examples/imagenet``):
TensorFlow (its CPU build) only reads and prepares the data, each process feeds its share of
the global batch, and several hosts (a TPU pod slice, GPU hosts) join through
``jax.distributed.initialize``. Everything else (the spec, the data check, the loop, the
progress lines, ``summary.json``) is the TensorFlow trainer's (``base_trainer``, ``loop``).
"""

from __future__ import annotations

import os
import time

import jax
import keras
import numpy as np
import tensorflow as tf
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec

from effnet_tf.training import jax_checkpoints, recipe, runtime
from effnet_tf.training.base_trainer import BaseTrainer, CheckpointWriteError

BATCH_AXIS = "batch"


def use_devices(strategy: str, cpu_devices: int) -> list:
    """The devices a run uses: all (``auto``, ``mirrored``, ``tpu``; after
    ``jax.distributed.initialize`` for ``multi_worker``, every host's), or the first one
    (``cpu``, ``one_device``). ``cpu_devices`` simulates that many CPU devices (tests, a
    laptop); it must be set before JAX starts its CPU backend."""
    if strategy == "multi_worker" and not jax.distributed.is_initialized():
        join_processes()
    if cpu_devices > 1:
        try:
            jax.config.update("jax_num_cpu_devices", cpu_devices)
        except RuntimeError:  # JAX's backends already started
            if jax.local_device_count("cpu") != cpu_devices:
                raise ValueError(
                    f"config.cpu_devices={cpu_devices}: JAX had already started with "
                    f"{jax.local_device_count('cpu')} CPU device(s); set XLA_FLAGS="
                    f"--xla_force_host_platform_device_count={cpu_devices} before Python "
                    "starts") from None
    devices = jax.devices() if cpu_devices <= 1 else jax.devices("cpu")
    if strategy == "tpu" and devices[0].platform != "tpu":
        raise ValueError(f"config.strategy=tpu but JAX finds no TPU (devices: "
                         f"{devices[0].platform}); install effnet_tf[tpu] on a TPU VM")
    return devices[:1] if strategy in ("cpu", "one_device") else devices


def join_processes() -> None:
    """``jax.distributed.initialize``: JAX finds the coordinator on a TPU VM and under Slurm,
    Open MPI or Kubernetes; elsewhere every process is given ``JAX_COORDINATOR_ADDRESS``
    (process 0's host:port, read by JAX), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (read
    here: JAX takes these two as arguments only). CPU devices of different processes reduce
    over gloo (TCP): JAX 0.10's default, set here where a JAX has none."""
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    given = {name: os.environ.get(f"JAX_{name.upper()}") for name in ("num_processes",
                                                                       "process_id")}
    try:
        jax.distributed.initialize(**{k: int(v) for k, v in given.items() if v})
    except ValueError as e:
        raise ValueError(f"--strategy multi_worker under JAX: {e} (outside a TPU VM, Slurm, "
                         "Open MPI or Kubernetes set JAX_COORDINATOR_ADDRESS=host:port of "
                         "process 0, JAX_NUM_PROCESSES and JAX_PROCESS_ID)") from None


def _largest_of_processes(value: int) -> int:
    """The largest of the values the run's processes give (each one calls this in turn)."""
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(value))))


class JaxTrainer(BaseTrainer):
    backend = "jax"

    def __init__(self, config, model_dir: str):
        super().__init__(config, model_dir)
        self.devices = use_devices(config.strategy, config.cpu_devices)
        self.process_index, self.processes = jax.process_index(), jax.process_count()
        self.is_chief = self.process_index == 0
        self._hold_shared_model_dir()
        try:
            self._build(config, model_dir)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if getattr(self, "checkpoints", None) is not None:
            self.checkpoints.close()
            self.checkpoints = None
        super().close()

    def _build(self, config, model_dir: str) -> None:
        kind = self.devices[0].platform
        precision = runtime.resolve_precision(config.mixed_precision, kind)
        if str(config.jit_compile).lower() == "false":
            logging.warning("config.jit_compile=false: under JAX every step is compiled")
        runtime.set_determinism(config.seed, config.deterministic)
        self._resolve(config, model_dir, precision, True)
        self.log_dir = (self.run_dir.log_dir(None) if self.is_chief else os.path.join(
            self.run_dir.path, "workers", f"process_{self.process_index}", "logs"))

        mesh = keras.distribution.DeviceMesh((len(self.devices),), [BATCH_AXIS], self.devices)
        self.distribution = keras.distribution.DataParallel(device_mesh=mesh)
        self.batch_sharding = NamedSharding(mesh.backend_mesh, PartitionSpec(BATCH_AXIS))
        optim, model_spec = self.spec.optim, self.spec.model
        with self.distribution.scope():  # variables replicated over the devices
            self.model = recipe.build_model(model_spec, dtype_policy=precision)
            if model_spec.pretrained:
                from effnet_tf.modeling import weight_loading
                weight_loading.load(self.model, model_spec.pretrained, skip_mismatch=True)
            self.optimizer = recipe.create_optimizer(optim, self.steps_per_epoch, precision)
            self.optimizer.build(self.model.trainable_variables)
        self.variables = list(self.model.variables)
        position = {id(v): i for i, v in enumerate(self.variables)}
        self.weight_index = [position[id(w)] for w in self.model.weights]
        self.seed_index = sorted(set(range(len(self.variables))) - set(self.weight_index))
        self._iterations_index = [id(v) for v in self.optimizer.variables].index(
            id(self.optimizer.iterations))
        self.state = {"variables": [v.value for v in self.variables],
                      "optimizer": [v.value for v in self.optimizer.variables]}
        if optim.ema_decay:
            self.state["ema"] = [jax.numpy.array(self.state["variables"][i], copy=True)
                                 for i in self.weight_index]
            self.state["ema_updates"] = np.int32(0)
        self.state = self._placed(self.state)

        self.track_data_position = self._wants_data_position()
        context = tf.distribute.InputContext(self.processes, self.process_index,
                                             len(self.devices))
        self.train_iter = iter(self.data.train_dataset(
            context, optim.global_batch_size // self.processes))
        items = {}
        if self.track_data_position:
            items["train_iterator"] = self.train_iter
            if self.data.source is not None:
                items["train_skips"] = self.data.skip_counter(True)
        self.checkpoints = jax_checkpoints.Checkpoints(
            self.run_dir.checkpoint_dir(None), self.spec.runtime.keep_checkpoints, items,
            self.process_index)
        self.saved_step = None
        self.step = 0
        self._phase = None
        self._called = False

    def _hold_shared_model_dir(self) -> None:
        """``_hold_model_dir``, its outcome shared: when the chief is refused the model_dir,
        every process stops (instead of waiting for the chief's share of the first batch)."""
        error = None
        try:
            self._hold_model_dir(len(self.devices), self.is_chief)
        except ValueError as e:
            error = e
        if self.processes > 1 and _largest_of_processes(error is not None) and error is None:
            error = ValueError(f"model_dir {self.run_dir.path!r}: process 0 of this run could "
                               "not take it (its error says why)")
        if error is not None:
            raise error

    def stop_agreement(self):
        # the largest signal any process received (0: none), at the same step in all of them
        return None if self.processes == 1 else _largest_of_processes

    def _replicated(self):
        return NamedSharding(self.batch_sharding.mesh, PartitionSpec())

    def _placed(self, state: dict) -> dict:
        """``state`` replicated over the devices as the step returns it: the same shardings
        and types in as out, so the step compiles once (not again at its second call)."""
        return jax.device_put(state, self._replicated())

    def devices_line(self) -> str:
        return (f"Devices: {len(self.devices)} x {self.devices[0].device_kind} "
                f"({self.devices[0].platform}) over {self.processes} process(es); "
                f"data parallel, global batch {self.spec.optim.global_batch_size}")

    def learning_rate(self) -> float:
        iterations = np.asarray(self.state["optimizer"][self._iterations_index])
        schedule = self.optimizer._learning_rate  # a schedule, or the rate as a variable
        if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            return float(schedule(iterations))
        return float(self.optimizer.learning_rate)

    # ---- checkpoints ----------------------------------------------------------------------

    def _checkpoint_tree(self) -> dict:
        values = self.state["variables"]
        tree = {"weights": jax_checkpoints.as_tree([values[i] for i in self.weight_index]),
                "seeds": jax_checkpoints.as_tree([values[i] for i in self.seed_index]),
                "optimizer": jax_checkpoints.as_tree(self.state["optimizer"])}
        if "ema" in self.state:
            tree["ema"] = jax_checkpoints.as_tree(self.state["ema"])
            tree["ema_updates"] = self.state["ema_updates"]
        return tree

    def restore(self) -> int:
        restored = self.checkpoints.restore_latest(self._checkpoint_tree())
        if restored is None:
            return 0
        step, tree, run_state = restored
        values = list(self.state["variables"])
        for i, value in zip(self.weight_index, jax_checkpoints.from_tree(tree["weights"])):
            values[i] = value
        for i, value in zip(self.seed_index, jax_checkpoints.from_tree(tree["seeds"])):
            values[i] = value
        self.state = {"variables": values,
                      "optimizer": jax_checkpoints.from_tree(tree["optimizer"])}
        if "ema" in tree:
            self.state["ema"] = jax_checkpoints.from_tree(tree["ema"])
            self.state["ema_updates"] = tree["ema_updates"]
        self.state = self._placed(self.state)
        self.run_state.update(run_state)
        self.step = self.saved_step = step
        logging.info("Resumed from %s at step %d", self.checkpoints.latest(), step)
        return step

    def save(self, step: int) -> None:
        if self.saved_step == step:
            return
        try:
            self.checkpoints.save(step, self._checkpoint_tree(), self.run_state)
        except (tf.errors.OpError, OSError, ValueError) as e:
            raise CheckpointWriteError.of(step, self.checkpoints.directory, e,
                                          self.checkpoints.latest()) from None
        self.saved_step = step

    # ---- training and evaluation ----------------------------------------------------------

    def _sync_model(self, averaged: bool = False) -> None:
        """Writes the state into the Keras variables (the weight average instead of the
        weights when ``averaged``)."""
        values = list(self.state["variables"])
        if averaged:
            for i, shadow in zip(self.weight_index, self.state["ema"]):
                values[i] = shadow
        for variable, value in zip(self.variables, values):
            variable.assign(value)

    def _batch(self):
        images, labels = (t.numpy() for t in next(self.train_iter))
        if len(self.devices) == 1:
            return images, labels
        return (jax.make_array_from_process_local_data(self.batch_sharding, images),
                jax.make_array_from_process_local_data(self.batch_sharding, labels))

    def run_steps(self, step: int, count: int) -> tuple[float, float, float]:
        frozen = step < self.freeze_steps
        if self._phase != frozen:
            from effnet_tf.training.jax_step import make_train_step

            self._sync_model()
            recipe.set_backbone_trainable(self.model, not frozen,
                                          self.spec.optim.freeze_batch_norm)
            self._train_step = make_train_step(self)
            self._phase, self.traced_before = frozen, False
        else:
            self.traced_before = self._called
        started = time.perf_counter()
        losses, corrects = [], []
        for _ in range(count):
            images, labels = self._batch()
            self.state, loss, correct = self._train_step(self.state, images, labels)
            losses.append(loss)
            corrects.append(correct)
        loss, correct = float(sum(np.asarray(losses))), float(sum(np.asarray(corrects)))
        seconds = time.perf_counter() - started
        self._called = True
        self.step = step + count
        self._timed(count, seconds)
        self._check_finite(loss, step + count, self.checkpoints.latest())
        return loss, correct, seconds

    def evaluate(self, steps: int | None = None) -> dict:
        from effnet_tf.training.evaluation import evaluate_model, pads_last_batch

        dataset = self.data.eval_dataset(self.spec.optim.global_batch_size,
                                         pad_remainder=pads_last_batch())
        skips = self.data.skip_counter(False) if self.data.source is not None else None
        skipped_before = skips.count if skips else 0
        self._sync_model(averaged="ema" in self.state)
        with self.distribution.scope():  # batches sharded as in training
            result = evaluate_model(self.model, dataset, self.data.num_classes, steps)
        result["skipped_images"] = (skips.count - skipped_before) if skips else 0
        return result
