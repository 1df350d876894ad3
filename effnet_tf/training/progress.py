"""What a training run shows while it runs: a progress bar on a terminal, lines in a log.

On a terminal each epoch gets Keras' progress bar. When stdout is not a terminal (nohup, CI,
Colab background cells, a cluster's log files) a bar prints nothing until the epoch ends,
which for ImageNet is hours, so a line is printed every ``every_steps`` steps or
``every_seconds`` seconds instead: step/total, epoch, loss, learning rate, images/s, ETA.
"""

from __future__ import annotations

import sys
import time

import keras


class Progress:
    def __init__(self, total_steps: int, steps_per_epoch: int, epochs: int, *,
                 every_steps: int, every_seconds: float = 60.0, stream=None):
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.every_steps = every_steps
        self.every_seconds = every_seconds
        self.stream = stream or sys.stdout
        self.terminal = self.stream.isatty()
        self._bar = None
        self._last_line = time.monotonic()
        self._timed_steps = 0
        self._timed_seconds = 0.0

    def start_epoch(self, epoch: int) -> None:
        print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream, flush=True)
        if self.terminal:
            self._bar = keras.utils.Progbar(self.steps_per_epoch,
                                            stateful_metrics=["lr", "img/s"])

    def update(self, step: int, steps: int, loss: float, lr: float, images_per_second: float,
               seconds: float | None) -> None:
        """``steps`` more steps reached global ``step``; ``seconds`` they took (None: the
        first call of a compiled step, whose tracing would distort the ETA)."""
        if seconds is not None:
            self._timed_steps += steps
            self._timed_seconds += seconds
        if self._bar is not None:
            self._bar.update(step - (step - 1) // self.steps_per_epoch * self.steps_per_epoch,
                             [("loss", loss), ("lr", lr), ("img/s", images_per_second)])
            return
        now = time.monotonic()
        due = step % self.every_steps < steps or now - self._last_line >= self.every_seconds
        if not due and step != self.total_steps:
            return
        self._last_line = now
        print(f"step {step}/{self.total_steps} (epoch {(step - 1) // self.steps_per_epoch + 1}"
              f"/{self.epochs})  loss {loss:.4f}  lr {lr:.4g}  img/s {images_per_second:.1f}  "
              f"ETA {self.eta(step)}", file=self.stream, flush=True)

    def eta(self, step: int) -> str:
        """Training time left at the mean step time so far (evaluations not included)."""
        if not self._timed_steps:
            return "?"
        seconds = (self.total_steps - step) * self._timed_seconds / self._timed_steps
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{secs:02d}"
