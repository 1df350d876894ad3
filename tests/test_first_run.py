"""A first real run, as a user makes it: the CLIs in subprocesses with the shipped defaults
(only sizes and step counts changed) on small real data, through evaluation, kill, resume,
extension and export.

Real data: scikit-learn's digits (real scans) written as an image folder, and TFRecord
shards of crops of the photos that ship with scikit-image and scikit-learn.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.train_utils import run_module

# The default recipe (augmentation, EMA, the official optimizer), a tiny scaling at 32 px.
TINY = ["--variant=b0", "--config.width_coefficient=0.25", "--config.depth_coefficient=0.25",
        "--image_size=32", "--batch_size=8"]


def photo_crops(count, seed=0):
    """(jpeg bytes, label) of random crops of three shipped photos (label = which photo)."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = [skimage.data.astronaut(), skimage.data.coffee(), load_sample_image("china.jpg")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        label = i % len(photos)
        photo = photos[label]
        h, w = rng.integers(60, 160, 2)
        y, x = rng.integers(0, photo.shape[0] - h), rng.integers(0, photo.shape[1] - w)
        out.append((tf.io.encode_jpeg(photo[y:y + h, x:x + w]).numpy(), label))
    return out


def write_shards(folder, split, examples, num_shards, label_offset):
    """ImageNet-layout TFRecords (``image/encoded``, ``image/class/label``), no metadata.json."""
    os.makedirs(folder, exist_ok=True)
    for shard in range(num_shards):
        path = os.path.join(folder, f"{split}-{shard:05d}-of-{num_shards:05d}")
        with tf.io.TFRecordWriter(path) as writer:
            for encoded, label in examples[shard::num_shards]:
                feature = {
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[encoded])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[label + label_offset])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(
                    feature=feature)).SerializeToString())


def train(model_dir, *args, timeout=600):
    return run_module("effnet_tf.train", *TINY, f"--model_dir={model_dir}", *args,
                      timeout=timeout)


def done_line(out):
    lines = [line for line in out.stdout.splitlines() if line.startswith("Done at step")]
    assert lines, out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(lines[-1].split(": ", 1)[1])


