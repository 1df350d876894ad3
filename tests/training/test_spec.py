"""The run spec: resolved once, written to config.json with a format version, read back by
every command; config.json files of earlier versions migrate, newer ones are refused."""

import json
import os
import shutil

import pytest
from PIL import Image

from effnet_tf.training import spec as spec_lib
from effnet_tf.training.config import get_config
from tests import DATA
from tests.conftest import write_digits
from tests.train_utils import run_module

V1_RUN = os.path.join(DATA, "runs", "v1_small_images")


def test_a_spec_reads_back_as_it_was_written():
    config = get_config()
    config.update(variant="b4", eval_crop_fraction="none", augment="randaugment",
                  mixup_alpha=0.2, data_service="grpc://127.0.0.1:5050")
    spec = spec_lib.resolve(config, num_classes=7, steps_per_epoch=11,
                            precision="mixed_bfloat16", jit_compile=True)
    assert spec.model.image_size == 380 and spec.eval_preprocess().image_size == 380
    saved = json.loads(json.dumps(spec.to_json(config, ["a", "b"])))
    assert saved["format_version"] == spec_lib.FORMAT_VERSION
    assert spec_lib.from_json(saved, "config.json") == spec


def test_a_format_2_spec_reads_as_a_tensorflow_run_and_the_backend_is_written():
    """Format 2 (before runtime.backend) was written by TensorFlow runs only."""
    spec = spec_lib.resolve(get_config(), num_classes=3, steps_per_epoch=5,
                            precision="float32", jit_compile=False, backend="jax")
    saved = json.loads(json.dumps(spec.to_json()))
    assert saved["format_version"] == 3 and saved["spec"]["runtime"]["backend"] == "jax"
    del saved["spec"]["runtime"]["backend"]
    saved["format_version"] = 2
    old = spec_lib.from_json(saved, "config.json")
    assert old.runtime.backend == "tensorflow" and old.model == spec.model


# (a config.json of a newer version: refused before TensorFlow, tests/test_cli_errors.py)


def test_a_run_written_before_the_spec_migrates_evaluates_and_predicts_the_same(tmp_path):
    """The committed run of commit cde763f (format 1): its top-1 is unchanged (28 of 60), and
    predict now agrees with it (that version's predict cropped: 6 of 60)."""
    legacy = spec_lib.migrate(json.load(open(os.path.join(V1_RUN, "config.json"))))
    assert legacy.eval_preprocess().crop_fraction == "none"
    assert legacy.model.num_classes == 10 and legacy.optim.steps_per_epoch is None
    write_digits(tmp_path / "digits", 300, 240, "png", Image.NEAREST)
    shutil.copytree(V1_RUN, tmp_path / "run")
    evaluated = run_module("effnet_tf.evaluate", "--model_dir=run", cwd=tmp_path)
    assert "top1 0.4667  top5 0.8667  images 60" in evaluated.stdout, evaluated.stderr[-2000:]
    files = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "digits/val").glob("*/*"))
    predicted = run_module("effnet_tf.predict", "--model_dir=run", "--top_k=1", *files,
                           cwd=tmp_path)
    lines = predicted.stdout.splitlines()
    assert len(lines) == 60, predicted.stderr[-2000:]
    hits = sum(line.split("/")[2] == line.split(": ")[1].split()[0] for line in lines)
    assert hits == 28
    # config.json stays as that version wrote it: reading migrates, nothing is rewritten
    assert "format_version" not in json.load(open(tmp_path / "run" / "config.json"))


def test_validation_and_the_spec_take_their_defaults_from_the_modules_that_own_them():
    from pipelines import options

    config = get_config()
    spec = spec_lib.resolve(config, num_classes=1000, steps_per_epoch=1, precision="float32",
                            jit_compile=False)
    assert spec.data.preprocess == options.Preprocess()  # every official default
    assert spec.data.augment == options.Augment("autoaugment")
    with pytest.raises(ValueError, match="crop_area_range"):
        config.crop_area_range = (0.5, 0.2)
        spec_lib.data_of(config)
