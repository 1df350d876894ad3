"""Pretrained weights by name: the catalogue, downloads through a local server or file://,
the official-checkpoint converter on checkpoints written by the official builder, AdvProp
normalization, the command line and fine-tuning through the trainer. No internet."""

import functools
import http.server
import json
import os
import subprocess
import sys
import tarfile
import threading

import keras
import numpy as np
import pytest

import effnet_tf
from effnet_tf import weights as weights_command
from effnet_tf.modeling import download, official_ckpt, weight_sets
from effnet_tf.modeling import weight_loading as weights
from tests import DATA as TESTS_DATA
from tests import REPO

DATA = os.path.join(TESTS_DATA, "official_ckpt")
FIXTURES = {"tiny": (0.25, 0.25, 64), "b0_depth": (0.25, 1.0, 57)}


def fixture_model(name):
    width, depth, size = FIXTURES[name]
    scaling = effnet_tf.Scaling.variant("b0").replace(width_coefficient=width,
                                                      depth_coefficient=depth)
    return effnet_tf.EfficientNet(scaling, classes=10, input_shape=(size, size, 3),
                                  include_preprocessing=False, classifier_activation=None)


# ---- the catalogue ---------------------------------------------------------------------

def test_shipped_md5s_and_urls_equal_the_installed_keras_applications():
    from keras.src.applications import efficientnet as keras_effnet

    assert weight_sets.KERAS_MD5 == {v: tuple(h) for v, h in keras_effnet.WEIGHTS_HASHES.items()}
    files = weight_sets.SETS["imagenet"].files
    assert files["b3"].url == keras_effnet.BASE_WEIGHTS_PATH + "efficientnetb3.h5"
    assert files["b3"].notop_url == keras_effnet.BASE_WEIGHTS_PATH + "efficientnetb3_notop.h5"


def test_catalogue_covers_every_published_set():
    assert {s: list(ws.files) for s, ws in weight_sets.SETS.items()} == {
        "imagenet": [f"b{i}" for i in range(8)] + [f"lite{i}" for i in range(5)],
        "baseline": [f"b{i}" for i in range(6)],
        "autoaugment": [f"b{i}" for i in range(8)],
        "randaugment": ["b5", "b7"],
        "advprop": [f"b{i}" for i in range(9)],
        "noisy-student": [f"b{i}" for i in range(8)] + ["l2"],
        "noisy-student-475": ["l2"],
        "timm": [f"b{i}" for i in range(6)] + ["lite0"],
        "timm-ra4": ["b0", "b1"],
    }
    ns = weight_sets.SETS["noisy-student"].files
    assert ns["b3"].url == ("https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/"
                            "noisystudent/noisy_student_efficientnet-b3.tar.gz")
    assert weight_sets.SETS["noisy-student-475"].files["l2"].resolution == 475
    assert weight_sets.SETS["randaugment"].files["b7"].top1 == 84.7
    lite2 = weight_sets.SETS["imagenet"].files["lite2"]
    assert lite2.url == ("https://storage.googleapis.com/cloud-tpu-checkpoints/efficientnet/"
                         "lite/efficientnet-lite2.tar.gz")
    assert (lite2.resolution, lite2.top1, lite2.int8_top1) == (260, 77.6, 77.0)
    assert weight_sets.SETS["timm"].files["b3"].url == (
        "https://huggingface.co/timm/efficientnet_b3.ra2_in1k/resolve/main/model.safetensors")
    # no checksums are published for the official tarballs and the Hugging Face files
    assert {f.md5 for s in weight_sets.SETS.values() for f in s.files.values()
            if not f.url.endswith(".h5")} == {None}


def test_list_command_prints_the_catalogue(capsys):
    assert weights_command.main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["set", "variants", "input", "size", "published", "top-1", "%",
                                "source"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert list(rows) == list(weight_sets.SETS)
    assert "b8" in rows["advprop"] and "85.5" in rows["advprop"]
    assert "475" in rows["noisy-student-475"] and "88.2" in rows["noisy-student-475"]
    assert "84.0, 84.3, 75.1 (int8 74.4)" in rows["imagenet"]
    assert rows["imagenet"].endswith("keras.applications, tensorflow/tpu (lite)")
    assert "77.7, 78.8, 80.6, 82.3, 83.5, 85.9, 75.5" in rows["timm"]


def test_command_errors_are_one_line_with_exit_code_2(capsys):
    assert weights_command.main(["fetch", "noisy-student", "b8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "weight set 'noisy-student' has no 'b8' weights" in err
    with pytest.raises(SystemExit) as e:
        weights_command.main(["fetch"])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1


# ---- bad weights= arguments ------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"weights": "imagnet"}, r"or a weight set \(imagenet, baseline, .*\), got 'imagnet'"),
    ({"variant": "b8", "weights": "noisy-student"},
     r"weight set 'noisy-student' has no 'b8' weights; it has b0, .*, b7, l2"),
    ({"weights": "imagenet", "classes": 5},
     r"weights='imagenet' with include_top=True needs classes=1000 .*got classes=5"),
    ({"variant": 1.5, "weights": "advprop"},
     r"weights='advprop' needs the width and depth \(and family\) of a published variant"),
    ({"variant": "lite1", "weights": "advprop"},
     r"weight set 'advprop' has no 'lite1' weights"),
])
def test_bad_weights_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message):
        effnet_tf.EfficientNet(**kwargs)


