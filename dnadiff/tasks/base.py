"""What every reader shares: the task type, stratified splits (and the validation split of a
task without one), strict row encoding, finishing.

A reader gathers each split as ``Rows`` (token ids, label strings, names and where each row
came from) and hands them to ``finish``, which assigns class indices, checks classes and
lengths, subsamples (``max_per_split``) and returns a ``LabeledTask``.

Names of windows cut from a genome (``coordinates`` and ``annotation``) read
``contig:start-end(strand)`` with 0-based half-open coordinates; rows read from tables read
``file:line``; FASTA records ``file:record``.

Every problem with an input file is an ``InputFileError`` naming the file and, where there is
one, the line or record; problems with the spec itself are ``DnadiffError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnadiff.errors import InputFileError
from dnadiff.tokenizers import INVALID, DNATokenizer

TOKENIZER = DNATokenizer()
N_ID = TOKENIZER.n_id
SPLITS = ("train", "validation", "test")


def _strict_lut() -> np.ndarray:
    """The tokenizer's byte -> id table kept only for its own bases (A C G T N, either case):
    the IUPAC codes and U that it reads in genomes are INVALID in a labeled task."""
    bases = np.frombuffer((TOKENIZER.bases + TOKENIZER.bases.lower()).encode("ascii"),
                          dtype=np.uint8)
    lut = np.full(256, INVALID, dtype=np.uint8)
    lut[bases] = TOKENIZER.build_lut()[bases]
    return lut


STRICT_LUT = _strict_lut()


@dataclass
class LabeledSet:
    """Token sequences with their integer labels."""
    seqs: list[np.ndarray]   # uint8 token ids, one array per sequence
    labels: np.ndarray       # int64 class index (into LabeledTask.classes)
    names: list[str]         # per-sequence provenance, e.g. "train.csv:17" or "chr01:1000-1200(-)"

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass
class LabeledTask:
    """A labeled task: its train, validation and test sets, class names and where it came from."""
    name: str
    classes: list[str]
    train: LabeledSet
    validation: LabeledSet | None
    test: LabeledSet
    length: int | None
    source: str

    def splits(self) -> dict[str, LabeledSet]:
        """The splits that exist, in the order train, validation, test."""
        out = {"train": self.train, "validation": self.validation, "test": self.test}
        return {k: v for k, v in out.items() if v is not None}


def task_summary(task: LabeledTask) -> dict:
    """Name, classes, length, source and per-split class counts (JSON-friendly)."""
    counts = {}
    for split, ls in task.splits().items():
        n = np.bincount(ls.labels, minlength=len(task.classes))
        counts[split] = {c: int(k) for c, k in zip(task.classes, n)}
    return {"name": task.name, "classes": list(task.classes), "length": task.length,
            "source": task.source, "counts": counts}


# --------------------------------------------------------------------------------------------
# splitting


def _largest_remainder(exact: np.ndarray, total: int) -> np.ndarray:
    """Integers summing to ``total``, each within 1 of ``exact`` (which sums to ``total``)."""
    floors = np.floor(exact + 1e-9).astype(np.int64)
    rest = int(total - floors.sum())
    if rest > 0:
        order = np.argsort(-(exact - floors), kind="stable")
        floors[order[:rest]] += 1
    return floors


def stratified_split(labels, fractions, seed) -> list[np.ndarray]:
    """Split ``range(len(labels))`` into ``len(fractions)`` disjoint index arrays covering all.

    Each class is shuffled (``numpy.random.default_rng(seed)``) and divided by the largest
    remainder method, so every class's count in every part is within 1 of
    ``n_class * fraction``. Indices within a part are sorted (original order). Deterministic for
    a given seed; fractions are normalised to sum to 1.
    """
    labels = np.asarray(labels)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size == 0 or np.any(fr < 0) or not np.isfinite(fr).all() \
            or fr.sum() <= 0:
        raise ValueError(f"fractions must be non-negative numbers with a positive sum, "
                         f"got {list(fractions)}")
    fr = fr / fr.sum()
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        counts = _largest_remainder(idx.size * fr, idx.size)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for k in range(fr.size):
            parts[k].append(idx[bounds[k]:bounds[k + 1]])
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64)
            for p in parts]


def split_validation(labeled: LabeledSet, fraction: float, seed: int):
    """A stratified ``fraction`` of ``labeled`` as validation, the rest as train."""
    tr, va = stratified_split(labeled.labels, [1.0 - fraction, fraction], seed)

    def take(idx):
        return LabeledSet([labeled.seqs[i] for i in idx], labeled.labels[idx],
                          [labeled.names[i] for i in idx])
    return take(tr), take(va)


def _subsample(labels: np.ndarray, n_max: int, seed) -> np.ndarray:
    """Sorted indices of a stratified random subset of at most ``n_max`` items (all if fewer),
    keeping at least one of each class when ``n_max`` allows it."""
    n = len(labels)
    if n <= n_max:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = _largest_remainder(counts * n_max / n, n_max)
    for i in np.flatnonzero(quota == 0):
        j = int(np.argmax(quota))
        if quota[j] > 1:
            quota[j] -= 1
            quota[i] += 1
    picks = [rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False)
             for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


# --------------------------------------------------------------------------------------------
# rows as read, before class indices are assigned


class Rows:
    """One split as read: token ids, label strings, names, and where each row came from."""

    def __init__(self, path):
        self.path = Path(path)        # the file (or folder) split-level errors name
        self.seqs: list[np.ndarray] = []
        self.labels: list[str] = []
        self.names: list[str] = []
        self.origins: list[tuple[Path, str]] = []   # (file, "line 17" / "record 'x'")

    def add(self, ids, label, name, path, where) -> None:
        """Append one row, with the file and place (``where``) that errors will name."""
        self.seqs.append(ids)
        self.labels.append(label)
        self.names.append(name)
        self.origins.append((Path(path), where))

    def take(self, idx) -> Rows:
        """The rows at indices ``idx``, in that order, as a new ``Rows``."""
        out = Rows(self.path)
        for i in idx:
            out.add(self.seqs[i], self.labels[i], self.names[i], *self.origins[i])
        return out

    def __len__(self) -> int:
        return len(self.seqs)


def encode(raw: bytes, path, where: str | None) -> np.ndarray:
    """Strictly encode sequence bytes: only A C G T N (any case); errors name file and place."""
    prefix = f"{where}: " if where else ""
    if not raw:
        raise InputFileError(path, f"{prefix}empty sequence")
    ids = STRICT_LUT[np.frombuffer(raw, dtype=np.uint8)]
    bad = np.flatnonzero(ids == INVALID)
    if bad.size:
        pos = int(bad[0])
        ch = chr(raw[pos])
        raise InputFileError(
            path, f"{prefix}character {ch!r} at position {pos + 1} is not A, C, G, T or N "
                  f"({bad.size} invalid character(s) in this sequence)")
    return ids


def reverse_complement(ids: np.ndarray) -> np.ndarray:
    """The reverse complement of token ids."""
    return TOKENIZER.reverse_complement(ids).astype(np.uint8)


def class_order(labels) -> list[str]:
    """Distinct labels sorted, numerically when all are integers."""
    uniq = set(labels)
    if uniq and all(re.fullmatch(r"[+-]?\d+", u) for u in uniq):
        return sorted(uniq, key=lambda u: (int(u), u))
    return sorted(uniq)


def existing_dir(path) -> Path:
    """``path`` as a folder that exists, or a one-line error."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputFileError(path, "folder not found")
    if not path.is_dir():
        raise InputFileError(path, "is not a folder")
    return path


