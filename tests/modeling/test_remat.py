"""``remat``: whole MBConv blocks recomputed in the backward pass, with the very same
gradients, state updates, layer names, weights, feature maps and saved files; the widest
conv + batch norm + swish triples with a sliced backward pass, as accurate as Keras'."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import effnet_tf
from effnet_tf.modeling import remat
from effnet_tf.modeling import weight_loading as weights_lib
from effnet_tf.modeling.scaling import Scaling

# Quarter width, full depth: the residual blocks of every stage, with stochastic depth.
SMALL = Scaling("small", 0.25, 1.0, 32, 0.2)
# One block a stage: where stochastic depth does not matter, faster.
TINY = Scaling("tiny", 0.25, 0.25, 32, 0.2)


def pixels(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def twins(scaling, remat, **kwargs):
    """A plain model and a ``remat`` one with equal weights and equal state (BN statistics,
    dropout seeds), so their random masks are the same."""
    plain = effnet_tf.EfficientNet(scaling, **kwargs)
    other = effnet_tf.EfficientNet(scaling, remat=remat, **kwargs)
    for a, b in zip(plain.variables, other.variables):
        b.assign(a)
    return plain, other


_GRAPH_STEPS = {}  # id(model) -> (model, its traced step)


def loss_and_grads(model, x, labels, graph=False):
    """Loss and gradients of one training step; ``graph``: as ``fit`` runs it, one
    ``tf.function`` per model, traced once without knowing the batch size."""
    def step(x, labels):
        with tf.GradientTape() as tape:
            probs = model(x, training=True)
            loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
        return loss, tape.gradient(loss, model.trainable_weights)

    if graph:
        if id(model) not in _GRAPH_STEPS:
            _GRAPH_STEPS[id(model)] = model, tf.function(step, input_signature=[
                tf.TensorSpec((None,) + x.shape[1:], "float32"),
                tf.TensorSpec((None,), "int64")])
        step = _GRAPH_STEPS[id(model)][1]
    loss, grads = step(tf.constant(x), tf.constant(labels, "int64"))
    return loss.numpy(), [g.numpy() for g in grads]


def assert_same_training_step(plain, other, x, labels):
    loss_a, grads_a = loss_and_grads(plain, x, labels)
    loss_b, grads_b = loss_and_grads(other, x, labels)
    assert loss_b == pytest.approx(loss_a, rel=1e-6)
    assert len(grads_a) == len(grads_b) == len(plain.trainable_weights)
    for weight, ga, gb in zip(plain.trainable_weights, grads_a, grads_b):
        np.testing.assert_allclose(gb, ga, rtol=1e-5, atol=1e-7 * np.abs(ga).max(),
                                   err_msg=weight.path)
    # Moving statistics updated once (not again by the recomputation), seeds advanced alike.
    for a, b in zip(plain.non_trainable_variables, other.non_trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, err_msg=a.path)


@pytest.mark.parametrize("remat", ["all", "high_res"])
def test_gradients_equal_with_stochastic_depth(remat):
    plain, other = twins(SMALL, remat, classes=4, drop_connect_rate=0.5, dropout=0.5)
    assert other.get_layer("block2b_drop").rate > 0  # stochastic depth is on
    x = pixels(8, 32)
    labels = np.arange(8) % 4
    assert_same_training_step(plain, other, x, labels)
    # Twice: the second step starts from the advanced seeds and updated statistics.
    assert_same_training_step(plain, other, x, labels)


def test_recomputation_replays_the_forward_dropout_masks():
    """Dropping the StatelessScope (plain ``keras.remat``) would draw new masks in the
    backward pass; this checks the masks matter here, so the test above can fail."""
    plain, other = twins(SMALL, "all", classes=4, drop_connect_rate=0.5)
    x, labels = pixels(8, 32), np.arange(8) % 4
    _, grads = loss_and_grads(plain, x, labels)
    _, grads_next_masks = loss_and_grads(plain, x, labels)  # same weights, next seeds
    assert max(np.abs(a - b).max() for a, b in zip(grads, grads_next_masks)) > 1e-3


def test_b0_gradients_equal_at_64_px():
    plain, other = twins("b0", "all", classes=10, input_shape=(64, 64, 3))
    assert_same_training_step(plain, other, pixels(4, 64), np.array([0, 3, 5, 9]))


def test_graph_mode_gradients_and_state_equal():
    """As ``fit`` runs it: one ``tf.function`` step (graph rewrites may reorder float sums)."""
    plain, other = twins(SMALL, "all", classes=4, drop_connect_rate=0.5)
    x, labels = tf.constant(pixels(8, 32)), tf.constant(np.arange(8) % 4)
    results = []
    for model in (plain, other):
        @tf.function
        def step(model=model):
            with tf.GradientTape() as tape:
                probs = model(x, training=True)
                loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(labels, probs))
            return loss, tape.gradient(loss, model.trainable_weights)

        loss, grads = step()
        results.append((loss.numpy(), [g.numpy() for g in grads]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    for weight, ga, gb in zip(plain.trainable_weights, grads_a, grads_b):
        np.testing.assert_allclose(gb, ga, rtol=1e-4, atol=1e-5 * np.abs(ga).max(),
                                   err_msg=weight.path)
    for a, b in zip(plain.non_trainable_variables, other.non_trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


@pytest.fixture
def fuse_everywhere(monkeypatch):
    """Every conv + batch norm + swish of the recomputed blocks and the stem gets the sliced
    backward pass (``fused_backward.conv_batch_norm_swish``), not only the widest ones of large
    inputs, so the small test models exercise it."""
    monkeypatch.setattr(remat, "FUSE_MIN_ELEMENTS", 0)
    monkeypatch.setattr(remat, "FUSE_MIN_DEPTHWISE_ELEMENTS", 0)


def fused_sites(model):
    return sum(len(s.fused) for s in model._remat_plan.segments)


def float64_gradients(scaling, source, x, labels, frozen=(), **kwargs):
    """``source``'s loss and gradients computed in float64: the reference against which two
    float32 computations are judged (they round differently, neither is exact)."""
    policy = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("float64")
    try:
        reference = effnet_tf.EfficientNet(scaling, **kwargs)
    finally:
        keras.mixed_precision.set_dtype_policy(policy)
    assert reference.get_layer("block2a_expand_conv").compute_dtype == "float64"
    for name in frozen:
        reference.get_layer(name).trainable = False
    for a, b in zip(source.variables, reference.variables):
        b.assign(np.asarray(a.numpy()).astype(b.dtype))
    return loss_and_grads(reference, x, labels)


def assert_as_accurate(scaling, plain, other, x, labels, graph=False, frozen=(), **kwargs):
    """``other``'s training step is plain's up to float32 rounding: each gradient is as close
    to the float64 one as plain's (within 2x, or 1e-5 of its size: a wrong gradient is off
    by about its size), and the batch norm statistics are plain's. A gradient that is zero in
    exact arithmetic (a batch norm's beta feeding another batch norm through a convolution)
    is rounding noise in both: errors are judged from 1e-5 of all gradients' norm up."""
    loss_64, grads_64 = float64_gradients(scaling, plain, x, labels, frozen, **kwargs)
    loss_a, grads_a = loss_and_grads(plain, x, labels, graph)
    loss_b, grads_b = loss_and_grads(other, x, labels, graph)
    # In a graph TensorFlow's rewrites (oneDNN fusions) round the two forward passes
    # differently; a wrong forward pass is off by far more.
    assert loss_b == pytest.approx(loss_a, rel=1e-4 if graph else 1e-6)
    assert loss_a == pytest.approx(loss_64, rel=1e-2)
    floor = 1e-5 * np.linalg.norm(np.concatenate([g.ravel() for g in grads_64]))
    for weight, g64, ga, gb in zip(plain.trainable_weights, grads_64, grads_a, grads_b):
        size = np.linalg.norm(g64)
        error_a, error_b = np.linalg.norm(ga - g64), np.linalg.norm(gb - g64)
        # (in a graph, 1e-3 of its size: there the rewrites round each model otherwise)
        slack = (1e-3 if graph else 1e-5) * size
        assert error_b <= 2 * max(error_a, floor) + slack, (weight.path, error_a, error_b, size)
    for a, b in zip(plain.non_trainable_variables, other.non_trainable_variables):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


@pytest.mark.parametrize("batch", [  # 4 slices: even, uneven; fewer images (also in a graph
    8, 6, pytest.param(3, marks=pytest.mark.slow)])  # below: slow here)
def test_fused_backward_as_accurate_as_keras(fuse_everywhere, batch):
    kwargs = dict(classes=4, drop_connect_rate=0.0, dropout=0.0)
    plain, other = twins(SMALL, "all", **kwargs)
    # the stem, the expansions and the depthwise convolutions
    assert fused_sites(other) == 1 + 2 * 16 - 1
    x, labels = pixels(batch, 32), np.arange(batch) % 4
    assert_as_accurate(SMALL, plain, other, x, labels, **kwargs)


def test_fused_backward_in_a_graph(fuse_everywhere):
    """As ``fit`` runs it: one ``tf.function`` step per model, traced once without the batch
    size, then given 8 images (sliced) and 3 (too few to slice), as a last partial batch."""
    kwargs = dict(classes=4, drop_connect_rate=0.0, dropout=0.0)
    plain, other = twins(TINY, "all", **kwargs)
    for batch in (8, 3):
        x, labels = pixels(batch, 32, seed=batch), np.arange(batch) % 4
        assert_as_accurate(TINY, plain, other, x, labels, graph=True, **kwargs)
    # one trace each served both batch sizes
    assert [_GRAPH_STEPS[id(m)][1].experimental_get_tracing_count() for m in (plain, other)] == [
        1, 1]


def test_fused_backward_with_frozen_layers(fuse_everywhere):
    """Frozen batch norms (fine-tuning) use their moving statistics, frozen convolutions have
    no gradient: Keras' own path there, the fused one elsewhere."""
    kwargs = dict(classes=4, drop_connect_rate=0.0, dropout=0.0)
    plain, other = twins(TINY, "all", **kwargs)
    frozen = ("block2a_expand_bn", "block3a_expand_conv")
    for model in (plain, other):
        for name in frozen:
            model.get_layer(name).trainable = False
    assert_as_accurate(TINY, plain, other, pixels(4, 32), np.arange(4), frozen=frozen,
                       **kwargs)


def test_mixed_bfloat16_gradients_equal(fuse_everywhere):
    """In bfloat16 nothing is fused (the sliced pass would round elsewhere): the gradients
    are automatic differentiation's, to the bit."""
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        plain, other = twins(SMALL, "all", classes=4)
        assert other.get_layer("block2a_dwconv").compute_dtype == "bfloat16"
        assert fused_sites(other) == 0
        assert_same_training_step(plain, other, pixels(4, 32), np.arange(4))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_which_blocks_are_recomputed():
    assert effnet_tf.EfficientNet("b0", remat="high_res").remat_blocks == [
        "block1a_", "block2a_", "block2b_", "block3a_", "block3b_"]
    model = effnet_tf.EfficientNet("b0", remat=True)
    assert model.remat == "all"
    assert len(model.remat_blocks) == 16
    # The convolutions whose batch norm and swish get the sliced backward pass: B0's widest
    # (at 224 px); none at small inputs. The stem's is the only change there: not recomputed.
    fused = [s.layers[i].name for s in model._remat_plan.segments for i in sorted(s.fused)]
    assert fused == ["stem_conv", "block2a_expand_conv", "block2b_expand_conv",
                     "block3a_expand_conv"]
    assert fused_sites(effnet_tf.EfficientNet("b0", input_shape=(64, 64, 3), remat=True)) == 0
    assert not isinstance(effnet_tf.EfficientNet(TINY, remat=False),
                          effnet_tf.modeling.remat.EfficientNetModel)


def test_layer_names_and_weights_load_by_name(tmp_path):
    plain = effnet_tf.EfficientNet(TINY, classes=5)
    other = effnet_tf.EfficientNet(TINY, classes=5, remat="all")
    assert [layer.name for layer in other.layers] == [layer.name for layer in plain.layers]
    assert other.get_layer("block2a_dwconv").kernel.shape == \
        plain.get_layer("block2a_dwconv").kernel.shape
    path = tmp_path / "plain.h5"
    weights_lib.save_h5(plain, path)
    from_file = effnet_tf.EfficientNet(TINY, classes=5, remat="all", weights=str(path))
    loaded = weights_lib.load(other, plain)
    assert "block2a_dwconv" in loaded
    x = pixels(2, 32)
    expected = plain.predict(x, verbose=0)
    np.testing.assert_array_equal(other.predict(x, verbose=0), expected)
    np.testing.assert_array_equal(from_file.predict(x, verbose=0), expected)


def test_feature_maps_and_their_gradients():
    plain, other = twins(TINY, "high_res", features_only=True, input_shape=(64, 64, 3))
    x = tf.constant(pixels(2, 64))
    results = []
    for model in (plain, other):
        with tf.GradientTape() as tape:
            maps = model(x, training=True)
            total = sum(keras.ops.mean(m ** 2) for m in maps)
        results.append(([m.numpy() for m in maps],
                        tape.gradient(total, model.get_layer("block2a_expand_conv").kernel)))
    (maps_a, grad_a), (maps_b, grad_b) = results
    assert [m.shape for m in maps_b] == [(2, 32, 32, 8), (2, 16, 16, 8), (2, 8, 8, 16),
                                         (2, 4, 4, 32), (2, 2, 2, 80)]
    for a, b in zip(maps_a, maps_b):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grad_b, grad_a, rtol=1e-5, atol=1e-7)


def test_keras_file_round_trip_keeps_remat(tmp_path):
    model = effnet_tf.EfficientNet(TINY, classes=5, remat="high_res")
    path = tmp_path / "small.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert isinstance(loaded, effnet_tf.modeling.remat.EfficientNetModel)
    assert loaded.remat == "high_res"
    assert loaded.remat_blocks == model.remat_blocks
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    x = pixels(2, 32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    for a, b in zip(model.variables, loaded.variables):
        b.assign(a)  # the same seeds too, for the training-mode call
    np.testing.assert_allclose(loaded(x, training=True), model(x, training=True), rtol=1e-6)


@pytest.mark.parametrize("remat", ["yes", "stages", 1])
def test_bad_remat_is_refused(remat):
    with pytest.raises(ValueError, match=r"remat must be one of \(False, 'all', 'high_res'\)"):
        effnet_tf.EfficientNet(TINY, remat=remat)
