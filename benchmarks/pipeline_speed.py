"""Images/s of the training input pipeline against a hand-written one and the decode limit.

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/pipeline_speed.py [--num_images 300] [--trials 3]

Writes a few hundred photo-like 500x375 JPEGs (smooth colour fields, edges and grain; about
the size of ImageNet photos) to a temporary folder, then measures in one run, round-robin,
keeping each pipeline's best trial (other processes on the machine only slow a trial down):
  * naive: what a user writes by hand: decode the whole JPEG, ``tf.image.resize`` to 1.15x
    the size, random crop and flip; once with a plain ``map`` (as most tutorials) and once
    with ``num_parallel_calls=AUTOTUNE`` + prefetch;
  * ours: ``pipelines.build(..., training=True)`` at 224 and 380, with and without
    RandAugment(2, 10), and with ``fast_decode=True`` (reduced-scale JPEG decode of large
    crops; ``--photo_size 2000x1500`` shows where it matters);
  * limit: decoding only the crop region (same crop sampling) with nothing else, in parallel.
Prints a Markdown table with the ratios ours/naive and ours/limit (for BUILD.md): by
images/s, and by CPU time per image (less sensitive to other load on the machine).

``--data_service``: instead, the scale-out table: images/s of the local pipeline (224)
against the same pipeline served by 1 and then 2 tf.data service workers on this machine
(``python -m pipelines.service worker`` subprocesses, dispatcher in this process), with
images per CPU-second ("per core": the CPU time of this process plus the workers'), the
local pipeline per core at 224 and 380 next to FFCV's published JPEG figure, and the
``resize_method`` bicubic against bilinear. Local workers share this machine's cores with
the consumer, so images/s here cannot grow with workers beyond the cores there are; the
per-core figure is what carries over to a cluster (workers on other machines add their
cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import pipelines
from pipelines import preprocess

AUTOTUNE = tf.data.AUTOTUNE
HEIGHT, WIDTH = 375, 500
BATCH_SIZE = 32


def photo_like(rng: np.random.Generator, height=HEIGHT, width=WIDTH) -> np.ndarray:
    """An RGB image with the statistics JPEG cares about: smooth areas, edges, grain."""
    k = width / WIDTH  # shapes scale with the photo
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.zeros((height, width, 3), np.float32) + rng.uniform(40, 200, 3)
    for _ in range(6):  # soft coloured blobs
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        radius = rng.uniform(30, 200) * k
        blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        image += blob[..., None] * rng.uniform(-120, 120, 3)
    for _ in range(4):  # hard-edged shapes
        y0, x0 = rng.integers(0, int(height - 40 * k)), rng.integers(0, int(width - 40 * k))
        h, w = int(rng.integers(20, 150) * k), int(rng.integers(20, 200) * k)
        image[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 255, 3)
    image += 20 * np.sin(x / rng.uniform(3, 12))[..., None] * rng.uniform(0, 1)  # texture
    image += rng.normal(0, 6, image.shape)  # sensor grain
    return np.clip(image, 0, 255).astype(np.uint8)


def write_images(folder: str, num_images: int, height=HEIGHT, width=WIDTH) -> None:
    rng = np.random.default_rng(0)
    for i in range(num_images):
        class_dir = os.path.join(folder, f"class_{i % 10}")
        os.makedirs(class_dir, exist_ok=True)
        jpeg = tf.io.encode_jpeg(photo_like(rng, height, width), quality=90)
        tf.io.write_file(os.path.join(class_dir, f"{i:05d}.jpg"), jpeg)


def _labelled_files(folder):
    source = pipelines.get_source(folder)
    examples = source.examples("train")
    return [p for p, _ in examples], [label for _, label in examples]


def naive_pipeline(folder, image_size, parallel):
    """decode_jpeg of the whole image, tf.image.resize, random crop and flip (by hand)."""
    paths, labels = _labelled_files(folder)
    padded = int(image_size * 1.15)

    def load(path, label):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        image = tf.image.resize(image, [padded, padded])
        image = tf.image.random_crop(image, [image_size, image_size, 3])
        return tf.image.random_flip_left_right(image), label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths)).repeat()
    ds = ds.map(load, num_parallel_calls=AUTOTUNE if parallel else None)
    ds = ds.batch(BATCH_SIZE)
    return ds.prefetch(AUTOTUNE) if parallel else ds


def ours(folder, image_size, augment=None, fast_decode=False, resize_method="bicubic",
         data_service=None, dtype="float32"):
    return pipelines.build(
        folder, "train", image_size=image_size, batch_size=BATCH_SIZE, training=True,
        augment=augment,
        preprocess=pipelines.Preprocess(fast_decode=fast_decode, resize_method=resize_method),
        batching=pipelines.Batching(dtype=dtype),
        runtime=pipelines.Runtime(
            service=pipelines.Service(data_service) if data_service else None),
    )


def decode_limit(folder, image_size):
    """Only decoding the sampled crop region of each JPEG: the work no pipeline can skip."""
    paths, _ = _labelled_files(folder)

    def decode_crop(path, seed):
        data = tf.io.read_file(path)
        window = preprocess.random_crop_window(tf.image.extract_jpeg_shape(data), seed, image_size)
        return tf.io.decode_and_crop_jpeg(data, window, channels=3)

    seeds = tf.data.Dataset.random().batch(2)
    ds = tf.data.Dataset.zip((tf.data.Dataset.from_tensor_slices(paths).repeat(), seeds))
    return ds.map(decode_crop, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def cpu_seconds(pids=()) -> float:
    """CPU time (user + system) of this process and of the processes ``pids`` (Linux)."""
    total = time.process_time()
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measure(ds, num_images: int, pids=()) -> tuple[float, float]:
    """(images per second, CPU milliseconds per image of this process and of ``pids``)."""
    iterator = iter(ds)
    for _ in range(3):  # warm-up: threads, autotuning, page cache
        next(iterator)
    count, start, cpu_start = 0, time.perf_counter(), cpu_seconds(pids)
    while count < num_images:
        element = next(iterator)
        count += int(element[0].shape[0]) if isinstance(element, tuple) else 1
    wall, cpu = time.perf_counter() - start, cpu_seconds(pids) - cpu_start
    return count / wall, 1000 * cpu / count


def run(num_images: int, trials: int, images_per_trial: int, height: int, width: int
        ) -> dict[str, float]:
    folder = tempfile.mkdtemp(prefix="pipeline_speed_")
    write_images(folder, num_images, height, width)
    configs = {
        "naive, plain map, 224": lambda: naive_pipeline(folder, 224, parallel=False),
        "naive, plain map, 380": lambda: naive_pipeline(folder, 380, parallel=False),
        "naive, AUTOTUNE, 224": lambda: naive_pipeline(folder, 224, parallel=True),
        "naive, AUTOTUNE, 380": lambda: naive_pipeline(folder, 380, parallel=True),
        "ours, 224": lambda: ours(folder, 224),
        "ours, 380": lambda: ours(folder, 380),
        "ours, fast_decode, 224": lambda: ours(folder, 224, fast_decode=True),
        "ours, fast_decode, 380": lambda: ours(folder, 380, fast_decode=True),
        "ours + RandAugment(2, 10), 224": lambda: ours(folder, 224, "randaugment"),
        "ours + RandAugment(2, 10), 380": lambda: ours(folder, 380, "randaugment"),
        "limit: decode crop only, 224": lambda: decode_limit(folder, 224),
        "limit: decode crop only, 380": lambda: decode_limit(folder, 380),
    }
    best = {name: (0.0, float("inf")) for name in configs}
    for trial in range(trials):
        for name, make in configs.items():
            rate, cpu_ms = measure(make(), images_per_trial)
            best[name] = (max(best[name][0], rate), min(best[name][1], cpu_ms))
            print(f"trial {trial + 1}/{trials}  {name:34s} {rate:7.0f} images/s "
                  f"{cpu_ms:6.2f} CPU ms/image", flush=True)
    return best


def table(best: dict[str, tuple[float, float]]) -> str:
    rows = ["naive, plain map", "naive, AUTOTUNE", "ours", "ours, fast_decode",
            "ours + RandAugment(2, 10)", "limit: decode crop only"]
    lines = [
        "| pipeline | 224: images/s | 380: images/s | 224: CPU ms/image | 380: CPU ms/image |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        (r224, c224), (r380, c380) = best[f"{row}, 224"], best[f"{row}, 380"]
        lines.append(f"| {row} | {r224:.0f} | {r380:.0f} | {c224:.2f} | {c380:.2f} |")
    for label, num, den in [
        ("ours / naive (plain map)", "ours", "naive, plain map"),
        ("ours / naive (AUTOTUNE)", "ours", "naive, AUTOTUNE"),
        ("ours, fast_decode / naive (AUTOTUNE)", "ours, fast_decode", "naive, AUTOTUNE"),
        ("ours / limit", "ours", "limit: decode crop only"),
        ("ours + RandAugment / limit", "ours + RandAugment(2, 10)", "limit: decode crop only"),
    ]:
        speed = [best[f"{num}, {s}"][0] / best[f"{den}, {s}"][0] for s in (224, 380)]
        cpu = [best[f"{den}, {s}"][1] / best[f"{num}, {s}"][1] for s in (224, 380)]
        lines.append(f"| {label} | {speed[0]:.2f}x | {speed[1]:.2f}x | {cpu[0]:.2f}x | "
                     f"{cpu[1]:.2f}x |")
    return "\n".join(lines)


# FFCV's published per-core throughput of its JPEG pipeline, random-resized-crop at 224
# (Leclerc et al., "FFCV: Accelerating Training by Removing Data Bottlenecks", CVPR 2023;
# ffcv.io benchmarks). Published, not measured here.
FFCV_IMAGES_PER_CORE_224 = 860


def start_worker(dispatcher_port: int) -> subprocess.Popen:
    """A ``python -m pipelines.service worker`` subprocess, returned once it is serving."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "pipelines.service", "worker", "--dispatcher",
         f"127.0.0.1:{dispatcher_port}"], stdout=subprocess.PIPE, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    if not worker.stdout.readline().startswith("READY"):
        raise RuntimeError("a tf.data service worker failed to start")
    return worker


