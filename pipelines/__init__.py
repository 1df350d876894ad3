"""tf.data input pipelines for EfficientNet, sized by the variant.

The one entry point::

    import pipelines
    train = pipelines.build("gs://bucket/imagenet", "train", variant="b4", batch_size=64)
    val = pipelines.build("tfds:imagenet2012", "validation", variant="b4", batch_size=64,
                          data_dir="~/tensorflow_datasets")

    build(source, split="train", *, batch_size, image_size=None | variant=None,
          training=None, preprocess=Preprocess(), augment=None, mix=Mix(),
          batching=Batching(), runtime=Runtime(), **source_options)
        -> tf.data.Dataset of (images, labels)

* ``source``: a ``Source`` or a string: ``"tfds:<name>"`` (an image stored as raw pixels
  rather than an encoded ``Image`` feature works too), a folder of TFRecord shards
  ``{split}-*`` (local or ``gs://``), a TFRecord glob or a pattern with ``{split}``, or an
  image folder ``root/<class_name>/*.jpg`` (see ``pipelines.sources``). ``source_options``
  go to the source: ``num_classes=`` (TFRecords that do not say; any other source checks
  it against its own), ``data_dir=``, ``download=`` for TFDS; ``validation_fraction=``,
  ``validation_dir=`` for folders; ``label_offset=`` for TFRecords.
* ``image_size`` or ``variant`` (exactly one): ``variant`` is a name (``"b4"`` -> 380), a
  ``effnet_tf.Scaling`` or a phi number.
* ``training`` defaults to ``split.startswith("train")``. Training: random-sized crop decoded
  alone, bicubic resize, random flip, optional augmentation and mixup/cutmix. Eval: center
  crop ``int(size / (size + 32) * min(h, w))``, bicubic resize; order of the source kept.
* The options come in small frozen groups (``pipelines.options``), official values by
  default:
  - ``preprocess=Preprocess(crop_area_range=(0.08, 1.0), crop_aspect_range=(3/4, 4/3),
    flip=True, eval_crop_fraction=None, resize_method="bicubic", fast_decode=False)``:
    small low-resolution images want others (B0 from scratch on 32 px digits stays at
    chance with the ImageNet crops and learns with a plain resize): ``crop_area_range``
    ``(1.0, 1.0)`` is the whole image, never cropped; ``eval_crop_fraction`` a number in
    (0, 1] is that share of the short side, ``"none"`` the whole image resized to
    size x size (aspect not kept); ``"bilinear"`` is NVIDIA's EfficientNet input (cheaper);
    ``fast_decode=True`` decodes JPEG crops of 2x, 4x or 8x the size at 1/2, 1/4 or 1/8
    scale (libjpeg), several times faster on large photos, not the official decode.
    ``Preprocess.for_eval(size)`` is the ``EvalPreprocess`` a trained model's inputs are
    prepared with (its evaluation, ``predict``, the SavedModel's encoded-image signature).
  - ``augment``: ``"randaugment"``, ``"autoaugment"`` (policy v0), a callable
    ``fn(uint8 image, seed)``, or ``Augment(policy, layers=2, magnitude=10)``.
  - ``mix=Mix(mixup_alpha=0, cutmix_alpha=0, per_image=False)``: one ratio per batch, or
    per image (and one CutMix box per image) like timm's ``mode="elem"``.
  - ``batching=Batching(drop_remainder=None, pad_remainder=False, repeat=None,
    shuffle_buffer=1024, cache=False, dtype="float32", one_hot=False)``: ``repeat`` and
    ``drop_remainder`` default to ``training`` (a training pipeline is endless: use
    ``fit(steps_per_epoch=...)``). ``pad_remainder=True`` (evaluation on TPU): the last
    batch is filled up with blank examples and the dataset yields ``(images, labels,
    weights)``, weight 0 for the blanks, so every batch is full and none is dropped.
    ``cache``: True (memory) or a file path for the encoded records. ``dtype``
    ``"float32"``, ``"bfloat16"`` or ``"uint8"`` (fewer host-to-device bytes).
  - ``runtime=Runtime(seed=None, input_context=None, service=None, skip_counter=None)``:
    the pipeline's place in a job, none of it a property of the data.
    ``seed``: same seed -> same batches (file order, shuffle, crops, flips, augmentation,
    mixing all derive from it; per input pipeline). Without a seed the pipeline is
    non-deterministic and faster. For exact resume, checkpoint the iterator:
    ``tf.train.Checkpoint(data=iterator)``.
    ``input_context``: with ``strategy.distribute_datasets_from_function`` pass ``ctx`` and
    ``batch_size=ctx.get_per_replica_batch_size(global_batch_size)`` (``batch_size`` is per
    input pipeline). Sharding is by file when every pipeline gets a file, else by element.
    ``service=Service("grpc://host:port", mode=None, job_name=None)`` (training only): the
    whole pipeline runs on tf.data service workers (``python -m pipelines.service``);
    ``mode`` ``"distributed_epoch"`` (each example once per epoch; TFRecords and folders),
    ``"parallel_epochs"`` (each worker a full shuffled copy) or None (auto); several
    trainers share one job through ``job_name``; ``seed`` and ``input_context`` are then
    not used (the service shards, and cannot be reproducible across workers). Servers:
    ``python -m pipelines.service dispatcher --port P`` and
    ``python -m pipelines.service worker --dispatcher host:P``.
    ``skip_counter``: see below.
* Images: ``[batch, size, size, 3]`` RGB in [0, 255], never normalized (the model does
  it). Labels: int32 ``[batch]``, or float32 one-hot ``[batch, num_classes]`` when
  ``one_hot`` or mixing (mixed labels sum to 1).
* Corrupt or truncated images are skipped, named in a warning on stderr and counted in
  ``Runtime(skip_counter=)`` (a ``SkipCounter``: ``.count``, ``.seen``, ``.report()`` logs
  through absl; default: the process-wide one read by ``skipped_images()``). A pipeline that cannot
  decode any of its first 64 images fails. Labels outside ``[0, num_classes)``, missing
  paths and empty sources raise errors naming the file or dataset.

Also:
* ``get_source(spec, **options) -> Source`` with ``.num_classes``, ``.class_names``,
  ``.num_examples(split)`` (None when unknown without reading) and ``.records(split, ...)``;
  ``num_examples(source, split)`` and ``num_classes(source)`` as shortcuts.
* Preprocessing ops, each the same eagerly and in ``Dataset.map``: ``center_crop_window``,
  ``random_crop_window``, ``make_train_preprocess(image_size, augment=None,
  crop_area_range=, crop_aspect_range=, flip=, resize_method=)`` -> ``fn(image_bytes, seed)``,
  ``make_eval_preprocess(image_size, crop_fraction=None, resize_method=)`` ->
  ``fn(image_bytes)`` (float32 [size, size, 3] in [0, 255]); ``randaugment(2, 10)``,
  ``autoaugment("v0")`` -> ``fn(uint8 image, seed)``; ``mixup``, ``cutmix``, ``mix_batch``.
* ``write_tfrecords(input_dir, output_dir, num_shards=16, ...)`` and
  ``python -m pipelines.make_tfrecords --input_dir ... --output_dir ... --num_shards ...``:
  an image folder as ImageNet-format shards (``image/encoded``, 1-based
  ``image/class/label``, ``image/class/text``) plus ``metadata.json``, which ``get_source``
  reads back (class names, counts).
"""

