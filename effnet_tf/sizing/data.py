"""The searches' data: ``dataset_fn`` over a ``pipelines`` source, and what the source knows.

``search.search`` and ``search.tune`` build every candidate's data at that candidate's image
size, so they take a function rather than a dataset; ``make_dataset_fn`` is that function for
any ``pipelines.build`` source (or the built-in ``synthetic`` colour classes for a dry run),
and ``source_settings`` reads the number of classes and the training steps per epoch the
search needs from the source itself. TensorFlow and ``pipelines`` load on first use.
"""

from __future__ import annotations

SYNTHETIC = "synthetic"
SYNTHETIC_CLASSES = 4


def _source_options(data_dir=None, validation_fraction=0.0) -> dict:
    options = {"data_dir": data_dir} if data_dir else {}
    if validation_fraction:
        options["validation_fraction"] = validation_fraction
    return options


def make_dataset_fn(data: str, *, batch_size: int, train_split: str = "train",
                    val_split: str = "validation", data_dir: str | None = None,
                    validation_fraction: float = 0.0, classes: int | None = None,
                    seed: int = 0):
    """``dataset_fn(image_size=, training=, augment_magnitude=None)`` for the searches, from
    ``pipelines.build`` (any of its sources) or the built-in ``synthetic`` data."""
    if data == SYNTHETIC:
        from pipelines.synthetic import colour_batches

        def synthetic(image_size, training, augment_magnitude=None):
            return colour_batches(image_size, training, classes=classes or SYNTHETIC_CLASSES,
                                  batch_size=batch_size, seed=seed,
                                  augment_magnitude=augment_magnitude)

        return synthetic
    import pipelines

    options = _source_options(data_dir, validation_fraction)

    def dataset_fn(image_size, training, augment_magnitude=None):
        kwargs = dict(image_size=image_size, batch_size=batch_size, training=training,
                      runtime=pipelines.Runtime(seed=seed), **options)
        if augment_magnitude is not None:
            kwargs.update(augment=pipelines.Augment("randaugment",
                                                    magnitude=float(augment_magnitude)))
        return pipelines.build(data, train_split if training else val_split, **kwargs)

    return dataset_fn


def source_settings(data: str, *, batch_size: int, classes: int | None = None,
                    steps_per_epoch: int | None = None, train_split: str = "train",
                    data_dir: str | None = None,
                    validation_fraction: float = 0.0) -> tuple[int, int | None]:
    """``(classes, steps_per_epoch)`` of ``data``: the given values, else what the source
    says (``pipelines`` sources know them, mostly; ``synthetic`` has 4 classes and is finite,
    so its steps may stay None).

    A training pipeline repeats, so without a size ``fit`` would never end an epoch: an
    unknown size or class count is a ValueError naming the ``scale`` flag that supplies it
    (``steps_per_epoch``, ``classes``: also this function's arguments).
    """
    if data == SYNTHETIC:
        return classes or SYNTHETIC_CLASSES, steps_per_epoch
    import pipelines

    options = _source_options(data_dir, validation_fraction)
    classes = classes or pipelines.num_classes(data, **options)
    examples = pipelines.num_examples(data, train_split, **options)
    steps = steps_per_epoch or (examples // batch_size if examples else None)
    if not steps:
        raise ValueError("the training pipeline repeats and its size is unknown: give "
                         "--steps_per_epoch")
    if not classes:
        raise ValueError("the number of classes of --data is unknown: give --classes")
    return classes, steps
