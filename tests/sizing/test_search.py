"""keras-tuner search of alpha, beta, gamma (and tune) on a tiny proxy and synthetic data."""

import csv
import functools
import itertools
import json

import keras
import numpy as np
import pytest

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing import search
from effnet_tf.sizing.search import Coefficients
from pipelines.synthetic import colour_batches

BASELINE = Scaling("tiny", 0.25, 0.25, 32, 0.2)
DATA = functools.partial(colour_batches, classes=3, examples=96, batch_size=32)


def test_grid_holds_every_feasible_point_once_spread_out():
    points = search.grid(target=2.0, tolerance=0.05, step=0.05)
    values = [round(1 + 0.05 * i, 4) for i in range(23)]  # up to 2.1 = 2 * 1.05
    brute = {Coefficients(*p) for p in itertools.product(values, repeat=3)
             if abs(p[0] * p[1] ** 2 * p[2] ** 2 / 2 - 1) <= 0.05 + 1e-9}
    assert set(points) == brute and len(points) == len(brute) == 111
    assert all(min(p) >= 1 and abs(p.flops_factor / 2 - 1) <= 0.05 + 1e-9 for p in points)
    assert points[0] == search.PAPER  # (1.2, 1.1, 1.15): product 1.92
    # Spread: the next three are the all-depth, all-width and all-resolution corners.
    assert {p.shares().index(max(p.shares())) for p in points[1:4]} == {0, 1, 2}
    assert min(s for p in points[1:4] for s in [max(p.shares())]) > 0.9
    with pytest.raises(ValueError, match="no grid point"):
        search.grid(target=1.7, tolerance=0.0, step=0.5)


@pytest.mark.parametrize("shares", [(0, 0), (1, 0), (0, 1), (0.3, 0.5), (0.99, 0.99)])
def test_shares_map_onto_the_constraint(shares):
    c = search.from_shares(*shares, target=2.0)
    assert min(c) >= 1
    assert c.flops_factor == pytest.approx(2.0, rel=1e-3)
    assert c.shares()[0] == pytest.approx(shares[0], abs=1e-3)


def test_scale_baseline_and_parse():
    s = search.scale_baseline(BASELINE, Coefficients(1.2, 1.1, 1.15))
    assert (s.width_coefficient, s.depth_coefficient, s.resolution) == (
        pytest.approx(0.275), pytest.approx(0.3), 37)
    assert search.parse_baseline("0.5,0.5,64") == Scaling("w0.5_d0.5_r64", 0.5, 0.5, 64, 0.2)
    assert search.parse_baseline("b1") == Scaling.variant("b1")
    assert search.parse_baseline("phi=-1") == Scaling.from_phi(-1)


def test_rmsprop_is_the_recipes_at_a_constant_rate():
    from effnet_tf.training.optimizers import RMSpropTF

    optimizer = search.make_optimizer("rmsprop", 3e-3)
    assert isinstance(optimizer, RMSpropTF)
    assert (optimizer.rho, optimizer.momentum, optimizer.epsilon) == (0.9, 0.9, 1e-3)
    schedule = optimizer._learning_rate
    assert [float(schedule(step)) for step in (0, 1000)] == [pytest.approx(3e-3)] * 2
    assert isinstance(search.make_optimizer("adam", 1e-3), keras.optimizers.Adam)
    with pytest.raises(ValueError, match="optimizer must be adam or rmsprop"):
        search.make_optimizer("sgd", 1e-3)


def test_synthetic_data_is_batched_and_labelled():
    images, labels = next(iter(DATA(48, True)))
    assert images.shape == (32, 48, 48, 3) and labels.shape == (32,)
    assert float(images.numpy().min()) >= 0 and float(images.numpy().max()) <= 255
    assert set(labels.numpy()) <= {0, 1, 2}


class FakeTraining:
    """Stands in for train_candidate: records its calls, scores by a formula, and can be
    interrupted (Ctrl-C) at a chosen call."""

    def __init__(self, interrupt_at=None):
        self.calls, self.interrupt_at = [], interrupt_at

    def __call__(self, scaling, dataset_fn, **settings):
        self.calls.append((scaling, settings))
        self.dataset_fn = dataset_fn
        if len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        return {"val_accuracy": 1 / (1 + abs(scaling.depth_coefficient - 0.3)),
                "val_loss": 1.0, "train_seconds": 0.5, "extra_metric": 7.0}


