"""Real distribution and real failures, in separate processes: mirrored over two logical CPUs
and two multi-worker processes on localhost reach the weights of one device; a run killed
with SIGKILL from outside and restarted ends with the weights of an uninterrupted run."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests import REPO
from tests.train_utils import assert_same_weights, checkpoint_weights

WORKER = os.path.join(REPO, "tests", "training", "train_worker.py")
# Same global batch everywhere; no randomness in the model (no dropout, no stochastic
# depth); SGD keeps float differences of the reduction order small; BN synchronized.
COMMON = {"optimizer": "sgd", "dropout": 0.0, "drop_connect_rate": 0.0, "epochs": 1,
          "steps_per_epoch": 4, "checkpoint_every_steps": 4, "sync_batch_norm": True,
          "deterministic": True}


def start(model_dir, overrides, *extra, env=None):
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.Popen([sys.executable, WORKER, str(model_dir), json.dumps(overrides),
                             *extra], cwd=REPO, env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def mirrored(tmp_path_factory):
    """Mirrored over two logical CPUs, and before it in the same process the same training on
    one device: (the mirrored run's output, its model_dir, the one-device weights)."""
    root = tmp_path_factory.mktemp("distributed")
    out = finish(start(root / "mirrored", dict(COMMON, strategy="mirrored", cpu_devices=2),
                       "--fixed_batch", f"--one_device_first={root / 'one_device'}"))
    return out, root / "mirrored", checkpoint_weights(root / "one_device")


def test_mirrored_on_two_cpus_equals_one_device(mirrored):
    out, model_dir, one_device = mirrored
    assert "MirroredStrategy with 2 replica(s)" in out
    assert "OneDeviceStrategy with 1 replica(s)" in out
    assert_same_weights(one_device, checkpoint_weights(model_dir), rtol=1e-4, atol=1e-6)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow  # two more TensorFlow processes; the mirrored run above is the default check
def test_two_workers_equal_one_device(mirrored, tmp_path):
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    processes = [
        start(tmp_path, dict(COMMON, strategy="multi_worker"), "--fixed_batch", env={
            "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                     "task": {"type": "worker", "index": i}})})
        for i in range(2)]
    outs = [finish(p) for p in processes]
    assert "CollectiveAllReduceStrategy with 2 replica(s)" in outs[0]  # multi-worker
    # the chief writes the run; the other worker keeps its copy apart
    assert os.path.isdir(tmp_path / "workers" / "worker_1" / "checkpoints")
    assert_same_weights(mirrored[2], checkpoint_weights(tmp_path), rtol=1e-4, atol=1e-6)


def checkpoint_steps(model_dir):
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    # real data pipeline (random crops, flips, shuffling from the seed), dropout on
    overrides = {"deterministic": True, "epochs": 2, "steps_per_epoch": 5,
                 "checkpoint_every_steps": 3, "dropout": 0.2}
    finish(start(tmp_path / "straight", overrides))

    killed = start(tmp_path / "killed", overrides)
    deadline = time.monotonic() + 300
    while not checkpoint_steps(tmp_path / "killed") and killed.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)  # from outside, somewhere after the first checkpoint
    killed.communicate(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    resumed_at = max(checkpoint_steps(tmp_path / "killed"))
    assert resumed_at in (3, 6, 9)
    out = finish(start(tmp_path / "killed", overrides))
    assert f"resuming at step {resumed_at}" in out and 'RESULT {"step": 10}' in out
    assert_same_weights(checkpoint_weights(tmp_path / "straight"),
                        checkpoint_weights(tmp_path / "killed"))
