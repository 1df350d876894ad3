"""Parity with keras.applications: parameter counts, weight loading, identical outputs."""

import h5py
import keras
import numpy as np
import pytest

import effnet_tf
from effnet_tf.modeling import weight_loading as weights
from effnet_tf.modeling.scaling import PUBLISHED

SIZE = 48  # small, and odd-sized (3 px) before the last stride-2 stage: both padding cases
KERAS_BUILDERS = {v: getattr(keras.applications, f"EfficientNet{v.upper()}") for v in PUBLISHED}


def keras_reference(variant, include_top, seed=0):
    """keras.applications model with random weights and BN statistics, normalization set to
    the ImageNet mean/variance (its layer is otherwise an identity when weights=None)."""
    model = KERAS_BUILDERS[variant](
        weights=None, include_top=include_top, input_shape=(SIZE, SIZE, 3),
        classifier_activation=None)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.set_weights([np.array([0.485, 0.456, 0.406]),
                               np.array([0.229, 0.224, 0.225]) ** 2, np.array(0)])
            layer.finalize_state()  # Keras reads mean/variance from here, not from set_weights
        elif isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                               rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])
        elif layer.weights:
            layer.set_weights([w + rng.normal(0, 0.01, w.shape) for w in layer.get_weights()])
    return model


@pytest.mark.parametrize("variant", PUBLISHED)
def test_param_counts_equal_keras_applications(variant):
    ours = effnet_tf.EfficientNet(variant)
    theirs = KERAS_BUILDERS[variant](weights=None)
    trainable = lambda m: sum(int(np.prod(w.shape)) for w in m.trainable_weights)  # noqa: E731
    assert trainable(ours) == trainable(theirs)
    assert theirs.count_params() - ours.count_params() == 7  # its normalization constants
    assert effnet_tf.count_params(ours) == effnet_tf.count_params(variant)
    assert effnet_tf.flops(ours) == effnet_tf.flops(variant) == effnet_tf.flops(theirs)


@pytest.mark.parametrize("variant", [  # b0 and b4 by default, the others slow (4-10 s each)
    v if v in ("b0", "b4") else pytest.param(v, marks=pytest.mark.slow) for v in PUBLISHED])
def test_outputs_equal_keras_applications_after_load(variant):
    theirs = keras_reference(variant, include_top=True)
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    their_features = keras.Model(theirs.input, theirs.get_layer("top_activation").output)
    for include_top, expected in [(True, theirs(x)), (False, their_features(x))]:
        ours = effnet_tf.EfficientNet(variant, include_top=include_top,
                                      input_shape=(SIZE, SIZE, 3), classifier_activation=None)
        loaded = weights.load(ours, theirs)  # the notop model ignores their classifier
        assert len(loaded) == sum(1 for layer in ours.layers if layer.weights)
        got = ours(x)
        rel = np.abs(got - expected).max() / np.abs(expected).max()
        assert rel < 1e-4, (include_top, rel)


def test_loads_keras_applications_hdf5_files(tmp_path):
    # written by Keras' own legacy HDF5 writer, the format of efficientnetb0_notop.h5
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    theirs = keras_reference("b0", include_top=False, seed=3)
    path = tmp_path / "efficientnetb0_notop.h5"
    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, theirs)
    ours = effnet_tf.EfficientNet("b0", include_top=False, input_shape=(SIZE, SIZE, 3),
                                  weights=str(path))
    x = np.random.default_rng(2).uniform(0, 255, (1, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-4, atol=1e-4)


def test_save_h5_round_trips_and_keras_reads_it_by_name(tmp_path):
    from keras.src.legacy.saving.legacy_h5_format import load_weights_from_hdf5_group_by_name

    ours = effnet_tf.EfficientNet("b0", include_top=False, input_shape=(SIZE, SIZE, 3))
    path = tmp_path / "ours.h5"
    weights.save_h5(ours, path)
    theirs = KERAS_BUILDERS["b0"](weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    with h5py.File(path, "r") as f:
        load_weights_from_hdf5_group_by_name(f, theirs)
    for layer in (layer for layer in ours.layers if layer.weights):
        for a, b in zip(layer.get_weights(), theirs.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(a, b)


def test_keras3_weights_file_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "b0.weights.h5"
    effnet_tf.EfficientNet("b0", include_top=False).save_weights(path)
    with pytest.raises(ValueError, match="keys weights by layer class and order, not by name"):
        weights.load(effnet_tf.EfficientNet("b0", include_top=False), path)


def test_notop_file_into_a_top_model_names_the_missing_layer(tmp_path):
    path = tmp_path / "efficientnetb0_notop.h5"
    weights.save_h5(effnet_tf.EfficientNet("b0", include_top=False), path)
    model = effnet_tf.EfficientNet("b0")
    before = model.get_layer("stem_conv").get_weights()[0].copy()
    with pytest.raises(ValueError, match="layer 'predictions' is missing from the source"):
        weights.load(model, path)
    # nothing was assigned
    np.testing.assert_array_equal(model.get_layer("stem_conv").get_weights()[0], before)
    # fine-tuning: keep a fresh classifier
    loaded = weights.load(model, path, skip_mismatch=True)
    assert "predictions" not in loaded and "stem_conv" in loaded


def test_other_variant_names_the_first_mismatched_layer():
    # b2's extra block2c is ignored; its wider stage 3 is the first layer that does not fit
    with pytest.raises(ValueError, match=r"layer 'block3a_project_conv' has weight shapes "
                                         r"\[\(1, 1, 144, 40\)\] but the source has "
                                         r"\[\(1, 1, 144, 48\)\]"):
        weights.load(effnet_tf.EfficientNet("b0", include_top=False),
                     effnet_tf.EfficientNet("b2", include_top=False))


def test_missing_weights_file():
    with pytest.raises(ValueError, match=r"weights must be None or the path of an existing "
                                         r"weights file or TF checkpoint, or a weight set "
                                         r"\(imagenet, .*\), got '/nope.h5'"):
        effnet_tf.EfficientNet("b0", weights="/nope.h5")
    with pytest.raises(ValueError, match="weights file '/nope.h5' does not exist"):
        weights.load(effnet_tf.EfficientNet("b0"), "/nope.h5")