def test_search_obeys_the_constraint_writes_results_and_resumes(tmp_path):
    kwargs = dict(classes=3, baseline=BASELINE, project_dir=str(tmp_path / "project"),
                  epochs=3, steps_per_epoch=5, learning_rate=0.01)
    stopped = FakeTraining(interrupt_at=3)  # the user stops the search in the third trial
    with pytest.raises(KeyboardInterrupt):
        search.search(DATA, max_trials=6, train_fn=stopped, **kwargs)
    assert len(stopped.calls) == 3
    assert stopped.dataset_fn is DATA
    assert stopped.calls[0][1] == dict(classes=3, epochs=3, steps_per_epoch=5,
                                       validation_steps=None, optimizer="adam",
                                       learning_rate=0.01, seed=0, verbose=0)

    resumed = FakeTraining()
    result = search.search(DATA, max_trials=6, train_fn=resumed, **kwargs)
    # Trials 0 and 1 are kept; 2 (interrupted) is retried; 3, 4, 5 are new.
    assert len(resumed.calls) == 4
    assert resumed.calls[0][0] == stopped.calls[2][0]
    assert [r["trial"] for r in result.rows] == ["0", "1", "2", "3", "4", "5"]
    assert all(r["status"] == "COMPLETED" for r in result.rows)
    points = [Coefficients(r["alpha"], r["beta"], r["gamma"]) for r in result.rows]
    assert points == search.grid()[:6]  # the spread grid order, each point once
    for row, point in zip(result.rows, points):
        assert abs(point.flops_factor / 2 - 1) <= 0.05 + 1e-9
        scaling = search.scale_baseline(BASELINE, point)
        cost = costs(scaling, classes=3)
        assert (row["params"], row["flops"]) == (cost.params, cost.flops)
        assert row["flops_ratio"] == pytest.approx(cost.flops / costs(BASELINE, classes=3).flops,
                                                   abs=1e-4)
        assert row["extra_metric"] == 7.0
    best = result.best
    assert best["val_accuracy"] == max(r["val_accuracy"] for r in result.rows)
    assert best["depth"] == pytest.approx(0.3)  # the fake score peaks at depth 0.3: alpha 1.2
    assert result.train_command() == (
        f"python -m effnet_tf.train --phi=1 --alpha={best['alpha']:g} "
        f"--beta={best['beta']:g} --gamma={best['gamma']:g} --model_dir=runs/searched_phi1")

    paths = result.write(str(tmp_path / "out" / "trials"))
    with open(paths[0]) as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and float(table[4]["beta"]) == result.rows[4]["beta"]
    assert {"alpha", "beta", "gamma", "flops", "val_accuracy", "train_seconds"} <= set(table[0])
    with open(paths[1]) as f:
        saved = json.load(f)
    assert saved["best"] == best and len(saved["trials"]) == 6
    assert saved["train_command"] == result.train_command()
    assert_real_plot(paths[2])

    # The same call again trains nothing and reports the same trials.
    again = FakeTraining()
    assert search.search(DATA, max_trials=6, train_fn=again, **kwargs).rows == result.rows
    assert again.calls == []


def test_bayesian_search_stays_on_the_constraint(tmp_path):
    pytest.importorskip("sklearn")  # keras-tuner's Gaussian process needs scipy and sklearn
    pytest.importorskip("scipy")
    fake = FakeTraining()
    result = search.search(DATA, classes=3, baseline=BASELINE, project_dir=str(tmp_path),
                           strategy="bayesian", max_trials=5, target=1.5, train_fn=fake)
    assert len(result.rows) == len(fake.calls) == 5
    for row in result.rows:
        assert row["flops_factor"] == pytest.approx(1.5, rel=1e-3)
        assert min(row["alpha"], row["beta"], row["gamma"]) >= 1
    assert len({(r["alpha"], r["beta"]) for r in result.rows}) == 5


@pytest.mark.slow
def test_search_trains_real_candidates(tmp_path):
    """One real trial: the tiny proxy learns the colour classes (chance is 1/3)."""
    data = functools.partial(colour_batches, classes=3, examples=192, batch_size=32)
    before = keras.layers.Layer().name
    result = search.search(data, classes=3, baseline=BASELINE, project_dir=str(tmp_path),
                           max_trials=1, epochs=3)
    # The caller's Keras session is left alone: automatic layer names keep counting.
    assert keras.layers.Layer().name not in (before, "layer")
    (row,) = result.rows
    assert (row["alpha"], row["beta"], row["gamma"]) == (1.2, 1.1, 1.15)
    assert row["resolution"] == 37 and row["val_accuracy"] > 0.5
    assert row["val_loss"] > 0 and row["train_seconds"] > 0


def test_tune_learning_rate_dropout_and_magnitude(tmp_path):
    fake = FakeTraining()
    result = search.tune(DATA, classes=3, scaling=BASELINE, project_dir=str(tmp_path),
                         learning_rate=(1e-3, 1e-2), dropout=(0.1, 0.4),
                         augment_magnitude=(0, 10), max_trials=4, epochs=1, batch_size=32,
                         train_flags="--variant=b0", optimizer="adam", train_fn=fake)
    assert len(result.rows) == len(fake.calls) == 4
    for row, (scaling, settings) in zip(result.rows, fake.calls):
        assert scaling == BASELINE
        assert 1e-3 <= row["learning_rate"] <= 1e-2 and 0.1 <= row["dropout"] <= 0.4
        assert settings["learning_rate"] == row["learning_rate"]
        assert settings["dropout"] == row["dropout"]
        assert settings["dataset_kwargs"] == {"augment_magnitude": row["augment_magnitude"]}
        assert settings["optimizer"] == "adam"
    best = result.best
    assert result.train_command() == (
        "python -m effnet_tf.train --variant=b0 "
        f"--config.base_learning_rate={best['learning_rate'] * 8:.4g} "
        f"--config.dropout={best['dropout']:.3g} --config.augment=randaugment "
        f"--config.randaugment_magnitude={best['augment_magnitude']} "
        "--config.optimizer=adam --model_dir=runs/tuned")
    assert_real_plot(result.write(str(tmp_path / "tune"))[2])


def test_tune_with_the_same_seed_tries_the_same_settings(tmp_path):
    """keras-tuner draws a random oracle seed for seed 0 (the default): ours is fixed."""
    tried = []
    for run in range(2):
        fake = FakeTraining()
        search.tune(DATA, classes=3, scaling=BASELINE, project_dir=str(tmp_path / str(run)),
                    learning_rate=(1e-4, 1e-1), max_trials=3, epochs=1, batch_size=32,
                    train_fn=fake, seed=0)
        tried.append([settings["learning_rate"] for _, settings in fake.calls])
    assert len(tried[0]) == 3 and tried[0] == tried[1]


def assert_real_plot(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] >= 300 and image.shape[1] >= 600
    colours = np.unique(image.reshape(-1, image.shape[-1]).round(2), axis=0)
    assert len(colours) > 50  # axes, text, markers and a colour bar, not a blank canvas
