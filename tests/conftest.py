import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from effnet_tf.modeling.scaling import Scaling  # noqa: E402


# The files that take longest, longest first (measured on 2 CPU cores, 2026-12-07).
# pytest-xdist hands out whole files in collection order (`--dist loadfile
# --no-loadscope-reorder`, setup.cfg): a long file handed out last would leave the other
# worker idle at the end, so these go first and the many short files fill in behind them.
LONGEST_FIRST = (  # by CPU seconds (python -m tests.cpu_times)
    "training/test_jax_training.py", "training/test_train.py", "training/test_faults.py",
    "test_one_preprocessing.py", "test_first_run.py", "training/test_distributed.py",
    "modeling/test_remat.py", "modeling/test_weights.py", "deploy/test_tflite.py",
    "test_notebooks.py", "modeling/test_pretrained.py", "modeling/test_jax_backend.py",
    "pipelines/test_service.py",
)


def pytest_collection_modifyitems(items):
    tests = os.path.dirname(os.path.abspath(__file__))

    def rank(item):
        path = os.path.relpath(str(item.path), tests)
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the order within a file and among the others is kept


@pytest.fixture
def tiny():
    """A quarter-width, quarter-depth EfficientNet at 32 px: every block kind, built in ~1 s."""
    return Scaling("tiny", 0.25, 0.25, 32, 0.2)


def write_digits(root, count: int = 200, val_from: int = 160, fmt: str = "jpg",
                 resample=None):
    """scikit-learn's digits (real scans) as a 32 px image folder ``train/<digit>/`` +
    ``val/<digit>/``: the first ``val_from`` scans train, the rest up to ``count`` validate.
    ``fmt="png"`` is lossless: the same pixels wherever it is written."""
    from PIL import Image
    from sklearn.datasets import load_digits

    scans = load_digits()
    for i in range(count):
        folder = os.path.join(str(root), "train" if i < val_from else "val",
                              str(scans.target[i]))
        os.makedirs(folder, exist_ok=True)
        pixels = (scans.images[i] / 16 * 255).astype("uint8")
        image = Image.fromarray(pixels).convert("RGB")
        image = image.resize((32, 32)) if resample is None else image.resize((32, 32), resample)
        image.save(os.path.join(folder, f"{i:04d}.{fmt}" if fmt == "png" else f"{i}.{fmt}"))
    return str(root)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """scikit-learn's digits as a 32 px JPEG folder: 160 scans train, 40 validate."""
    return write_digits(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def jax_env(tmp_path_factory):
    """The environment of a process under Keras' JAX backend, with one persistent compilation
    cache for the whole test run (shared by the xdist workers), small compilations included:
    JAX compiles every initializer shape and every step with XLA (a tiny model's training
    process: 43 s with a cold cache, 16 s warm, measured here), so only the first process
    pays. Results are the same; JAX keys the cache by the computation and its version."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, above each worker's own
    return {"KERAS_BACKEND": "jax", "JAX_COMPILATION_CACHE_DIR": str(root / "jax_cache"),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1"}
