"""Training under Keras' JAX backend, as a user runs it: ``python -m effnet_tf.train --backend
jax`` on scikit-learn's digits with two simulated CPU devices (data parallel), the start-up
line, the model_dir lock, SIGTERM and resume, a refused resume under TensorFlow, then the run
evaluated (under both backends), predicted and exported under TensorFlow.

JAX compiles every step with XLA, which on this CPU takes a minute for the tiny model (BUILD.md,
JAX backend): the flow shares one run, and the exact-resume and 4-vs-1-device comparisons are
``slow``. ``JAX_COMPILATION_CACHE_DIR`` (JAX's own) lets a resumed process reuse compiled steps.
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import REPO
from tests.train_utils import run_module

pytest.importorskip("orbax.checkpoint")

# small_images (the recipe for small data) at a tiny scaling; only sizes and counts changed
SMALL = ["--config", "small_images", "--config.width_coefficient=0.25",
         "--config.depth_coefficient=0.25", "--epochs=1", "--config.log_every_steps=1",
         "--config.checkpoint_every_steps=4"]


def start_train(model_dir, dataset, *args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "effnet_tf.train", "--backend", "jax", *SMALL,
         f"--dataset={dataset}", f"--model_dir={model_dir}", *args],
        cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)


def wait_for(proc, prefix: str, seen: list, timeout: float = 600) -> str:
    """Reads ``proc``'s output until a line starts with ``prefix``."""
    deadline = time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(prefix):
            return line
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"no line {prefix!r} in:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory, digits, jax_env):
    """One JAX run on 2 simulated devices: stopped by SIGTERM during epoch 1 (a second run on
    its model_dir refused meanwhile), resumed to the end."""
    root = tmp_path_factory.mktemp("jax_run")
    model_dir, env = str(root / "run"), jax_env
    first = start_train(model_dir, digits, "--config.cpu_devices=2", env=env)
    out = []
    start_line = wait_for(first, "Backend ", out)
    wait_for(first, "step 2/", out)
    second = run_module("effnet_tf.train", "--backend", "jax", *SMALL, f"--dataset={digits}",
                        f"--model_dir={model_dir}", "--config.cpu_devices=2", env=env)
    first.send_signal(signal.SIGTERM)
    rest, _ = first.communicate(timeout=300)
    out.append(rest)
    resumed = run_module("effnet_tf.train", "--backend", "jax", *SMALL, f"--dataset={digits}",
                         f"--model_dir={model_dir}", "--config.cpu_devices=2", env=env)
    return {"model_dir": model_dir, "start_line": start_line, "first": "".join(out),
            "first_code": first.returncode, "second": second, "resumed": resumed, "env": env,
            "digits": digits}


def test_start_line_names_backend_and_devices(jax_run):
    line = jax_run["start_line"]
    assert line.startswith("Backend jax. Devices: 2 x cpu"), line
    assert "global batch 16" in line


def test_second_run_on_the_same_model_dir_is_refused(jax_run):
    second = jax_run["second"]
    assert second.returncode == 2 and "is in use by another run" in second.stderr, second.stderr


