"""``build(...)``: one tf.data input pipeline from a source, sized by the variant.

The stages, in order (records are small encoded images until the decode):
  records (sharded, file order shuffled) -> label check -> [cache] -> shuffle -> [repeat]
  -> per-image seeds -> decode + crop + resize (+ augment) -> output dtype, skipping
  undecodable images -> batch -> [one-hot; mixup/cutmix, then the output dtype] -> prefetch.
"""

from __future__ import annotations

import dataclasses
import zlib

import tensorflow as tf

from pipelines import augment as augment_lib
from pipelines import mix as mix_lib
from pipelines import preprocess as preprocess_lib
from pipelines.options import Augment, Batching, Mix, Preprocess, Runtime, check_batch_size
from pipelines.skipping import default_skip_counter, map_skipping_errors
from pipelines.sources import FolderSource, TFRecordSource, check_labels, get_source

AUTOTUNE = tf.data.AUTOTUNE


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


def make_augment(augment: Augment):
    """``fn(uint8 image, seed) -> uint8 image`` (or None) for an ``Augment``."""
    if augment.policy is None or callable(augment.policy):
        return augment.policy
    if augment.policy == "randaugment":
        return augment_lib.randaugment(augment.layers, augment.magnitude)
    return augment_lib.autoaugment()


def _cast_images(images, dtype: str):
    if dtype == "float32":
        return images
    if dtype == "uint8":
        return preprocess_lib.to_uint8(images)
    return tf.cast(images, dtype)


def _make_preprocess(training, image_size, dtype, prep: Preprocess, augment: Augment):
    """``fn(record) -> (image, label)`` for ``map_skipping_errors``."""
    if training:
        train_fn = preprocess_lib.make_train_preprocess(
            image_size, augment=make_augment(augment), resize_method=prep.resize_method,
            fast_decode=prep.fast_decode, crop_area_range=prep.crop_area_range,
            crop_aspect_range=prep.crop_aspect_range, flip=prep.flip)

        @tf.autograph.experimental.do_not_convert
        def preprocess_train(record):
            image = train_fn(record["image"], record["seed"])
            return _cast_images(image, dtype), record["label"]

        return preprocess_train
    eval_fn = prep.for_eval(image_size).fn()

    @tf.autograph.experimental.do_not_convert
    def preprocess_eval(record):
        return _cast_images(eval_fn(record["image"]), dtype), record["label"]

    return preprocess_eval


@tf.autograph.experimental.do_not_convert
def _with_seed(record, seed):
    return dict(record, seed=seed)


def _check_options(training, augment: Augment, mix: Mix, batching: Batching, num_classes,
                   source):
    if not training and (mix.active or augment.policy is not None):
        raise ValueError("augment= and mix= are for training only")
    if batching.pad_remainder and (training or batching.repeat):
        raise ValueError("Batching(pad_remainder=True) is for one-pass evaluation "
                         "(training=False, repeat=False)")
    if (mix.active or batching.one_hot) and num_classes is None:
        raise ValueError(
            f"num_classes of {source.name!r} is unknown; pass num_classes= (a source option, "
            "needed for one-hot labels and mixup/cutmix)"
        )


