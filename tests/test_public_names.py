"""The public names of ``effnet_tf`` (unchanged by the package moves) and its cheap import."""

import subprocess
import sys

import effnet_tf


def test_import_loads_neither_keras_nor_tensorflow():
    code = ("import sys, effnet_tf; effnet_tf.costs(effnet_tf.Scaling.variant('b0')); "
            "print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_to_its_module():
    modules = {"weights": "effnet_tf.weights", "budget": "effnet_tf.sizing.budget",
               "latency": "effnet_tf.sizing.latency", "tflite": "effnet_tf.deploy.tflite",
               "search": "effnet_tf.sizing.search"}
    for name in effnet_tf.__all__:
        value = getattr(effnet_tf, name)
        if name in modules:
            assert value.__name__ == modules[name]
        else:
            assert callable(value) or isinstance(value, dict), name
    # the functions users reach through the modules
    assert effnet_tf.weights.load is effnet_tf.weights.__dict__["load"]
    for module, names in {"search": ("search", "tune", "grid", "Coefficients", "PAPER"),
                          "budget": ("fit", "Budget"), "latency": ("measure", "LatencyProbe"),
                          "tflite": ("convert",),
                          "weights": ("load", "pretrained_path", "convert", "main")}.items():
        for name in names:
            assert hasattr(getattr(effnet_tf, module), name), f"effnet_tf.{module}.{name}"
    assert effnet_tf.EfficientNetB0.__module__ == "effnet_tf.modeling.efficientnet"
