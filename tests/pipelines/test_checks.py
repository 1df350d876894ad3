"""The data check before a run (pipelines.checks) on real folders and shards: the counts, each
finding (fatal or a warning) naming the path and the fix, and the cache by the data's identity."""

import os

import pipelines
from pipelines.checks import check_data


def check(source, batch=4, cache=None, eval_split="validation"):
    return check_data(pipelines.get_source(source) if isinstance(source, str) else source,
                      train_split="train", eval_split=eval_split, global_batch_size=batch,
                      cache=cache)


def test_counts_per_class_per_split_and_a_clean_report(tmp_path, kit):
    kit.write_folder(str(tmp_path / "d/train"), num_classes=2, per_class=3)
    kit.write_folder(str(tmp_path / "d/val"), num_classes=2, per_class=1)
    result = check(str(tmp_path / "d"))
    assert result.counts == {"train": {"class_0": 3, "class_1": 3},
                             "validation": {"class_0": 1, "class_1": 1}}
    assert not result.fatal and not result.warnings
    assert "train: 6 examples in 2 classes, 3 per class" in result.report()


def test_a_class_of_val_that_train_lacks_and_a_missing_val_are_fatal(tmp_path, kit):
    kit.write_folder(str(tmp_path / "d/train"), num_classes=2, per_class=3)
    kit.write_folder(str(tmp_path / "d/val"), num_classes=3, per_class=1)
    (fatal,) = check(str(tmp_path / "d")).fatal
    assert f"class folder '{tmp_path}/d/val/class_2' is not a class of" in fatal

    kit.write_folder(str(tmp_path / "e/train"), num_classes=2, per_class=3)
    (fatal,) = check(str(tmp_path / "e")).fatal
    assert fatal.startswith(f"split 'validation' of dataset '{tmp_path}/e'")
    assert f"add {tmp_path}/e/val/<class>/<images> next to {tmp_path}/e/train" in fatal


def test_empty_class_folders_are_refused_in_train_and_warned_about_in_val(tmp_path, kit):
    kit.write_folder(str(tmp_path / "d/train"), num_classes=2, per_class=3)
    kit.write_folder(str(tmp_path / "d/val"), num_classes=1, per_class=1)
    os.makedirs(tmp_path / "d/train/class_9")
    os.makedirs(tmp_path / "d/val/class_1")
    result = check(str(tmp_path / "d"))
    assert result.fatal == [
        f"class folder '{tmp_path}/d/train/class_9' has no images: add images or remove the "
        "folder (a class without training data would still be an output of the model)"]
    assert result.warnings == ["class 'class_1' has no validation images: its accuracy is "
                               "not measured"]


def test_a_split_without_examples_is_fatal(tmp_path, kit):
    """Shards whose files hold no records (``train`` refuses an empty file as --dataset before
    TensorFlow loads: tests/test_cli_errors.py)."""
    folder = str(tmp_path / "shards")
    kit.write_shards(folder, "validation", 1, 3)
    (tmp_path / "shards" / "train-00000-of-00001").write_bytes(b"")
    (fatal,) = check(pipelines.get_source(folder, num_classes=3)).fatal
    assert fatal == (f"split 'train' of dataset '{folder}' holds no examples (an empty file?): "
                     "give data with examples")


def test_a_batch_larger_than_the_training_split_is_fatal(image_folder):
    assert not check(image_folder, batch=18, eval_split="train").fatal
    (fatal,) = check(image_folder, batch=19, eval_split="train").fatal
    assert "has 18 training examples, fewer than one global batch of 19" in fatal
    assert "lower --batch_size to at most 18" in fatal


def test_tfrecords_without_metadata_count_their_labels_once_per_identity(tmp_path, kit):
    folder = str(tmp_path / "shards")
    kit.write_shards(folder, "train", 2, 5)  # labels 1..5, 1-based
    kit.write_shards(folder, "validation", 1, 3)
    cache = {}
    source = pipelines.get_source(folder)
    assert source.num_classes is None and source.num_examples("train") is None
    result = check(source, cache=cache)
    assert result.labels == {str(k): 2 for k in range(5)} and result.counted_num_classes() == 5
    assert result.counts == {"train": {"examples": 10}, "validation": {"examples": 3}}
    assert source.num_examples("train") == 10  # remembered: not read again to count
    again = check(folder, cache=cache)
    assert again.cached and again.labels == result.labels and len(cache) == 1
    kit.write_shards(folder, "train", 2, 6)  # rewritten: another identity, counted anew
    assert check(folder, cache=cache).counts["train"] == {"examples": 12} and len(cache) == 2

    zero_based = pipelines.get_source(folder, label_offset=2)
    assert "label(s) of -1 or less after subtracting label_offset 2" in check(zero_based).fatal[0]
