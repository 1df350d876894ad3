"""PyTorch EfficientNet state dicts -> our layers (keras.applications names), by layout.

Two layouts (REFERENCE of the project: timm 1.0's ``efficientnet.py``/``_efficientnet_blocks
.py``; lukemelas/efficientnet_pytorch's ``model.py`` and its Lite fork
``efficientnet-lite-pytorch``):
  * ``"timm"``: ``conv_stem``, ``bn1``, ``blocks.S.J`` (stage S from 0, block J in it),
    ``conv_head``, ``bn2``, ``classifier``; a block without expansion (stage 0) has
    ``conv_dw, bn1, se.conv_reduce, se.conv_expand, conv_pw, bn2``, the others ``conv_pw,
    bn1, conv_dw, bn2, se.*, conv_pwl, bn3``. Both timm's ``tf_efficientnet_*`` (TF padding,
    epsilon 1e-3) and its own ``efficientnet_*`` (symmetric padding, epsilon 1e-5) use it:
    the weights do not say which; the model they go into must (``EfficientNet(padding=,
    batch_norm_epsilon=)``).
  * ``"lukemelas"``: ``_conv_stem``, ``_bn0``, ``_blocks.N`` numbered over all blocks
    (``_expand_conv, _bn0, _depthwise_conv, _bn1, _se_reduce, _se_expand, _project_conv,
    _bn2``; no ``_expand_conv``/``_bn0`` without expansion), ``_conv_head``, ``_bn1``, ``_fc``;
    TF "same" padding, epsilon 1e-3 (the official models, converted).
Arrays: convolutions ``(O, I, h, w)`` -> ``(h, w, I, O)``, depthwise ``(C, 1, h, w)`` ->
``(h, w, C, 1)``, linear ``(O, I)`` -> ``(I, O)``; batch norm ``weight, bias, running_mean,
running_var`` -> gamma, beta, moving mean and variance (``num_batches_tracked`` is PyTorch's
bookkeeping, ignored).
"""

from __future__ import annotations

import re

import numpy as np

from effnet_tf.modeling.layer_map import BLOCK, block_order, gather

LAYOUTS = ("timm", "lukemelas")
_FIXED = {
    "timm": {"stem_conv": "conv_stem", "stem_bn": "bn1", "top_conv": "conv_head",
             "top_bn": "bn2", "predictions": "classifier"},
    "lukemelas": {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head",
                  "top_bn": "_bn1", "predictions": "_fc"},
}
_BLOCK_PARTS = {  # (layout, has expansion) -> {our layer suffix: their module}
    ("timm", False): {"dwconv": "conv_dw", "bn": "bn1", "se_reduce": "se.conv_reduce",
                      "se_expand": "se.conv_expand", "project_conv": "conv_pw",
                      "project_bn": "bn2"},
    ("timm", True): {"expand_conv": "conv_pw", "expand_bn": "bn1", "dwconv": "conv_dw",
                     "bn": "bn2", "se_reduce": "se.conv_reduce", "se_expand": "se.conv_expand",
                     "project_conv": "conv_pwl", "project_bn": "bn3"},
    **{("lukemelas", e): {"expand_conv": "_expand_conv", "expand_bn": "_bn0",
                          "dwconv": "_depthwise_conv", "bn": "_bn1", "se_reduce": "_se_reduce",
                          "se_expand": "_se_expand", "project_conv": "_project_conv",
                          "project_bn": "_bn2"} for e in (False, True)},
}
_BN = ("weight", "bias", "running_mean", "running_var")
IGNORED_SUFFIX = ".num_batches_tracked"


def layout_of(state: dict) -> str:
    """``"timm"`` or ``"lukemelas"``, from the stem's key."""
    if "conv_stem.weight" in state:
        return "timm"
    if "_conv_stem.weight" in state:
        return "lukemelas"
    raise ValueError("not an EfficientNet state dict of a known layout (timm's "
                     "'conv_stem.weight' or lukemelas/efficientnet_pytorch's "
                     "'_conv_stem.weight')")


