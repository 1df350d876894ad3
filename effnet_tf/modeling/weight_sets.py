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
  * Lite (in ``"imagenet"``): the official ``lite/efficientnet-lite{0..4}.tar.gz`` of
    tensorflow/tpu, with float and int8 top-1 from ``models/official/efficientnet/lite/
    README.md``; they normalize as ``(x - 127) / 128`` (the variant's own, ``Scaling``).
  * AdvProp checkpoints were evaluated on inputs ``x * 2 / 255 - 1`` (the eval script's
    Inception preprocessing), hence ``normalization="advprop"``; the others use the ImageNet
    mean and standard deviation. RandAugment's top-1 (83.7, 84.7) is the official README's;
    the baseline checkpoints' is not restated there (None).
  * ``"timm"``, ``"timm-ra4"``: timm's own trained weights, Hugging Face Hub repos
    ``timm/<name>``, file ``model.safetensors`` (licence apache-2.0), with the input size,
    crop, interpolation (bicubic), mean and std of timm 1.0.31's ``pretrained_cfg`` and the
    top-1 of timm's ``results-imagenet.csv``. timm's own definitions pad symmetrically
    (PyTorch's ``(k - 1) // 2``) with BN epsilon 1e-5, so their models are built that way
    (``model_options``); no checksums are published in the catalogue (``md5 is None``),
    the conversion checks every layer instead (``torch_layouts``). RA4's mean = std = 0.5
    on [0, 1] inputs is ``x / 127.5 - 1``, the "advprop" normalization.
Licence of all weights: Apache 2.0 (the repositories that publish them).
"""

from __future__ import annotations

from typing import NamedTuple

from effnet_tf.modeling.scaling import VARIANTS, Scaling

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
RANDAUGMENT_TOP1 = {"b5": 83.7, "b7": 84.7}
LITE_TOP1 = {"lite0": (75.1, 74.4), "lite1": (76.7, 75.9), "lite2": (77.6, 77.0),
             "lite3": (79.8, 79.0), "lite4": (81.5, 80.2)}  # (float, int8)
# timm's own sets (timm 1.0.31 ``pretrained_cfg``, results-imagenet.csv): variant -> (timm name,
# evaluation size, crop fraction at that size, top-1 there). The size is timm's test size
# where it has one (better than its train size: b3.ra2_in1k 82.30 at 320 against 81.47 at 288).
TIMM = {"b0": ("efficientnet_b0.ra_in1k", 224, 0.875, 77.70),
        "b1": ("efficientnet_b1.ft_in1k", 256, 1.0, 78.81),
        "b2": ("efficientnet_b2.ra_in1k", 288, 1.0, 80.61),
        "b3": ("efficientnet_b3.ra2_in1k", 320, 1.0, 82.30),
        "b4": ("efficientnet_b4.ra2_in1k", 384, 1.0, 83.47),
        "b5": ("efficientnet_b5.sw_in12k_ft_in1k", 448, 1.0, 85.89),
        "lite0": ("efficientnet_lite0.ra_in1k", 224, 0.875, 75.49)}
TIMM_RA4 = {"b0": ("efficientnet_b0.ra4_e3600_r224_in1k", 256, 1.0, 79.36),
            "b1": ("efficientnet_b1.ra4_e3600_r240_in1k", 288, 1.0, 81.44)}
HF_BASE = "https://huggingface.co/"


def _resolution(variant: str) -> int:
    return VARIANTS[variant][2]


class WeightFile(NamedTuple):
    """One published file of a set for one variant, and how its model was evaluated."""

    url: str
    md5: str | None  # None: not published (official tarballs, Hugging Face files)
    notop_url: str | None = None  # keras.applications ships a separate no-top file
    notop_md5: str | None = None
    resolution: int = 224
    top1: float | None = None
    int8_top1: float | None = None
    # None: the official evaluation crop, the central size / (size + 32) of the image
    crop_fraction: float | None = None
    resize_method: str = "bicubic"

    @property
    def is_checkpoint(self) -> bool:
        return self.url.endswith(".tar.gz")

    @property
    def needs_conversion(self) -> bool:
        """An official checkpoint or a PyTorch file, converted once to our HDF5."""
        return self.is_checkpoint or self.url.endswith(".safetensors")

    def cache_name(self, set_name: str) -> str:
        """The downloaded file's name in the cache (set names keep apart files of the same
        name: ``efficientnet-b0.tar.gz``)."""
        if self.url.startswith(HF_BASE):
            return f"effnet_tf_{set_name}_{self.url.split('/')[4]}.safetensors"
        return f"effnet_tf_{set_name}_{self.url.rsplit('/', 1)[-1]}"


class WeightSet(NamedTuple):
    name: str
    description: str
    files: dict[str, WeightFile]  # variant -> file
    # None: the variant's own (``Scaling.normalization``: "imagenet", "lite" for Lite)
    normalization: str | None = None
    source: str = "tensorflow/tpu"
    # The model the weights were trained in: TF "same" padding and BN epsilon 1e-3 (the
    # official ones), or PyTorch's symmetric padding and epsilon 1e-5 (timm's own).
    padding: str = "same"
    batch_norm_epsilon: float = 1e-3


def _keras_files() -> dict[str, WeightFile]:
    return {v: WeightFile(f"{KERAS_BASE}efficientnet{v}.h5", top,
                          f"{KERAS_BASE}efficientnet{v}_notop.h5", notop,
                          _resolution(v), AUTOAUGMENT_TOP1[v])
            for v, (top, notop) in KERAS_MD5.items()}


def _tarballs(path: str, variants, top1=None, resolution=None) -> dict[str, WeightFile]:
    return {v: WeightFile(TPU_BASE + path.format(v=v), None,
                          resolution=(resolution or {}).get(v, _resolution(v)),
                          top1=(top1 or {}).get(v))
            for v in variants}


def _lite_tarballs() -> dict[str, WeightFile]:
    return {v: WeightFile(f"{TPU_BASE}lite/efficientnet-{v}.tar.gz", None,
                          resolution=_resolution(v), top1=top1, int8_top1=int8)
            for v, (top1, int8) in LITE_TOP1.items()}


def _timm_files(table: dict) -> dict[str, WeightFile]:
    return {v: WeightFile(f"{HF_BASE}timm/{name}/resolve/main/model.safetensors", None,
                          resolution=size, top1=top1, crop_fraction=crop)
            for v, (name, size, crop, top1) in table.items()}


B0_B7 = tuple(KERAS_MD5)
SETS: dict[str, WeightSet] = {s.name: s for s in (
    WeightSet("imagenet", "keras.applications' files (AutoAugment training); official Lite "
              "checkpoints", {**_keras_files(), **_lite_tarballs()},
              source="keras.applications, tensorflow/tpu (lite)"),
    WeightSet("baseline", "official checkpoints, first release",
              _tarballs("ckpts/efficientnet-{v}.tar.gz", B0_B7[:6])),
    WeightSet("autoaugment", "official checkpoints trained with AutoAugment",
              _tarballs("ckptsaug/efficientnet-{v}.tar.gz", B0_B7, AUTOAUGMENT_TOP1)),
    WeightSet("randaugment", "official checkpoints trained with RandAugment",
              _tarballs("randaug/efficientnet-{v}-randaug.tar.gz", ("b5", "b7"),
                        RANDAUGMENT_TOP1)),
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
    WeightSet("timm", "timm's own training recipes (b5: ImageNet-12k, then 1k)",
              _timm_files(TIMM), normalization="imagenet", source="timm (Hugging Face)",
              padding="symmetric", batch_norm_epsilon=1e-5),
    WeightSet("timm-ra4", "timm's RA4 recipe, 3600 epochs; mean = std = 0.5 (x / 127.5 - 1)",
              _timm_files(TIMM_RA4), normalization="advprop", source="timm (Hugging Face)",
              padding="symmetric", batch_norm_epsilon=1e-5),
)}


def normalization_for(weights) -> str | None:
    """The normalization weights ``weights`` expect: the set's for a set name, else None: the
    model's own (``Scaling.normalization``: ``"imagenet"``, ``"lite"`` for Lite; files and
    checkpoints carry no such record: pass it explicitly)."""
    if isinstance(weights, str) and weights in SETS:
        return SETS[weights].normalization
    return None


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
        top1 = [("-" if f.top1 is None else f"{f.top1:.1f}")
                + ("" if f.int8_top1 is None else f" (int8 {f.int8_top1:.1f})") for f in files]
        rows.append((s.name, ", ".join(s.files),
                     f"{sizes[0]}-{sizes[-1]}" if len(sizes) > 1 else str(sizes[0]),
                     ", ".join(top1) if any(t != "-" for t in top1) else "-", s.source))
    return rows


def model_options(name: str) -> dict:
    """``EfficientNet`` arguments the weights of set ``name`` need: ``padding`` and
    ``batch_norm_epsilon`` (the model they were trained in)."""
    weight_set = get(name)
    return {"padding": weight_set.padding, "batch_norm_epsilon": weight_set.batch_norm_epsilon}


def preprocessing(name: str, variant: str) -> dict:
    """How set ``name``'s ``variant`` was evaluated, for an evaluation pipeline and
    ``predict``: ``image_size`` (px), ``crop_fraction`` (the central fraction of the image's
    shorter side kept before resizing; None: the official ``size / (size + 32)``),
    ``resize_method`` ("bicubic" for every set) and ``normalization`` (done inside the model:
    "imagenet", "advprop" or "lite"; inputs stay RGB in [0, 255])."""
    entry = weight_file(name, variant)
    return {"image_size": entry.resolution, "crop_fraction": entry.crop_fraction,
            "resize_method": entry.resize_method,
            "normalization": get(name).normalization or Scaling.variant(variant).normalization}
