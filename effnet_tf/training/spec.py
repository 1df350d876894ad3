"""The run spec: a training config resolved once, at the start of ``train``, into what the
run is, and the one record every later reader takes its decisions from.

    config (the recipe + flags: ConfigDict)  --resolve-->  RunSpec (frozen)
        model:   the scaling (width, depth, image size, dropout), classes, normalization, ...
        data:    the source, splits, Preprocess (crops, eval crop, resize), Augment, Mix, ...
        optim:   batch, schedule, optimizer, loss terms, weight average
        runtime: backend, strategy, precision and XLA as resolved on this machine, checkpoints
    --> <model_dir>/config.json {"format_version": 3, "spec", "config", "class_names"}
    --> read back by evaluate, predict, export and a resumed train (``load``)

``config.json`` files written before the spec (format 1: ``config`` + ``identity``) load
through ``migrate``; a file of a newer format is refused by name. Nothing here imports
TensorFlow.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from effnet_tf.modeling import weight_sets
from effnet_tf.modeling.scaling import Scaling
from pipelines import options as pipeline_options
from pipelines.options import Augment, Mix, Preprocess

CONFIG_FILE = "config.json"  # in model_dir: the spec, the config and the class names

# 1: config.json of runs before the spec (config, identity, class_names); 2: the spec
# without runtime.backend (those runs trained under TensorFlow, its default)
FORMAT_VERSION = 3


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    scaling_source: str  # "table" (a published variant), "formula" (phi) or "custom"
    phi: float | None
    width_coefficient: float
    depth_coefficient: float
    image_size: int
    dropout_rate: float
    lite: bool  # EfficientNet-Lite's rules (no squeeze-excite, ReLU6, fixed stem and head)
    num_classes: int
    drop_connect_rate: float
    normalization: str  # the in-model normalization (modeling.normalization)
    remat: str  # none | all | high_res
    batch_norm_momentum: float
    sync_batch_norm: bool
    pretrained: str | None
    padding: str | None  # "same" (TensorFlow's) or "symmetric" (PyTorch's); None: the builder's
    batch_norm_epsilon: float | None  # None: the builder's (the official 1e-3)
    explicit_padding: bool  # ZeroPadding2D + "valid" strided convs (chosen for mixed precision)

    def scaling(self) -> Scaling:
        return Scaling(self.name, self.width_coefficient, self.depth_coefficient,
                       self.image_size, self.dropout_rate, source=self.scaling_source,
                       phi=self.phi, lite=self.lite)


@dataclasses.dataclass(frozen=True)
class DataSpec:
    dataset: str
    data_dir: str | None
    train_split: str
    eval_split: str
    label_offset: int | None
    preprocess: Preprocess
    augment: Augment
    mix: Mix
    cache: bool
    data_service: str | None


@dataclasses.dataclass(frozen=True)
class OptimSpec:
    global_batch_size: int
    epochs: int
    steps_per_epoch: int | None  # None only in runs migrated from format 1
    eval_steps: int | None
    base_learning_rate: float
    warmup_epochs: float
    lr_schedule: str
    lr_decay_rate: float
    lr_decay_epochs: float
    optimizer: str
    rmsprop_rho: float
    momentum: float
    optimizer_epsilon: float
    weight_decay: float
    label_smoothing: float
    ema_decay: float
    freeze_backbone_epochs: int
    freeze_batch_norm: bool


@dataclasses.dataclass(frozen=True)
class RuntimeSpec:
    strategy: str
    tpu: str
    cpu_devices: int
    precision: str  # float32 | mixed_float16 | mixed_bfloat16, as resolved
    jit_compile: bool | str  # as resolved ("auto" only in runs migrated from format 1)
    steps_per_execution: int
    deterministic: bool
    seed: int
    checkpoint_every_steps: int
    keep_checkpoints: int
    checkpoint_data_position: str
    log_every_steps: int
    backend: str = "tensorflow"  # the Keras backend that trained: tensorflow | jax


@dataclasses.dataclass(frozen=True)
class RunSpec:
    model: ModelSpec
    data: DataSpec
    optim: OptimSpec
    runtime: RuntimeSpec

    def eval_preprocess(self) -> pipeline_options.EvalPreprocess:
        """How this run's model takes images: its evaluation, ``predict``, the exported
        SavedModel's ``serve_image_bytes`` and int8 calibration all use this one object."""
        return self.data.preprocess.for_eval(self.model.image_size)

    def identity(self) -> dict:
        """What a model_dir's checkpoints must agree with to be resumed: the model, and the
        objects whose state they hold (optimizer slots, the average, loss scaling)."""
        return {"width_coefficient": self.model.width_coefficient,
                "depth_coefficient": self.model.depth_coefficient,
                "resolution": self.model.image_size,
                "num_classes": self.model.num_classes,
                "optimizer": self.optim.optimizer.lower(),
                "ema": bool(self.optim.ema_decay),
                "loss_scaling": self.runtime.precision == "mixed_float16"}

    def to_json(self, config=None, class_names=None) -> dict:
        """``config.json``'s content: the spec, the config it was resolved from (for people
        reading the file) and the class names."""
        spec = dataclasses.asdict(self)
        if callable(self.data.augment.policy):
            raise ValueError("a run's augment policy must be a name, not a callable")
        return {"format_version": FORMAT_VERSION, "spec": spec,
                "config": config.to_dict() if config is not None else None,
                "class_names": list(class_names) if class_names else None}


