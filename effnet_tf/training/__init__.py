"""Training: the config and recipe, the distribution runtime, the input it feeds the model,
the run directory (checkpoints, lock, summaries), the training loop and evaluation.

Built on ``effnet_tf.modeling`` and ``pipelines``; ``python -m effnet_tf.train`` and
``python -m effnet_tf.evaluate`` are thin commands over ``trainer`` and ``evaluation``.
"""
