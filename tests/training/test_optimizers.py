"""RMSpropTF against the TF1 update rule: a NumPy transcription of TensorFlow's
``training/rmsprop.py`` + ``ApplyRMSProp`` kernel, TF1's ``RMSPropOptimizer`` itself, Keras'
``RMSprop`` (first-step sizes), checkpoint/resume, serialization, ``fit``, loss scaling and
MirroredStrategy on two logical CPUs (in a subprocess: logical devices must be set before TF
starts)."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from effnet_tf.training.optimizers import RMSpropTF
from effnet_tf.training.recipe import WarmupDecay

RHO, MOMENTUM, EPS = 0.9, 0.9, 1e-3
STEPS = 10
# Gradient scales cycle from tiny to large: the accumulator's start (1.0) matters most for
# small gradients, large ones dominate it after a step.
SCALES = [1e-4, 1e-2, 1.0, 10.0, 0.3]


def schedule():
    """Warm-up then halving every 2 steps: the rate changes 5 times in 10 steps."""
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
            loss = optimizer.scale_loss(loss_fn(y, model(x, training=True)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss
    return train_step


def optimizer_state(optimizer):
    """Iteration, learning rate, then rms and momentum of each weight in the model's order."""
    return [(v.name, v.numpy()) for v in optimizer.variables]


def new_optimizer(loss_scaled):
    optimizer = RMSpropTF(schedule())
    return keras.optimizers.LossScaleOptimizer(optimizer) if loss_scaled else optimizer


@pytest.mark.parametrize("build_first, loss_scaled", [(True, False), (False, False),
                                                      (True, True)],
                         ids=["built", "deferred", "built_loss_scaled"])
def test_checkpoint_resume_equals_uninterrupted(tmp_path, build_first, loss_scaled):
    """3 steps, save, restore into a fresh model + optimizer, 3 steps == 6 steps, bit for bit."""
    data = batches(6)
    model, optimizer = tiny_model(), new_optimizer(loss_scaled)
    step = make_train_step(model, optimizer)
    for x, y in data:
        step(x, y)

    first, first_opt = tiny_model(), new_optimizer(loss_scaled)
    step = make_train_step(first, first_opt)
    for x, y in data[:3]:
        step(x, y)
    path = tf.train.Checkpoint(model=first, optimizer=first_opt).save(str(tmp_path / "ckpt"))

    resumed, resumed_opt = tiny_model(seed=7), new_optimizer(loss_scaled)
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
    slots = 2 * len(model.trainable_weights)
    extra = 4 if loss_scaled else 0  # the wrapper's own iteration, lr, step counter, scale
    assert len(state) == len(resumed_state) == 1 + slots + extra
    assert int(optimizer.iterations.numpy()) == int(resumed_opt.iterations.numpy()) == 6
    for (name, value), (_, resumed_value) in zip(state, resumed_state):
        np.testing.assert_array_equal(value, resumed_value, err_msg=name)


def test_config_round_trip_with_a_schedule():
    optimizer = RMSpropTF(schedule(), rho=0.8, momentum=0.5, epsilon=1e-4, clipnorm=2.0)
    config = keras.optimizers.serialize(optimizer)
    assert config["registered_name"] == "effnet_tf>RMSpropTF"
    again = keras.optimizers.deserialize(config)
    assert isinstance(again, RMSpropTF)
    assert (again.rho, again.momentum, again.epsilon, again.clipnorm) == (0.8, 0.5, 1e-4, 2.0)
    assert float(again.learning_rate) == pytest.approx(0.025)  # the schedule's first rate
    assert again.get_config() == optimizer.get_config()


@pytest.mark.parametrize("kwargs, message", [
    ({"rho": 1.0}, "rho must be in [0, 1), got 1.0"),
    ({"momentum": -0.1}, "momentum must be in [0, 1), got -0.1"),
    ({"epsilon": 0.0}, "epsilon must be > 0, got 0.0"),
])
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        RMSpropTF(0.1, **kwargs)


