"""RMSpropTF against the TF1 update rule: a NumPy transcription of TensorFlow's
``training/rmsprop.py`` + ``ApplyRMSProp`` kernel, TF1's ``RMSPropOptimizer`` itself, Keras'
``RMSprop`` (first-step sizes), checkpoint/resume, serialization, ``fit``, loss scaling and
MirroredStrategy on two logical CPUs (in a subprocess: logical devices must be set before TF
starts)."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from effnet_tf.optimizers import RMSpropTF
from effnet_tf.recipe import WarmupDecay

RHO, MOMENTUM, EPS = 0.9, 0.9, 1e-3
STEPS = 10
# Gradient scales cycle from tiny to large: the accumulator's start (1.0) matters most for
# small gradients, large ones dominate it after a step.
SCALES = [1e-4, 1e-2, 1.0, 10.0, 0.3]


def schedule():
    """Warm-up then halving every 2 steps: the learning rate changes at almost every step."""
    return WarmupDecay(peak=0.1, warmup_steps=4, total_steps=STEPS, decay_rate=0.5,
                       decay_steps=2)


def learning_rates():
    return [float(schedule()(step)) for step in range(STEPS)]


def gradients(shapes, steps=STEPS, seed=0):
    rng = np.random.default_rng(seed)
    return [[(rng.normal(size=s) * SCALES[t % len(SCALES)]).astype(np.float32) for s in shapes]
            for t in range(steps)]


def initial_values(shapes):
    rng = np.random.default_rng(1)
    return [(1.0 + rng.uniform(size=s)).astype(np.float32) for s in shapes]


def tf1_rmsprop(var, grads, lrs, rho=RHO, momentum=MOMENTUM, eps=EPS, rms_init=1.0,
                eps_inside=True, lr_in_momentum=True):
    """TF1's update in float64, one variable; yields (var, rms, mom) after every step.

    The keyword switches give the look-alike rules (Keras' zero start, epsilon outside the
    root, lr applied outside the buffer) so the tests can show they would tell them apart.
    """
    var = np.array(var, np.float64)
    rms = np.full_like(var, rms_init)
    mom = np.zeros_like(var)
    for g, lr in zip(grads, lrs):
        g = np.asarray(g, np.float64)
        rms = rho * rms + (1 - rho) * g**2
        denominator = np.sqrt(rms + eps) if eps_inside else np.sqrt(rms) + eps
        if lr_in_momentum:
            mom = momentum * mom + lr * g / denominator
            var = var - mom
        else:
            mom = momentum * mom + g / denominator
            var = var - lr * mom
        yield var, rms, mom


def slot(optimizer, variable, kind):
    name = f"{variable.path.replace('/', '_')}_{kind}"
    (found,) = [v for v in optimizer.variables if v.name == name]
    return found.numpy()


SHAPES = [(3, 4), (4,)]


@pytest.mark.parametrize("graph", [False, True], ids=["eager", "tf_function"])
def test_each_step_equals_the_tf1_rule(graph):
    grads, lrs = gradients(SHAPES), learning_rates()
    np.testing.assert_allclose(lrs, [0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025],
                               rtol=1e-6)  # the rate changes along the run
    variables = [keras.Variable(v, name=f"v{i}") for i, v in enumerate(initial_values(SHAPES))]
    optimizer = RMSpropTF(schedule(), rho=RHO, momentum=MOMENTUM, epsilon=EPS)

    def step(gs):
        optimizer.apply_gradients(zip(gs, variables))
    step = tf.function(step) if graph else step

    expected = [list(tf1_rmsprop(v, [g[i] for g in grads], lrs))
                for i, v in enumerate(initial_values(SHAPES))]
    for t in range(STEPS):
        step([tf.constant(g) for g in grads[t]])
        for i, variable in enumerate(variables):
            var, rms, mom = expected[i][t]
            np.testing.assert_allclose(slot(optimizer, variable, "rms"), rms, rtol=1e-6)
            np.testing.assert_allclose(slot(optimizer, variable, "momentum"), mom, rtol=1e-6,
                                       atol=1e-7)
            np.testing.assert_allclose(variable.numpy(), var, rtol=1e-6, atol=1e-6)
    assert int(optimizer.iterations.numpy()) == STEPS


def test_the_transcription_tells_the_look_alike_rules_apart():
    """Each mistake the TF1 rule guards against moves the weights by far more than rtol."""
    grads, lrs = gradients([(50,)]), learning_rates()
    start = initial_values([(50,)])[0]
    official = list(tf1_rmsprop(start, [g[0] for g in grads], lrs))[-1][0]
    for wrong in ({"rms_init": 0.0}, {"eps_inside": False}, {"lr_in_momentum": False}):
        other = list(tf1_rmsprop(start, [g[0] for g in grads], lrs, **wrong))[-1][0]
        assert np.max(np.abs(other - official) / np.abs(official)) > 1e-3, wrong


def test_first_step_by_hand():
    """One step from rms = 1: var = 1 - lr * g / sqrt(rho + (1 - rho) g^2 + eps)."""
    variable = keras.Variable(np.ones(3, np.float32))
    g = np.array([0.5, -1e-3, 4.0], np.float32)
    RMSpropTF(0.1).apply_gradients([(tf.constant(g), variable)])
    by_hand = 1 - 0.1 * g.astype(np.float64) / np.sqrt(0.9 + 0.1 * g.astype(np.float64)**2 + 1e-3)
    np.testing.assert_allclose(variable.numpy(), by_hand, rtol=1e-7)
    np.testing.assert_allclose(variable.numpy()[0], 0.9480405, rtol=1e-7)


def test_equals_tf1_rmsprop_optimizer():
    """TF1's own optimizer (still in tf.compat.v1, runs eagerly), its lr fed per step."""
    grads, lrs = gradients(SHAPES), learning_rates()
    ours = [keras.Variable(v) for v in initial_values(SHAPES)]
    theirs = [tf.Variable(v) for v in initial_values(SHAPES)]
    optimizer = RMSpropTF(schedule(), rho=RHO, momentum=MOMENTUM, epsilon=EPS)
    lr = tf.Variable(0.0)
    tf1 = tf.compat.v1.train.RMSPropOptimizer(lr.read_value, decay=RHO, momentum=MOMENTUM,
                                              epsilon=EPS)
    for t in range(STEPS):
        lr.assign(lrs[t])
        optimizer.apply_gradients(zip([tf.constant(g) for g in grads[t]], ours))
        tf1.apply_gradients(zip([tf.constant(g) for g in grads[t]], theirs))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(slot(optimizer, a, "rms"),
                                       tf1.get_slot(b, "rms").numpy(), rtol=1e-6)


