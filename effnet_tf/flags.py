"""The training command's flags (``define_flags``: a config file plus shorthands); and what
every command shares: one-line usage errors, flag parsing, run-directory checks, a quiet start-up.

    --config configs/tpu.py --config.global_batch_size=1024   (any field)
    --variant b4 --dataset tfds:imagenet2012 --strategy mirrored  (shorthands for common ones)

Every command parses and checks its flags (and the config) before it imports TensorFlow,
which takes 5-8 s, so a mistake is reported at once as one line ``<command>: error: ...``
that names the flag and what it accepts: no traceback and no help text before it (absl's
``UsageError`` prints the whole module docstring first). This module must not import
TensorFlow.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import sys
import tempfile

from absl import flags, logging
from ml_collections import config_flags

from effnet_tf.training.config import BACKENDS, PRECISIONS, STRATEGIES, get_config
from pipelines import startup

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "training", "config.py")
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
    if os.path.isfile(path):
        return spec
    if os.path.exists(path) or os.sep in path or path.endswith(".py"):
        raise ValueError(f"--config={spec!r}: no such recipe file (give a file with "
                         f"get_config() or a shipped recipe: {', '.join(recipe_names())})")
    shipped = os.path.join(recipes_folder(), f"{path}.py")
    if not os.path.isfile(shipped):
        raise ValueError(f"--config={spec!r} is neither a file nor a shipped recipe "
                         f"({', '.join(recipe_names())})")
    return shipped + sep + arg


def _prog() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return spec.name if spec else os.path.basename(sys.argv[0])


def fail(message: str, code: int = 2):
    """Ends a command with one line on stderr, ``<command>: error: <message>``, no traceback.
    A thread given up on while it waits on something outside (the download of a TFDS
    preparation stopped for making no progress: ``pipelines.startup.leave_behind``) is not
    waited for, as Python's exit would: the process ends at once (``exit_now``)."""
    sys.stderr.write(f"{_prog()}: error: {message}\n")
    if startup.threads_left_behind():
        exit_now(code)
    sys.exit(code)


def warn(message: str) -> None:
    """One line on stderr, ``<command>: warning: <message>``; the command goes on."""
    sys.stderr.write(f"{_prog()}: warning: {message}\n")
    sys.stderr.flush()


def check_model_dir(path: str) -> None:
    """A local ``--model_dir`` that does not exist, or whose config.json a newer effnet_tf
    wrote, said before TensorFlow is imported (remote ones, gs://..., are checked when
    read)."""
    if not path or "://" in path:
        return
    if not os.path.isdir(path):
        raise ValueError(f"--model_dir={path!r} does not exist (give the run directory "
                         "that effnet_tf.train wrote)")
    from effnet_tf.training import spec as spec_lib

    config = os.path.join(path, spec_lib.CONFIG_FILE)
    if os.path.isfile(config):
        with open(config) as f:
            spec_lib.check_version(json.load(f), config)


def check_output(path: str) -> None:
    """An output path that could not be written (no permission, a read-only or virtual file
    system such as /proc, a file where a folder must be), said before TensorFlow is imported."""
    cause = _cannot_write(os.path.dirname(path) or ".") if path else None
    if cause:
        raise ValueError(f"--output={path!r} cannot be written: {cause}; give another --output")


def check_train_model_dir(path: str, config) -> None:
    """``train``'s ``--model_dir`` before TensorFlow is imported: a local one that could not
    be written, that a live run holds, or whose checkpoints another backend wrote
    (``training.run_guard``; the backend is set: ``use_backend``)."""
    from effnet_tf.training import run_guard

    cause = _cannot_write(path)
    if cause:
        raise ValueError(f"cannot write to model_dir {path!r}: {cause}")
    shared = config.strategy == "multi_worker" or bool(os.environ.get("TF_CONFIG"))
    run_guard.check_local(path, os.environ["KERAS_BACKEND"], locks=not shared)


def _cannot_write(folder: str) -> str | None:
    """Why no file could be made in local ``folder`` (its missing folders made first), or
    None: a probe file in the nearest folder of the path that exists. Remote paths
    (gs://...) are checked when written."""
    if not folder or "://" in folder:
        return None
    folder = os.path.abspath(folder)
    while not os.path.isdir(folder):
        if os.path.exists(folder):
            return f"{folder!r} is a file, not a folder"
        folder = os.path.dirname(folder)
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        return f"no new file can be made in {folder!r} ({e.strerror or e})"
    return None