def test_sigterm_checkpoints_and_the_same_command_resumes(jax_run):
    assert jax_run["first_code"] == 143, jax_run["first"][-2000:]
    stopped = [x for x in jax_run["first"].splitlines() if x.startswith("Interrupted by SIGTERM")]
    assert stopped, jax_run["first"][-2000:]
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    resumed = jax_run["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {step}" in resumed.stdout
    summary = json.load(open(os.path.join(jax_run["model_dir"], "summary.json")))
    assert summary["step"] == 10 and summary["epoch"] == 1 and summary["images"] == 40
    assert len(summary["train_loss_per_epoch"]) == 1


def test_evaluate_under_both_backends_gives_the_run_s_top1(jax_run):
    summary = json.load(open(os.path.join(jax_run["model_dir"], "summary.json")))
    for env in ({"KERAS_BACKEND": "tensorflow"}, jax_run["env"]):
        result = run_module("effnet_tf.evaluate", f"--model_dir={jax_run['model_dir']}",
                            env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        fields = result.stdout.split()
        assert float(fields[fields.index("top1") + 1]) == pytest.approx(summary["top1"],
                                                                          abs=1e-4)
        assert fields[fields.index("images") + 1] == "40"


def test_resume_under_tensorflow_is_refused_by_name(jax_run):
    result = run_module("effnet_tf.train", "--backend", "tensorflow", *SMALL,
                        f"--dataset={jax_run['digits']}", f"--model_dir={jax_run['model_dir']}")
    assert result.returncode == 2
    assert "was trained under Keras' jax backend" in result.stderr, result.stderr[-2000:]


def test_predict_and_tflite_export_of_a_jax_run(jax_run, tmp_path):
    model_dir = jax_run["model_dir"]
    out = str(tmp_path / "model.tflite")
    export = run_module("effnet_tf.export", f"--model_dir={model_dir}", "--format=tflite",
                        f"--output={out}", env=jax_run["env"])  # KERAS_BACKEND=jax set
    assert export.returncode == 0, export.stderr[-2000:]
    assert "export runs under TensorFlow" in export.stderr and os.path.getsize(out) > 10_000
    image = os.path.join(jax_run["digits"], "val", "3", sorted(
        os.listdir(os.path.join(jax_run["digits"], "val", "3")))[0])
    predict = run_module("effnet_tf.predict", f"--model_dir={model_dir}", image)
    assert predict.returncode == 0, predict.stderr[-2000:]

    import tensorflow as tf

    from effnet_tf.deploy import tflite
    from effnet_tf.training.restore import load_trained

    trained = load_trained(model_dir)
    prepared = trained.spec.eval_preprocess().fn()(tf.io.read_file(image))[None].numpy()
    keras_probs = tf.nn.softmax(trained.model(prepared, training=False)).numpy()
    np.testing.assert_allclose(tflite.predict(out, prepared), keras_probs, atol=1e-4)
    top = int(np.argmax(keras_probs))
    assert trained.class_names[top] in predict.stdout


def test_a_batch_that_does_not_divide_among_the_devices_is_refused(digits, tmp_path, jax_env):
    result = run_module("effnet_tf.train", "--backend", "jax", *SMALL, f"--dataset={digits}",
                        f"--model_dir={tmp_path / 'run'}", "--config.cpu_devices=4",
                        "--batch_size=18", env=jax_env)
    assert result.returncode == 2
    assert "config.global_batch_size=18 does not divide among 4 replicas" in result.stderr


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_uninterrupted_weights(digits, tmp_path, jax_env):
    """Deterministic: SIGKILL after the step-4 checkpoint, resume; the final weights equal an
    uninterrupted run's."""
    from effnet_tf.training.jax_checkpoints import read_weights

    env = jax_env
    args = ["--deterministic", "--config.cpu_devices=2"]
    whole = run_module("effnet_tf.train", "--backend", "jax", *SMALL, f"--dataset={digits}",
                       f"--model_dir={tmp_path / 'whole'}", *args, env=env)
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = start_train(tmp_path / "killed", digits, *args, env=env)
    wait_for(killed, "step 5/", [])
    killed.kill()
    killed.wait()
    resumed = run_module("effnet_tf.train", "--backend", "jax", *SMALL, f"--dataset={digits}",
                         f"--model_dir={tmp_path / 'killed'}", *args, env=env)
    assert resumed.returncode == 0 and "resuming at step 4" in resumed.stdout
    a = read_weights(str(tmp_path / "whole" / "checkpoints"))
    b = read_weights(str(tmp_path / "killed" / "checkpoints"))
    assert a[0] == b[0] == 10
    for x, y in zip(a[1] + a[2], b[1] + b[2]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_four_devices_follow_one_device_at_the_same_global_batch(digits, tmp_path, jax_env):
    """Data parallel over 4 simulated devices: the same global batch, the same data (seeded),
    per-epoch losses within 2% of the 1-device run (the sums of gradients across devices are
    reassociated, nothing else differs)."""
    env = jax_env
    losses = []
    for devices in (1, 4):
        result = run_module("effnet_tf.train", "--backend", "jax", *SMALL, "--epochs=2",
                            f"--dataset={digits}", f"--model_dir={tmp_path / str(devices)}",
                            "--deterministic", f"--config.cpu_devices={devices}", env=env)
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"Devices: {devices} x cpu" in result.stdout
        summary = json.load(open(tmp_path / str(devices) / "summary.json"))
        losses.append(summary["train_loss_per_epoch"])
    np.testing.assert_allclose(losses[0], losses[1], rtol=0.02)


@pytest.mark.slow
def test_fine_tuning_in_bfloat16_from_pretrained_weights(digits, tmp_path, jax_env):
    """Under JAX in mixed_bfloat16: the pretrained file's backbone is loaded (its other head
    skipped), trained with the backbone frozen for epoch 1, unfrozen for epoch 2, batch
    norm frozen throughout, so the BN layers end exactly as the file had them."""
    import effnet_tf
    from effnet_tf.modeling import weight_loading
    from effnet_tf.training.jax_checkpoints import read_weights
    from effnet_tf.training.recipe import build_model
    from effnet_tf.training.run_dir import RunDir

    pretrained = effnet_tf.EfficientNet(
        effnet_tf.Scaling("p", 0.25, 0.25, 32, 0.2), classes=5)  # another head: skipped
    weight_loading.save_h5(pretrained, tmp_path / "pretrained.h5")
    model_dir = tmp_path / "run"
    result = run_module(
        "effnet_tf.train", "--backend", "jax", *SMALL, "--epochs=2", f"--dataset={digits}",
        f"--model_dir={model_dir}", f"--config.pretrained={tmp_path / 'pretrained.h5'}",
        "--config.mixed_precision=mixed_bfloat16", "--config.freeze_backbone_epochs=1",
        "--config.freeze_batch_norm=True", env=jax_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "precision mixed_bfloat16" in result.stdout
    summary = json.load(open(model_dir / "summary.json"))
    assert summary["step"] == 20 and all(np.isfinite(summary["train_loss_per_epoch"]))

    model = build_model(RunDir(str(model_dir)).read_spec().model)
    step, values, _ = read_weights(str(model_dir / "checkpoints"))
    for variable, value in zip(model.weights, values):
        variable.assign(value)

    def same(name):
        return all(np.array_equal(a, b) for a, b in zip(
            model.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()))
    assert step == 20 and same("stem_bn") and same("top_bn") and same("block7a_project_bn")
    assert not same("stem_conv")  # trained in epoch 2
