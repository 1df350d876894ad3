"""Skip images that fail to decode: counted, reported, never crashing a long run.

TF decode ops raise on a corrupt or truncated image, and ``ignore_errors`` alone would also
swallow real failures upstream (unreadable shards, bad labels) and count nothing. So records
go through the preprocessing in small groups, each group its own little dataset with
``ignore_errors``: an error inside a group drops only that image, while errors from reading
still surface. Each decoded image sets its bit in the group's mask (a small table); when
the group is done, the images whose bit is missing are counted in a ``SkipCounter`` and
named in a warning on stderr, each file once per counter (an evaluation reads its split
again every epoch: the same bad files are not named again). The counter holds the mask
table of its pipelines, so a checkpoint of the counter next to one of the pipeline's iterator
resumes the groups in flight (else the images decoded before the checkpoint would count as
skipped after it). If not one image out of the first
``MIN_IMAGES_BEFORE_GIVING_UP`` decodes, the source is wrong (format, not a few bad files),
and the pipeline fails saying so (counted per pipeline).
"""

from __future__ import annotations

import concurrent.futures
import sys

import tensorflow as tf
from absl import logging

AUTOTUNE = tf.data.AUTOTUNE
GROUP_SIZE = 16  # images per group; at most 63 (the decoded mask is one int64)
MIN_IMAGES_BEFORE_GIVING_UP = 64


def _outside_strategy(create):
    """``create()`` on the host CPU outside any tf.distribute strategy scope.

    A strategy scope turns variables into mirrored ones that a tf.data function cannot
    update; the scope is per thread, so a fresh thread is outside it.
    """

    def on_cpu():
        with tf.device("/cpu:0"):
            return create()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(on_cpu).result()


def _new_variable():
    return _outside_strategy(lambda: tf.Variable(0, dtype=tf.int64, trainable=False))


def _new_table(key_dtype):
    return _outside_strategy(
        lambda: tf.lookup.experimental.MutableHashTable(key_dtype, tf.int64, default_value=0))


class SkipCounter(tf.Module):
    """How many images a pipeline skipped as undecodable (exact once a group is finished).

    Pass one to ``pipelines.build(..., runtime=Runtime(skip_counter=))`` to count one
    pipeline; by default every pipeline adds to the process-wide counter behind
    ``pipelines.skipped_images()``.
    A ``tf.train.Checkpoint`` item: its counts, the files it named, and the state of the
    pipelines that count into it.
    """

    def __init__(self):
        super().__init__(name="skip_counter")
        self.skipped_variable = _new_variable()
        self.seen_variable = _new_variable()
        self.named = _new_table(tf.string)  # files warned about already
        self.pipelines = []  # (the pipeline's own counter, its groups' mask table)

    @property
    def count(self) -> int:
        """Images skipped so far."""
        return int(self.skipped_variable.numpy())

    @property
    def seen(self) -> int:
        """Images attempted so far (decoded or skipped)."""
        return int(self.seen_variable.numpy())

    def report(self) -> int:
        """Logs (absl, warning level) how many images were skipped; returns the count."""
        if self.count:
            logging.warning("pipelines: skipped %d of %d images that could not be decoded",
                            self.count, self.seen)
        return self.count

    def __repr__(self):
        return f"SkipCounter(count={self.count}, seen={self.seen})"

    def _add_pipeline(self):
        """A new pipeline's own counter and mask table, kept (and checkpointed) here."""
        own = (_PipelineCounter(), _new_table(tf.int64))
        self.pipelines.append(own)
        return own


class _PipelineCounter(tf.Module):
    """One pipeline's totals: for its warnings and to decide when to give up."""

    def __init__(self):
        super().__init__(name="pipeline_skips")
        self.skipped_variable = _new_variable()
        self.seen_variable = _new_variable()


_default_counter: SkipCounter | None = None


def default_skip_counter() -> SkipCounter:
    global _default_counter
    if _default_counter is None:
        _default_counter = SkipCounter()
    return _default_counter


def skipped_images() -> int:
    """Images skipped so far by the pipelines that use the default counter."""
    return default_skip_counter().count


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
        new = tf.boolean_mask(missing, tf.reshape(tf.equal(shared.named.lookup(missing), 0), [-1]))
        named = shared.named.insert(new, tf.ones_like(new, dtype=tf.int64))

        def warn():
            printed = tf.print(
                f"WARNING pipelines: {name}: skipped", tf.size(new),
                "image(s) that could not be decoded:", new, "-", skipped, "skipped of", seen,
                "so far", output_stream=sys.stderr, summarize=8,
            )
            with tf.control_dependencies([printed]):
                return tf.constant(True)

        with tf.control_dependencies([named]):
            printed = tf.cond(tf.size(new) > 0, warn, lambda: tf.constant(False))
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

    ``records`` are dicts with an ``"origin"`` string; ``fn(record)`` must return tensors of
    fully known shapes. Skips are added to ``counter``; with ``deterministic`` the output
    keeps the input order.
    """
    # Which images of each group in flight decoded, as a bit mask per group id. Kept in a
    # table (written after each decode) rather than found with a scan over the outputs:
    # every extra per-image stage in the groups costs about 20 us of CPU an image.
    pipeline, masks = counter._add_pipeline()

    def process_group(group_id, group):
        size = tf.shape(group["origin"])[0]
        indices = tf.range(size, dtype=tf.int64)

        def decode(record, i):
            output = fn(record)
            # Runs only once fn succeeded; the images of a group decode one after the other.
            with tf.control_dependencies(tf.nest.flatten(output)):
                bit = tf.bitwise.left_shift(tf.constant(1, tf.int64), i)
                mask = tf.bitwise.bitwise_or(masks.lookup(group_id), bit)
                update = masks.insert(group_id, mask)
            with tf.control_dependencies([update]):
                return tf.nest.map_structure(tf.identity, output)

        def account(_):
            mask = tf.reshape(masks.lookup(group_id), [])
            with tf.control_dependencies([mask]):
                removed = masks.remove(group_id[None])
            decoded_mask = tf.bitwise.bitwise_and(tf.bitwise.right_shift(mask, indices), 1) > 0
            with tf.control_dependencies([removed]):
                accounted = _account(group["origin"], decoded_mask, pipeline, counter, name)
            with tf.control_dependencies([accounted]):
                return tf.constant(False)  # the end marker itself is never an element

        decoded = (
            tf.data.Dataset.from_tensor_slices((group, indices)).map(decode).ignore_errors()
        )
        spec = decoded.element_spec
        end = (
            tf.data.Dataset.from_tensors(0)
            .filter(account)
            .map(lambda _: tf.nest.map_structure(lambda s: tf.zeros(s.shape, s.dtype), spec))
        )
        return decoded.concatenate(end)

    return records.batch(GROUP_SIZE).enumerate().interleave(
        process_group,
        cycle_length=AUTOTUNE,
        block_length=GROUP_SIZE,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
