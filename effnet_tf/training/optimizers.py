"""TF1's RMSProp as a Keras 3 optimizer: the optimizer the paper trained with.

The official EfficientNet trainer uses ``tf.compat.v1.train.RMSPropOptimizer`` (TensorFlow
``tensorflow/python/training/rmsprop.py``, kernel ``ApplyRMSProp`` in
``tensorflow/core/kernels/training_ops.cc``), ``centered=False``. Per variable it keeps a
mean-square accumulator ``rms``, created with ``ones_initializer``, and a momentum buffer
``mom`` that starts at zero; each step::

    rms = rho * rms + (1 - rho) * g**2     # the kernel: rms += (g**2 - rms) * (1 - rho)
    mom = momentum * mom + lr * g / sqrt(rms + epsilon)   # eps in the root, lr in mom
    var -= mom

``keras.optimizers.RMSprop`` follows the same formula but starts ``rms`` at zero. Its first
step is larger by ``sqrt((rho + (1 - rho) * g**2 + eps) / ((1 - rho) * g**2 + eps))``: about 1
for large gradients, ``sqrt(0.901 / 0.001) ~= 30`` for small ones (rho 0.9, eps 1e-3), which
changes the start of a run (timm ships ``RMSpropTF`` for the same reason). Keras has no
option for the initial accumulator, hence this class.

Defaults are the recipe's (rho 0.9, momentum 0.9, epsilon 1e-3); TF1's own epsilon default
is 1e-10.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable("effnet_tf")
class RMSpropTF(keras.optimizers.Optimizer):
    """RMSProp with TF1 semantics: accumulator starts at 1, lr inside the momentum buffer.

    Takes the base optimizer's keyword arguments too (``weight_decay``, ``clipnorm``,
    ``use_ema``, ``loss_scale_factor``, ``gradient_accumulation_steps``, ``name``, ...).
    """

    def __init__(self, learning_rate=0.016, rho=0.9, momentum=0.9, epsilon=1e-3,
                 name="rmsprop_tf", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        if epsilon <= 0.0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.rho = float(rho)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._rms, self._momentums = self.add_optimizer_variables(
            var_list, ["rms", "momentum"], initializer=["ones", "zeros"])

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        rms, mom = self._rms[index], self._momentums[index]
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        self.assign(rms, ops.add(ops.multiply(self.rho, rms),
                                 ops.multiply(1.0 - self.rho, ops.square(gradient))))
        step = ops.divide(ops.multiply(lr, gradient), ops.sqrt(ops.add(rms, self.epsilon)))
        self.assign(mom, ops.add(ops.multiply(self.momentum, mom), step))
        self.assign_sub(variable, mom)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon})
        return config
