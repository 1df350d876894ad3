"""The training input on other machines: TensorFlow's tf.data service.

When one host's CPUs cannot feed its accelerators (decode, crop and bicubic resize cost about
1 CPU ms per image),
``pipelines.build(..., runtime=Runtime(service=Service("grpc://host:port")))`` runs the
whole training pipeline (read, decode, crop, augment, batch) on tf.data service workers and
the trainer only receives finished batches (``tf.data.experimental.service.distribute``;
https://www.tensorflow.org/api_docs/python/tf/data/experimental/service).

Processing modes (``Service(mode=)``):

* ``"distributed_epoch"`` (``ShardingPolicy.DYNAMIC``): the dispatcher hands the source's
  files (or image paths) out to the workers one split at a time, so each example is
  processed once per epoch however many workers there are, and a worker that dies only
  loses the splits it had in hand. Needs a splittable source (each source dataset of the
  pipeline must support splitting): TFRecord shards and image folders do (tested).
* ``"parallel_epochs"`` (``ShardingPolicy.OFF``): every worker runs its own full copy of the
  pipeline (its own file order and shuffle), and the trainer reads from all of them: an
  epoch's examples come several times and in no fixed proportion. Works for any source.
* ``None`` (auto): ``distributed_epoch`` for TFRecord shards and image folders,
  ``parallel_epochs`` for the rest (TFDS: its reader is not tested here for splitting; pass
  ``"distributed_epoch"`` to try, the service says so when the dataset cannot split).

Training stays endless in both modes (the pipeline repeats on the workers). ``Runtime(seed=)``
is not used with the service: which worker makes which batch depends on timing, so it cannot be
reproducible, and one seed on every worker would give every ``parallel_epochs`` worker the
same shuffle and crops. Undecodable
images are still skipped, on the workers, but counted in no ``SkipCounter`` (that lives in
the trainer process) and warned about on the worker's stderr.

Batches travel from the workers to the trainer over gRPC: pass ``Batching(dtype="uint8")``
(the model casts and normalizes itself), 4x fewer bytes than float32 to serialize and send; in
``benchmarks/pipeline_speed.py --data_service`` it cut the CPU per served image by about a
quarter.

Several trainer processes (``input_context`` with more than one input pipeline) must share
one job: give ``data_service_job_name=`` (the same name in every trainer). Each batch then
goes to exactly one trainer (first come, first served), so in ``distributed_epoch`` mode
each example is still trained on once per epoch over all trainers. The pipeline itself does
not also shard by ``input_context``: the service distributes the work.

Starting the servers (``python -m pipelines.service``)::

    # one dispatcher, on a machine every worker and trainer can reach
    python -m pipelines.service dispatcher --port 5050 --work_dir gs://bucket/dispatcher
    # any number of workers, on machines with spare CPUs (and access to the data files)
    python -m pipelines.service worker --dispatcher dispatcher-host:5050 --port 5051
    # the trainer
    python -m effnet_tf.train ... --config.data_service=grpc://dispatcher-host:5050

On one machine (e.g. to try it): the same commands with ``--dispatcher 127.0.0.1:5050``,
each worker on its own ``--port`` (or ``--port 0``: any free one) and
``--config.data_service=grpc://127.0.0.1:5050``. With ``--work_dir`` the dispatcher runs in
fault-tolerant mode: it journals its state there and a restarted dispatcher resumes the
running jobs. Workers may join or leave at any time; a dead worker is dropped after
``--worker_timeout_ms`` and the trainer carries on with the others. The workers must run
the same TensorFlow version as the trainer and see the same file paths.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading

from absl import flags, logging

from pipelines import startup

PROG = "python -m pipelines.service"  # how its messages name the command
MODES = ("distributed_epoch", "parallel_epochs")
PROTOCOL = "grpc"
DEFAULT_WORKER_TIMEOUT_MS = 10_000  # how long a silent worker counts as alive
# TF's default is 30 s; workers learn of new jobs and tasks through heartbeats, so a job
# starts sooner with 1 s, and a heartbeat is one small RPC.
DEFAULT_HEARTBEAT_INTERVAL_MS = 1_000
# How long a trainer or a worker waits for the dispatcher to answer. TensorFlow's own client
# retries for ever: a dispatcher that is not there hung a run in register_dataset, silently.
CONNECT_TIMEOUT_S = 30.0


def check_address(data_service: str) -> str:
    """``"grpc://host:port"`` (or ``"host:port"``) -> ``"grpc://host:port"``."""
    address = str(data_service)
    if "://" not in address:
        address = f"{PROTOCOL}://{address}"
    protocol, _, host_port = address.partition("://")
    host, _, port = host_port.rpartition(":")
    if protocol != PROTOCOL or not host or not port.isdigit():
        raise ValueError(f"data_service must be 'grpc://host:port', got {data_service!r}")
    return address


def choose_mode(data_service_mode: str | None, splittable: bool) -> str:
    """The processing mode: as asked, or ``distributed_epoch`` when the source is
    splittable (each example once per epoch) and ``parallel_epochs`` otherwise."""
    if data_service_mode is None:
        return "distributed_epoch" if splittable else "parallel_epochs"
    if data_service_mode not in MODES:
        raise ValueError(f"data_service_mode must be one of {MODES} or None, got "
                         f"{data_service_mode!r}")
    return data_service_mode


def check_reachable(data_service: str, timeout_s: float = CONNECT_TIMEOUT_S) -> str:
    """Waits at most ``timeout_s`` for a gRPC server at the address (a TCP connection, then
    gRPC's handshake); a ``ValueError`` naming the address otherwise."""
    import grpc  # TensorFlow's own dependency

    address = check_address(data_service)
    host, _, port = address.partition("://")[2].rpartition(":")
    why = None
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
    if why is None:
        channel = grpc.insecure_channel(f"{host}:{port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            why = f"no gRPC answer within {timeout_s:g} s"
        finally:
            channel.close()
    if why is not None:
        raise ValueError(
            f"no tf.data service dispatcher at {address} ({why}): start one there "
            f"(python -m pipelines.service dispatcher --port {port}) or correct the address "
            "(--config.data_service)")
    return address


def distribute(dataset, data_service: str, mode: str, job_name: str | None = None):
    """``dataset`` produced by the service's workers (the consumer side of the service),
    once the dispatcher answers (``check_reachable``)."""
    import tensorflow as tf

    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=mode, service=check_reachable(data_service), job_name=job_name))


