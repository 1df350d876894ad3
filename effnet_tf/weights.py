"""``python -m effnet_tf.weights``: the catalogue of published weights, fetching and converting.

    python -m effnet_tf.weights list                        # the catalogue
    python -m effnet_tf.weights fetch noisy-student b3      # pre-fetch into the cache
    python -m effnet_tf.weights convert ckpt_dir/ out.h5    # an official TF checkpoint
    python -m effnet_tf.weights convert x.pth out.h5        # PyTorch: timm's or lukemelas'
    python -m effnet_tf.weights convert x.safetensors out.h5 --variant lite0

The loading functions live in ``effnet_tf.modeling.weight_loading`` and are importable from here as
before (``effnet_tf.weights.load(model, "imagenet")``); ``convert`` here builds the model
that the library's converter fills.
"""

from __future__ import annotations

import os
import sys

from effnet_tf.modeling import weight_sets
from effnet_tf.modeling.weight_loading import (is_checkpoint, is_torch, load, pretrained_path, read_h5,
                                        save_h5, variant_of)
from pipelines.startup import OneLineParser, quiet_tensorflow

__all__ = ["convert", "fetch", "is_checkpoint", "load", "main", "pretrained_path", "read_h5",
           "save_h5", "variant_of"]


def _parser() -> OneLineParser:
    parser = OneLineParser(prog="python -m effnet_tf.weights",
                           description="Published EfficientNet weights: list, fetch, convert.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    commands.add_parser("list", help="print the catalogue of weight sets")
    fetch_cmd = commands.add_parser("fetch", help="download (and convert) into the Keras cache")
    fetch_cmd.add_argument("set", help=f"one of {', '.join(weight_sets.SETS)}")
    fetch_cmd.add_argument("variant", help="b0..b8, l2 or lite0..lite4, as the set has them")
    fetch_cmd.add_argument("--notop", action="store_true",
                           help="keras.applications' no-top file (the 'imagenet' set)")
    convert_cmd = commands.add_parser(
        "convert", help="official TF checkpoint or PyTorch .pth/.safetensors -> by-name .h5")
    convert_cmd.add_argument("checkpoint", help="checkpoint folder or prefix (.../model.ckpt), "
                                                "or a PyTorch .pth/.pt/.bin/.safetensors file")
    convert_cmd.add_argument("out", help="output .h5 file")
    convert_cmd.add_argument("--variant", help="default: from the checkpoint's scope name or "
                                               "the state dict's widths and depth")
    return parser


def _print_catalogue() -> None:
    header = ("set", "variants", "input size", "published top-1 %", "source")
    rows = [header, *weight_sets.table()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _source_shape(source) -> tuple[str | None, int | None]:
    """(variant, classes or None without a classifier) that ``source`` holds."""
    if is_torch(source):
        from effnet_tf.modeling import torch_ckpt, torch_layouts

        state = torch_ckpt.read(source)
        return torch_layouts.variant_of(state), torch_layouts.classes_of(state)
    from effnet_tf.modeling import official_ckpt

    path = official_ckpt.checkpoint_path(source)
    shapes = official_ckpt.variable_shapes(path)
    prefix = official_ckpt.checkpoint_prefix(shapes)
    dense = shapes.get(f"{prefix}/head/dense/kernel")
    return official_ckpt.variant_of_scope(prefix), dense[1] if dense else None


def convert(source, out_path, variant: str | None = None) -> list[str]:
    """Writes an official TF checkpoint or a PyTorch file (timm's or lukemelas/
    efficientnet_pytorch's layout) as a by-name HDF5 file ``out_path``, which
    ``EfficientNet(variant, weights=out_path)`` loads (with ``padding="symmetric",
    batch_norm_epsilon=1e-5`` for timm's own ``efficientnet_*``: the file cannot tell).

    ``variant``: default from the checkpoint's scope name (``efficientnet-b3``) or from the
    PyTorch state dict's widths and depth. Every layer of the variant's model must find its
    weights. Returns the layers written."""
    from effnet_tf.modeling import weight_loading as weights_lib
    from effnet_tf.modeling.efficientnet import EfficientNet

    found, classes = _source_shape(source)
    variant = variant or found
    if variant is None:
        raise ValueError(f"cannot tell the variant of {os.fspath(source)!r}: pass it "
                         "(--variant)")
    model = EfficientNet(variant, include_top=classes is not None, classes=classes or 1000,
                         input_shape=(None, None, 3))
    return weights_lib.convert(source, out_path, model)


def fetch(set_name: str, variant: str, include_top: bool = True) -> str:
    """The cached by-name file of a published set, fetched (and converted) the first time."""
    entry = weight_sets.weight_file(set_name, variant)
    model = None
    if entry.needs_conversion:
        from effnet_tf.modeling.efficientnet import EfficientNet

        model = EfficientNet(variant, input_shape=(None, None, 3),
                             **weight_sets.model_options(set_name))
    return pretrained_path(set_name, variant, include_top, model)


def _check_convert_args(args) -> None:
    source = args.checkpoint
    if is_torch(source):
        if not os.path.isfile(source):
            raise ValueError(f"PyTorch file {source!r} does not exist")
    elif not is_checkpoint(source):
        raise ValueError(f"checkpoint {source!r}: no such folder, '<prefix>.index' file or "
                         f"PyTorch file (.pth, .pt, .bin, .safetensors)")
    if not args.out.endswith(".h5"):
        raise ValueError(f"the output must be an .h5 file, got {args.out!r}")
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise ValueError(f"the output's folder {folder!r} does not exist")
    if args.variant is not None:
        from effnet_tf.modeling.scaling import Scaling

        Scaling.variant(args.variant)


def main(argv=None) -> int:
    args = _parser().parse_args(argv)  # before TensorFlow is imported
    try:
        if args.command == "list":
            _print_catalogue()
        elif args.command == "fetch":
            weight_sets.weight_file(args.set, args.variant)  # bad names fail before any import
            print(fetch(args.set, args.variant, include_top=not args.notop))
        else:
            _check_convert_args(args)  # before any import of TensorFlow
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
    quiet_tensorflow()  # as the other commands: TensorFlow's start-up lines off
    sys.exit(main())
