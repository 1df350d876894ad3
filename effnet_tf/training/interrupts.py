"""Preemption and Ctrl-C as requests to stop cleanly at the next step boundary.

Preemptible VMs, Colab and TPU hosts end jobs with SIGTERM; a user presses Ctrl-C (SIGINT).
Python's default turns SIGINT into ``KeyboardInterrupt`` raised wherever the interpreter is,
often inside a TensorFlow call (``RuntimeError: pybind11 ... KeyboardInterrupt``), and
SIGTERM kills the process: either way the steps since the last checkpoint are lost. While a
``StopRequests`` is active, both only record the request; the training loop finishes the
current step, saves a checkpoint there and stops. A second Ctrl-C interrupts at once.

The processes of one run (JAX over several hosts) must stop at the same step, or the ones
still stepping wait forever on the others' share of the batch: with ``agree``, a request
counts only once ``sync()``, called by every process after each step call, has shared it.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    def __init__(self, agree=None):
        """``agree``: (the signal this process received, 0 if none) -> the one every process
        of the run acts on; None for a run of one process."""
        self.signal: int | None = None  # the request acted on
        self._received: int | None = None
        self._agree = agree
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        if self._received == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt  # asked twice: the user does not want to wait
        self._received = signum
        if self._agree is None:
            self.signal = signum

    def sync(self) -> None:
        """Shares the requests among the run's processes (each one calls this at the same
        step): then all of them, or none, stop."""
        if self._agree is not None:
            self.signal = self._agree(self._received or 0) or None

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
