"""TFLite conversion of Keras 3 EfficientNets: float32, float16, int8, and the interpreter."""

import keras
import numpy as np
import pytest

import effnet_tf
from effnet_tf.deploy import tflite
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing import search
from effnet_tf.sizing.latency import tflite_latency
from pipelines.synthetic import colour_batches

TINY = Scaling("tiny", 0.25, 0.25, 32, 0.2)


def op_names(model) -> set[str]:
    """The TFLite ops a model uses (after delegation), e.g. to check for Flex ops."""
    return {op["op_name"] for op in tflite.interpreter(model)._get_ops_details()}


def input_shape(model) -> tuple:
    """(height, width, channels) of a TFLite model's input."""
    return tuple(int(d) for d in tflite.interpreter(model).get_input_details()[0]["shape"][1:])


@pytest.fixture(scope="module")
def trained():
    """The tiny model trained on colour classes: confident, so argmax agreement means
    something (an untrained model's near-uniform outputs flip under any rounding)."""
    keras.utils.set_random_seed(0)
    model = effnet_tf.EfficientNet(TINY, classes=4)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  jit_compile=False)
    train = colour_batches(32, True, classes=4, examples=256)
    model.fit(train, epochs=4, verbose=0)
    search.recalibrate_batch_norm(model, train)
    images = np.concatenate([x for x, _ in colour_batches(32, False, classes=4, examples=64)])
    return model, images


@pytest.fixture(scope="module")
def float32(trained):
    return tflite.convert(trained[0])


def test_float32_equals_keras_with_builtin_ops_only(trained, float32):
    model, images = trained
    expected = model.predict(images, verbose=0)
    np.testing.assert_allclose(tflite.predict(float32, images, batch_size=24), expected,
                               atol=1e-5)
    ops = op_names(float32)
    assert "LOGISTIC" in ops and "MUL" in ops  # swish = x * sigmoid(x), SE gates: sigmoid
    assert not any(op.startswith("FLEX") or op == "CUSTOM" for op in ops)
    assert input_shape(float32) == (32, 32, 3)


def test_float16_halves_the_weights(trained, float32):
    model, images = trained
    half = tflite.convert(model, quantization="float16")
    assert 0.4 < len(half) / len(float32) < 0.7
    got, expected = tflite.predict(half, images), model.predict(images, verbose=0)
    # float16 weights keep ~3 significant digits: probabilities move by up to ~0.01 (0.0106
    # measured once), the predicted classes stay
    np.testing.assert_allclose(got, expected, atol=3e-2)
    assert np.mean(got.argmax(1) == expected.argmax(1)) >= 0.98


@pytest.mark.parametrize("integer_io", [False, True])
def test_int8_agrees_with_the_float_model(trained, float32, integer_io, tmp_path):
    model, images = trained
    calibration = colour_batches(32, True, classes=4, examples=64, seed=1)
    int8 = tflite.convert(model, quantization="int8", representative_data=calibration,
                          integer_io=integer_io)
    assert len(int8) < 0.5 * len(float32)
    path = tmp_path / "model.tflite"
    path.write_bytes(int8)
    details = tflite.interpreter(str(path)).get_input_details()[0]
    assert details["dtype"] == (np.uint8 if integer_io else np.float32)
    expected = model.predict(images, verbose=0)
    got = tflite.predict(str(path), images)
    assert got.shape == expected.shape == (64, 4)
    agreement = np.mean(got.argmax(1) == expected.argmax(1))
    assert agreement >= 0.875, agreement  # 56 of 64 (about 0.95 measured)
    assert np.abs(got - expected).mean() < 0.05


def test_conversion_errors(trained):
    model = trained[0]
    with pytest.raises(ValueError, match="quantization must be one of"):
        tflite.convert(model, quantization="int4")
    with pytest.raises(ValueError, match="needs representative_data"):
        tflite.convert(model, quantization="int8")
    with pytest.raises(ValueError, match="integer_io needs"):
        tflite.convert(model, integer_io=True)


def test_latency_times_the_interpreter(float32):
    timing = tflite_latency(float32, batch_size=3, min_runs=4, max_runs=4, min_seconds=0)
    assert timing.runs == 4 and timing.batch_size == 3
    assert 0 < timing.min_ms <= timing.median_ms <= timing.p90_ms


@pytest.mark.slow  # a conversion of its own (~15 s on 2 shared cores)
def test_lite_int8_has_no_sigmoid_and_quantizes_weights_per_channel():
    """What makes Lite quantize well is kept: no LOGISTIC (no swish, no squeeze-excite gate;
    ReLU6 fuses into the convolutions), and every convolution's weights with one scale per
    output channel (TFLite's default for full-integer models)."""
    model = effnet_tf.EfficientNet(Scaling("tiny_lite", 0.25, 0.25, 32, 0.2, lite=True),
                                   classes=4)
    calibration = colour_batches(32, False, classes=4, examples=16)
    int8 = tflite.convert(model, quantization="int8", representative_data=calibration)
    assert "LOGISTIC" not in op_names(int8)
    convs = [layer for layer in model.layers
             if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    per_channel = []
    for tensor in tflite.interpreter(int8).get_tensor_details():
        scales = tensor["quantization_parameters"]["scales"]
        if tensor["dtype"] == np.int8 and len(tensor["shape"]) == 4 and len(scales) > 1:
            axis = tensor["quantization_parameters"]["quantized_dimension"]
            assert len(scales) == tensor["shape"][axis]
            per_channel.append(tensor["shape"][axis])
    assert sorted(per_channel) == sorted(layer.kernel.shape[-1] if isinstance(
        layer, keras.layers.Conv2D) else layer.kernel.shape[2] for layer in convs)
