"""``build(...)``: one tf.data input pipeline from a source, sized by the variant.

The stages, in order (records are small encoded images until the decode):
  records (sharded, file order shuffled) -> label check -> [cache] -> shuffle -> [repeat]
  -> per-image seeds -> decode + crop + resize (+ augment) -> output dtype, skipping
  undecodable images -> batch -> [one-hot; mixup/cutmix, then the output dtype] -> prefetch.
"""

from __future__ import annotations

import numbers
import zlib

import tensorflow as tf

from pipelines import augment as augment_lib
from pipelines import mix as mix_lib
from pipelines import preprocess
from pipelines.skipping import SkipCounter, default_skip_counter, map_skipping_errors
from pipelines.sources import FolderSource, TFRecordSource, check_labels, get_source

AUTOTUNE = tf.data.AUTOTUNE
DEFAULT_SHUFFLE_BUFFER = 1024  # records per input pipeline, as the official ImageNet input
AUGMENTATIONS = (None, "randaugment", "autoaugment")
OUTPUT_DTYPES = ("float32", "bfloat16", "uint8")


def is_training_split(split: str) -> bool:
    return split.split("[")[0].startswith("train")


def derive_seed(seed: int | None, *keys) -> int | None:
    """A seed for one random stream of the pipeline (None stays None: not reproducible)."""
    if seed is None:
        return None
    return zlib.crc32(repr((int(seed),) + keys).encode()) & 0x7FFFFFFF


def _random_seeds(seed: int | None, on_workers: bool = False):
    """An endless dataset of stateless-op seeds (int64 [2]).

    ``on_workers``: for tf.data service workers, which all run the same serialized graph. A
    random op without a seed takes one from TensorFlow's global seed when the trainer set it
    (``tf.random.set_seed``, ``keras.utils.set_random_seed``), and that seed is then baked into
    the graph: every worker would draw the same crops. So the seeds are made where the graph
    runs instead: the worker's clock (in microseconds) and a count.
    """
    if on_workers:
        return tf.data.Dataset.counter().map(
            lambda i: tf.stack([tf.cast(tf.timestamp() * 1e6, tf.int64), i]))
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def make_augment(augment, *, randaugment_layers=2, randaugment_magnitude=10.0):
    """``fn(uint8 image, seed) -> uint8 image`` for an ``augment=`` option of ``build``."""
    if augment is None or callable(augment):
        return augment
    if augment == "randaugment":
        return augment_lib.randaugment(randaugment_layers, randaugment_magnitude)
    if augment == "autoaugment":
        return augment_lib.autoaugment()
    raise ValueError(f"augment must be one of {AUGMENTATIONS} or a callable, got {augment!r}")


def _cast_images(images, dtype: str):
    if dtype == "float32":
        return images
    if dtype == "uint8":
        return preprocess.to_uint8(images)
    return tf.cast(images, dtype)


def _make_preprocess(training, image_size, dtype, *, augment, crop, resize_method, fast_decode):
    """``fn(record) -> (image, label)`` for ``map_skipping_errors``; ``crop`` holds the crop
    options of the mode (``crop_area_range``, ``crop_aspect_range``, ``flip`` or
    ``crop_fraction``)."""
    if training:
        train_fn = preprocess.make_train_preprocess(
            image_size, augment=augment, resize_method=resize_method, fast_decode=fast_decode,
            **crop)

        @tf.autograph.experimental.do_not_convert
        def preprocess_train(record):
            image = train_fn(record["image"], record["seed"])
            return _cast_images(image, dtype), record["label"]

        return preprocess_train
    eval_fn = preprocess.make_eval_preprocess(image_size, resize_method=resize_method,
                                              fast_decode=fast_decode, **crop)

    @tf.autograph.experimental.do_not_convert
    def preprocess_eval(record):
        return _cast_images(eval_fn(record["image"]), dtype), record["label"]

    return preprocess_eval


@tf.autograph.experimental.do_not_convert
def _with_seed(record, seed):
    return dict(record, seed=seed)


