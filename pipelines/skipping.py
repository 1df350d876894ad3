"""Skip images that fail to decode: counted, reported, never crashing a long run.

TF decode ops raise on a corrupt or truncated image, and ``ignore_errors`` alone would also
swallow real failures upstream (unreadable shards, bad labels) and count nothing. So records
go through the preprocessing in small groups, each group its own little dataset with
``ignore_errors``: an error inside a group drops only that image, while errors from reading
still surface. At the end of a group the images that did not come out are counted in a
``SkipCounter`` and named in a warning on stderr. If not one image out of the first
``MIN_IMAGES_BEFORE_GIVING_UP`` decodes, the source is wrong (format, not a few bad files),
and the pipeline fails saying so (counted per pipeline).
"""

from __future__ import annotations

import concurrent.futures
import sys

import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
GROUP_SIZE = 16
MIN_IMAGES_BEFORE_GIVING_UP = 64


def _new_variable():
    # A tf.distribute strategy scope turns variables into mirrored ones that a tf.data
    # function cannot update; a strategy scope is per thread, so create it in a fresh thread.
    def create():
        with tf.device("/cpu:0"):
            return tf.Variable(0, dtype=tf.int64, trainable=False)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(create).result()


class SkipCounter:
    """How many images a pipeline skipped as undecodable (exact once a group is finished).

    Pass one to ``pipelines.build(..., skip_counter=)`` to count one pipeline; by default
    every pipeline adds to the process-wide counter behind ``pipelines.skipped_images()``.
    """

    def __init__(self):
        self.skipped_variable = _new_variable()
        self.seen_variable = _new_variable()

    @property
    def count(self) -> int:
        """Images skipped so far."""
        return int(self.skipped_variable.numpy())

    @property
    def seen(self) -> int:
        """Images attempted so far (decoded or skipped)."""
        return int(self.seen_variable.numpy())

    def reset(self):
        self.skipped_variable.assign(0)
        self.seen_variable.assign(0)

    def report(self) -> int:
        """Logs (absl, warning level) how many images were skipped; returns the count."""
        if self.count:
            logging.warning("pipelines: skipped %d of %d images that could not be decoded",
                            self.count, self.seen)
        return self.count

    def __repr__(self):
        return f"SkipCounter(count={self.count}, seen={self.seen})"


_default_counter: SkipCounter | None = None


def default_skip_counter() -> SkipCounter:
    global _default_counter
    if _default_counter is None:
        _default_counter = SkipCounter()
    return _default_counter


def skipped_images() -> int:
    """Images skipped so far by the pipelines that use the default counter."""
    return default_skip_counter().count


def _zeros_like(spec):
    return tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec)


def _account(origins, decoded_mask, pipeline: SkipCounter, shared: SkipCounter, name):
    """Counts and names the images of a finished group that did not decode.

    ``pipeline`` counts this pipeline alone (its totals go in the warning and decide when to
    give up); ``shared`` is the caller's counter (or the process-wide one), added to as well.
    """
    size = tf.size(origins, out_type=tf.int64)
    seen = pipeline.seen_variable.assign_add(size)
    shared_seen = shared.seen_variable.assign_add(size)
    missing = tf.boolean_mask(origins, tf.logical_not(decoded_mask))
    num_missing = tf.size(missing, out_type=tf.int64)

    def report():
        skipped = pipeline.skipped_variable.assign_add(num_missing)
        shared_skipped = shared.skipped_variable.assign_add(num_missing)
        printed = tf.print(
            f"WARNING pipelines: {name}: skipped", num_missing,
            "image(s) that could not be decoded:", missing, "-", skipped, "skipped of", seen,
            "so far", output_stream=sys.stderr, summarize=8,
        )
        gave_up = (skipped >= seen) & (seen >= MIN_IMAGES_BEFORE_GIVING_UP)
        assertion = tf.debugging.Assert(
            tf.logical_not(gave_up),
            [f"{name}: none of the first images could be decoded; is this an image dataset "
             "(JPEG, PNG, GIF, BMP or WebP)? Last failures:", missing],
        )
        with tf.control_dependencies([printed, assertion, shared_skipped]):
            return tf.identity(skipped)

    with tf.control_dependencies([shared_seen]):
        return tf.cond(num_missing > 0, report, lambda: tf.constant(0, tf.int64))


def map_skipping_errors(records, fn, *, counter: SkipCounter, name: str, deterministic=None):
    """``records.map(fn)`` in parallel, dropping the records where ``fn`` fails (module doc).

    ``records`` are dicts with an ``"origin"`` string; ``fn(record)`` must return tensors
    of fully known shapes. Skips are added to ``counter``; with ``deterministic`` the output
    keeps the input order.
    """
    pipeline = SkipCounter()

    def process_group(group):
        size = tf.shape(group["origin"])[0]
        indices = tf.range(size)
        decoded = (
            tf.data.Dataset.from_tensor_slices((group, indices))
            .map(lambda record, i: (fn(record), i))
            .ignore_errors()
        )
        end = tf.data.Dataset.from_tensors((_zeros_like(decoded.element_spec[0]), size))

        def mark(decoded_mask, element):
            output, i = element
            is_end = tf.equal(i, size)
            decoded_mask = decoded_mask | tf.equal(indices, i)
            accounted = tf.cond(
                is_end,
                lambda: _account(group["origin"], decoded_mask, pipeline, counter, name),
                lambda: tf.constant(0, tf.int64),
            )
            with tf.control_dependencies([accounted]):
                is_end = tf.identity(is_end)
            return decoded_mask, (output, is_end)

        return (
            decoded.concatenate(end)
            .scan(tf.zeros([size], tf.bool), mark)
            .filter(lambda output, is_end: tf.logical_not(is_end))
            .map(lambda output, is_end: output)
        )

    return records.batch(GROUP_SIZE).interleave(
        process_group,
        cycle_length=AUTOTUNE,
        block_length=GROUP_SIZE,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
