"""Training end to end on tiny models: learning, resuming, failing well, evaluate/predict/export."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from effnet_tf.deploy.formats import export_run
from effnet_tf.deploy.serving import predict_files
from effnet_tf.training.evaluation import evaluate_run
from effnet_tf.training.restore import load_trained
from effnet_tf.training.trainer import NonFiniteLossError, train_and_evaluate
from tests.train_utils import assert_same_weights, checkpoint_weights, run_module, tiny_config


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("run"))
    result = train_and_evaluate(tiny_config(epochs=3), model_dir)
    return model_dir, result


def test_training_lowers_the_loss_and_writes_the_run(trained_dir):
    model_dir, result = trained_dir
    losses = result["train_loss_per_epoch"]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses
    assert result["step"] == 18 and result["top1"] > 0.3  # above chance (4 classes)
    saved = json.load(open(os.path.join(model_dir, "config.json")))
    assert saved["format_version"] == 3
    assert saved["spec"]["runtime"]["backend"] == "tensorflow"
    model = saved["spec"]["model"]
    assert (model["width_coefficient"], model["depth_coefficient"], model["image_size"],
            model["num_classes"]) == (0.25, 0.25, 64, 4)
    assert saved["spec"]["optim"]["steps_per_epoch"] == 6
    assert saved["spec"]["runtime"]["precision"] == "float32"
    assert saved["config"]["epochs"] == 3  # the config it was resolved from, for reading
    assert saved["class_names"] == ["class_0", "class_1", "class_2", "class_3"]
    assert json.load(open(os.path.join(model_dir, "summary.json")))["step"] == 18
    steps = sorted(int(p.split("-")[1].split(".")[0]) for p in
                   os.listdir(os.path.join(model_dir, "checkpoints")) if p.endswith(".index"))
    assert steps == [12, 16, 18]  # every 4 steps and at the end; the last 3 kept
    events = tf.io.gfile.glob(os.path.join(model_dir, "logs", "events.out.tfevents.*"))
    tags = {value.tag for path in events for event in tf.compat.v1.train.summary_iterator(path)
            for value in event.summary.value}
    assert {"train/loss", "train/top1", "train/learning_rate", "train/images_per_second",
            "eval/top1", "eval/top5", "eval/loss"} <= tags, tags


def test_rerun_of_a_finished_run_trains_no_more(trained_dir):
    model_dir, _ = trained_dir
    before = checkpoint_weights(model_dir)
    result = train_and_evaluate(tiny_config(epochs=3), model_dir)
    assert result["step"] == 18
    assert_same_weights(before, checkpoint_weights(model_dir))


def test_evaluate_uses_the_averaged_weights(trained_dir):
    model_dir, result = trained_dir
    averaged = evaluate_run(model_dir, steps=2, batch_size=16)
    assert averaged["ema"] is True and averaged["step"] == 18
    assert averaged["top1"] == pytest.approx(result["top1"])  # the trainer also used the EMA
    raw = load_trained(model_dir, use_ema=False)
    ema = load_trained(model_dir)
    assert not ema.averaged is raw.averaged
    differs = [not np.allclose(a, b) for a, b in zip(raw.model.get_weights(),
                                                     ema.model.get_weights())]
    assert any(differs)


def test_padded_evaluation_counts_every_example_once(trained_dir):
    from effnet_tf.training.data import RunData
    from effnet_tf.training.evaluation import evaluate_model

    model_dir, _ = trained_dir
    trained = load_trained(model_dir)
    data = RunData.of_spec(trained.spec, model_dir)
    split = trained.spec.data.eval_split
    plain = data.dataset(split, False, 7)
    padded = data.dataset(split, False, 7, pad_remainder=True)
    images = np.concatenate([x for x, _ in plain])
    labels = np.concatenate([y for _, y in plain])
    assert len(labels) % 7  # the last batch is partial, so padding matters
    assert sum(float(w.numpy().sum()) for _, _, w in padded) == len(labels)
    logits = trained.model.predict(images, verbose=0)
    expected_top1 = float(np.mean(np.argmax(logits, -1) == labels))
    for dataset in (plain, padded):
        result = evaluate_model(trained.model, dataset, data.num_classes)
        assert result["top1"] == pytest.approx(expected_top1, abs=1e-6)
        expected_loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True)))
        assert result["loss"] == pytest.approx(expected_loss, rel=1e-4)


def test_predict_returns_class_names(trained_dir):
    model_dir, _ = trained_dir
    images = [os.path.join(model_dir, "data", f"class_{k}", "0003.jpg") for k in range(4)]
    results = predict_files(model_dir, images, top_k=2)
    assert [len(r) for r in results] == [2, 2, 2, 2]
    for result in results:
        assert {name for name, _ in result} <= {"class_0", "class_1", "class_2", "class_3"}
        assert result[0][1] >= result[1][1]
    with pytest.raises(ValueError, match="image file\\(s\\) not found: /nope.jpg"):
        predict_files(model_dir, ["/nope.jpg"])


def test_exports_give_the_same_predictions(trained_dir, tmp_path):
    model_dir, _ = trained_dir
    trained = load_trained(model_dir)
    encoded = [tf.io.read_file(os.path.join(model_dir, "data", "class_2", f"{i:04d}.jpg"))
               for i in range(4)]
    from pipelines import make_eval_preprocess
    images = tf.stack([make_eval_preprocess(64)(b) for b in encoded])
    expected = tf.nn.softmax(trained.model(images, training=False)).numpy()

    keras_path = export_run(model_dir, "keras", str(tmp_path / "m.keras"))
    reloaded = keras.models.load_model(keras_path, safe_mode=True)
    np.testing.assert_allclose(reloaded(images), expected, rtol=1e-5, atol=1e-6)

    # (the SavedModel: tests/test_one_preprocessing.py, for every shipped recipe)

    from effnet_tf.deploy import tflite
    float_path = export_run(model_dir, "tflite", str(tmp_path / "m.tflite"))
    np.testing.assert_allclose(tflite.predict(float_path, images.numpy()), expected,
                               rtol=1e-4, atol=1e-5)
    int8_path = export_run(model_dir, "tflite_int8", str(tmp_path / "m_int8.tflite"),
                           calibration_batches=2)
    assert os.path.getsize(int8_path) < 0.5 * os.path.getsize(float_path)
    quantized = tflite.predict(int8_path, images.numpy())
    assert np.abs(quantized - expected).max() < 0.15  # probabilities, int8 activations


def test_mismatched_model_dir_is_refused_before_training(trained_dir):
    model_dir, _ = trained_dir
    before = open(os.path.join(model_dir, "config.json")).read()
    with pytest.raises(ValueError, match="was trained with width_coefficient=0.25; this run "
                                         "asks for width_coefficient=0.5"):
        train_and_evaluate(tiny_config(width_coefficient=0.5), model_dir)
    assert open(os.path.join(model_dir, "config.json")).read() == before


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(trained_dir, tmp_path):
    """A copy of the finished 3-epoch run (18 steps) extended with a learning rate that
    blows the weights up: stopped at the first non-finite loss, the step-18 checkpoint kept."""
    model_dir = str(tmp_path / "run")
    shutil.copytree(trained_dir[0], model_dir)
    good = checkpoint_weights(model_dir)
    with pytest.raises(NonFiniteLossError,
                       match="loss became (nan|inf) at step (19|2[0-4]); stopped"):
        train_and_evaluate(tiny_config(epochs=4, base_learning_rate=1e38), model_dir)
    assert tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")).endswith("-18")
    assert_same_weights(good, checkpoint_weights(model_dir))


@pytest.mark.parametrize("args,message", [
    (["--strategy=gpus"], "flag --strategy=gpus: value should be one of"),
    (["--config.global_batch_size=0"], "config.global_batch_size must be an integer >= 1"),
    (["--config.augment=mixall"], "config.augment must be one of none, autoaugment"),
    (["--variant=b9"], "variant must be one of b0"),
])
def test_bad_flags_fail_before_training_with_a_clear_message(tmp_path, args, message):
    out = run_module("effnet_tf.train", "--config=configs/cpu_smoke.py",
                     f"--model_dir={tmp_path / 'run'}", *args)
    assert out.returncode != 0
    assert message in out.stderr, out.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def _weights_at(model_dir, step, config):
    from effnet_tf.training.recipe import build_model
    from effnet_tf.training.run_dir import RunDir
    model = build_model(RunDir(model_dir).read_spec().model)
    path = os.path.join(model_dir, "checkpoints", f"ckpt-{step}")
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model


def test_fine_tuning_trains_the_head_first_with_the_backbone_and_bn_frozen(tmp_path):
    import effnet_tf
    from effnet_tf.modeling import weight_loading as weights
    config = tiny_config(dataset="random", image_size=32, epochs=2, steps_per_epoch=3,
                         checkpoint_every_steps=3, freeze_backbone_epochs=1,
                         freeze_batch_norm=True, ema_decay=0.0,
                         pretrained=str(tmp_path / "pretrained.h5"))
    pretrained = effnet_tf.EfficientNet(
        effnet_tf.Scaling("p", 0.25, 0.25, 64, 0.2), classes=10)  # another head: skipped
    weights.save_h5(pretrained, config.pretrained)
    model_dir = str(tmp_path / "run")
    train_and_evaluate(config, model_dir)
    after_head, after_all = _weights_at(model_dir, 3, config), _weights_at(model_dir, 6, config)

    def same(model, name):
        return all(np.array_equal(a, b) for a, b in zip(
            model.get_layer(name).get_weights(), pretrained.get_layer(name).get_weights()))
    assert same(after_head, "stem_conv") and same(after_head, "block7a_project_conv")
    assert not np.array_equal(after_head.get_layer("predictions").kernel,
                              after_all.get_layer("predictions").kernel)
    assert not same(after_all, "stem_conv")  # unfrozen for epoch 2
    assert same(after_all, "stem_bn") and same(after_all, "top_bn")  # BN stayed frozen


@pytest.mark.parametrize("precision", [
    "mixed_float16",  # (and its loss scaling)
    # mixed_bfloat16 trains in the default run as the tpu recipe's precision
    # (tests/test_one_preprocessing.py); here in the slow run
    pytest.param("mixed_bfloat16", marks=pytest.mark.slow)])
def test_mixed_precision_training(tmp_path, precision):
    result = train_and_evaluate(tiny_config(mixed_precision=precision, dataset="random",
                                            image_size=32, epochs=1, steps_per_epoch=3),
                                str(tmp_path))
    assert result["step"] == 3 and np.isfinite(result["train_loss"])
    saved = json.load(open(tmp_path / "config.json"))["spec"]
    assert saved["runtime"]["precision"] == precision
    # the run set the precision for its own layers only: none left for the next model
    assert keras.mixed_precision.dtype_policy().name == "float32"
    assert load_trained(str(tmp_path)).model.layers[-1].compute_dtype == "float32"


@pytest.mark.slow  # XLA compiles for a minute and more on this CPU
def test_xla_training_on_a_tiny_model_follows_the_graph_mode_run(tmp_path):
    # no dropout: XLA draws other random numbers than TensorFlow's kernels
    config = dict(dataset="random", deterministic=True, image_size=32, epochs=1,
                  steps_per_epoch=3, ema_decay=0.0, dropout=0.0)
    xla = train_and_evaluate(tiny_config(jit_compile="true", **config), str(tmp_path / "xla"))
    graph = train_and_evaluate(tiny_config(**config), str(tmp_path / "graph"))
    assert xla["step"] == graph["step"] == 3
    # the same steps on the same batches; XLA's kernels round differently
    assert xla["train_loss"] == pytest.approx(graph["train_loss"], rel=1e-3)
    assert xla["loss"] == pytest.approx(graph["loss"], rel=1e-2)


def test_a_tfds_run_on_a_non_local_file_system_stopped_in_its_last_step_resumes(monkeypatch):
    """A run on a TFDS dataset (``tfds.testing.mock_data``) whose model_dir is on TF's
    in-memory file system (``ram://``, standing in for ``gs://``): config, checkpoints, logs
    and resume go through tf.io.gfile, nothing through the local disk. SIGTERM during the
    run's very last step: the checkpoint is saved there without the evaluation, and the
    resumed run (nothing left to train) reports the epoch's training loss and accuracy beside
    its evaluation, as an uninterrupted run does; more epochs then extend it."""
    import signal

    import tensorflow_datasets as tfds

    from effnet_tf.training.trainer import Interrupted, Trainer

    model_dir = "ram://effnet_tf_test_run"
    config = tiny_config(dataset="tfds:tf_flowers", num_classes=None, train_split="train[:32]",
                         eval_split="train[32:]", image_size=32, epochs=1, steps_per_epoch=3,
                         eval_steps=1, checkpoint_every_steps=100)
    run_steps = Trainer.run_steps

    def stopped_on_the_last_step(self, step, count):
        result = run_steps(self, step, count)
        if step + count == self.total_steps:
            os.kill(os.getpid(), signal.SIGTERM)  # as a preemption arriving then
        return result

    with tfds.testing.mock_data(num_examples=48):  # noise with random labels
        monkeypatch.setattr(Trainer, "run_steps", stopped_on_the_last_step)
        with pytest.raises(Interrupted):
            train_and_evaluate(config, model_dir)
        monkeypatch.undo()
        names = {n.rstrip("/") for n in tf.io.gfile.listdir(model_dir)}
        assert {"config.json", "summary.json", "checkpoints", "logs"} <= names
        assert tf.io.gfile.glob(model_dir + "/checkpoints/ckpt-3.index")
        with tf.io.gfile.GFile(model_dir + "/summary.json") as f:
            stopped = json.load(f)
        assert stopped["interrupted"] == "SIGTERM" and stopped["step"] == 3
        assert "top1" not in stopped
        with tf.io.gfile.GFile(model_dir + "/config.json") as f:
            assert json.load(f)["spec"]["model"]["num_classes"] == 5  # the TFDS metadata's

        resumed = train_and_evaluate(config, model_dir)
        assert resumed["step"] == 3 and resumed["epoch"] == 1 and "interrupted" not in resumed
        assert resumed["train_loss"] == pytest.approx(stopped["train_loss_per_epoch"][0])
        assert {"train_top1", "top1", "loss"} <= resumed.keys()
        # the eval batch (16 images) was evaluated
        assert resumed["images"] == 16 and resumed["skipped_images"] == 0

        config.epochs = 2
        result = train_and_evaluate(config, model_dir)  # resumes at step 3
    losses = result["train_loss_per_epoch"]
    assert result["step"] == 6 and len(losses) == 2 and all(np.isfinite(losses))  # first kept
    assert losses[1] == result["train_loss"]
    assert tf.io.gfile.glob(model_dir + "/checkpoints/ckpt-6.index")
