"""The catalogue of published EfficientNet weights: which set has which variant, where.

Plain Python (no TensorFlow or Keras), so ``python -m effnet_tf.weights list`` is instant.
Sources:
  * ``"imagenet"``: keras.applications' files (Keras 3, ``keras/src/applications/
    efficientnet.py``: base URL, file names and the MD5s in ``WEIGHTS_HASHES``). They are the
    AutoAugment-trained weights, so their top-1 is that of the AutoAugment checkpoints.
  * the others: the official TF checkpoints of tensorflow/tpu,
    ``models/official/efficientnet/README.md`` (paths, variants, top-1). No checksums are
    published for these tarballs (``md5 is None``); the converted file is checked instead:
    every layer of the variant must find its checkpoint variables (``official_ckpt``).
  * AdvProp checkpoints were evaluated on inputs ``x * 2 / 255 - 1`` (the eval script's
    Inception preprocessing), hence ``normalization="advprop"``; the others use the ImageNet
    mean and standard deviation. The top-1 of the baseline and RandAugment checkpoints is not
    restated here (None).
Licence of all weights: Apache 2.0 (the repositories that publish them).
"""

from __future__ import annotations

from typing import NamedTuple

GCS = "https://storage.googleapis.com/"
KERAS_BASE = GCS + "keras-applications/"
TPU_BASE = GCS + "cloud-tpu-checkpoints/efficientnet/"

