"""ImageNet on a Cloud TPU or a Colab TPU: bfloat16, XLA, many steps per execution.

    python -m effnet_tf.train --config configs/tpu.py --variant b3 --tpu "" \
        --data_dir gs://my-bucket/tensorflow_datasets --model_dir gs://my-bucket/runs/b3

Checkpoints and data must be on gs:// (TPU workers cannot read local files). Same recipe and
target accuracy as configs/imagenet.py; a restarted command resumes from the last checkpoint.
"""

from effnet_tf.training.config import get_config as _default


def get_config():
    c = _default()
    c.strategy = "tpu"
    c.mixed_precision = "mixed_bfloat16"
    c.jit_compile = "true"
    c.steps_per_execution = 100
    c.checkpoint_every_steps = 2000
    c.log_every_steps = 500
    return c
