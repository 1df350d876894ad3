"""A small learnable image-classification set the package can make anywhere (no download).

Class ``k`` is a filled disc of a class-specific colour at a random place and size on a noisy
background, written as real JPEG files in an image folder (``root/class_k/*.jpg``), so it
goes through the same decoding and cropping as user data. Used by the CPU smoke recipe,
the notebooks, the benchmarks and the tests.
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
