"""Training recipes: ``get_config()`` files, installed as ``effnet_tf.configs``; ``python -m
effnet_tf.train --config NAME`` takes one by name (``tpu``) or any such file by path."""
