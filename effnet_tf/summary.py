"""Prints the scaling table: width, depth, resolution, blocks, params and FLOPs per variant.

    python -m effnet_tf.summary                      # b0..b7
    python -m effnet_tf.summary --phi=-1 --phi=2.5   # the compound formula at any phi
    python -m effnet_tf.summary --variants=b0,b8,l2 --format=csv
"""

from __future__ import annotations

import csv
import io
import json

from absl import app, flags

from effnet_tf import flags as effnet_flags
from effnet_tf.modeling.costs import costs
from effnet_tf.modeling.scaling import PUBLISHED, Scaling

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


def scalings_from(variants, phis) -> list[Scaling]:
    return [Scaling.variant(v) for v in variants] + [Scaling.from_phi(float(p)) for p in phis]


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    try:
        rows = [summary_row(s) for s in scalings_from(flags.FLAGS.variants, flags.FLAGS.phi)]
    except ValueError as e:
        effnet_flags.fail(str(e))
    if not rows:
        effnet_flags.fail("nothing to list: give --variants (e.g. --variants=b0,b1) or --phi")
    print(format_table(rows, flags.FLAGS.format))


def define_flags():
    flags.DEFINE_list("variants", list(PUBLISHED), "Published variants to list.")
    flags.DEFINE_multi_float("phi", [], "Compound coefficients to list (formula path).")
    flags.DEFINE_enum("format", "markdown", ["markdown", "csv", "json"], "Output format.")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
