"""Helpers shared by the task reader tests (``tests/test_tasks_*.py``): writing task files and
reading tasks back as strings and class counts."""

from __future__ import annotations

import gzip
from pathlib import Path

from dnadiff.tasks import LabeledTask, task_summary
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()
COMP = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def rc(s: str) -> str:
    return s.translate(COMP)[::-1]


def dec(ids) -> str:
    return TOK.decode(ids)


def write(path: Path, text: str, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def csv_rows(rows, header="sequence,label", sep=",") -> str:
    return header + "\n" + "".join(f"{s}{sep}{lab}\n" for s, lab in rows)


def counts(task: LabeledTask) -> dict:
    return task_summary(task)["counts"]