# ---- the official-checkpoint converter -------------------------------------------------

@pytest.mark.parametrize("name", FIXTURES)
def test_official_checkpoint_reproduces_the_official_logits(name):
    model = fixture_model(name)
    loaded = weights.load(model, os.path.join(DATA, name))
    assert len(loaded) == sum(1 for layer in model.layers if layer.weights)
    expected = np.load(os.path.join(DATA, name, "expected.npz"))
    got = np.asarray(model(expected["inputs"]))
    rel = np.abs(got - expected["logits"]).max() / np.abs(expected["logits"]).max()
    assert rel < 1e-5


def test_the_ema_copies_are_loaded_not_the_raw_values_nor_the_slots():
    import tensorflow as tf

    model = fixture_model("tiny")
    weights.load(model, os.path.join(DATA, "tiny", "model.ckpt"))  # a prefix works too
    reader = tf.train.load_checkpoint(os.path.join(DATA, "tiny"))
    name = "efficientnet-b0/blocks_3/tpu_batch_normalization_1/moving_variance"
    ours = model.get_layer("block4a_bn").moving_variance.numpy()
    np.testing.assert_array_equal(ours, reader.get_tensor(name + "/ExponentialMovingAverage"))
    assert not np.allclose(ours, reader.get_tensor(name))


def test_every_variable_of_the_published_b0_maps_to_one_weight_and_back():
    with open(os.path.join(DATA, "b0_model_variables.json")) as f:
        published = {name: tuple(shape) for name, shape in json.load(f)}
    assert len(published) == 311
    model = effnet_tf.EfficientNet("b0")
    layers = [layer for layer in model.layers if layer.weights]
    mapping = official_ckpt.variable_map({layer.name: len(layer.weights) for layer in layers},
                                         "efficientnet-b0")
    ours = {}
    for layer in layers:
        for variable, weight in zip(mapping[layer.name], layer.weights):
            ours[variable] = tuple(weight.shape)
    assert sum(len(layer.weights) for layer in layers) == len(ours) == 311
    assert ours == published


def test_a_checkpoint_of_another_depth_names_the_first_missing_variable():
    with pytest.raises(ValueError, match=r"has no variable "
                                         r"'efficientnet-b0/blocks_7/conv2d/kernel' "
                                         r"\(for layer 'block4c_expand_conv'\)"):
        weights.load(fixture_model("b0_depth"), os.path.join(DATA, "tiny"))
    with pytest.raises(ValueError, match=r"its variable 'efficientnet-b0/blocks_\d+/.*' has no "
                                         r"layer in the model"):
        weights.load(fixture_model("tiny"), os.path.join(DATA, "b0_depth"))


# ---- AdvProp normalization -------------------------------------------------------------

def randomize(model, seed=0):
    """Random BN statistics and perturbed weights, so outputs are far from zero."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights([w + rng.normal(0, 0.1, w.shape) for w in layer.get_weights()])


def test_advprop_normalized_model_equals_a_plain_model_fed_x_over_127_5_minus_1(tiny):
    advprop = effnet_tf.EfficientNet(tiny, classes=3, normalization="advprop",
                                     classifier_activation=None)
    randomize(advprop)
    plain = effnet_tf.EfficientNet(tiny, classes=3, include_preprocessing=False,
                                   classifier_activation=None)
    weights.load(plain, advprop)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    imagenet = effnet_tf.EfficientNet(tiny, classes=3, classifier_activation=None)
    weights.load(imagenet, advprop)
    stem = {name: keras.Model(m.input, [m.get_layer("stem_conv").output, m.output])
            for name, m in [("advprop", advprop), ("plain", plain), ("imagenet", imagenet)]}
    (stem_a, logits_a), (stem_p, logits_p), (stem_i, _) = (
        stem["advprop"](x), stem["plain"](x / 127.5 - 1), stem["imagenet"](x))
    scale = np.abs(stem_p).max()
    np.testing.assert_allclose(stem_a, stem_p, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(logits_a, logits_p, rtol=1e-5, atol=1e-5)
    assert np.abs(np.asarray(stem_i) - np.asarray(stem_p)).max() > 0.1 * scale


# ---- downloads -------------------------------------------------------------------------

class _Server:
    """http.server on 127.0.0.1 in a thread, serving ``root`` and counting GET requests."""

    def __init__(self, root):
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def served_b0(tmp_path_factory):
    """A mirror folder with a random full-size ``efficientnetb0_notop.h5`` (our save_h5)."""
    root = tmp_path_factory.mktemp("mirror")
    folder = root / "keras-applications"
    folder.mkdir()
    source = effnet_tf.EfficientNet("b0", include_top=False, input_shape=(64, 64, 3))
    path = folder / "efficientnetb0_notop.h5"
    weights.save_h5(source, path)
    server = _Server(root)
    yield server, source, download.md5_of(path)
    server.close()


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """Every test downloads into its own ``$KERAS_HOME``, never the user's cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path / "keras_home" / "models"


