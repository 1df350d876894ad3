"""Image folders as a source (``FolderSource``): ``root/<class_name>/*.jpg``.

Class names sorted give the labels. The validation split is ``root/val`` next to
``root/train``, ``validation_dir=`` or ``validation_fraction=`` (``FolderSource``).
"""

from __future__ import annotations

import os
import zlib

import tensorflow as tf
from absl import logging

from pipelines.source_base import AUTOTUNE, Source, _join, shard_and_read, split_aliases

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp")


def list_images(folder: str, skipped: list | None = None, tree: str | None = None) -> list[str]:
    """Image files under ``folder`` (recursively), by extension, sorted.

    Local folders follow symbolic links, but each real folder once and never back into
    ``tree`` (default ``folder``; a split's folder): a link into the tree, to a folder walked
    already (a loop), or that does not resolve (a loop between links, a missing target) is
    left out and appended to ``skipped`` as ``(path, why)``. A data set kept elsewhere and
    linked in is read once, and a loop cannot multiply a class (os.walk and tf.io.gfile.walk
    follow a link loop until the path is too long).
    """
    if "://" in folder:  # object stores have no links
        found = []
        for directory, _, files in tf.io.gfile.walk(folder):
            found += [_join(directory, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        return sorted(found)
    walk = _LocalWalk(tree or folder, [] if skipped is None else skipped)
    return sorted(walk.images(folder))


class _LocalWalk:
    """One split's walk over local folders: what it has visited, and what it left out."""

    def __init__(self, tree: str, skipped: list):
        self.tree = os.path.realpath(tree)
        self.seen: set[str] = set()  # real paths of the folders walked and the linked files
        self.skipped = skipped

    def _inside_tree(self, real: str) -> bool:
        return real == self.tree or real.startswith(self.tree + os.sep)

    def _follow(self, path: str) -> bool:
        """Whether the link ``path`` is followed (else it is recorded as skipped)."""
        try:
            real = os.path.realpath(path, strict=True)
        except OSError as e:  # ELOOP: links in a loop; ENOENT: a dangling link
            self.skipped.append((path, e.strerror or type(e).__name__))
            return False
        if self._inside_tree(real):
            self.skipped.append((path, f"links back into {self.tree}"))
            return False
        if real in self.seen:
            self.skipped.append((path, f"{real} is listed already"))
            return False
        self.seen.add(real)
        return True

    def images(self, folder: str) -> list[str]:
        found, stack = [], [folder]
        self.seen.add(os.path.realpath(folder))
        while stack:
            directory = stack.pop()
            try:
                entries = sorted(os.scandir(directory), key=lambda e: e.name)
            except OSError as e:
                self.skipped.append((directory, e.strerror or type(e).__name__))
                continue
            for entry in entries:
                path = _join(directory, entry.name)
                if entry.is_symlink() and not self._follow(path):
                    continue
                if entry.is_dir():
                    real = os.path.realpath(path)
                    if real in self.seen and not entry.is_symlink():
                        self.skipped.append((path, f"{real} is listed already"))
                        continue
                    self.seen.add(real)
                    stack.append(path)
                elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                    found.append(path)
        return found


def _subfolders(folder: str) -> list[str]:
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(folder)]
    return sorted(n for n in names if tf.io.gfile.isdir(_join(folder, n)))


def _stable_key(path: str) -> int:
    """Order used to pick the validation fraction: stable across runs and machines."""
    return zlib.crc32(os.path.basename(path).encode())


class FolderSource(Source):
    """Images in ``root/<class_name>/...``; sorted class names give labels 0, 1, ...

    Validation images come from ``root/val`` (or ``root/validation``) next to ``root/train``,
    from ``validation_dir`` (same class names), or from ``validation_fraction`` of each class
    (picked by a hash of the file name, so the split is stable as files are added).
    """

    def __init__(
        self,
        root: str,
        *,
        validation_dir: str | None = None,
        validation_fraction: float = 0.0,
        num_classes: int | None = None,
    ):
        self.root = os.fspath(root).rstrip("/")
        self.name = self.root
        if not tf.io.gfile.isdir(self.root):
            raise FileNotFoundError(f"image folder not found: {self.root!r}")
        if not 0.0 <= validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
        self.validation_fraction = float(validation_fraction)
        self.split_dirs = self._split_dirs(validation_dir)
        if self.validation_fraction and "validation" in self.split_dirs:
            raise ValueError(
                f"validation_fraction= given but {self.root!r} already has a validation folder "
                f"({self.split_dirs['validation']!r}); use one or the other"
            )
        self.class_names = tuple(_subfolders(self.split_dirs["train"]))
        if not self.class_names:
            raise ValueError(
                f"no class folders in {self.split_dirs['train']!r} "
                "(expected <root>/<class_name>/<image files>)"
            )
        self.num_classes = len(self.class_names)
        self.check_num_classes(num_classes)
        self._examples: dict[str, list[tuple[str, int]]] = {}
        self.skipped_links: dict[str, list[tuple[str, str]]] = {}  # folder -> (link, why)

    def _split_dirs(self, validation_dir):
        subfolders = set(_subfolders(self.root))
        dirs = {"train": self.root}
        if "train" in subfolders and validation_dir is None:
            dirs["train"] = _join(self.root, "train")
            for alias in split_aliases("validation"):
                if alias in subfolders:
                    dirs["validation"] = _join(self.root, alias)
                    break
            if "test" in subfolders:
                dirs["test"] = _join(self.root, "test")
        if validation_dir is not None:
            if not tf.io.gfile.isdir(validation_dir):
                raise FileNotFoundError(f"validation folder not found: {validation_dir!r}")
            dirs["validation"] = os.fspath(validation_dir).rstrip("/")
        return dirs

    def _list_split_folder(self, folder: str) -> list[tuple[str, int]]:
        labels = {name: i for i, name in enumerate(self.class_names)}
        examples, skipped = [], []
        for name in _subfolders(folder):
            if name not in labels:
                raise ValueError(
                    f"class folder {_join(folder, name)!r} is not a class of "
                    f"{self.split_dirs['train']!r}"
                )
            images = list_images(_join(folder, name), skipped, tree=folder)
            examples += [(path, labels[name]) for path in images]
        self.skipped_links[folder] = skipped
        if skipped:
            logging.warning(
                "%s: left out %d link(s) that loop, do not resolve or lead back into the "
                "folder: %s", folder,
                len(skipped), "; ".join(f"{path} ({why})" for path, why in skipped))
        return examples

    def examples(self, split: str) -> list[tuple[str, int]]:
        """``(path, label)`` of every image of ``split``, sorted by path."""
        split = "validation" if split in split_aliases("validation") else split
        if split not in self._examples:
            self._examples[split] = self._list_split(split)
        return self._examples[split]

    def _list_split(self, split):
        if split in self.split_dirs and (split != "train" or not self.validation_fraction):
            examples = self._list_split_folder(self.split_dirs[split])
        elif split in ("train", "validation") and self.validation_fraction:
            train, validation = self._split_by_fraction(
                self._list_split_folder(self.split_dirs["train"])
            )
            examples = train if split == "train" else validation
        else:
            raise ValueError(
                f"{self.root!r} has no {split!r} split: it has {sorted(self.split_dirs)}; "
                "use root/train + root/val folders, validation_dir= or validation_fraction="
            )
        if not examples:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) for split {split!r} "
                             f"in {self.split_dirs.get(split, self.root)!r}")
        return sorted(examples)

    def _split_by_fraction(self, examples):
        by_class: dict[int, list[str]] = {}
        for path, label in examples:
            by_class.setdefault(label, []).append(path)
        train, validation = [], []
        for label, paths in by_class.items():
            paths = sorted(paths, key=lambda p: (_stable_key(p), p))
            cut = int(round(self.validation_fraction * len(paths)))
            validation += [(p, label) for p in paths[:cut]]
            train += [(p, label) for p in paths[cut:]]
        return train, validation

    def num_examples(self, split: str) -> int | None:
        return len(self.examples(split))

    def records(self, split: str, *, shuffle_files=False, input_context=None, seed=None):
        examples = self.examples(split)
        paths = [p for p, _ in examples]
        labels = [label for _, label in examples]
        items = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int32)))

        def read(items, deterministic):
            def read_image(path, label):
                return {"image": tf.io.read_file(path), "label": label, "origin": path}

            return items.map(read_image, num_parallel_calls=AUTOTUNE, deterministic=deterministic)

        return shard_and_read(
            items, len(paths), read, input_context=input_context, shuffle=shuffle_files,
            seed=seed, name=self.name,
        )
