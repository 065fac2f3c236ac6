"""Labeled DNA classification benchmarks read into one in-memory type.

``load_task(spec)`` reads a task described by a dict and returns a ``BenchmarkTask``: class names
plus train / validation / test ``LabeledSet`` s of uint8 token ids (A0 C1 G2 T3 N4, see
``dnadiff.tokenizers``). Supported ``spec["type"]`` values:

``gue``
    A GUE (DNABERT-2) task folder: ``train.csv``, ``test.csv`` and optional ``dev.csv``
    (-> validation), header ``sequence,label``.
``genomic_benchmarks``
    Genomic Benchmarks sequences: the official folder layout ``<path>/{train,test}/<class>/*.txt``
    (one sequence per file) or one TSV file with header ``seq<TAB>label`` (a single split, which
    is split train/validation/test here: reported as non-standard).
``coordinates``
    The official Genomic Benchmarks interval layout ``<path>/{train,test}/<class>.csv[.gz]``
    (header ``id,region,start,end,strand``) cut from a ``reference`` FASTA.
    **Convention: ``start`` is 0-based and inclusive, ``end`` is exclusive (0-based half-open,
    as in BED)**: the interval is ``contig[start:end]`` in Python terms, and ``-`` strand
    intervals are reverse-complemented. This is what the official loader does
    (``genomic_benchmarks/loc2seq/with_biopython.py``, ``_fill_seq_column``: it reads the
    reference into a dict of strings and takes ``fasta[region][start:end]``, then reverse
    complements when ``strand == '-'``). Region names map onto contigs with or without the
    ``chr`` prefix (``1`` <-> ``chr1``), and ``M``/``MT``/``chrM``/``chrMT`` onto each other.
``fasta_pair``
    Two FASTA files of ``positive`` and ``negative`` examples (classes ``negative``,
    ``positive``), split train/validation/test here (non-standard).
``annotation``
    Windows cut from a genome FASTA with a GFF3 (as written by ``dnadiff.data.reference``) or a
    genes TSV (``chrom feature start end strand locus_tag gene``, 1-based inclusive), split by
    contig: ``kind: promoter`` (the ``length`` bases upstream of each gene vs random windows
    overlapping no promoter) or ``kind: coding`` (windows inside CDS vs windows overlapping no
    annotated feature).

Names of windows cut from a genome (``coordinates`` and ``annotation``) read
``contig:start-end(strand)`` with 0-based half-open coordinates; rows read from tables read
``file:line``; FASTA records ``file:record``.

Spec keys common to all types: ``name``, ``type``, ``seed`` (0), ``max_per_split`` (None: a
deterministic stratified subsample of each split to at most this many sequences),
``fixed_length`` (True: all sequences must share one length), ``split_fractions``
([0.8, 0.1, 0.1], used only where no split is given). Unknown keys are refused (typos).

Every problem with an input file is an ``InputFileError`` naming the file and, where there is
one, the line or record; problems with the spec itself are ``DnadiffError``.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnadiff.data.fasta import _iter_fasta_raw, open_binary, read_sequences
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.tokenizers import INVALID, IUPAC_AMBIGUOUS, DNATokenizer

TOKENIZER = DNATokenizer()
N_ID = TOKENIZER.n_id
SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def _strict_lut() -> np.ndarray:
    """Byte -> id table accepting only A C G T N (either case); everything else is INVALID."""
    lut = TOKENIZER.build_lut().copy()
    for ch in set(IUPAC_AMBIGUOUS) - {"N"} | {"U"}:
        lut[ord(ch)] = lut[ord(ch.lower())] = INVALID
    return lut


STRICT_LUT = _strict_lut()


@dataclass
class LabeledSet:
    seqs: list[np.ndarray]   # uint8 token ids, one array per sequence
    labels: np.ndarray       # int64 class index (into BenchmarkTask.classes)
    names: list[str]         # per-sequence provenance, e.g. "train.csv:17" or "chr01:1000-1200(-)"

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass
class BenchmarkTask:
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


class _Rows:
    """One split as read: token ids, label strings, names, and where each row came from."""

    def __init__(self, path):
        self.path = Path(path)        # the file (or folder) split-level errors name
        self.seqs: list[np.ndarray] = []
        self.labels: list[str] = []
        self.names: list[str] = []
        self.origins: list[tuple[Path, str]] = []   # (file, "line 17" / "record 'x'")

    def add(self, ids, label, name, path, where) -> None:
        self.seqs.append(ids)
        self.labels.append(label)
        self.names.append(name)
        self.origins.append((Path(path), where))

    def take(self, idx) -> _Rows:
        out = _Rows(self.path)
        for i in idx:
            out.add(self.seqs[i], self.labels[i], self.names[i], *self.origins[i])
        return out

    def __len__(self) -> int:
        return len(self.seqs)


def _encode(raw: bytes, path, where: str | None) -> np.ndarray:
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


def _rc(ids: np.ndarray) -> np.ndarray:
    return TOKENIZER.reverse_complement(ids).astype(np.uint8)


def _class_order(labels) -> list[str]:
    """Distinct labels sorted, numerically when all are integers."""
    uniq = set(labels)
    if uniq and all(re.fullmatch(r"[+-]?\d+", u) for u in uniq):
        return sorted(uniq, key=lambda u: (int(u), u))
    return sorted(uniq)


# --------------------------------------------------------------------------------------------
# text tables


def _iter_table(path, delimiter: str, header: tuple[str, ...]):
    """Yield ``(line_number, fields)`` for each data row of a CSV/TSV (gzip ok) after checking
    the header. Blank lines are skipped."""
    path = Path(path)
    expected = delimiter.join(header)
    fh = open_binary(path)
    text = io.TextIOWrapper(fh, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter)
    seen_header = False
    n_rows = 0
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if not seen_header:
                got = [c.strip() for c in row]
                if got != list(header):
                    shown = delimiter.join(row).replace("\t", "<TAB>")
                    raise InputFileError(
                        path, f"line {line}: header is {shown[:80]!r}, expected "
                              f"{expected.replace(chr(9), '<TAB>')!r}")
                seen_header = True
                continue
            if len(row) != len(header):
                raise InputFileError(
                    path, f"line {line}: expected {len(header)} fields "
                          f"({', '.join(header)}), found {len(row)}")
            n_rows += 1
            yield line, [c.strip() for c in row]
    except UnicodeDecodeError:
        raise InputFileError(path, f"line {reader.line_num + 1}: not UTF-8 text") from None
    except csv.Error as exc:
        raise InputFileError(path, f"line {reader.line_num}: malformed table ({exc})") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    finally:
        text.close()
    if not seen_header:
        raise InputFileError(path, f"is empty (expected a header line {expected!r})"
                             .replace("\t", "<TAB>"))
    if not n_rows:
        raise InputFileError(path, "has no data rows after the header")


def _read_labeled_table(path, delimiter: str, header: tuple[str, str]) -> _Rows:
    """A ``sequence<delim>label`` table -> rows named ``file:line``."""
    path = Path(path)
    rows = _Rows(path)
    for line, (seq, label) in _iter_table(path, delimiter, header):
        where = f"line {line}"
        if not label:
            raise InputFileError(path, f"{where}: empty label")
        ids = _encode(seq.encode("utf-8", errors="replace"), path, where)
        rows.add(ids, label, f"{path.name}:{line}", path, where)
    return rows


# --------------------------------------------------------------------------------------------
# FASTA records of a benchmark file (duplicate or empty headers are fine here)


def _iter_fasta_records(path):
    """Yield ``(record name, sequence bytes, header line number)``; the name is the header's
    first word (empty when the header has none)."""
    return _iter_fasta_raw(Path(path), allow_unnamed=True)


def _read_fasta_rows(path, label: str, rows: _Rows) -> None:
    path = Path(path)
    n = 0
    for name, seq, line in _iter_fasta_records(path):
        where = f"line {line} (record {name!r})"
        ids = _encode(seq, path, where)
        rows.add(ids, label, f"{path.name}:{name or 'line' + str(line)}", path, where)
        n += 1
    if not n:
        raise InputFileError(path, "is empty: no sequence records")


# --------------------------------------------------------------------------------------------
# finishing: class indices, checks, subsampling


def _finish(cfg: dict, classes: list[str], splits: dict[str, _Rows | None], source: str,
            class_files: dict | None = None,
            classes_file: Path | None = None) -> BenchmarkTask:
    """Check the rows of all splits and turn them into a ``BenchmarkTask``."""
    present = {k: v for k, v in splits.items() if v is not None}
    if len(classes) < 2:
        path = classes_file or present["train"].path
        shown = f"only class {classes[0]!r}" if classes else "no classes"
        raise InputFileError(path, f"{shown}: a classification task needs at least two classes")
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
    if cfg["fixed_length"]:
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
    return BenchmarkTask(name=cfg["name"], classes=list(classes), train=out["train"],
                         validation=out.get("validation"), test=out["test"],
                         length=lengths.pop() if len(lengths) == 1 else None,
                         source=" ".join(source.split()))


def _split_rows(cfg: dict, rows: _Rows, classes: list[str]) -> dict[str, _Rows | None]:
    """Our own stratified train/validation/test split of one set of rows."""
    fr = cfg["split_fractions"]
    idx = stratified_split(rows.labels, fr, cfg["seed"])
    out: dict[str, _Rows | None] = {s: rows.take(i) for s, i in zip(SPLITS, idx)}
    if fr[1] == 0:
        out["validation"] = None
    return out


def _split_note(cfg: dict) -> str:
    fr = "/".join(f"{f:g}" for f in cfg["split_fractions"])
    return (f"non-standard split (stratified {fr} train/validation/test by label, "
            f"seed {cfg['seed']})")


# --------------------------------------------------------------------------------------------
# readers per type


def _load_gue(cfg: dict) -> BenchmarkTask:
    folder = _existing_dir(cfg["path"])
    train = _read_labeled_table(folder / "train.csv", ",", ("sequence", "label"))
    dev_path = folder / "dev.csv"
    dev = _read_labeled_table(dev_path, ",", ("sequence", "label")) if dev_path.exists() else None
    test = _read_labeled_table(folder / "test.csv", ",", ("sequence", "label"))
    classes = _class_order(train.labels)
    splits = "train/dev/test" if dev is not None else "train/test (no dev.csv)"
    return _finish(cfg, classes, {"train": train, "validation": dev, "test": test},
                   f"GUE task {folder} (official {splits} split)")


def _file_sort_key(p: Path):
    return (0, int(p.stem), p.name) if p.stem.isdigit() else (1, 0, p.name)


def _read_seq_folder(split_dir: Path) -> tuple[_Rows, list[str]]:
    """``<split>/<class>/*.txt`` -> rows and the class folder names."""
    if not split_dir.is_dir():
        raise InputFileError(split_dir, "folder not found (expected <class>/*.txt inside)")
    rows = _Rows(split_dir)
    class_dirs = sorted(d for d in split_dir.iterdir() if d.is_dir())
    if not class_dirs:
        raise InputFileError(split_dir, "has no class subfolders (expected <class>/*.txt)")
    for d in class_dirs:
        for f in sorted(d.glob("*.txt"), key=_file_sort_key):
            raw = f.read_bytes().translate(None, b" \t\r\n")
            rows.add(_encode(raw, f, "line 1"), d.name, f"{split_dir.name}/{d.name}/{f.name}",
                     f, "line 1")
    return rows, [d.name for d in class_dirs]


def _load_genomic_benchmarks(cfg: dict) -> BenchmarkTask:
    path = Path(cfg["path"]).expanduser()
    if path.is_dir():
        train, classes = _read_seq_folder(path / "train")
        test, test_classes = _read_seq_folder(path / "test")
        for c in test_classes:
            if c not in classes:
                raise InputFileError(path / "test" / c, f"class {c!r} is not a class of train "
                                                        f"(train has: {', '.join(classes)})")
        classes = _class_order(classes)
        return _finish(cfg, classes, {"train": train, "validation": None, "test": test},
                       f"Genomic Benchmarks sequence folders {path} (official train/test split)",
                       class_files={(s, c): path / s / c for s in ("train", "test")
                                    for c in classes},
                       classes_file=path / "train")
    rows = _read_labeled_table(path, "\t", ("seq", "label"))
    classes = _class_order(rows.labels)
    return _finish(cfg, classes, _split_rows(cfg, rows, classes),
                   f"Genomic Benchmarks TSV {path} (one split only); {_split_note(cfg)}",
                   classes_file=path)


def _load_fasta_pair(cfg: dict) -> BenchmarkTask:
    pos, neg = Path(cfg["positive"]).expanduser(), Path(cfg["negative"]).expanduser()
    rows = _Rows(pos)
    _read_fasta_rows(neg, "negative", rows)
    _read_fasta_rows(pos, "positive", rows)
    classes = ["negative", "positive"]
    return _finish(cfg, classes, _split_rows(cfg, rows, classes),
                   f"FASTA pair positive={pos} negative={neg}; {_split_note(cfg)}",
                   class_files={"positive": pos, "negative": neg})


# ---- coordinates ---------------------------------------------------------------------------


def _contig_aliases(region: str) -> list[str]:
    """Names a region may have in a reference: itself, without/with 'chr', mito synonyms."""
    base = region[3:] if region[:3].lower() == "chr" else region
    names = [region, base, "chr" + base]
    if base.upper() in ("M", "MT"):
        names += ["chrM", "chrMT", "MT", "M"]
    return list(dict.fromkeys(names))


def _resolve_contig(region: str, contigs) -> str | None:
    for name in _contig_aliases(region):
        if name in contigs:
            return name
    return None


def _is_bgzf(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(18)
    return (len(head) >= 16 and head[:2] == b"\x1f\x8b" and head[3] & 4 != 0
            and head[12:14] == b"BC")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _writable_dir(folder: Path) -> bool:
    """Whether index files may be written into ``folder``: writable for us *and* by its mode
    bits (root may write into an r-x folder, but a folder marked read-only is left alone)."""
    try:
        return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)
    except OSError:
        return False


class _Reference:
    """Contig lengths and slicing of a reference FASTA: pyfaidx for plain or bgzip files, the
    needed contigs in memory (read with ``read_sequences``) for plain gzip.

    pyfaidx's index (``.fai``, plus ``.gzi`` for bgzip) is written next to the FASTA when that
    folder is writable (as ``samtools faidx`` does), else into a temporary folder."""

    def __init__(self, path: Path, wanted_regions):
        self.path = path
        self._tmp = None
        self._fa = None
        self._mem: dict[str, bytes] = {}
        if not path.exists():
            raise InputFileError(path, "file not found")
        if path.is_dir():
            raise InputFileError(path, "is a directory, expected a FASTA file")
        if _is_gzip(path) and not _is_bgzf(path):
            wanted = {a for r in wanted_regions for a in _contig_aliases(r)}
            self.lengths = {}
            for name, raw, _ in read_sequences(path):
                self.lengths[name] = len(raw)
                if name in wanted:
                    self._mem[name] = raw
            self.kind = "gzip, read into memory"
        else:
            self._open_faidx(path)
            self.kind = "bgzip, pyfaidx" if _is_bgzf(path) else "pyfaidx"

    def _open_faidx(self, path: Path) -> None:
        import pyfaidx

        target = path
        index_files = [Path(str(path) + ".fai")]
        if _is_bgzf(path):
            index_files.append(Path(str(path) + ".gzi"))
        if not all(p.exists() for p in index_files) and not _writable_dir(path.parent):
            # read-only folder: index a link to the file in a temporary folder (rebuilt per run)
            self._tmp = tempfile.TemporaryDirectory(prefix="dnadiff-faidx-")
            target = Path(self._tmp.name) / path.name
            target.symlink_to(path.resolve())
        try:
            self._fa = pyfaidx.Fasta(str(target), as_raw=True, sequence_always_upper=False)
            self.lengths = {rec.name: len(rec) for rec in self._fa}
        except (pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat,
                pyfaidx.FetchError, ValueError, KeyError, OSError, RuntimeError) as exc:
            self.close()
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputFileError(path, f"cannot be indexed as FASTA by pyfaidx ({msg})") from None
        if not self.lengths:
            self.close()
            raise InputFileError(path, "is empty: no sequence records")

    def fetch(self, contig: str, start: int, end: int) -> bytes:
        if self._fa is not None:
            return self._fa[contig][start:end].encode("ascii", errors="replace")
        return self._mem[contig][start:end]

    def close(self) -> None:
        if self._fa is not None:
            self._fa.close()
            self._fa = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _class_csvs(split_dir: Path) -> dict[str, Path]:
    if not split_dir.is_dir():
        raise InputFileError(split_dir, "folder not found (expected <class>.csv[.gz] inside)")
    out: dict[str, Path] = {}
    for f in sorted(split_dir.iterdir()):
        if f.is_file() and (f.name.endswith(".csv") or f.name.endswith(".csv.gz")):
            cls = f.name[:-len(".csv.gz")] if f.name.endswith(".gz") else f.name[:-len(".csv")]
            if cls in out:
                raise InputFileError(f, f"class {cls!r} is given twice (also {out[cls].name})")
            out[cls] = f
    if not out:
        raise InputFileError(split_dir, "has no <class>.csv or <class>.csv.gz files")
    return out


def _int_field(path, line, name, value) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputFileError(path, f"line {line}: {name} {value!r} is not an integer") from None


def _load_coordinates(cfg: dict) -> BenchmarkTask:
    folder = _existing_dir(cfg["path"])
    reference = Path(cfg["reference"]).expanduser()
    files = {s: _class_csvs(folder / s) for s in ("train", "test")}
    classes = _class_order(files["train"])
    for cls, f in files["test"].items():
        if cls not in files["train"]:
            raise InputFileError(f, f"class {cls!r} is not a class of train "
                                    f"(train has: {', '.join(classes)})")
    intervals = {s: [] for s in files}
    for split, by_class in files.items():
        for cls, f in by_class.items():
            for line, (_id, region, start, end, strand) in _iter_table(
                    f, ",", ("id", "region", "start", "end", "strand")):
                start = _int_field(f, line, "start", start)
                end = _int_field(f, line, "end", end)
                if start < 0 or end <= start:
                    raise InputFileError(f, f"line {line}: bad interval start={start} end={end} "
                                            "(0-based half-open: need 0 <= start < end)")
                if strand not in ("+", "-"):
                    raise InputFileError(f, f"line {line}: strand {strand!r} is not '+' or '-'")
                intervals[split].append((cls, f, line, region, start, end, strand))
    regions = {iv[3] for ivs in intervals.values() for iv in ivs}
    ref = _Reference(reference, regions)
    try:
        splits: dict[str, _Rows | None] = {"validation": None}
        for split, ivs in intervals.items():
            rows = _Rows(folder / split)
            for cls, f, line, region, start, end, strand in ivs:
                contig = _resolve_contig(region, ref.lengths)
                if contig is None:
                    known = ", ".join(list(ref.lengths)[:8])
                    more = ", ..." if len(ref.lengths) > 8 else ""
                    raise InputFileError(f, f"line {line}: region {region!r} is not a contig of "
                                            f"{reference} (contigs: {known}{more})")
                if end > ref.lengths[contig]:
                    raise InputFileError(
                        f, f"line {line}: interval {region}:{start}-{end} runs past the end of "
                           f"contig {contig!r} of {reference} (length {ref.lengths[contig]})")
                where = f"line {line} ({region}:{start}-{end}{strand})"
                ids = _encode(ref.fetch(contig, start, end), f, where)
                if strand == "-":
                    ids = _rc(ids)
                rows.add(ids, cls, f"{region}:{start}-{end}({strand})", f, where)
            splits[split] = rows
        kind = ref.kind
    finally:
        ref.close()
    return _finish(cfg, classes, {s: splits[s] for s in SPLITS},
                   f"Genomic Benchmarks coordinates {folder} on {reference} ({kind}; 0-based "
                   "half-open starts; official train/test split)",
                   class_files={(s, c): f for s in files for c, f in files[s].items()},
                   classes_file=folder / "train")


# ---- annotation ----------------------------------------------------------------------------

_NOT_FEATURES = {"region", "chromosome", "source", "contig", "supercontig", "databank_entry"}


@dataclass
class _Feature:
    contig: str
    ftype: str
    start: int      # 0-based
    end: int        # exclusive
    strand: str
    key: str        # features sharing a key are parts of one (e.g. a spliced CDS)
    line: int


def _read_features(path: Path, lengths: dict[str, int], fasta: Path) -> list[_Feature]:
    """GFF3 or genes TSV (detected from the first non-blank line) -> features."""
    feats: list[_Feature] = []
    fmt = None
    cols: dict[str, int] = {}
    try:
        with open_binary(path) as fh:
            for line_no, raw in enumerate(fh, start=1):
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line.strip():
                    continue
                if fmt is None:
                    head = [c.strip() for c in line.split("\t")]
                    if line.startswith("##gff-version"):
                        fmt = "gff3"
                        continue
                    if head[:5] == ["chrom", "feature", "start", "end", "strand"]:
                        fmt = "tsv"
                        cols = {c: i for i, c in enumerate(head)}
                        continue
                    if line.startswith("#"):
                        continue
                    if len(head) != 9:
                        raise InputFileError(
                            path, f"line {line_no}: neither GFF3 (9 tab-separated columns) nor "
                                  "a genes TSV (header chrom, feature, start, end, strand, ...)")
                    fmt = "gff3"
                if fmt == "gff3":
                    if line.startswith("##FASTA"):
                        break
                    if line.startswith("#"):
                        continue
                    f = line.split("\t")
                    if len(f) != 9:
                        raise InputFileError(path, f"line {line_no}: expected 9 tab-separated "
                                                   f"GFF3 columns, found {len(f)}")
                    attrs = dict(a.split("=", 1) for a in f[8].split(";") if "=" in a)
                    key = attrs.get("ID") or f"line{line_no}"
                    contig, ftype, start, end, strand = f[0], f[2], f[3], f[4], f[6]
                else:
                    f = line.split("\t")
                    if len(f) < len(cols) - 2 or len(f) < 5:
                        raise InputFileError(path, f"line {line_no}: expected {len(cols)} "
                                                   f"tab-separated columns, found {len(f)}")
                    contig, ftype, start, end, strand = (f[cols[c]].strip() for c in
                                                         ("chrom", "feature", "start", "end",
                                                          "strand"))
                    tag = f[cols["locus_tag"]].strip() if "locus_tag" in cols and \
                        cols["locus_tag"] < len(f) else ""
                    key = f"{ftype}:{tag}" if tag else f"line{line_no}"
                start = _int_field(path, line_no, "start", start)
                end = _int_field(path, line_no, "end", end)
                if start < 1 or end < start:
                    raise InputFileError(path, f"line {line_no}: bad coordinates start={start} "
                                               f"end={end} (1-based inclusive)")
                if strand not in ("+", "-", "."):
                    raise InputFileError(path, f"line {line_no}: strand {strand!r} is not "
                                               "'+', '-' or '.'")
                if contig not in lengths:
                    raise InputFileError(path, f"line {line_no}: contig {contig!r} is not in "
                                               f"{fasta}")
                if end > lengths[contig]:
                    raise InputFileError(path, f"line {line_no}: end {end} is past the end of "
                                               f"{contig} (length {lengths[contig]})")
                feats.append(_Feature(contig, ftype, start - 1, end, strand, key, line_no))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    if fmt is None:
        raise InputFileError(path, "is empty: no GFF3 or genes TSV lines")
    if not feats:
        raise InputFileError(path, "has no features")
    return feats


def _group(feats: list[_Feature]) -> list[_Feature]:
    """Merge the parts of each feature (same key and contig) into one span."""
    out: dict[tuple[str, str], _Feature] = {}
    for f in feats:
        g = out.get((f.key, f.contig))
        if g is None:
            out[(f.key, f.contig)] = _Feature(f.contig, f.ftype, f.start, f.end, f.strand,
                                              f.key, f.line)
        else:
            g.start, g.end = min(g.start, f.start), max(g.end, f.end)
    return list(out.values())


class _Mask:
    """Sorted merged intervals per contig, for 'does [a, b) overlap any?' queries."""

    def __init__(self, intervals):
        by: dict[str, list[tuple[int, int]]] = {}
        for contig, a, b in intervals:
            by.setdefault(contig, []).append((a, b))
        self.starts: dict[str, np.ndarray] = {}
        self.ends: dict[str, np.ndarray] = {}
        for contig, ivs in by.items():
            ivs.sort()
            merged: list[list[int]] = []
            for a, b in ivs:
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            arr = np.asarray(merged, dtype=np.int64)
            self.starts[contig], self.ends[contig] = arr[:, 0], arr[:, 1]

    def overlaps(self, contig: str, a: int, b: int) -> bool:
        starts = self.starts.get(contig)
        if starts is None:
            return False
        i = int(np.searchsorted(starts, b, side="left")) - 1
        return i >= 0 and int(self.ends[contig][i]) > a


def _sample_windows(rng, regions, length: int, n: int, accept) -> list[tuple]:
    """Up to ``n`` distinct random windows ``(contig, start, end, strand)`` lying inside
    ``regions`` ``[(contig, a, b), ...]`` (chosen in proportion to the places they offer) and
    passing ``accept(contig, start, end)``; random strand."""
    regions = [r for r in regions if r[2] - r[1] >= length]
    if not regions or n <= 0:
        return []
    places = np.array([b - a - length + 1 for _, a, b in regions], dtype=np.float64)
    p = places / places.sum()
    out: list[tuple] = []
    seen: set[tuple[str, int]] = set()
    tries, max_tries = 0, 50 * n + 10_000
    while len(out) < n and tries < max_tries:
        batch = min(4096, max_tries - tries)
        which = rng.choice(len(regions), size=batch, p=p)
        offs = rng.random(batch)
        strands = rng.integers(0, 2, size=batch)
        for r, u, s in zip(which, offs, strands):
            tries += 1
            contig, a, _ = regions[r]
            start = a + int(u * places[r])
            if (contig, start) in seen or not accept(contig, start, start + length):
                continue
            seen.add((contig, start))
            out.append((contig, start, start + length, "+-"[s]))
            if len(out) == n:
                break
    return out


def _load_annotation(cfg: dict) -> BenchmarkTask:
    fasta = Path(cfg["fasta"]).expanduser()
    ann = Path(cfg["annotation"]).expanduser()
    kind, length, seed = cfg["kind"], cfg["length"], cfg["seed"]
    genome = {name: ids for name, _, ids in read_sequences(fasta)}
    lengths = {k: len(v) for k, v in genome.items()}
    feats = _read_features(ann, lengths, fasta)

    def contigs_of(key: str) -> list[str]:
        out = []
        for c in cfg[key]:
            name = _resolve_contig(str(c), lengths)
            if name is None:
                raise InputFileError(fasta, f"{key}: contig {c!r} is not in this FASTA "
                                            f"(contigs: {', '.join(list(lengths)[:20])})")
            out.append(name)
        return out

    val_contigs, test_contigs = contigs_of("validation_contigs"), contigs_of("test_contigs")
    both = set(val_contigs) & set(test_contigs)
    if both:
        raise DnadiffError(f"benchmark task {cfg['name']!r}: contig(s) {', '.join(sorted(both))}"
                           " are in both validation_contigs and test_contigs")
    train_contigs = [c for c in genome if c not in val_contigs and c not in test_contigs]
    if not train_contigs:
        raise DnadiffError(f"benchmark task {cfg['name']!r}: no contigs left for train")
    split_contigs = {"train": train_contigs, "validation": val_contigs, "test": test_contigs}

    genes = _group([f for f in feats if f.ftype == "gene"])
    cds = [f for f in feats if f.ftype == "CDS"]
    if not genes:
        genes = _group(cds)
    if not genes:
        raise InputFileError(ann, "has no gene or CDS features")
    positive, negative = ("promoter", "other") if kind == "promoter" else ("coding", "intergenic")
    cap = None if cfg["max_per_split"] is None else max(1, cfg["max_per_split"] // 2)

    def has_n(contig, a, b) -> bool:
        return bool(np.any(genome[contig][a:b] == N_ID))

    splits: dict[str, _Rows | None] = {}
    for k, split in enumerate(SPLITS):
        contigs = split_contigs[split]
        if not contigs:
            splits[split] = None
            continue
        rng = np.random.default_rng([seed, k, 2])
        cset = set(contigs)
        whole = [(c, 0, lengths[c]) for c in contigs]
        if kind == "promoter":
            pos: dict[tuple, None] = {}
            for g in sorted((g for g in genes if g.contig in cset),
                            key=lambda g: (contigs.index(g.contig), g.start, g.end, g.strand)):
                if g.strand == "-":
                    a, b = g.end, g.end + length
                else:
                    a, b = g.start - length, g.start
                if a < 0 or b > lengths[g.contig] or has_n(g.contig, a, b):
                    continue
                pos[(g.contig, a, b, "-" if g.strand == "-" else "+")] = None
            pos_list = list(pos)
            mask = _Mask((c, a, b) for c, a, b, _ in pos_list)
            if cap is not None and len(pos_list) > cap:
                keep = np.sort(rng.choice(len(pos_list), size=cap, replace=False))
                pos_list = [pos_list[i] for i in keep]
            taken = {(c, a) for c, a, _, _ in pos_list}
            neg_list = _sample_windows(
                rng, whole, length, len(pos_list),
                lambda c, a, b, taken=taken, mask=mask: (c, a) not in taken
                and not mask.overlaps(c, a, b) and not has_n(c, a, b))
            pos_list = pos_list[:len(neg_list)] if len(neg_list) < len(pos_list) else pos_list
        else:
            n_genes = sum(1 for g in genes if g.contig in cset)
            n = n_genes if cap is None else min(n_genes, cap)
            inside = [(f.contig, f.start, f.end) for f in (cds or
                      [f for f in feats if f.ftype == "gene"]) if f.contig in cset]
            pos_list = _sample_windows(rng, inside, length, n,
                                       lambda c, a, b: not has_n(c, a, b))
            mask = _Mask((f.contig, f.start, f.end) for f in feats
                         if f.ftype not in _NOT_FEATURES)
            neg_list = _sample_windows(
                rng, whole, length, len(pos_list),
                lambda c, a, b, mask=mask: not mask.overlaps(c, a, b) and not has_n(c, a, b))
            pos_list = pos_list[:len(neg_list)]
        rows = _Rows(ann)
        for label, windows in ((positive, pos_list), (negative, neg_list)):
            for contig, a, b, strand in windows:
                ids = genome[contig][a:b].copy()
                if strand == "-":
                    ids = _rc(ids)
                name = f"{contig}:{a}-{b}({strand})"
                rows.add(ids, label, name, fasta, name)
        splits[split] = rows
    what = (f"{length} bp upstream of each gene (strand-aware) vs random windows overlapping no "
            "promoter" if kind == "promoter" else
            f"{length} bp windows inside CDS vs windows overlapping no annotated feature")
    split_desc = "; ".join(f"{s}: {', '.join(split_contigs[s])}" for s in ("validation", "test")
                           if split_contigs[s])
    return _finish(cfg, [negative, positive], splits,
                   f"{kind} task from {fasta} + {ann}: {what}; non-standard split by contig "
                   f"({split_desc}; train: the other {len(train_contigs)} contigs), seed {seed}",
                   classes_file=ann)


# --------------------------------------------------------------------------------------------
# spec


def _existing_dir(path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputFileError(path, "folder not found")
    if not path.is_dir():
        raise InputFileError(path, "is not a folder")
    return path


COMMON_KEYS = {"name", "type", "seed", "max_per_split", "fixed_length", "split_fractions"}
TYPES = {
    # type: (required keys, optional keys with defaults, reader)
    "gue": ({"path"}, {}, _load_gue),
    "genomic_benchmarks": ({"path"}, {}, _load_genomic_benchmarks),
    "coordinates": ({"path", "reference"}, {}, _load_coordinates),
    "fasta_pair": ({"positive", "negative"}, {}, _load_fasta_pair),
    "annotation": ({"fasta", "annotation", "kind", "test_contigs"},
                   {"length": 200, "validation_contigs": []}, _load_annotation),
}


def _check_spec(spec: dict) -> dict:
    if not isinstance(spec, dict):
        raise DnadiffError(f"benchmark task spec must be a mapping, got {type(spec).__name__}")
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise DnadiffError(f"benchmark task spec needs a non-empty string 'name' (got {spec!r})")
    where = f"benchmark task {name!r}"
    typ = spec.get("type")
    if typ not in TYPES:
        raise DnadiffError(f"{where}: unknown type {typ!r} (known: {', '.join(TYPES)})")
    required, optional, _ = TYPES[typ]
    unknown = set(spec) - COMMON_KEYS - required - set(optional)
    if unknown:
        allowed = ", ".join(sorted(COMMON_KEYS | required | set(optional)))
        raise DnadiffError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} for type "
                           f"{typ} (allowed: {allowed})")
    missing = required - set(spec)
    if missing:
        raise DnadiffError(f"{where}: type {typ} needs key(s) {', '.join(sorted(missing))}")
    cfg = {"seed": 0, "max_per_split": None, "fixed_length": True,
           "split_fractions": list(DEFAULT_FRACTIONS), **optional, **spec}

    def is_int(v) -> bool:
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if not is_int(cfg["seed"]):
        raise DnadiffError(f"{where}: seed must be an integer, got {cfg['seed']!r}")
    m = cfg["max_per_split"]
    if m is not None and (not is_int(m) or m < 1):
        raise DnadiffError(f"{where}: max_per_split must be a positive integer or null, got {m!r}")
    if not isinstance(cfg["fixed_length"], bool):
        raise DnadiffError(f"{where}: fixed_length must be true or false")
    fr = cfg["split_fractions"]
    if (not isinstance(fr, (list, tuple)) or len(fr) != 3
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0
                       for x in fr)
            or abs(sum(fr) - 1) > 1e-6 or fr[0] <= 0 or fr[2] <= 0):
        raise DnadiffError(f"{where}: split_fractions must be 3 numbers >= 0 (train, validation,"
                           f" test) summing to 1 with train and test > 0, got {fr!r}")
    cfg["split_fractions"] = [float(x) for x in fr]
    if typ == "annotation":
        if cfg["kind"] not in ("promoter", "coding"):
            raise DnadiffError(f"{where}: kind must be 'promoter' or 'coding', "
                               f"got {cfg['kind']!r}")
        if not is_int(cfg["length"]) or cfg["length"] < 1:
            raise DnadiffError(f"{where}: length must be a positive integer, "
                               f"got {cfg['length']!r}")
        if cfg["validation_contigs"] is None:
            cfg["validation_contigs"] = []
        for key in ("validation_contigs", "test_contigs"):
            v = cfg[key]
            if isinstance(v, str) or not isinstance(v, (list, tuple)):
                raise DnadiffError(f"{where}: {key} must be a list of contig names, got {v!r}")
        if not cfg["test_contigs"]:
            raise DnadiffError(f"{where}: test_contigs must name at least one contig")
    return cfg


def load_task(spec: dict) -> BenchmarkTask:
    """Read the benchmark task described by ``spec`` (see the module docstring)."""
    cfg = _check_spec(spec)
    return TYPES[cfg["type"]][2](cfg)


def task_summary(task: BenchmarkTask) -> dict:
    """Name, classes, length, source and per-split class counts (JSON-friendly)."""
    counts = {}
    for split, ls in task.splits().items():
        n = np.bincount(ls.labels, minlength=len(task.classes))
        counts[split] = {c: int(k) for c, k in zip(task.classes, n)}
    return {"name": task.name, "classes": list(task.classes), "length": task.length,
            "source": task.source, "counts": counts}