def int_field(path, line, name, value) -> int:
    """A table field read as an integer, or a one-line error naming the line."""
    try:
        return int(value)
    except ValueError:
        raise InputFileError(path, f"line {line}: {name} {value!r} is not an integer") from None


# --------------------------------------------------------------------------------------------
# finishing: class indices, checks, subsampling


def _class_indices(classes: list[str], present: dict[str, Rows],
                   class_files: dict | None) -> dict[str, np.ndarray]:
    """Each split's labels as class indices; every class must occur in every split."""
    index = {c: i for i, c in enumerate(classes)}
    labels: dict[str, np.ndarray] = {}
    for split, rows in present.items():
        lab = np.empty(len(rows), dtype=np.int64)
        for i, label in enumerate(rows.labels):
            if label not in index:
                path, where = rows.origins[i]
                raise InputFileError(path, f"{where}: unknown label {label!r} "
                                           f"(train has: {', '.join(classes)})")
            lab[i] = index[label]
        counts = np.bincount(lab, minlength=len(classes))
        for c, n in zip(classes, counts):
            if n == 0:
                files = class_files or {}
                path = files.get((split, c)) or files.get(c) or rows.path
                raise InputFileError(path, f"class {c!r} has no examples in {split}")
        labels[split] = lab
    return labels


