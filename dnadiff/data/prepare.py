"""``dnadiff prepare``: validate and tokenize a genome into memory-mapped token arrays.

Output directory layout::

    <outdir>/index.json          names, lengths, N runs, split segments, tokenizer, composition
    <outdir>/tokens/<i>.npy      uint8 token ids of contig i (np.load(..., mmap_mode="r"))

Splits are given by contig names (``validation``/``test`` lists; every other contig is train)
and/or by a BED file whose 4th column names the split of each interval; BED intervals override
the contig's split, bases outside them keep it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from dnadiff.data.fasta import read_sequences
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_path, write_json
from dnadiff.tokenizers import DNATokenizer

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


def n_runs(ids: np.ndarray, n_id: int) -> list[list[int]]:
    """Half-open [start, end) intervals of consecutive N tokens (work in proportion to the
    number of N after one compare over the contig)."""
    pos = np.flatnonzero(ids == n_id)
    if pos.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(pos) > 1)
    starts = np.concatenate([pos[:1], pos[breaks + 1]])
    ends = np.concatenate([pos[breaks], pos[-1:]]) + 1
    return np.stack([starts, ends], axis=1).astype(np.int64).tolist()


def base_counts(ids: np.ndarray, vocab_size: int, n_id: int) -> np.ndarray:
    """Count of every token id in ``ids``, which holds bases and N only (as the FASTA reader
    gives them): a vectorized compare per base and N as the rest; ``np.bincount`` widens every
    byte to 64 bits and is several times slower."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for k in range(n_id):
        counts[k] = np.count_nonzero(ids == k)
    counts[n_id] = ids.size - counts[:n_id].sum()
    return counts


def read_bed_splits(path, lengths: dict[str, int]) -> dict[str, list[tuple[int, int, str]]]:
    """Parse a BED file (chrom, start, end, split) into per-contig intervals."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(path, "file not found")
    out: dict[str, list[tuple[int, int, str]]] = {}
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        f = line.split("\t")
        if len(f) < 4:
            raise InputFileError(path, f"line {line_no}: expected 4 columns chrom, start, end, "
                                       f"split; found {len(f)}")
        chrom, split = f[0], f[3].strip()
        try:
            start, end = int(f[1]), int(f[2])
        except ValueError:
            raise InputFileError(path, f"line {line_no}: start/end are not integers") from None
        if split not in SPLITS:
            raise InputFileError(path, f"line {line_no}: split {split!r} is not one of {SPLITS}")
        if chrom not in lengths:
            raise InputFileError(path, f"line {line_no}: contig {chrom!r} is not in the genome")
        if not 0 <= start < end <= lengths[chrom]:
            raise InputFileError(path, f"line {line_no}: interval {start}-{end} is outside "
                                       f"{chrom} (length {lengths[chrom]})")
        out.setdefault(chrom, []).append((start, end, split))
    return out


def _segments_for(name: str, length: int, contig_split: str,
                  bed: dict | None) -> list[dict]:
    """Cover [0, length) with split segments."""
    if bed is None:
        return [{"split": contig_split, "start": 0, "end": length}]
    # BED intervals are applied on top of the contig's own split (from the contig lists)
    labels = np.full(length, SPLITS.index(contig_split), dtype=np.int8)
    for start, end, split in bed.get(name, []):
        labels[start:end] = SPLITS.index(split)
    edges = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], edges, [length]])
    return [{"split": SPLITS[labels[a]], "start": int(a), "end": int(b)}
            for a, b in zip(bounds[:-1], bounds[1:])]


def prepare_genome(fasta, outdir, validation=(), test=(), split_bed=None, exclude=()) -> dict:
    """Tokenize ``fasta`` into ``outdir`` (written atomically as a whole directory). Contigs
    whose name matches a regular expression of ``exclude`` are left out altogether."""
    tok = DNATokenizer()
    outdir = Path(outdir)
    contigs, excluded = [], []
    patterns = [re.compile(p) for p in exclude]
    with atomic_path(outdir, is_dir=True) as tmp:
        (tmp / "tokens").mkdir()
        counts = {s: np.zeros(tok.vocab_size, dtype=np.int64) for s in SPLITS}
        for name, _seq, ids in read_sequences(fasta, tok):
            if any(p.search(name) for p in patterns):
                excluded.append(name)
                continue
            i = len(contigs)
            fname = f"tokens/{i:05d}.npy"
            np.save(tmp / fname, ids)
            runs = n_runs(ids, tok.n_id)
            contigs.append({"name": name, "length": int(ids.size), "file": fname,
                            "n_count": int(sum(b - a for a, b in runs)), "n_runs": runs,
                            "_ids": ids})
        lengths = {c["name"]: c["length"] for c in contigs}
        for key, names in (("validation", validation), ("test", test)):
            missing = [n for n in names if n not in lengths]
            if missing:
                raise DnadiffError(
                    f"config data.splits.{key}: contig(s) {missing} not found in {fasta} "
                    f"(contigs: {', '.join(list(lengths)[:20])}"
                    f"{' ...' if len(lengths) > 20 else ''})")
        overlap = set(validation) & set(test)
        if overlap:
            raise DnadiffError(f"config data.splits: contig(s) {sorted(overlap)} are in both "
                               "validation and test")
        bed = read_bed_splits(split_bed, lengths) if split_bed else None
        for c in contigs:
            split = ("validation" if c["name"] in validation else
                     "test" if c["name"] in test else "train")
            c["segments"] = _segments_for(c["name"], c["length"], split, bed)
            ids = c.pop("_ids")
            for seg in c["segments"]:
                counts[seg["split"]] += base_counts(ids[seg["start"]:seg["end"]],
                                                    tok.vocab_size, tok.n_id)
        sizes = {s: int(sum(seg["end"] - seg["start"] for c in contigs
                            for seg in c["segments"] if seg["split"] == s)) for s in SPLITS}
        if not contigs:
            raise DnadiffError(f"{fasta}: every contig matches data.exclude")
        if sizes["train"] == 0:
            raise DnadiffError(f"{fasta}: the train split is empty (every contig is in "
                               "validation or test)")
        index = {
            "format": 1,
            "source": str(fasta),
            "tokenizer": tok.to_dict(),
            "contigs": contigs,
            "excluded_contigs": excluded,
            "split_sizes": sizes,
            "composition": {s: {t: int(counts[s][i]) for i, t in enumerate("ACGTN")}
                            for s in SPLITS},
            "token_counts": {s: counts[s].tolist() for s in SPLITS},
        }
        write_json(tmp / "index.json", index)
    log.info("prepared %d contigs: %s", len(contigs), sizes)
    return index
