"""One preprocessing for a trained model: for every shipped recipe, ``evaluate``, ``predict``
and the exported SavedModel's ``serve_image_bytes`` prepare an image the same way (the run
spec's ``EvalPreprocess``), so they give the same classes, the same top-1 over the same
images, and the same probabilities.

Before the run spec, ``predict`` and the SavedModel cropped the central size / (size + 32)
of every image whatever the run evaluated with: on ``small_images`` (no eval crop) a run that
evaluated at 0.81 top-1 predicted its own validation files at 0.14.

Each recipe trains a tiny run (only sizes and step counts changed; no pretrained weights,
which cannot be fetched here and do not fit a tiny scaling; the TPU recipe on the CPU) on
scikit-learn's digits, in this process: the commands are one call each of these functions.
The default run trains the first recipe of each distinct set of inference settings
(``recipes_by_settings``: ``imagenet`` serves as ``finetune_flowers`` does); ``-m slow`` all.
"""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf

from effnet_tf import flags as effnet_flags

TINY = dict(width_coefficient=0.25, depth_coefficient=0.25, image_size=32, epochs=1,
            steps_per_epoch=3, global_batch_size=8, steps_per_execution=1, pretrained=None,
            checkpoint_every_steps=3)
# Where a recipe names hardware this machine lacks: the TPU recipe's TPU strategy and XLA.
ON_THIS_MACHINE = dict(strategy="cpu", jit_compile="false")


def recipe_config(name: str, dataset: str):
    path = effnet_flags.recipe_path(name)
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    config.update(dict(TINY, **ON_THIS_MACHINE, dataset=dataset, data_dir=None, num_classes=None,
                       train_split="train", eval_split="validation"))
    return config


def inference_settings(config) -> tuple:
    """What decides a trained run's predictions besides its weights' values: the eval
    preprocessing, whether the averaged weights are served, the precision."""
    return (config.image_size, config.eval_crop_fraction, config.resize_method,
            bool(config.ema_decay), config.mixed_precision, config.pretrained)


def recipes_by_settings() -> list:
    """Every shipped recipe; the default run trains the first recipe of each distinct
    ``inference_settings``, the slow run all of them (a recipe that only trains differently
    has no other preprocessing to get wrong)."""
    seen, params = set(), []
    for name in effnet_flags.recipe_names():
        settings = inference_settings(recipe_config(name, "unused"))
        params.append(pytest.param(name, marks=[pytest.mark.slow] if settings in seen else []))
        seen.add(settings)
    return params


@pytest.mark.parametrize("recipe", recipes_by_settings())
def test_evaluate_predict_and_served_model_agree(recipe, digits, tmp_path):
    from effnet_tf.deploy.formats import export_run
    from effnet_tf.deploy.serving import predict_files
    from effnet_tf.training.data import RunData
    from effnet_tf.training.evaluation import evaluate_run
    from effnet_tf.training.restore import load_trained
    from effnet_tf.training.trainer import train_and_evaluate

    run = str(tmp_path / recipe)
    train_and_evaluate(recipe_config(recipe, digits), run)

    evaluated = evaluate_run(run)
    trained = load_trained(run)
    data = RunData.of_spec(trained.spec, run)
    examples = data.source.examples(trained.spec.data.eval_split)
    paths = [path for path, _ in examples]
    names = trained.class_names

    # predict over the validation files: exactly evaluate's top-1, over the same images
    predicted = predict_files(run, paths, top_k=len(names))
    hits = sum(p[0][0] == names[label] for p, (_, label) in zip(predicted, examples))
    assert len(paths) == evaluated["images"] == 40
    assert hits == round(evaluated["top1"] * evaluated["images"])

    # ... and the probabilities of the evaluation pipeline's own images
    images = np.concatenate([x for x, _ in data.eval_dataset(16)])
    expected = tf.nn.softmax(trained.model(images, training=False)).numpy()
    got = np.array([[dict(p)[name] for name in names] for p in predicted])
    np.testing.assert_allclose(got, expected, atol=2e-6)

    # the SavedModel's signatures: the same probabilities from the prepared images and from
    # the encoded files
    export_run(run, "saved_model", str(tmp_path / "served"))
    loaded = tf.saved_model.load(str(tmp_path / "served"))
    np.testing.assert_allclose(loaded.serving_default(images), expected, atol=2e-6)
    served = loaded.serve_image_bytes(tf.constant([open(p, "rb").read() for p in paths]))
    served = served.numpy()
    np.testing.assert_allclose(served, expected, atol=2e-6)
