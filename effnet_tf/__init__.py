"""EfficientNet for Keras 3 and TensorFlow.

    import effnet_tf
    model = effnet_tf.EfficientNet("b0")                 # published B0
    model = effnet_tf.EfficientNetLite0(weights="imagenet")  # EfficientNet-Lite, for int8
    model = effnet_tf.EfficientNet(effnet_tf.Scaling.from_phi(2.5), classes=10)

Keras is imported on first use of a model function, so ``effnet_tf.Scaling`` and
``effnet_tf.costs`` stay cheap to import. The packages, lowest layer first: ``modeling`` (the
network), ``pipelines`` (input, a sibling package), ``training``, ``deploy``, ``sizing``; the
``python -m effnet_tf.<command>`` modules sit on top (BUILD.md has the map).
"""

import importlib

from effnet_tf.modeling.costs import Costs, costs
from effnet_tf.modeling.scaling import VARIANTS, Scaling

__version__ = "0.1.0"

_LAZY = {
    "EfficientNet": "effnet_tf.modeling.efficientnet",
    "EfficientNetB0": "effnet_tf.modeling.efficientnet",
    "EfficientNetB1": "effnet_tf.modeling.efficientnet",
    "EfficientNetB2": "effnet_tf.modeling.efficientnet",
    "EfficientNetB3": "effnet_tf.modeling.efficientnet",
    "EfficientNetB4": "effnet_tf.modeling.efficientnet",
    "EfficientNetB5": "effnet_tf.modeling.efficientnet",
    "EfficientNetB6": "effnet_tf.modeling.efficientnet",
    "EfficientNetB7": "effnet_tf.modeling.efficientnet",
    **{f"EfficientNetLite{i}": "effnet_tf.modeling.efficientnet" for i in range(5)},
    "feature_info": "effnet_tf.modeling.efficientnet",
    "flops": "effnet_tf.modeling.counting",
    "count_params": "effnet_tf.modeling.counting",
    # modules, as before the packages: effnet_tf.weights is the command module, which also
    # holds the loading functions' names
    "weights": "effnet_tf.weights",
    "budget": "effnet_tf.sizing.budget",
    "latency": "effnet_tf.sizing.latency",
    "tflite": "effnet_tf.deploy.tflite",
    "search": "effnet_tf.sizing.search",
}
_MODULES = ("weights", "budget", "latency", "tflite", "search")

__all__ = ["Costs", "Scaling", "VARIANTS", "costs", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'effnet_tf' has no attribute {name!r}")
    if name in _MODULES:
        return importlib.import_module(_LAZY[name])
    return getattr(importlib.import_module(_LAZY[name]), name)
