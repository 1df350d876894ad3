"""Loading weights by layer name: published sets by name, files, checkpoints, models.

Our layer names equal keras.applications', so its models and its HDF5 files
(``efficientnetb0.h5``, ``efficientnetb0_notop.h5``) load directly. A set name
(``"imagenet"``, ``"advprop"``, ``"timm"``, ... see ``weight_sets``) is fetched once into
the Keras cache (``download``); an official TF checkpoint (``official_ckpt``) or a PyTorch
file (``.pth``, ``.safetensors``: ``torch_ckpt``, ``torch_layouts``) is converted once to
our by-name HDF5 there, and read from it next time. Converting fills the layers of a model
that the caller builds (``convert(source, out, model)``): this module never builds one.
The command line over these functions is ``python -m effnet_tf.weights`` (list, fetch,
convert).

Reading the HDF5 layouts is written here by hand (with h5py) because Keras 3 loads legacy
files by layer order only, which breaks as soon as two models differ in their weightless
layers (our single normalization layer versus keras.applications' two).
"""

from __future__ import annotations

import os

import h5py
import numpy as np
from absl import logging

from effnet_tf.modeling import download, official_ckpt, weight_sets


def read_h5(path) -> dict[str, list[np.ndarray]]:
    """``{layer_name: [arrays]}`` from a Keras 2 weights or model HDF5 file (the format of
    keras.applications' weight files)."""
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        if "layer_names" in group.attrs:
            out = {}
            for layer_name in _strings(group.attrs["layer_names"]):
                layer_group = group[layer_name]
                names = _strings(layer_group.attrs.get("weight_names", []))
                if names:
                    out[layer_name] = [np.asarray(layer_group[n]) for n in names]
            return out
        if "layers" in f:
            raise ValueError(
                f"{path} is a Keras 3 '.weights.h5' file, which keys weights by layer class "
                "and order, not by name: load it with model.load_weights() into the model it "
                "was saved from, or pass that model to effnet_tf.weights.load()"
            )
    raise ValueError(f"{path} is not a Keras HDF5 weights file (no 'layer_names')")


# The weight names of a layer kind, in Keras' order (for files written from arrays).
_WEIGHT_NAMES = {"bn": ["gamma", "beta", "moving_mean", "moving_variance"],
                 "dwconv": ["depthwise_kernel"]}
# Layers a model without its head (``include_top=False``, ``features_only``) lacks, with
# their number of weights: converted too, so one cached file serves every head.
HEAD_LAYERS = {"top_conv": 1, "top_bn": 4, "predictions": 2}


def save_h5(model, path) -> None:
    """Writes ``model``'s weights (a ``keras.Model``, or ``{layer name: arrays}``) by layer
    name in the Keras 2 HDF5 layout of keras.applications' files, so that ``load`` (and
    older Keras) read them back by name."""
    if isinstance(model, dict):
        layers = {name: ([f"{name}/{w}:0" for w in _weight_names(name, len(arrays))], arrays)
                  for name, arrays in model.items()}
    else:
        layers = {layer.name: ([f"{layer.name}/{w.name}:0" for w in layer.weights],
                               layer.get_weights()) for layer in model.layers}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode() for name in layers]
        for layer_name, (names, values) in layers.items():
            group = f.create_group(layer_name)
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, values):
                group.create_dataset(name, data=value)


def _weight_names(layer_name: str, count: int) -> list[str]:
    kind = next((k for k in _WEIGHT_NAMES if layer_name.endswith(k)), None)
    return _WEIGHT_NAMES[kind] if kind else ["kernel", "bias"][:count]


