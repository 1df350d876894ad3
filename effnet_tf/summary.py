"""Prints the scaling table: width, depth, resolution, blocks, params and FLOPs per variant.

    python -m effnet_tf.summary                      # b0..b7 and lite0..lite4
    python -m effnet_tf.summary --phi=-1 --phi=2.5   # the compound formula at any phi
    python -m effnet_tf.summary --variants=b0,b8,l2 --table_format=csv

The rows and their formatting are ``effnet_tf.sizing.tables`` (``summary_row``,
``format_table``), shared with ``python -m effnet_tf.scale table``.
"""

from __future__ import annotations

from absl import app, flags

from effnet_tf import flags as effnet_flags
from effnet_tf.modeling.scaling import LITE, PUBLISHED
from effnet_tf.sizing.tables import FORMATS, format_table, scalings, summary_row


def main(argv):
    if len(argv) > 1:
        effnet_flags.fail(f"unexpected arguments: {' '.join(argv[1:])} (flags are --name=value)")
    try:
        rows = [summary_row(s) for s in scalings(flags.FLAGS.variants, flags.FLAGS.phi)]
    except ValueError as e:
        effnet_flags.fail(str(e))
    if not rows:
        effnet_flags.fail("nothing to list: give --variants (e.g. --variants=b0,b1) or --phi")
    print(format_table(rows, flags.FLAGS.table_format))


def define_flags():
    flags.DEFINE_list("variants", list(PUBLISHED + LITE),
                      "Published variants to list (b0..b8, l2, lite0..lite4).")
    flags.DEFINE_multi_float("phi", [], "Compound coefficients to list (formula path).")
    flags.DEFINE_enum("table_format", "markdown", list(FORMATS), "How the table is printed.")


if __name__ == "__main__":
    define_flags()
    app.run(main, flags_parser=effnet_flags.parse_flags)