def test_compile_fit_save_load(tmp_path):
    """``fit`` lowers the loss; a saved .keras model reloads the optimizer and its slots and
    then continues exactly like the original."""
    (x, y), = batches(1)
    model = tiny_model()
    model.compile(optimizer=RMSpropTF(schedule()),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.optimizer, RMSpropTF)
    assert int(loaded.optimizer.iterations.numpy()) == 2
    for (name, a), (_, b) in zip(optimizer_state(model.optimizer),
                                 optimizer_state(loaded.optimizer)):
        np.testing.assert_array_equal(a, b, err_msg=name)
    for m in (model, loaded):
        m.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_loss_scale_optimizer_unscales_and_skips_overflow():
    """Under mixed_float16 the trainer wraps it in LossScaleOptimizer: scaled gradients give
    the TF1 steps, and an overflowing step leaves weights and accumulators untouched."""
    shape, lrs = (5,), [0.05] * 4
    grads = [g[0] for g in gradients([shape], steps=4)]
    variable = keras.Variable(initial_values([shape])[0])
    inner = RMSpropTF(0.05)
    optimizer = keras.optimizers.LossScaleOptimizer(inner)
    optimizer.build([variable])  # as the trainer does

    @tf.function
    def step(g):
        optimizer.apply_gradients([(g * optimizer.dynamic_scale, variable)])

    expected = list(tf1_rmsprop(initial_values([shape])[0], grads, lrs))
    for t in range(2):
        step(tf.constant(grads[t]))
    np.testing.assert_allclose(variable.numpy(), expected[1][0], rtol=1e-6, atol=1e-6)
    before, rms_before = variable.numpy(), slot(inner, variable, "rms")
    scale = float(optimizer.dynamic_scale.numpy())
    step(tf.constant([np.inf, 1, 1, 1, 1], tf.float32))
    np.testing.assert_array_equal(variable.numpy(), before)
    np.testing.assert_array_equal(slot(inner, variable, "rms"), rms_before)
    assert float(optimizer.dynamic_scale.numpy()) == scale / 2
    for t in range(2, 4):
        step(tf.constant(grads[t]))
    np.testing.assert_allclose(variable.numpy(), expected[3][0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(slot(inner, variable, "rms"), expected[3][1], rtol=1e-6)


def test_mirrored_on_two_cpus_equals_one_device(tmp_path):
    out = tmp_path / "results.npz"
    subprocess.run([sys.executable, os.path.abspath(__file__), str(out)], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), timeout=300)
    results = np.load(out)
    assert int(results["replicas"]) == 2
    names = [k[len("one/"):] for k in results if k.startswith("one/")]
    assert len(names) == 2 * 4  # 4 weights and their rms slots
    for name in names:
        np.testing.assert_allclose(results[f"mirrored/{name}"], results[f"one/{name}"],
                                   rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(results[f"mirrored/{name}"],
                                      results[f"mirrored_replica1/{name}"], err_msg=name)


def train_distributed(strategy, steps=4, global_batch=16):
    """Steps of a custom loop, the trainer's way: per-replica loss over the global batch."""
    with strategy.scope():
        model, optimizer = tiny_model(), RMSpropTF(schedule())
        optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="none")
    data = batches(steps)
    dataset = tf.data.Dataset.from_tensor_slices(
        (np.concatenate([x for x, _ in data]), np.concatenate([y for _, y in data])))
    dataset = strategy.experimental_distribute_dataset(dataset.batch(global_batch))

    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(loss_fn(y, model(x, training=True)),
                                              global_batch_size=global_batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    @tf.function
    def step(batch):
        strategy.run(replica_step, args=batch)

    for batch in dataset:
        step(batch)
    rms = [v for v in optimizer.variables if v.name.endswith("_rms")]
    tracked = list(model.trainable_variables) + rms
    names = [f"weight_{i}" for i in range(len(rms))] + [f"rms_{i}" for i in range(len(rms))]
    replicas = [[np.asarray(r) for r in strategy.experimental_local_results(v.value)]
                for v in tracked]
    return names, replicas


def main(out):
    """Subprocess of the mirrored test: two logical CPUs exist only if set before TF starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    results = {}
    names, one = train_distributed(tf.distribute.get_strategy())
    results.update({f"one/{n}": r[0] for n, r in zip(names, one)})
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    names, two = train_distributed(mirrored)
    results.update({f"mirrored/{n}": r[0] for n, r in zip(names, two)})
    results.update({f"mirrored_replica1/{n}": r[1] for n, r in zip(names, two)})
    np.savez(out, replicas=mirrored.num_replicas_in_sync, **results)


if __name__ == "__main__":
    main(sys.argv[1])
