"""``fasta_pair``: two FASTA files of ``positive`` and ``negative`` examples.

Classes ``negative`` and ``positive``, split train/validation/test here (non-standard).
Duplicate or empty record names are fine; a row is named ``file:record``.
"""

from __future__ import annotations

from pathlib import Path

from dnadiff.data.fasta import iter_fasta_raw
from dnadiff.errors import InputFileError
from dnadiff.tasks.base import LabeledTask, Rows, encode, finish, split_note, split_rows


def _read_fasta_rows(path, label: str, rows: Rows) -> None:
    path = Path(path)
    n = 0
    for name, seq, line in iter_fasta_raw(path, allow_unnamed=True):
        where = f"line {line} (record {name!r})"
        ids = encode(seq, path, where)
        rows.add(ids, label, f"{path.name}:{name or 'line' + str(line)}", path, where)
        n += 1
    if not n:
        raise InputFileError(path, "is empty: no sequence records")


def load_fasta_pair(cfg: dict) -> LabeledTask:
    """A positive and a negative FASTA, split here (``type: fasta_pair``)."""
    pos, neg = Path(cfg["positive"]).expanduser(), Path(cfg["negative"]).expanduser()
    rows = Rows(pos)
    _read_fasta_rows(neg, "negative", rows)
    _read_fasta_rows(pos, "positive", rows)
    return finish(cfg, ["negative", "positive"], split_rows(cfg, rows),
                  f"FASTA pair positive={pos} negative={neg}; {split_note(cfg)}",
                  class_files={"positive": pos, "negative": neg})