def test_named_weights_download_once_through_the_mirror_and_load(served_b0, cache, monkeypatch):
    server, source, md5 = served_b0
    monkeypatch.setenv(download.URL_ENV, server.url)
    monkeypatch.setenv(download.MD5_ENV, f"efficientnetb0_notop.h5={md5}")
    server.requests.clear()
    for _ in range(2):  # the second model reads the cache: no request
        model = effnet_tf.EfficientNet("b0", include_top=False, weights="imagenet",
                                       input_shape=(64, 64, 3))
        assert server.requests == ["/keras-applications/efficientnetb0_notop.h5"]
    assert (cache / "efficientnetb0_notop.h5").is_file()
    for name in ("stem_conv", "block6d_project_bn", "top_bn"):
        for a, b in zip(model.get_layer(name).get_weights(), source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_a_file_that_fails_its_checksum_is_refused_and_removed(served_b0, cache, monkeypatch):
    server, _, md5 = served_b0
    monkeypatch.setenv(download.URL_ENV, server.url)
    monkeypatch.delenv(download.MD5_ENV, raising=False)  # the published MD5: not our fixture
    published = weight_sets.KERAS_MD5["b0"][1]
    url = server.url + "keras-applications/efficientnetb0_notop.h5"
    with pytest.raises(ValueError, match=rf"checksum mismatch for {url}: expected MD5 "
                                         rf"{published}, got {md5}"):
        effnet_tf.EfficientNet("b0", include_top=False, weights="imagenet")
    assert not (cache / "efficientnetb0_notop.h5").exists()


def write_official_checkpoint(model, prefix, scope="efficientnet-b0", seed=0):
    """An official-format checkpoint of ``model``'s weights: EMA copies hold the weights, the
    raw variables and an RMSProp slot hold other values (as the official trainer leaves)."""
    import tensorflow as tf

    layers = [layer for layer in model.layers if layer.weights]
    mapping = official_ckpt.variable_map({layer.name: len(layer.weights) for layer in layers},
                                         scope)
    rng = np.random.default_rng(seed)
    names, tensors = ["global_step"], [tf.constant(7, tf.int64)]
    for layer in layers:
        for variable, value in zip(mapping[layer.name], layer.get_weights()):
            names += [variable, variable + official_ckpt.EMA_SUFFIX, variable + "/RMSProp"]
            tensors += [rng.normal(size=value.shape).astype("float32"), value,
                        np.ones_like(value)]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)


@pytest.fixture(scope="module")
def advprop_b0_mirror(tmp_path_factory):
    """A file:// mirror holding ``advprop/efficientnet-b0.tar.gz``, an official-format B0."""
    root = tmp_path_factory.mktemp("ckpt_mirror")
    source = effnet_tf.EfficientNet("b0", input_shape=(64, 64, 3), classifier_activation=None)
    ckpt = root / "efficientnet-b0"
    ckpt.mkdir()
    write_official_checkpoint(source, str(ckpt / "model.ckpt"))
    tarball = root / "cloud-tpu-checkpoints" / "efficientnet" / "advprop" / "efficientnet-b0.tar.gz"
    tarball.parent.mkdir(parents=True)
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(ckpt, arcname="efficientnet-b0")
    return root, source, ckpt


def test_official_set_is_fetched_converted_once_and_read_from_the_cache(
        advprop_b0_mirror, cache, monkeypatch, tmp_path):
    import shutil

    root, source, _ = advprop_b0_mirror
    mirror = tmp_path / "mirror"
    shutil.copytree(root / "cloud-tpu-checkpoints", mirror / "cloud-tpu-checkpoints")
    monkeypatch.setenv(download.URL_ENV, mirror.as_uri() + "/")
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    model = effnet_tf.EfficientNet("b0", weights="advprop", input_shape=(64, 64, 3),
                                   classifier_activation=None)
    assert sorted(os.listdir(cache)) == ["effnet_tf_advprop_b0.h5"]  # tarball gone
    assert model.get_layer("normalization").get_config()["scale"] == pytest.approx(1 / 127.5)
    plain = effnet_tf.EfficientNet("b0", input_shape=(64, 64, 3), classifier_activation=None,
                                   include_preprocessing=False)
    weights.load(plain, source)
    np.testing.assert_allclose(model(x), plain(x / 127.5 - 1), rtol=1e-4, atol=1e-4)
    shutil.rmtree(mirror)  # nothing is downloaded the second time
    again = effnet_tf.EfficientNet("b0", include_top=False, weights="advprop",
                                   input_shape=(64, 64, 3))
    np.testing.assert_array_equal(again.get_layer("top_conv").kernel,
                                  source.get_layer("top_conv").kernel)


