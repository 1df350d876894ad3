"""Devices, distribution strategy, precision and XLA choices for a run."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import logging

from effnet_tf.training.config import PRECISIONS, STRATEGIES  # there so that flags need no TensorFlow


def configure_cpu_devices(count: int) -> None:
    """Splits the CPU into ``count`` logical devices (before TensorFlow starts its runtime)."""
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or []) != count:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count)


def _tpu_requested(name: str, tpu: str) -> bool:
    return name == "tpu" or (name == "auto" and bool(
        tpu or os.environ.get("COLAB_TPU_ADDR") or os.environ.get("TPU_NAME")))


def _multi_worker_requested() -> bool:
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    return sum(len(v) for v in cluster.values()) > 1


def make_strategy(name: str = "auto", tpu: str = "", cpu_devices: int = 1) -> tf.distribute.Strategy:
    """``auto``: a TPU if one is named or found, multi-worker if TF_CONFIG has several tasks,
    mirrored over several GPUs, one GPU, else the CPU."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if _tpu_requested(name, tpu):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    if name == "multi_worker" or (name == "auto" and _multi_worker_requested()):
        return tf.distribute.MultiWorkerMirroredStrategy()
    configure_cpu_devices(cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    cpus = tf.config.list_logical_devices("CPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in (gpus or cpus)]
        return tf.distribute.MirroredStrategy(devices)
    if name == "cpu" or not gpus:
        return tf.distribute.OneDeviceStrategy("/cpu:0")
    return tf.distribute.OneDeviceStrategy("/gpu:0")


def worker_position(strategy=None) -> tuple[int, int]:
    """(number of workers, this worker's index, the chief first) from the strategy's cluster
    (TF_CONFIG under MultiWorkerMirroredStrategy); one worker without a cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not spec or not resolver.task_type:
        return 1, 0
    chiefs = len(spec.get("chief", []))
    if resolver.task_type not in ("chief", "worker"):
        return chiefs + len(spec.get("worker", [])), -1  # an evaluator, a parameter server
    index = resolver.task_id + (chiefs if resolver.task_type == "worker" else 0)
    return chiefs + len(spec.get("worker", [])), index


def is_chief(strategy=None) -> bool:
    """The worker that writes the run: the chief, else worker 0."""
    return worker_position(strategy)[1] == 0


def device_kind(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def resolve_precision(choice: str, kind: str) -> str:
    """``auto``: bfloat16 on TPU, float16 (with loss scaling) on GPU, float32 on CPU, where
    ``mixed_bfloat16`` measured no faster (BUILD.md, model benchmark)."""
    if choice not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}, got {choice!r}")
    if choice != "auto":
        return choice
    return {"tpu": "mixed_bfloat16", "gpu": "mixed_float16"}.get(kind, "float32")


def resolve_jit(choice, kind: str) -> bool:
    """``auto``: XLA on TPU (always compiled) and GPU; not on CPU, where EfficientNet's
    depthwise convolutions ran several times slower under XLA (BUILD.md, model benchmark)."""
    value = str(choice).lower()
    if value not in ("auto", "true", "false"):
        raise ValueError(f"jit_compile must be auto, true or false, got {choice!r}")
    if value == "auto":
        return kind in ("tpu", "gpu")
    return value == "true"


def set_determinism(seed: int, deterministic: bool) -> None:
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
        logging.info("Deterministic ops on, seed %d", seed)

