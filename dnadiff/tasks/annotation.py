"""``annotation``: windows cut from a genome FASTA with its annotation, split by contig.

The annotation is a GFF3 (as written by ``dnadiff.data.reference``) or a genes TSV
(``chrom feature start end strand locus_tag gene``, 1-based inclusive). ``kind: promoter``:
the ``length`` bases upstream of each gene (strand-aware) vs random windows overlapping no
promoter; ``kind: coding``: windows inside CDS vs windows overlapping no annotated feature.
``validation_contigs`` and ``test_contigs`` are held out; train is every other contig. Windows
are named ``contig:start-end(strand)`` (0-based half-open).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dnadiff.data.fasta import open_binary, read_sequences
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.tasks.base import (
    N_ID,
    SPLITS,
    LabeledTask,
    Rows,
    finish,
    int_field,
    reverse_complement,
)
from dnadiff.tasks.coordinates import resolve_contig

_NOT_FEATURES = {"region", "chromosome", "source", "contig", "supercontig", "databank_entry"}


@dataclass
class Feature:
    """One feature line of a GFF3 or genes TSV: its contig, type and 0-based half-open span."""

    contig: str
    ftype: str
    start: int      # 0-based
    end: int        # exclusive
    strand: str
    key: str        # features sharing a key are parts of one (e.g. a spliced CDS)
    line: int
    phase: int | None = None  # a GFF3 CDS part's phase: bases before its first codon starts


def read_features(path: Path, lengths: dict[str, int], fasta: Path,
                  allow_empty: bool = False) -> list[Feature]:
    """GFF3 or genes TSV (detected from the first non-blank line) -> features; a file without
    any is an error unless ``allow_empty`` (a FASTA-only reference's empty GFF3)."""
    feats: list[Feature] = []
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
                    # parts of one feature share an ID; CDS lines without one, a Parent
                    key = attrs.get("ID") or attrs.get("Parent") or f"line{line_no}"
                    contig, ftype, start, end, strand = f[0], f[2], f[3], f[4], f[6]
                    phase = f[7].strip()
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
                    phase = "."
                start = int_field(path, line_no, "start", start)
                end = int_field(path, line_no, "end", end)
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
                if phase not in (".", "", "0", "1", "2"):
                    raise InputFileError(path, f"line {line_no}: phase {phase!r} is not '.', "
                                               "0, 1 or 2")
                feats.append(Feature(contig, ftype, start - 1, end, strand, key, line_no,
                                     int(phase) if phase in ("0", "1", "2") else None))
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InputFileError(path, f"truncated or corrupt gzip data ({exc})") from None
    if fmt is None:
        raise InputFileError(path, "is empty: no GFF3 or genes TSV lines")
    if not feats and not allow_empty:
        raise InputFileError(path, "has no features")
    return feats


def _group(feats: list[Feature]) -> list[Feature]:
    """Merge the parts of each feature (same key and contig) into one span."""
    out: dict[tuple[str, str], Feature] = {}
    for f in feats:
        g = out.get((f.key, f.contig))
        if g is None:
            out[(f.key, f.contig)] = Feature(f.contig, f.ftype, f.start, f.end, f.strand,
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



def _split_contigs(cfg: dict, lengths: dict[str, int], fasta: Path) -> dict[str, list[str]]:
    """Contigs of each split: the named validation and test contigs, train all others."""
    def contigs_of(key: str) -> list[str]:
        out = []
        for c in cfg[key]:
            name = resolve_contig(str(c), lengths)
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
    train_contigs = [c for c in lengths if c not in val_contigs and c not in test_contigs]
    if not train_contigs:
        raise DnadiffError(f"benchmark task {cfg['name']!r}: no contigs left for train")
    return {"train": train_contigs, "validation": val_contigs, "test": test_contigs}


def _promoter_windows(rng, genes, contigs, lengths, length, cap, has_n):
    """(positive, negative) windows of a promoter task on ``contigs``."""
    cset = set(contigs)
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
    whole = [(c, 0, lengths[c]) for c in contigs]
    neg_list = _sample_windows(
        rng, whole, length, len(pos_list),
        lambda c, a, b: (c, a) not in taken and not mask.overlaps(c, a, b) and not has_n(c, a, b))
    pos_list = pos_list[:len(neg_list)] if len(neg_list) < len(pos_list) else pos_list
    return pos_list, neg_list


def _coding_windows(rng, feats, genes, cds, contigs, lengths, length, cap, has_n):
    """(positive, negative) windows of a coding task on ``contigs``."""
    cset = set(contigs)
    n_genes = sum(1 for g in genes if g.contig in cset)
    n = n_genes if cap is None else min(n_genes, cap)
    inside = [(f.contig, f.start, f.end) for f in (cds or
              [f for f in feats if f.ftype == "gene"]) if f.contig in cset]
    pos_list = _sample_windows(rng, inside, length, n, lambda c, a, b: not has_n(c, a, b))
    mask = _Mask((f.contig, f.start, f.end) for f in feats if f.ftype not in _NOT_FEATURES)
    whole = [(c, 0, lengths[c]) for c in contigs]
    neg_list = _sample_windows(
        rng, whole, length, len(pos_list),
        lambda c, a, b: not mask.overlaps(c, a, b) and not has_n(c, a, b))
    return pos_list[:len(neg_list)], neg_list


def load_annotation(cfg: dict) -> LabeledTask:
    """Promoter or coding windows cut from a genome and its annotation (``type: annotation``)."""
    fasta = Path(cfg["fasta"]).expanduser()
    ann = Path(cfg["annotation"]).expanduser()
    kind, length, seed = cfg["kind"], cfg["length"], cfg["seed"]
    genome = {name: ids for name, _, ids in read_sequences(fasta)}
    lengths = {k: len(v) for k, v in genome.items()}
    feats = read_features(ann, lengths, fasta)
    split_contigs = _split_contigs(cfg, lengths, fasta)

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

    splits: dict[str, Rows | None] = {}
    for k, split in enumerate(SPLITS):
        contigs = split_contigs[split]
        if not contigs:
            splits[split] = None
            continue
        rng = np.random.default_rng([seed, k, 2])
        if kind == "promoter":
            pos_list, neg_list = _promoter_windows(rng, genes, contigs, lengths, length, cap,
                                                   has_n)
        else:
            pos_list, neg_list = _coding_windows(rng, feats, genes, cds, contigs, lengths,
                                                 length, cap, has_n)
        rows = Rows(ann)
        for label, windows in ((positive, pos_list), (negative, neg_list)):
            for contig, a, b, strand in windows:
                ids = genome[contig][a:b].copy()
                if strand == "-":
                    ids = reverse_complement(ids)
                name = f"{contig}:{a}-{b}({strand})"
                rows.add(ids, label, name, fasta, name)
        splits[split] = rows
    what = (f"{length} bp upstream of each gene (strand-aware) vs random windows overlapping no "
            "promoter" if kind == "promoter" else
            f"{length} bp windows inside CDS vs windows overlapping no annotated feature")
    split_desc = "; ".join(f"{s}: {', '.join(split_contigs[s])}" for s in ("validation", "test")
                           if split_contigs[s])
    return finish(cfg, [negative, positive], splits,
                  f"{kind} task from {fasta} + {ann}: {what}; non-standard split by contig "
                  f"({split_desc}; train: the other {len(split_contigs['train'])} contigs), "
                  f"seed {seed}", classes_file=ann)