def variant_of(state: dict) -> str | None:
    """The published variant (``scaling.VARIANTS``) whose stem, last block and head widths,
    number of blocks and squeeze-excite (or its absence, Lite) the state dict has; else
    None."""
    from effnet_tf.modeling.scaling import VARIANTS, Scaling

    layout = layout_of(state)
    fixed = _FIXED[layout]
    stem = state[f"{fixed['stem_conv']}.weight"].shape[0]
    head, last = state[f"{fixed['top_conv']}.weight"].shape[:2]
    block = re.compile(r"^(blocks\.\d+\.\d+|_blocks\.\d+)\.")
    blocks = {m.group(1) for m in map(block.match, state) if m}
    has_se = any(".se" in key or "._se_" in key for key in state)
    for name in VARIANTS:
        scaling = Scaling.variant(name)
        found = scaling.blocks()
        if (scaling.stem_filters, found[-1].filters_out, scaling.head_filters, len(found),
                not scaling.lite) == (stem, last, head, len(blocks), has_se):
            return name
    return None


def classes_of(state: dict) -> int | None:
    """The classifier's outputs, or None without a classifier."""
    kernel = state.get(f"{_FIXED[layout_of(state)]['predictions']}.weight")
    return None if kernel is None else kernel.shape[0]


def module_map(layers: dict[str, int], layout: str) -> dict[str, str]:
    """``{our layer: their module}`` for ``layers`` (``{name: number of weights}``)."""
    blocks = block_order(layers)
    out = {}
    for name in layers:
        match = BLOCK.match(name)
        if match is None:
            if name not in _FIXED[layout]:
                raise ValueError(f"layer {name!r} has no counterpart in {layout} checkpoints")
            out[name] = _FIXED[layout][name]
            continue
        stage, letter, part = match.groups()
        block = f"block{stage}{letter}_"
        module = _BLOCK_PARTS[(layout, f"{block}expand_conv" in layers)].get(part)
        if module is None:
            raise ValueError(f"layer {name!r} has no counterpart in {layout} checkpoints")
        if layout == "timm":
            prefix = f"blocks.{int(stage) - 1}.{ord(letter[0]) - ord('a')}"
        else:
            prefix = f"_blocks.{blocks.index(block)}"
        out[name] = f"{prefix}.{module}"
    return out


def _keys(layer: str, module: str, count: int) -> list[str]:
    if layer.endswith("bn"):
        return [f"{module}.{p}" for p in _BN]
    return [f"{module}.weight"] + ([f"{module}.bias"] if count == 2 else [])


def _converted(layer: str, arrays: list[np.ndarray]) -> list[np.ndarray]:
    """PyTorch's arrays of one layer in Keras' layouts."""
    if layer.endswith("bn"):
        return arrays
    kernel, rest = arrays[0], arrays[1:]
    if layer == "predictions":
        arrays = [kernel.T]
    elif layer.endswith("dwconv"):
        arrays = [kernel.transpose(2, 3, 0, 1)]
    else:
        arrays = [kernel.transpose(2, 3, 1, 0)]
    return [np.ascontiguousarray(a) for a in arrays + rest]


def layer_arrays(layers: dict[str, int], state: dict, optional=()) -> dict[str, list]:
    """``{our layer: arrays}`` from the PyTorch state dict ``state`` for ``layers`` (``{name:
    number of weights}``); a layer in ``optional`` is left out when ``state`` lacks it.

    ValueError naming the first key a layer needs that ``state`` lacks, or the first key of
    ``state`` that no layer takes (another depth or width of blocks)."""
    layout = layout_of(state)
    modules = module_map(layers, layout)
    wanted = {layer: _keys(layer, module, layers[layer]) for layer, module in modules.items()}
    out = {layer: _converted(layer, arrays) for layer, arrays in
           gather(wanted, state, optional, f"the {layout} state dict").items()}
    used = {f"{modules[layer]}." for layer in out}
    for key in state:
        if not key.endswith(IGNORED_SUFFIX) and key[: key.rindex(".") + 1] not in used:
            raise ValueError(f"the {layout} state dict does not match the model: its {key!r} "
                             "has no layer in the model (another depth, or squeeze-excite "
                             "where the model has none)")
    return out
