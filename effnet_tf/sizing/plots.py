"""The sizing plots: costs against phi (``scale table --plot``) and a search's trials.

matplotlib is imported on first use, through ``matplotlib.figure.Figure`` (no pyplot, so no
GUI backend and no global figure state in a library).
"""

from __future__ import annotations

from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import ALPHA, BETA, GAMMA, Scaling
from effnet_tf.sizing import budget as budget_lib
from effnet_tf.sizing.coefficients import PAPER, Coefficients
from effnet_tf.sizing.trial import OBJECTIVE


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


def plot_trials(result, path: str) -> None:
    """Accuracy against FLOPs (compound) or learning rate (tune), and the searched plane, of a
    ``tuner.SearchResult`` (not imported: its ``write`` calls this)."""
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
