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
on a machine busy with other jobs ``--statistic=min`` is steadier. ``--table_format``
picks markdown, csv or json (as ``effnet_tf.summary``). Search and tune data: any
``pipelines.build`` source (``--validation_fraction`` for an image folder without a
validation folder), or ``--data=synthetic`` for a dry run.

This module is the command only: flags, their checks, and per subcommand a call into
``effnet_tf.sizing`` (``tables`` for rows and text, ``budget``, ``latency``, ``data``,
``search``), which is the Python API.
"""

from __future__ import annotations

import functools
import os

from absl import app, flags

from effnet_tf import flags as effnet_flags
from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, LITE, PUBLISHED
from effnet_tf.sizing import budget as budget_lib
from effnet_tf.sizing import tables

COMMANDS = ("table", "fit", "search", "tune", "latency")

FLAGS = flags.FLAGS


def define_flags():
    """The command's flags; defined on demand so that importing this module adds no global
    absl flags, which other entry points also define."""
    # Scalings (table, fit), as effnet_tf.summary's.
    flags.DEFINE_list("variants", list(PUBLISHED + LITE), "Published variants to list (table; "
                      "b8 and l2 too).")
    flags.DEFINE_multi_float("phi", [], "Formula rows at these phi (table).")
    flags.DEFINE_enum("table_format", "markdown", list(tables.FORMATS),
                      "How tables are printed (and written to --output).")
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
    flags.DEFINE_string("search_strategy", None, "search: grid (default) or bayesian; tune: "
                        "random (default) or bayesian.")
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


# ---- subcommands: flags in, one library call, text out ---------------------------------------


def _timing() -> dict:
    return {"min_seconds": FLAGS.min_seconds}


def _statistic() -> dict:
    return {"statistic": FLAGS.statistic}


def run_table() -> str:
    items = tables.scalings(FLAGS.variants, tables.phi_values(FLAGS.phi, FLAGS.phi_range),
                            FLAGS.alpha, FLAGS.beta, FLAGS.gamma)
    if not items:
        raise ValueError("nothing to list: give --variants, --phi or --phi_range")
    return tables.table_report(
        items, fmt=FLAGS.table_format, export_tflite=FLAGS.export_tflite, plot=FLAGS.plot,
        alpha=FLAGS.alpha, beta=FLAGS.beta, gamma=FLAGS.gamma, quantization=FLAGS.quantization,
        measure=FLAGS.measure, runtimes=FLAGS.runtime, batch_size=FLAGS.batch_size,
        train=FLAGS.train, num_threads=FLAGS.threads, clear_session=True, **_statistic(),
        **_timing())


def run_fit() -> str:
    max_latency, probe = FLAGS.max_latency_ms, None
    if FLAGS.latency_of or max_latency is not None:
        from effnet_tf.sizing import latency

        if len(FLAGS.runtime) != 1:
            raise ValueError(f"fit measures one --runtime, got {FLAGS.runtime}")
        if FLAGS.latency_of:
            max_latency = latency.model_file_latency(
                FLAGS.latency_of, batch_size=FLAGS.latency_batch_size,
                num_threads=FLAGS.threads, **_timing()).ms(FLAGS.statistic)
        probe = latency.LatencyProbe(
            runtime=FLAGS.runtime[0], batch_size=FLAGS.latency_batch_size,
            quantization=FLAGS.quantization, classes=FLAGS.classes, num_threads=FLAGS.threads,
            clear_session=True, **_statistic(), **_timing())
    budget = budget_lib.Budget(FLAGS.max_flops, FLAGS.max_params, max_latency)
    result = budget_lib.fit(budget, alpha=FLAGS.alpha, beta=FLAGS.beta, gamma=FLAGS.gamma,
                            classes=FLAGS.classes, latency_fn=probe)
    return tables.fit_report(result, FLAGS.table_format, probe=probe)


def _data_settings() -> dict:
    """The search and tune arguments that come from --data and the shared flags."""
    from effnet_tf.sizing import data, trial

    if not FLAGS.data:
        raise ValueError("search and tune need --data")
    if not FLAGS.project_dir:
        raise ValueError("search and tune need --project_dir")
    source = dict(data_dir=FLAGS.data_dir, validation_fraction=FLAGS.validation_fraction)
    classes, steps = data.source_settings(
        FLAGS.data, batch_size=FLAGS.batch_size,
        classes=FLAGS["classes"].value if FLAGS["classes"].present else None,
        steps_per_epoch=FLAGS.steps_per_epoch, train_split=FLAGS.train_split, **source)
    dataset_fn = data.make_dataset_fn(FLAGS.data, batch_size=FLAGS.batch_size,
                                      train_split=FLAGS.train_split, val_split=FLAGS.val_split,
                                      classes=classes, seed=FLAGS.seed, **source)
    # One process runs every trial: each frees the models of the trials before it.
    train_fn = functools.partial(trial.train_candidate, clear_session=True)
    return dict(dataset_fn=dataset_fn, classes=classes, steps_per_epoch=steps,
                validation_steps=FLAGS.validation_steps, epochs=FLAGS.epochs,
                project_dir=FLAGS.project_dir, overwrite=FLAGS.overwrite, seed=FLAGS.seed,
                verbose=1, train_fn=train_fn)


def _report(result) -> str:
    prefix = FLAGS.output or os.path.join(FLAGS.project_dir, f"{result.kind}_trials")
    return tables.search_report(result, result.write(prefix), FLAGS.table_format)


def run_search() -> str:
    from effnet_tf.sizing import coefficients, search

    settings = _data_settings()
    return _report(search.search(
        baseline=coefficients.parse_baseline(FLAGS.baseline), target=FLAGS.target,
        tolerance=FLAGS.tolerance, strategy=FLAGS.search_strategy or "grid",
        grid_step=FLAGS.grid_step, max_trials=FLAGS.max_trials or 20,
        optimizer=FLAGS.optimizer or "adam", learning_rate=FLAGS.learning_rate, **settings))


def _range(values, cast):
    return tuple(cast(v) for v in values) if values else None


def run_tune() -> str:
    from effnet_tf.sizing import coefficients, search

    settings = _data_settings()
    scaling = coefficients.parse_baseline(FLAGS.variant)
    return _report(search.tune(
        scaling=scaling, learning_rate=_range(FLAGS.lr_range, float),
        dropout=_range(FLAGS.dropout_range, float),
        augment_magnitude=_range(FLAGS.magnitude_range, int),
        strategy=FLAGS.search_strategy or "random", max_trials=FLAGS.max_trials or 10,
        optimizer=FLAGS.optimizer or "rmsprop", train_flags=coefficients.train_flags(scaling),
        batch_size=FLAGS.batch_size, **settings))


def run_latency(paths) -> str:
    if not paths:
        raise ValueError("latency needs model files: python -m effnet_tf.scale latency a.tflite")
    return tables.format_table(
        tables.model_file_rows(paths, batch_sizes=sorted({1, FLAGS.batch_size}),
                               num_threads=FLAGS.threads, **_timing()), FLAGS.table_format)


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
