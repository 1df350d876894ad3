"""``train_and_evaluate(config, model_dir)``: the training loop behind ``effnet_tf.train``.

A custom loop rather than ``Model.fit`` because a long run must resume exactly: the checkpoint
holds the model, the optimizer, the weight average, the step and (when asked) the input
iterator's position, and an interrupted deterministic run ends with the same weights.
"""

from __future__ import annotations

import contextlib
import json
import math
import time

import tensorflow as tf
from absl import logging

from effnet_tf.modeling.costs import costs
from effnet_tf.training import recipe, runtime
from effnet_tf.training import spec as spec_lib
from effnet_tf.training.config import validate
from effnet_tf.training.data import RunData
from effnet_tf.training.evaluation import evaluate_model
from effnet_tf.training.interrupts import StopRequests
from effnet_tf.training.progress import Progress
from effnet_tf.training.run_dir import RunDir
from effnet_tf.training.step import make_train_steps


class NonFiniteLossError(RuntimeError):
    pass


class CheckpointWriteError(RuntimeError):
    pass


class Trainer:
    """Holds the strategy, model, optimizer, average, data and checkpoint of one run; every
    decision is taken from ``self.spec``, the config resolved once (``training.spec``)."""

    def __init__(self, config, model_dir: str):
        self._scaling = validate(config)  # the scaling, derived once
        self.config = config  # as the user gave it: written beside the spec, read no more
        self.run_dir = RunDir(model_dir)
        self.run_dir.check_writable()
        self.strategy = runtime.make_strategy(config.strategy, config.tpu, config.cpu_devices)
        if config.global_batch_size % self.strategy.num_replicas_in_sync:
            raise ValueError(
                f"config.global_batch_size={config.global_batch_size} does not divide among "
                f"{self.strategy.num_replicas_in_sync} replicas")
        # One live run per model_dir: held from here (before anything is written) to close().
        self._held = contextlib.ExitStack()
        self._held.enter_context(self.run_dir.lock(enabled=runtime.is_chief(self.strategy)))
        try:
            self._build(config, model_dir)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Releases the model_dir."""
        self._held.close()

    def _build(self, config, model_dir: str) -> None:
        kind = runtime.device_kind(self.strategy)
        precision = runtime.resolve_precision(config.mixed_precision, kind)
        jit = runtime.resolve_jit(config.jit_compile, kind)
        runtime.set_determinism(config.seed, config.deterministic)

        scaling = self._scaling
        data = spec_lib.data_of(config)
        self.data = RunData.open(data, image_size=scaling.resolution, model_dir=model_dir,
                                 num_classes=config.num_classes, seed=config.seed,
                                 deterministic=config.deterministic)
        # before any work: counts per split, a fatal finding stops here
        self.data.check(config.global_batch_size)
        steps_per_epoch = config.steps_per_epoch or self._steps_per_epoch_of_data()
        self.spec = spec_lib.resolve(
            config, num_classes=self.data.num_classes, steps_per_epoch=steps_per_epoch,
            precision=precision, jit_compile=jit, scaling=scaling, data=data)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = self.spec.optim.epochs * steps_per_epoch
        self.run_dir.check_compatible(self.spec)

        optim, model = self.spec.optim, self.spec.model
        with self.strategy.scope():
            self.model = recipe.build_model(model, dtype_policy=precision)
            if model.pretrained:
                from effnet_tf.modeling import weight_loading
                weight_loading.load(self.model, model.pretrained, skip_mismatch=True)
            self.optimizer = recipe.create_optimizer(optim, steps_per_epoch, precision)
            self.optimizer.build(self.model.trainable_variables)
            self.ema = (recipe.ExponentialMovingAverage(self.model, optim.ema_decay)
                        if optim.ema_decay else None)
        self.track_data_position = self._checkpoint_data_position()
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
        # The epoch's running sums and the per-epoch losses, so that a resumed run's
        # summary.json equals an uninterrupted one's (JSON in a string variable), and which
        # images of the groups in flight decoded. Not for checkpoints written before these
        # existed: those resume as they were saved.
        self.run_state = {"epoch_sums": [0.0, 0.0, 0], "train_loss_per_epoch": []}
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
        self.freeze_steps = optim.freeze_backbone_epochs * steps_per_epoch
        self._phase = None  # frozen backbone or not, of the compiled step
        self._called = False
        self.traced_before = False
        self.timed_images, self.timed_seconds = 0, 0.0

    def _steps_per_epoch_of_data(self) -> int:
        examples = self.data.train_examples()
        batch, dataset = self.config.global_batch_size, self.config.dataset
        if examples is None:
            raise ValueError(f"dataset {dataset!r} is endless: set --config.steps_per_epoch")
        if examples < batch:
            raise ValueError(
                f"dataset {dataset!r} has {examples} training examples, fewer than "
                f"one global batch of {batch}: lower --batch_size")
        return examples // batch

    def _checkpoint_data_position(self) -> bool:
        choice = str(self.spec.runtime.checkpoint_data_position).lower()
        if isinstance(self.strategy, tf.distribute.TPUStrategy):
            return False  # TPU input iterators are not checkpointable
        return choice == "true" or (choice == "auto" and self.spec.runtime.deterministic)

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
            cause = " ".join((getattr(e, "message", None) or str(e)).split())[:300]
            raise CheckpointWriteError(
                f"could not write the step-{step} checkpoint to "
                f"{self.run_dir.checkpoint_dir(self.strategy)}: {cause}; the last good "
                f"checkpoint ({self.manager.latest_checkpoint or 'none'}) is kept") from None
        self.saved_step = step

    def steps_in_next_call(self, step: int, epoch_end: int) -> int:
        """Steps of the next compiled call: up to ``steps_per_execution``, never past the
        epoch, a checkpoint or the end of the frozen-backbone phase."""
        r = self.spec.runtime
        count = min(r.steps_per_execution, epoch_end - step,
                    _next_boundary(step, r.checkpoint_every_steps) - step)
        if step < self.freeze_steps:
            count = min(count, self.freeze_steps - step)
        return count

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
        if self.traced_before:  # the first call of a compiled step includes its tracing
            self.timed_images += count * self.spec.optim.global_batch_size
            self.timed_seconds += seconds
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss} at step {step + count}; stopped. The last good "
                f"checkpoint ({self.manager.latest_checkpoint or 'none'}) is kept.")
        return loss, correct, seconds

    def epoch_sums(self, step: int) -> list:
        """(loss, correct predictions, steps) summed over ``step``'s epoch so far: zeros at
        the epoch's start, the checkpointed sums when a run resumes in the middle of it."""
        if step % self.steps_per_epoch == 0:
            self.run_state["epoch_sums"] = [0.0, 0.0, 0]
        return self.run_state["epoch_sums"]

    def skipped_train_images(self) -> int:
        return self.data.skip_counter(True).count if self.data.source is not None else 0

    def evaluate(self, steps: int | None = None) -> dict:
        """Top-1 / top-5 on the eval split, with the averaged weights when there are any;
        ``images`` evaluated and ``skipped_images`` (undecodable) of this evaluation."""
        dataset = self.data.eval_dataset(
            self.spec.optim.global_batch_size,
            pad_remainder=isinstance(self.strategy, tf.distribute.TPUStrategy))
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


