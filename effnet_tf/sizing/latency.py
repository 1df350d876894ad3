"""Measured speed on this machine: inference latency (Keras or TFLite) and training images/s.

    measure(Scaling.variant("b0"), batch_sizes=(1, 8), runtimes=("keras", "tflite"))
    probe = LatencyProbe(runtime="tflite", quantization="int8")   # scaling -> ms, cached
    budget.fit(Budget(max_latency_ms=20), latency_fn=probe)
    export_tflite([Scaling.from_phi(-1)], "kit")                 # to time on a board:
    model_file_latency("kit/phi-1_float32.tflite")               # TFLite runtime only there

Numbers are medians of repeated calls after warm-up calls (tracing, allocation); the CPU is
shared with everything else on the machine, so compare numbers from one run.
TensorFlow's thread pools are process-wide: run with ``taskset``/one process per setting to
compare thread counts; TFLite takes ``num_threads`` per interpreter.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from typing import Callable, Sequence

import numpy as np

from effnet_tf.modeling.costs import IMAGENET_CLASSES
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing.budget import architecture_key

RUNTIMES = ("keras", "tflite")
# median: the typical latency, right on a dedicated device. min: the least disturbed run, far
# steadier on a machine shared with other jobs (timeit's advice), an optimistic bound.
STATISTICS = ("median", "min")


@dataclasses.dataclass(frozen=True)
class Timing:
    """Milliseconds per call of ``batch_size`` images, over ``runs`` timed calls."""

    median_ms: float
    min_ms: float
    p90_ms: float
    runs: int
    batch_size: int

    @property
    def images_per_second(self) -> float:
        return 1000.0 * self.batch_size / self.median_ms

    def ms(self, statistic: str = "median") -> float:
        _check_statistic(statistic)
        return self.median_ms if statistic == "median" else self.min_ms


def time_calls(fn: Callable[[], object], *, batch_size: int = 1, warmup: int = 2,
               min_runs: int = 5, max_runs: int = 100, min_seconds: float = 1.0) -> Timing:
    """Times ``fn()`` after ``warmup`` calls: at least ``min_runs`` and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    times, start = [], time.perf_counter()
    while len(times) < max_runs and (
            len(times) < min_runs or time.perf_counter() - start < min_seconds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    ordered = sorted(times)
    return Timing(statistics.median(ordered), ordered[0],
                  ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], len(times),
                  batch_size)


