"""Choose the scale for a device or a budget: tables, the budget solver, and the searches.

    python -m effnet_tf.scale table                                   # b0..b7: params, FLOPs
    python -m effnet_tf.scale table --variants= --phi_range=-1,8,0.5 --plot=scale.png
    python -m effnet_tf.scale table --variants=b0,b1,b2,b3 --measure --runtime=keras,tflite
    python -m effnet_tf.scale fit --max_flops=1.5e9                   # or --max_params=10e6
    python -m effnet_tf.scale fit --max_latency_ms=20 --runtime=tflite --quantization=int8
    python -m effnet_tf.scale fit --latency_of=current_model.tflite --runtime=tflite
    python -m effnet_tf.scale search --data=tfds:imagenette/160px --baseline=0.5,0.5,96 \\
        --steps_per_epoch=100 --project_dir=runs/search                # step 1 of the paper
    python -m effnet_tf.scale tune --data=/data/flowers --variant=b0 --project_dir=runs/tune
    python -m effnet_tf.scale table --phi_range=-2,2,0.5 --export_tflite=kit --quantization=int8
    python -m effnet_tf.scale latency kit/*.tflite                      # on the board

Measured numbers (``--measure``, latency budgets, ``latency``) are for THIS machine: run the
command on the target (a phone-class board with TensorFlow, or ``latency`` with only the
TFLite runtime: ``ai_edge_litert`` or ``tflite_runtime``). They are medians of timed runs;
on a machine busy with other jobs ``--statistic=min`` is steadier. ``--format`` picks
markdown, csv or json (as ``effnet_tf.summary``). Search and tune data: any
``pipelines.build`` source (``--validation_fraction`` for an image folder without a
validation folder), or ``--data=synthetic`` for a dry run.
"""

from __future__ import annotations

import functools
import os

from absl import app, flags

from effnet_tf.sizing import budget as budget_lib
from effnet_tf import flags as effnet_flags
from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, PUBLISHED, Scaling
from effnet_tf.summary import format_table, summary_row