def build(
    source,
    split: str = "train",
    *,
    batch_size: int,
    image_size: int | None = None,
    variant=None,
    training: bool | None = None,
    preprocess: Preprocess = Preprocess(),
    augment: Augment | str | None = None,
    mix: Mix = Mix(),
    batching: Batching = Batching(),
    runtime: Runtime = Runtime(),
    **source_options,
) -> tf.data.Dataset:
    """A batched ``tf.data.Dataset`` of ``(images, labels)``; see ``pipelines`` for the API."""
    moved = sorted(set(source_options) & {f.name for f in dataclasses.fields(Runtime)})
    if moved:
        raise TypeError(f"build({moved[0]}=...) is now build(..., "
                        f"runtime=pipelines.Runtime({moved[0]}=...))")
    source = get_source(source, **source_options)
    image_size = preprocess_lib.image_size_of(image_size, variant)
    batch_size = check_batch_size(batch_size)
    training = is_training_split(split) if training is None else bool(training)
    augment = Augment.of(augment)
    drop_remainder = training if batching.drop_remainder is None else bool(
        batching.drop_remainder)
    repeat = training if batching.repeat is None else bool(batching.repeat)
    shuffle = training if batching.shuffle is None else bool(batching.shuffle)
    num_classes = source.num_classes
    dtype = tf.as_dtype(batching.dtype).name if isinstance(batching.dtype, tf.DType) else (
        batching.dtype)
    _check_options(training, augment, mix, batching, num_classes, source)
    preprocess.for_eval(image_size)  # the eval crop at this size: fail here, not in a map
    input_context, seed, service_mode = _with_service(runtime, training, source)
    service = runtime.service
    counter = runtime.skip_counter or default_skip_counter()
    pipeline_id = 0 if input_context is None else input_context.input_pipeline_id
    deterministic = seed is not None or not training

    records = source.records(
        split, shuffle_files=shuffle, input_context=input_context, seed=seed
    )
    records = check_labels(records, num_classes, source.name)
    if batching.cache:
        records = records.cache("" if batching.cache is True else str(batching.cache))
    if shuffle:
        records = records.shuffle(
            batching.shuffle_buffer, seed=derive_seed(seed, "examples", pipeline_id),
            reshuffle_each_iteration=True,
        )
    if repeat:
        records = records.repeat()

    if training:
        seeds = _random_seeds(derive_seed(seed, "images", pipeline_id),
                              on_workers=service is not None)
        records = tf.data.Dataset.zip((records, seeds)).map(_with_seed)
    # Mixing needs float images; otherwise cast each image before batching (fewer bytes).
    output_dtype = "float32" if mix.active else dtype
    images = map_skipping_errors(
        records, _make_preprocess(training, image_size, output_dtype, preprocess, augment),
        counter=counter, name=f"{source.name}[{split}]", deterministic=deterministic,
    )
    if batching.pad_remainder:
        images, drop_remainder = _pad_remainder(images, batch_size), True
    batches = images.batch(
        batch_size, drop_remainder=drop_remainder, num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )

    @tf.autograph.experimental.do_not_convert
    def finish(images, labels, *rest, batch_seed=None):
        labels = tf.one_hot(labels, num_classes, dtype=tf.float32)
        if mix.active:
            images, labels = mix_lib.mix_batch(
                images, labels, batch_seed, mixup_alpha=mix.mixup_alpha,
                cutmix_alpha=mix.cutmix_alpha, per_image=mix.per_image,
            )
            images = _cast_images(images, dtype)
        return (images, labels, *rest)

    if mix.active:
        batch_seeds = _random_seeds(derive_seed(seed, "mix", pipeline_id),
                                    on_workers=service is not None)
        batches = tf.data.Dataset.zip((batches, batch_seeds)).map(
            lambda batch, batch_seed: finish(*batch, batch_seed=batch_seed),
            num_parallel_calls=AUTOTUNE,
        )
    elif batching.one_hot:
        batches = batches.map(finish, num_parallel_calls=AUTOTUNE)

    options = tf.data.Options()
    options.deterministic = deterministic
    # The skip counter is the only state outside the pipeline, and no part of the data
    # position: iterators checkpoint (exact resume) without it.
    options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
    batches = batches.with_options(options)
    if service is not None:
        from pipelines import service as service_lib  # not at import: `-m pipelines.service`

        batches = service_lib.distribute(batches, service.address, service_mode,
                                         service.job_name)
    return batches.prefetch(AUTOTUNE).with_options(options)


def _with_service(runtime: Runtime, training, source):
    """``(input_context, seed, mode)`` of a ``Runtime`` (see ``pipelines.service``): a
    service distributes the work, so the pipeline must not shard, and one seed would clone
    the workers (not reproducible across workers anyway)."""
    service, input_context = runtime.service, runtime.input_context
    if service is None:
        return input_context, runtime.seed, None
    from pipelines import service as service_lib

    service_lib.check_address(service.address)
    if not training:
        raise ValueError("Runtime(service=) is for training pipelines (an evaluation reads its "
                         "split once, in order, on the trainer)")
    if input_context is not None and input_context.num_input_pipelines > 1 and (
            not service.job_name):
        raise ValueError(
            f"Runtime(service=) with {input_context.num_input_pipelines} input pipelines needs "
            "Service(job_name=...) (the same in every trainer) so that they share one job "
            "instead of each reading the whole dataset")
    mode = service_lib.choose_mode(service.mode, isinstance(source, (TFRecordSource,
                                                                     FolderSource)))
    return None, None, mode


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
