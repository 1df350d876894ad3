"""A JAX run's checkpoint files (Orbax + the input position beside), read and written here in
the test process (TensorFlow's backend: the files need neither Keras on JAX nor a device), and
a ``.keras`` file carried between the backends."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests import REPO

pytest.importorskip("orbax.checkpoint")

from effnet_tf.training import jax_checkpoints  # noqa: E402


def state(value: float) -> dict:
    return {"weights": jax_checkpoints.as_tree([np.full((2, 3), value, np.float32),
                                                np.full((4,), value, np.float32)]),
            "optimizer": jax_checkpoints.as_tree([np.array(value, np.int64)])}


def test_newest_step_that_does_not_read_is_passed_over_by_name(tmp_path, capsys):
    iterator = iter(tf.data.Dataset.range(100))
    checkpoints = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3,
                                              input_items={"train_iterator": iterator})
    for step in (4, 8):
        next(iterator)
        checkpoints.save(step, state(step), {"epoch_sums": [step, 0.0, 1]})
    checkpoints.close()
    # the newest step's arrays truncated, as a full disk or a kill mid-copy leaves them
    for root, _, files in os.walk(tmp_path / "ckpt" / "8" / "state"):
        for name in files:
            path = os.path.join(root, name)
            if os.path.getsize(path) > 16:
                with open(path, "r+b") as f:
                    f.truncate(8)
    iterator = iter(tf.data.Dataset.range(100))
    reader = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3,
                                         input_items={"train_iterator": iterator})
    step, tree, run_state = reader.restore_latest(state(0.0))
    reader.close()
    assert step == 4 and run_state["epoch_sums"][0] == 4
    np.testing.assert_array_equal(np.asarray(tree["weights"]["0001"]), np.full((4,), 4.0))
    assert int(next(iterator)) == 1  # the input position of step 4: one element read
    assert f"checkpoint {tmp_path / 'ckpt'}/8 is unreadable" in capsys.readouterr().err


def test_no_readable_step_is_an_error_not_a_fresh_start(tmp_path):
    checkpoints = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3)
    checkpoints.save(4, state(4.0), {})
    checkpoints.close()
    for root, _, files in os.walk(tmp_path / "ckpt" / "4"):
        for name in files:
            os.remove(os.path.join(root, name))
    reader = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3)
    with pytest.raises(ValueError, match="none of its 1 checkpoints reads back"):
        reader.restore_latest(state(0.0))
    reader.close()


def test_a_run_with_its_input_positions_in_the_old_folder_resumes(tmp_path):
    """Runs written before the positions moved out of Orbax's folder (where Orbax on gs://
    deleted them) kept them in ``checkpoints/input/``: they resume at their position."""
    iterator = iter(tf.data.Dataset.range(100))
    checkpoints = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3,
                                              input_items={"train_iterator": iterator})
    for _ in range(3):
        next(iterator)
    checkpoints.save(4, state(4.0), {})
    checkpoints.close()
    os.makedirs(tmp_path / "ckpt" / "input")
    os.rename(tmp_path / "ckpt_input" / "process_0", tmp_path / "ckpt" / "input" / "process_0")
    iterator = iter(tf.data.Dataset.range(100))
    reader = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=3,
                                         input_items={"train_iterator": iterator})
    step, _, _ = reader.restore_latest(state(0.0))
    reader.close()
    assert step == 4 and int(next(iterator)) == 3


def test_rotation_keeps_the_newest_and_their_input_positions(tmp_path):
    iterator = iter(tf.data.Dataset.range(100))
    checkpoints = jax_checkpoints.Checkpoints(str(tmp_path / "ckpt"), keep=2,
                                              input_items={"train_iterator": iterator})
    for step in (1, 2, 3):
        checkpoints.save(step, state(step), {})
    checkpoints.close()
    assert jax_checkpoints.steps(str(tmp_path / "ckpt")) == [2, 3]
    inputs = os.listdir(tmp_path / "ckpt_input" / "process_0")
    assert sorted({name.split(".")[0] for name in inputs}) == ["step-2", "step-3"]
    step, weights, average = jax_checkpoints.read_weights(str(tmp_path / "ckpt"))
    assert step == 3 and average is None
    np.testing.assert_array_equal(weights[0], np.full((2, 3), 3.0))


def test_a_keras_file_saved_under_jax_loads_under_tensorflow(tmp_path, jax_env):
    """The same logits from a ``.keras`` file written by a model built and run under JAX."""
    script = f"""
import numpy as np
from effnet_tf import EfficientNet, Scaling
model = EfficientNet(Scaling("tiny", 0.25, 0.25, 32, 0.2), weights=None, classes=5)
images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
model.save({str(tmp_path / 'model.keras')!r})
np.save({str(tmp_path / 'images.npy')!r}, images)
np.save({str(tmp_path / 'probs.npy')!r}, np.asarray(model(images, training=False)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, **jax_env))
    assert done.returncode == 0, done.stderr[-2000:]
    import keras

    model = keras.saving.load_model(str(tmp_path / "model.keras"))
    probs = model(np.load(tmp_path / "images.npy"), training=False)
    np.testing.assert_allclose(np.asarray(probs), np.load(tmp_path / "probs.npy"), atol=1e-5)
    assert json.loads(json.dumps(model.get_config()))["name"] == model.name
