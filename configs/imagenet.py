"""The paper's ImageNet recipe (Tan & Le 2019; the official tensorflow/tpu trainer), for any variant.

    python -m effnet_tf.train --config configs/imagenet.py --variant b0 \
        --data_dir gs://my-bucket/tensorflow_datasets --model_dir gs://my-bucket/runs/b0

RMSProp (0.9, momentum 0.9, eps 1e-3), lr 0.016 per 256 images with 5 warm-up epochs and
x0.97 every 2.4 epochs, weight decay 1e-5, label smoothing 0.1, EMA 0.9999, AutoAugment,
stochastic depth 0.2, 350 epochs at global batch 4096. Should reach the paper's top-1 for the
variant (B0 ~77.1%) in about 350 epochs; on a TPU v3-32 a B0 run takes roughly a day.
"""

from effnet_tf.training.config import get_config as _default


def get_config():
    return _default()
