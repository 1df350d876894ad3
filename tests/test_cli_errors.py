"""Bad input on the command line: one line naming the flag, exit code 2, before TensorFlow.

Every case runs the real command (``python -m effnet_tf.<command> ...``) in a fresh process,
through a two-line wrapper that reports at exit whether TensorFlow was imported.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests import REPO

DATA = os.path.join(REPO, "tests", "data", "cli")
# Runs ``module`` as __main__ with the remaining arguments, then says if TensorFlow loaded.
WRAPPER = ("import atexit, runpy, sys\n"
           "atexit.register(lambda: print('tensorflow imported:', 'tensorflow' in sys.modules))\n"
           "sys.argv = sys.argv[1:]\n"
           "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n")


def run_cli(module, *args, env=None):
    """``python -m module args`` (wrapped), without TF_CPP_MIN_LOG_LEVEL unless given."""
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", WRAPPER, module, *map(str, args)], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=600)


def assert_one_line_error(out, module, message):
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"{module}: error: "), out.stderr[-2000:]
    assert message in lines[0]
    assert "tensorflow imported: False" in out.stdout


TRAIN = ("effnet_tf.train", "--model_dir={tmp}/run")
SMOKE = TRAIN + ("--config=cpu_smoke",)
CASES = [
    (TRAIN + ("--config.xyz=1",), "--config.xyz: the config has no field 'xyz'"),
    (TRAIN + ("--config.num_clases=10",), "did you mean num_classes?"),
    (TRAIN + ("--config={tmp}/no_such_recipe.py",), "no such recipe file"),
    (TRAIN + ("--config=nope",), "is neither a file nor a shipped recipe (cpu_smoke, "),
    (TRAIN + (f"--config={DATA}/syntax_error.py",),
     "the recipe does not compile: invalid syntax"),
    (TRAIN + (f"--config={DATA}/no_get_config.py",), "has no get_config() function"),
    (TRAIN + (f"--config={DATA}/get_config_raises.py",),
     "loading the recipe failed: ValueError: needs an argument"),
    (TRAIN + ("--phi=1e6",), "config.phi=1e+06 is out of range: with alpha=1.2, beta=1.1, "
     "gamma=1.15 phi must be in [-12.63, 11.41] (width and depth coefficients in [0.1, 8], "
     "image size in [32, 2048])"),
    (TRAIN + ("--phi=-30",), "config.phi=-30 is out of range"),
    (SMOKE + ("--image_size=100000",), "config.image_size=100000 is above 2048 pixels, the "
     "largest accepted: one training batch of 16 would keep about 61.5 TB of activations "
     "(3.84 TB per image; an estimate"),
    (SMOKE + ("--image_size=16",), "config.image_size must be >= 32 pixels, got 16"),
    (SMOKE + (f"--dataset={DATA}", "--data_dir={tmp}"), "--data_dir='{tmp}' is for tfds: "
     f"datasets (and synthetic); dataset '{DATA}' is read from where it names"),
    (SMOKE + ("--dataset=no/such/folder",), "no such dataset: 'no/such/folder' is not a "
     "'tfds:<name>', an existing folder, a TFRecord file or a glob"),
    # an empty file: was "classes must be an integer >= 1, got None" (small_images: the
    # classes are the data's), with cpu_smoke's 4 classes an OutOfRangeError traceback
    (TRAIN + ("--config=small_images", f"--dataset={DATA}/empty.tfrecord"),
     f"dataset '{DATA}/empty.tfrecord' is an empty file: it holds no examples; give a TFRecord "
     "file with examples, a folder of images or shards, a glob or tfds:<name>"),
    (SMOKE + ("--config.width_coefficient=20",),
     "config.width_coefficient=20 is out of range [0.1, 8]"),
    (SMOKE + ("--config.num_classes=0",), "config.num_classes must be >= 2"),
    (SMOKE + ("--config.eval_steps=0",), "config.eval_steps must be >= 1"),
    (SMOKE + ("--phi=1",), "config.phi=1 and config.width_coefficient=0.25 are both set"),
    (TRAIN + ("--variant=b3", "--phi=1"), "--variant=b3 and phi=1 are both given"),
    (TRAIN + ("--strategy=gpus",), "flag --strategy=gpus: value should be one of <auto|cpu|"),
    (TRAIN + ("--config.image_size=abc",), "flag --config.image_size=abc: invalid literal"),
    (TRAIN + ("extra",), "unexpected arguments: extra"),
    (("effnet_tf.train",), "flag --model_dir=None: Flag --model_dir must have a value"),
    (("effnet_tf.evaluate", "--model_dir={tmp}", "--steps=0"), "--steps must be >= 1"),
    (("effnet_tf.evaluate", "--model_dir={tmp}/none"), "--model_dir='{tmp}/none' does not exist"),
    (("effnet_tf.predict", "--model_dir={tmp}", "--top_k=0", f"{DATA}/photo.jpg"),
     "--top_k must be an integer >= 1, got 0"),
    (("effnet_tf.predict", "--model_dir={tmp}", "--top_k=-2", f"{DATA}/photo.jpg"),
     "--top_k must be an integer >= 1, got -2"),
    (("effnet_tf.predict", "--model_dir={tmp}", "{tmp}/none.jpg"),
     "image file(s) not found: {tmp}/none.jpg"),
    (("effnet_tf.export", "--model_dir={tmp}", "--format=keras", "--output={tmp}/m.zip"),
     "output for format keras must end in .keras"),
    (("effnet_tf.export", "--model_dir={tmp}", "--format=saved_model", "--output=/proc/x"),
     "--output='/proc/x' cannot be written: no new file can be made in '/proc' (No such file "
     "or directory); give another --output"),
    (("effnet_tf.summary", "--variants="), "nothing to list: give --variants"),
    (("effnet_tf.summary", "--phi=1e6"), "phi=1e+06 is out of range: the coefficients "
     "overflow or vanish (a trainable phi is in [-12.63, 11.41])"),
    (("effnet_tf.scale", "fit"), "a budget needs max_flops, max_params or max_latency_ms"),
    (("effnet_tf.scale",), "give a command: table | fit | search | tune | latency"),
    (("effnet_tf.scale", "table", "--variants="), "nothing to list"),
]


@pytest.mark.parametrize("argv,message", CASES, ids=[" ".join(c[0][2:] or c[0]) for c in CASES])
def test_bad_argument_is_one_line_before_tensorflow(tmp_path, argv, message):
    module, *args = [a.format(tmp=tmp_path) for a in argv]
    out = run_cli(module, *args)
    assert_one_line_error(out, module, message.format(tmp=tmp_path))


@pytest.mark.parametrize("module,args", [
    ("effnet_tf.evaluate", ()),
    ("effnet_tf.predict", (f"{DATA}/photo.jpg",)),
    ("effnet_tf.export", ("--format=keras", "--output={tmp}/x.keras")),
])
def test_a_run_of_a_newer_version_is_refused_before_tensorflow(tmp_path, module, args):
    from effnet_tf.training.spec import FORMAT_VERSION

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"format_version": 99, "spec": {}}))
    out = run_cli(module, f"--model_dir={run}", *[a.format(tmp=tmp_path) for a in args])
    assert_one_line_error(out, module, f"{run / 'config.json'} was written by a newer "
                          f"effnet_tf (format_version 99; this version reads up to "
                          f"{FORMAT_VERSION}): upgrade effnet_tf")


def test_a_model_dir_that_train_cannot_use_is_refused_before_tensorflow(tmp_path):
    """Not writable (a file where a folder must be), or held by a live run's lock: said at
    once (the backend its checkpoints need: tests/training/test_jax_training.py)."""
    (tmp_path / "file").write_text("not a folder")
    out = run_cli(*SMOKE[:1], f"--model_dir={tmp_path}/file/run", *SMOKE[2:])
    assert_one_line_error(out, "effnet_tf.train", f"cannot write to model_dir "
                          f"'{tmp_path}/file/run': '{tmp_path}/file' is a file, not a folder")
    held = tmp_path / "held"
    held.mkdir()
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-12-07 10:00:00"}
    (held / "lock.json").write_text(json.dumps(owner))
    out = run_cli(*SMOKE[:1], f"--model_dir={held}", *SMOKE[2:])
    assert_one_line_error(out, "effnet_tf.train", f"model_dir '{held}' is in use by another run "
                          f"(pid {os.getpid()} on {owner['host']}, since 2026-12-07 10:00:00)")


def test_a_data_service_that_is_not_there_is_one_line_before_tensorflow(tmp_path):
    """Was silence for ever (blocked in register_dataset), and a lock.json left behind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run_cli(*SMOKE[:1], f"--model_dir={tmp_path}/run", *SMOKE[2:],
                  f"--config.data_service=grpc://127.0.0.1:{port}")
    assert_one_line_error(
        out, "effnet_tf.train", f"no tf.data service dispatcher at grpc://127.0.0.1:{port} "
        f"(Connection refused): start one there (python -m pipelines.service dispatcher "
        f"--port {port}) or correct the address (--config.data_service)")
    assert not os.path.exists(tmp_path / "run" / "lock.json")


