"""The commands as a user runs them, where something outside the process is slow or silent:
``weights`` prints no TensorFlow start-up lines, and ``train`` on a TFDS dataset whose
download is never answered (a server on 127.0.0.1 that accepts and says nothing) stops with
one line once the preparation makes no progress, and ends (its download thread left behind)."""

import os
import socket
import subprocess
import sys
import time

from tests import REPO

DATA = os.path.join(REPO, "tests", "data")


def run(*args, env=None, timeout=180):
    """``python -m args`` as a user who set no TensorFlow log level (the conftest does)."""
    user_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, env={**user_env, **(env or {})})


def test_weights_prints_its_line_and_none_of_tensorflows_start_up(tmp_path):
    out = run("effnet_tf.weights", "convert", f"{DATA}/official_ckpt/tiny", tmp_path / "t.h5")
    assert out.returncode == 2  # the tiny checkpoint is no published variant: read, refused
    (line,) = out.stderr.splitlines()
    assert line.startswith("python -m effnet_tf.weights: error: checkpoint ")
    assert "does not match the model" in line


def test_train_stops_a_tfds_preparation_that_makes_no_progress(tmp_path):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        out = run("effnet_tf.train", f"--config={DATA}/cli/silent_tfds_download.py",
                  f"--model_dir={tmp_path}/run", f"--data_dir={tmp_path}/tfds",
                  env={"EFFNET_TF_TEST_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/x",
                       "PIPELINES_TFDS_STALL_S": "3"})
        took = time.monotonic() - start
    assert out.returncode == 2, out.stderr[-3000:]
    # TensorFlow's import and the data check take 10-30 s here; a run that waited on the
    # download (TFDS retries for minutes) or on its thread at exit would hit the timeout
    assert took < 120, f"{took:.0f} s"
    assert "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert errors == [out.stderr.splitlines()[-1]]  # after TFDS's progress bars
    assert errors[0].startswith(
        "effnet_tf.train: error: preparing TFDS dataset 'silent_download' made no progress for "
        f"3 s (no example generated, nothing written under {tmp_path}/tfds/silent_download or "
        f"{tmp_path}/tfds/downloads): put its files in {tmp_path}/tfds/downloads/manual")
    assert errors[0].endswith("(`tfds build silent_download --data_dir DIR`) and pass that DIR "
                              "as data_dir (--data_dir); PIPELINES_TFDS_STALL_S=SECONDS waits "
                              "longer")
    assert not os.path.exists(f"{tmp_path}/run/lock.json")  # the run directory is free again
