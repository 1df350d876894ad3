"""The model: the scaling arithmetic, its costs, the Keras builder and weight loading.

``scaling`` and ``costs`` are plain Python (no Keras), so sizing tools and the input
pipelines can use them cheaply; ``blocks``, ``normalization`` and ``efficientnet`` build the
network with Keras only (no TensorFlow import, so it also builds under ``KERAS_BACKEND=jax``);
``remat`` (with ``fused_backward``, TensorFlow only) recomputes blocks in training;
``weight_sets``, ``download``, ``official_ckpt``, ``torch_ckpt``, ``torch_layouts``,
``layer_map`` and ``weight_loading`` load published weights (official TF checkpoints,
PyTorch files without PyTorch). Nothing here imports from the rest of ``effnet_tf``.
"""
