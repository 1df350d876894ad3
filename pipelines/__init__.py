"""tf.data input pipelines for EfficientNet, sized by the variant.

The one entry point::

    import pipelines
    train = pipelines.build("gs://bucket/imagenet", "train", variant="b4", batch_size=64)
    val = pipelines.build("tfds:imagenet2012", "validation", variant="b4", batch_size=64,
                          data_dir="~/tensorflow_datasets")

    build(source, split="train", *, image_size=None | variant=None, batch_size,
          training=None, augment=None, randaugment_layers=2, randaugment_magnitude=10.0,
          mixup_alpha=0.0, cutmix_alpha=0.0, mix_per_image=False, num_classes=None,
          one_hot=False, crop_area_range=(0.08, 1.0), crop_aspect_range=(3/4, 4/3),
          flip=True, crop_fraction=None, resize_method="bicubic", fast_decode=False,
          input_context=None, cache=False, seed=None, drop_remainder=None,
          pad_remainder=False, repeat=None, shuffle_buffer=1024, dtype="float32",
          skip_counter=None, data_service=None, data_service_mode=None,
          data_service_job_name=None, **source_options)
        -> tf.data.Dataset of (images, labels)

* ``source``: a ``Source`` or a string: ``"tfds:<name>"`` (an image stored as raw pixels
  rather than an encoded ``Image`` feature works too), a folder of TFRecord shards
  ``{split}-*`` (local or ``gs://``), a TFRecord glob or a pattern with ``{split}``, or an
  image folder ``root/<class_name>/*.jpg`` (see ``pipelines.sources``). ``source_options``
  go to the source (``data_dir=``, ``download=`` for TFDS; ``validation_fraction=``,
  ``validation_dir=`` for folders; ``num_classes=``, ``label_offset=`` for TFRecords).
* ``image_size`` or ``variant`` (exactly one): ``variant`` is a name (``"b4"`` -> 380), a
  ``effnet_tf.Scaling`` or a phi number.
* ``training`` defaults to ``split.startswith("train")``. Training: random-sized crop decoded
  alone, bicubic resize, random flip, optional ``augment="randaugment" | "autoaugment"``
  (policy v0) and mixup/cutmix. Eval: center crop ``int(size / (size + 32) * min(h, w))``
  (or ``crop_fraction`` of the short side), bicubic resize; order of the source preserved.
  The knobs, official values by default (small low-resolution images want others: B0 from
  scratch on 32 px digits stays at chance with the ImageNet crops and learns with a plain
  resize): ``crop_area_range`` (fraction of the image, ``0 < lo <= hi <= 1``; ``(1.0, 1.0)``
  is the whole image, never cropped) and ``crop_aspect_range`` (width / height,
  ``0 < lo <= hi``) of the training crop; ``flip`` (random horizontal flip; off for digits
  and text); ``crop_fraction`` of the eval crop (None: the official rule; a number in (0, 1]:
  that share of the short side; ``"none"``: no crop, the whole image resized to
  size x size, aspect not kept); ``resize_method`` ``"bicubic"`` (official) or
  ``"bilinear"`` (NVIDIA's EfficientNet input; cheaper), in training and eval.
  ``fast_decode=True``: JPEG crops of 2x, 4x or 8x the image size or more are decoded at
  1/2, 1/4 or 1/8 scale (libjpeg), several times faster on large photos; not the official
  full-scale decode, so off by default.
* ``batch_size`` is per input pipeline: with ``strategy.distribute_datasets_from_function``
  pass ``ctx.get_per_replica_batch_size(global_batch_size)`` and ``input_context=ctx``.
  Sharding is by file when every pipeline gets a file, else by element.
* Images: ``[batch, size, size, 3]`` RGB in [0, 255], ``dtype`` ``"float32"`` (default),
  ``"bfloat16"`` or ``"uint8"`` (fewer host-to-device bytes); never normalized (the model
  does it). Labels: int32 ``[batch]``, or float32 one-hot ``[batch, num_classes]`` when
  ``one_hot=True`` or mixing (mixed labels sum to 1).
* ``repeat`` defaults to ``training``: a training pipeline is endless (use
  ``fit(steps_per_epoch=...)``; ``num_examples(...) // global_batch_size``), an eval
  pipeline is one pass. ``drop_remainder`` defaults to ``training`` (TPUs need static
  batches). For evaluation on TPU pass ``pad_remainder=True``: the last batch is filled up
  with blank examples and the dataset yields ``(images, labels, weights)``, weight 0 for the
  blanks, so every batch is full and no example is dropped (``model.evaluate`` takes the
  weights as sample weights).
* Mixup/CutMix draw one ratio per batch; ``mix_per_image=True`` draws one (and one CutMix
  box) per image, like timm's ``mode="elem"``.
* ``seed``: same seed -> same batches (file order, shuffle, crops, flips, augmentation,
  mixing all derive from it; per input pipeline). Without a seed the pipeline is
  non-deterministic and faster. For exact resume, checkpoint the iterator:
  ``tf.train.Checkpoint(data=iterator)``.
* ``data_service="grpc://host:port"`` (training only): the whole pipeline runs on tf.data
  service workers (``python -m pipelines.service``); ``data_service_mode``
  ``"distributed_epoch"`` (each example once per epoch; TFRecords and folders),
  ``"parallel_epochs"`` (each worker a full shuffled copy) or None (auto); several trainers
  share one job through ``data_service_job_name``; ``seed`` is ignored (not reproducible
  across workers). Servers: ``python -m pipelines.service dispatcher --port P`` and
  ``python -m pipelines.service worker --dispatcher host:P``. See ``pipelines.service``.
* ``cache``: ``True`` (memory) or a file path: caches the encoded records of this pipeline.
* Corrupt or truncated images are skipped, named in a warning on stderr and counted in
  ``skip_counter`` (a ``SkipCounter``: ``.count``, ``.seen``, ``.report()`` logs through
  absl; default: the process-wide one read by ``skipped_images()``). A pipeline that cannot
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

from pipelines.augment import autoaugment, randaugment
from pipelines.builder import build, num_classes, num_examples
from pipelines.make_tfrecords import write_tfrecords
from pipelines.mix import cutmix, mix_batch, mixup
from pipelines.preprocess import (
    CROP_PADDING,
    center_crop_window,
    image_size_of,
    make_eval_preprocess,
    make_train_preprocess,
    random_crop_window,
)
from pipelines.skipping import SkipCounter, skipped_images
from pipelines.sources import FolderSource, Source, TFDSSource, TFRecordSource, get_source

__all__ = [
    "CROP_PADDING",
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
