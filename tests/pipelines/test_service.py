"""The tf.data service: a real dispatcher and worker processes on 127.0.0.1 serve
``pipelines.build(..., runtime=Runtime(service=Service(...)))``; servers stop cleanly (those
need three TensorFlow processes: ``-m slow``); bad arguments fail clearly."""

import collections
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import pipelines
from pipelines import service

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m pipelines.service <args>`` in a subprocess; stderr goes to a file."""

    def __init__(self, tmp_path, *args, env=None):
        self.log = str(tmp_path / f"{args[0]}-{free_port()}.log")
        with open(self.log, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pipelines.service", *args], cwd=REPO, text=True,
                stdout=subprocess.PIPE, stderr=err,
                env=env or dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))

    def ready(self) -> str:
        """Waits for the READY line (the server is up); returns it."""
        line = self.process.stdout.readline()
        assert line.startswith("READY"), f"server did not start: {self.stderr()[-2000:]}"
        return line.split()[-1]

    def stderr(self) -> str:
        with open(self.log) as f:
            return f.read()

    def stop(self, signum=signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A dispatcher (fault tolerant, with a work dir) and two workers."""
    tmp = tmp_path_factory.mktemp("service")
    port = free_port()
    dispatcher = Server(tmp, "dispatcher", "--port", str(port), "--work_dir", str(tmp / "work"))
    dispatcher.ready()
    workers = [Server(tmp, "worker", "--dispatcher", f"127.0.0.1:{port}", "--port", "0")
               for _ in range(2)]
    for worker in workers:
        worker.ready()
    yield dict(address=f"grpc://127.0.0.1:{port}", port=port, tmp=tmp, workers=workers,
               dispatcher=dispatcher)
    for server in [*workers, dispatcher]:
        server.stop(signal.SIGKILL)


ONE_EPOCH = pipelines.Batching(repeat=False, drop_remainder=False)


def via(address, mode=None, job_name=None, seed=None):
    """The runtime of a pipeline that the service at ``address`` runs."""
    return pipelines.Runtime(seed=seed, service=pipelines.Service(address, mode, job_name))


def batches(dataset, n):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(n)]


@pytest.mark.slow  # a running dispatcher and two workers: three TensorFlow processes
def test_service_batches_are_the_pipelines(cluster, image_folder):
    local = pipelines.build(image_folder, "train", image_size=32, batch_size=4)
    served = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                             runtime=via(cluster["address"]))
    assert served.element_spec == local.element_spec
    got = batches(served, 12)  # 48 images from 18: the training pipeline is endless
    images = np.concatenate([x for x, _ in got])
    labels = np.concatenate([y for _, y in got])
    assert images.shape == (48, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 200
    assert set(labels) == {0, 1, 2}


@pytest.mark.slow
@pytest.mark.parametrize("mode, copies", [("distributed_epoch", 1), ("parallel_epochs", 2)])
def test_distributed_epoch_serves_each_example_once(cluster, image_folder, mode, copies):
    """One epoch (repeat=False) through two workers: distributed_epoch splits the 18 files
    between them (each once), parallel_epochs gives each worker its own full copy."""
    served = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                             batching=ONE_EPOCH, runtime=via(cluster["address"], mode))
    labels = np.concatenate([y.numpy() for _, y in served])
    assert collections.Counter(labels.tolist()) == {0: 6 * copies, 1: 6 * copies,
                                                    2: 6 * copies}


@pytest.mark.slow
@pytest.mark.parametrize("global_seed", [None, 1])
def test_parallel_epochs_workers_crop_differently_even_with_a_seed(cluster, image_folder,
                                                                    global_seed):
    """The seed is ignored with the service: one seed on both workers would make both copies
    of each image the same crop (18 distinct images out of 36). Also when the trainer has set
    TensorFlow's global seed, which unseeded random ops would otherwise bake into the graph."""
    tf.random.set_seed(global_seed)
    try:
        served = pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                                 batching=ONE_EPOCH,
                                 runtime=via(cluster["address"], "parallel_epochs", seed=0))
        images = np.concatenate([x.numpy() for x, _ in served])
    finally:
        tf.random.set_seed(None)
    assert len(images) == 36 and len({image.tobytes() for image in images}) == 36


@pytest.mark.slow
def test_undecodable_images_are_skipped_on_the_workers(cluster, messy_folder):
    """10 good images (8 JPEGs, a PNG, a grayscale JPEG) and 2 broken ones: one epoch through
    the service holds the 10, and a worker's stderr names a skipped file."""
    served = pipelines.build(messy_folder, "train", image_size=32, batch_size=4,
                             batching=ONE_EPOCH, runtime=via(cluster["address"]))
    assert sum(len(y) for _, y in served) == 10
    logs = "".join(worker.stderr() for worker in cluster["workers"])
    assert "could not be decoded" in logs and ("corrupt.jpg" in logs or "truncated.jpg" in logs)


