"""Choosing a scale: budgets of FLOPs and parameters, measured latency, the tables, and the
search for the compound coefficients (alpha, beta, gamma) with keras-tuner.

``python -m effnet_tf.scale`` is the command over these modules.
"""
