"""What a run directory's files forbid, said before TensorFlow loads: ``train`` on a model_dir
that another live run holds, or whose checkpoints another Keras backend wrote, is refused in
a fraction of a second instead of after TensorFlow's 5-8 s start-up.

The rules and their words live here; ``run_dir.RunDir`` applies them again when it takes the
lock and reads the checkpoints (remote model_dirs, and two runs that start together). This
module must not import TensorFlow.
"""

from __future__ import annotations

import json
import os
import socket

LOCK_FILE = "lock.json"  # the live run using this model_dir: pid, host, start time


def is_live(owner: dict) -> bool:
    """Whether the run that wrote the lock ``owner`` may still be running: on another host
    it may; on this one, while its process exists."""
    if owner.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(owner.get("pid")), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True  # exists but is someone else's, or unreadable: assume alive
    return True


def in_use(model_dir: str, owner: dict) -> ValueError:
    return ValueError(
        f"model_dir {model_dir!r} is in use by another run (pid {owner.get('pid')} on "
        f"{owner.get('host')}, since {owner.get('started')}): wait for it, use another "
        f"--model_dir, or delete {os.path.join(model_dir, LOCK_FILE)} if that run is gone")


def other_backend(model_dir: str, saved: str) -> ValueError:
    return ValueError(
        f"model_dir {model_dir!r} was trained under Keras' {saved} backend; its checkpoints "
        f"resume only under it: pass --backend {saved} (or KERAS_BACKEND={saved}), or use a "
        "new --model_dir (evaluate, predict and export read runs of either backend)")


def check_local(model_dir: str, backend: str, *, locks: bool = True) -> None:
    """``train``'s refusals that a local model_dir's files decide (a remote one, gs://..., is
    checked when TensorFlow reads it): a live lock (``locks=False`` where the processes of one
    multi-process run share the model_dir: the chief alone holds it), and checkpoints written
    under another backend. Only checkpoints bind a model_dir (``RunDir.check_compatible``);
    here only files that certainly are checkpoints count: TensorFlow's ``ckpt-<step>.index``,
    Orbax's ``<step>`` folders."""
    if not model_dir or "://" in model_dir or not os.path.isdir(model_dir):
        return
    lock = os.path.join(model_dir, LOCK_FILE)
    if locks and os.path.isfile(lock):
        owner = _read_json(lock)
        if owner is not None and is_live(owner):
            raise in_use(model_dir, owner)
    folder = os.path.join(model_dir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    if not any(n.endswith(".index") and n.startswith("ckpt-") or n.isdigit() for n in names):
        return
    from effnet_tf.training import spec as spec_lib

    config = os.path.join(model_dir, spec_lib.CONFIG_FILE)
    saved = _read_json(config) if os.path.isfile(config) else None
    if saved is None:
        return
    try:  # a config.json of a newer version is refused here by name
        saved_backend = spec_lib.from_json(saved, config).runtime.backend
    except (KeyError, TypeError):
        return  # damaged: decided where TensorFlow reads it
    if saved_backend != backend:
        raise other_backend(model_dir, saved_backend)


def _read_json(path: str) -> dict | None:
    """The file's object, or None where it does not parse (the check when TensorFlow reads
    it decides then)."""
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