@pytest.mark.slow
def test_killing_a_worker_does_not_stop_training(cluster, image_folder):
    victim = Server(cluster["tmp"], "worker", "--dispatcher", f"127.0.0.1:{cluster['port']}")
    victim.ready()
    served = iter(pipelines.build(image_folder, "train", image_size=32, batch_size=4,
                                  runtime=via(cluster["address"], job_name="kill")))
    before = [next(served) for _ in range(5)]
    victim.process.send_signal(signal.SIGKILL)
    assert victim.process.wait(timeout=30) == -signal.SIGKILL
    after = [next(served) for _ in range(20)]
    for images, labels in before + after:
        assert images.shape == (4, 32, 32, 3) and set(labels.numpy()) <= {0, 1, 2}


@pytest.mark.slow
def test_a_training_run_reads_from_the_service(cluster, tmp_path):
    """The trainer with --config.data_service finishes its steps; the job it created is
    recorded in the dispatcher's journal (its work dir)."""
    model_dir = str(tmp_path / "run")
    journal_before = journal_bytes(cluster)
    result = subprocess.run(
        [sys.executable, "-m", "effnet_tf.train", "--config", "configs/cpu_smoke.py",
         f"--config.data_service={cluster['address']}", "--model_dir", model_dir,
         "--epochs", "1", "--config.steps_per_epoch=3", "--config.eval_steps=1",
         "--config.image_size=32", "--config.global_batch_size=8",
         "--config.checkpoint_every_steps=3", "--config.log_every_steps=1"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("-3")
    assert journal_bytes(cluster) > journal_before


def journal_bytes(cluster) -> int:
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(cluster["tmp"] / "work") for name in names)


@pytest.mark.parametrize("argv, message", [
    (["worker", "--dispatcher", "nowhere"], "--dispatcher must be host:port, got 'nowhere'"),
    (["dispatcher", "--port", "0"], "--port must be in 1..65535, got 0"),
    (["worker", "--dispatcher", "h:1", "--port", "70000"], "--port must be in 0..65535"),
    (["dispatcher"], "the following arguments are required: --port"),
])
def test_bad_server_arguments_fail_in_one_line(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        service.main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_dispatcher_that_is_not_there_is_named_at_once_not_waited_for(image_folder, tmp_path):
    """TensorFlow's client would wait in register_dataset for ever, silently: the trainer's
    pipeline and a worker say which address does not answer."""
    address = f"grpc://127.0.0.1:{free_port()}"
    with pytest.raises(ValueError, match=rf"no tf.data service dispatcher at {address} "
                                         r"\(Connection refused\): start one there"):
        pipelines.build(image_folder, "train", image_size=32, batch_size=2,
                        runtime=via(address))
    worker = Server(tmp_path, "worker", "--dispatcher", address[len("grpc://"):])
    assert worker.process.wait(timeout=120) == 2
    assert worker.stderr().strip().splitlines()[-1] == (
        f"python -m pipelines.service: error: no tf.data service dispatcher at {address} "
        f"(Connection refused): start one there (python -m pipelines.service dispatcher "
        f"--port {address.rsplit(':', 1)[1]}) or correct the address (--config.data_service)")


@pytest.mark.parametrize("options, message", [
    (dict(runtime=via("localhost")), "data_service must be 'grpc://host:port'"),
    (dict(runtime=via("http://h:1")), "data_service must be 'grpc://host:port'"),
    (dict(runtime=via("grpc://h:1", "sharded")), "data_service_mode"),
    (dict(runtime=via("grpc://h:1"), training=False), r"Runtime\(service=\) is for training"),
    (dict(runtime=pipelines.Runtime(service=pipelines.Service("grpc://h:1"),
                                    input_context=tf.distribute.InputContext(2, 0, 2))),
     r"Service\(job_name="),
])
def test_bad_service_options_raise(image_folder, options, message):
    with pytest.raises(ValueError, match=message):
        pipelines.build(image_folder, "train", image_size=32, batch_size=2, **options)


def test_mode_is_distributed_epoch_for_files_and_parallel_epochs_otherwise():
    assert service.choose_mode(None, splittable=True) == "distributed_epoch"
    assert service.choose_mode(None, splittable=False) == "parallel_epochs"
    assert service.choose_mode("parallel_epochs", splittable=True) == "parallel_epochs"


@pytest.mark.slow
def test_servers_stop_cleanly_on_sigterm_and_sigint(cluster):
    """Last in this module: it stops the cluster's servers. The dispatcher goes first, so a
    worker must also stop without it (its own stop() would wait for it forever)."""
    dispatcher = cluster["dispatcher"]
    assert dispatcher.stop(signal.SIGINT) == 0 and "dispatcher stopped" in dispatcher.stderr()
    worker = cluster["workers"][0]
    assert worker.stop(signal.SIGTERM) == 0 and "worker stopped" in worker.stderr()