def exit_now(code: int = 0) -> None:
    """Ends the process once its work is written, skipping the interpreter's teardown of
    TensorFlow (garbage-collecting traced graphs, joining tf.data threads: 2-20 s after the
    last line on a busy machine, for nothing)."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.flush()
    os._exit(code)


def _config_spec(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            break
        if arg.startswith("--config="):
            return arg[len("--config="):]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
    return None


def _recipe_error(spec: str, error: Exception) -> str:
    """One line for a recipe file that does not load (ml_collections raises it raw)."""
    if isinstance(error, SyntaxError):
        return (f"--config={spec}: the recipe does not compile: {error.msg} "
                f"({error.filename}, line {error.lineno})")
    if isinstance(error, AttributeError) and "get_config" in str(error):
        return f"--config={spec}: the recipe file has no get_config() function"
    why = " ".join(str(error).split()) or type(error).__name__
    return f"--config={spec}: loading the recipe failed: {type(error).__name__}: {why}"


def parse_flags(argv: list[str]) -> list[str]:
    """absl's parsing for ``app.run(main, flags_parser=parse_flags)``: ``--config NAME``
    resolved to the shipped recipe's file, every error as one line, then quiet logs."""
    argv = list(argv)
    spec = _config_spec(argv) if "config" in flags.FLAGS else None
    try:
        for i, arg in enumerate(argv[1:], 1):
            if spec is None or arg == "--":
                break
            if arg.startswith("--config="):
                argv[i] = "--config=" + recipe_path(arg[len("--config="):])
            elif arg == "--config" and i + 1 < len(argv):
                argv[i + 1] = recipe_path(argv[i + 1])
    except ValueError as e:
        fail(str(e))
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as e:
        text = str(e).strip()
        if spec is not None and "Traceback (most recent call last)" in text:  # get_config raised
            fail(f"--config={spec}: loading the recipe failed: {text.splitlines()[-1]}")
        fail(" ".join(text.split()))
    except Exception as e:  # a recipe that does not load, raised as is by ml_collections
        if spec is None:
            raise
        fail(_recipe_error(spec, e))
    quiet_logs()
    return rest


def quiet_logs() -> None:
    """Without ``--verbosity``: absl logs warnings and up, and TensorFlow's C++ start-up lines
    (oneDNN, CPU instructions, ...) are off (``pipelines.startup.quiet_tensorflow``:
    ``TF_CPP_MIN_LOG_LEVEL=2``, errors still shown), so the lines on screen are the command's.
    ``--verbosity=0`` (INFO) or more shows them all; a TF_CPP_MIN_LOG_LEVEL the user set
    wins. Call before TensorFlow is imported."""
    verbosity = flags.FLAGS["verbosity"]
    if verbosity.present:
        level = min(3, max(0, -int(verbosity.value)))
    else:
        logging.set_verbosity(logging.WARNING)
        level = startup.QUIET_LEVEL
    startup.quiet_tensorflow(level)


def _check_config_overrides(argv: list[str]) -> None:
    """Unknown ``--config.<field>`` in one line (ml_collections raises three chained
    tracebacks while the flag is being defined)."""
    fields = list(get_config())
    for arg in argv[1:]:
        if arg == "--":
            break
        if arg.startswith("--config."):
            name = arg[len("--config."):].split("=", 1)[0].split(".", 1)[0]
            if name not in fields:
                close = difflib.get_close_matches(name, fields, n=3)
                hint = f"; did you mean {' or '.join(close)}?" if close else ""
                fail(f"--config.{name}: the config has no field {name!r}{hint} "
                     "(--helpfull lists the fields)")


# shorthand flag -> config field
SHORTHANDS = {
    "variant": "variant", "phi": "phi", "alpha": "alpha", "beta": "beta", "gamma": "gamma",
    "image_size": "image_size", "dataset": "dataset", "data_dir": "data_dir",
    "strategy": "strategy", "tpu": "tpu", "jit_compile": "jit_compile",
    "mixed_precision": "mixed_precision", "steps_per_execution": "steps_per_execution",
    "deterministic": "deterministic", "epochs": "epochs", "batch_size": "global_batch_size",
    "pretrained": "pretrained", "label_offset": "label_offset", "backend": "backend",
}


