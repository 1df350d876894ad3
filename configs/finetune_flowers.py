"""Fine-tune a pretrained B0 on tf_flowers (5 classes, 3,670 images) from TFDS.

    python -m effnet_tf.train --config finetune_flowers --model_dir runs/flowers

Starts from keras.applications' ImageNet weights (``--pretrained imagenet``, fetched once into
the Keras cache; any set of ``python -m effnet_tf.weights list`` or a local file works too).

Two epochs train the new head with the backbone frozen (BN in inference mode), then the whole
network trains at a small learning rate with BN kept frozen. From ImageNet weights it should
reach about 90% top-1 on a held-out 10% in 10 epochs (minutes on one GPU).
"""

from effnet_tf.training.config import get_config as _default


def get_config():
    c = _default()
    c.variant = "b0"
    c.pretrained = "imagenet"
    c.dataset = "tfds:tf_flowers"
    c.train_split = "train[:90%]"
    c.eval_split = "train[90%:]"
    c.global_batch_size = 64
    c.epochs = 10
    c.base_learning_rate = 0.002
    c.warmup_epochs = 0.5
    c.lr_schedule = "cosine"
    c.augment = "randaugment"
    c.randaugment_magnitude = 5
    c.ema_decay = 0.999
    c.freeze_backbone_epochs = 2
    c.freeze_batch_norm = True
    c.checkpoint_every_steps = 200
    c.log_every_steps = 10
    return c
