"""Command-line flags shared by train, evaluate, export: a config file plus shorthands.

    --config configs/tpu.py --config.global_batch_size=1024   (any field)
    --variant b4 --dataset tfds:imagenet2012 --strategy mirrored  (shorthands for common ones)
"""

from __future__ import annotations

import importlib.util
import os
import sys

from absl import app, flags
from ml_collections import config_flags

from effnet_tf import runtime

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "config.py")
RECIPES = "effnet_tf.configs"  # configs/ of the repository, installed under this name


def recipe_names() -> list[str]:
    folder = recipes_folder()
    return sorted(n[:-3] for n in os.listdir(folder) if n.endswith(".py") and n[0] != "_")


def recipes_folder() -> str:
    return importlib.util.find_spec(RECIPES).submodule_search_locations[0]


def recipe_path(spec: str) -> str:
    """``--config`` as given: a recipe file (``configs/tpu.py``, with an optional ``:arg``)
    or the name of a shipped recipe (``tpu``, ``small_images``)."""
    path, sep, arg = spec.partition(":")
    if os.path.exists(path) or os.sep in path or path.endswith(".py"):
        return spec
    shipped = os.path.join(recipes_folder(), f"{path}.py")
    if not os.path.isfile(shipped):
        raise app.UsageError(f"--config={spec!r} is neither a file nor a shipped recipe "
                             f"({', '.join(recipe_names())})")
    return shipped + sep + arg


def fail(message: str, code: int = 2):
    """Ends a command with one line on stderr, ``<command>: error: <message>``, no traceback."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = spec.name if spec else os.path.basename(sys.argv[0])
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.exit(code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing, with ``--config NAME`` resolved to the shipped recipe's file first."""
    argv = list(argv)
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        if arg.startswith("--config="):
            argv[i] = "--config=" + recipe_path(arg[len("--config="):])
        elif arg == "--config" and i + 1 < len(argv):
            argv[i + 1] = recipe_path(argv[i + 1])
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        sys.stderr.write(f"FATAL Flags parsing error: {e}\n")
        sys.exit(1)

# shorthand flag -> config field
SHORTHANDS = {
    "variant": "variant", "phi": "phi", "alpha": "alpha", "beta": "beta", "gamma": "gamma",
    "image_size": "image_size", "dataset": "dataset", "data_dir": "data_dir",
    "strategy": "strategy", "tpu": "tpu", "jit_compile": "jit_compile",
    "mixed_precision": "mixed_precision", "steps_per_execution": "steps_per_execution",
    "deterministic": "deterministic", "epochs": "epochs", "batch_size": "global_batch_size",
    "pretrained": "pretrained", "label_offset": "label_offset",
}


def define_flags() -> None:
    config_flags.DEFINE_config_file(
        "config", DEFAULT_CONFIG, "Recipe: a shipped name (tpu, small_images, ...) or a file with get_config() "
        "(default: the paper's ImageNet recipe).",
        lock_config=True)
    flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, logs, config "
                        "(local or gs://). A second run with the same directory resumes.")
    flags.DEFINE_string("variant", None, "Published variant b0..b7, b8, l2.")
    flags.DEFINE_float("phi", None, "Compound coefficient: scale by the formula instead.")
    flags.DEFINE_float("alpha", None, "Depth base of the formula (1.2).")
    flags.DEFINE_float("beta", None, "Width base of the formula (1.1).")
    flags.DEFINE_float("gamma", None, "Resolution base of the formula (1.15).")
    flags.DEFINE_integer("image_size", None, "Input size; default the variant's resolution.")
    flags.DEFINE_string("dataset", None, "tfds:<name>, a TFRecord glob or an image folder.")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir (tfds: datasets), or where "
                        "synthetic images are written.")
    flags.DEFINE_integer("label_offset", None, "TFRecords: subtracted from image/class/label "
                         "(default 1, ImageNet's 1-based labels, unless metadata.json says); "
                         "0 for 0-based shards.")
    flags.DEFINE_enum("strategy", None, list(runtime.STRATEGIES), "Distribution strategy.")
    flags.DEFINE_string("tpu", None, "TPU name/address for TPUClusterResolver ('' on Colab).")
    flags.DEFINE_enum("jit_compile", None, ["auto", "true", "false"], "XLA compilation.")
    flags.DEFINE_enum("mixed_precision", None, list(runtime.PRECISIONS), "Precision policy.")
    flags.DEFINE_integer("steps_per_execution", None, "Steps per compiled call (TPU: 100+).")
    flags.DEFINE_bool("deterministic", None, "Seeded data and deterministic ops: a resumed run "
                      "ends with the same weights as an uninterrupted one.")
    flags.DEFINE_integer("epochs", None, "Training epochs.")
    flags.DEFINE_integer("batch_size", None, "Global batch size.")
    flags.DEFINE_string("pretrained", None, "Weights file (keras.applications .h5) to start from.")


def resolved_config():
    """The config file's ConfigDict with the shorthand flags that were given applied."""
    values = flags.FLAGS
    config = values.config
    with config.unlocked():
        for flag, field in SHORTHANDS.items():
            if values[flag].present:
                setattr(config, field, values[flag].value)
    return config