import importlib

# The public names by module, imported on first use: ``pipelines.options`` (the option groups
# and their defaults) must load without TensorFlow, for the training config's defaults.
_NAMES = {
    "pipelines.augment": ("autoaugment", "randaugment"),
    "pipelines.builder": ("build", "num_classes", "num_examples"),
    "pipelines.make_tfrecords": ("write_tfrecords",),
    "pipelines.mix": ("cutmix", "mix_batch", "mixup"),
    "pipelines.options": ("Augment", "Batching", "EvalPreprocess", "Mix", "Preprocess",
                          "Runtime", "Service", "CROP_PADDING"),
    "pipelines.preprocess": ("center_crop_window", "image_size_of", "make_eval_preprocess",
                             "make_train_preprocess", "random_crop_window"),
    "pipelines.skipping": ("SkipCounter", "skipped_images"),
    "pipelines.sources": ("FolderSource", "Source", "TFDSSource", "TFRecordSource",
                          "get_source"),
}
_MODULE_OF = {name: module for module, names in _NAMES.items() for name in names}


def __getattr__(name):
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_MODULE_OF))


__all__ = [
    "Augment",
    "Batching",
    "CROP_PADDING",
    "EvalPreprocess",
    "Mix",
    "Preprocess",
    "Runtime",
    "Service",
    "FolderSource",
    "SkipCounter",
    "Source",
    "TFDSSource",
    "TFRecordSource",
    "autoaugment",
    "build",
    "center_crop_window",
    "cutmix",
    "get_source",
    "image_size_of",
    "make_eval_preprocess",
    "make_train_preprocess",
    "mix_batch",
    "mixup",
    "num_classes",
    "num_examples",
    "randaugment",
    "random_crop_window",
    "skipped_images",
    "write_tfrecords",
]
