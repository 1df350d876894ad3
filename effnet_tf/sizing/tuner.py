"""keras-tuner plumbing shared by ``search.search`` and ``search.tune``, and their result.

keras-tuner is built around a HyperModel and, for grids, a GridSearch oracle that neither
fits here: a candidate's model depends on the image size its data is built at, and
GridSearch walks the whole product (mostly off the constraint surface) and cannot resume.
So a trial is a plain function of the hyperparameters (``run_trials``), the grid oracle
visits only feasible points and resumes from the finished trials (``grid_oracle_class``), and
the trials come back as rows (``trial_rows``, ``SearchResult``). keras-tuner is imported on
first use.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import Callable, Sequence

from effnet_tf.sizing.coefficients import Coefficients, from_shares
from effnet_tf.sizing.plots import plot_trials
from effnet_tf.sizing.trial import OBJECTIVE


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


def oracle_seed(seed: int) -> int:
    """The seed handed to a keras-tuner oracle for our ``seed``. The oracle replaces a falsy
    seed by a random one (``self.seed = seed or random.randint(1, 10000)`` in keras-tuner's
    ``engine/oracle.py``), so ``--seed 0``, our default, gave other trials on every run; shifted
    by one, every seed of ours is a fixed one of the oracle's."""
    return seed + 1 if seed >= 0 else seed


def grid_oracle_class():
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
            tried = {trial_coefficients(t.hyperparameters) for t in self.trials.values()}
            for point in self.points:
                if point not in tried:
                    return {"status": "RUNNING",
                            "values": point._asdict()}
            return {"status": "STOPPED", "values": None}

    return ConstrainedGridOracle


def trial_coefficients(hp, target: float | None = None) -> Coefficients:
    """A trial's coefficients: given on the grid, from the two shares in a Bayesian search."""
    values = hp.values
    if "alpha" in values:
        return Coefficients(values["alpha"], values["beta"], values["gamma"])
    return from_shares(values["depth_share"], values["width_share_of_rest"], target)


def run_trials(oracle, trial_fn, project_dir, project_name, overwrite, verbose):
    """Runs (or resumes, in ``project_dir/project_name``) every trial ``oracle`` hands out."""
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


def trial_rows(tuner, describe: Callable) -> list[dict]:
    """One row per trial, in trial order: ``describe(hyperparameters)`` and the metrics."""
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