def define_flags() -> None:
    _check_config_overrides(sys.argv)
    try:
        config_flags.DEFINE_config_file(
            "config", DEFAULT_CONFIG, "Recipe: a shipped name (tpu, small_images, ...) or a "
            "file with get_config() (default: the paper's ImageNet recipe).",
            lock_config=True)
    except (AttributeError, KeyError, ValueError, TypeError) as e:  # a --config.<x> override
        fail(f"bad --config override: {' '.join(str(e).split())}")
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
    flags.DEFINE_enum("backend", None, [b for b in BACKENDS if b != "auto"],
                      "Keras backend: tensorflow (tf.distribute) or jax (TPU VMs, "
                      "keras.distribution); default KERAS_BACKEND, else tensorflow.")
    flags.DEFINE_enum("strategy", None, list(STRATEGIES), "Devices: auto (all), cpu, ...; "
                      "under TensorFlow the tf.distribute strategy (multi_worker: TF_CONFIG); "
                      "under JAX multi_worker joins the processes with "
                      "jax.distributed.initialize (outside a TPU VM, Slurm, Open MPI or "
                      "Kubernetes: JAX_COORDINATOR_ADDRESS=host:port of process 0, "
                      "JAX_NUM_PROCESSES, JAX_PROCESS_ID).")
    flags.DEFINE_string("tpu", None, "TPU name/address for TPUClusterResolver ('' on Colab).")
    flags.DEFINE_enum("jit_compile", None, ["auto", "true", "false"], "XLA compilation.")
    flags.DEFINE_enum("mixed_precision", None, list(PRECISIONS), "Precision policy.")
    flags.DEFINE_integer("steps_per_execution", None, "Steps per compiled call (TPU: 100+).")
    flags.DEFINE_bool("deterministic", None, "Seeded data and deterministic ops: a resumed run "
                      "ends with the same weights as an uninterrupted one.")
    flags.DEFINE_integer("epochs", None, "Training epochs.")
    flags.DEFINE_integer("batch_size", None, "Global batch size.")
    flags.DEFINE_string("pretrained", None, "Weights to start from: a set name (imagenet, "
                        "noisy-student, ...: `python -m effnet_tf.weights list`), an .h5 file or "
                        "an official checkpoint.")


def resolved_config():
    """The config file's ConfigDict with the shorthand flags that were given applied."""
    values = flags.FLAGS
    config = values.config
    with config.unlocked():
        for flag, field in SHORTHANDS.items():
            if values[flag].present:
                setattr(config, field, values[flag].value)
    if values["variant"].present and config.phi is not None:
        raise ValueError(f"--variant={values.variant} and phi={config.phi:g} are both given: "
                         "phi scales B0 by the formula and the variant is the table's; give one")
    return config


def use_backend(choice: str) -> None:
    """Sets Keras' backend (``tensorflow`` or ``jax``; ``auto``: ``KERAS_BACKEND``, else
    TensorFlow) before Keras is imported, and checks that the backend's packages are there."""
    if choice == "auto":
        choice = os.environ.get("KERAS_BACKEND", "tensorflow")
    if "keras" in sys.modules and sys.modules["keras"].backend.backend() != choice:
        fail(f"--backend {choice}: Keras is already loaded with another backend")
    os.environ["KERAS_BACKEND"] = choice
    if choice == "jax":
        missing = [m for m in ("jax", "orbax.checkpoint") if not _installed(m)]
        if missing:
            fail(f"--backend jax needs {' and '.join(missing)}: pip install 'effnet_tf[jax]' "
                 "(or [tpu] on a TPU VM)")


def tensorflow_backend(command: str) -> None:
    """For the commands whose outputs are TensorFlow's (SavedModel, TFLite, ``predict``'s
    decoding): Keras on TensorFlow whatever ``KERAS_BACKEND`` says; runs trained under JAX
    load under it (``training.restore``)."""
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        warn(f"{command} runs under TensorFlow (KERAS_BACKEND={os.environ['KERAS_BACKEND']} "
             "is not used here; runs trained under JAX load under it)")
    os.environ["KERAS_BACKEND"] = "tensorflow"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False