def test_convert_command_writes_a_by_name_file(advprop_b0_mirror, tmp_path, capsys):
    _, source, ckpt = advprop_b0_mirror
    out = tmp_path / "b0.h5"
    assert weights_command.main(["convert", str(ckpt), str(out)]) == 0
    layers = sum(1 for layer in source.layers if layer.weights)
    assert capsys.readouterr().out.strip() == f"wrote {layers} layers to {out}"
    arrays = weights.read_h5(out)
    np.testing.assert_array_equal(arrays["predictions"][0], source.get_layer("predictions").kernel)


# ---- fine-tuning through the trainer ---------------------------------------------------

def test_trainer_fine_tunes_from_a_set_name_with_a_new_head(served_b0, tmp_path):
    server, source, md5 = served_b0
    server.requests.clear()
    model_dir = tmp_path / "run"
    env = {**os.environ, "KERAS_HOME": str(tmp_path / "keras_home"),
           download.URL_ENV: server.url, download.MD5_ENV: f"efficientnetb0_notop.h5={md5}",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run(
        [sys.executable, "-m", "effnet_tf.train", "--config", "configs/cpu_smoke.py",
         "--pretrained", "imagenet", "--config.num_classes=5",
         "--config.width_coefficient=1.0", "--config.depth_coefficient=1.0",
         "--config.epochs=1", "--config.steps_per_epoch=1", "--config.global_batch_size=4",
         "--config.freeze_backbone_epochs=1", "--config.freeze_batch_norm=True",
         "--config.checkpoint_every_steps=1", f"--model_dir={model_dir}"],
        cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=600)
    assert server.requests == ["/keras-applications/efficientnetb0_notop.h5"]
    from effnet_tf.training.restore import load_trained

    trained = load_trained(str(model_dir)).model
    assert trained.get_layer("predictions").kernel.shape == (1280, 5)  # a new head
    for name in ("stem_conv", "block6d_project_bn", "top_conv"):  # the served backbone, frozen
        for a, b in zip(trained.get_layer(name).get_weights(),
                        source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_readme_catalogue_is_the_shipped_table():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme.split("## Pretrained weights", 1)[1].split("\n## ", 1)[0]
    rows = [tuple(cell.strip() for cell in line.strip("|").split("|"))
            for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[1:] == weight_sets.table()


def test_official_lite_set_converts_through_the_mirror_with_lites_normalization(
        cache, monkeypatch, tmp_path):
    """``weights="imagenet"`` for lite0: the official ``lite/efficientnet-lite0.tar.gz``
    (here an official-format checkpoint of random weights, scope ``efficientnet-lite0``, no
    squeeze-excite variables), converted once; the model normalizes as ``(x - 127) / 128``."""
    source = effnet_tf.EfficientNetLite0(input_shape=(64, 64, 3), classifier_activation=None)
    randomize(source)
    ckpt = tmp_path / "efficientnet-lite0"
    ckpt.mkdir()
    write_official_checkpoint(source, str(ckpt / "model.ckpt"), scope="efficientnet-lite0")
    tarball = tmp_path / "mirror" / "cloud-tpu-checkpoints" / "efficientnet" / "lite"
    tarball.mkdir(parents=True)
    with tarfile.open(tarball / "efficientnet-lite0.tar.gz", "w:gz") as archive:
        archive.add(ckpt, arcname="efficientnet-lite0")
    monkeypatch.setenv(download.URL_ENV, (tmp_path / "mirror").as_uri() + "/")
    model = effnet_tf.EfficientNetLite0(weights="imagenet", input_shape=(64, 64, 3),
                                        classifier_activation=None)
    assert sorted(os.listdir(cache)) == ["effnet_tf_imagenet_lite0.h5"]
    assert model.get_layer("normalization").get_config()["scale"] == pytest.approx(1 / 128)
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(model(x), source(x), rtol=1e-5, atol=1e-5)
    assert weights_command.main(["convert", str(ckpt), str(tmp_path / "lite0.h5")]) == 0
    assert "block1a_se_reduce" not in weights.read_h5(tmp_path / "lite0.h5")
