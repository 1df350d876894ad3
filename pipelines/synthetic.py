"""Synthetic image data the package can make anywhere (no download): the one place for it.

* ``write_image_folder``: a small learnable classification set as real JPEG files
  (``root/class_k/*.jpg``), so it goes through the same decoding and cropping as user data.
  Class ``k`` is a filled disc of a class-specific colour at a random place and size on a
  noisy background. Used by the CPU smoke recipe, the notebooks, the benchmarks and the tests.
* ``colour_batches``: in memory, noisy images whose mean colour is the class; learnable in a
  few steps, for dry runs of the searches and for tests.
* ``random_batches``: one batch of random pixels and labels, repeated: measures the model,
  not the input.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

PALETTE = np.array([[220, 40, 40], [40, 180, 60], [40, 70, 220], [230, 200, 40],
                    [160, 60, 200], [40, 200, 200], [240, 130, 30], [120, 120, 120]])


def synthetic_image(label: int, rng: np.random.Generator, height: int = 96,
                    width: int = 128) -> np.ndarray:
    image = rng.normal(110, 35, (height, width, 3))
    radius = rng.uniform(0.2, 0.45) * min(height, width)
    cy, cx = rng.uniform(radius, height - radius), rng.uniform(radius, width - radius)
    yy, xx = np.mgrid[:height, :width]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    colour = PALETTE[label % len(PALETTE)] + rng.normal(0, 12, 3)
    image[disc] = colour + rng.normal(0, 10, (int(disc.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def random_batches(batch_size: int, image_size: int, num_classes: int, seed: int = 0):
    """An endless dataset repeating one batch of random pixels in [0, 255] and labels."""
    images = tf.random.stateless_uniform([batch_size, image_size, image_size, 3], [seed, 1],
                                         maxval=255.0)
    labels = tf.random.stateless_uniform([batch_size], [seed, 2], maxval=num_classes,
                                         dtype=tf.int32)
    return tf.data.Dataset.from_tensors((images, labels)).repeat()


def colour_batches(image_size: int, training: bool, *, classes: int = 4, examples: int = 256,
                   batch_size: int = 32, seed: int = 0,
                   augment_magnitude: float | None = None) -> tf.data.Dataset:
    """One pass over ``examples`` float32 images in [0, 255] with int32 labels: the class
    colour (drawn from ``seed``) plus Gaussian noise; training and validation draw different
    images, and training shuffles. ``augment_magnitude`` adds noise (stands in for
    RandAugment, so a tuner has something to tune)."""
    rng = np.random.default_rng(seed + (0 if training else 1))
    palette = np.random.default_rng(seed).uniform(40, 215, (classes, 3)).astype(np.float32)
    labels = rng.integers(0, classes, examples)
    noise = 30.0 + 3.0 * (augment_magnitude or 0)
    images = palette[labels][:, None, None, :] + rng.normal(
        0, noise, (examples, image_size, image_size, 3)).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((np.clip(images, 0, 255), labels.astype(np.int32)))
    if training:
        data = data.shuffle(examples, seed=seed)
    return data.batch(batch_size)


def write_image_folder(root: str, num_classes: int = 4, images_per_class: int = 80,
                       height: int = 96, width: int = 128, seed: int = 0) -> str:
    """Writes the set once into ``root`` (kept if already complete) and returns ``root``."""
    if not 1 <= num_classes <= len(PALETTE):
        raise ValueError(f"num_classes must be in [1, {len(PALETTE)}], got {num_classes!r}")
    done = os.path.join(root, ".complete")
    if tf.io.gfile.exists(done):
        return root
    rng = np.random.default_rng(seed)
    for label in range(num_classes):
        folder = os.path.join(root, f"class_{label}")
        tf.io.gfile.makedirs(folder)
        for i in range(images_per_class):
            jpeg = tf.io.encode_jpeg(synthetic_image(label, rng, height, width), quality=90)
            tf.io.write_file(os.path.join(folder, f"{i:04d}.jpg"), jpeg)
    tf.io.write_file(done, "")
    return root