def run_service(num_images: int, trials: int, images_per_trial: int, height: int, width: int
                ) -> dict[str, tuple[float, float]]:
    """Best (images/s, CPU ms/image) of the local pipeline, 1 and 2 service workers, and the
    local pipeline at 380 and with bilinear resizing."""
    from pipelines import service

    folder = tempfile.mkdtemp(prefix="pipeline_speed_")
    write_images(folder, num_images, height, width)
    dispatcher = service.start_dispatcher(0)
    port = int(dispatcher.target.rpartition(":")[2])
    address = f"grpc://127.0.0.1:{port}"
    local = {
        "local, 224": lambda: ours(folder, 224),
        "local, 380": lambda: ours(folder, 380),
        "local, bilinear, 224": lambda: ours(folder, 224, resize_method="bilinear"),
        "local, bilinear, 380": lambda: ours(folder, 380, resize_method="bilinear"),
    }
    best: dict[str, tuple[float, float]] = {}
    workers: list[subprocess.Popen] = []
    try:
        for num_workers in (1, 2):
            workers.append(start_worker(port))
            configs = dict(local, **{
                f"service, {num_workers} worker(s), 224":
                    lambda: ours(folder, 224, data_service=address),
                f"service uint8, {num_workers} worker(s), 224":
                    lambda: ours(folder, 224, data_service=address, dtype="uint8"),
            })
            for trial in range(trials):
                for name, make in configs.items():
                    pids = [w.pid for w in workers] if name.startswith("service") else ()
                    rate, cpu_ms = measure(make(), images_per_trial, pids)
                    old = best.get(name, (0.0, float("inf")))
                    best[name] = (max(old[0], rate), min(old[1], cpu_ms))
                    print(f"{num_workers} worker(s) trial {trial + 1}/{trials}  {name:30s} "
                          f"{rate:7.0f} images/s {cpu_ms:6.2f} CPU ms/image", flush=True)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        dispatcher.stop()
    return best