def data_of(config) -> DataSpec:
    """The config's data part (no source is opened)."""
    return DataSpec(
        dataset=config.dataset, data_dir=config.data_dir, train_split=config.train_split,
        eval_split=config.eval_split, label_offset=config.label_offset,
        preprocess=Preprocess(
            crop_area_range=tuple(config.crop_area_range),
            crop_aspect_range=tuple(config.crop_aspect_range), flip=config.flip,
            eval_crop_fraction=config.eval_crop_fraction, resize_method=config.resize_method),
        augment=Augment(None if config.augment == "none" else config.augment,
                        config.randaugment_layers, float(config.randaugment_magnitude)),
        mix=Mix(config.mixup_alpha, config.cutmix_alpha, config.mix_per_image),
        cache=config.cache, data_service=config.data_service)


def model_scaling(config) -> Scaling:
    """The model's scaling: the formula when ``phi`` is set, else the variant's table row;
    then the config's width, depth, size and dropout overrides."""
    if config.phi is not None:
        scaling = Scaling.from_phi(config.phi, config.alpha, config.beta, config.gamma)
    else:
        scaling = Scaling.variant(config.variant)
    overrides = {k: v for k, v in {
        "width_coefficient": config.width_coefficient,
        "depth_coefficient": config.depth_coefficient,
        "resolution": config.image_size,
        "dropout_rate": config.dropout,
    }.items() if v is not None}
    return scaling.replace(**overrides)


