"""Preemption and Ctrl-C as requests to stop cleanly at the next step boundary.

Preemptible VMs, Colab and TPU hosts end jobs with SIGTERM; a user presses Ctrl-C (SIGINT).
Python's default turns SIGINT into ``KeyboardInterrupt`` raised wherever the interpreter is,
often inside a TensorFlow call (``RuntimeError: pybind11 ... KeyboardInterrupt``), and
SIGTERM kills the process: either way the steps since the last checkpoint are lost. While a
``StopRequests`` is active, both only record the request; the training loop finishes the
current step, saves a checkpoint there and stops. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: the user does not want to wait
        self.signal = signum

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # handlers live there only
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""
