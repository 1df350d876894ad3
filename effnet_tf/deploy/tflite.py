"""TFLite conversion (float32, float16, int8) and interpreter helpers for phones and edge boards.

    tflite_bytes = convert(model, quantization="int8", representative_data=images)
    probs = predict(tflite_bytes, images)            # float outputs whatever the I/O type

Conversion goes through ``model.export`` (a SavedModel) and ``TFLiteConverter.from_saved_model``,
the path TF 2.21 supports for Keras 3 models. Swish becomes LOGISTIC + MUL and the input
normalization MUL + ADD: only TFLite builtin ops, which XNNPACK runs.

The interpreter comes from ``ai_edge_litert`` or ``tflite_runtime`` when installed (what a
device has) and from TensorFlow otherwise, so ``predict`` and ``Runner`` (which
``sizing.latency.tflite_latency`` times) also run on a board without TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np

QUANTIZATIONS = ("float32", "float16", "int8")
CALIBRATION_IMAGES = 100


def convert(
    model,
    *,
    quantization: str = "float32",
    representative_data=None,
    integer_io: bool = False,
    calibration_images: int = CALIBRATION_IMAGES,
) -> bytes:
    """A Keras model as a TFLite flatbuffer with a dynamic batch dimension.

    Args:
      model: a Keras model (inputs RGB floats in [0, 255], as ``EfficientNet`` builds).
      quantization: ``float32``; ``float16`` (weights in float16, half the size); ``int8``
        (weights and activations, calibrated on ``representative_data``).
      representative_data: for int8, an iterable or ``tf.data.Dataset`` of image batches in
        [0, 255] (or of ``(images, labels)``), e.g. the validation pipeline; the first
        ``calibration_images`` images are used.
      integer_io: for int8, take uint8 pixels and return uint8 outputs (no float at the
        model's boundary, as camera pipelines and many NPUs want); ``predict`` handles both.
    """
    import tensorflow as tf

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "int8" and representative_data is None:
        raise ValueError("int8 quantization needs representative_data (image batches)")
    if integer_io and quantization != "int8":
        raise ValueError("integer_io needs quantization='int8'")
    with tempfile.TemporaryDirectory() as saved_model:
        model.export(saved_model, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
        if quantization != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantization == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if quantization == "int8":
            converter.representative_dataset = _calibration(representative_data,
                                                            calibration_images)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if integer_io:
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8
        return converter.convert()


def _calibration(data, limit: int):
    """The converter's representative dataset: single float32 images, ``limit`` at most."""

    def generate():
        seen = 0
        for batch in data:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            for image in np.asarray(batch, dtype=np.float32):
                if seen == limit:
                    return
                seen += 1
                yield [image[None]]

    return generate


def interpreter(model, num_threads: int | None = None):
    """An allocated interpreter for a flatbuffer (bytes) or a ``.tflite`` path.

    ``num_threads`` defaults to every core; XNNPACK is the default CPU delegate.
    """
    interpreter_class = _interpreter_class()
    kwargs = {"num_threads": num_threads or os.cpu_count() or 1}
    if isinstance(model, (bytes, bytearray)):
        kwargs["model_content"] = bytes(model)
    else:
        kwargs["model_path"] = os.fspath(model)
    with warnings.catch_warnings():  # tf.lite.Interpreter warns that LiteRT replaces it
        warnings.simplefilter("ignore")
        result = interpreter_class(**kwargs)
    result.allocate_tensors()
    return result


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
    return Interpreter


class Runner:
    """Runs one TFLite model on float image batches, (de)quantizing at integer boundaries.

    ``set_input``, ``invoke`` and ``output`` are separate so that a timer can call ``invoke``
    alone (``sizing.latency.tflite_latency``); calling the runner does all three.
    """

    def __init__(self, model, num_threads: int | None = None):
        self.interpreter = interpreter(model, num_threads)
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self._batch = None

    def set_input(self, images: np.ndarray) -> None:
        images = np.asarray(images, dtype=np.float32)
        if images.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], list(images.shape))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = images.shape[0]
        self.interpreter.set_tensor(self._input["index"], _quantize(images, self._input))

    def invoke(self) -> None:
        self.interpreter.invoke()

    def output(self) -> np.ndarray:
        return _dequantize(self.interpreter.get_tensor(self._output["index"]), self._output)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        self.set_input(images)
        self.invoke()
        return self.output()


def _quantize(x: np.ndarray, details) -> np.ndarray:
    dtype = details["dtype"]
    if dtype == np.float32:
        return x
    scale, zero_point = details["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(x: np.ndarray, details) -> np.ndarray:
    if details["dtype"] == np.float32:
        return x
    scale, zero_point = details["quantization"]
    return (x.astype(np.float32) - zero_point) * scale


def predict(model, images, *, batch_size: int = 32, num_threads: int | None = None):
    """Outputs of a TFLite model (bytes or path) for float images in [0, 255], as floats."""
    runner = Runner(model, num_threads)
    images = np.asarray(images, dtype=np.float32)
    outputs = [runner(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return np.concatenate(outputs)

