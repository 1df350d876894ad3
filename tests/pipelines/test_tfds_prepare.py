"""A TFDS preparation that makes no progress is stopped with one line naming the dataset, its
folders and the fix; one that makes progress slowly is not. Real TFDS builders, prepared
through the source as a run prepares them, against a real HTTP server on 127.0.0.1 that
never answers or sends a little at a time (this machine has no internet)."""

import http.server
import threading
import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

import pipelines
from pipelines import tfds_prepare

STALL_S = 1.5  # the test's deadline (600 s by default); every slow step below is 10x shorter
STEP_S = 0.15
STEPS = 14  # 2.1 s in all: longer than the deadline
GUARD_S = 60  # what a blocked step waits at most, so that unchanged code fails, not hangs
RELEASE = threading.Event()  # set when a test is done: blocked steps end
BLOCK = 8192  # TFDS reads downloads in blocks of this size


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/silent.bin":  # accepts the request, never answers
            RELEASE.wait(GUARD_S)
            self.send_error(404)
            return
        self.send_response(200)  # /trickle.bin: one block at a time
        self.send_header("Content-Length", str(STEPS * BLOCK))
        self.end_headers()
        for _ in range(STEPS):
            time.sleep(STEP_S)
            self.wfile.write(b"\0" * BLOCK)
            self.wfile.flush()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    RELEASE.set()
    httpd.shutdown()


@pytest.fixture
def stall(monkeypatch):
    monkeypatch.setenv(tfds_prepare.STALL_ENV, str(STALL_S))
    RELEASE.clear()
    yield
    RELEASE.set()  # what is still blocked ends (and fails: its preparation was abandoned)


class _Images(tfds.core.GeneratorBasedBuilder):
    """Two classes of 4x4 images; subclasses choose how the examples come."""

    VERSION = tfds.core.Version("1.0.0")
    url = None  # set by a test: downloaded first when given

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "label": tfds.features.ClassLabel(names=["a", "b"])}),
            supervised_keys=("image", "label"))

    def _split_generators(self, dl_manager):
        if self.url:
            dl_manager.download(self.url)
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(4):
            yield i, {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 2}


class StuckImages(_Images):
    def _generate_examples(self):
        RELEASE.wait(GUARD_S)
        raise RuntimeError("released by the test: the preparation was not stopped")
        yield  # a generator


class SlowImages(_Images):
    def _generate_examples(self):
        for i in range(STEPS):
            time.sleep(STEP_S)
            yield i, {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 2}


class UnansweredImages(_Images):
    pass


class TrickledImages(_Images):
    pass


def assert_stalled(error, name, data_dir):
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"preparing TFDS dataset {name!r} made no progress for 1.5 s "
                              f"(no example generated, nothing written under {data_dir}/{name} "
                              f"or {data_dir}/downloads): put its files in "
                              f"{data_dir}/downloads/manual (TFDS's manual_dir)")
    assert f"`tfds build {name} --data_dir DIR`" in message
    assert message.endswith("PIPELINES_TFDS_STALL_S=SECONDS waits longer")


def test_a_generator_that_blocks_is_stopped_with_one_line(tmp_path, stall):
    start = time.monotonic()
    with pytest.raises(tfds_prepare.PreparationStalled) as stopped:
        pipelines.build("tfds:stuck_images", "train", image_size=32, batch_size=2,
                        data_dir=str(tmp_path))
    assert time.monotonic() - start < GUARD_S / 2  # stopped, not released by the test
    assert_stalled(stopped.value, "stuck_images", tmp_path)


def test_a_download_that_is_never_answered_is_stopped(tmp_path, stall, server):
    UnansweredImages.url = f"{server}/silent.bin"
    source = pipelines.get_source("tfds:unanswered_images", data_dir=str(tmp_path))
    start = time.monotonic()
    with pytest.raises(tfds_prepare.PreparationStalled) as stopped:
        source.prepare()
    assert time.monotonic() - start < GUARD_S / 2
    assert_stalled(stopped.value, "unanswered_images", tmp_path)


def test_slow_but_steady_examples_and_downloads_are_not_stopped(tmp_path, stall, server):
    slow = pipelines.get_source("tfds:slow_images", data_dir=str(tmp_path))
    start = time.monotonic()
    slow.prepare()
    assert time.monotonic() - start > STALL_S  # longer than the deadline, and not stopped
    assert slow.num_examples("train") == STEPS
    TrickledImages.url = f"{server}/trickle.bin"  # bytes only: no example for 2.1 s
    trickled = pipelines.get_source("tfds:trickled_images", data_dir=str(tmp_path))
    start = time.monotonic()
    trickled.prepare()
    assert time.monotonic() - start > STALL_S
    assert trickled.num_examples("train") == 4


def test_the_deadline_is_checked(monkeypatch):
    monkeypatch.delenv(tfds_prepare.STALL_ENV, raising=False)
    assert tfds_prepare.stall_seconds() == 600
    for value in ("0", "-3", "soon"):
        monkeypatch.setenv(tfds_prepare.STALL_ENV, value)
        with pytest.raises(ValueError, match=f"PIPELINES_TFDS_STALL_S='{value}': give the "
                                             "seconds a TFDS preparation may make no progress"):
            tfds_prepare.stall_seconds()
