"""A JAX run's checkpoint files (Orbax + the input position beside), read and written here in
the test process (TensorFlow's backend: the files need neither Keras on JAX nor a device)."""

import os

import numpy as np
import pytest
import tensorflow as tf

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


# (a .keras file saved under JAX, loaded under TensorFlow: tests/modeling/test_jax_backend.py)
