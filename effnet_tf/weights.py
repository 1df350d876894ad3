"""``python -m effnet_tf.weights``: the catalogue of published weights, fetching and converting.

    python -m effnet_tf.weights list                      # the catalogue
    python -m effnet_tf.weights fetch noisy-student b3    # pre-fetch into the cache
    python -m effnet_tf.weights convert ckpt_dir/ out.h5  # convert a local checkpoint

The loading functions live in ``effnet_tf.modeling.weights`` and are importable from here as
before (``effnet_tf.weights.load(model, "imagenet")``).
"""

from __future__ import annotations

import argparse
import sys

from effnet_tf.modeling import weight_sets
from effnet_tf.modeling.weights import (convert, is_checkpoint, load, pretrained_path, read_h5,
                                        save_h5, variant_of)

__all__ = ["convert", "is_checkpoint", "load", "main", "pretrained_path", "read_h5", "save_h5",
           "variant_of"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit code 2, as for any usage error
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m effnet_tf.weights",
                     description="Published EfficientNet weights: list, fetch, convert.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    commands.add_parser("list", help="print the catalogue of weight sets")
    fetch = commands.add_parser("fetch", help="download (and convert) into the Keras cache")
    fetch.add_argument("set", help=f"one of {', '.join(weight_sets.SETS)}")
    fetch.add_argument("variant", help="b0..b8 or l2, as the set has them")
    fetch.add_argument("--notop", action="store_true",
                       help="keras.applications' no-top file (the 'imagenet' set)")
    convert_cmd = commands.add_parser("convert", help="official TF checkpoint -> by-name .h5")
    convert_cmd.add_argument("checkpoint", help="checkpoint folder or prefix (.../model.ckpt)")
    convert_cmd.add_argument("out", help="output .h5 file")
    convert_cmd.add_argument("--variant", help="default: from the checkpoint's scope name")
    return parser


def _print_catalogue() -> None:
    header = ("set", "variants", "input size", "published top-1 %", "source")
    rows = [header, *weight_sets.table()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def main(argv=None) -> int:
    args = _parser().parse_args(argv)  # before TensorFlow is imported
    try:
        if args.command == "list":
            _print_catalogue()
        elif args.command == "fetch":
            weight_sets.weight_file(args.set, args.variant)  # bad names fail before any import
            print(pretrained_path(args.set, args.variant, include_top=not args.notop))
        else:
            if not is_checkpoint(args.checkpoint):
                raise ValueError(f"checkpoint {args.checkpoint!r}: no such folder or "
                                 "'<prefix>.index' file")
            layers = convert(args.checkpoint, args.out, args.variant)
            print(f"wrote {len(layers)} layers to {args.out}")
    except ValueError as e:
        print(f"python -m effnet_tf.weights: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a download failure: one line, no traceback
        print(f"python -m effnet_tf.weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