def random_images(batch_size: int, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Uniform random pixels in [0, 255] (speed does not depend on the content).

    NumPy, not ``pipelines.synthetic``: TFLite timing runs on boards without TensorFlow.
    """
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 255, (batch_size, *shape)).astype(np.float32)


def keras_latency(model, *, batch_size: int = 1, **timing) -> Timing:
    """Inference time of a Keras model: one traced graph call per batch, no XLA.

    ``model.predict`` adds milliseconds of Python per call; a ``tf.function`` is what a
    serving graph runs.
    """
    import tensorflow as tf

    x = tf.constant(random_images(batch_size, model.input_shape[1:]))
    infer = tf.function(lambda images: model(images, training=False), jit_compile=False)
    return time_calls(lambda: _sync(infer(x)), batch_size=batch_size, **timing)


def tflite_latency(model, *, batch_size: int = 1, num_threads: int | None = None,
                   **timing) -> Timing:
    """Inference time of a TFLite model (bytes or a ``.tflite`` path) on random pixels.

    Times ``invoke`` only (the input is set once), as an app that reuses its input buffer.
    Needs only a TFLite interpreter (``deploy.tflite.Runner``), not TensorFlow.
    """
    from effnet_tf.deploy import tflite

    runner = tflite.Runner(model, num_threads)
    height, width, channels = runner.interpreter.get_input_details()[0]["shape"][1:]
    runner.set_input(random_images(batch_size, (height, width, channels)))
    return time_calls(runner.invoke, batch_size=batch_size, **timing)


def _sync(outputs):
    for output in outputs if isinstance(outputs, (list, tuple)) else [outputs]:
        output.numpy()


def training_throughput(model, *, batch_size: int = 8, steps: int = 5, warmup: int = 2,
                        classes: int | None = None) -> float:
    """Training images/s of ``model`` on random data (RMSprop, sparse cross-entropy, no XLA:
    XLA's depthwise convolutions are slower on CPUs). Compiles and trains ``model`` itself,
    so its weights change."""
    import keras

    classes = classes or model.output_shape[-1]
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4),
                  loss="sparse_categorical_crossentropy", jit_compile=False)
    x = random_images(batch_size, model.input_shape[1:])
    y = np.random.default_rng(0).integers(0, classes, (batch_size,))
    timing = time_calls(lambda: model.train_on_batch(x, y), batch_size=batch_size,
                        warmup=warmup, min_runs=steps, max_runs=steps, min_seconds=0)
    return timing.images_per_second


def measure(
    scaling: Scaling,
    *,
    batch_sizes: Sequence[int] = (1,),
    runtimes: Sequence[str] = ("keras",),
    quantization: str = "float32",
    train_batch_size: int | None = None,
    train_steps: int = 5,
    classes: int = IMAGENET_CLASSES,
    num_threads: int | None = None,
    statistic: str = "median",
    clear_session: bool = False,
    **timing,
) -> dict:
    """Measured columns for one scaling, e.g. ``{"keras_ms_bs1": 12.3, "tflite_float32_ms_bs1":
    8.1, "train_img_s_bs8": 40.2}``: milliseconds per batch (median; with ``statistic="min"``
    the columns say so: ``keras_min_ms_bs1``), and training images/s.

    ``clear_session``: first free every Keras model of the process (a loop measuring many
    models keeps them all otherwise); off by default, as it would also drop the caller's.
    """
    _check_runtimes(runtimes)
    _check_statistic(statistic)
    ms = "ms" if statistic == "median" else "min_ms"
    if clear_session:
        import keras

        keras.utils.clear_session(free_memory=True)
    model = build(scaling, classes)
    row = {}
    if "keras" in runtimes:
        for batch in batch_sizes:
            row[f"keras_{ms}_bs{batch}"] = keras_latency(model, batch_size=batch,
                                                         **timing).ms(statistic)
    if "tflite" in runtimes:
        from effnet_tf.deploy import tflite

        flatbuffer = tflite.convert(model, quantization=quantization,
                                    representative_data=random_calibration(model))
        for batch in batch_sizes:
            row[f"tflite_{quantization}_{ms}_bs{batch}"] = tflite_latency(
                flatbuffer, batch_size=batch, num_threads=num_threads, **timing).ms(statistic)
    if train_batch_size:
        row[f"train_img_s_bs{train_batch_size}"] = training_throughput(
            model, batch_size=train_batch_size, steps=train_steps)
    return row


def build(scaling: Scaling, classes: int = IMAGENET_CLASSES):
    from effnet_tf.modeling.efficientnet import EfficientNet

    return EfficientNet(scaling, classes=classes)


def random_calibration(model, images: int = 8):
    """Random pixels to calibrate int8 for timing only (accuracy needs real images)."""
    return [random_images(images, model.input_shape[1:])]


def export_tflite(items: Sequence[Scaling], directory: str, *, quantization: str = "float32",
                  classes: int = IMAGENET_CLASSES) -> list[str]:
    """Each scaling as ``{directory}/{name}_{quantization}.tflite`` with random weights: same
    speed as trained ones (int8 is calibrated on random pixels: timing only). The kit to time
    on a device (``model_file_latency`` there, or TFLite's ``benchmark_model``)."""
    import keras

    from effnet_tf.deploy import tflite

    os.makedirs(directory, exist_ok=True)
    paths = []
    for scaling in items:
        keras.utils.clear_session(free_memory=True)
        model = build(scaling, classes)
        path = os.path.join(directory, f"{scaling.name}_{quantization}.tflite")
        with open(path, "wb") as f:
            f.write(tflite.convert(model, quantization=quantization,
                                   representative_data=random_calibration(model)))
        paths.append(path)
    return paths


def _check_statistic(statistic):
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, got {statistic!r}")


def _check_runtimes(runtimes):
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown or not runtimes:
        raise ValueError(f"runtimes must be among {RUNTIMES}, got {list(runtimes)!r}")


class LatencyProbe:
    """``scaling -> milliseconds`` for the budget solver: builds, (converts) and times models.

    Results are cached by architecture (phis that round to the same network are measured
    once); ``measurements`` keeps them in order. ``clear_session`` as in ``measure``.
    """

    def __init__(self, *, runtime: str = "keras", batch_size: int = 1,
                 quantization: str = "float32", classes: int = IMAGENET_CLASSES,
                 num_threads: int | None = None, statistic: str = "median",
                 clear_session: bool = False, **timing):
        _check_runtimes([runtime])
        _check_statistic(statistic)
        self.statistic = statistic
        self.runtime, self.batch_size, self.quantization = runtime, batch_size, quantization
        self.classes, self.num_threads, self.timing = classes, num_threads, timing
        self.clear_session = clear_session
        self.cache: dict[tuple, float] = {}
        self.measurements: list[tuple[Scaling, float]] = []

    def __call__(self, scaling: Scaling) -> float:
        key = architecture_key(scaling)
        if key not in self.cache:
            row = measure(scaling, batch_sizes=(self.batch_size,), runtimes=(self.runtime,),
                          quantization=self.quantization, classes=self.classes,
                          num_threads=self.num_threads, statistic=self.statistic,
                          clear_session=self.clear_session, **self.timing)
            self.cache[key] = next(iter(row.values()))
            self.measurements.append((scaling, self.cache[key]))
        return self.cache[key]


def model_file_latency(path: str | os.PathLike, *, batch_size: int = 1,
                       num_threads: int | None = None, **timing) -> Timing:
    """Latency of a saved model: ``.tflite`` (interpreter) or ``.keras`` (Keras)."""
    path = os.fspath(path)
    if path.endswith(".tflite"):
        return tflite_latency(path, batch_size=batch_size, num_threads=num_threads, **timing)
    if path.endswith(".keras"):
        import keras

        return keras_latency(keras.saving.load_model(path, compile=False),
                             batch_size=batch_size, **timing)
    raise ValueError(f"model file must end in .tflite or .keras, got {path!r}")
