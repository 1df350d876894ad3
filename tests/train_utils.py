"""Shared by the training tests and their worker processes: a tiny, quick training config."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

from effnet_tf.training.config import get_config
from tests import REPO


def tiny_config(**overrides):
    """Quarter-width/depth EfficientNet at 64 px on the synthetic shapes, 2 x 6 steps."""
    c = get_config()
    c.update(dict(
        variant="b0", width_coefficient=0.25, depth_coefficient=0.25, image_size=64,
        dataset="synthetic", num_classes=4, augment="none", global_batch_size=16, epochs=2,
        steps_per_epoch=6, eval_steps=2, base_learning_rate=0.16, warmup_epochs=0.5,
        lr_schedule="cosine", optimizer="adam", optimizer_epsilon=1e-7, label_smoothing=0.0,
        weight_decay=1e-5, ema_decay=0.9, drop_connect_rate=0.0, batch_norm_momentum=0.9,
        strategy="cpu", jit_compile="false", mixed_precision="float32",
        checkpoint_every_steps=4, log_every_steps=2))
    c.update(overrides)
    return c


def run_module(module, *args, env=None, timeout=600, cwd=REPO):
    """Runs ``python -m module args`` in a fresh process (fresh TF runtime), from the repo
    unless ``cwd`` says where the user is."""
    full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def checkpoint_weights(model_dir):
    """The model's variables in the latest checkpoint, by checkpoint key."""
    path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k.startswith("model/") and "OPTIMIZER_SLOT" not in k}


def assert_same_weights(a, b, rtol=0.0, atol=0.0):
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=rtol, atol=atol, err_msg=key)
