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
validation split, e.g. ``effnet_tf.sizing.data.make_dataset_fn(source, batch_size=64)`` over
``pipelines.build`` (a repeating training pipeline needs ``steps_per_epoch``).
The search lives in keras-tuner's project directory: run the same call again to resume it
(finished trials are kept, an interrupted one is retried); ``overwrite=True`` starts afresh.

``tune`` is the same machinery for a chosen model's learning rate, dropout and augmentation
magnitude.

This module ties the parts together and is the public face (``effnet_tf.search``): the
coefficient arithmetic is in ``coefficients.py``, one candidate's training in ``trial.py``,
the keras-tuner plumbing and ``SearchResult`` in ``tuner.py``, the trials' plot in
``plots.py``; their public names are imported here.
"""

from __future__ import annotations

import functools
from typing import Callable

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import Scaling
from effnet_tf.sizing.coefficients import (PAPER, Coefficients, from_shares, grid,
                                           parse_baseline, scale_baseline)
from effnet_tf.sizing.plots import plot_trials
from effnet_tf.sizing.trial import (BN_BATCHES, OBJECTIVE, make_optimizer,
                                    recalibrate_batch_norm, train_candidate)
from effnet_tf.sizing.tuner import (SearchResult, grid_oracle_class, oracle_seed, run_trials,
                                    trial_coefficients, trial_rows)

__all__ = [
    "search", "tune", "SearchResult", "STRATEGIES", "TUNE_STRATEGIES",
    # coefficients.py
    "Coefficients", "PAPER", "grid", "from_shares", "scale_baseline", "parse_baseline",
    # trial.py
    "OBJECTIVE", "BN_BATCHES", "train_candidate", "recalibrate_batch_norm", "make_optimizer",
    # plots.py
    "plot_trials",
]

STRATEGIES = ("grid", "bayesian")
TUNE_STRATEGIES = ("random", "bayesian")


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
        oracle = grid_oracle_class()(points, objective=objective, max_trials=max_trials,
                                      hyperparameters=hp, seed=oracle_seed(seed))
    else:
        hp.Float("depth_share", 0.0, 1.0)
        hp.Float("width_share_of_rest", 0.0, 1.0)
        oracle = kt.oracles.BayesianOptimizationOracle(
            objective=objective, max_trials=max_trials or 20, hyperparameters=hp, seed=oracle_seed(seed))
    train = functools.partial(
        train_fn or train_candidate, dataset_fn=dataset_fn, classes=classes, epochs=epochs,
        steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
        optimizer=optimizer, learning_rate=learning_rate, seed=seed, verbose=max(0, verbose - 1))
    base = costs(baseline, classes=classes)

    def describe(trial_hp) -> dict:
        c = trial_coefficients(trial_hp, target)
        scaling = scale_baseline(baseline, c)
        cost = costs(scaling, classes=classes)
        return {**c._asdict(), "flops_factor": round(c.flops_factor, 4),
                "width": round(scaling.width_coefficient, 4),
                "depth": round(scaling.depth_coefficient, 4), "resolution": scaling.resolution,
                "blocks": len(scaling.blocks()), "params": cost.params, "flops": cost.flops,
                "flops_ratio": round(cost.flops / base.flops, 4)}

    def trial_fn(trial_hp):
        return train(scale_baseline(baseline, trial_coefficients(trial_hp, target)))

    tuner = run_trials(oracle, trial_fn, project_dir, "compound", overwrite, verbose)
    return SearchResult(trial_rows(tuner, describe), "compound", _compound_command)


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
                          hyperparameters=hp, seed=oracle_seed(seed))

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

    tuner = run_trials(oracle, trial_fn, project_dir, "tune", overwrite, verbose)

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

    return SearchResult(trial_rows(tuner, lambda trial_hp: dict(trial_hp.values)), "tune",
                        command)
