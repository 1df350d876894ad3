"""Loading weights by layer name from keras.applications models and weight files.

Our layer names equal keras.applications', so its models and its HDF5 files
(``efficientnetb0.h5``, ``efficientnetb0_notop.h5``) load directly. Nothing is downloaded:
pass a model instance or the path of a local file.

Reading the HDF5 layouts is written here by hand (with h5py) because Keras 3 loads legacy
files by layer order only, which breaks as soon as two models differ in their weightless
layers (our single normalization layer versus keras.applications' two).
"""

from __future__ import annotations

import os

import h5py
import keras
import numpy as np
from absl import logging


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


def save_h5(model: keras.Model, path) -> None:
    """Writes ``model``'s weights by layer name in the Keras 2 HDF5 layout of
    keras.applications' files, so that ``load`` (and older Keras) read them back by name."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def _strings(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def load(model: keras.Model, source, *, skip_mismatch: bool = False) -> list[str]:
    """Copies weights into ``model`` from a Keras model or a weights file, matching by name.

    Every layer of ``model`` that has weights must find a layer of the same name and shapes in
    ``source`` (extra layers in ``source``, such as a classifier, are ignored). With
    ``skip_mismatch`` a missing or misshaped layer is skipped with a warning instead (e.g. a
    new classifier for fine-tuning). Nothing is assigned unless everything fits. Returns the
    names of the layers loaded.
    """
    if isinstance(source, keras.Model):
        available = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
        where = f"model {source.name!r}"
    elif isinstance(source, (str, os.PathLike)):
        if not os.path.isfile(source):
            raise ValueError(f"weights file {os.fspath(source)!r} does not exist")
        available = read_h5(source)
        where = f"file {os.fspath(source)!r}"
    else:
        raise ValueError(f"source must be a keras.Model or a file path, got {source!r}")

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


def _mismatch(layer, arrays) -> str | None:
    if arrays is None:
        return "is missing from the source"
    ours = [tuple(w.shape) for w in layer.weights]
    theirs = [tuple(a.shape) for a in arrays]
    if ours != theirs:
        return f"has weight shapes {ours} but the source has {theirs}"
    return None