def train_and_evaluate(config, model_dir: str) -> dict:
    """Trains ``config`` in ``model_dir`` (resuming if it holds a checkpoint) and evaluates
    after every epoch. SIGTERM / Ctrl-C stop it at the next step with a checkpoint there
    (``Interrupted``); the same call resumes."""
    trainer = Trainer(config, model_dir)
    chief = runtime.is_chief(trainer.strategy)
    with contextlib.closing(trainer), StopRequests() as stop:
        start_step = trainer.restore()
        if chief:
            class_names = trainer.data.source and trainer.data.source.class_names
            trainer.run_dir.write_spec(trainer.spec, trainer.config, class_names)
        _announce(trainer, start_step)
        history = _train(trainer, start_step, stop)
        if chief:
            trainer.run_dir.write_summary(history)
    if stop.requested:
        raise Interrupted(history["step"], stop.name())
    print(f"Done at step {history['step']}: " + json.dumps(
        {k: round(v, 4) if isinstance(v, float) else v for k, v in history.items()
         if k != "train_loss_per_epoch"}))
    return history


class Interrupted(RuntimeError):
    def __init__(self, step: int, signal_name: str):
        super().__init__(f"interrupted by {signal_name} at step {step}; checkpoint saved; "
                         "re-run the same command to resume")
        self.step, self.signal_name = step, signal_name