def service_table(best: dict[str, tuple[float, float]]) -> str:
    def row(label, name):
        rate, cpu_ms = best[name]
        return f"| {label} | {rate:.0f} | {cpu_ms:.2f} | {1000 / cpu_ms:.0f} |"

    return "\n".join([
        "| input (training, batch 32) | images/s | CPU ms/image | images/s per core |",
        "|---|---|---|---|",
        row("local pipeline, 224", "local, 224"),
        row("tf.data service, 1 local worker, 224", "service, 1 worker(s), 224"),
        row("tf.data service, 2 local workers, 224", "service, 2 worker(s), 224"),
        row("tf.data service, 1 local worker, 224, `dtype=\"uint8\"`",
            "service uint8, 1 worker(s), 224"),
        row("tf.data service, 2 local workers, 224, `dtype=\"uint8\"`",
            "service uint8, 2 worker(s), 224"),
        row("local pipeline, 380", "local, 380"),
        row("local, `resize_method=\"bilinear\"`, 224", "local, bilinear, 224"),
        row("local, `resize_method=\"bilinear\"`, 380", "local, bilinear, 380"),
        f"| FFCV JPEG pipeline, random-resized-crop 224 (published, not measured here) | | | "
        f"~{FFCV_IMAGES_PER_CORE_224} |",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_images", type=int, default=300)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--images_per_trial", type=int, default=1024)
    parser.add_argument("--photo_size", default=f"{WIDTH}x{HEIGHT}",
                        help="WIDTHxHEIGHT of the JPEGs (e.g. 2000x1500 for phone-sized photos)")
    parser.add_argument("--data_service", action="store_true",
                        help="the tf.data service table (local workers) instead")
    args = parser.parse_args()
    width, height = (int(v) for v in args.photo_size.split("x"))
    measure_all, tabulate = (run_service, service_table) if args.data_service else (run, table)
    best = measure_all(args.num_images, args.trials, args.images_per_trial, height, width)
    print(f"\n{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"TF {tf.__version__}; {args.num_images} JPEGs {width}x{height}, batch {BATCH_SIZE}, "
          f"best of {args.trials} trials of {args.images_per_trial} images\n")
    print(tabulate(best))


if __name__ == "__main__":
    main()