def checkpoints(model_dir):
    state = tf.train.get_checkpoint_state(os.path.join(model_dir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths] if state else []


def test_kill_resume_extend_evaluate_and_export_a_remat_run_in_a_relative_model_dir(
        digits, tmp_path):
    """The default recipe (only sizes and step counts changed, and ``--config.remat=all``, the
    memory-saving training call) in ``--model_dir runs/digits`` as the README writes it,
    relative to where the user is. SIGKILL from outside after several rotated checkpoints;
    the same command with one epoch more resumes (the checkpoint paths were once taken as
    relative twice: nothing was found and training started over) and extends the run to the
    new end. Then evaluate it, and export the plain inference model."""
    run = tmp_path / "runs" / "digits"
    args = [*TINY, "--model_dir=runs/digits", f"--dataset={digits}", "--config.remat=all",
            "--config.steps_per_epoch=4", "--config.checkpoint_every_steps=2",
            "--config.keep_checkpoints=2"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    first_log = open(tmp_path / "first.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "effnet_tf.train", *args, "--epochs=3"],
                            cwd=tmp_path, env=env, stdout=first_log, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    # (the checkpoint state lists a new checkpoint, then the rotation deletes the oldest and
    # lists the rest: killed in between, three would be listed)
    while not (max(checkpoints(run), default=0) >= 6 and len(checkpoints(run)) == 2) and (
            proc.poll() is None):
        assert time.monotonic() < deadline, "no checkpoint at step 6 in 300 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_log.close()
    kept = checkpoints(run)
    assert len(kept) == 2 and max(kept) >= 6
    assert not list((run / "checkpoints").glob("ckpt-2.*"))  # rotation deleted the first ones
    config = json.load(open(run / "config.json"))["config"]
    assert config["augment"] == "autoaugment" and config["ema_decay"] == 0.9999
    assert config["optimizer"] == "rmsprop_tf" and config["remat"] == "all"

    def command(module, *more):
        return run_module(module, *more, cwd=tmp_path)

    # The same command with one epoch more: resumed where the kill left it, and extended.
    resumed = command("effnet_tf.train", *args, "--epochs=4")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {max(kept)}" in resumed.stdout
    result = done_line(resumed)
    assert result["step"] == 16 and result["epoch"] == 4 and result["images"] == 40
    assert checkpoints(run)[-1] == 16
    # The epochs before the kill keep their losses (checkpointed with the run's state).
    before = [float(x.split("train_loss ")[1].split()[0])
              for x in open(tmp_path / "first.log") if x.startswith("  epoch ")]
    summary = json.load(open(run / "summary.json"))
    losses = summary["train_loss_per_epoch"]
    assert len(losses) == 4 and before and [round(x, 4) for x in losses[:len(before)]] == before

    evaluated = command("effnet_tf.evaluate", "--model_dir=runs/digits")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "step 16" in evaluated.stdout and "unreadable" not in evaluated.stderr
    fields = evaluated.stdout.split()
    assert float(fields[fields.index("top1") + 1]) == pytest.approx(summary["top1"], abs=1e-4)

    exported = command("effnet_tf.export", "--model_dir=runs/digits", "--format=keras",
                       "--output=exported/remat.keras")  # a folder not there yet
    assert exported.returncode == 0, exported.stderr[-3000:]
    import keras

    from effnet_tf.modeling.blocks import EfficientNetModel
    from effnet_tf.training.restore import load_trained

    model = keras.saving.load_model(tmp_path / "exported" / "remat.keras")
    assert not isinstance(model, EfficientNetModel)  # inference needs no remat
    trained = load_trained(str(run))  # the evaluated weights (the average)
    threes = os.path.join(digits, "val", "3")
    image = os.path.join(threes, sorted(os.listdir(threes))[0])
    prepared = trained.spec.eval_preprocess().fn()(tf.io.read_file(image))[None].numpy()
    expected = tf.nn.softmax(trained.model(prepared, training=False)).numpy()
    np.testing.assert_allclose(model.predict(prepared, verbose=0), expected, atol=1e-5)


def test_tfrecords_without_metadata_are_counted_and_0_based_labels_have_a_flag(tmp_path):
    shards = str(tmp_path / "shards")
    write_shards(shards, "train", photo_crops(48), num_shards=2, label_offset=0)
    write_shards(shards, "validation", photo_crops(12, seed=1), num_shards=1, label_offset=0)
    common = [f"--dataset={shards}", "--config.num_classes=3", "--epochs=1"]

    wrong = train(tmp_path / "wrong", *common)  # ImageNet's 1-based labels assumed
    assert wrong.returncode != 0
    assert "label" in wrong.stderr and "-1" in wrong.stderr, wrong.stderr[-2000:]

    # No --config.num_classes: the classes are counted from the labels the shards hold (was
    # "classes must be an integer >= 1, got None"), with the examples, in one reading.
    out = train(tmp_path / "run", f"--dataset={shards}", "--epochs=1", "--label_offset=0")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "  train: 48 examples\n  validation: 12 examples\n  classes: 3, counted from the " \
        "labels the training shards hold (--config.num_classes sets them)" in out.stdout
    assert "3 classes; 6 steps/epoch" in out.stdout and done_line(out)["step"] == 48 // 8


def test_an_unprepared_tfds_dataset_says_so(tmp_path):
    out = train(tmp_path / "run", "--dataset=tfds:imagenet2012", f"--data_dir={tmp_path}")
    assert out.returncode != 0
    assert "is not prepared in data_dir" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr and "TypeError" not in out.stderr


@pytest.mark.slow
def test_a_failed_first_run_does_not_bind_its_model_dir(digits, tmp_path):
    run = tmp_path / "run"
    failed = train(run, f"--dataset={digits}", "--epochs=1", "--config.steps_per_epoch=2",
                   "--config.base_learning_rate=1e38")  # diverges before its first checkpoint
    assert failed.returncode != 0 and "loss became" in failed.stderr
    assert os.path.exists(run / "config.json") and not checkpoints(run)
    fixed = train(run, f"--dataset={digits}", "--epochs=1", "--config.steps_per_epoch=2",
                  "--config.width_coefficient=0.5")
    assert fixed.returncode == 0, fixed.stderr[-3000:]


def test_an_unknown_recipe_name_lists_the_shipped_ones(tmp_path):
    # (a shipped recipe taken by name trains: every test of training/test_faults.py runs
    # `--config=cpu_smoke`, the README's first command, smaller)
    bad = run_module("effnet_tf.train", "--config=no_such_recipe", f"--model_dir={tmp_path}")
    assert bad.returncode != 0
    assert "neither a file nor a shipped recipe" in bad.stderr
    assert "small_images" in bad.stderr and "tpu" in bad.stderr
