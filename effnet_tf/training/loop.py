"""The training loop of a run, whatever the backend: epochs of steps, progress lines,
TensorBoard scalars, checkpoints, evaluation after each epoch, ``summary.json``.

``train_and_evaluate`` picks the trainer of the Keras backend (``trainer.Trainer`` for
TensorFlow, ``jax_trainer.JaxTrainer`` for JAX); both give the loop the same methods (the step
calls, ``save``, ``restore``, ``evaluate``, ``learning_rate``). TensorBoard's files are
written with ``tf.summary`` under both backends (TensorFlow is there for the input pipelines).
"""

from __future__ import annotations

import contextlib
import json

import keras
import tensorflow as tf
from absl import logging

from effnet_tf.modeling.costs import costs
from effnet_tf.training.interrupts import StopRequests
from effnet_tf.training.progress import Progress


def train_and_evaluate(config, model_dir: str) -> dict:
    """Trains ``config`` in ``model_dir`` (resuming if it holds a checkpoint) and evaluates
    after every epoch. SIGTERM / Ctrl-C stop it at the next step with a checkpoint there
    (``Interrupted``); the same call resumes."""
    trainer = _trainer_class(config)(config, model_dir)
    chief = trainer.is_chief
    with contextlib.closing(trainer), StopRequests(trainer.stop_agreement()) as stop:
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


def _trainer_class(config):
    """The trainer of the Keras backend in use (``config.backend``, set before Keras loads:
    ``train --backend``, or ``KERAS_BACKEND``)."""
    backend = keras.backend.backend()
    wanted = str(config.get("backend", "auto")).lower()
    if wanted not in ("auto", backend):
        raise ValueError(
            f"config.backend={wanted} but Keras already runs on {backend} (the backend is "
            f"chosen when Keras is first imported): pass --backend {wanted} to the train "
            f"command, or set KERAS_BACKEND={wanted} before Python starts")
    if backend == "jax":
        from effnet_tf.training.jax_trainer import JaxTrainer
        return JaxTrainer
    if backend == "tensorflow":
        from effnet_tf.training.trainer import Trainer
        return Trainer
    raise ValueError(f"effnet_tf trains under the tensorflow or jax Keras backend, not "
                     f"{backend!r}: set KERAS_BACKEND=tensorflow or jax")


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
    print(f"Backend {spec.runtime.backend}. {trainer.devices_line()}; precision "
          f"{spec.runtime.precision}; XLA {spec.runtime.jit_compile}")
    print(f"Model {trainer.model.name}: {scaling.source} scaling width "
          f"{scaling.width_coefficient:g} depth {scaling.depth_coefficient:g}, "
          f"image size {scaling.resolution}, {params:,} params, "
          f"{flops / 1e9:.3g} GFLOPs; {spec.model.num_classes} classes; "
          f"{trainer.steps_per_epoch} steps/epoch x {spec.optim.epochs} epochs"
          + (f"; resuming at step {start_step}" if start_step else ""), flush=True)


def _train(trainer, start_step: int, stop: StopRequests) -> dict:
    """Epochs of training and evaluation from ``start_step``; the run's summary."""
    optim, r = trainer.spec.optim, trainer.spec.runtime
    writer = tf.summary.create_file_writer(trainer.log_dir)
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
    if not history and not stop.requested:  # resumed a finished run, or at an epoch's end
        history = {**_ended_epoch(trainer, step), **trainer.evaluate(optim.eval_steps)}
    history.update(step=step, train_loss_per_epoch=epoch_losses,
                   skipped_train_images=trainer.skipped_train_images())
    if stop.requested:
        history["interrupted"] = stop.name()
    if trainer.timed_seconds:
        history["images_per_second"] = trainer.timed_images / trainer.timed_seconds
    if trainer.first_call_seconds is not None:
        history["first_call_seconds"] = trainer.first_call_seconds
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
        stop.sync()
        step += count
        loss_sum, correct_sum, seen = loss_sum + loss, correct_sum + correct, seen + count
        trainer.run_state["epoch_sums"] = [loss_sum, correct_sum, seen]
        if step == epoch_end:  # in the checkpoint saved at the epoch's end
            trainer.run_state["train_loss_per_epoch"].append(loss_sum / seen)
        lr = trainer.learning_rate()
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
    return step, _train_metrics(loss_sum, correct_sum, seen, batch)


def _train_metrics(loss_sum: float, correct_sum: float, seen: int, batch: int) -> dict:
    return {"train_loss": loss_sum / max(seen, 1),
            "train_top1": correct_sum / max(seen * batch, 1)}


def _ended_epoch(trainer, step: int) -> dict:
    """The epoch that ended at ``step`` as a run stopped there left it (its sums are in the
    checkpoint): so that a run stopped on an epoch's last step and resumed reports that
    epoch as an uninterrupted run does. Nothing for a run that never trained."""
    loss_sum, correct_sum, seen = trainer.run_state["epoch_sums"]
    if not seen or step % trainer.steps_per_epoch and step != trainer.total_steps:
        return {}
    return {"epoch": -(-step // trainer.steps_per_epoch),
            **_train_metrics(loss_sum, correct_sum, seen, trainer.spec.optim.global_batch_size)}


def _log_scalars(writer, step: int, values: dict) -> None:
    with writer.as_default(step=step):
        for name, value in values.items():
            if isinstance(value, (int, float)):
                tf.summary.scalar(name, value)
