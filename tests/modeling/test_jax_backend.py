"""The model builder under Keras' JAX backend: weights saved under TensorFlow give the same
logits, and building the model imports no TensorFlow."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import effnet_tf
from effnet_tf.modeling import weight_loading as weights
from tests import REPO

pytest.importorskip("jax")

SIZE = 64

# Runs under KERAS_BACKEND=jax: builds B0 with the weights file, writes logits and which
# backend and modules it saw.
JAX_SCRIPT = """
import json, sys
import numpy as np
import effnet_tf
import keras

weights_path, images_path, out_path = sys.argv[1:]
model = effnet_tf.EfficientNet("b0", input_shape=({size}, {size}, 3),
                               classifier_activation=None, weights=weights_path)
logits = np.asarray(model.predict(np.load(images_path), verbose=0))
np.save(out_path, logits)
print(json.dumps({{"backend": keras.backend.backend(),
                   "tensorflow": "tensorflow" in sys.modules}}))
""".format(size=SIZE)


def randomized(model, seed=0):
    """Random BN scale, offset and moving statistics (at their initial values 1, 0, 0, 1 a
    layer whose weights were lost would go unnoticed) and a classifier of unit scale (the
    initial one gives logits of about 0.1 that hardly differ between images)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                               rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])
        elif isinstance(layer, keras.layers.Dense):
            layer.set_weights([rng.normal(0, 1, w.shape) for w in layer.get_weights()])
    return model


@pytest.mark.slow
def test_jax_backend_gives_the_tensorflow_logits(tmp_path):
    keras.utils.set_random_seed(0)
    model = randomized(effnet_tf.EfficientNet(
        "b0", input_shape=(SIZE, SIZE, 3), classifier_activation=None))
    weights.save_h5(model, tmp_path / "b0.h5")
    images = np.random.default_rng(1).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    expected = model.predict(images, verbose=0)

    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "b0.h5"),
         str(tmp_path / "images.npy"), str(tmp_path / "jax.npy")],
        env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"backend": "jax", "tensorflow": False}
    got = np.load(tmp_path / "jax.npy")
    assert got.shape == expected.shape == (4, 1000)
    # Logits of about 10 that differ between images 100x more than the tolerance (measured:
    # 14 and 0.034; JAX and TensorFlow differ by 1e-5).
    assert np.abs(expected).max() > 5 and np.abs(expected - expected[::-1]).max() > 1e-2
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()
