"""What every command does before TensorFlow loads (``pipelines.startup``), in a fresh
process as a command runs it."""

import json
import subprocess
import sys

from tests import REPO

OPTIONAL = ["IPython", "jax", "matplotlib", "sklearn"]


def test_a_command_loads_tensorflow_and_keras_without_their_optional_integrations():
    """All four are installed here (as on Colab): TensorFlow and Keras would load them for
    integrations no command uses. Left out, they are off, and an import of the command's own
    still loads each package."""
    script = f"""
import json, sys
from pipelines import startup
startup.quiet_tensorflow()
import keras, tensorflow  # keras first, as effnet_tf's modules import it
loaded = sorted(p for p in {OPTIONAL!r} if p in sys.modules)
off = [sys.modules[m].__dict__[k] is None for m, k in [
    ("tensorflow.lite.python.util", "_jit"), ("keras.src.wrappers.fixes", "sklearn"),
    ("keras.src.visualization.plot_image_gallery", "plt"),
    ("keras.src.saving.file_editor", "ipython")]]
import IPython, jax, matplotlib.pyplot, sklearn
print(json.dumps([loaded, off, keras.backend.backend(), jax.numpy.ones(2).sum().item()]))
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded, off, backend, two = json.loads(out.stdout.splitlines()[-1])
    assert loaded == [] and off == [True] * 4
    assert backend == "tensorflow" and two == 2.0
