"""Real windows of a held-out split by what the annotation says they are, so that a reader of
the sample scores knows what "real" means: ``coding`` (at least 90% of the window inside genes
or CDS), ``intergenic`` (no annotated base) and ``promoter`` (the window that ends where a gene
starts, read on the gene's strand).

The annotation is a GFF3 (as ``dnadiff fetch-reference`` writes it) or a genes TSV (see
:mod:`dnadiff.tasks.annotation`). Coding coverage uses the CDS features where the annotation has
them, else the genes; intergenic windows avoid every feature of either kind.
"""

from __future__ import annotations

import numpy as np

from dnadiff.data.prepared import PreparedData
from dnadiff.tasks.annotation import read_features
from dnadiff.tasks.base import reverse_complement
from dnadiff.tokenizers import N_BASES

CLASSES = ("coding", "intergenic", "promoter")
#: a window is coding when at least this share of its bases is inside genes (or CDS)
CODING_SHARE = 0.9


def _coverage(feats, contig: str, length: int, types) -> np.ndarray:
    """Prefix sums of a 0/1 mask of the bases of ``contig`` covered by features of ``types``."""
    mask = np.zeros(length, dtype=np.int64)
    for f in feats:
        if f.contig == contig and f.ftype in types:
            mask[f.start:f.end] = 1
    return np.concatenate([[0], np.cumsum(mask)])


def class_windows(genome: PreparedData, annotation, split: str, length: int, n: int,
                  seed: int) -> dict[str, list[np.ndarray]]:
    """Up to ``n`` windows (int64 ids, N-free) of ``length`` per class from ``split``, drawn
    with ``seed``; a class the split cannot fill has fewer (possibly none); no classes for an
    annotation without features."""
    lengths = {c["name"]: c["length"] for c in genome.contigs}
    feats = read_features(annotation, lengths, genome.path / "index.json", allow_empty=True)
    if not feats:
        return {}
    coding_types = {"CDS"} if any(f.ftype == "CDS" for f in feats) else {"gene"}
    rng = np.random.default_rng(seed)
    # candidates per class: rows (contig index, start, reverse-complemented)
    candidates: dict[str, list[np.ndarray]] = {c: [] for c in CLASSES}
    for ci, start, end in genome.segments(split):
        name = genome.contigs[ci]["name"]
        if end - start < length:
            continue
        coding = _coverage(feats, name, lengths[name], coding_types)
        anything = _coverage(feats, name, lengths[name], {f.ftype for f in feats})
        starts = np.arange(start, end - length + 1)
        cov = coding[starts + length] - coding[starts]
        any_cov = anything[starts + length] - anything[starts]
        for cls, keep in (("coding", cov >= CODING_SHARE * length), ("intergenic", any_cov == 0)):
            picked = starts[keep]
            candidates[cls].append(np.stack([np.full_like(picked, ci), picked,
                                             np.zeros_like(picked)], axis=1))
        promoters = [(ci, f.end, 1) if f.strand == "-" else (ci, f.start - length, 0)
                     for f in feats if f.contig == name and f.ftype == "gene"]
        promoters = [r for r in promoters if start <= r[1] and r[1] + length <= end]
        if promoters:  # upstream of a minus-strand gene: after its end, reverse-complemented
            candidates["promoter"].append(np.array(promoters, dtype=np.int64))
    out = {}
    for cls, parts in candidates.items():
        rows = np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)
        picked = []
        for k in rng.permutation(len(rows)):
            ci, s, rc = (int(v) for v in rows[k])
            ids = np.asarray(genome.tokens(ci)[s:s + length], dtype=np.int64)
            if (ids >= N_BASES).any():
                continue
            picked.append(reverse_complement(ids).astype(np.int64) if rc else ids)
            if len(picked) == n:
                break
        out[cls] = picked
    return out
