"""Composition of token sequences: entropy, and for DNA GC content, CpG observed/expected,
homopolymers and short tandem repeats.

Pure functions: arrays of token ids in (uint8 or int64; memory-mapped arrays welcome), numbers
and dicts out. DNA ids are those of :mod:`dnadiff.tokenizers` (an id below ``N_BASES`` is a
base; N and every other id never count as one).

- ``entropy_bits``: Shannon entropy (bits) of a count vector: of a split's token composition,
  or of one text sample's token frequencies (``entropy_bits(np.bincount(ids))``).
- ``gc_content`` / ``gc_fraction``: GC share of a sequence / of base counts.
- ``cpg_observed_expected``: CpG observed/expected ratio (dimensionless; ~0.2-0.25 in mammalian
  bulk DNA, ~1 for i.i.d. sequence, >0.6 in CpG islands).
- ``homopolymer_stats``: single-base runs per kb and the longest run (bases).
- ``tandem_repeat_fraction``: share of bases inside short exact tandem repeats.
"""

from __future__ import annotations

import numpy as np

from dnadiff.evaluation.kmers import kmer_counts
from dnadiff.tokenizers import GC_IDS, N_BASES

_C, _G = GC_IDS
_CG = _C * N_BASES + _G  # the code of the dinucleotide CG in kmer_counts(.., 2)


def entropy_bits(counts) -> float:
    """Shannon entropy in bits of the distribution given by ``counts`` (zeros skipped)."""
    p = np.asarray(counts, dtype=np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def gc_content(seq) -> float:
    """Share of G and C among the bases of ``seq`` (N skipped); ``nan`` without a base."""
    s = np.asarray(seq)
    bases = s[s < N_BASES]
    return float(np.isin(bases, GC_IDS).mean()) if bases.size else float("nan")


def gc_fraction(base_counts) -> float:
    """Share of G and C in base counts (``kmer_counts(.., 1)``)."""
    counts = np.asarray(base_counts)
    return float(counts[list(GC_IDS)].sum() / counts.sum())


def cpg_observed_expected(seqs) -> float:
    """CpG observed/expected ratio pooled over ``seqs`` (Gardiner-Garden & Frommer 1987).

    ``#CG * N / (#C * #G)`` where ``#CG`` counts CG dinucleotides (not touching N), ``#C`` and
    ``#G`` count bases and ``N`` is the number of A/C/G/T bases, all summed over the set.
    Dimensionless; ``nan`` when the set has no C or no G.
    """
    mono = kmer_counts(seqs, 1)
    c, g, n = int(mono[_C]), int(mono[_G]), int(mono.sum())
    if c == 0 or g == 0:
        return float("nan")
    cg = int(kmer_counts(seqs, 2)[_CG])
    return cg * n / (c * g)


def homopolymer_stats(seqs, min_lengths=(4, 6, 8)) -> dict:
    """Runs of one repeated base (A, C, G or T; N never forms or extends a run).

    A run is maximal (``AAAAAA`` is one run of 6, not two of 4 or three of 4+), so each is
    counted once, under every threshold it reaches. Returns

    - ``runs_ge_{m}_per_kb`` for each ``m`` in ``min_lengths``: number of runs of length >= m per
      1000 A/C/G/T bases of the whole set (N bases are not in the denominator);
    - ``longest``: length in bases of the longest run in the set (0 for an empty set);
    - ``frac_bases_in_runs_ge_6``: fraction of A/C/G/T bases that lie in runs of length >= 6.

    Per-kb figures and the fraction are ``nan`` when the set has no A/C/G/T base.
    """
    lengths, n_bases = [], 0
    for s in seqs:
        s = np.asarray(s)
        if s.size == 0:
            continue
        n_bases += int(np.count_nonzero(s < N_BASES))
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        run_len = np.diff(np.append(starts, s.size))
        lengths.append(run_len[s[starts] < N_BASES])
    runs = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
    out = {}
    for m in min_lengths:
        out[f"runs_ge_{m}_per_kb"] = (1000.0 * int(np.count_nonzero(runs >= m)) / n_bases
                                      if n_bases else float("nan"))
    out["longest"] = int(runs.max()) if runs.size else 0
    out["frac_bases_in_runs_ge_6"] = (float(runs[runs >= 6].sum()) / n_bases
                                      if n_bases else float("nan"))
    return out


def tandem_repeat_fraction(seqs, periods=(2, 3, 4, 5, 6), min_copies: int = 3) -> float:
    """Fraction of A/C/G/T bases inside short tandem repeats: a stretch where a unit of
    ``p`` bases (p in ``periods``) is repeated at least ``min_copies`` times in a row, exactly
    (``ACACAC`` is 3 copies of ``AC``; ``AAAAAA`` counts too, as period 2 and 3 repeats).
    N never matches. Pooled over the set; ``nan`` without A/C/G/T bases.
    """
    covered, n_bases = 0, 0
    for s in seqs:
        s = np.asarray(s, dtype=np.int64)
        n_bases += int(np.count_nonzero(s < N_BASES))
        mark = np.zeros(s.size + 1, dtype=np.int64)
        for p in periods:
            need = (min_copies - 1) * p  # consecutive positions i with s[i] == s[i + p]
            if s.size < need + p:
                continue
            eq = (s[p:] == s[:-p]) & (s[p:] < N_BASES)
            edges = np.diff(np.concatenate(([0], eq.view(np.int8), [0])))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            keep = ends - starts >= need
            # a run of matches over [a, b) covers bases [a, b + p)
            np.add.at(mark, starts[keep], 1)
            np.add.at(mark, np.minimum(ends[keep] + p, s.size), -1)
        covered += int(np.count_nonzero(np.cumsum(mark[:-1]) > 0))
    return covered / n_bases if n_bases else float("nan")
