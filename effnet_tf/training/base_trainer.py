"""What a run's trainer is whatever the backend: the run directory and its lock, the data and
its check, the run spec, the epoch's sums, the step counts between checkpoints.

``trainer.Trainer`` (TensorFlow: ``tf.distribute``, ``tf.train.Checkpoint``) and
``jax_trainer.JaxTrainer`` (JAX: ``keras.distribution``, Orbax) add the model, the compiled
step and the checkpoints; ``loop.train_and_evaluate`` drives either.
"""

from __future__ import annotations

import contextlib
import math

from effnet_tf.training import spec as spec_lib
from effnet_tf.training.config import validate
from effnet_tf.training.data import RunData
from effnet_tf.training.run_dir import RunDir


class NonFiniteLossError(RuntimeError):
    pass


class CheckpointWriteError(RuntimeError):
    @classmethod
    def of(cls, step: int, directory: str, error: Exception, latest: str | None):
        """The failed write of the step-``step`` checkpoint, its cause in one line."""
        cause = " ".join((getattr(error, "message", None) or str(error)).split())[:300]
        return cls(f"could not write the step-{step} checkpoint to {directory}: {cause}; "
                   f"the last good checkpoint ({latest or 'none'}) is kept")


class BaseTrainer:
    """The run's spec (``self.spec``, the config resolved once: ``training.spec``), data and
    directory. Subclasses set ``backend`` and build the rest in ``_build``."""

    backend = ""

    def __init__(self, config, model_dir: str):
        self._scaling = validate(config)  # the scaling, derived once
        self.config = config  # as the user gave it: written beside the spec, read no more
        self.run_dir = RunDir(model_dir)
        self.run_dir.check_writable()
        self._held = contextlib.ExitStack()
        self.traced_before = False
        self.timed_images, self.timed_seconds = 0, 0.0
        self.first_call_seconds = None  # the first compiled call: tracing, compiling, 1 call
        # The epoch's running sums and the per-epoch losses, checkpointed so that a resumed
        # run's summary.json equals an uninterrupted one's.
        self.run_state = {"epoch_sums": [0.0, 0.0, 0], "train_loss_per_epoch": []}

    def _hold_model_dir(self, replicas: int, chief: bool) -> None:
        """Checks the batch against the replicas, then takes the model_dir's lock: one live
        run per model_dir, held from here (before anything is written) to ``close()``."""
        batch = self.config.global_batch_size
        if batch % replicas:
            raise ValueError(f"config.global_batch_size={batch} does not divide among "
                             f"{replicas} replicas")
        self._held.enter_context(self.run_dir.lock(enabled=chief))

    def stop_agreement(self):
        """How the run's processes agree on a stop request (``interrupts.StopRequests``):
        None where one process decides alone."""
        return None

    def close(self) -> None:
        """Releases the model_dir."""
        self._held.close()

    def _resolve(self, config, model_dir: str, precision: str, jit_compile: bool) -> None:
        """Opens and checks the data, counts the steps and resolves the spec."""
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
            precision=precision, jit_compile=jit_compile, scaling=scaling, data=data,
            backend=self.backend)
        self.steps_per_epoch = steps_per_epoch
        self.total_steps = self.spec.optim.epochs * steps_per_epoch
        self.freeze_steps = self.spec.optim.freeze_backbone_epochs * steps_per_epoch
        self.run_dir.check_compatible(self.spec)

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

    def _wants_data_position(self) -> bool:
        choice = str(self.spec.runtime.checkpoint_data_position).lower()
        return choice == "true" or (choice == "auto" and self.spec.runtime.deterministic)

    def steps_in_next_call(self, step: int, epoch_end: int) -> int:
        """Steps of the next compiled call: up to ``steps_per_execution``, never past the
        epoch, a checkpoint or the end of the frozen-backbone phase."""
        r = self.spec.runtime
        count = min(r.steps_per_execution, epoch_end - step,
                    _next_boundary(step, r.checkpoint_every_steps) - step)
        if step < self.freeze_steps:
            count = min(count, self.freeze_steps - step)
        return count

    def epoch_sums(self, step: int) -> list:
        """(loss, correct predictions, steps) summed over ``step``'s epoch so far: zeros at
        the epoch's start, the checkpointed sums when a run resumes in the middle of it."""
        if step % self.steps_per_epoch == 0:
            self.run_state["epoch_sums"] = [0.0, 0.0, 0]
        return self.run_state["epoch_sums"]

    def skipped_train_images(self) -> int:
        return self.data.skip_counter(True).count if self.data.source is not None else 0

    def _timed(self, count: int, seconds: float) -> None:
        """Counts a call's images and time into the run's images/s (the first call of a
        compiled step includes its tracing and is left out)."""
        if self.traced_before:
            self.timed_images += count * self.spec.optim.global_batch_size
            self.timed_seconds += seconds
        elif self.first_call_seconds is None:
            self.first_call_seconds = seconds

    def _check_finite(self, loss: float, step: int, latest: str | None) -> None:
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"loss became {loss} at step {step}; stopped. The last good "
                f"checkpoint ({latest or 'none'}) is kept.")


def _next_boundary(step: int, every: int) -> int:
    return (step // every + 1) * every
