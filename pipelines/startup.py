"""What a ``python -m`` command does before TensorFlow loads (5-12 s): its usage errors as
one line, and TensorFlow's C++ start-up lines (oneDNN, CPU instructions, ...) kept off the
screen; and what it must know when it ends: the threads it gave up on (``leave_behind``).
``pipelines.service`` and the ``effnet_tf`` commands (through ``effnet_tf.flags``) take these
from here, so each decision is made in one place. This module must not import TensorFlow.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
import threading

QUIET_LEVEL = 2  # TF_CPP_MIN_LOG_LEVEL by default: warnings and info off, errors still shown
_LEFT_BEHIND: list[threading.Thread] = []


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, ``<prog>: error: <message>``, exit code 2
    (plain argparse prints its usage block before it), naming the argument as argparse does."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def leave_behind(thread: threading.Thread) -> None:
    """Records ``thread`` as given up on while it waits on something outside the process (a
    TFDS download stopped for making no progress). A thread cannot be stopped, and Python's
    exit waits for it, or for the ``concurrent.futures`` workers it started (joined at exit
    although they are daemon threads): a command that ends while one is alive must end with
    ``os._exit`` (``effnet_tf.flags.fail`` does)."""
    _LEFT_BEHIND.append(thread)


def threads_left_behind() -> bool:
    """Whether a thread given to ``leave_behind`` is still running."""
    return any(thread.is_alive() for thread in _LEFT_BEHIND)


def quiet_tensorflow(level: int = QUIET_LEVEL) -> None:
    """``TF_CPP_MIN_LOG_LEVEL=level`` unless the user set it, and, unless that is 0, the C++
    INFO lines TensorFlow prints while it is imported held back; the optional integrations
    TensorFlow and Keras would load for nothing left out (``OPTIONAL_INTEGRATIONS``). Call
    before TensorFlow is imported (after that it only sets the variable)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", str(level))
    if "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _LeaveOut) for f in sys.meta_path):
        sys.meta_path.insert(0, _LeaveOut())
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] != "0":
        if not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
            sys.meta_path.insert(0, _QuietTensorFlowImport())


# What `import tensorflow` and Keras load only because the package is installed, for
# integrations no command uses: {importing module (or its package): the package}. Each of
# these imports is guarded (`try: import x except ImportError`): left out, the integration is
# off in the command's process and nothing else changes, and the command's own `import x`
# loads the package as usual. Where all are installed (Colab; this project's test
# environment) they are 1.6-2.0 of `import tensorflow`'s 4.8-5.3 CPU seconds (TensorFlow
# 2.21, Keras 3.15, 2 cores, 2026-12-07).
OPTIONAL_INTEGRATIONS = {
    "tensorflow.lite.python.util": "jax",  # TFLite's converter from JAX functions
    "keras.src.callbacks.orbax_checkpoint": "jax",  # a JAX fix for Keras' Orbax callback
    "keras.src.wrappers": "sklearn",  # Keras' scikit-learn estimators
    "keras.src.visualization": "matplotlib",  # Keras' plotting of image batches
    "keras.src.saving.file_editor": "IPython",  # Keras' weights-file editor in notebooks
}


# TensorFlow 2.21 logs its C++ start-up INFO lines (oneDNN) through Abseil before
# absl::InitializeLog, where TF_CPP_MIN_LOG_LEVEL does not reach (abseil-cpp PR #1957), so
# they are held back at the file-descriptor level while TensorFlow is imported.
_LOG_LINE = re.compile(r"WARNING: |[IWEF]\d{4} \d\d:\d\d:\d\d")
_CHATTER = re.compile(r"WARNING: All log messages before absl::InitializeLog|I\d{4} ")


@contextlib.contextmanager
def _startup_lines_held():
    """stderr (fd 2) into a file while the block runs, then written back without the C++
    INFO lines (and the lines continuing them)."""
    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        saved = os.dup(2)
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            dropping = False
            for line in held.read().decode(errors="replace").splitlines(keepends=True):
                if _LOG_LINE.match(line):
                    dropping = bool(_CHATTER.match(line))
                if not dropping:
                    sys.stderr.write(line)
            sys.stderr.flush()


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Imports ``tensorflow``, whoever asks first, with its start-up lines held back."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            exec_module = spec.loader.exec_module

            def quiet_exec_module(module):
                with _startup_lines_held():
                    exec_module(module)

            spec.loader.exec_module = quiet_exec_module
        return spec


class _LeaveOut(importlib.abc.MetaPathFinder):
    """An ``OPTIONAL_INTEGRATIONS`` import fails as if its package were not installed."""

    packages = frozenset(OPTIONAL_INTEGRATIONS.values())

    def find_spec(self, name, path=None, target=None):
        if name not in self.packages or name in sys.modules:
            return None
        frame = sys._getframe(1)
        while frame is not None and frame.f_globals.get("__name__", "").startswith(
                ("importlib", "_frozen_importlib")):
            frame = frame.f_back
        importer = frame.f_globals.get("__name__", "") if frame is not None else ""
        for integration, package in OPTIONAL_INTEGRATIONS.items():
            if name == package and (importer == integration
                                    or importer.startswith(integration + ".")):
                raise ModuleNotFoundError(f"{name} left out of this command", name=name)
        return None