COMMANDS = ("table", "fit", "search", "tune", "latency")

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags; defined on demand so that importing this module (the functions
    are the Python API) adds no global absl flags, which other entry points also define."""
    # Scalings (table, fit), as effnet_tf.summary's.
    flags.DEFINE_list("variants", list(PUBLISHED), "Published variants to list (table).")
    flags.DEFINE_multi_float("phi", [], "Formula rows at these phi (table).")
    flags.DEFINE_enum("format", "markdown", ["markdown", "csv", "json"], "Output format.")
    flags.DEFINE_string("phi_range", None, "start,stop,step: formula rows from start to stop "
                        "inclusive, e.g. -1,8,0.5 (table).")
    flags.DEFINE_float("alpha", ALPHA, "Depth coefficient of the formula (table, fit).")
    flags.DEFINE_float("beta", BETA, "Width coefficient of the formula (table, fit).")
    flags.DEFINE_float("gamma", GAMMA, "Resolution coefficient of the formula (table, fit).")
    flags.DEFINE_integer("classes", 1000, "Classifier outputs (fit counts them; search/tune: "
                         "default the data's).")
    # Measurement (table --measure, fit --max_latency_ms, latency).
    flags.DEFINE_bool("measure", False, "table: add measured latency and training images/s.")
    flags.DEFINE_list("runtime", ["keras"], "keras and/or tflite (XNNPACK interpreter).")
    flags.DEFINE_enum("quantization", "float32", ["float32", "float16", "int8"],
                      "TFLite model to time (int8 calibrated on random pixels: speed only).")
    flags.DEFINE_integer("batch_size", 16, "table: second latency batch and training batch; "
                         "search/tune: training batch.")
    flags.DEFINE_bool("train", True, "table --measure: also training images/s.")
    flags.DEFINE_integer("threads", None, "TFLite interpreter threads (default: all cores).")
    flags.DEFINE_float("min_seconds", 1.0, "Time each latency for at least this long.")
    flags.DEFINE_enum("statistic", "median", ["median", "min"], "Latency of the timed runs: "
                      "median (typical) or min (steadiest on a machine busy with other jobs).")
    flags.DEFINE_string("plot", None, "table: write params/FLOPs/latency vs phi to this PNG.")
    flags.DEFINE_string("export_tflite", None, "table: write each row's model (random "
                        "weights, --quantization) to this folder, to time on a device "
                        "(scale latency, or TFLite's benchmark_model on a phone).")
    flags.DEFINE_string("output", None, "table/fit: also write the table to this file; "
                        "search/tune: prefix of the .csv/.json/.png results.")
    # fit
    flags.DEFINE_float("max_flops", None, "fit: multiply-adds per image.")
    flags.DEFINE_float("max_params", None, "fit: parameters.")
    flags.DEFINE_float("max_latency_ms", None, "fit: latency measured here (see --runtime).")
    flags.DEFINE_string("latency_of", None, "fit: a .tflite or .keras model whose latency here "
                        "is the budget (as fast as the model you have).")
    flags.DEFINE_integer("latency_batch_size", 1, "fit: batch size of the latency budget.")
    # search and tune
    flags.DEFINE_string("data", None, "search/tune: a pipelines source (tfds:<name>, TFRecord "
                        "folder or glob, image folder) or 'synthetic' for a dry run.")
    flags.DEFINE_string("data_dir", None, "search/tune: TFDS data_dir.")
    flags.DEFINE_float("validation_fraction", 0.0, "search/tune: of an image folder without "
                       "a validation folder, hold out this fraction of each class.")
    flags.DEFINE_string("train_split", "train", "search/tune: split to train candidates on.")
    flags.DEFINE_string("val_split", "validation", "search/tune: split to rank them on.")
    flags.DEFINE_string("project_dir", None, "search/tune: keras-tuner directory; the same "
                        "directory resumes.")
    flags.DEFINE_bool("overwrite", False, "search/tune: start afresh instead of resuming.")
    flags.DEFINE_string("baseline", "b0", "search: phi = 0 model, a variant, phi=X or "
                        "width,depth,resolution (a small proxy runs in minutes).")
    flags.DEFINE_string("variant", "b0", "tune: the model, as --baseline.")
    flags.DEFINE_float("target", 2.0, "search: alpha * beta**2 * gamma**2 target.")
    flags.DEFINE_float("tolerance", 0.05, "search: relative tolerance of the target (grid).")
    flags.DEFINE_string("strategy", None, "search: grid (default) or bayesian; tune: random "
                        "(default) or bayesian.")
    flags.DEFINE_float("grid_step", 0.05, "search: grid spacing of alpha, beta, gamma.")
    flags.DEFINE_integer("max_trials", None, "search/tune: trials in all (default 20 / 10).")
    flags.DEFINE_integer("epochs", 2, "search/tune: epochs per candidate.")
    flags.DEFINE_integer("steps_per_epoch", None, "search/tune: default the train split's size "
                         "over the batch size.")
    flags.DEFINE_integer("validation_steps", None, "search/tune: default the whole split.")
    flags.DEFINE_float("learning_rate", 1e-3, "search: learning rate of every candidate.")
    flags.DEFINE_string("optimizer", None, "search: adam (default); tune: rmsprop (default, "
                        "the recipe's, so the rate carries over) or adam.")
    flags.DEFINE_list("lr_range", ["1e-4", "1e-2"], "tune: learning rate range (log scale).")
    flags.DEFINE_list("dropout_range", ["0.1", "0.5"], "tune: dropout range; empty: not tuned.")
    flags.DEFINE_list("magnitude_range", ["2", "20"], "tune: RandAugment magnitude range; "
                      "empty: not tuned.")
    flags.DEFINE_integer("seed", 0, "search/tune: seed of the initial weights and the oracle.")


# ---- table ----------------------------------------------------------------------------------


def phi_values(phis=(), phi_range: str | None = None) -> list[float]:
    """``phis`` plus ``start,stop,step`` (stop included), in order, without duplicates."""
    values = [float(p) for p in phis]
    if phi_range:
        try:
            start, stop, step = (float(v) for v in phi_range.split(","))
        except ValueError:
            raise ValueError(f"phi_range must be start,stop,step, got {phi_range!r}") from None
        if not step > 0 or stop < start:
            raise ValueError(f"phi_range needs step > 0 and stop >= start, got {phi_range!r}")
        values += [round(start + i * step, 6) for i in range(int((stop - start) / step + 1e-9) + 1)]
    return list(dict.fromkeys(values))


def scalings(variants=PUBLISHED, phis=(), alpha=ALPHA, beta=BETA, gamma=GAMMA) -> list[Scaling]:
    return ([Scaling.variant(v) for v in variants]
            + [Scaling.from_phi(p, alpha, beta, gamma) for p in phis])


def table_rows(items, *, measure: bool = False, runtimes=("keras",), batch_size: int = 16,
               train: bool = True, quantization: str = "float32", num_threads=None,
               clear_session: bool = False, **timing) -> list[dict]:
    """``summary_row`` of each scaling, plus with ``measure`` the measured columns: latency in
    ms per batch at batch 1 and ``batch_size`` per runtime, and training images/s.
    ``clear_session`` as in ``latency.measure``."""
    rows = []
    for scaling in items:
        row = summary_row(scaling)
        if measure:
            from effnet_tf.sizing import latency

            measured = latency.measure(
                scaling, batch_sizes=sorted({1, batch_size}), runtimes=runtimes,
                quantization=quantization, train_batch_size=batch_size if train else None,
                num_threads=num_threads, clear_session=clear_session, **timing)
            row.update({k: round(v, 2) for k, v in measured.items()})
        rows.append(row)
    return rows


def plot_table(rows: list[dict], path: str, *, alpha=ALPHA, beta=BETA, gamma=GAMMA) -> None:
    """Params, FLOPs (and measured latency columns) against phi, on log axes.

    Curves: the formula on a fine grid of phi. Published variants are marked at the phi of
    equal FLOPs (the formula phi with their FLOPs), so the params and latency panels show how
    the hand-rounded table differs from the formula at equal compute.
    """
    from matplotlib.figure import Figure

    measured = [k for k in rows[0] if "_ms_bs" in k]
    phis = [r["phi"] for r in rows if r["phi"] is not None]
    low, high = min(phis + [0.0]), max(phis + [7.0])
    grid = [low + i * (high - low) / 200 for i in range(201)]
    curve = [costs(Scaling.from_phi(p, alpha, beta, gamma)) for p in grid]
    panels = ["params", "flops"] + measured
    fig = Figure(figsize=(5 * len(panels), 4.2), layout="constrained")
    axes = fig.subplots(1, len(panels))
    variants = [r for r in rows if r["source"] == "table"]
    for ax, key in zip(axes, panels):
        if key in ("params", "flops"):
            scale = 1e6 if key == "params" else 1e9
            ax.plot(grid, [getattr(c, key) / scale for c in curve],
                    label=f"formula alpha={alpha:g} beta={beta:g} gamma={gamma:g}")
            ax.set_ylabel("params (M)" if key == "params" else "FLOPs (B multiply-adds)")
        else:
            scale = 1.0
            ax.set_ylabel(f"{key.split('_ms_')[0]} latency, ms per batch of "
                          f"{key.rsplit('bs', 1)[1]}")
        formula = [r for r in rows if r["phi"] is not None and r.get(key) is not None]
        if formula:
            ax.plot([r["phi"] for r in formula], [r[key] / scale for r in formula], "o",
                    color="tab:blue", label="measured" if scale == 1 else "table rows")
        for r in variants:
            if r.get(key) is None:
                continue
            x = budget_lib.fit(budget_lib.Budget(max_flops=r["flops"]), alpha=alpha,
                               beta=beta, gamma=gamma, step=0.01, variants=()).phi
            ax.plot([x], [r[key] / scale], "s", color="tab:red")
            ax.annotate(r["name"].upper(), (x, r[key] / scale), textcoords="offset points",
                        xytext=(4, -10), fontsize=8, color="tab:red")
        ax.plot([], [], "s", color="tab:red", label="published, at the phi of equal FLOPs")
        ax.set_yscale("log")
        ax.set_xlabel("phi")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("EfficientNet compound scaling (no accuracy)")
    fig.savefig(path, dpi=100)


def export_tflite(items, directory: str, *, quantization: str = "float32",
                  classes: int = 1000) -> list[str]:
    """Each scaling as ``{directory}/{name}_{quantization}.tflite`` with random weights: same
    speed as trained ones (int8 is calibrated on random pixels: timing only)."""
    import keras

    from effnet_tf.sizing import latency
    from effnet_tf.deploy import tflite

    os.makedirs(directory, exist_ok=True)
    paths = []
    for scaling in items:
        keras.utils.clear_session(free_memory=True)
        model = latency.build(scaling, classes)
        path = os.path.join(directory, f"{scaling.name}_{quantization}.tflite")
        with open(path, "wb") as f:
            f.write(tflite.convert(model, quantization=quantization,
                                   representative_data=latency.random_calibration(model)))
        paths.append(path)
    return paths


def _timing() -> dict:
    return {"min_seconds": FLAGS.min_seconds}


def _statistic() -> dict:
    return {"statistic": FLAGS.statistic}


def run_table() -> str:
    items = scalings(FLAGS.variants, phi_values(FLAGS.phi, FLAGS.phi_range), FLAGS.alpha,
                     FLAGS.beta, FLAGS.gamma)
    rows = table_rows(
        items,
        measure=FLAGS.measure, runtimes=FLAGS.runtime, batch_size=FLAGS.batch_size,
        train=FLAGS.train, quantization=FLAGS.quantization, num_threads=FLAGS.threads,
        clear_session=True, **_statistic(), **_timing())
    if not rows:
        raise ValueError("nothing to list: give --variants, --phi or --phi_range")
    if FLAGS.export_tflite:
        paths = export_tflite(items, FLAGS.export_tflite, quantization=FLAGS.quantization)
        for row, path in zip(rows, paths):
            row["tflite_file"] = path
    text = format_table(rows, FLAGS.format)
    if FLAGS.plot:
        plot_table(rows, FLAGS.plot, alpha=FLAGS.alpha, beta=FLAGS.beta, gamma=FLAGS.gamma)
        text += f"\n\nPlot written to {FLAGS.plot}" if FLAGS.format == "markdown" else ""
    return text


# ---- fit ------------------------------------------------------------------------------------


def fit_rows(result: budget_lib.Fit) -> list[dict]:
    """The answer and its neighbours as table rows: costs for ``result.classes`` classes."""
    rows = []
    for label, candidate in (("answer", result.best), (f"phi + {result.step:g}", result.above),
                             ("largest variant", result.variant),
                             ("next variant", result.variant_above)):
        if candidate is None:
            continue
        row = {"role": label, **summary_row(candidate.scaling)}
        row.update(params=candidate.costs.params, flops=candidate.costs.flops)
        if result.budget.max_latency_ms is not None:
            row["latency_ms"] = (None if candidate.latency_ms is None
                                 else round(candidate.latency_ms, 3))
        row["fits"] = "yes" if candidate.fits(result.budget) else "no"
        rows.append(row)
    return rows


def run_fit() -> str:
    max_latency, latency_fn = FLAGS.max_latency_ms, None
    if FLAGS.latency_of or max_latency is not None:
        from effnet_tf.sizing import latency

        if len(FLAGS.runtime) != 1:
            raise ValueError(f"fit measures one --runtime, got {FLAGS.runtime}")
        if FLAGS.latency_of:
            max_latency = latency.model_file_latency(
                FLAGS.latency_of, batch_size=FLAGS.latency_batch_size,
                num_threads=FLAGS.threads, **_timing()).ms(FLAGS.statistic)
        latency_fn = latency.LatencyProbe(
            runtime=FLAGS.runtime[0], batch_size=FLAGS.latency_batch_size,
            quantization=FLAGS.quantization, classes=FLAGS.classes, num_threads=FLAGS.threads,
            clear_session=True, **_statistic(), **_timing())
    budget = budget_lib.Budget(FLAGS.max_flops, FLAGS.max_params, max_latency)
    result = budget_lib.fit(budget, alpha=FLAGS.alpha, beta=FLAGS.beta, gamma=FLAGS.gamma,
                            classes=FLAGS.classes, latency_fn=latency_fn)
    rows = fit_rows(result)
    commands = [result.train_command()]
    if result.variant is not None:
        commands.append(result.train_command(use_variant=True))
    if FLAGS.format == "json":
        import json

        return json.dumps({"budget": budget.describe(), "phi": result.phi, "rows": rows,
                           "train_commands": commands,
                           "measurements": [{"name": c.scaling.name, "latency_ms": c.latency_ms}
                                            for c in result.trace]}, indent=2)
    lines = [format_table(rows, FLAGS.format)]
    if FLAGS.format == "markdown":
        where = (f" ({FLAGS.runtime[0]}"
                 + (f" {FLAGS.quantization}" if FLAGS.runtime[0] == "tflite" else "")
                 + f", batch {FLAGS.latency_batch_size}, {len(result.trace)} models timed)"
                 if latency_fn else "")
        lines = [f"Budget: {budget.describe()}{where}",
                 f"Largest phi: {result.phi:g} (phi + {result.step:g} is over budget); "
                 f"largest published variant: "
                 f"{result.variant.scaling.name if result.variant else 'none (B0 is over)'}",
                 "", *lines, "", "Train it:", *(f"  {c}" for c in commands)]
        if result.latency_looks_noisy():
            lines.insert(2, f"Warning: {result.above.latency_ms / result.best.latency_ms:.2f}x "
                         f"the latency for {result.above.costs.flops / result.best.costs.flops:.3f}"
                         "x the FLOPs across the boundary: the timings were disturbed (a busy "
                         "machine?). Re-run with a longer --min_seconds or --statistic=min.")
    return "\n".join(lines)


# ---- search and tune ------------------------------------------------------------------------


def _source_options(data_dir=None, validation_fraction=0.0) -> dict:
    options = {"data_dir": data_dir} if data_dir else {}
    if validation_fraction:
        options["validation_fraction"] = validation_fraction
    return options


def make_dataset_fn(data: str, *, batch_size: int, train_split: str = "train",
                    val_split: str = "validation", data_dir: str | None = None,
                    validation_fraction: float = 0.0, classes: int | None = None,
                    seed: int = 0):
    """``dataset_fn(image_size=, training=, augment_magnitude=None)`` for the searches, from
    ``pipelines.build`` (any of its sources) or the built-in ``synthetic`` data."""
    if data == "synthetic":
        from pipelines.synthetic import colour_batches

        def synthetic(image_size, training, augment_magnitude=None):
            return colour_batches(image_size, training, classes=classes or 4,
                                  batch_size=batch_size, seed=seed,
                                  augment_magnitude=augment_magnitude)

        return synthetic
    import pipelines

    options = _source_options(data_dir, validation_fraction)

    def dataset_fn(image_size, training, augment_magnitude=None):
        kwargs = dict(image_size=image_size, batch_size=batch_size, training=training,
                      seed=seed, **options)
        if augment_magnitude is not None:
            kwargs.update(augment="randaugment", randaugment_magnitude=float(augment_magnitude))
        return pipelines.build(data, train_split if training else val_split, **kwargs)

    return dataset_fn


def _data_settings() -> dict:
    """Classes and steps per epoch of --data (pipelines sources know them, mostly)."""
    from effnet_tf.sizing import search

    if not FLAGS.data:
        raise ValueError("search and tune need --data")
    if not FLAGS.project_dir:
        raise ValueError("search and tune need --project_dir")
    classes, steps = FLAGS["classes"].value if FLAGS["classes"].present else None, None
    if FLAGS.data == "synthetic":
        classes = classes or 4
        steps = FLAGS.steps_per_epoch
    else:
        import pipelines

        options = _source_options(FLAGS.data_dir, FLAGS.validation_fraction)
        classes = classes or pipelines.num_classes(FLAGS.data, **options)
        examples = pipelines.num_examples(FLAGS.data, FLAGS.train_split, **options)
        steps = FLAGS.steps_per_epoch or (examples // FLAGS.batch_size if examples else None)
        if not steps:
            raise ValueError("the training pipeline repeats and its size is unknown: give "
                             "--steps_per_epoch")
        if not classes:
            raise ValueError("the number of classes of --data is unknown: give --classes")
    dataset_fn = make_dataset_fn(FLAGS.data, batch_size=FLAGS.batch_size,
                                 train_split=FLAGS.train_split, val_split=FLAGS.val_split,
                                 data_dir=FLAGS.data_dir,
                                 validation_fraction=FLAGS.validation_fraction, classes=classes,
                                 seed=FLAGS.seed)
    # One process runs every trial: each frees the models of the trials before it.
    train_fn = functools.partial(search.train_candidate, clear_session=True)
    return dict(dataset_fn=dataset_fn, classes=classes, steps_per_epoch=steps,
                validation_steps=FLAGS.validation_steps, epochs=FLAGS.epochs,
                project_dir=FLAGS.project_dir, overwrite=FLAGS.overwrite, seed=FLAGS.seed,
                verbose=1, train_fn=train_fn)


def _report(result, what: str) -> str:
    prefix = FLAGS.output or os.path.join(FLAGS.project_dir, f"{result.kind}_trials")
    paths = result.write(prefix)
    best = result.best
    done = sum(r["val_accuracy"] is not None for r in result.rows)
    lines = [format_table(result.rows, FLAGS.format), "",
             f"{done} trials finished; results: {', '.join(paths)}",
             f"Best {what}: val_accuracy {best['val_accuracy']:.4f} (trial {best['trial']})",
             "Train it:", f"  {result.train_command()}"]
    return "\n".join(lines)


def run_search() -> str:
    from effnet_tf.sizing import search

    settings = _data_settings()
    result = search.search(
        baseline=search.parse_baseline(FLAGS.baseline), target=FLAGS.target,
        tolerance=FLAGS.tolerance, strategy=FLAGS.strategy or "grid",
        grid_step=FLAGS.grid_step, max_trials=FLAGS.max_trials or 20,
        optimizer=FLAGS.optimizer or "adam", learning_rate=FLAGS.learning_rate, **settings)
    best = result.best
    return (_report(result, "coefficients") + "\nThen pick phi for a budget (step 2):\n"
            f"  python -m effnet_tf.scale fit --alpha={best['alpha']:g} "
            f"--beta={best['beta']:g} --gamma={best['gamma']:g} --max_flops=...")


def _range(values, cast):
    return tuple(cast(v) for v in values) if values else None


def run_tune() -> str:
    from effnet_tf.sizing import search

    settings = _data_settings()
    scaling = search.parse_baseline(FLAGS.variant)
    flag = (f"--variant={scaling.name}" if scaling.source == "table" else
            f"--phi={scaling.phi:g}" if scaling.source == "formula" else
            f"--config.width_coefficient={scaling.width_coefficient:g} "
            f"--config.depth_coefficient={scaling.depth_coefficient:g} "
            f"--image_size={scaling.resolution}")
    result = search.tune(
        scaling=scaling, learning_rate=_range(FLAGS.lr_range, float),
        dropout=_range(FLAGS.dropout_range, float),
        augment_magnitude=_range(FLAGS.magnitude_range, int),
        strategy=FLAGS.strategy or "random", max_trials=FLAGS.max_trials or 10,
        optimizer=FLAGS.optimizer or "rmsprop", train_flags=flag,
        batch_size=FLAGS.batch_size, **settings)
    return (_report(result, "hyperparameters") + "\n(The rate was tuned without warm-up or "
            "decay; the recipe's schedule starts from it.)")


# ---- latency of saved models ----------------------------------------------------------------


def run_latency(paths) -> str:
    from effnet_tf.sizing import latency

    if not paths:
        raise ValueError("latency needs model files: python -m effnet_tf.scale latency a.tflite")
    rows = []
    for path in paths:
        for batch in sorted({1, FLAGS.batch_size}):
            t = latency.model_file_latency(path, batch_size=batch, num_threads=FLAGS.threads,
                                           **_timing())
            rows.append({"model": path, "batch": batch, "median_ms": round(t.median_ms, 3),
                         "min_ms": round(t.min_ms, 3), "p90_ms": round(t.p90_ms, 3),
                         "images_s": round(t.images_per_second, 1), "runs": t.runs})
    return format_table(rows, FLAGS.format)


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        given = f", got {argv[1]!r}" if len(argv) > 1 else ""
        effnet_flags.fail(f"give a command: {' | '.join(COMMANDS)}{given}")
    command, rest = argv[1], argv[2:]
    if rest and command != "latency":
        effnet_flags.fail(f"unexpected arguments: {' '.join(rest)} (flags are --name=value)")
    try:
        if command == "latency":
            text = run_latency(rest)
        else:
            text = {"table": run_table, "fit": run_fit, "search": run_search,
                    "tune": run_tune}[command]()
    except (ValueError, FileNotFoundError) as e:
        effnet_flags.fail(str(e))
    print(text)
    if FLAGS.output and command in ("table", "fit"):
        with open(FLAGS.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
