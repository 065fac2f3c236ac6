"""``gue``: a GUE (DNABERT-2) task folder.

``train.csv``, ``test.csv`` and optional ``dev.csv`` (-> validation), header
``sequence,label``; the official split is kept.
"""

from __future__ import annotations

from dnadiff.tasks.base import LabeledTask, class_order, existing_dir, finish
from dnadiff.tasks.tables import read_labeled_table

HEADER = ("sequence", "label")


def load_gue(cfg: dict) -> LabeledTask:
    """A GUE task folder: train.csv, dev.csv, test.csv (``type: gue``)."""
    folder = existing_dir(cfg["path"])
    train = read_labeled_table(folder / "train.csv", ",", HEADER)
    dev_path = folder / "dev.csv"
    dev = read_labeled_table(dev_path, ",", HEADER) if dev_path.exists() else None
    test = read_labeled_table(folder / "test.csv", ",", HEADER)
    classes = class_order(train.labels)
    splits = "train/dev/test" if dev is not None else "train/test (no dev.csv)"
    return finish(cfg, classes, {"train": train, "validation": dev, "test": test},
                  f"GUE task {folder} (official {splits} split)")
