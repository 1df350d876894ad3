"""Faults a long run meets, through the real CLI: preemption (SIGTERM), a second run on a live
model_dir, a corrupt checkpoint, a full disk, a changed optimizer, undecodable images (in
training, evaluate and predict); the progress lines a log file gets, and none of TensorFlow's
start-up lines. (An unwritable model_dir, an empty dataset file, a data service that is not
there: tests/test_cli_errors.py, refused before TensorFlow.)"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests import REPO
from tests.train_utils import assert_same_weights, checkpoint_weights, run_module

# The shipped smoke recipe (synthetic JPEGs through the real pipeline), smaller.
SMOKE = ["--config=cpu_smoke", "--image_size=32", "--batch_size=8"]
# The smoke run's length (2 epochs of 10 steps, one checkpoint at the end), deterministic.
STEPS = ["--deterministic", "--epochs=2", "--config.steps_per_epoch=10",
         "--config.checkpoint_every_steps=1000", "--config.log_every_steps=1"]
DATA = os.path.join(REPO, "tests", "data", "cli")


def train(model_dir, *args):
    return run_module("effnet_tf.train", *SMOKE, f"--model_dir={model_dir}", *args)


def start_train(model_dir, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "effnet_tf.train", *SMOKE,
                             f"--model_dir={model_dir}", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(process, text, timeout=300):
    """stdout lines of ``process`` up to the first one containing ``text``."""
    deadline, lines = time.monotonic() + timeout, []
    for line in process.stdout:
        lines.append(line)
        if text in line:
            return lines
        assert time.monotonic() < deadline, "".join(lines)
    raise AssertionError(f"{text!r} never printed:\n" + "".join(lines)
                         + process.stderr.read()[-3000:])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """A run of the smoke recipe by the CLI (``STEPS``), uninterrupted, started as a user
    starts it (no TF_CPP_MIN_LOG_LEVEL): its model_dir and stderr. Tests that change it work
    on a copy."""
    model_dir = tmp_path_factory.mktemp("smoke") / "run"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    out = subprocess.run([sys.executable, "-m", "effnet_tf.train", *SMOKE,
                          f"--model_dir={model_dir}", *STEPS], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return model_dir, out.stderr


def copy_of(run, tmp_path):
    shutil.copytree(run, tmp_path / "run")
    return tmp_path / "run"


def checkpoint_steps(model_dir):
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


def test_sigterm_saves_at_the_current_step_and_resumes_to_the_uninterrupted_weights(
        smoke_run, tmp_path):
    """A second run on the live model_dir is refused; SIGTERM saves and releases the lock;
    the same command resumes, past the stale lock a SIGKILLed run would have left, to the
    uninterrupted run's weights and summary."""
    args, straight = STEPS, smoke_run[0]
    recipe = json.load(open(straight / "config.json"))["config"]
    assert recipe["dataset"] == "synthetic" and recipe["optimizer"] == "adam"  # cpu_smoke's

    run = tmp_path / "run"
    proc = start_train(run, *args)
    read_until(proc, "step 3/20")
    proc.send_signal(signal.SIGSTOP)  # held mid-run (alive) while a second run tries
    try:
        second = train(run, *args)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    assert f"is in use by another run (pid {proc.pid} on" in second.stderr
    assert "Traceback" not in second.stderr
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, err[-3000:]
    assert not os.path.exists(run / "lock.json")  # released by the interrupted run
    line = [x for x in out.splitlines() if x.startswith("Interrupted by SIGTERM at step")]
    assert line and line[0].endswith("checkpoint saved; re-run the same command to resume")
    step = int(line[0].split("at step ")[1].split(";")[0])
    assert 3 <= step < 20 and checkpoint_steps(run) == [step]  # no checkpoint was due before
    summary = json.load(open(run / "summary.json"))
    assert summary["interrupted"] == "SIGTERM" and summary["step"] == step

    partial = run / "checkpoints" / f"ckpt-{step + 1}_temp"  # as a kill during a write leaves
    partial.mkdir()
    (partial / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    with open(run / "lock.json", "w") as f:  # as a SIGKILLed run leaves it
        json.dump({"pid": int(dead.stdout), "host": os.uname().nodename, "started": "x"}, f)
    resumed = train(run, *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {step}" in resumed.stdout
    assert "Taking over the stale lock" in resumed.stderr and not (run / "lock.json").exists()
    assert_same_weights(checkpoint_weights(straight), checkpoint_weights(run))
    # The same summary as the uninterrupted run: the epoch's running loss and the per-epoch
    # losses were checkpointed, and no valid image is reported as undecodable after resuming.
    expected, got = (json.load(open(d / "summary.json")) for d in (straight, run))
    for timing in ("images_per_second", "first_call_seconds"):
        del expected[timing], got[timing]
    assert got == expected and len(got["train_loss_per_epoch"]) == 2
    assert got["skipped_train_images"] == 0 and "could not be decoded" not in resumed.stderr
    assert not partial.exists()


@pytest.mark.slow
def test_a_corrupt_latest_checkpoint_falls_back_to_the_one_before(tmp_path):
    run = tmp_path / "run"
    args = ["--epochs=1", "--config.steps_per_epoch=4", "--config.checkpoint_every_steps=2"]
    assert train(run, *args).returncode == 0
    assert checkpoint_steps(run) == [2, 4]
    data = run / "checkpoints" / "ckpt-4.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated

    evaluated = run_module("effnet_tf.evaluate", f"--model_dir={run}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "ckpt-4 is unreadable" in evaluated.stderr and "step 2" in evaluated.stdout

    resumed = train(run, "--epochs=2", *args[1:])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "ckpt-4 is unreadable" in resumed.stderr and "resuming at step 2" in resumed.stdout
    assert checkpoint_steps(run)[-1] == 8


def test_training_shows_no_start_up_chatter(smoke_run):
    _, stderr = smoke_run
    assert "oneDNN" not in stderr and "absl::InitializeLog" not in stderr, stderr[-3000:]
    assert not re.search(r"^I\d{4} ", stderr, re.M), stderr[-3000:]  # no INFO lines at all


def test_a_changed_optimizer_or_unreadable_checkpoints_refuse_to_resume(smoke_run, tmp_path):
    """A resume that asks for another optimizer says what differs. A run whose every
    checkpoint is unreadable is refused, not started over: that would write new checkpoints
    and rotate the old ones away. The user is told instead, and the files stay as they were."""
    run = copy_of(smoke_run[0], tmp_path)
    more = [*STEPS, "--epochs=3"]
    other = train(run, *more, "--config.optimizer=sgd")
    assert other.returncode == 2
    assert "was trained with optimizer=adam; this run asks for optimizer=sgd" in other.stderr
    assert "Epoch" not in other.stdout and "Traceback" not in other.stderr

    assert checkpoint_steps(run) == [20]
    data = run / "checkpoints" / "ckpt-20.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    before = sorted(os.listdir(run / "checkpoints"))
    again = train(run, *more)
    assert again.returncode != 0
    assert "none of its 1 checkpoints reads back" in again.stderr
    assert "ckpt-20" in again.stderr.strip().splitlines()[-1]
    assert "Traceback" not in again.stderr
    assert sorted(os.listdir(run / "checkpoints")) == before


def test_predict_names_a_file_that_is_not_an_image_and_predicts_the_others(smoke_run):
    photo, text = f"{DATA}/photo.jpg", f"{DATA}/not_an_image.jpg"
    out = run_module("effnet_tf.predict", f"--model_dir={smoke_run[0]}", "--top_k=2", photo,
                     text, photo)
    assert out.returncode == 1
    predicted = [line for line in out.stdout.splitlines() if line.startswith(photo)]
    assert len(predicted) == 2 and predicted[0] == predicted[1]
    assert re.fullmatch(rf"{photo}: class_\d [01]\.\d{{3}}, class_\d [01]\.\d{{3}}", predicted[0])
    errors = out.stderr.strip().splitlines()
    assert errors[0].startswith(f"effnet_tf.predict: warning: {text} is not an image that "
                                "decodes, skipped (Unknown image file format.")
    assert errors[-1] == f"effnet_tf.predict: error: 1 of 3 files could not be predicted: {text}"


@pytest.mark.slow
def test_a_full_disk_names_the_path_keeps_the_last_checkpoint_and_no_temp_files(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode()[-200:]}")
    try:
        run = disk / "run"
        args = ["--epochs=1", "--config.steps_per_epoch=2", "--config.checkpoint_every_steps=2"]
        assert train(run, *args).returncode == 0
        good = checkpoint_weights(run)
        free = shutil.disk_usage(disk).free
        with open(disk / "filler", "wb") as f:  # leave less than a checkpoint's size
            f.write(b"\0" * (free - 64 * 1024))
        full = train(run, "--epochs=2", *args[1:])
        assert full.returncode == 1
        assert f"could not write the step-4 checkpoint to {run / 'checkpoints'}" in full.stderr
        assert "the last good checkpoint" in full.stderr and "Traceback" not in full.stderr
        assert checkpoint_steps(run) == [2]
        assert not [n for n in os.listdir(run / "checkpoints") if "_temp" in n]
        assert_same_weights(good, checkpoint_weights(run))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_log_lines_and_skipped_images_when_stdout_is_a_file(tmp_path):
    """A folder with one undecodable file in train and in val: both are counted, once per
    pass, in the Done line, summary.json and evaluate; progress lines carry ETA."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for split, count in (("train", 24), ("val", 8)):
        for label in ("a", "b"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count // 2):
                pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg")
        (root / split / "a" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    # Real links: a loop back to its own folder (listed it 40x over before) and two files
    # linking to each other (a traceback mid-epoch before); left out, named once.
    os.symlink(root / "train" / "a", root / "train" / "a" / "loop")
    os.symlink(root / "train" / "b" / "y.jpg", root / "train" / "b" / "x.jpg")
    os.symlink(root / "train" / "b" / "x.jpg", root / "train" / "b" / "y.jpg")
    out = train(tmp_path / "run", f"--dataset={root}", "--config.num_classes=2", "--epochs=2",
                "--config.steps_per_epoch=3", "--config.log_every_steps=1")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "  train: 25 examples in 2 classes, 12-13 per class (fewest: 'b')" in out.stdout
    assert "  validation: 9 examples in 2 classes, 4-5 per class" in out.stdout
    links = [x for x in out.stderr.splitlines() if "left out 3 link(s)" in x]
    assert len(links) == 1 and f"{root / 'train' / 'a' / 'loop'} (links back into" in links[0]
    assert f"{root / 'train' / 'b' / 'x.jpg'} (Too many levels of symbolic links)" in links[0]
    progress = [x for x in out.stdout.splitlines() if x.startswith("step ")]
    assert [x.split()[1] for x in progress] == [f"{i}/6" for i in range(1, 7)]
    assert all(" ETA " in x and " img/s " in x for x in progress)
    done = json.loads(out.stdout.split("Done at step 6: ", 1)[1].splitlines()[0])
    assert done["images"] == 8 and done["skipped_images"] == 1
    assert done["skipped_train_images"] >= 1
    val_warnings = [x for x in out.stderr.splitlines() if "val/a/broken.jpg" in x]
    assert len(val_warnings) == 1  # named once, though both evaluations skipped it
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert summary["images"] == 8 and summary["skipped_images"] == 1
    # The process ends right after Done (no teardown of TensorFlow): the logs are written.
    tags = [value.tag for name in os.listdir(tmp_path / "run" / "logs")
            for record in tf.data.TFRecordDataset(str(tmp_path / "run" / "logs" / name))
            for value in tf.compat.v1.Event.FromString(record.numpy()).summary.value]
    assert tags.count("train/loss") == 6 and tags.count("eval/top1") == 2

    evaluated = run_module("effnet_tf.evaluate", f"--model_dir={tmp_path / 'run'}")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    figures = dict(re.findall(r"(\w+) (\S+)", evaluated.stdout.splitlines()[0]))
    assert (figures["images"], figures["skipped"]) == ("8", "1")  # 9 held out, 1 broken
    assert float(figures["top1"]) == pytest.approx(summary["top1"], abs=1e-4)


# ---- the data check before the first step (issue 22) ----------------------------------------


def test_problems_in_the_data_stop_the_run_before_training_in_one_line(tmp_path):
    """Scans with an empty class folder, no val/ and a batch larger than the training split
    (the recipe sets steps_per_epoch): all three in the check's block, the first as the one
    error line, before a model is built or a step trained."""
    root = tmp_path / "scans"
    rng = np.random.default_rng(0)
    for label in ("0", "1"):
        (root / "train" / label).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(
                root / "train" / label / f"{i}.jpg")
    (root / "train" / "2").mkdir()
    out = train(tmp_path / "run", f"--dataset={root}", "--config.num_classes=3", "--batch_size=64")
    assert out.returncode == 2, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"effnet_tf.train: error: split 'validation' of dataset '{root}': ")
    assert f"add {root / 'val'}/<class>/<images> next to {root / 'train'}" in last
    assert last.endswith("(and 2 more problem(s) listed above)") and "Traceback" not in out.stderr
    assert "  train: 10 examples in 3 classes, 0-5 per class (fewest: '2')" in out.stdout
    assert f"  error: class folder '{root / 'train' / '2'}' has no images" in out.stdout
    assert ("has 10 training examples, fewer than one global batch of 64 (steps_per_epoch or "
            "not, each step would repeat images within its batch): lower --batch_size to at "
            "most 10") in out.stdout
    assert "Model " not in out.stdout and "Epoch" not in out.stdout
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
    assert not os.path.exists(tmp_path / "run" / "lock.json")
