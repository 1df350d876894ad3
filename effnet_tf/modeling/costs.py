"""Parameters and multiply-adds of a scaling, computed from the architecture alone.

No Keras here: the budget solver and the summary table evaluate many scalings per second.
``tests/test_weights.py`` checks these numbers against the built Keras models (and
keras.applications); ``tests/test_scaling.py`` against the paper's Table 2.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from effnet_tf.modeling.scaling import Scaling, check_image_size

IMAGENET_CLASSES = 1000


class Costs(NamedTuple):
    params: int  # all weights, BN moving statistics included (as model.count_params())
    trainable_params: int
    flops: int  # multiply-adds of convolutions and the classifier, as in the paper


def _same_out(size: int, strides: int) -> int:
    return math.ceil(size / strides)


def costs(
    scaling: Scaling,
    image_size: int | None = None,
    include_top: bool = True,
    classes: int = IMAGENET_CLASSES,
) -> Costs:
    """Parameters and FLOPs (multiply-adds) of ``scaling`` at ``image_size`` (default: its own).

    Like keras.applications, the 1x1 head conv is part of the model with or without the top.
    """
    size = check_image_size(scaling.resolution if image_size is None else image_size)
    trainable = frozen = flops = 0

    def conv(h, w, k, c_in, c_out, depthwise=False, bias=False):
        nonlocal trainable, flops
        weights = k * k * c_in * (1 if depthwise else c_out)
        trainable += weights + (c_out if bias else 0)
        flops += h * w * weights

    def bn(channels):
        nonlocal trainable, frozen
        trainable += 2 * channels
        frozen += 2 * channels

    size = _same_out(size, 2)
    conv(size, size, 3, 3, scaling.stem_filters)
    bn(scaling.stem_filters)
    for block in scaling.blocks():
        expanded = block.expanded_filters
        if block.expand_ratio != 1:
            conv(size, size, 1, block.filters_in, expanded)
            bn(expanded)
        size = _same_out(size, block.strides)
        conv(size, size, block.kernel_size, expanded, expanded, depthwise=True)
        bn(expanded)
        if block.has_se:
            conv(1, 1, 1, expanded, block.se_filters, bias=True)
            conv(1, 1, 1, block.se_filters, expanded, bias=True)
        conv(size, size, 1, expanded, block.filters_out)
        bn(block.filters_out)
    conv(size, size, 1, block.filters_out, scaling.head_filters)
    bn(scaling.head_filters)
    if include_top:
        conv(1, 1, 1, scaling.head_filters, classes, bias=True)
    return Costs(trainable + frozen, trainable, flops)
