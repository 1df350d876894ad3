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
def test_jax_backend_gives_the_tensorflow_logits(tmp_path, jax_env):
    keras.utils.set_random_seed(0)
    model = randomized(effnet_tf.EfficientNet(
        "b0", input_shape=(SIZE, SIZE, 3), classifier_activation=None))
    weights.save_h5(model, tmp_path / "b0.h5")
    images = np.random.default_rng(1).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    expected = model.predict(images, verbose=0)

    env = {**os.environ, **jax_env, "JAX_PLATFORMS": "cpu",
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


# Under KERAS_BACKEND=jax: one jitted gradient step of the same tiny model with and without
# remat (same weights, same dropout seeds): loss, gradients and new BN statistics; then the
# remat model saved as a .keras file (argv[1]) with its inference logits (argv[2]).
REMAT_SCRIPT = """
import json, sys
import jax, keras, numpy as np
from effnet_tf import EfficientNet, Scaling

scaling = Scaling("tiny", 0.25, 0.25, 32, 0.2)
models = []
for remat in (False, "all"):
    keras.utils.set_random_seed(0)  # the same weights and dropout seeds
    models.append(EfficientNet(scaling, weights=None, classes=4, drop_connect_rate=0.3,
                               classifier_activation=None, remat=remat))
rng = np.random.default_rng(0)
x = rng.uniform(0, 255, (4, 32, 32, 3)).astype("float32")
y = np.eye(4, dtype="float32")[[0, 1, 2, 3]]

def step(model):
    variables = model.variables
    trained = [i for i, v in enumerate(variables) if v.trainable]

    def loss_fn(weights, values):
        values = list(values)
        for i, w in zip(trained, weights):
            values[i] = w
        with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
            logits = model(x, training=True)
            loss = keras.ops.mean(keras.losses.categorical_crossentropy(y, logits,
                                                                       from_logits=True))
        new = [scope.get_current_value(v) for v in variables]
        return loss, [n if n is not None else v for n, v in zip(new, values)]

    values = [v.value for v in variables]
    (loss, new), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(
        [values[i] for i in trained], values)
    state = [np.asarray(n) for i, n in enumerate(new) if i not in trained]
    return float(loss), [np.asarray(g) for g in grads], state

(la, ga, sa), (lb, gb, sb) = step(models[0]), step(models[1])
models[1].save(sys.argv[1])
np.save(sys.argv[2], np.asarray(models[1](x, training=False)))
print(json.dumps({
    "remat_blocks": len(models[1].remat_blocks),
    "loss": [la, lb],
    "grad_diff": max(float(np.abs(a - b).max()) for a, b in zip(ga, gb)),
    "grad_scale": max(float(np.abs(a).max()) for a in ga),
    "state_diff": max(float(np.abs(a.astype("float64") - b).max()) for a, b in zip(sa, sb)),
    "state_changed": any(not np.array_equal(a, np.asarray(v.value))
                         for a, v in zip(sa, [v for v in models[0].variables
                                              if not v.trainable])),
}))
"""


def test_remat_under_jax_gives_the_same_step_and_its_keras_file_loads_under_tf(jax_env,
                                                                              tmp_path):
    """``remat`` under JAX (``jax.checkpoint`` per MBConv block): the same loss, gradients
    and BN statistics as the plain model, dropout masks included. The ``.keras`` file the
    JAX process saved gives the same logits under TensorFlow."""
    saved, logits = str(tmp_path / "remat.keras"), str(tmp_path / "logits.npy")
    done = subprocess.run([sys.executable, "-c", REMAT_SCRIPT, saved, logits], cwd=REPO,
                          capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, **jax_env))
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["remat_blocks"] >= 7
    assert result["loss"][0] == pytest.approx(result["loss"][1], rel=1e-6)
    assert result["grad_diff"] <= 1e-5 * max(1.0, result["grad_scale"])
    assert result["state_diff"] <= 1e-6 and result["state_changed"]

    from effnet_tf.modeling import remat  # noqa: F401  (as for any custom Keras class)

    model = keras.saving.load_model(saved)
    assert model.remat_blocks and json.loads(json.dumps(model.get_config()))["name"] == (
        model.name)
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")  # the script's
    np.testing.assert_allclose(np.asarray(model(x, training=False)), np.load(logits),
                               rtol=1e-5, atol=1e-4)
