"""``coordinates``: Genomic Benchmarks intervals cut from a reference FASTA.

The official interval layout ``<path>/{train,test}/<class>.csv[.gz]`` (header
``id,region,start,end,strand``) cut from a ``reference`` FASTA (plain, gzip or bgzip).
**Convention: ``start`` is 0-based and inclusive, ``end`` is exclusive (0-based half-open, as
in BED)**: the interval is ``contig[start:end]`` in Python terms, and ``-`` strand intervals
are reverse-complemented. This is what the official loader does
(``genomic_benchmarks/loc2seq/with_biopython.py``, ``_fill_seq_column``: it reads the
reference into a dict of strings and takes ``fasta[region][start:end]``, then reverse
complements when ``strand == '-'``). Region names map onto contigs with or without the ``chr``
prefix (``1`` <-> ``chr1``), and ``M``/``MT``/``chrM``/``chrMT`` onto each other.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dnadiff.data.fasta import read_sequences
from dnadiff.errors import InputFileError
from dnadiff.io import existing_file
from dnadiff.tasks.base import (
    SPLITS,
    LabeledTask,
    Rows,
    class_order,
    encode,
    existing_dir,
    finish,
    int_field,
    reverse_complement,
)
from dnadiff.tasks.tables import iter_table


def _contig_aliases(region: str) -> list[str]:
    """Names a region may have in a reference: itself, without/with 'chr', mito synonyms."""
    base = region[3:] if region[:3].lower() == "chr" else region
    names = [region, base, "chr" + base]
    if base.upper() in ("M", "MT"):
        names += ["chrM", "chrMT", "MT", "M"]
    return list(dict.fromkeys(names))


def resolve_contig(region: str, contigs) -> str | None:
    """The name ``region`` has among ``contigs`` (see the module docstring), or None."""
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
        existing_file(path, "a FASTA file")
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
        # deferred: only this reader needs pyfaidx, and `import dnadiff.config` reaches this
        # module through the task registry (pyfaidx takes about 0.1 s to import)
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


def _read_intervals(files: dict[str, dict[str, Path]]) -> dict[str, list[tuple]]:
    """Per split: ``(class, file, line, region, start, end, strand)`` of every interval."""
    intervals: dict[str, list[tuple]] = {s: [] for s in files}
    for split, by_class in files.items():
        for cls, f in by_class.items():
            for line, (_id, region, start, end, strand) in iter_table(
                    f, ",", ("id", "region", "start", "end", "strand")):
                start = int_field(f, line, "start", start)
                end = int_field(f, line, "end", end)
                if start < 0 or end <= start:
                    raise InputFileError(f, f"line {line}: bad interval start={start} end={end} "
                                            "(0-based half-open: need 0 <= start < end)")
                if strand not in ("+", "-"):
                    raise InputFileError(f, f"line {line}: strand {strand!r} is not '+' or '-'")
                intervals[split].append((cls, f, line, region, start, end, strand))
    return intervals


def _cut(ref: _Reference, reference: Path, rows: Rows, ivs: list[tuple]) -> None:
    """Add the sequences of intervals ``ivs`` (see ``_read_intervals``) to ``rows``."""
    for cls, f, line, region, start, end, strand in ivs:
        contig = resolve_contig(region, ref.lengths)
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
        ids = encode(ref.fetch(contig, start, end), f, where)
        if strand == "-":
            ids = reverse_complement(ids)
        rows.add(ids, cls, f"{region}:{start}-{end}({strand})", f, where)


def load_coordinates(cfg: dict) -> LabeledTask:
    """Genomic Benchmarks coordinates cut from a reference FASTA (``type: coordinates``)."""
    folder = existing_dir(cfg["path"])
    reference = Path(cfg["reference"]).expanduser()
    files = {s: _class_csvs(folder / s) for s in ("train", "test")}
    classes = class_order(files["train"])
    for cls, f in files["test"].items():
        if cls not in files["train"]:
            raise InputFileError(f, f"class {cls!r} is not a class of train "
                                    f"(train has: {', '.join(classes)})")
    intervals = _read_intervals(files)
    regions = {iv[3] for ivs in intervals.values() for iv in ivs}
    ref = _Reference(reference, regions)
    try:
        splits: dict[str, Rows | None] = {"validation": None}
        for split, ivs in intervals.items():
            splits[split] = Rows(folder / split)
            _cut(ref, reference, splits[split], ivs)
        kind = ref.kind
    finally:
        ref.close()
    return finish(cfg, classes, {s: splits[s] for s in SPLITS},
                  f"Genomic Benchmarks coordinates {folder} on {reference} ({kind}; 0-based "
                  "half-open starts; official train/test split)",
                  class_files={(s, c): f for s in files for c, f in files[s].items()},
                  classes_file=folder / "train")
