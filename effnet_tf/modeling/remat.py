"""Rematerialization of whole MBConv blocks (``EfficientNet(..., remat=...)``).

Training keeps every layer output of every block for the backward pass; in EfficientNet most
of them are the expanded (6x wider) tensors of the high-resolution stages. With ``remat`` a
block keeps only its input: its interior is recomputed in the backward pass
(``keras.remat``, i.e. ``tf.recompute_grad`` on TensorFlow). The model stays the functional
graph of keras.applications-named layers (weights, ``get_layer``, feature maps unchanged);
only its training-time ``call`` runs each chosen block as one rematerialized function.
Sources: ``keras.remat`` is ``tf.recompute_grad`` on TensorFlow (Keras 3.9+,
``keras/src/backend/tensorflow/core.py``), which recomputes ``f`` after the upstream gradient
arrives (a data dependency, so graph mode and XLA do not hoist it); it replays ``f`` as is,
state updates and random draws included (TensorFlow ``ops/custom_gradient.py``), hence the
StatelessScope below. Under JAX (``keras.remat`` is ``jax.checkpoint``) each block is a pure
function of its input and its variables' values, returning its new state
(``_remat_run_jax``).
Inside the recomputed blocks, and in the stem (which is not recomputed), the widest conv +
batch norm + swish triples have a backward pass that keeps only the convolution's input and
runs a batch slice at a time (``fused_backward.conv_batch_norm_swish``): B0's peak was there.
"""

from __future__ import annotations

import inspect
import math
import re
from typing import NamedTuple

import keras
from keras import layers

REMAT_CHOICES = (False, "all", "high_res")
# "high_res": the stages before the first stride-16 stage (strides 2, 4, 8; B0 stages 1-3),
# where the large activations are: ``benchmarks/train_memory.py``.
HIGH_RES_STAGES = (1, 2, 3)
_BLOCK_NAME = re.compile(r"^block(\d+)[a-z]+_")
_STEM = "stem_"
# Fused from this many convolution outputs per image: the stem and the expansions (1 x 1) from
# 112 x 112 x 32 (on B0 at 224 px: the stem, block2a's expansion at 112 x 112 x 96, and the 56 x
# 56 x 144 expansions of block2b and block3a); depthwise convolutions from 112 x 112 x 96 (none
# on B0 at 224 px; their recomputation costs more). Fusing fewer left memory on the table,
# fusing more cost step time for no memory: the measurements are in BUILD.md, "Training
# memory" (``benchmarks/train_memory.py``).
FUSE_MIN_ELEMENTS = 112 * 112 * 32
FUSE_MIN_DEPTHWISE_ELEMENTS = 112 * 112 * 96


def check_remat(remat):
    """``remat`` normalized to one of ``REMAT_CHOICES`` (True means "all")."""
    if remat is None or remat is False:
        return False
    if remat is True:
        return "all"
    if not isinstance(remat, str) or remat not in REMAT_CHOICES:
        raise ValueError(f"remat must be one of {REMAT_CHOICES} or True, got {remat!r}")
    return remat


def functional_model(inputs, outputs, name: str, remat=False) -> keras.Model:
    """A plain functional ``keras.Model``, or with ``remat`` an ``EfficientNetModel`` (same
    graph and layers) whose training call rematerializes the chosen blocks."""
    remat = check_remat(remat)
    if not remat:
        return keras.Model(inputs, outputs, name=name)
    return EfficientNetModel(inputs, outputs, name=name, remat=remat)


class _Segment(NamedTuple):
    """Consecutive layers run together: one block to rematerialize (``block`` its name), or a
    single layer run as usual (``block`` None). ``inputs``: the layers' input structures;
    ``source``, ``output``: the segment's one input and one output (symbolic tensors);
    ``fused``: positions of the convolutions that run with the next two layers (batch norm,
    swish) as one ``fused_backward.conv_batch_norm_swish``; ``recompute``: False for the stem,
    whose fused triple is its only change."""

    block: str | None
    layers: list
    inputs: list
    source: object
    output: object
    fused: frozenset = frozenset()
    recompute: bool = True


class _Plan:
    """The segments of a model; a plain holder, so Keras neither tracks nor saves it."""

    def __init__(self, segments):
        self.segments = segments


