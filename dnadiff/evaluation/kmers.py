"""k-mers of DNA token arrays: the one k-mer encoder, and the Jensen-Shannon divergence of spectra.

A k-mer's *code* reads its base ids as base-``N_BASES`` digits, first base most significant
(A=0 C=1 G=2 T=3: ``AC`` = 1, ``CG`` = 6, ``ACG`` = 6); k-mers touching N (any id that is not a
base) are skipped. Codes are int64, so k <= 31. Everything else is built on :func:`kmer_codes`:

- :func:`kmer_counts`: the pooled spectrum of a set (whole memory-mapped chromosomes welcome);
- :func:`kmer_spectra`: those spectra for k = 1..K;
- :func:`kmer_frequencies`: one row of k-mer frequencies per sequence (classifier features);
- :func:`spectrum_js`: a set's JS divergence to reference spectra, per k.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from dnadiff.tokenizers import N_BASES


def kmer_codes(seq, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Codes (int64) of the k-mers of ``seq`` (token ids) that touch no N, and their start
    positions (int64, increasing)."""
    s = np.asarray(seq)
    m = s.size - k + 1
    if m <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    is_base = s < N_BASES
    bad = np.concatenate(([0], np.cumsum(~is_base, dtype=np.int64)))
    pos = np.flatnonzero(bad[k:] == bad[:m])
    digit = np.where(is_base, s, 0).astype(np.int64)
    code = np.zeros(m, dtype=np.int64)
    for j in range(k):
        code = code * N_BASES + digit[j:j + m]
    return code[pos], pos


def kmer_counts(seqs, k: int, chunk: int = 1 << 22) -> np.ndarray:
    """Counts of all ``N_BASES ** k`` k-mers over ``seqs`` (arrays of ids), indexed by code;
    k-mers touching N are skipped.

    Long sequences (whole chromosomes) are read in chunks of ``chunk`` positions that overlap
    by k - 1, so memory stays bounded and every k-mer is counted exactly once.
    """
    counts = np.zeros(N_BASES ** k, dtype=np.int64)
    for s in seqs:
        for start in range(0, max(len(s) - k + 1, 0), chunk):
            codes, _ = kmer_codes(s[start:start + chunk + k - 1], k)
            counts += np.bincount(codes, minlength=N_BASES ** k)
    return counts


def kmer_spectra(seqs, max_k: int) -> dict[int, np.ndarray]:
    """``{k: kmer_counts(seqs, k)}`` for k = 1..max_k."""
    return {k: kmer_counts(seqs, k) for k in range(1, max_k + 1)}


def kmer_frequencies(seqs, max_k: int, sparse_matrix: bool = False):
    """Per-sequence k-mer frequencies for every k = 1..max_k, side by side.

    One row per sequence and ``N_BASES + N_BASES**2 + ... + N_BASES**max_k`` columns (k = 1
    first, codes in order within each k); within each k a row holds the share of each k-mer
    among the sequence's N-free k-mers (summing to 1, or all 0 without one). A dense float64
    array, or a scipy CSR matrix (sorted indices) with ``sparse_matrix=True``, for many
    sequences and a large ``max_k``.
    """
    seqs = list(seqs)
    rows, cols, vals = [], [], []
    offset = 0
    for k in range(1, max_k + 1):
        for i, s in enumerate(seqs):
            codes, _ = kmer_codes(s, k)
            if codes.size:
                u, c = np.unique(codes, return_counts=True)
                rows.append(np.full(u.size, i))
                cols.append(u + offset)
                vals.append(c / codes.size)
        offset += N_BASES ** k
    r, c, v = ((np.concatenate(a) if a else np.zeros(0, dtype))
               for a, dtype in ((rows, np.int64), (cols, np.int64), (vals, np.float64)))
    if sparse_matrix:
        return sparse.csr_matrix((v, (r, c)), shape=(len(seqs), offset))
    out = np.zeros((len(seqs), offset), dtype=np.float64)
    out[r, c] = v
    return out


def js_divergence(c1, c2) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint) of two count vectors."""
    p = np.asarray(c1, np.float64)
    q = np.asarray(c2, np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return float((a[nz] * np.log2(a[nz] / b[nz])).sum())

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def spectrum_js(seqs, reference: dict[int, np.ndarray]) -> dict[int, float]:
    """``{k: JS divergence (bits) of the k-mer spectrum of seqs to reference[k]}``, for every k
    of ``reference`` (spectra as from :func:`kmer_counts`)."""
    seqs = list(seqs)
    return {k: js_divergence(kmer_counts(seqs, k), ref) for k, ref in reference.items()}