def _check_options(batch_size, dtype, mixing, training, augment, one_hot, num_classes, source,
                   pad_remainder, repeat):
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or (
        batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if str(dtype) not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
    if not training and (mixing or augment is not None):
        raise ValueError("augment=, mixup_alpha= and cutmix_alpha= are for training only")
    if pad_remainder and (training or repeat):
        raise ValueError("pad_remainder=True is for one-pass evaluation (training=False, "
                         "repeat=False)")
    if (mixing or one_hot) and num_classes is None:
        raise ValueError(
            f"num_classes of {source.name!r} is unknown; pass num_classes= (needed for "
            "one-hot labels and mixup/cutmix)"
        )


def build(
    source,
    split: str = "train",
    *,
    image_size: int | None = None,
    variant=None,
    batch_size: int,
    training: bool | None = None,
    augment=None,
    randaugment_layers: int = 2,
    randaugment_magnitude: float = 10.0,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    mix_per_image: bool = False,
    num_classes: int | None = None,
    one_hot: bool = False,
    crop_area_range=preprocess.AREA_RANGE,
    crop_aspect_range=preprocess.ASPECT_RATIO_RANGE,
    flip: bool = True,
    crop_fraction: float | str | None = None,
    resize_method: str = "bicubic",
    fast_decode: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    cache=False,
    seed: int | None = None,
    drop_remainder: bool | None = None,
    pad_remainder: bool = False,
    repeat: bool | None = None,
    shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    dtype: str = "float32",
    skip_counter: SkipCounter | None = None,
    data_service: str | None = None,
    data_service_mode: str | None = None,
    data_service_job_name: str | None = None,
    **source_options,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)``; see ``pipelines`` for the API."""
    source = get_source(source, **source_options)
    image_size = preprocess.image_size_of(image_size, variant)
    training = is_training_split(split) if training is None else bool(training)
    drop_remainder = training if drop_remainder is None else bool(drop_remainder)
    repeat = training if repeat is None else bool(repeat)
    num_classes = num_classes or source.num_classes
    mixing = mixup_alpha > 0 or cutmix_alpha > 0
    dtype = tf.as_dtype(dtype).name if isinstance(dtype, tf.DType) else dtype
    _check_options(batch_size, dtype, mixing, training, augment, one_hot, num_classes, source,
                   pad_remainder, repeat)
    preprocess.check_crop_ranges(crop_area_range, crop_aspect_range)
    preprocess.eval_crop_fraction(image_size, crop_fraction)
    preprocess.check_resize_method(resize_method)
    if not isinstance(flip, bool):
        raise ValueError(f"flip must be True or False, got {flip!r}")
    if data_service is not None:
        service_mode = _check_service(data_service, data_service_mode, data_service_job_name,
                                      training, source, input_context)
        input_context = None  # the service distributes the work, the pipeline must not shard
        seed = None  # not reproducible across workers anyway; one seed would clone them
    counter = skip_counter or default_skip_counter()
    pipeline_id = 0 if input_context is None else input_context.input_pipeline_id
    deterministic = seed is not None or not training

    records = source.records(
        split, shuffle_files=training, input_context=input_context, seed=seed
    )
    records = check_labels(records, num_classes, source.name)
    if cache:
        records = records.cache("" if cache is True else str(cache))
    if training:
        records = records.shuffle(
            shuffle_buffer, seed=derive_seed(seed, "examples", pipeline_id),
            reshuffle_each_iteration=True,
        )
    if repeat:
        records = records.repeat()

    if training:
        seeds = _random_seeds(derive_seed(seed, "images", pipeline_id),
                              on_workers=data_service is not None)
        records = tf.data.Dataset.zip((records, seeds)).map(_with_seed)
    # Mixing needs float images; otherwise cast each image before batching (fewer bytes).
    output_dtype = "float32" if mixing else dtype
    crop = (dict(crop_area_range=crop_area_range, crop_aspect_range=crop_aspect_range,
                 flip=flip) if training else dict(crop_fraction=crop_fraction))
    images = map_skipping_errors(
        records,
        _make_preprocess(training, image_size, output_dtype, augment=make_augment(
            augment, randaugment_layers=randaugment_layers,
            randaugment_magnitude=randaugment_magnitude), crop=crop,
            resize_method=resize_method, fast_decode=fast_decode),
        counter=counter, name=f"{source.name}[{split}]", deterministic=deterministic,
    )
    if pad_remainder:
        images, drop_remainder = _pad_remainder(images, int(batch_size)), True
    batches = images.batch(
        int(batch_size), drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )

    @tf.autograph.experimental.do_not_convert
    def finish(images, labels, *rest, batch_seed=None):
        labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if mixing:
            images, labels = mix_lib.mix_batch(
                images, labels, batch_seed, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
                per_image=mix_per_image,
            )
            images = _cast_images(images, dtype)
        return (images, labels, *rest)

    if mixing:
        batch_seeds = _random_seeds(derive_seed(seed, "mix", pipeline_id),
                                    on_workers=data_service is not None)
        batches = tf.data.Dataset.zip((batches, batch_seeds)).map(
            lambda batch, batch_seed: finish(*batch, batch_seed=batch_seed),
            num_parallel_calls=AUTOTUNE,
        )
    elif one_hot:
        batches = batches.map(finish, num_parallel_calls=AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = deterministic
    # The skip counter is the only state outside the pipeline, and no part of the data
    # position: iterators checkpoint (exact resume) without it.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    batches = batches.with_options(options)
    if data_service is not None:
        from pipelines import service as service_lib  # not at import: `-m pipelines.service`

        batches = service_lib.distribute(batches, data_service, service_mode,
                                         data_service_job_name)
    return batches.prefetch(AUTOTUNE).with_options(options)


def _check_service(data_service, mode, job_name, training, source, input_context) -> str:
    """The processing mode for ``data_service=`` (see ``pipelines.service``)."""
    from pipelines import service as service_lib

    service_lib.check_address(data_service)
    if not training:
        raise ValueError("data_service= is for training pipelines (an evaluation reads its "
                         "split once, in order, on the trainer)")
    if input_context is not None and input_context.num_input_pipelines > 1 and not job_name:
        raise ValueError(
            f"data_service= with {input_context.num_input_pipelines} input pipelines needs "
            "data_service_job_name= (the same in every trainer) so that they share one job "
            "instead of each reading the whole dataset")
    return service_lib.choose_mode(mode, isinstance(source, (TFRecordSource, FolderSource)))


def _pad_remainder(images: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    """``(image, label, weight)``: weight 1 for every example, then ``batch_size - 1`` blank
    examples of weight 0, so that batching with ``drop_remainder=True`` keeps every example
    (a static batch shape, as TPUs need, with nothing dropped from the evaluation)."""
    real = images.map(lambda image, label: (image, label, tf.constant(1.0)))
    blank = tf.nest.map_structure(lambda spec: tf.zeros(spec.shape, spec.dtype),
                                  images.element_spec)
    padding = tf.data.Dataset.from_tensors((*blank, tf.constant(0.0))).repeat(batch_size - 1)
    return real.concatenate(padding)


def num_examples(source, split: str = "train", **source_options) -> int | None:
    """Examples in a split when the source knows it without reading (else None)."""
    return get_source(source, **source_options).num_examples(split)


def num_classes(source, **source_options) -> int | None:
    return get_source(source, **source_options).num_classes
