"""The model: the scaling arithmetic, its costs, the Keras builder and weight loading.

``scaling`` and ``costs`` are plain Python (no Keras), so sizing tools and the input
pipelines can use them cheaply; ``blocks``, ``normalization`` and ``efficientnet`` build the
network with Keras only (no TensorFlow import, so it also builds under ``KERAS_BACKEND=jax``);
``weight_sets``, ``download``, ``official_ckpt`` and ``weights`` load published weights.
Nothing here imports from the rest of ``effnet_tf``.
"""