def resolve(config, *, num_classes: int, steps_per_epoch: int | None, precision: str,
            jit_compile, scaling: Scaling | None = None,
            data: DataSpec | None = None, backend: str = "tensorflow") -> RunSpec:
    """The config with everything the run decided: classes (from the data unless set),
    steps per epoch (counted unless set), backend, precision and XLA (for this machine); and what the
    pretrained weight set (``config.pretrained``, a set name) needs: its normalization, its
    model's padding and batch norm epsilon, and its evaluation crop unless the config sets
    one."""
    scaling = scaling or model_scaling(config)
    weight_set = config.pretrained if config.pretrained in weight_sets.SETS else None
    options = weight_sets.model_options(weight_set) if weight_set else {}
    model = ModelSpec(
        name=scaling.name, scaling_source=scaling.source, phi=scaling.phi,
        width_coefficient=scaling.width_coefficient,
        depth_coefficient=scaling.depth_coefficient, image_size=scaling.resolution,
        dropout_rate=scaling.dropout_rate, lite=scaling.lite, num_classes=int(num_classes),
        drop_connect_rate=config.drop_connect_rate,
        normalization=weight_sets.normalization_for(config.pretrained) or scaling.normalization,
        remat=config.remat, batch_norm_momentum=config.batch_norm_momentum,
        sync_batch_norm=config.sync_batch_norm, pretrained=config.pretrained,
        padding=options.get("padding"), batch_norm_epsilon=options.get("batch_norm_epsilon"),
        explicit_padding=str(precision).startswith("mixed"))
    data = data or data_of(config)
    if weight_set and data.preprocess.eval_crop_fraction is None:
        data = dataclasses.replace(data, preprocess=dataclasses.replace(
            data.preprocess, eval_crop_fraction=_set_crop(weight_set, scaling)))
    optim = OptimSpec(**{f.name: config[f.name] for f in dataclasses.fields(OptimSpec)
                         if f.name != "steps_per_epoch"}, steps_per_epoch=steps_per_epoch)
    runtime = RuntimeSpec(**{f.name: config[f.name] for f in dataclasses.fields(RuntimeSpec)
                             if f.name not in ("precision", "jit_compile", "backend")},
                          precision=precision, jit_compile=jit_compile, backend=backend)
    return RunSpec(model, data, optim, runtime)


def _set_crop(weight_set: str, scaling: Scaling):
    """The eval crop the set's variant was evaluated with (timm's sets: their crop_pct); the
    official rule (None) for another scaling."""
    if scaling.source != "table" or scaling.name not in weight_sets.get(weight_set).files:
        return None
    return weight_sets.preprocessing(weight_set, scaling.name)["crop_fraction"]


def check_version(saved: dict, where: str) -> int:
    """The format version of a ``config.json`` (``where`` names it), refused when newer than
    this version reads."""
    version = saved.get("format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{where} was written by a newer effnet_tf (format_version {version}; "
                         f"this version reads up to {FORMAT_VERSION}): upgrade effnet_tf "
                         "(pip install -U effnet_tf) to read this run")
    return version


def from_json(saved: dict, where: str) -> RunSpec:
    """The spec of a ``config.json`` (``where`` names it in errors); format 1 migrated."""
    version = check_version(saved, where)
    if version == 1:
        return migrate(saved)
    s = saved["spec"]
    d = dict(s["data"])
    d["preprocess"] = Preprocess(**d["preprocess"])
    d["augment"] = Augment(**d["augment"])
    d["mix"] = Mix(**d["mix"])
    return RunSpec(ModelSpec(**s["model"]), DataSpec(**d), OptimSpec(**s["optim"]),
                   RuntimeSpec(**s["runtime"]))


# The fields that format-1 config.json files may lack (added over time), and the value those
# runs used when the field was absent: the official ones, which were the defaults then.
FORMAT_1_DEFAULTS = {
    "remat": "none",
    "mix_per_image": False,
    "crop_area_range": pipeline_options.AREA_RANGE,
    "crop_aspect_range": pipeline_options.ASPECT_RATIO_RANGE,
    "flip": True,
    "eval_crop_fraction": None,
    "resize_method": "bicubic",
    "data_service": None,
    "label_offset": None,
}


def migrate(saved: dict) -> RunSpec:
    """A format-1 ``config.json`` (``{"config", "identity", "class_names"}``) as a spec:
    absent fields take the values those runs used; classes come from the identity; the
    steps per epoch were not recorded."""
    config = ml_collections.ConfigDict({**FORMAT_1_DEFAULTS, **saved["config"]})
    identity = saved["identity"]
    # Format 1 recorded the resolved loss scaling, not the resolved precision.
    precision = "mixed_float16" if identity.get("loss_scaling") else config.mixed_precision
    return resolve(config, num_classes=identity["num_classes"],
                   steps_per_epoch=None, precision=precision,
                   jit_compile=config.jit_compile)