@pytest.mark.parametrize("g, ratio", [(1e-4, 30.0), (0.1, 21.24), (1.0, 3.148), (10.0, 1.044)])
def test_keras_rmsprop_first_step_is_larger(g, ratio):
    """Keras' zero-started accumulator: first step up to ~30x ours (small gradients)."""
    steps = []
    for optimizer in (RMSpropTF(0.01), keras.optimizers.RMSprop(0.01, rho=RHO,
                                                                momentum=MOMENTUM, epsilon=EPS)):
        variable = keras.Variable([0.0])
        optimizer.apply_gradients([(tf.constant([g]), variable)])
        steps.append(-float(variable.numpy()[0]))
    # sqrt((rho + (1 - rho) g^2 + eps) / ((1 - rho) g^2 + eps)), rho 0.9, eps 1e-3
    assert steps[1] / steps[0] == pytest.approx(ratio, rel=1e-3)


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(3)])


def batches(n, seed=2):
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(16, 6)).astype(np.float32), rng.integers(0, 3, 16))
            for _ in range(n)]


def make_train_step(model, optimizer):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def optimizer_state(optimizer):
    """Iteration, learning rate, then rms and momentum of each weight in the model's order."""
    return [(v.name, v.numpy()) for v in optimizer.variables]


@pytest.mark.parametrize("build_first", [True, False], ids=["built", "deferred"])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, build_first):
    """3 steps, save, restore into a fresh model + optimizer, 3 steps == 6 steps, bit for bit."""
    data = batches(6)
    model, optimizer = tiny_model(), RMSpropTF(schedule())
    step = make_train_step(model, optimizer)
    for x, y in data:
        step(x, y)

    first, first_opt = tiny_model(), RMSpropTF(schedule())
    step = make_train_step(first, first_opt)
    for x, y in data[:3]:
        step(x, y)
    path = tf.train.Checkpoint(model=first, optimizer=first_opt).save(str(tmp_path / "ckpt"))

    resumed, resumed_opt = tiny_model(seed=7), RMSpropTF(schedule())
    if build_first:  # the trainer builds first, then restores
        resumed_opt.build(resumed.trainable_variables)
    status = tf.train.Checkpoint(model=resumed, optimizer=resumed_opt).restore(path)
    step = make_train_step(resumed, resumed_opt)
    for x, y in data[3:]:
        step(x, y)
    status.assert_consumed()

    for a, b in zip(model.weights, resumed.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    state, resumed_state = optimizer_state(optimizer), optimizer_state(resumed_opt)
    assert len(state) == len(resumed_state) == 1 + 2 * len(model.trainable_weights)
    assert state[0] == ("iteration", 6) and resumed_state[0] == ("iteration", 6)
    for (name, value), (_, resumed_value) in zip(state, resumed_state):
        np.testing.assert_array_equal(value, resumed_value, err_msg=name)
