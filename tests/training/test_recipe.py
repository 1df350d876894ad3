"""The official recipe's pieces: learning-rate schedule, weight decay, moving average."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import effnet_tf
from effnet_tf.training import recipe, runtime
from effnet_tf.training.config import get_config


def test_learning_rate_scales_with_batch_and_follows_the_official_schedule():
    c = get_config()  # 0.016 per 256, batch 4096, 5 warm-up epochs, x0.97 every 2.4 epochs
    schedule = recipe.learning_rate_schedule(c, steps_per_epoch=100)
    peak = 0.016 * 4096 / 256
    assert peak == pytest.approx(0.256)
    assert float(schedule(0)) == pytest.approx(peak / 500)
    assert float(schedule(249)) == pytest.approx(peak / 2)
    assert float(schedule(500)) == pytest.approx(peak)
    assert float(schedule(500 + 239)) == pytest.approx(peak)  # staircase: still the first step
    assert float(schedule(500 + 240)) == pytest.approx(peak * 0.97)
    assert float(schedule(500 + 2400)) == pytest.approx(peak * 0.97**10, rel=1e-5)


def test_cosine_schedule_ends_at_zero():
    c = get_config()
    c.lr_schedule, c.warmup_epochs, c.epochs = "cosine", 1, 10
    schedule = recipe.learning_rate_schedule(c, steps_per_epoch=10)
    assert float(schedule(10)) == pytest.approx(0.256)
    assert float(schedule(55)) == pytest.approx(0.128, rel=1e-5)
    assert float(schedule(100)) == pytest.approx(0.0, abs=1e-7)


def test_schedule_serializes():
    s = recipe.WarmupDecay(0.1, 10, 100, "exponential", 0.97, 24)
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s)
                                                 ).get_config() == s.get_config()


def test_optimizer_is_the_official_rmsprop():
    from effnet_tf.training.optimizers import RMSpropTF

    opt = recipe.create_optimizer(get_config(), steps_per_epoch=10)
    assert isinstance(opt, RMSpropTF)  # TF1's: the accumulator starts at 1
    assert (opt.rho, opt.momentum, opt.epsilon) == (0.9, 0.9, 1e-3)
    config = get_config()
    config.optimizer = "rmsprop"  # Keras' own stays available
    assert isinstance(recipe.create_optimizer(config, 10), keras.optimizers.RMSprop)


def test_weight_decay_skips_batch_norm(tiny):
    model = effnet_tf.EfficientNet(tiny, classes=3)
    expected = sum(0.5 * float(np.sum(np.square(w.numpy())))
                   for layer in model.layers if not isinstance(layer, keras.layers.BatchNormalization)
                   for w in layer.trainable_weights)
    assert float(recipe.l2_loss(model)) == pytest.approx(expected, rel=1e-5)
    bn_gamma = sum(float(np.sum(np.square(layer.gamma.numpy()))) for layer in model.layers
                   if isinstance(layer, keras.layers.BatchNormalization))
    all_weights = 0.5 * sum(float(np.sum(np.square(w.numpy()))) for w in model.trainable_weights)
    assert all_weights - float(recipe.l2_loss(model)) >= 0.5 * bn_gamma * 0.99


def test_label_smoothing_loss():
    logits = tf.constant([[2.0, 0.0, -1.0]])
    loss = recipe.classification_loss(tf.constant([0]), logits, 3, 0.1)
    target = np.array([0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3])
    expected = -np.sum(target * tf.nn.log_softmax(logits).numpy()[0])
    assert float(loss[0]) == pytest.approx(expected, rel=1e-5)


def test_moving_average_covers_batch_norm_statistics_and_swaps(tiny):
    model = effnet_tf.EfficientNet(tiny, classes=3)
    ema = recipe.ExponentialMovingAverage(model, decay=0.5)
    bn = model.get_layer("stem_bn")
    start = bn.moving_mean.numpy().copy()
    assert any(w is bn.moving_mean.value for w in ema._weights)
    bn.moving_mean.assign(start + 1.0)
    ema.update()  # first update: decay min(0.5, 1/10) = 0.1
    bn.moving_mean.assign(start + 3.0)
    ema.update()  # decay min(0.5, 2/11)
    d2 = 2 / 11
    expected = d2 * (start + 0.9) + (1 - d2) * (start + 3.0)
    ema.swap()
    np.testing.assert_allclose(bn.moving_mean.numpy(), expected, rtol=1e-6)
    ema.swap()
    np.testing.assert_allclose(bn.moving_mean.numpy(), start + 3.0, rtol=1e-6)


@pytest.mark.parametrize("kind,precision,jit", [("cpu", "float32", False),
                                                ("gpu", "mixed_float16", True),
                                                ("tpu", "mixed_bfloat16", True)])
def test_auto_choices_by_device(kind, precision, jit):
    assert runtime.resolve_precision("auto", kind) == precision
    assert runtime.resolve_jit("auto", kind) is jit
    assert runtime.resolve_jit("false", "tpu") is False


@pytest.mark.parametrize("call,message", [
    (lambda: runtime.resolve_precision("half", "cpu"), "mixed_precision must be one of"),
    (lambda: runtime.resolve_jit("yes", "cpu"), "jit_compile must be auto, true or false"),
    (lambda: runtime.make_strategy("gpus"), "strategy must be one of"),
    (lambda: recipe.WarmupDecay(1, 1, 1, "linear"), "lr_schedule must be exponential"),
])
def test_bad_runtime_choices(call, message):
    with pytest.raises(ValueError, match=message):
        call()