@keras.saving.register_keras_serializable(package="effnet_tf")
class EfficientNetModel(keras.Model):
    """A functional EfficientNet whose training call rematerializes whole MBConv blocks.

    Only ``call(..., training=True)`` differs from ``keras.Model``'s; inference, layers,
    weights and the saved config are the same graph (``.keras`` files record ``remat``).

    Two things ``keras.remat`` alone gets wrong here (the recomputation runs the block again,
    state included): batch-norm moving statistics would be updated twice per step, and the
    stochastic-depth ``Dropout`` would draw a new mask (its seed advances), so gradients would
    belong to another network. Each block therefore runs inside a ``keras.StatelessScope``
    that starts from the block's state (moving statistics, seeds) as it was before the step;
    the forward pass's state updates are applied once after it, the recomputation's dropped.
    """

    def __init__(self, inputs, outputs, name=None, **kwargs):
        remat = check_remat(kwargs.pop("remat", "all"))
        super().__init__(inputs, outputs, name=name, **kwargs)
        self.remat = remat
        self._remat_plan = _Plan(self._segments())

    def get_config(self):
        return {**super().get_config(), "remat": self.remat}

    @property
    def remat_blocks(self) -> list[str]:
        """The blocks recomputed in the backward pass (``["block1a_", "block2a_", ...]``)."""
        return [s.block for s in self._remat_plan.segments if s.block and s.recompute]

    def _segments(self) -> list[_Segment]:
        stages = None if self.remat == "all" else HIGH_RES_STAGES
        segments = []
        for layer in self.layers:
            if isinstance(layer, layers.InputLayer):
                continue
            match = _BLOCK_NAME.match(layer.name)
            block = match and (stages is None or int(match.group(1)) in stages) and match.group(0)
            block = block or None
            if layer.name.startswith(_STEM):
                block = _STEM
            if block and segments and segments[-1].block == block:
                segments[-1].layers.append(layer)
                segments[-1].inputs.append(layer.input)
            else:
                if block and any(s.block == block for s in segments):
                    raise ValueError(f"the layers of block {block!r} are not consecutive")
                segments.append(_Segment(block, [layer], [layer.input], None, None,
                                         recompute=block != _STEM))
        return [_with_ends(s) if s.block else s for s in segments]

    def call(self, inputs, training=None, mask=None, **kwargs):
        if training is not True or mask is not None or kwargs:
            return super().call(inputs, training=training, mask=mask, **kwargs)
        values = {id(self.inputs[0]): keras.ops.convert_to_tensor(inputs)}
        on_jax = keras.backend.backend() == "jax"
        for segment in self._remat_plan.segments:
            if segment.block is None:
                _run(segment, values, training)
            elif not segment.recompute:
                _run(segment, values, training, fuse=not on_jax)
            else:
                run = _remat_run_jax if on_jax else _remat_run
                values[id(segment.output)] = run(segment, values[id(segment.source)], training)
        outputs = [values[id(t)] for t in self.outputs]
        return outputs[0] if len(outputs) == 1 else outputs


def _with_ends(segment: _Segment) -> _Segment:
    """Fills in the one tensor a segment reads from outside and the one it hands on."""
    produced = {id(layer.output) for layer in segment.layers}
    sources = {id(t): t for struct in segment.inputs for t in keras.tree.flatten(struct)
               if id(t) not in produced}
    if len(sources) != 1:
        raise ValueError(f"segment {segment.block or segment.layers[0].name!r} reads "
                         f"{len(sources)} outside tensors, not 1")
    segment = segment._replace(source=next(iter(sources.values())),
                               output=segment.layers[-1].output)
    return segment._replace(fused=_fusable(segment))


