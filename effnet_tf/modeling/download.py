"""Fetching published weight files into the cache keras.applications uses.

Files go through ``keras.utils.get_file`` into ``$KERAS_HOME/models`` (default
``~/.keras/models``), so a file keras.applications already downloaded is reused and nothing
is downloaded when the cached file is there (and matches its checksum).

Two environment variables, for machines without internet and for tests:
  * ``EFFNET_TF_WEIGHTS_URL`` replaces the ``https://storage.googleapis.com/`` and
    ``https://huggingface.co/`` prefixes of every URL: a mirror with the same paths
    (``http://host/`` holding ``keras-applications/...``, ``cloud-tpu-checkpoints/...`` and
    ``timm/<name>/resolve/main/model.safetensors``), or a folder (``file:///srv/w/``).
  * ``EFFNET_TF_WEIGHTS_MD5``: ``name=md5,name=md5`` overrides the expected MD5 of the files
    of those cache names (``efficientnetb0_notop.h5``, ``effnet_tf_advprop_efficientnet-b0
    .tar.gz``), for a mirror holding other files (the tests serve fixture files this way).
    The shipped table holds the published values.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile

from effnet_tf.modeling.weight_sets import GCS, HF_BASE

URL_ENV = "EFFNET_TF_WEIGHTS_URL"
MD5_ENV = "EFFNET_TF_WEIGHTS_MD5"
CACHE_SUBDIR = "models"


def resolve_url(url: str) -> str:
    """``url`` with its host prefix (Google Cloud Storage, Hugging Face) replaced by the
    mirror."""
    mirror = os.environ.get(URL_ENV)
    for host in (GCS, HF_BASE):
        if mirror and url.startswith(host):
            return mirror.rstrip("/") + "/" + url[len(host):]
    return url


def expected_md5(fname: str, published: str | None) -> str | None:
    """The MD5 to check ``fname`` against: an ``EFFNET_TF_WEIGHTS_MD5`` override, else the
    published one."""
    overrides = {}
    for item in filter(None, os.environ.get(MD5_ENV, "").split(",")):
        name, sep, md5 = item.partition("=")
        if not sep or len(md5.strip()) != 32:
            raise ValueError(f"{MD5_ENV} must be 'name=md5,...' with 32-digit MD5s, "
                             f"got {item!r}")
        overrides[name.strip()] = md5.strip().lower()
    return overrides.get(fname, published)


def md5_of(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def keras_home() -> str:
    """``$KERAS_HOME`` as set now (Keras reads it once, at import), else Keras' own."""
    from keras.src.backend.config import keras_home as keras_default

    return os.environ.get("KERAS_HOME") or keras_default()


def cache_dir() -> str:
    """``$KERAS_HOME/models``, where keras.applications keeps its weight files."""
    return os.path.join(keras_home(), CACHE_SUBDIR)


def fetch(url: str, md5: str | None, fname: str | None = None) -> str:
    """The local path of ``url`` (mirrored), downloaded once as ``fname`` (default: the URL's
    file name) and checked against ``md5``.

    A file that does not match is deleted; the ValueError names the URL and both checksums.
    """
    import keras

    fname = fname or url.rsplit("/", 1)[-1]
    md5 = expected_md5(fname, md5)
    origin = resolve_url(url)
    path = os.path.join(cache_dir(), fname)
    os.makedirs(cache_dir(), exist_ok=True)  # else get_file falls back to /tmp/.keras
    try:
        return keras.utils.get_file(fname, origin, cache_dir=keras_home(),
                                    cache_subdir=CACHE_SUBDIR, file_hash=md5,
                                    hash_algorithm="md5")
    except ValueError:
        if md5 is None or not os.path.exists(path):
            raise
        actual = md5_of(path)
        os.remove(path)
        raise ValueError(f"checksum mismatch for {origin}: expected MD5 {md5}, got {actual} "
                         f"(the downloaded file was deleted)") from None


def unpack_checkpoint(tarball: str, into: str) -> str:
    """Extracts an official checkpoint tarball into ``into``; the checkpoint's prefix path
    (``.../model.ckpt``), found by its ``.index`` file."""
    with tarfile.open(tarball) as archive:
        archive.extractall(into, filter="data")
    for root, _, files in os.walk(into):
        for name in sorted(files):
            if name.endswith(".index"):
                return os.path.join(root, name[: -len(".index")])
    raise ValueError(f"{tarball} holds no TF checkpoint (no '*.index' file)")


def temporary_dir():
    """A scratch folder next to the cache (same file system; tarballs can be large)."""
    os.makedirs(cache_dir(), exist_ok=True)
    return tempfile.TemporaryDirectory(dir=cache_dir(), prefix="unpack-")