def _announce(trainer, start_step: int) -> None:
    spec = trainer.spec
    scaling = spec.model.scaling()
    params = trainer.model.count_params()
    flops = costs(scaling, include_top=True, classes=spec.model.num_classes).flops
    logging.info("Run spec:\n%s", spec)
    print(f"Devices: {[d.name for d in tf.config.list_logical_devices()]}; strategy "
          f"{type(trainer.strategy).__name__} with {trainer.strategy.num_replicas_in_sync} "
          f"replica(s); precision {spec.runtime.precision}; XLA {spec.runtime.jit_compile}")
    print(f"Model {trainer.model.name}: {scaling.source} scaling width "
          f"{scaling.width_coefficient:g} depth {scaling.depth_coefficient:g}, "
          f"image size {scaling.resolution}, {params:,} params, "
          f"{flops / 1e9:.3f} GFLOPs; {spec.model.num_classes} classes; "
          f"{trainer.steps_per_epoch} steps/epoch x {spec.optim.epochs} epochs"
          + (f"; resuming at step {start_step}" if start_step else ""), flush=True)


def _train(trainer, start_step: int, stop: StopRequests) -> dict:
    """Epochs of training and evaluation from ``start_step``; the run's summary."""
    optim, r = trainer.spec.optim, trainer.spec.runtime
    writer = tf.summary.create_file_writer(trainer.run_dir.log_dir(trainer.strategy))
    progress = Progress(trainer.total_steps, trainer.steps_per_epoch, optim.epochs,
                        every_steps=r.log_every_steps)
    step, history, epoch_losses = start_step, {}, trainer.run_state["train_loss_per_epoch"]
    while step < trainer.total_steps and not stop.requested:
        epoch = step // trainer.steps_per_epoch
        progress.start_epoch(epoch)
        step, train_metrics = _train_epoch(trainer, step, stop, progress, writer)
        if stop.requested:
            break  # evaluated after the resumed run completes the epoch
        history = {"epoch": epoch + 1, **train_metrics, **trainer.evaluate(optim.eval_steps)}
        _log_scalars(writer, step, {f"eval/{k}": v for k, v in history.items()})
        print("  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in history.items()), flush=True)
    trainer.save(step)
    writer.close()
    if not history and not stop.requested:  # resumed a finished run
        history = trainer.evaluate(optim.eval_steps)
    history.update(step=step, train_loss_per_epoch=epoch_losses,
                   skipped_train_images=trainer.skipped_train_images())
    if stop.requested:
        history["interrupted"] = stop.name()
    if trainer.timed_seconds:
        history["images_per_second"] = trainer.timed_images / trainer.timed_seconds
    return history


def _train_epoch(trainer, step: int, stop: StopRequests, progress: Progress, writer):
    """Trains to the end of ``step``'s epoch (or a stop request): (step, train metrics)."""
    batch, r = trainer.spec.optim.global_batch_size, trainer.spec.runtime
    epoch_end = min((step // trainer.steps_per_epoch + 1) * trainer.steps_per_epoch,
                    trainer.total_steps)
    loss_sum, correct_sum, seen = trainer.epoch_sums(step)
    while step < epoch_end and not stop.requested:
        count = trainer.steps_in_next_call(step, epoch_end)
        loss, correct, seconds = trainer.run_steps(step, count)
        step += count
        loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + count
        trainer.run_state["epoch_sums"] = [loss_sum, correct_sum, seen]
        if step == epoch_end:  # in the checkpoint saved at the epoch's end
            trainer.run_state["train_loss_per_epoch"].append(loss_sum / seen)
        lr = float(trainer.optimizer.learning_rate)
        images = count * batch
        speed = images / max(seconds, 1e-9)
        progress.update(step, count, loss / count, lr, speed,
                        seconds if trainer.traced_before else None)
        if step % r.log_every_steps < count or step == epoch_end:
            _log_scalars(writer, step, {"train/loss": loss / count,
                                        "train/top1": correct / images,
                                        "train/learning_rate": lr,
                                        "train/images_per_second": speed})
        if step % r.checkpoint_every_steps == 0:
            trainer.save(step)
    return step, {"train_loss": loss_sum / max(seen, 1),
                  "train_top1": correct_sum / max(seen * batch, 1)}


def _log_scalars(writer, step: int, values: dict) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            if isinstance(value, (int, float)):
                tf.summary.scalar(name, value)


def _holds(checkpoint: str, item: str) -> bool:
    """Whether ``checkpoint`` has ``item`` (one that does not read is taken to: the one before
    it is restored, written by the same code)."""
    try:
        return any(name.startswith(f"{item}/") for name, _ in tf.train.list_variables(checkpoint))
    except (tf.errors.OpError, ValueError, IndexError):
        return True


def _next_boundary(step: int, every: int) -> int:
    return (step // every + 1) * every
