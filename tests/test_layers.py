"""The layer rule of BUILD.md's layout, checked by import-linter's contracts in setup.cfg:
modeling <- pipelines <- training <- deploy <- sizing <- commands, the pipelines taking only
the scaling arithmetic from the model, and the model built without TensorFlow."""

import os
import shutil
import subprocess
import sys

from tests import REPO

LINT = os.path.join(os.path.dirname(sys.executable), "lint-imports")
CONTRACTS = ("Layers: modeling <- pipelines <- training <- deploy <- sizing <- commands",
             "pipelines take only the scaling arithmetic from the model",
             # commands check flags and read run directories' specs before TensorFlow loads
             "config, run spec, pipeline options, start-up load without TensorFlow",
             "the model is built with Keras only (no TensorFlow): it also builds under JAX")


def lint(tree):
    """``lint-imports`` with the contracts of ``tree``'s setup.cfg over its packages."""
    env = dict(os.environ, PYTHONPATH=tree)
    return subprocess.run([LINT, "--no-cache"], cwd=tree, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_code_keeps_its_layers():
    out = lint(REPO)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    for name in CONTRACTS:
        assert f"{name} KEPT" in out.stdout
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out.stdout


def test_a_back_edge_breaks_the_layers(tmp_path):
    """The same check on a copy of the code where the model imports the trainer."""
    for package in ("effnet_tf", "pipelines"):
        shutil.copytree(os.path.join(REPO, package), tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, "setup.cfg"), tmp_path)
    scaling = tmp_path / "effnet_tf" / "modeling" / "scaling.py"
    scaling.write_text(scaling.read_text() + "\nfrom effnet_tf.training import trainer  # noqa\n")
    out = lint(str(tmp_path))
    assert out.returncode == 1, out.stdout[-3000:]
    assert "effnet_tf.modeling is not allowed to import effnet_tf.training" in out.stdout
    assert "effnet_tf.modeling.scaling -> effnet_tf.training.trainer" in out.stdout
