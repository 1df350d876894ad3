"""``python -m pipelines.service`` as a user starts it: a bad argument is one line and exit
code 2 before TensorFlow loads; a good start (a dispatcher and a worker on 127.0.0.1) prints
the service's own lines and none of TensorFlow's start-up lines."""

import os
import re
import signal
import subprocess
import sys

import pytest

from tests.pipelines.test_service import REPO, Server, free_port

# what TensorFlow prints while it loads, before its log level applies
START_UP = re.compile(r"oneDNN|cpu_feature_guard|All log messages before absl|"
                      r"Logging before flag parsing|rebuild TensorFlow")
OWN_LINE = re.compile(r"I\d{4} [\d:.]+ +\d+ service\.py:\d+\] ")


def user_env():
    """The environment of a user who set no log level (the tests' conftest sets one)."""
    return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


@pytest.mark.parametrize("argv, message", [
    (["dispatcher", "--port", "abc"], "dispatcher: error: argument --port: invalid int value: "
                                      "'abc'"),
    (["worker"], "worker: error: the following arguments are required: --dispatcher"),
    (["worker", "--dispatcher", "nowhere"],
     ": error: --dispatcher must be host:port, got 'nowhere'"),
    ([], ": error: the following arguments are required: dispatcher|worker"),
    (["dispatcher", "--port", "1", "--verbose"], ": error: unrecognized arguments: --verbose"),
])
def test_a_bad_argument_is_one_line_before_tensorflow_loads(argv, message):
    run_as_module = ("import atexit, runpy, sys\n"
                     "atexit.register(lambda: print('tensorflow' in sys.modules))\n"
                     "sys.argv[0] = 'service'\n"
                     "runpy.run_module('pipelines.service', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", run_as_module, *argv], cwd=REPO,
                         capture_output=True, text=True, timeout=60, env=user_env())
    assert out.returncode == 2
    (line,) = out.stderr.splitlines()
    assert line.startswith("python -m pipelines.service") and line.endswith(message)
    assert out.stdout.split() == ["False"]  # TensorFlow was not imported


def test_a_good_start_prints_no_tensorflow_start_up_lines(tmp_path):
    port = free_port()
    dispatcher = Server(tmp_path, "dispatcher", "--port", str(port), env=user_env())
    try:
        dispatcher.ready()
        worker = Server(tmp_path, "worker", "--dispatcher", f"127.0.0.1:{port}", "--port", "0",
                        env=user_env())
        try:
            worker.ready()
        finally:
            assert worker.stop(signal.SIGTERM) == 0
    finally:
        assert dispatcher.stop(signal.SIGTERM) == 0
    for server, role in [(dispatcher, "dispatcher"), (worker, "worker")]:
        lines = server.stderr().splitlines()
        assert not [line for line in lines if START_UP.search(line)]
        assert [line for line in lines if not OWN_LINE.match(line)] == []
        assert f"tf.data service {role} at " in lines[0] and f"{role} stopped" in lines[-1]
