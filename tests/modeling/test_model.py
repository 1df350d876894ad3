"""The builder: shapes, features, stochastic depth, preprocessing, saving, precision, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import effnet_tf
from effnet_tf.modeling.normalization import MEAN_RGB, STDDEV_RGB
from effnet_tf.modeling.scaling import Scaling


def pixels(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_default_input_size_is_the_variant_resolution():
    assert effnet_tf.EfficientNet("b3", include_top=False).input_shape == (None, 300, 300, 3)
    model = effnet_tf.EfficientNet(2.5, classes=10)
    assert model.input_shape == (None, 320, 320, 3)
    assert model.name == "efficientnet_phi2_5"
    assert effnet_tf.EfficientNetB1().name == "efficientnetb1"


def test_top_outputs_probabilities(tiny):
    model = effnet_tf.EfficientNet(tiny, classes=7)
    probs = model.predict(pixels(3, 32), verbose=0)
    assert probs.shape == (3, 7)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("pooling,spatial", [(None, (2, 2)), ("avg", ()), ("max", ())])
def test_no_top_pooling(tiny, pooling, spatial):
    model = effnet_tf.EfficientNet(tiny, include_top=False, pooling=pooling,
                                   input_shape=(64, 64, 3))
    x = pixels(2, 64)
    out = model.predict(x, verbose=0)
    assert out.shape == (2, *spatial, tiny.head_filters)
    if pooling == "max":
        features = keras.Model(model.input, model.get_layer("top_activation").output)(x)
        np.testing.assert_allclose(out, np.max(features, axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_fully_convolutional_any_size(tiny):
    model = effnet_tf.EfficientNet(tiny, include_top=False, input_shape=(None, None, 3))
    for size, out in [(32, 1), (97, 4), (128, 4)]:
        assert model(pixels(1, size)).shape == (1, out, out, tiny.head_filters)


@pytest.mark.parametrize("variant", ["b0", "tiny"])
@pytest.mark.parametrize("size", [64, 96])
def test_feature_maps_have_documented_strides_and_channels(variant, size, tiny):
    scaling = tiny if variant == "tiny" else Scaling.variant(variant)
    model = effnet_tf.EfficientNet(scaling, features_only=True, input_shape=(size, size, 3))
    info = effnet_tf.feature_info(scaling)
    assert [f["stride"] for f in info] == [2, 4, 8, 16, 32]
    if variant == "b0":
        assert [f["channels"] for f in info] == [16, 24, 40, 112, 320]
    maps = model(pixels(1, size))
    assert [tuple(m.shape) for m in maps] == [
        (1, size // f["stride"], size // f["stride"], f["channels"]) for f in info]


def test_stochastic_depth_ramps_per_block_and_drops_whole_samples():
    model = effnet_tf.EfficientNet("b0", drop_connect_rate=0.2)
    # 16 blocks; the residual ones carry a drop layer with rate 0.2 * i / 16
    assert model.get_layer("block2b_drop").rate == pytest.approx(0.2 * 2 / 16)
    assert model.get_layer("block7a_project_bn")  # no residual, no drop layer
    assert model.get_layer("block6d_drop").rate == pytest.approx(0.2 * 14 / 16)
    drop = model.get_layer("block6d_drop")
    out = drop(tf.ones((256, 3, 3, 8)), training=True).numpy()
    per_sample = out.reshape(256, -1)
    keep = 1 - 0.2 * 14 / 16
    kept = per_sample[:, 0] > 0
    np.testing.assert_allclose(per_sample[kept], 1 / keep, rtol=1e-6)  # rescaled when kept
    np.testing.assert_array_equal(per_sample[~kept], 0.0)
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))  # whole samples
    assert 0.7 < kept.mean() < 0.95  # ~ keep = 0.825
    np.testing.assert_array_equal(drop(tf.ones((4, 3, 3, 8)), training=False), 1.0)


def test_inference_is_deterministic(tiny):
    model = effnet_tf.EfficientNet(tiny, drop_connect_rate=0.5)
    x = pixels(2, 32)
    np.testing.assert_array_equal(model(x, training=False), model(x, training=False))


def test_official_initializers():
    model = effnet_tf.EfficientNet("b0")
    top = model.get_layer("top_conv").kernel.numpy()
    assert np.std(top) == pytest.approx(np.sqrt(2 / 1280), rel=0.05)
    dense = model.get_layer("predictions").kernel.numpy()
    assert np.abs(dense).max() <= 1 / np.sqrt(1000)
    assert np.std(dense) == pytest.approx(1 / np.sqrt(3000), rel=0.05)


def test_preprocessing_is_the_imagenet_normalization(tiny):
    with_pre = effnet_tf.EfficientNet(tiny, classifier_activation=None)
    without = effnet_tf.EfficientNet(tiny, classifier_activation=None,
                                      include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    x = pixels(2, 32)
    normalized = (x - np.array(MEAN_RGB)) / np.array(STDDEV_RGB)
    np.testing.assert_allclose(with_pre(x), without(normalized.astype("float32")),
                               rtol=1e-4, atol=1e-5)
    mean_image = np.broadcast_to(np.array(MEAN_RGB, "float32"), (1, 32, 32, 3))
    np.testing.assert_allclose(with_pre.get_layer("normalization")(mean_image), 0, atol=1e-5)


def test_keras_file_round_trip_in_safe_mode(tiny, tmp_path):
    model = effnet_tf.EfficientNet(tiny, classes=5)
    path = tmp_path / "tiny.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = pixels(2, 32)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_saved_model_export(tiny, tmp_path):
    model = effnet_tf.EfficientNet(tiny, classes=5)
    model.export(str(tmp_path / "saved"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved"))
    x = pixels(2, 32)
    np.testing.assert_allclose(served.serve(x).numpy(), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_dtype_policy("float32")


@pytest.mark.parametrize("policy,dtype", [("mixed_float16", "float16"),
                                          ("mixed_bfloat16", "bfloat16")])
def test_mixed_precision_forward_and_backward(tiny, policy, dtype, restore_policy):
    keras.mixed_precision.set_dtype_policy(policy)
    model = effnet_tf.EfficientNet(tiny, classes=3)
    assert model.get_layer("stem_conv").compute_dtype == dtype
    assert model.get_layer("normalization").compute_dtype == "float32"
    for inputs in (pixels(4, 32), tf.cast(pixels(4, 32), dtype)):
        with tf.GradientTape() as tape:
            probs = model(inputs, training=True)
            loss = keras.losses.sparse_categorical_crossentropy(np.array([0, 1, 2, 0]), probs)
        grads = tape.gradient(loss, model.trainable_weights)
        assert probs.dtype == tf.float32
        assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)
        assert all(g.dtype == tf.float32 for g in grads)


@pytest.mark.parametrize("size", [64, 65, 97])
def test_explicit_padding_equals_same_padding(tiny, size):
    """Mixed-precision builds pad strided convolutions with ZeroPadding2D (faster there);
    the zeros must be exactly those of "same", at even and odd sizes."""
    same = effnet_tf.EfficientNet(tiny, input_shape=(size, size, 3))
    assert not [layer for layer in same.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    padded = effnet_tf.EfficientNet(tiny, input_shape=(size, size, 3), explicit_padding=True)
    pads = [layer.name for layer in padded.layers if isinstance(layer, keras.layers.ZeroPadding2D)]
    assert pads[:2] == ["stem_conv_pad", "block2a_dwconv_pad"] and len(pads) == 5
    assert [w.shape for w in padded.weights] == [w.shape for w in same.weights]
    padded.set_weights(same.get_weights())
    x = pixels(2, size)
    np.testing.assert_allclose(padded.predict(x, verbose=0), same.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)
    features = effnet_tf.EfficientNet(tiny, input_shape=(None, None, 3), include_top=False)
    assert not any(isinstance(layer, keras.layers.ZeroPadding2D) for layer in features.layers)


def test_mixed_precision_builds_pad_explicitly(tiny, restore_policy):
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    assert effnet_tf.EfficientNet(tiny).get_layer("block2a_dwconv_pad")
    keras.mixed_precision.set_dtype_policy("float32")
    with pytest.raises(ValueError):
        effnet_tf.EfficientNet(tiny).get_layer("block2a_dwconv_pad")


@pytest.mark.parametrize("kwargs,message", [
    ({"variant": "b9"}, "variant must be one of b0"),
    ({"variant": float("nan")}, "phi must be a finite number"),
    ({"input_shape": (31, 64, 3)}, r"input_shape height and width must be >= 32"),
    ({"input_shape": (64, 64)}, r"input_shape must be \(height, width, channels\)"),
    ({"input_shape": (64, 64, 1)}, "must have 3 \\(RGB\\) channels"),
    ({"classes": 0}, "classes must be an integer >= 1"),
    ({"pooling": "mean", "include_top": False}, "pooling must be one of"),
    ({"dropout": 1.5}, r"dropout must be in \[0, 1\)"),
    ({"drop_connect_rate": -0.1}, r"drop_connect_rate must be in \[0, 1\)"),
    ({"weights": "/no/such/file.h5"}, "weights must be None or the path of an existing"),
])
def test_bad_arguments_are_named(kwargs, message):
    kwargs.setdefault("variant", "b0")
    with pytest.raises(ValueError, match=message):
        effnet_tf.EfficientNet(kwargs.pop("variant"), **kwargs)


def test_flops_of_a_built_model_at_any_size(tiny):
    model = effnet_tf.EfficientNet("b0", include_top=False, input_shape=(None, None, 3))
    expected = effnet_tf.costs(Scaling.variant("b0"), image_size=160, include_top=False).flops
    assert effnet_tf.flops(model, image_size=160) == expected
    with pytest.raises(ValueError, match="pass image_size to count FLOPs"):
        effnet_tf.flops(model)


def test_summary_command_prints_the_table():
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "effnet_tf.summary", "--variants=b0,b7",
                          "--phi=2.5"], capture_output=True, text=True, check=True).stdout
    assert "| b0 | table | - | 1 | 1 | 224 | 16 | 5.33M | 0.386B |" in out
    assert "| b7 | table | - | 2 | 3.1 | 600 | 55 | 66.66M | 37.746B |" in out
    assert "| phi2.5 | formula | 2.5 | 1.2691 | 1.5774 | 320 | 29 |" in out
