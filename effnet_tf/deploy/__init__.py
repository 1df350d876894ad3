"""Shipping a model: TFLite conversion and its runner, SavedModel serving signatures, and the
export of a trained run (``python -m effnet_tf.export``).
"""
