"""Images, folders and TFRecord shards the pipeline tests build themselves (no downloads)."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf


def pattern(height, width, seed=0):
    """A uint8 RGB image with structure: gradients (so crops and flips show) plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([255 * x / max(width - 1, 1), 255 * y / max(height - 1, 1),
                      np.full_like(x, 60 + 10 * (seed % 10))], -1)
    image += rng.normal(0, 10, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode(image, fmt="jpeg"):
    """Encoded bytes; ``gray``/``cmyk``/``gif``/``bmp``/``webp`` via Pillow (test-only)."""
    if fmt == "jpeg":
        return tf.io.encode_jpeg(image, quality=95).numpy()
    if fmt == "png":
        return tf.io.encode_png(image).numpy()
    if fmt == "gray":
        return tf.io.encode_jpeg(image[..., :1], quality=95).numpy()
    pil = pytest.importorskip("PIL.Image")
    picture = pil.fromarray(image)
    buffer = io.BytesIO()
    if fmt == "cmyk":
        picture.convert("CMYK").save(buffer, "JPEG", quality=95)
    else:
        picture.save(buffer, fmt.upper())
    return buffer.getvalue()


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def write_folder(root, num_classes=3, per_class=6, height=40, width=56):
    """root/class_<k>/<n>.jpg; returns {path: label}."""
    labels = {}
    for k in range(num_classes):
        for n in range(per_class):
            path = write(f"{root}/class_{k}/{n:03d}.jpg",
                         encode(pattern(height, width, seed=k * 100 + n)))
            labels[path] = k
    return labels


def write_shards(folder, split, num_shards, per_shard, label_of=lambda i: i % 5 + 1,
                 height=24, width=32):
    """ImageNet-format shards ``{split}-0000i-of-0000n``; record i has label ``label_of(i)``
    (1-based) and a pixel pattern seeded by i. Returns the list of written labels."""
    os.makedirs(folder, exist_ok=True)
    labels, i = [], 0
    for shard in range(num_shards):
        with tf.io.TFRecordWriter(f"{folder}/{split}-{shard:05d}-of-{num_shards:05d}") as w:
            for _ in range(per_shard):
                example = tf.train.Example(features=tf.train.Features(feature={
                    "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(
                        value=[encode(pattern(height, width, seed=i))])),
                    "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(
                        value=[label_of(i)])),
                }))
                w.write(example.SerializeToString())
                labels.append(label_of(i))
                i += 1
    return labels


class Kit:
    """The helpers above, for tests (a fixture: conftest modules are not importable)."""

    pattern = staticmethod(pattern)
    encode = staticmethod(encode)
    write = staticmethod(write)
    write_folder = staticmethod(write_folder)
    write_shards = staticmethod(write_shards)


@pytest.fixture(scope="session")
def kit():
    return Kit


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("folder"))
    write_folder(root)
    return root


@pytest.fixture(scope="session")
def shard_dir(tmp_path_factory):
    """4 train shards x 5 records (labels 1..5) and 1 validation shard of 6 records."""
    folder = str(tmp_path_factory.mktemp("shards"))
    write_shards(folder, "train", 4, 5)
    write_shards(folder, "validation", 1, 6)
    return folder


@pytest.fixture
def messy_folder(tmp_path):
    """Good JPEGs plus a corrupt JPEG, a truncated one, a PNG and a grayscale JPEG."""
    root = str(tmp_path / "messy")
    write_folder(root, num_classes=2, per_class=4)
    good = encode(pattern(40, 56, seed=7))
    write(f"{root}/class_0/corrupt.jpg", good[:20] + b"\x00garbage" * 50)
    write(f"{root}/class_0/truncated.jpg", good[:300])
    write(f"{root}/class_1/picture.png", encode(pattern(30, 50, seed=8), "png"))
    write(f"{root}/class_1/gray.jpg", encode(pattern(44, 36, seed=9), "gray"))
    return root
