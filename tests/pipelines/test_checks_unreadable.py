"""Image paths that exist but cannot be read as files stop the data check, also as root (who
may read any file, so permissions cannot show it here): a named pipe nothing writes to (the
pipeline's reader would wait on it for ever) and a socket, each named with why."""

import os
import socket

import pipelines
from pipelines.checks import check_data


def test_a_pipe_and_a_socket_named_like_images_are_fatal_with_why(tmp_path, kit, monkeypatch):
    root = tmp_path / "d"
    kit.write_folder(str(root / "train"), num_classes=2, per_class=3)
    kit.write_folder(str(root / "val"), num_classes=2, per_class=1)
    os.mkfifo(root / "train/class_0/pipe.jpg")
    monkeypatch.chdir(root / "val/class_1")  # a socket's path must be short: bound relatively
    with socket.socket(socket.AF_UNIX) as server:
        server.bind("socket.png")
        result = check_data(pipelines.get_source(str(root)), train_split="train",
                            eval_split="validation", global_batch_size=2)
    fix = f"fix their permissions, put image files in their place or move them out of '{root}'"
    assert result.fatal == [
        f"1 image file(s) of split 'train' cannot be read (first: '{root}/train/class_0/pipe.jpg'"
        f": a named pipe, not a file): {fix}",
        f"1 image file(s) of split 'validation' cannot be read (first: "
        f"'{root}/val/class_1/socket.png': No such device or address): {fix}"]
    assert result.counts["train"] == {"class_0": 4, "class_1": 3}  # the pipe is listed


def test_readable_images_and_a_folder_named_like_one_pass(tmp_path, kit):
    root = tmp_path / "d"
    kit.write_folder(str(root / "train"), num_classes=2, per_class=3)
    kit.write_folder(str(root / "val/class_0/more.jpg"), num_classes=1, per_class=1)
    result = check_data(pipelines.get_source(str(root)), train_split="train",
                        eval_split="validation", global_batch_size=2)
    assert not result.fatal  # the folder more.jpg is walked into, its image read
    assert result.counts["validation"] == {"class_0": 1, "class_1": 0}