def _check_one_length(present: dict[str, Rows]) -> None:
    first = None
    for rows in present.values():
        for seq, name, (path, where) in zip(rows.seqs, rows.names, rows.origins):
            if first is None:
                first = (len(seq), name)
            elif len(seq) != first[0]:
                raise InputFileError(
                    path, f"{where}: sequence length {len(seq)} differs from {first[0]} "
                          f"(the length of the first sequence, {first[1]}); set "
                          "fixed_length: false to allow mixed lengths")


def finish(cfg: dict, classes: list[str], splits: dict[str, Rows | None], source: str,
           class_files: dict | None = None,
           classes_file: Path | None = None) -> LabeledTask:
    """Check the rows of all splits and turn them into a ``LabeledTask``."""
    present = {k: v for k, v in splits.items() if v is not None}
    if len(classes) < 2:
        path = classes_file or present["train"].path
        shown = f"only class {classes[0]!r}" if classes else "no classes"
        raise InputFileError(path, f"{shown}: a classification task needs at least two classes")
    labels = _class_indices(classes, present, class_files)
    if cfg["fixed_length"]:
        _check_one_length(present)
    out: dict[str, LabeledSet] = {}
    for k, (split, rows) in enumerate(present.items()):
        lab = labels[split]
        idx = np.arange(len(rows))
        if cfg["max_per_split"] is not None:
            idx = _subsample(lab, cfg["max_per_split"], [cfg["seed"], k, 1])
        out[split] = LabeledSet(seqs=[rows.seqs[i] for i in idx], labels=lab[idx].copy(),
                                names=[rows.names[i] for i in idx])
    lengths = {len(s) for ls in out.values() for s in ls.seqs}
    if cfg["max_per_split"] is not None:
        source += f"; subsampled to at most {cfg['max_per_split']} per split (seed {cfg['seed']})"
    return LabeledTask(name=cfg["name"], classes=list(classes), train=out["train"],
                         validation=out.get("validation"), test=out["test"],
                         length=lengths.pop() if len(lengths) == 1 else None,
                         source=" ".join(source.split()))


def split_rows(cfg: dict, rows: Rows) -> dict[str, Rows]:
    """Our own stratified train/validation/test split of one set of rows."""
    idx = stratified_split(rows.labels, cfg["split_fractions"], cfg["seed"])
    return {s: rows.take(i) for s, i in zip(SPLITS, idx)}


def split_note(cfg: dict) -> str:
    """How the splits of a task were made, in words (for its summary)."""
    fr = "/".join(f"{f:g}" for f in cfg["split_fractions"])
    return (f"non-standard split (stratified {fr} train/validation/test by label, "
            f"seed {cfg['seed']})")