# ---- the servers --------------------------------------------------------------------------


def start_dispatcher(port: int, work_dir: str | None = None,
                     worker_timeout_ms: int = DEFAULT_WORKER_TIMEOUT_MS):
    """A running ``DispatchServer`` (fault tolerant when ``work_dir`` is given)."""
    import tensorflow as tf

    config = tf.data.experimental.service.DispatcherConfig(
        port=port, protocol=PROTOCOL, work_dir=work_dir, fault_tolerant_mode=bool(work_dir),
        worker_timeout_ms=worker_timeout_ms)
    return tf.data.experimental.service.DispatchServer(config)


def start_worker(dispatcher: str, port: int = 0, worker_address: str | None = None,
                 heartbeat_interval_ms: int = DEFAULT_HEARTBEAT_INTERVAL_MS):
    """A running ``WorkerServer`` registered with ``dispatcher`` (``host:port``), which must
    answer within ``CONNECT_TIMEOUT_S``."""
    dispatcher = check_reachable(dispatcher).partition("://")[2]
    import tensorflow as tf

    config = tf.data.experimental.service.WorkerConfig(
        dispatcher_address=dispatcher, port=port, protocol=PROTOCOL,
        worker_address=worker_address, heartbeat_interval_ms=heartbeat_interval_ms)
    return tf.data.experimental.service.WorkerServer(config)


def _parse(argv):
    parser = startup.OneLineParser(
        prog=PROG,
        description="Run a tf.data service dispatcher or worker for pipelines.build("
                    "data_service=...).")
    roles = parser.add_subparsers(dest="role", required=True, metavar="dispatcher|worker",
                                  parser_class=startup.OneLineParser)
    dispatcher = roles.add_parser("dispatcher", help="the job coordinator (one per cluster)")
    dispatcher.add_argument("--port", type=int, required=True)
    dispatcher.add_argument("--work_dir", default=None,
                            help="journal for fault tolerance (local path or gs://)")
    dispatcher.add_argument("--worker_timeout_ms", type=int, default=DEFAULT_WORKER_TIMEOUT_MS)
    worker = roles.add_parser("worker", help="runs the pipelines (any number)")
    worker.add_argument("--dispatcher", required=True, help="host:port of the dispatcher")
    worker.add_argument("--port", type=int, default=0, help="0: any free port")
    worker.add_argument("--worker_address", default=None,
                        help="host:%%port others reach this worker at (default localhost)")
    worker.add_argument("--heartbeat_interval_ms", type=int,
                        default=DEFAULT_HEARTBEAT_INTERVAL_MS)
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535 or (args.role == "dispatcher" and args.port == 0):
        parser.error(f"--port must be in {'1' if args.role == 'dispatcher' else '0'}..65535, "
                     f"got {args.port}")
    if args.role == "worker":
        try:
            check_address(args.dispatcher)
        except ValueError:
            parser.error(f"--dispatcher must be host:port, got {args.dispatcher!r}")
    return args


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)  # before TensorFlow is imported
    startup.quiet_tensorflow()  # its start-up lines off; TF_CPP_MIN_LOG_LEVEL=0 shows all
    flags.FLAGS.mark_as_parsed()  # absl's flags at their defaults: no "before flag parsing"
    logging.set_verbosity(logging.INFO)
    logging.use_absl_handler()
    if args.role == "dispatcher":
        server = start_dispatcher(args.port, args.work_dir, args.worker_timeout_ms)
        logging.info("tf.data service dispatcher at %s (work_dir=%s, fault tolerant: %s)",
                     server.target, args.work_dir, bool(args.work_dir))
    else:
        try:
            server = start_worker(args.dispatcher, args.port, args.worker_address,
                                  args.heartbeat_interval_ms)
        except ValueError as e:
            sys.stderr.write(f"{PROG}: error: {e}\n")
            return 2
        logging.info("tf.data service worker at %s, dispatcher %s", server._address,
                     args.dispatcher)
    stopping = threading.Event()

    def stop(signum, _frame):
        logging.info("%s: stopping (%s)", args.role, signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"READY {args.role} {server._address if args.role == 'worker' else args.port}",
          flush=True)
    stopping.wait()
    if args.role == "dispatcher":
        server.stop()  # its journal is written as it goes: nothing more to save
        logging.info("dispatcher stopped")
        return 0
    # A worker has nothing to save either (workers do not deregister: the dispatcher drops a
    # silent worker after --worker_timeout_ms). Its stop() waits, holding the GIL, for the
    # dispatcher as long as WorkerConfig.dispatcher_timeout_ms (an hour) once that is gone,
    # so a worker leaves without it.
    logging.info("worker stopped")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
