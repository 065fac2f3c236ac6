"""``dnadiff prepare``: validate and tokenize a genome into memory-mapped token arrays.

Output directory layout::

    <outdir>/index.json          names, lengths, N runs, split segments, tokenizer, composition
    <outdir>/tokens/<i>.npy      uint8 token ids of contig i (np.load(..., mmap_mode="r"))

Splits are given by contig names (``validation``/``test`` lists; every other contig is train)
and/or by a BED file whose 4th column names the split of each interval; BED intervals override
the contig's split, bases outside them keep it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from dnadiff.data.exclude import exclude_matcher
from dnadiff.data.fasta import read_sequences
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.io import atomic_path
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


def prepare_genome(fasta, outdir, validation=(), test=(), split_bed=None, exclude=(),
                   window: int | None = None) -> dict:
    """Tokenize ``fasta`` into ``outdir`` (written atomically as a whole directory). Contigs
    whose name matches a regular expression of ``exclude`` are left out altogether. With
    ``window`` (the run's ``data.window``), contigs that cannot give a training window are
    named in a warning, and a split that could train or score nothing is an error."""
    tok = DNATokenizer()
    outdir = Path(outdir)
    contigs, excluded = [], []
    excluded_by = exclude_matcher(exclude)  # bounded in time (see data.exclude)
    with atomic_path(outdir, is_dir=True, kind="prepared data") as tmp:
        (tmp / "tokens").mkdir()
        counts = {s: np.zeros(tok.vocab_size, dtype=np.int64) for s in SPLITS}
        for name, _seq, ids in read_sequences(fasta, tok):
            if excluded_by(name):
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
        _check_usable(fasta, contigs, sizes, counts, tok, window)
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
        (tmp / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    log.info("prepared %d contigs: %s", len(contigs), sizes)
    return index


def _n_free_stretch(contig: dict, start: int, end: int) -> int:
    """The longest run without N inside [start, end) of a contig (its N runs are sorted)."""
    best, cursor = 0, start
    for a, b in [*contig["n_runs"], [end, end]]:
        if b <= start:
            continue  # an N run before the segment
        a, b = min(max(a, start), end), min(b, end)
        best = max(best, a - cursor)
        cursor = max(cursor, b)
        if cursor >= end:
            break
    return best


def _names(items, limit: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit
                                       else "")


def _check_usable(fasta, contigs: list[dict], sizes: dict, counts: dict, tok, window) -> None:
    """Warn about contigs that give nothing to train on; refuse splits that are all N (nothing
    to score) or, with ``window``, a train split without a single N-free window."""
    all_n = [c["name"] for c in contigs if c["n_count"] == c["length"]]
    if all_n and len(all_n) == len(contigs):
        raise InputFileError(fasta, "every contig is all N: there is no base to train on")
    if all_n:
        log.warning("%s: contig(s) %s are all N and give no training window", fasta,
                    _names(all_n))
    for split in ("validation", "test"):
        scorable = int(counts[split][:tok.n_id].sum())
        if sizes[split] and not scorable:
            where = sorted({c["name"] for c in contigs for seg in c["segments"]
                            if seg["split"] == split})
            raise InputFileError(fasta, f"the {split} split ({_names(where)}) is all N: it has "
                                        "no base to score; choose other contigs in "
                                        f"data.splits.{split}")
    if window is None:
        return
    short = [c["name"] for c in contigs if c["name"] not in all_n
             and all(seg["split"] != "train" or _n_free_stretch(c, seg["start"], seg["end"])
                     < window for seg in c["segments"])
             and any(seg["split"] == "train" for seg in c["segments"])]
    trainable = [c["name"] for c in contigs
                 if any(seg["split"] == "train"
                        and _n_free_stretch(c, seg["start"], seg["end"]) >= window
                        for seg in c["segments"])]
    if not trainable:
        raise InputFileError(fasta, f"no stretch of the train split is {window} bases long "
                                    f"without N (data.window): nothing to train on; use a "
                                    "shorter data.window or a genome with longer contigs")
    if short:
        log.warning("%s: train contig(s) %s have no stretch of %d bases without N "
                    "(data.window) and will not be trained on", fasta, _names(short), window)
