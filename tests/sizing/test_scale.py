"""The scale command: table (+ --measure, --plot), fit, search, latency; and the sizing
functions it calls (tables, plots, data)."""

import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing import data, plots, tables
from effnet_tf.sizing.tables import summary_row


def run(*args, cwd=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run([sys.executable, "-m", "effnet_tf.scale", *args], capture_output=True,
                         text=True, env=env, cwd=cwd)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_phi_values():
    assert tables.phi_values([2.5], "-1,1,0.5") == [2.5, -1, -0.5, 0, 0.5, 1]
    assert tables.phi_values([], "0,8,1")[-1] == 8
    with pytest.raises(ValueError, match="start,stop,step"):
        tables.phi_values([], "0,8")


def test_table_rows_extend_the_summary_rows():
    rows = tables.table_rows(tables.scalings(["b0"], [1.5]))
    assert rows == [summary_row(Scaling.variant("b0")), summary_row(Scaling.from_phi(1.5))]


def test_table_csv_and_phi_rows():
    out = run("table", "--variants=b0,b3", "--phi=-1", "--phi_range=2,3,0.5", "--table_format=csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == ["b0", "b3", "phi-1", "phi2", "phi2.5", "phi3"]
    assert int(rows[1]["params"]) == costs(Scaling.variant("b3")).params
    assert int(rows[4]["flops"]) == costs(Scaling.from_phi(2.5)).flops


@pytest.mark.slow
def test_table_measure_plot_export_and_latency(tmp_path):
    # A phi far below B0 (56 px, one block per stage) keeps the measurement quick.
    plot, table, kit = tmp_path / "scale.png", tmp_path / "table.json", tmp_path / "kit"
    run("table", "--variants=", "--phi=-10", "--measure", "--runtime=keras,tflite",
        "--batch_size=2", "--min_seconds=0", f"--plot={plot}", "--table_format=json",
        f"--output={table}", f"--export_tflite={kit}")
    rows = json.loads(table.read_text())
    assert len(rows) == 1 and rows[0]["name"] == "phi-10"
    measured = {k: v for k, v in rows[0].items() if k not in summary_row(Scaling.from_phi(-10))}
    file = measured.pop("tflite_file")
    assert sorted(measured) == ["keras_ms_bs1", "keras_ms_bs2", "tflite_float32_ms_bs1",
                                "tflite_float32_ms_bs2", "train_img_s_bs2"]
    assert all(isinstance(v, float) and v > 0 for v in measured.values())
    assert_real_plot(plot, panels=6)
    # The exported kit, timed as on a board: batch 1 and --batch_size.
    assert file == str(kit / "phi-10_float32.tflite")
    timed = json.loads(run("latency", file, "--batch_size=3", "--min_seconds=0",
                           "--table_format=json"))
    assert [(r["model"], r["batch"]) for r in timed] == [(file, 1), (file, 3)]
    assert all(0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"] for r in timed)


def test_plot_marks_the_published_variants(tmp_path):
    rows = tables.table_rows(tables.scalings(["b0", "b1", "b2"], tables.phi_values([], "-1,3,1")))
    plots.plot_table(rows, str(tmp_path / "p.png"))
    assert_real_plot(tmp_path / "p.png", panels=2)


def test_fit_prints_the_answer_and_train_commands():
    out = run("fit", "--max_flops=1.5e9")
    assert "Largest phi: 1.698 (phi + 0.001 is over budget)" in out
    assert "largest published variant: b2" in out
    assert "python -m effnet_tf.train --phi=1.698 --model_dir=runs/phi1.698" in out
    assert "python -m effnet_tf.train --variant=b2 --model_dir=runs/b2" in out
    result = json.loads(run("fit", "--max_params=3e6", "--classes=10", "--gamma=1.2",
                            "--table_format=json"))
    answer, above = result["rows"][:2]
    assert answer["fits"] == "yes" and above["fits"] == "no"
    assert answer["params"] <= 3e6 < above["params"]
    assert answer["params"] == costs(Scaling.from_phi(result["phi"], gamma=1.2), classes=10).params
    assert result["train_commands"][0].startswith(
        f"python -m effnet_tf.train --phi={result['phi']:g} --gamma=1.2 --config.num_classes=10")


@pytest.mark.slow
def test_fit_latency_of_a_model_file(tmp_path):
    """--latency_of: the budget is a given model's latency here; the solver times scalings."""
    import effnet_tf

    # The reference has 6x the FLOPs of the params-limited answer: the latency limit is
    # generous, so the outcome does not hang on timing noise.
    model = effnet_tf.EfficientNet(Scaling.from_phi(-4), classes=10)
    model.save(tmp_path / "current.keras")
    out = json.loads(run("fit", f"--latency_of={tmp_path / 'current.keras'}", "--classes=10",
                         "--max_params=5e5", "--min_seconds=0", "--table_format=json"))
    assert out["budget"].startswith("params <= 0.5M, latency <= ")
    answer = out["rows"][0]
    assert answer["fits"] == "yes" and answer["params"] <= 5e5
    assert answer["latency_ms"] is not None
    assert 1 <= len(out["measurements"]) <= 12


@pytest.mark.slow
def test_search_command_on_synthetic_data(tmp_path):
    out = run("search", "--data=synthetic", "--classes=3", "--baseline=0.25,0.25,32",
              "--max_trials=1", "--epochs=1", "--steps_per_epoch=2", "--batch_size=16",
              f"--project_dir={tmp_path}")
    assert "1 trials finished" in out
    assert "python -m effnet_tf.train --phi=1 --alpha=1.2 --beta=1.1 --gamma=1.15" in out
    assert "python -m effnet_tf.scale fit --alpha=1.2 --beta=1.1 --gamma=1.15" in out
    for ext in ("csv", "json", "png"):
        assert (tmp_path / f"compound_trials.{ext}").stat().st_size > 0


def test_usage_errors():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    for args, message in [(["nope"], "give a command"),
                          (["fit"], "needs max_flops"),
                          (["fit", "--max_flops=1e4"], "below the smallest"),
                          (["search", "--data=synthetic"], "need --project_dir")]:
        out = subprocess.run([sys.executable, "-m", "effnet_tf.scale", *args],
                             capture_output=True, text=True, env=env)
        assert out.returncode == 2, (args, out.stderr[-500:])
        assert out.stderr.startswith("effnet_tf.scale: error: ") and message in out.stderr
        assert len(out.stderr.splitlines()) == 1, out.stderr[-500:]  # no help text before it


def assert_real_plot(path, panels):
    import matplotlib.image

    image = matplotlib.image.imread(str(path))
    assert image.ndim == 3 and image.shape[1] >= 450 * panels
    colours = np.unique(image.reshape(-1, image.shape[-1]).round(2), axis=0)
    assert len(colours) > 50


def test_dataset_fn_reads_a_pipelines_image_folder(tmp_path):
    """search/tune data through pipelines.build: sized per candidate, magnitude passed on."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    for label, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (tmp_path / label).mkdir()
        for i in range(8):
            pixels = np.clip(np.array(colour) + rng.normal(0, 10, (40, 48, 3)), 0, 255)
            jpeg = tf.io.encode_jpeg(tf.constant(pixels.astype("uint8"))).numpy()
            (tmp_path / label / f"{i}.jpg").write_bytes(jpeg)
    dataset_fn = data.make_dataset_fn(str(tmp_path), batch_size=4, validation_fraction=0.25)
    images, labels = next(iter(dataset_fn(image_size=36, training=True, augment_magnitude=5)))
    assert images.shape == (4, 36, 36, 3) and set(labels.numpy()) <= {0, 1}
    val = list(dataset_fn(image_size=40, training=False))
    assert sum(len(y) for _, y in val) == 4  # a quarter of each class
    assert val[0][0].shape[1:] == (40, 40, 3)
    red = val[0][0].numpy()[np.asarray(val[0][1]) == 1]  # classes sorted: blue 0, red 1
    assert red.size == 0 or red[..., 0].mean() > 150


def test_fit_rows_with_a_latency_budget():
    from effnet_tf.sizing import budget

    result = budget.fit(budget.Budget(max_latency_ms=100),
                        latency_fn=lambda s: costs(s).flops / 1e7)
    rows = tables.fit_rows(result)
    assert [r["role"] for r in rows] == ["answer", "phi + 0.01", "largest variant",
                                         "next variant"]
    assert [r["fits"] for r in rows] == ["yes", "no", "yes", "no"]
    assert [r["name"] for r in rows[2:]] == ["b2", "b3"]
    # Every row was timed (the bisections measured them): no blanks in the table.
    assert all(r["latency_ms"] == pytest.approx(r["flops"] / 1e7, abs=1e-3) for r in rows)