def _strings(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def load(model, source, *, skip_mismatch: bool = False, variant: str | None = None
         ) -> list[str]:
    """Copies weights into ``model`` by layer name from a set name, a file, a checkpoint or a
    Keras model.

    ``source``: a set of ``weight_sets.SETS`` (``"imagenet"``, ``"advprop"``, ...; for the
    model's variant, found from its layers unless ``variant`` is given), a by-name HDF5 file,
    an official TF checkpoint (folder or prefix), a PyTorch state dict file (``.pth``,
    ``.pt``, ``.bin``, ``.safetensors``; timm's or lukemelas/efficientnet_pytorch's layout),
    a ``{layer: [arrays]}`` dict or a ``keras.Model``. Every layer of ``model`` that has weights must find a layer of the same
    name and shapes in ``source`` (extra layers in ``source``, such as a classifier, are
    ignored). With ``skip_mismatch`` a missing or misshaped layer is skipped with a warning
    instead (e.g. a new classifier for fine-tuning). Nothing is assigned unless everything
    fits. Returns the names of the layers loaded.
    """
    import keras

    if isinstance(source, str) and source in weight_sets.SETS:
        classes = _classes(model)  # another head and skip_mismatch: the smaller no-top file
        include_top = classes == 1000 or (classes is not None and not skip_mismatch)
        source = pretrained_path(source, variant or variant_of(model), include_top, model)
    if isinstance(source, keras.Model):
        available = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
        where = f"model {source.name!r}"
    elif isinstance(source, dict):
        available, where = source, "the given arrays"
    elif isinstance(source, (str, os.PathLike)):
        where = f"file {os.fspath(source)!r}"
        if is_checkpoint(source) or is_torch(source):
            available = source_arrays(model, source)
            where = f"checkpoint {os.fspath(source)!r}"
        elif os.path.isfile(source):
            available = read_h5(source)
        else:
            raise ValueError(f"weights file {os.fspath(source)!r} does not exist")
    else:
        raise ValueError(f"source must be a weight set name, a file path or a keras.Model, "
                         f"got {source!r}")

    plan = []
    for layer in model.layers:
        if not layer.weights:
            continue
        problem = _mismatch(layer, available.get(layer.name))
        if problem is None:
            plan.append((layer, available[layer.name]))
        elif skip_mismatch:
            logging.warning("Not loading layer %r from %s: %s", layer.name, where, problem)
        else:
            raise ValueError(
                f"weights from {where} do not fit model {model.name!r}: layer {layer.name!r} "
                f"{problem}"
            )
    for layer, arrays in plan:
        layer.set_weights(arrays)
    return [layer.name for layer, _ in plan]


def is_checkpoint(path) -> bool:
    """Whether ``path`` is a TF checkpoint: a folder, or a prefix with an ``.index`` file."""
    path = os.fspath(path)
    return os.path.isdir(path) or os.path.isfile(path + ".index")


def is_torch(path) -> bool:
    """Whether ``path`` names a PyTorch file (by its extension)."""
    return os.fspath(path).endswith(TORCH_SUFFIXES)


TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def source_arrays(model, source) -> dict[str, list[np.ndarray]]:
    """``{layer name: arrays}`` from an official TF checkpoint or a PyTorch file, for
    ``model``'s layers and, when ``source`` has them, the head layers ``model`` lacks."""
    layers = {**HEAD_LAYERS, **{layer.name: len(layer.weights) for layer in model.layers
                                if layer.weights}}
    optional = set(HEAD_LAYERS) - {layer.name for layer in model.layers}
    if is_torch(source):
        from effnet_tf.modeling import torch_ckpt, torch_layouts

        return torch_layouts.layer_arrays(layers, torch_ckpt.read(source), optional)
    return official_ckpt.layer_arrays(layers, source, optional)


def _classes(model) -> int | None:
    try:
        return model.get_layer("predictions").units
    except ValueError:
        return None


def variant_of(model) -> str:
    """The published variant whose layers ``model`` has (stem width and block names), so a
    set name loads into any model of that width and depth (any input size or head)."""
    from effnet_tf.modeling.scaling import VARIANTS, Scaling

    try:
        stem = model.get_layer("stem_conv").filters
    except ValueError:
        raise ValueError(f"model {model.name!r} is not an EfficientNet (no 'stem_conv')") from None
    blocks = {layer.name[: layer.name.index("_") + 1] for layer in model.layers
              if layer.name.startswith("block")}
    lite = not any(layer.name.endswith("se_reduce") for layer in model.layers)
    widths = {layer.name: layer.filters for layer in model.layers
              if layer.name.endswith("project_conv")}
    for name in VARIANTS:
        scaling = Scaling.variant(name)
        if (stem == scaling.stem_filters and lite == scaling.lite
                and blocks == {b.name for b in scaling.blocks()}
                and all(widths[f"{b.name}project_conv"] == b.filters_out
                        for b in scaling.blocks())):
            return name
    raise ValueError(f"model {model.name!r} has the width and depth of no published variant "
                     f"({', '.join(VARIANTS)}), so no published weights fit it")


def pretrained_path(set_name: str, variant: str, include_top: bool = True, model=None) -> str:
    """The local by-name HDF5 file of set ``set_name`` for ``variant``, fetched (and for
    checkpoints and PyTorch files converted, filling ``model``'s layers: a model of
    ``variant``, any head) into the Keras cache the first time."""
    entry = weight_sets.weight_file(set_name, variant)
    if not entry.needs_conversion:
        if include_top:
            return download.fetch(entry.url, entry.md5)
        return download.fetch(entry.notop_url, entry.notop_md5)
    out = os.path.join(download.cache_dir(), f"effnet_tf_{set_name}_{variant}.h5")
    if not os.path.isfile(out):
        if model is None:
            raise ValueError(f"weight set {set_name!r} for {variant!r} is converted into a "
                             "model's layers: pass the model (EfficientNet(variant, weights="
                             "set) does)")
        # files of different sets share names (efficientnet-b0.tar.gz, model.safetensors)
        fetched = download.fetch(entry.url, entry.md5, entry.cache_name(set_name))
        if entry.is_checkpoint:
            with download.temporary_dir() as scratch:
                convert(download.unpack_checkpoint(fetched, scratch), out, model)
        else:
            convert(fetched, out, model)
        os.remove(fetched)  # the converted file is what is read from now on
    return out


def convert(source, out_path, model) -> list[str]:
    """Writes an official TF checkpoint or a PyTorch file ``source`` as a by-name HDF5 file
    ``out_path``, for ``model``'s layers (a model of the checkpoint's width and depth; every
    layer must find its weights) and the head layers ``model`` lacks when ``source`` has
    them. Returns the layers written. ``effnet_tf.weights.convert`` builds the model."""
    arrays = source_arrays(model, source)
    for layer in model.layers:  # shapes checked now (but a new head's), not when read
        problem = (_mismatch(layer, arrays.get(layer.name))
                   if layer.weights and layer.name != "predictions" else None)
        if problem:
            raise ValueError(f"{os.fspath(source)!r} does not fit model {model.name!r}: "
                             f"layer {layer.name!r} {problem}")
    tmp = f"{out_path}.partial"
    save_h5(arrays, tmp)
    os.replace(tmp, out_path)
    return list(arrays)


def _mismatch(layer, arrays) -> str | None:
    if arrays is None:
        return "is missing from the source"
    ours = [tuple(w.shape) for w in layer.weights]
    theirs = [tuple(a.shape) for a in arrays]
    if ours != theirs:
        return f"has weight shapes {ours} but the source has {theirs}"
    return None
