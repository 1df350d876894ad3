"""Training under JAX over two processes, as on two hosts: ``python -m effnet_tf.train
--backend jax --strategy multi_worker`` started twice on localhost, joined by
``jax.distributed.initialize`` (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``,
``JAX_PROCESS_ID``), each process with 2 simulated CPU devices (4 in all, gradients summed
across processes over gloo), each reading its half of the data.

The training split is one global batch (16 digits, no augmentation, no dropout): every step of
every run sees all of it, so the 2-process run computes what a 1-process run computes at the
same global batch, up to the order of its sums, even when the run is stopped by SIGTERM and
resumed. Two training processes compete for this machine's 2 cores: ``slow``.
"""

import json
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import write_digits
from tests.train_utils import run_module
from tests.training.test_jax_training import SMALL, start_train, wait_for

pytest.importorskip("orbax.checkpoint")

pytestmark = pytest.mark.slow

# 16 training digits = one global batch, 2 x 5 steps; per process: 8 digits, 2 devices
RUN = ["--epochs=2", "--config.steps_per_epoch=5", "--config.dropout=0", "--deterministic"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def start_processes(model_dir, data, env, *args) -> list:
    """The two processes of one run, process 0 the coordinator."""
    cluster = {"JAX_COORDINATOR_ADDRESS": f"localhost:{free_port()}", "JAX_NUM_PROCESSES": "2"}
    return [start_train(model_dir, data, "--strategy=multi_worker", "--config.cpu_devices=2",
                        *RUN, *args, env={**env, **cluster, "JAX_PROCESS_ID": str(i)})
            for i in range(2)]


def finish(procs, timeout: float = 600) -> list:
    """(exit code, output) of each process, read together (one blocked on a full pipe would
    hold up the other)."""
    with ThreadPoolExecutor(len(procs)) as pool:
        outputs = list(pool.map(lambda p: p.communicate(timeout=timeout)[0], procs))
    return [(p.returncode, out) for p, out in zip(procs, outputs)]


def summary(model_dir) -> dict:
    return json.load(open(model_dir / "summary.json"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, jax_env):
    """A 1-process run; the 2-process run, stopped by SIGTERM to process 1, then resumed."""
    root = tmp_path_factory.mktemp("jax_mp")
    data = write_digits(root / "digits", count=56, val_from=16)  # 16 train, 40 val
    one = run_module("effnet_tf.train", "--backend", "jax", *SMALL, *RUN, f"--dataset={data}",
                     f"--model_dir={root / 'one'}", "--config.cpu_devices=2", env=jax_env)
    assert one.returncode == 0, one.stderr[-3000:]
    model_dir = root / "two"
    stopped = start_processes(model_dir, data, jax_env)
    outputs = [[], []]
    for proc, seen in zip(stopped, outputs):
        wait_for(proc, "step 2/", seen)
    lock = json.load(open(model_dir / "lock.json"))
    stopped[1].send_signal(signal.SIGTERM)  # the scheduler's signal reaches one host first
    first = [(code, "".join(seen) + rest)
             for (code, rest), seen in zip(finish(stopped), outputs)]
    resumed = finish(start_processes(model_dir, data, jax_env))
    return {"root": root, "data": data, "one": summary(root / "one"), "model_dir": model_dir,
            "pids": [p.pid for p in stopped], "lock": lock, "first": first,
            "resumed": resumed, "env": jax_env}


def test_sigterm_to_one_process_stops_both_at_one_step(runs):
    """Process 0 was sent nothing: it stops with process 1, as the run's SIGTERM."""
    assert runs["lock"]["pid"] == runs["pids"][0]  # one lock, the chief's
    steps = []
    for code, out in runs["first"]:
        assert code == 143, out[-3000:]
        assert "Backend jax. Devices: 4 x cpu (cpu) over 2 process(es)" in out
        line = [x for x in out.splitlines() if x.startswith("Interrupted by SIGTERM")]
        assert line, out[-3000:]
        steps.append(int(line[0].split("at step ")[1].split(";")[0]))
    assert 2 <= steps[0] == steps[1] < 10


def test_both_processes_resume_and_finish(runs):
    step = runs["first"][0][1].split("Interrupted by SIGTERM at step ")[1].split(";")[0]
    for code, out in runs["resumed"]:
        assert code == 0, out[-3000:]
        assert f"resuming at step {step}" in out and "Done at step 10" in out
    model_dir = runs["model_dir"]
    result = summary(model_dir)
    assert result["step"] == 10 and result["images"] == 40 and "interrupted" not in result
    # the chief writes the run's files; process 1 its TensorBoard logs and input position
    assert (model_dir / "config.json").exists() and not (model_dir / "lock.json").exists()
    assert sorted(p.name for p in (model_dir / "workers").iterdir()) == ["process_1"]
    assert sorted(p.name for p in (model_dir / "checkpoints_input").iterdir()) == [
        "process_0", "process_1"]


def test_two_processes_follow_one_process_at_the_same_global_batch(runs):
    """The same steps on the same 16 images: per-epoch losses and the evaluation within 1e-3
    (measured: 4e-5; sums over 4 devices in 2 processes against 2 devices in one,
    reassociated), though stopped and resumed in between."""
    one, two = runs["one"], summary(runs["model_dir"])
    assert len(two["train_loss_per_epoch"]) == 2
    np.testing.assert_allclose(two["train_loss_per_epoch"], one["train_loss_per_epoch"],
                               rtol=1e-3)
    for key in ("loss", "top1", "top5", "train_top1"):
        assert two[key] == pytest.approx(one[key], rel=1e-3, abs=1e-6), key
    assert two["images"] == one["images"] == 40


def test_evaluate_reads_the_two_process_run(runs):
    model_dir = runs["model_dir"]
    result = run_module("effnet_tf.evaluate", f"--model_dir={model_dir}", env=runs["env"])
    assert result.returncode == 0, result.stderr[-2000:]
    fields = result.stdout.split()
    assert float(fields[fields.index("top1") + 1]) == pytest.approx(summary(model_dir)["top1"],
                                                                      abs=1e-4)
    assert fields[fields.index("images") + 1] == "40"


def test_a_model_dir_in_use_stops_both_processes(runs, tmp_path):
    """Only the chief takes the lock; process 1 learns of the refusal and ends too."""
    model_dir = tmp_path / "busy"
    model_dir.mkdir()
    (model_dir / "lock.json").write_text(json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    (chief, chief_out), (other, other_out) = finish(
        start_processes(model_dir, runs["data"], runs["env"]), timeout=300)
    assert chief == other == 2, chief_out[-2000:] + other_out[-2000:]
    assert f"is in use by another run (pid {os.getpid()}" in chief_out
    assert "process 0 of this run could not take it" in other_out
