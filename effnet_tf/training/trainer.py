"""``train_and_evaluate(config, model_dir)``: the training loop behind ``effnet_tf.train``, and
its TensorFlow trainer (``tf.distribute``, ``tf.train.Checkpoint``).

A custom loop rather than ``Model.fit`` because a long run must resume exactly: the checkpoint
holds the model, the optimizer, the weight average, the step and (when asked) the input
iterator's position, and an interrupted deterministic run ends with the same weights. The
loop itself is backend-neutral (``training.loop``); under ``KERAS_BACKEND=jax`` it drives
``jax_trainer.JaxTrainer``.
"""

from __future__ import annotations

import json
import time

import tensorflow as tf
from absl import logging

from effnet_tf.training import recipe, runtime
from effnet_tf.training.base_trainer import (BaseTrainer, CheckpointWriteError,
                                             NonFiniteLossError)
from effnet_tf.training.loop import Interrupted, train_and_evaluate
from effnet_tf.training.step import make_train_steps

__all__ = ["Trainer", "train_and_evaluate", "Interrupted", "NonFiniteLossError",
           "CheckpointWriteError"]


class Trainer(BaseTrainer):
    """Holds the strategy, model, optimizer, average, data and checkpoint of one run; every
    decision is taken from ``self.spec``, the config resolved once (``training.spec``)."""

    backend = "tensorflow"

    def __init__(self, config, model_dir: str):
        super().__init__(config, model_dir)
        self.strategy = runtime.make_strategy(config.strategy, config.tpu, config.cpu_devices)
        self.is_chief = runtime.is_chief(self.strategy)
        self._hold_model_dir(self.strategy.num_replicas_in_sync, self.is_chief)
        try:
            self._build(config, model_dir)
        except BaseException:
            self.close()
            raise

    def _build(self, config, model_dir: str) -> None:
        kind = runtime.device_kind(self.strategy)
        precision = runtime.resolve_precision(config.mixed_precision, kind)
        jit = runtime.resolve_jit(config.jit_compile, kind)
        runtime.set_determinism(config.seed, config.deterministic)
        self._resolve(config, model_dir, precision, jit)
        self.log_dir = self.run_dir.log_dir(self.strategy)

        optim, model = self.spec.optim, self.spec.model
        with self.strategy.scope():
            self.model = recipe.build_model(model, dtype_policy=precision)
            if model.pretrained:
                from effnet_tf.modeling import weight_loading
                weight_loading.load(self.model, model.pretrained, skip_mismatch=True)
            self.optimizer = recipe.create_optimizer(optim, self.steps_per_epoch, precision)
            self.optimizer.build(self.model.trainable_variables)
            self.ema = (recipe.ExponentialMovingAverage(self.model, optim.ema_decay)
                        if optim.ema_decay else None)
        # TPU input iterators are not checkpointable
        self.track_data_position = self._wants_data_position() and not isinstance(
            self.strategy, tf.distribute.TPUStrategy)
        self.train_iter = self._train_iterator()
        weight_ids = {id(w) for w in self.model.weights}
        # Dropout's random-seed states are variables outside model.weights that
        # tf.train.Checkpoint does not find by itself; an exact resume needs them.
        seed_states = [v.value for v in self.model.variables if id(v) not in weight_ids]
        items = {"model": self.model, "optimizer": self.optimizer, "seeds": seed_states}
        if self.ema is not None:
            items["ema"] = self.ema
        if self.track_data_position:
            items["train_iterator"] = self.train_iter
        # The run state (JSON in a string variable) and which images of the groups in flight
        # decoded. Not for checkpoints written before these existed: those resume as they
        # were saved.
        self.run_state_variable = tf.Variable("{}", dtype=tf.string, trainable=False)
        saved = self.run_dir.checkpoint_paths(self.strategy)
        if not saved or _holds(saved[-1], "run_state"):
            items["run_state"] = self.run_state_variable
            if self.track_data_position and self.data.source is not None:
                items["train_skips"] = self.data.skip_counter(True)
        self.checkpoint = tf.train.Checkpoint(**items)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, self.run_dir.checkpoint_dir(self.strategy),
            max_to_keep=self.spec.runtime.keep_checkpoints,
            step_counter=self.optimizer.iterations)
        self.saved_step = None
        self._phase = None  # frozen backbone or not, of the compiled step
        self._called = False

    def devices_line(self) -> str:
        return (f"Devices: {[d.name for d in tf.config.list_logical_devices()]}; strategy "
                f"{type(self.strategy).__name__} with {self.strategy.num_replicas_in_sync} "
                "replica(s)")

    def _train_iterator(self):
        """This worker's own tf.data iterator, whose batches ``per_replica`` splits among the
        local replicas: to checkpoint the data position (distributed iterators are not
        checkpointable), and for one replica on the host CPU, where the distributed iterator
        only adds a copy whose buffers slow training down (faults on freshly mapped
        pages every step; BUILD.md, training benchmark). Else the distributed iterator, which
        prefetches to the accelerators."""
        batch, strategy = self.spec.optim.global_batch_size, self.strategy
        workers, worker_id = runtime.worker_position(strategy)
        self.local_replicas = strategy.num_replicas_in_sync // workers
        own = self.track_data_position or (
            self.local_replicas == 1 and runtime.device_kind(strategy) == "cpu")
        self.split_batches = own and self.local_replicas > 1
        if not own:
            return iter(strategy.distribute_datasets_from_function(
                lambda ctx: self.data.train_dataset(
                    ctx, ctx.get_per_replica_batch_size(batch))))
        context = tf.distribute.InputContext(workers, worker_id, strategy.num_replicas_in_sync)
        return iter(self.data.train_dataset(context, batch // workers))

    def per_replica(self, batch):
        if not self.split_batches:
            return batch
        local = self.local_replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.nest.map_structure(
                lambda t: tf.split(t, local)[ctx.replica_id_in_sync_group % local], batch))

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def learning_rate(self) -> float:
        return float(self.optimizer.learning_rate)

    def restore(self) -> int:
        """Resumes from the newest intact checkpoint, if any; the step reached."""
        path = self.run_dir.restore_latest(self.checkpoint, self.strategy)
        if path:
            logging.info("Resumed from %s at step %d", path, self.step)
            self.run_state.update(json.loads(self.run_state_variable.numpy().decode()))
            self.run_dir.remove_partial_checkpoints(self.strategy)  # a write killed midway
        self.saved_step = self.step if path else None
        return self.step

    def save(self, step: int) -> None:
        """Checkpoints ``step`` unless it is saved already. A failed write (disk full, no
        permission) leaves no partial files and the last good checkpoint in place."""
        if self.saved_step == step:
            return
        self.run_state_variable.assign(json.dumps(self.run_state))
        try:
            self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            self.run_dir.remove_partial_checkpoints(self.strategy)
            raise CheckpointWriteError.of(step, self.run_dir.checkpoint_dir(self.strategy), e,
                                          self.manager.latest_checkpoint) from None
        self.saved_step = step

    def run_steps(self, step: int, count: int) -> tuple[float, float, float]:
        """Trains ``count`` steps from ``step``: (summed loss, correct predictions, seconds).
        The compiled step is (re)made where the frozen-backbone phase starts or ends."""
        frozen = step < self.freeze_steps
        if self._phase != frozen:
            recipe.set_backbone_trainable(self.model, not frozen,
                                          self.spec.optim.freeze_batch_norm)
            self._train_steps = make_train_steps(self, self.model.trainable_variables)
            self._phase, self.traced_before = frozen, False
        else:
            self.traced_before = self._called
        started = time.perf_counter()
        loss, correct = self._train_steps(self.train_iter, tf.constant(count))
        loss, correct = float(loss), float(correct)
        seconds = time.perf_counter() - started
        self._called = True
        self._timed(count, seconds)
        self._check_finite(loss, step + count, self.manager.latest_checkpoint)
        return loss, correct, seconds

    def evaluate(self, steps: int | None = None) -> dict:
        """Top-1 / top-5 on the eval split, with the averaged weights when there are any;
        ``images`` evaluated and ``skipped_images`` (undecodable) of this evaluation."""
        from effnet_tf.training.evaluation import evaluate_model, pads_last_batch

        dataset = self.data.eval_dataset(self.spec.optim.global_batch_size,
                                         pad_remainder=pads_last_batch(self.strategy))
        skips = self.data.skip_counter(False) if self.data.source is not None else None
        skipped_before = skips.count if skips else 0
        if self.ema is not None:
            self.ema.swap()
        try:
            with self.strategy.scope():
                result = evaluate_model(self.model, dataset, self.data.num_classes, steps,
                                        self.strategy)
            result["skipped_images"] = (skips.count - skipped_before) if skips else 0
            return result
        finally:
            if self.ema is not None:
                self.ema.swap()

    def write_logs(self):
        return tf.summary.create_file_writer(self.log_dir)


def _holds(checkpoint: str, item: str) -> bool:
    """Whether ``checkpoint`` has ``item`` (one that does not read is taken to: the one before
    it is restored, written by the same code)."""
    try:
        return any(name.startswith(f"{item}/") for name, _ in tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError, IndexError):
        return True
