"""Reading the official TF EfficientNet checkpoints (tensorflow/tpu) into our layers.

Variable names and their mapping to keras.applications layer names (from Keras' former
converter ``efficientnet_weight_update_util.py``; layouts need no transposes), with
``P = efficientnet-b0`` ... ``efficientnet-l2``:
  * ``stem_conv``/``stem_bn`` <- ``P/stem/conv2d``/``P/stem/tpu_batch_normalization``;
    ``top_conv``/``top_bn``/``predictions`` <- ``P/head/conv2d``/``.../tpu_batch_normalization``
    /``.../dense``;
  * our blocks sorted by (stage, letter) pair one to one with ``P/blocks_N`` sorted by N;
    in a block without expansion ``dwconv, bn, project_conv, project_bn`` <-
    ``depthwise_conv2d, tpu_batch_normalization, conv2d, tpu_batch_normalization_1``; in the
    others ``expand_conv, expand_bn, dwconv, bn, project_conv, project_bn`` <- ``conv2d,
    tpu_batch_normalization, depthwise_conv2d, tpu_batch_normalization_1, conv2d_1,
    tpu_batch_normalization_2``; ``se_reduce``/``se_expand`` <- ``se/conv2d``/``se/conv2d_1``.
The published weights are the ``<variable>/ExponentialMovingAverage`` copies (the EMA covers
the BN moving statistics too); optimizer slots (``RMSProp``, ``RMSProp_1``) are ignored.
"""

from __future__ import annotations

import os
import re

import numpy as np

from effnet_tf.modeling.layer_map import BLOCK, block_order, gather

EMA_SUFFIX = "/ExponentialMovingAverage"
_BN = ["gamma", "beta", "moving_mean", "moving_variance"]
_FIXED = {"stem_conv": "stem/conv2d", "stem_bn": "stem/tpu_batch_normalization",
          "top_conv": "head/conv2d", "top_bn": "head/tpu_batch_normalization",
          "predictions": "head/dense"}
_BLOCK_PARTS = {  # (has expansion, our layer suffix) -> checkpoint scope inside blocks_N
    **{(False, k): v for k, v in {
        "dwconv": "depthwise_conv2d", "bn": "tpu_batch_normalization",
        "project_conv": "conv2d", "project_bn": "tpu_batch_normalization_1"}.items()},
    **{(True, k): v for k, v in {
        "expand_conv": "conv2d", "expand_bn": "tpu_batch_normalization",
        "dwconv": "depthwise_conv2d", "bn": "tpu_batch_normalization_1",
        "project_conv": "conv2d_1", "project_bn": "tpu_batch_normalization_2"}.items()},
    **{(e, "se_reduce"): "se/conv2d" for e in (False, True)},
    **{(e, "se_expand"): "se/conv2d_1" for e in (False, True)},
}


def variable_map(layers: dict[str, int], prefix: str) -> dict[str, list[str]]:
    """``{our layer name: [checkpoint variable of each of its weights, in order]}``.

    ``layers`` is ``{layer name: number of weights}`` of the layers that have weights.
    """
    index = {block: n for n, block in enumerate(block_order(layers))}
    out = {}
    for name, count in layers.items():
        match = BLOCK.match(name)
        if match:
            block = f"block{match.group(1)}{match.group(2)}_"
            expands = f"{block}expand_conv" in layers
            scope = _BLOCK_PARTS.get((expands, match.group(3)))
            if scope is None:
                raise ValueError(f"layer {name!r} has no counterpart in official checkpoints")
            scope = f"blocks_{index[block]}/{scope}"
        elif name in _FIXED:
            scope = _FIXED[name]
        else:
            raise ValueError(f"layer {name!r} has no counterpart in official checkpoints")
        if name.endswith("bn"):
            parts = _BN
        elif name.endswith("dwconv"):
            parts = ["depthwise_kernel"]
        else:
            parts = ["kernel", "bias"]
        out[name] = [f"{prefix}/{scope}/{p}" for p in parts[:count]]
    return out


def checkpoint_prefix(names) -> str:
    """The model scope of a checkpoint (``efficientnet-b0``), from its stem kernel's name."""
    for name in names:
        if name.endswith("/stem/conv2d/kernel"):
            return name[: -len("/stem/conv2d/kernel")]
    raise ValueError("not an official EfficientNet checkpoint: no '<model>/stem/conv2d/kernel' "
                     "variable")


def checkpoint_path(path) -> str:
    """The checkpoint prefix for a folder (its ``checkpoint`` file or single ``*.index``) or
    a prefix (``.../model.ckpt``)."""
    path = os.fspath(path)
    if os.path.isfile(path + ".index"):
        return path
    if os.path.isdir(path):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(path)
        if latest:
            return latest
        indexes = sorted(f for f in os.listdir(path) if f.endswith(".index"))
        if len(indexes) == 1:
            return os.path.join(path, indexes[0][: -len(".index")])
    raise ValueError(f"no TF checkpoint at {path!r} (expected a folder with a 'checkpoint' "
                     "file or one '*.index', or a prefix such as '.../model.ckpt')")


def variable_shapes(path) -> dict[str, list[int]]:
    """``{variable name: shape}`` of the checkpoint at ``path`` (folder or prefix)."""
    import tensorflow as tf

    return tf.train.load_checkpoint(checkpoint_path(path)).get_variable_to_shape_map()


def read(path) -> dict[str, np.ndarray]:
    """Every model variable of the checkpoint at ``path``, by name, with its EMA value when
    the checkpoint has one; slots, ``global_step`` and the EMA copies' own names dropped."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(checkpoint_path(path))
    names = reader.get_variable_to_shape_map()
    prefix = checkpoint_prefix(names)
    out = {}
    for name in names:
        if (not name.startswith(prefix + "/") or name.endswith(EMA_SUFFIX)
                or "/RMSProp" in name or name.rsplit("/", 1)[-1].startswith("Momentum")):
            continue
        source = name + EMA_SUFFIX if name + EMA_SUFFIX in names else name
        out[name] = reader.get_tensor(source)
    return out


def layer_arrays(layers: dict[str, int], path, optional=()) -> dict[str, list[np.ndarray]]:
    """``{layer name: arrays}`` for ``layers`` (``{name: number of weights}``) from the
    official checkpoint at ``path``; a layer in ``optional`` is left out if it is missing.

    ValueError naming the first variable the model needs that the checkpoint lacks, or the
    first checkpoint variable outside the head that no layer takes (another depth).
    """
    variables = read(path)
    prefix = checkpoint_prefix(variables)
    wanted = variable_map(layers, prefix)
    out = gather(wanted, variables, optional, f"checkpoint {os.fspath(path)!r}", "variable")
    used = {n for names in wanted.values() for n in names}
    for name in variables:
        if name not in used and not name.startswith(f"{prefix}/head/"):
            raise ValueError(f"checkpoint {os.fspath(path)!r} does not match the model: its "
                             f"variable {name!r} has no layer in the model")
    return out


def variant_of_scope(prefix: str) -> str | None:
    """``"b3"`` for ``efficientnet-b3`` / ``noisy_student_efficientnet-b3``, ``"lite2"`` for
    ``efficientnet-lite2``, else None."""
    match = re.search(r"efficientnet-(b\d|l2|lite\d)", prefix)
    return match.group(1) if match else None