# keras.applications' MD5s (with top, notop), as in its WEIGHTS_HASHES.
KERAS_MD5 = {
    "b0": ("902e53a9f72be733fc0bcb005b3ebbac", "50bc09e76180e00e4465e1a485ddc09d"),
    "b1": ("1d254153d4ab51201f1646940f018540", "74c4e6b3e1f6a1eea24c589628592432"),
    "b2": ("b15cce36ff4dcbd00b6dd88e7857a6ad", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "b3": ("ffd1fdc53d0ce67064dc6a9c7960ede0", "af6d107764bb5b1abb91932881670226"),
    "b4": ("18c95ad55216b8f92d7e70b3a046e2fc", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "b5": ("ace28f2a6363774853a83a0b21b9421a", "38879255a25d3c92d5e44e04ae6cec6f"),
    "b6": ("165f6e37dce68623721b423839de8be5", "9ecce42647a20130c1f39a5d4cb75743"),
    "b7": ("8c03f828fec3ef71311cd463b6759d99", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
}
AUTOAUGMENT_TOP1 = dict(zip(KERAS_MD5, (77.1, 79.1, 80.1, 81.6, 82.9, 83.6, 84.0, 84.3)))
ADVPROP_TOP1 = dict(zip(
    ("b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8"),
    (77.6, 79.6, 80.5, 81.9, 83.3, 84.3, 84.8, 85.2, 85.5)))
NOISY_STUDENT_TOP1 = dict(zip(KERAS_MD5, (78.8, 81.5, 82.4, 84.1, 85.3, 86.1, 86.4, 86.9)))
RESOLUTION = {"b0": 224, "b1": 240, "b2": 260, "b3": 300, "b4": 380, "b5": 456,
              "b6": 528, "b7": 600, "b8": 672, "l2": 800}


class WeightFile(NamedTuple):
    """One published file of a set for one variant."""

    url: str
    md5: str | None  # None: not published (official tarballs)
    notop_url: str | None = None  # keras.applications ships a separate no-top file
    notop_md5: str | None = None
    resolution: int = 224
    top1: float | None = None

    @property
    def is_checkpoint(self) -> bool:
        return self.url.endswith(".tar.gz")


class WeightSet(NamedTuple):
    name: str
    description: str
    files: dict[str, WeightFile]  # variant -> file
    normalization: str = "imagenet"  # or "advprop"

    @property
    def source(self) -> str:
        return "keras.applications" if self.name == "imagenet" else "tensorflow/tpu"


def _keras_files() -> dict[str, WeightFile]:
    return {v: WeightFile(f"{KERAS_BASE}efficientnet{v}.h5", top,
                          f"{KERAS_BASE}efficientnet{v}_notop.h5", notop,
                          RESOLUTION[v], AUTOAUGMENT_TOP1[v])
            for v, (top, notop) in KERAS_MD5.items()}


def _tarballs(path: str, variants, top1=None, resolution=None) -> dict[str, WeightFile]:
    return {v: WeightFile(TPU_BASE + path.format(v=v), None,
                          resolution=(resolution or RESOLUTION)[v],
                          top1=(top1 or {}).get(v))
            for v in variants}


B0_B7 = tuple(KERAS_MD5)
SETS: dict[str, WeightSet] = {s.name: s for s in (
    WeightSet("imagenet", "keras.applications' files (AutoAugment training)", _keras_files()),
    WeightSet("baseline", "official checkpoints, first release",
              _tarballs("ckpts/efficientnet-{v}.tar.gz", B0_B7[:6])),
    WeightSet("autoaugment", "official checkpoints trained with AutoAugment",
              _tarballs("ckptsaug/efficientnet-{v}.tar.gz", B0_B7, AUTOAUGMENT_TOP1)),
    WeightSet("randaugment", "official checkpoints trained with RandAugment",
              _tarballs("randaug/efficientnet-{v}-randaug.tar.gz", ("b5", "b7"))),
    WeightSet("advprop", "official checkpoints, AdvProp + AutoAugment",
              _tarballs("advprop/efficientnet-{v}.tar.gz", B0_B7 + ("b8",), ADVPROP_TOP1),
              normalization="advprop"),
    WeightSet("noisy-student", "official checkpoints, Noisy Student (JFT-300M) + RandAugment",
              {**_tarballs("noisystudent/noisy_student_efficientnet-{v}.tar.gz", B0_B7,
                           NOISY_STUDENT_TOP1),
               **_tarballs("noisystudent/noisy_student_efficientnet-{v}.tar.gz", ("l2",),
                           {"l2": 88.4})}),
    WeightSet("noisy-student-475", "official Noisy Student L2 checkpoint for 475 px inputs",
              _tarballs("noisystudent/noisy_student_efficientnet-{v}_475.tar.gz", ("l2",),
                        {"l2": 88.2}, {"l2": 475})),
)}


def normalization_for(weights) -> str:
    """The normalization weights ``weights`` expect: the set's for a set name, else
    ``"imagenet"`` (files and checkpoints carry no such record: pass it explicitly)."""
    if isinstance(weights, str) and weights in SETS:
        return SETS[weights].normalization
    return "imagenet"


def get(name: str) -> WeightSet:
    """The set called ``name``; ValueError listing the known ones otherwise."""
    if name not in SETS:
        raise ValueError(f"unknown weight set {name!r}; known sets: {', '.join(SETS)}")
    return SETS[name]


def weight_file(name: str, variant: str) -> WeightFile:
    """The file of set ``name`` for ``variant``; ValueError if the set has no such variant."""
    weight_set = get(name)
    if variant not in weight_set.files:
        raise ValueError(
            f"weight set {name!r} has no {variant!r} weights; it has "
            f"{', '.join(weight_set.files)}")
    return weight_set.files[variant]


def table() -> list[tuple[str, str, str, str, str]]:
    """Rows (set, variants, input size, published top-1 %, source) of the catalogue."""
    rows = []
    for s in SETS.values():
        files = s.files.values()
        sizes = sorted({f.resolution for f in files})
        top1 = [f"{f.top1:.1f}" if f.top1 is not None else "-" for f in files]
        rows.append((s.name, ", ".join(s.files),
                     f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else str(sizes[0]),
                     ", ".join(top1) if any(t != "-" for t in top1) else "-", s.source))
    return rows
