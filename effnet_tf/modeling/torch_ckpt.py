"""Reading PyTorch checkpoints as NumPy arrays, without PyTorch and without running their code.

``read(path) -> {key: np.ndarray}`` for ``.safetensors`` (the ``safetensors`` package's NumPy
API) and for ``.pth``/``.pt``/``.bin`` files written by ``torch.save``, in both of its formats
(PyTorch's ``torch/serialization.py``):
  * the zip format (PyTorch >= 1.6): ``<archive>/data.pkl`` is the pickled object, whose
    tensors refer by persistent id ``("storage", storage type, key, location, numel)`` to raw
    little-endian storages ``<archive>/data/<key>``;
  * the older stream: pickles of the magic number, the protocol version and system info,
    then the object (persistent ids ``("storage", type, key, location, numel, view)``), the
    list of storage keys, and each storage as an 8-byte element count and its raw data.
A pickle can name any Python callable and have it called while loading (``os.system``
included). The unpickler here is written by hand because ``pickle`` has no safe mode: like
``torch.load(weights_only=True)`` it allows only the few names a state dict needs (ordered
dicts, PyTorch's tensor rebuilders and storage types, each mapped to a NumPy-building
function of ours, never imported) and refuses any other name before anything is called.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
# PyTorch's storage classes -> NumPy dtypes (bfloat16, which NumPy lacks, is widened below).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "BFloat16Storage": "<u2", "LongStorage": "<i8", "IntStorage": "<i4",
    "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A checkpoint's pickle asked for a global that a weights file has no use for."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A storage whose bytes may come later (the older format stores them after the pickle)."""

    def __init__(self, storage_type: _StorageType, key: str, numel: int | None):
        self.type, self.key, self.numel = storage_type, key, numel
        self.array: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), stride

    def numpy(self) -> np.ndarray:
        flat = self.storage.array
        if not self.size:
            out = flat[self.offset:self.offset + 1].reshape(())
        else:
            itemsize = flat.dtype.itemsize
            out = np.lib.stride_tricks.as_strided(
                flat[self.offset:], self.size, [s * itemsize for s in self.stride])
        out = np.array(out)  # a copy, independent of the storage
        if self.storage.type.name == "BFloat16Storage":
            out = (out.astype("<u4") << 16).view("<f4")
        return out


def _rebuild_tensor(storage, storage_offset, size, stride, *_):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise UnsafePickleError(
            f"{self.path}: refusing to load '{module}.{name}': a weights file needs only "
            f"tensors and dicts, and unpickling it would run that code (nothing was run)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"{self.path}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type, key, numel)
        return self.storages[key]


def _to_arrays(obj):
    if isinstance(obj, _Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _to_arrays(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_arrays(v) for v in obj)
    return obj


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"{path}: not a torch.save zip file (no single 'data.pkl')")
        root = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            unpickler = _Unpickler(f, path)
            obj = unpickler.load()
        for storage in unpickler.storages.values():
            raw = archive.read(f"{root}data/{storage.key}")
            storage.array = np.frombuffer(raw, storage.type.dtype)
    return obj


def _read_legacy(path):
    with open(path, "rb") as f:
        try:
            magic = _Unpickler(f, path).load()  # restricted too: any pickle can run code
        except UnsafePickleError:
            raise
        except Exception:
            magic = None
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch checkpoint (neither a torch.save zip "
                             "file nor its older pickle format)")
        _protocol, _sys_info = _Unpickler(f, path).load(), _Unpickler(f, path).load()
        unpickler = _Unpickler(f, path)
        obj = unpickler.load()
        keys = _Unpickler(f, path).load()
        for key in keys:
            storage = unpickler.storages[str(key)]
            (count,) = struct.unpack("<q", f.read(8))
            data = f.read(count * storage.type.dtype.itemsize)
            storage.array = np.frombuffer(data, storage.type.dtype)
    return obj


def read(path) -> dict[str, np.ndarray]:
    """``{key: array}`` of the state dict in a ``.safetensors`` or ``torch.save`` file (also
    one wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``, or with DataParallel's
    ``module.`` prefix). Raises ``UnsafePickleError`` for a pickle that asks for anything
    else than tensors and dicts."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        from safetensors.numpy import load_file

        state = load_file(path)
    else:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
        state = _to_arrays(obj)
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state)
