"""A one-minute smoke run on a laptop CPU, on images the package generates.

    python -m effnet_tf.train --config configs/cpu_smoke.py --model_dir /tmp/effnet_smoke

A quarter-width, quarter-depth EfficientNet at 64 px on 320 synthetic JPEGs of 4 classes
(coloured shapes, written once to ``<model_dir>/data``): 3 epochs of 20 steps. The loss falls
from about 1.4 and top-1 on the held-out images rises well above chance (25%).
"""

from effnet_tf.training.config import get_config as _default


def get_config():
    c = _default()
    c.variant = "b0"
    c.width_coefficient = 0.25
    c.depth_coefficient = 0.25
    c.image_size = 64
    c.dataset = "synthetic"
    c.num_classes = 4
    c.augment = "none"
    c.global_batch_size = 16
    c.epochs = 3
    c.steps_per_epoch = 20
    c.base_learning_rate = 0.16  # Adam at 0.01 for batch 16
    c.warmup_epochs = 0.5
    c.lr_schedule = "cosine"
    c.optimizer = "adam"
    c.optimizer_epsilon = 1e-7
    c.label_smoothing = 0.0
    c.weight_decay = 0.0
    c.ema_decay = 0.0
    c.drop_connect_rate = 0.0
    c.batch_norm_momentum = 0.9  # 60 steps: BN statistics must settle quickly
    c.strategy = "cpu"
    c.jit_compile = "false"
    c.checkpoint_every_steps = 20
    c.log_every_steps = 5
    return c