def test_valid_flags_and_config_are_checked_without_tensorflow(tmp_path):
    code = ("import os, sys\n"
            f"sys.argv = ['effnet_tf.train', '--config=cpu_smoke', '--model_dir={tmp_path}',"
            " '--config.image_size=96', '--config.num_classes=10']\n"
            "from effnet_tf import flags\n"
            "import effnet_tf.train\n"
            "from effnet_tf.training.config import validate\n"
            "flags.parse_flags(sys.argv)\n"
            "config = flags.resolved_config()\n"
            "validate(config)\n"
            "print(config.image_size, config.num_classes, os.environ['TF_CPP_MIN_LOG_LEVEL'],"
            " [m for m in ('tensorflow', 'keras') if m in sys.modules])\n")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True)
    assert out.stdout.split() == ["96", "10", "2", "[]"], out.stderr[-2000:]


# ---- with TensorFlow --------------------------------------------------------------------
# (a trained run's commands on bad files: tests/training/test_faults.py)


def test_dataset_file_that_is_not_a_tfrecord_is_named(tmp_path):
    out = run_cli("effnet_tf.train", "--config=cpu_smoke", f"--model_dir={tmp_path}/run",
                  f"--dataset={DATA}/not_a_tfrecord.tfrecord")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr[-2000:]
    assert lines[0] == (f"effnet_tf.train: error: dataset file '{DATA}/not_a_tfrecord.tfrecord'"
                        " is not a TFRecord file (its first record does not read: another "
                        "format, compressed, or corrupt)")


@pytest.mark.parametrize("args,env,expected", [
    ([], {}, "2 -1"),  # TensorFlow's C++ INFO and WARNING lines off, absl warnings and up
    (["--verbosity=0"], {}, "0 0"),  # asked for INFO: everything
    (["-v", "1"], {}, "0 1"),
    ([], {"TF_CPP_MIN_LOG_LEVEL": "1"}, "1 -1"),  # the user's own setting wins
])
def test_logs_are_quiet_unless_asked(args, env, expected):
    code = ("import os, sys\n"
            "from absl import logging\n"
            "from effnet_tf import flags\n"
            "flags.parse_flags(['effnet_tf.summary'] + sys.argv[1:])\n"
            "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], logging.get_verbosity())\n")
    full_env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True,
                         text=True, env={**full_env, **env})
    assert out.stdout.strip() == expected, out.stderr[-2000:]
