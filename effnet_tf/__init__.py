"""EfficientNet for Keras 3 and TensorFlow.

    import effnet_tf
    model = effnet_tf.EfficientNet("b0")                 # published B0
    model = effnet_tf.EfficientNet(effnet_tf.Scaling.from_phi(2.5), classes=10)

Keras is imported on first use of a model function, so ``effnet_tf.scaling`` and
``effnet_tf.costs`` stay cheap to import.
"""

import importlib

from effnet_tf.costs import Costs, costs
from effnet_tf.scaling import VARIANTS, Scaling

__version__ = "0.1.0"

_LAZY = {
    "EfficientNet": "effnet_tf.model",
    "EfficientNetB0": "effnet_tf.model",
    "EfficientNetB1": "effnet_tf.model",
    "EfficientNetB2": "effnet_tf.model",
    "EfficientNetB3": "effnet_tf.model",
    "EfficientNetB4": "effnet_tf.model",
    "EfficientNetB5": "effnet_tf.model",
    "EfficientNetB6": "effnet_tf.model",
    "EfficientNetB7": "effnet_tf.model",
    "feature_info": "effnet_tf.model",
    "flops": "effnet_tf.counting",
    "count_params": "effnet_tf.counting",
    "weights": None,
    "budget": None,
    "latency": None,
    "tflite": None,
    "search": None,
}

__all__ = ["Costs", "Scaling", "VARIANTS", "costs", *_LAZY]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'effnet_tf' has no attribute {name!r}")
    if _LAZY[name] is None:
        return importlib.import_module(f"effnet_tf.{name}")
    return getattr(importlib.import_module(_LAZY[name]), name)
