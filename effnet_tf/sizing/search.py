"""The paper's step 1 on your data: search alpha, beta, gamma at phi = 1 with keras-tuner.

Tan & Le fixed phi = 1 and grid-searched depth (alpha), width (beta) and resolution (gamma)
multipliers of the baseline under ``alpha * beta**2 * gamma**2 ~= 2`` (FLOPs double), with
``alpha, beta, gamma >= 1``. Here the baseline is yours (a small proxy trains in seconds), each
candidate trains briefly and is ranked by validation accuracy:

    result = search(dataset_fn, classes=10, baseline=parse_baseline("0.5,0.5,64"),
                    project_dir="runs/search")
    result.write("runs/search/trials")       # .csv, .json, .png
    result.train_command()                   # --alpha=... --beta=... --gamma=...

``dataset_fn(image_size=..., training=...)`` returns a batched ``tf.data.Dataset`` of
``(images in [0, 255], int labels)``: the training split when ``training``, else the
validation split, e.g. ``effnet_tf.scale.make_dataset_fn(source, batch_size=64)`` over
``pipelines.build`` (a repeating training pipeline needs ``steps_per_epoch``).
The search lives in keras-tuner's project directory: run the same call again to resume it
(finished trials are kept, an interrupted one is retried); ``overwrite=True`` starts afresh.

``tune`` is the same machinery for a chosen model's learning rate, dropout and augmentation
magnitude.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
import json
import math
import os
import time
from typing import Callable, NamedTuple, Sequence

import numpy as np

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, MIN_IMAGE_SIZE, Scaling

OBJECTIVE = "val_accuracy"
STRATEGIES = ("grid", "bayesian")
TUNE_STRATEGIES = ("random", "bayesian")
# Brief training leaves BN's moving statistics (momentum 0.99) near their initial values, and
# validation accuracy would measure that instead of the architecture: they are re-estimated
# on this many training batches before evaluating (see recalibrate_batch_norm).
BN_BATCHES = 10


class Coefficients(NamedTuple):
    """Compound coefficients: depth ``alpha``, width ``beta``, resolution ``gamma``."""

    alpha: float
    beta: float
    gamma: float

    @property
    def flops_factor(self) -> float:
        """``alpha * beta**2 * gamma**2``: how FLOPs grow per unit of phi."""
        return self.alpha * self.beta**2 * self.gamma**2

    def shares(self) -> tuple[float, float, float]:
        """Fractions of the FLOPs growth spent on depth, width and resolution."""
        total = math.log(self.flops_factor)
        return (math.log(self.alpha) / total, 2 * math.log(self.beta) / total,
                2 * math.log(self.gamma) / total)

    def flags(self) -> str:
        return f"--alpha={self.alpha:g} --beta={self.beta:g} --gamma={self.gamma:g}"


PAPER = Coefficients(ALPHA, BETA, GAMMA)


def grid(target: float = 2.0, tolerance: float = 0.05, step: float = 0.05) -> list[Coefficients]:
    """Every grid point ``>= 1`` with ``|alpha * beta**2 * gamma**2 / target - 1| <= tolerance``.

    Ordered so that any prefix spreads over the constraint surface (farthest-point order,
    from the point closest to the paper's), so a
    search cut short by ``max_trials`` is still a coarse grid rather than one corner.
    """
    if not target > 1:
        raise ValueError(f"target must be > 1 (FLOPs growth per unit of phi), got {target!r}")
    if not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be in [0, 1), got {tolerance!r}")
    if not 0 < step <= 1:
        raise ValueError(f"step must be in (0, 1], got {step!r}")
    high = target * (1 + tolerance)
    values = [round(1 + i * step, 4) for i in range(int((high - 1) / step + 1e-9) + 1)]
    points = [Coefficients(a, b, g) for a, b, g in itertools.product(values, repeat=3)
              if abs(a * b * b * g * g / target - 1) <= tolerance + 1e-9]  # 1.9 / 2 is within 5%
    if not points:
        raise ValueError(
            f"no grid point with step {step} is within {tolerance:.0%} of {target}: "
            f"raise tolerance or lower step")
    return _spread(points, target)


def _spread(points: list[Coefficients], target: float) -> list[Coefficients]:
    """Farthest-point order in (log alpha, 2 log beta, 2 log gamma) / log target."""
    coords = np.log([[p.alpha, p.beta**2, p.gamma**2] for p in points]) / math.log(target)
    paper = np.log([PAPER.alpha, PAPER.beta**2, PAPER.gamma**2]) / math.log(target)
    first = int(np.argmin(np.linalg.norm(coords - paper, axis=1)))
    order, distance = [first], np.linalg.norm(coords - coords[first], axis=1)
    distance[first] = -1.0
    while len(order) < len(points):
        nxt = int(np.argmax(distance))
        order.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(coords - coords[nxt], axis=1))
        distance[order] = -1.0
    return [points[i] for i in order]


def from_shares(depth_share: float, width_share_of_rest: float, target: float) -> Coefficients:
    """Coefficients on the constraint surface from two numbers in [0, 1] (every point of the
    unit square is feasible, which a Bayesian search needs): depth takes ``depth_share`` of
    ``log(target)``, width ``width_share_of_rest`` of what is left, resolution the rest."""
    total = math.log(target)
    depth = depth_share * total
    width = (1 - depth_share) * width_share_of_rest * total
    resolution = total - depth - width
    return Coefficients(round(math.exp(depth), 4), round(math.exp(width / 2), 4),
                        round(math.exp(resolution / 2), 4))


def scale_baseline(baseline: Scaling, c: Coefficients, phi: float = 1.0) -> Scaling:
    """The baseline with depth, width and resolution multiplied by ``alpha**phi`` etc.

    Resolution rounds to whole pixels, not to multiples of 8 as ``Scaling.from_phi`` does: on a
    small proxy (say 64 px) the multiple-of-8 steps would hide gamma's effect.
    """
    return dataclasses.replace(
        baseline,
        name=f"{baseline.name}_a{c.alpha:g}_b{c.beta:g}_g{c.gamma:g}",
        width_coefficient=baseline.width_coefficient * c.beta**phi,
        depth_coefficient=baseline.depth_coefficient * c.alpha**phi,
        resolution=max(MIN_IMAGE_SIZE, round(baseline.resolution * c.gamma**phi)),
        source="custom", phi=None)


def parse_baseline(text: str) -> Scaling:
    """A variant (``b0``), a phi (``phi=-1``) or ``width,depth,resolution[,dropout]``."""
    text = text.strip()
    if text.startswith("phi="):
        return Scaling.from_phi(float(text[4:]))
    if "," in text:
        parts = [float(p) for p in text.split(",")]
        if len(parts) not in (3, 4):
            raise ValueError(f"baseline must be width,depth,resolution[,dropout], got {text!r}")
        dropout = parts[3] if len(parts) == 4 else 0.2
        return Scaling(f"w{parts[0]:g}_d{parts[1]:g}_r{parts[2]:g}", parts[0], parts[1],
                       int(parts[2]), dropout)
    return Scaling.variant(text)


# ---- training one candidate -----------------------------------------------------------------


def train_candidate(
    scaling: Scaling,
    dataset_fn: Callable,
    *,
    classes: int,
    epochs: int = 2,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    dropout: float | None = None,
    bn_batches: int = BN_BATCHES,
    dataset_kwargs: dict | None = None,
    seed: int = 0,
    verbose: int = 0,
    clear_session: bool = False,
) -> dict:
    """Builds ``scaling``, trains it briefly, re-estimates BN statistics, and returns the
    validation accuracy and loss and the wall time (build and tracing included: what the
    trial cost).

    ``clear_session``: first free every Keras model of the process, so that a search of many
    trials does not keep them all; off by default, as it would also drop the caller's.
    """
    import keras

    from effnet_tf.modeling.efficientnet import EfficientNet

    start = time.perf_counter()
    if clear_session:
        keras.utils.clear_session(free_memory=True)
    keras.utils.set_random_seed(seed)  # every candidate starts from comparable noise
    model = EfficientNet(scaling, classes=classes, dropout=dropout)
    model.compile(optimizer=make_optimizer(optimizer, learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=False)
    train = dataset_fn(image_size=scaling.resolution, training=True, **(dataset_kwargs or {}))
    val = dataset_fn(image_size=scaling.resolution, training=False)
    model.fit(train, epochs=epochs, steps_per_epoch=steps_per_epoch, shuffle=False,
              verbose=verbose)  # the pipeline shuffles
    recalibrate_batch_norm(model, train, bn_batches)
    loss, accuracy = model.evaluate(val, steps=validation_steps, verbose=verbose)
    return {OBJECTIVE: float(accuracy), "val_loss": float(loss),
            "train_seconds": time.perf_counter() - start}


def recalibrate_batch_norm(model, dataset, batches: int = BN_BATCHES) -> None:
    """Sets every BN layer's moving mean and variance to their average over ``batches``
    training batches (Wu & Johnson's "precise BN"), keeping the weights.

    Keras BN keeps an exponential average; momentum ``i / (i + 1)`` at batch ``i`` turns it
    into the plain mean. Eager calls, so the changed momentum is read (a traced train step
    has its momentum baked in).
    """
    import keras

    layers = [layer for layer in model.layers
              if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    try:
        for i, batch in enumerate(dataset.take(batches)):
            for layer in layers:
                layer.momentum = i / (i + 1)
            model(batch[0], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


def make_optimizer(name: str, learning_rate: float):
    """``adam`` (Keras' defaults), or ``rmsprop``: the training recipe's optimizer (the paper's
    TF1 RMSProp with the recipe's decay, momentum and epsilon, ``recipe.create_optimizer``) at
    a constant ``learning_rate``, so that a rate tuned here carries over to training."""
    import keras

    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    if name == "rmsprop":
        from effnet_tf.training import recipe
        from effnet_tf.training.config import get_config

        config = get_config()
        config.update(global_batch_size=recipe.REFERENCE_BATCH, base_learning_rate=learning_rate,
                      lr_schedule="constant", warmup_epochs=0.0)
        return recipe.create_optimizer(config, steps_per_epoch=1)
    raise ValueError(f"optimizer must be adam or rmsprop, got {name!r}")


# ---- keras-tuner plumbing -------------------------------------------------------------------


def _tuner_class():
    import keras_tuner as kt

    class ProxyTuner(kt.Tuner):
        """Runs ``trial_fn(hyperparameters) -> metrics`` per trial (no HyperModel: the model
        depends on the data's image size, so the trial builds both)."""

        def __init__(self, oracle, trial_fn, **kwargs):
            self.trial_fn = trial_fn
            super().__init__(oracle, **kwargs)

        def run_trial(self, trial, *args, **kwargs):
            return self.trial_fn(trial.hyperparameters)

    return ProxyTuner


def _grid_oracle_class():
    import keras_tuner as kt

    class ConstrainedGridOracle(kt.Oracle):
        """Visits feasible grid points in order, skipping those already tried.

        keras-tuner's GridSearch enumerates the full product (most of it off the constraint)
        and keeps its position in memory only, so it cannot resume; this oracle's state is
        the finished trials themselves.
        """

        def __init__(self, points: Sequence[Coefficients], **kwargs):
            self.points = list(points)
            super().__init__(**kwargs)

        def populate_space(self, trial_id):
            tried = {_coefficients(t.hyperparameters) for t in self.trials.values()}
            for point in self.points:
                if point not in tried:
                    return {"status": "RUNNING",
                            "values": point._asdict()}
            return {"status": "STOPPED", "values": None}

    return ConstrainedGridOracle


def _coefficients(hp, target: float | None = None) -> Coefficients:
    values = hp.values
    if "alpha" in values:
        return Coefficients(values["alpha"], values["beta"], values["gamma"])
    return from_shares(values["depth_share"], values["width_share_of_rest"], target)


def _run(oracle, trial_fn, project_dir, project_name, overwrite, verbose):
    tuner = _tuner_class()(oracle, trial_fn, directory=project_dir, project_name=project_name,
                           overwrite=overwrite)
    tuner.search(verbose=verbose)
    return tuner


@dataclasses.dataclass
class SearchResult:
    """Every trial of a search or tune run as rows, best first by validation accuracy."""

    rows: list[dict]
    kind: str  # "compound" or "tune"
    command: Callable[[dict], str]  # the train command line for a row

    @property
    def best(self) -> dict:
        done = [r for r in self.rows if r[OBJECTIVE] is not None]
        if not done:
            raise ValueError("no trial finished")
        return max(done, key=lambda r: r[OBJECTIVE])

    def train_command(self) -> str:
        """The ``effnet_tf.train`` command line of the best trial."""
        return self.command(self.best)

    def write(self, prefix: str) -> list[str]:
        """``prefix.csv``, ``prefix.json`` and ``prefix.png``; returns the paths."""
        os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
        paths = [f"{prefix}.csv", f"{prefix}.json", f"{prefix}.png"]
        with open(paths[0], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(self.rows[0]))
            writer.writeheader()
            writer.writerows(self.rows)
        with open(paths[1], "w") as f:
            json.dump({"kind": self.kind, "best": self.best, "train_command":
                       self.train_command(), "trials": self.rows}, f, indent=2)
        plot_trials(self, paths[2])
        return paths


def _rows(tuner, describe: Callable) -> list[dict]:
    trials = sorted(tuner.oracle.trials.items())
    names = [OBJECTIVE, "val_loss", "train_seconds"]
    names += sorted({n for _, t in trials for n in t.metrics.metrics} - set(names))
    rows = []
    for trial_id, trial in trials:
        metrics = trial.metrics
        rows.append({"trial": trial_id, "status": trial.status, **describe(trial.hyperparameters),
                     **{n: float(metrics.get_last_value(n)) if metrics.exists(n) else None
                        for n in names}})
    return rows


# ---- step 1: alpha, beta, gamma -------------------------------------------------------------


def search(
    dataset_fn: Callable,
    *,
    classes: int,
    baseline: Scaling,
    project_dir: str,
    target: float = 2.0,
    tolerance: float = 0.05,
    strategy: str = "grid",
    grid_step: float = 0.05,
    max_trials: int | None = 20,
    epochs: int = 2,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    overwrite: bool = False,
    seed: int = 0,
    verbose: int = 0,
    train_fn: Callable[..., dict] | None = None,
) -> SearchResult:
    """Searches alpha, beta, gamma at phi = 1 from ``baseline`` and ranks by val accuracy.

    Args:
      dataset_fn: ``dataset_fn(image_size=, training=)`` -> batched ``(images, labels)``.
      classes: number of classes of the data.
      baseline: the scaling that phi = 0 means here (a small proxy of the model to scale).
      project_dir: keras-tuner's directory; the same directory resumes the search.
      target, tolerance: the constraint ``|alpha * beta**2 * gamma**2 / target - 1| <= tol``.
      strategy: ``grid`` (the feasible points of a ``grid_step`` grid, spread first) or
        ``bayesian`` (keras-tuner's Gaussian process on the constraint surface, where the
        product equals ``target`` up to rounding to 4 decimals).
      max_trials: trials in all, those of earlier runs included; None: the whole grid.
      epochs, steps_per_epoch, validation_steps, optimizer, learning_rate: the brief
        training of each candidate.
      train_fn: ``train_fn(scaling, dataset_fn, **these settings) -> {"val_accuracy": ...}``
        (more metrics are recorded too); default ``train_candidate``. Your own trainer
        (distribution strategy, precision, recipe) plugs in here.
    """
    import keras_tuner as kt

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    objective = kt.Objective(OBJECTIVE, "max")
    hp = kt.HyperParameters()
    if strategy == "grid":
        points = grid(target, tolerance, grid_step)
        for name in Coefficients._fields:
            hp.Float(name, 1.0, max(getattr(p, name) for p in points))
        oracle = _grid_oracle_class()(points, objective=objective, max_trials=max_trials,
                                      hyperparameters=hp, seed=seed)
    else:
        hp.Float("depth_share", 0.0, 1.0)
        hp.Float("width_share_of_rest", 0.0, 1.0)
        oracle = kt.oracles.BayesianOptimizationOracle(
            objective=objective, max_trials=max_trials or 20, hyperparameters=hp, seed=seed)
    train = functools.partial(
        train_fn or train_candidate, dataset_fn=dataset_fn, classes=classes, epochs=epochs,
        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
        optimizer=optimizer, learning_rate=learning_rate, seed=seed, verbose=max(0, verbose - 1))
    base = costs(baseline, classes=classes)

    def describe(trial_hp) -> dict:
        c = _coefficients(trial_hp, target)
        scaling = scale_baseline(baseline, c)
        cost = costs(scaling, classes=classes)
        return {**c._asdict(), "flops_factor": round(c.flops_factor, 4),
                "width": round(scaling.width_coefficient, 4),
                "depth": round(scaling.depth_coefficient, 4), "resolution": scaling.resolution,
                "blocks": len(scaling.blocks()), "params": cost.params, "flops": cost.flops,
                "flops_ratio": round(cost.flops / base.flops, 4)}

    def trial_fn(trial_hp):
        return train(scale_baseline(baseline, _coefficients(trial_hp, target)))

    tuner = _run(oracle, trial_fn, project_dir, "compound", overwrite, verbose)
    return SearchResult(_rows(tuner, describe), "compound", _compound_command)


def _compound_command(row: dict) -> str:
    """Step 2 starts here: B0 scaled with the found coefficients at phi = 1 (``scale fit``
    with the same coefficients picks the phi for a budget)."""
    c = Coefficients(row["alpha"], row["beta"], row["gamma"])
    return f"python -m effnet_tf.train --phi=1 {c.flags()} --model_dir=runs/searched_phi1"


# ---- tuning a chosen model ------------------------------------------------------------------


def tune(
    dataset_fn: Callable,
    *,
    classes: int,
    scaling: Scaling,
    project_dir: str,
    learning_rate: tuple[float, float] = (1e-4, 1e-2),
    dropout: tuple[float, float] | None = (0.1, 0.5),
    augment_magnitude: tuple[int, int] | None = None,
    strategy: str = "random",
    max_trials: int = 10,
    epochs: int = 2,
    steps_per_epoch: int | None = None,
    validation_steps: int | None = None,
    optimizer: str = "rmsprop",
    overwrite: bool = False,
    seed: int = 0,
    verbose: int = 0,
    train_flags: str = "--variant=b0",
    batch_size: int | None = None,
    train_fn: Callable[..., dict] | None = None,
) -> SearchResult:
    """Tunes learning rate (log scale), dropout and augmentation magnitude of one model.

    The magnitude reaches the data as ``dataset_fn(..., training=True, augment_magnitude=m)``
    (only when its range is given). The optimizer defaults to the paper's RMSprop so that
    the learning rate found carries over to training at the same batch size.
    ``train_flags`` names the model in the printed train command; with ``batch_size`` (of
    ``dataset_fn``) the learning rate is printed per 256 images, as the recipe takes it.
    ``train_fn`` as in ``search``.
    """
    import keras_tuner as kt

    if strategy not in TUNE_STRATEGIES:
        raise ValueError(f"strategy must be one of {TUNE_STRATEGIES}, got {strategy!r}")
    hp = kt.HyperParameters()
    hp.Float("learning_rate", *learning_rate, sampling="log")
    if dropout is not None:
        hp.Float("dropout", *dropout)
    if augment_magnitude is not None:
        hp.Int("augment_magnitude", *augment_magnitude)
    oracle_class = (kt.oracles.RandomSearchOracle if strategy == "random"
                    else kt.oracles.BayesianOptimizationOracle)
    oracle = oracle_class(objective=kt.Objective(OBJECTIVE, "max"), max_trials=max_trials,
                          hyperparameters=hp, seed=seed)

    def trial_fn(trial_hp):
        values = trial_hp.values
        extra = ({"augment_magnitude": values["augment_magnitude"]}
                 if "augment_magnitude" in values else {})
        return (train_fn or train_candidate)(
            scaling, dataset_fn, classes=classes, epochs=epochs,
            steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
            optimizer=optimizer, learning_rate=values["learning_rate"],
            dropout=values.get("dropout"), dataset_kwargs=extra, seed=seed,
            verbose=max(0, verbose - 1))

    tuner = _run(oracle, trial_fn, project_dir, "tune", overwrite, verbose)

    def command(row: dict) -> str:
        args, rate = ["python -m effnet_tf.train", train_flags], row["learning_rate"]
        args.append(f"--config.base_learning_rate={rate * 256 / batch_size:.4g}" if batch_size
                    else f"--config.base_learning_rate=<{rate:.4g} x 256 / batch>")
        if row.get("dropout") is not None:
            args.append(f"--config.dropout={row['dropout']:.3g}")
        if row.get("augment_magnitude") is not None:
            args += ["--config.augment=randaugment",
                     f"--config.randaugment_magnitude={row['augment_magnitude']}"]
        if optimizer != "rmsprop":
            args.append(f"--config.optimizer={optimizer}")
        return " ".join(args + ["--model_dir=runs/tuned"])

    return SearchResult(_rows(tuner, lambda trial_hp: dict(trial_hp.values)), "tune", command)


# ---- plots --------------------------------------------------------------------------------------


def plot_trials(result: SearchResult, path: str) -> None:
    """Accuracy against FLOPs (compound) or learning rate (tune), and the searched plane."""
    from matplotlib.figure import Figure

    rows = [r for r in result.rows if r[OBJECTIVE] is not None]
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    accuracy = [r[OBJECTIVE] for r in rows]
    best = result.best if rows else None
    if result.kind == "compound":
        xs = [r["flops"] / 1e6 for r in rows]
        left.set_xlabel("MFLOPs of the candidate")
        shares = [Coefficients(r["alpha"], r["beta"], r["gamma"]).shares() for r in rows]
        points = right.scatter([s[0] for s in shares], [s[2] for s in shares], c=accuracy,
                               cmap="viridis", s=60)
        right.set_xlabel("share of FLOPs growth on depth (log alpha / log product)")
        right.set_ylabel("share on resolution (2 log gamma / log product)")
        if best:
            chosen = Coefficients(best["alpha"], best["beta"], best["gamma"])
            s = chosen.shares()
            right.scatter([s[0]], [s[2]], marker="*", s=300, facecolors="none",
                          edgecolors="red", label=f"best {chosen.flags()}")
            p = PAPER.shares()
            right.scatter([p[0]], [p[2]], marker="x", color="black", label="paper 1.2, 1.1, 1.15")
            right.legend(fontsize=8)
    else:
        xs = [r["learning_rate"] for r in rows]
        left.set_xscale("log")
        left.set_xlabel("learning rate")
        key = "dropout" if rows and "dropout" in rows[0] else "learning_rate"
        points = right.scatter([r["learning_rate"] for r in rows], [r[key] for r in rows],
                               c=accuracy, cmap="viridis", s=60)
        right.set_xscale("log")
        right.set_xlabel("learning rate")
        right.set_ylabel(key)
    fig.colorbar(points, ax=right, label="validation accuracy")
    left.scatter(xs, accuracy, s=40)
    left.set_ylabel("validation accuracy")
    left.set_title(f"{len(rows)} trials ({result.kind})")
    left.grid(alpha=0.3)
    fig.savefig(path, dpi=100)
