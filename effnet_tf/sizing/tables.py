"""The sizing tables: one row per scaling (costs, optionally measured speed), a budget's answer,
a search's trials, timed model files; and their text as markdown, csv or json.

``python -m effnet_tf.summary`` and ``python -m effnet_tf.scale`` print these; the functions
here are what they print, so the notebooks and your scripts get the same tables. Costs need no
Keras; the measured columns import ``latency`` (and so Keras) only when asked for.
"""

from __future__ import annotations

import csv
import io
import json
from typing import TYPE_CHECKING, Sequence

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, PUBLISHED, Scaling

if TYPE_CHECKING:
    from effnet_tf.sizing.budget import Fit
    from effnet_tf.sizing.latency import LatencyProbe
    from effnet_tf.sizing.tuner import SearchResult

FORMATS = ("markdown", "csv", "json")


# ---- rows -----------------------------------------------------------------------------------


def summary_row(scaling: Scaling) -> dict:
    """One table row; params and FLOPs of the 1000-class model at its own resolution."""
    c = costs(scaling)
    return {
        "name": scaling.name,
        "source": scaling.source,
        "phi": scaling.phi,
        "width": round(scaling.width_coefficient, 4),
        "depth": round(scaling.depth_coefficient, 4),
        "resolution": scaling.resolution,
        "blocks": len(scaling.blocks()),
        "params": c.params,
        "flops": c.flops,
    }


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
    """The published ``variants``, then the formula at each of ``phis``: a table's rows."""
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


def fit_rows(result: Fit) -> list[dict]:
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


def model_file_rows(paths: Sequence[str], *, batch_sizes: Sequence[int] = (1,),
                    num_threads: int | None = None, **timing) -> list[dict]:
    """The latency of each saved model (``latency.model_file_latency``) at each batch size:
    median, min and 90th percentile ms, images/s and the number of timed runs."""
    from effnet_tf.sizing import latency

    rows = []
    for path in paths:
        for batch in batch_sizes:
            t = latency.model_file_latency(path, batch_size=batch, num_threads=num_threads,
                                           **timing)
            rows.append({"model": path, "batch": batch, "median_ms": round(t.median_ms, 3),
                         "min_ms": round(t.min_ms, 3), "p90_ms": round(t.p90_ms, 3),
                         "images_s": round(t.images_per_second, 1), "runs": t.runs})
    return rows


# ---- text -----------------------------------------------------------------------------------


def format_table(rows: list[dict], fmt: str = "markdown") -> str:
    """Rows as ``markdown`` (params in M, FLOPs in B), ``csv`` or ``json`` (exact numbers)."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    if fmt != "markdown":
        raise ValueError(f"format must be markdown, csv or json, got {fmt!r}")
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [_human(key, value) for key, value in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _human(key, value) -> str:
    if value is None:
        return "-"
    if key == "params":
        return f"{value / 1e6:.2f}M"
    if key == "flops":
        return f"{value / 1e9:.3f}B"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def table_report(items: Sequence[Scaling], *, fmt: str = "markdown",
                 export_tflite: str | None = None, plot: str | None = None,
                 alpha=ALPHA, beta=BETA, gamma=GAMMA, quantization: str = "float32",
                 **row_options) -> str:
    """``scale table``: the rows of ``items`` (``table_rows(**row_options)``) as text; with
    ``export_tflite`` a folder of their models (``latency.export_tflite``, a ``tflite_file``
    column), with ``plot`` the PNG of ``plots.plot_table``."""
    rows = table_rows(items, quantization=quantization, **row_options)
    if export_tflite:
        from effnet_tf.sizing import latency

        paths = latency.export_tflite(items, export_tflite, quantization=quantization)
        for row, path in zip(rows, paths):
            row["tflite_file"] = path
    text = format_table(rows, fmt)
    if plot:
        from effnet_tf.sizing.plots import plot_table

        plot_table(rows, plot, alpha=alpha, beta=beta, gamma=gamma)
        text += f"\n\nPlot written to {plot}" if fmt == "markdown" else ""
    return text


def fit_report(result: Fit, fmt: str = "markdown", *,
               probe: LatencyProbe | None = None) -> str:
    """``scale fit``: the budget, the answer and its neighbours (``fit_rows``) and the train
    commands; ``probe``, the ``LatencyProbe`` of a latency budget, is named in the heading."""
    budget = result.budget
    rows = fit_rows(result)
    commands = [result.train_command()]
    if result.variant is not None:
        commands.append(result.train_command(use_variant=True))
    if fmt == "json":
        return json.dumps({"budget": budget.describe(), "phi": result.phi, "rows": rows,
                           "train_commands": commands,
                           "measurements": [{"name": c.scaling.name, "latency_ms": c.latency_ms}
                                            for c in result.trace]}, indent=2)
    lines = [format_table(rows, fmt)]
    if fmt == "markdown":
        where = (f" ({probe.runtime}"
                 + (f" {probe.quantization}" if probe.runtime == "tflite" else "")
                 + f", batch {probe.batch_size}, {len(result.trace)} models timed)"
                 if probe else "")
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


def search_report(result: SearchResult, paths: Sequence[str], fmt: str = "markdown") -> str:
    """``scale search`` and ``scale tune``: every trial, where ``result.write`` put them
    (``paths``), the best and the command that trains it; after a compound search the
    ``scale fit`` command of step 2 (picking phi for a budget)."""
    best = result.best
    done = sum(r["val_accuracy"] is not None for r in result.rows)
    what = "coefficients" if result.kind == "compound" else "hyperparameters"
    lines = [format_table(result.rows, fmt), "",
             f"{done} trials finished; results: {', '.join(paths)}",
             f"Best {what}: val_accuracy {best['val_accuracy']:.4f} (trial {best['trial']})",
             "Train it:", f"  {result.train_command()}"]
    text = "\n".join(lines)
    if result.kind == "compound":
        return (text + "\nThen pick phi for a budget (step 2):\n"
                f"  python -m effnet_tf.scale fit --alpha={best['alpha']:g} "
                f"--beta={best['beta']:g} --gamma={best['gamma']:g} --max_flops=...")
    return text + ("\n(The rate was tuned without warm-up or decay; the recipe's schedule "
                   "starts from it.)")