def _fusable(segment: _Segment) -> frozenset:
    """Positions ``i`` where ``layers[i:i + 3]`` is a float32 convolution without bias or
    activation, a per-replica BatchNormalization and a swish ``Activation``, each read only by
    the next, with at least ``FUSE_MIN_ELEMENTS`` convolution outputs per image
    (``FUSE_MIN_DEPTHWISE_ELEMENTS`` for a depthwise one)."""
    readers = {}
    for layer, struct in zip(segment.layers, segment.inputs):
        for t in keras.tree.flatten(struct):
            readers.setdefault(id(t), []).append(layer)
    fused = set()
    for i, (conv, bn, act) in enumerate(zip(segment.layers, segment.layers[1:],
                                            segment.layers[2:])):
        if (isinstance(conv, (layers.Conv2D, layers.DepthwiseConv2D)) and not conv.use_bias
                and conv.activation is keras.activations.linear
                and isinstance(conv.input, keras.KerasTensor)
                and isinstance(bn, layers.BatchNormalization) and not bn.synchronized
                and bn.center and bn.scale
                and isinstance(act, layers.Activation)
                and act.activation is keras.activations.silu
                and {conv.compute_dtype, bn.compute_dtype, act.compute_dtype} == {"float32"}
                and readers.get(id(conv.output)) == [bn] and readers.get(id(bn.output)) == [act]
                and segment.output is not conv.output and segment.output is not bn.output
                and None not in conv.output.shape[1:]
                and math.prod(conv.output.shape[1:]) >= (
                    FUSE_MIN_DEPTHWISE_ELEMENTS if isinstance(conv, layers.DepthwiseConv2D)
                    else FUSE_MIN_ELEMENTS)):
            fused.add(i)
    return frozenset(fused)


def _run(segment: _Segment, values: dict, training, fuse: bool = False) -> None:
    """Runs a segment's layers in order on ``values`` (symbolic tensor id -> tensor), passing
    ``training`` to those that take it (the backward pass's recomputation runs outside the
    model call that would supply it). ``fuse``: the segment's fused triples run as
    ``fused_backward.conv_batch_norm_swish`` in training (the same values, a lighter backward
    pass), unless frozen (then Keras' own path)."""
    skip = ()
    for i, (layer, struct) in enumerate(zip(segment.layers, segment.inputs)):
        if i in skip:
            continue
        args = keras.tree.map_structure(lambda t: values[id(t)], struct)
        if (fuse and i in segment.fused and training is True and layer.trainable
                and segment.layers[i + 1].trainable):
            from effnet_tf.modeling import fused_backward  # TensorFlow, as remat itself

            bn, activation = segment.layers[i + 1:i + 3]
            values[id(activation.output)] = fused_backward.conv_batch_norm_swish(
                layer, bn, activation, args)
            skip = (i + 1, i + 2)
            continue
        kwargs = {"training": training} if _takes_training(layer) else {}
        values[id(layer.output)] = layer(args, **kwargs)


def _takes_training(layer) -> bool:
    return "training" in inspect.signature(layer.call).parameters


def _remat_run(segment: _Segment, x, training):
    state = [v for layer in segment.layers for v in layer.non_trainable_variables]
    before = [keras.ops.copy(v.value) for v in state]
    after = []

    def block(x):
        values = {id(segment.source): x}
        with keras.StatelessScope(state_mapping=list(zip(state, before))) as scope:
            _run(segment, values, training, fuse=True)
        after[:] = [scope.get_current_value(v) for v in state]
        return values[id(segment.output)]

    y = keras.remat(block)(x)
    for variable, value in zip(state, after):  # the forward pass's updates, once
        variable.assign(value)
    return y


def _remat_run_jax(segment: _Segment, x, training):
    """``_remat_run`` under JAX (``keras.remat`` is ``jax.checkpoint``): the block is a pure
    function of its input and of its variables' values as the step has them (the caller's
    ``StatelessScope``; weights too, so their gradients flow), returning its output and its
    new state (statistics, seeds), which are applied once; nothing leaves the checkpointed
    trace but its outputs. No fused backward pass (TensorFlow's)."""
    variables = [v for layer in segment.layers for v in layer.variables]
    state_ids = {id(v) for layer in segment.layers for v in layer.non_trainable_variables}
    current = [v.value for v in variables]

    def block(x, current):
        values = {id(segment.source): x}
        with keras.StatelessScope(state_mapping=list(zip(variables, current))) as scope:
            _run(segment, values, training)
        updated = [scope.get_current_value(v) for v in variables]
        return values[id(segment.output)], [c if u is None else u
                                            for u, c in zip(updated, current)]

    y, after = keras.remat(block)(x, current)
    for variable, value in zip(variables, after):  # the forward pass's updates, once
        if id(variable) in state_ids:
            variable.assign(value)
    return y
