"""From scratch on a small dataset of low-resolution images (digits, CIFAR-sized photos).

    python -m effnet_tf.train --config small_images --dataset path/to/folder --model_dir runs/s

The ImageNet crops are wrong for 32 px images: a random crop of 8% of the area leaves a few
pixels, and the eval crop ``size / (size + 32)`` keeps only the middle half at 32 px. Here
training and evaluation resize the whole image (on digits even a crop of 50-100% or 70-100%
of the area reached only 0.66 / 0.82 top-1 in 10 epochs), nothing is flipped (digits and
text are not mirror-symmetric; set ``--config.flip=True`` for photos), Adam at 4e-3 with
batch 16 takes ~900 small steps, and the weights' moving average (0.99) is evaluated. Full
B0 at 32 px, 10 epochs with a cosine schedule. On scikit-learn's digits (1,438 train / 359
val scans at 32 px, ``benchmarks/small_data.py``) it reaches 0.95 val top-1 at epoch 8 and
0.958 after 10 epochs, in about 2.5 minutes on 2 CPU cores (BUILD.md, small data).
"""

from effnet_tf.training.config import get_config as _default


def get_config():
    c = _default()
    c.variant = "b0"
    c.image_size = 32
    c.dataset = "tfds:cifar10"
    c.augment = "none"
    c.crop_area_range = (1.0, 1.0)  # the whole image: even a mild crop slowed learning
    c.crop_aspect_range = (1.0, 1.0)
    c.flip = False
    c.eval_crop_fraction = "none"
    c.global_batch_size = 16  # small data: more, smaller steps
    c.epochs = 10
    c.optimizer = "adam"
    c.base_learning_rate = 0.064  # per 256 images: Adam at 4e-3 for batch 16
    c.optimizer_epsilon = 1e-7
    c.lr_schedule = "cosine"
    c.warmup_epochs = 0.5
    c.label_smoothing = 0.1
    c.weight_decay = 1e-5
    c.ema_decay = 0.99  # evaluated with the average: steadier than the last weights
    c.dropout = 0.1
    c.drop_connect_rate = 0.0
    c.batch_norm_momentum = 0.9
    c.checkpoint_every_steps = 100
    c.log_every_steps = 10
    return c
