"""``genomic_benchmarks``: Genomic Benchmarks sequences.

Either the official folder layout ``<path>/{train,test}/<class>/*.txt`` (one sequence per
file; the official train/test split is kept) or one TSV file with header ``seq<TAB>label`` (a
single split, which is split train/validation/test here: reported as non-standard).
"""

from __future__ import annotations

from pathlib import Path

from dnadiff.errors import InputFileError
from dnadiff.tasks.base import (
    LabeledTask,
    Rows,
    class_order,
    encode,
    finish,
    split_note,
    split_rows,
)
from dnadiff.tasks.tables import read_labeled_table


def _file_sort_key(p: Path):
    return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)


def _read_seq_folder(split_dir: Path) -> tuple[Rows, list[str]]:
    """``<split>/<class>/*.txt`` -> rows and the class folder names."""
    if not split_dir.is_dir():
        raise InputFileError(split_dir, "folder not found (expected <class>/*.txt inside)")
    rows = Rows(split_dir)
    class_dirs = sorted(d for d in split_dir.iterdir() if d.is_dir())
    if not class_dirs:
        raise InputFileError(split_dir, "has no class subfolders (expected <class>/*.txt)")
    for d in class_dirs:
        for f in sorted(d.glob("*.txt"), key=_file_sort_key):
            raw = f.read_bytes().translate(None, b" \t\r\n")
            rows.add(encode(raw, f, "line 1"), d.name, f"{split_dir.name}/{d.name}/{f.name}",
                     f, "line 1")
    return rows, [d.name for d in class_dirs]


def load_genomic_benchmarks(cfg: dict) -> LabeledTask:
    """Genomic Benchmarks sequence folders or one TSV (``type: genomic_benchmarks``)."""
    path = Path(cfg["path"]).expanduser()
    if path.is_dir():
        train, classes = _read_seq_folder(path / "train")
        test, test_classes = _read_seq_folder(path / "test")
        for c in test_classes:
            if c not in classes:
                raise InputFileError(path / "test" / c, f"class {c!r} is not a class of train "
                                                        f"(train has: {', '.join(classes)})")
        classes = class_order(classes)
        return finish(cfg, classes, {"train": train, "validation": None, "test": test},
                      f"Genomic Benchmarks sequence folders {path} (official train/test split)",
                      class_files={(s, c): path / s / c for s in ("train", "test")
                                   for c in classes},
                      classes_file=path / "train")
    rows = read_labeled_table(path, "\t", ("seq", "label"))
    return finish(cfg, class_order(rows.labels), split_rows(cfg, rows),
                  f"Genomic Benchmarks TSV {path} (one split only); {split_note(cfg)}",
                  classes_file=path)
