"""Latency measurement: the timing loop, Keras and saved models, the cached probe."""

import keras
import pytest

import effnet_tf
from effnet_tf.deploy import tflite
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing import budget, latency

TINY = Scaling("tiny", 0.25, 0.25, 32, 0.2)
FAST = dict(min_runs=2, max_runs=2, min_seconds=0)


def test_time_calls_warms_up_then_times():
    calls = []
    timing = latency.time_calls(lambda: calls.append(1), batch_size=4, warmup=3, min_runs=5,
                                max_runs=5, min_seconds=0)
    assert len(calls) == 8 and timing.runs == 5 and timing.batch_size == 4
    assert timing.min_ms <= timing.median_ms <= timing.p90_ms
    assert timing.images_per_second == pytest.approx(4000 / timing.median_ms)
    # min_runs and max_runs bound the loop whatever min_seconds says.
    assert latency.time_calls(lambda: None, min_runs=1, max_runs=7, min_seconds=60).runs == 7


def test_random_images_are_pixels():
    images = latency.random_images(2, (8, 9, 3))
    assert images.shape == (2, 8, 9, 3) and images.dtype == "float32"
    assert 0 <= images.min() and images.max() <= 255


def test_measure_columns():
    # (tflite and training columns: tests/sizing/test_scale.py, table --measure)
    row = latency.measure(TINY, batch_sizes=(1, 2), runtimes=("keras",), **FAST)
    assert sorted(row) == ["keras_ms_bs1", "keras_ms_bs2"]
    assert all(v > 0 for v in row.values())
    with pytest.raises(ValueError, match="runtimes must be among"):
        latency.measure(TINY, runtimes=("onnx",))


def test_measure_clears_the_keras_session_only_when_asked():
    before = keras.layers.Layer().name
    latency.measure(TINY, **FAST)
    assert keras.layers.Layer().name not in (before, "layer")  # names keep counting
    latency.measure(TINY, clear_session=True, **FAST)
    assert keras.layers.Layer().name == "layer"  # a fresh session names from scratch


def test_probe_measures_each_architecture_once():
    probe = latency.LatencyProbe(runtime="keras", **FAST)
    # Far below B0: 56 px, every stage one block; the two phis round to the same network.
    a, b = Scaling.from_phi(-10), Scaling.from_phi(-10.001)
    assert a != b and budget.architecture_key(a) == budget.architecture_key(b)
    first = probe(a)
    assert probe(b) == first and len(probe.measurements) == 1 and first > 0


def test_model_file_latency(tmp_path):
    keras.utils.clear_session()
    model = effnet_tf.EfficientNet(TINY, classes=3)
    model.save(tmp_path / "m.keras")
    (tmp_path / "m.tflite").write_bytes(tflite.convert(model))
    for name in ("m.keras", "m.tflite"):
        timing = latency.model_file_latency(tmp_path / name, batch_size=2, **FAST)
        assert timing.batch_size == 2 and timing.runs == 2 and timing.median_ms > 0
    with pytest.raises(ValueError, match="must end in .tflite or .keras"):
        latency.model_file_latency(tmp_path / "m.onnx")


def test_min_statistic_names_its_columns():
    row = latency.measure(TINY, runtimes=("keras",), statistic="min", **FAST)
    assert list(row) == ["keras_min_ms_bs1"] and row["keras_min_ms_bs1"] > 0
    timing = latency.Timing(median_ms=5.0, min_ms=4.0, p90_ms=9.0, runs=3, batch_size=1)
    assert (timing.ms("median"), timing.ms("min")) == (5.0, 4.0)
    with pytest.raises(ValueError, match="statistic must be one of"):
        timing.ms("mean")
