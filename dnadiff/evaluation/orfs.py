"""Open reading frames of DNA sequences: the longest open frame and ATG-to-stop ORF over the six
frames, their summaries over a set, and the two-sample distance of their length distributions.

Inputs are sets (lists) of sequences. A sequence is a DNA string (``"ACGT..."``, lower case is
upper-cased) or bytes, or a 1-D integer array of token ids (the bases of
:mod:`dnadiff.tokenizers`; any other id is N). Gene calls, GC3 and codon periodicity are in
:mod:`dnadiff.evaluation.genes`.

Conventions
-----------
- Standard genetic code: stops TAA, TAG, TGA; start ATG only (no alternative starts).
- A codon containing a non-ACGT base (N, ...) is *not* a sense codon: for the open-frame length
  it breaks the frame exactly like a stop codon (the frame ends there), and it never counts as
  the start or the stop of an ATG ORF (an ATG ORF must end in a true TAA/TAG/TGA).
- Lengths are in bp and count whole codons only (always a multiple of 3).
- Six frames: three on the given strand, three on its reverse complement.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from dnadiff.tokenizers import BASE_COMPLEMENT, BASE_IDS, BASES, N_BASES, N_ID

__all__ = [
    "longest_open_frame",
    "longest_orf_atg",
    "orf_lengths",
    "orf_summary",
    "two_sample_distance",
]

# letters (upper and lower case) -> codes: a base's token id, N_ID for anything else
_LUT = np.full(256, N_ID, dtype=np.uint8)
for _b, _i in zip(BASES.encode(), BASE_IDS):
    _LUT[_b] = _i
    _LUT[ord(chr(_b).lower())] = _i
_COMPLEMENT = np.full(max(N_BASES, N_ID) + 1, N_ID, dtype=np.uint8)
_COMPLEMENT[list(BASE_IDS)] = BASE_COMPLEMENT
_LETTERS = np.full(max(N_BASES, N_ID) + 1, ord("N"), dtype=np.uint8)
_LETTERS[list(BASE_IDS)] = np.frombuffer(BASES.encode(), dtype=np.uint8)


def _codon(text: str) -> int:
    """Code of a codon: its base ids as base-N_BASES digits, first base most significant."""
    return sum(BASES.index(ch) * N_BASES ** (2 - i) for i, ch in enumerate(text))


_STOPS = tuple(_codon(c) for c in ("TAA", "TAG", "TGA"))
_ATG = _codon("ATG")


# -- encoding ---------------------------------------------------------------------------------

def encode_bases(seq) -> np.ndarray:
    """uint8 codes of a string, bytes or array of token ids: a base's token id (A=0 C=1 G=2
    T=3), ``N_ID`` for anything else."""
    if isinstance(seq, str):
        seq = seq.encode("ascii", errors="replace")
    if isinstance(seq, (bytes, bytearray, memoryview)):
        return _LUT[np.frombuffer(seq, dtype=np.uint8)]
    arr = np.asarray(seq)
    if arr.ndim != 1:
        raise ValueError(f"a sequence must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind in "US":  # array of single letters
        return encode_bases("".join(arr.astype(str).tolist()))
    arr = arr.astype(np.int64, copy=False)
    return np.where((arr >= 0) & (arr < N_BASES), arr, N_ID).astype(np.uint8)


def to_letters(seq) -> str:
    """Upper-case ACGTN string of a sequence (for pyrodigal)."""
    if isinstance(seq, str):
        return seq.upper()
    return _LETTERS[encode_bases(seq)].tobytes().decode("ascii")


def _reverse_complement(x: np.ndarray) -> np.ndarray:
    return _COMPLEMENT[x[::-1]]


# -- open reading frames ----------------------------------------------------------------------

def _strand_orfs(x: np.ndarray) -> tuple[int, int]:
    """(longest open frame, longest ATG..stop ORF incl. stop) over the 3 frames of ``x``."""
    n = x.size
    if n < 3:
        return 0, 0
    bad = x >= N_BASES
    bad_codon = bad[:-2] | bad[1:-1] | bad[2:]
    code = x[:-2].astype(np.int16) * N_BASES ** 2 + x[1:-1] * N_BASES + x[2:]
    stop = np.isin(code, _STOPS) & ~bad_codon
    breaker = stop | bad_codon
    atg = (code == _ATG) & ~bad_codon
    best_open = best_atg = 0
    for f in range(3):
        brk = breaker[f::3]  # one entry per whole codon of frame f
        n_codons = brk.size
        idx = np.flatnonzero(brk)
        if idx.size == 0:
            best_open = max(best_open, 3 * n_codons)
            continue
        bounds = np.concatenate(([-1], idx, [n_codons]))
        best_open = max(best_open, 3 * int((np.diff(bounds) - 1).max()))
        starts = np.flatnonzero(atg[f::3])
        if starts.size == 0:
            continue
        seg = np.searchsorted(idx, starts)  # index of the first breaker after each ATG
        first = np.concatenate(([True], seg[1:] != seg[:-1]))  # most upstream ATG per segment
        starts, seg = starts[first], seg[first]
        keep = seg < idx.size
        starts, ends = starts[keep], idx[seg[keep]]
        keep = stop[f::3][ends]  # the segment must end in a true stop, not an N codon
        if keep.any():
            best_atg = max(best_atg, 3 * int((ends[keep] - starts[keep]).max()) + 3)
    return best_open, best_atg


def orf_lengths(seq) -> tuple[int, int]:
    """``(longest_open_frame(seq), longest_orf_atg(seq))`` in one pass over the six frames."""
    x = encode_bases(seq)
    o1, a1 = _strand_orfs(x)
    o2, a2 = _strand_orfs(_reverse_complement(x))
    return max(o1, o2), max(a1, a2)


def longest_open_frame(seq) -> int:
    """Longest stop-to-stop open frame in any of the six frames, in bp.

    Counts whole codons without any stop (TAA/TAG/TGA) between two stops, or between a sequence
    end and a stop, or over the whole sequence when the frame has no stop at all (a window cut
    out of a gene usually has none on its coding frame). Stop codons are excluded from the
    length, which is a multiple of 3. A codon containing a non-ACGT base breaks the frame like
    a stop. 0 when every codon of every frame is a stop (or the sequence is shorter than 3).
    """
    return orf_lengths(seq)[0]


def longest_orf_atg(seq) -> int:
    """Longest ATG-to-stop ORF in any of the six frames, in bp, *stop codon included*.

    Both the ATG and the stop (TAA/TAG/TGA) must lie inside the sequence; the ORF starts at the
    most upstream in-frame ATG after the previous stop (or after the sequence start). A codon
    with a non-ACGT base breaks the frame and does not count as a stop. 0 when there is none.
    So an ORF ``ATG`` + k sense codons + ``TAA`` has length 3 * (k + 2).
    """
    return orf_lengths(seq)[1]


def _share(x: np.ndarray, threshold: float) -> tuple[float, float]:
    """Share of ``x >= threshold`` and its binomial standard error."""
    if x.size == 0:
        return float("nan"), float("nan")
    p = float((x >= threshold).mean())
    return p, math.sqrt(p * (1.0 - p) / x.size)


def mean_se(x) -> tuple[float, float]:
    """Mean of ``x`` and its standard error (sample SD / sqrt(n); ``nan`` for n < 2)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return float("nan"), float("nan")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else float("nan")
    return float(x.mean()), se


def orf_arrays(seqs) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence ``orf_lengths`` of a set: (longest open frames, longest ATG ORFs)."""
    pairs = [orf_lengths(s) for s in seqs]
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def orf_summary(seqs, thresholds=(300, 600)) -> dict:
    """Longest-ORF statistics of a set of sequences.

    Returns ``n_seqs`` and, for ``v`` in ``open`` (:func:`longest_open_frame`) and ``atg``
    (:func:`longest_orf_atg`): ``orf_{v}_mean`` and ``orf_{v}_mean_se`` (bp; SE over
    sequences), ``orf_{v}_median`` (bp) and, for each threshold ``t`` (default 300 and 600 bp),
    ``orf_{v}_ge{t}`` = share of sequences with that longest ORF >= t bp and
    ``orf_{v}_ge{t}_se`` = its binomial standard error sqrt(p (1 - p) / n).
    """
    open_, atg = orf_arrays(seqs)
    return orf_summary_from(open_, atg, thresholds)


def orf_summary_from(open_, atg, thresholds=(300, 600)) -> dict:
    """``orf_summary`` of already computed ``orf_arrays``."""
    out = {"n_seqs": int(open_.size)}
    for name, x in (("open", open_), ("atg", atg)):
        out[f"orf_{name}_mean"], out[f"orf_{name}_mean_se"] = mean_se(x)
        out[f"orf_{name}_median"] = float(np.median(x)) if x.size else float("nan")
        for t in thresholds:
            out[f"orf_{name}_ge{t}"], out[f"orf_{name}_ge{t}_se"] = _share(x, t)
    return out


def two_sample_distance(a, b, which: str = "open") -> dict:
    """Distance between the longest-ORF length distributions of two sets (e.g. samples vs real).

    ``a`` and ``b`` are sets of sequences, or directly arrays of lengths (numbers). ``which`` is
    ``"open"`` (:func:`longest_open_frame`) or ``"atg"`` (:func:`longest_orf_atg`). Returns
    ``ks_statistic`` (two-sample Kolmogorov-Smirnov D in [0, 1]), ``ks_pvalue``
    (``scipy.stats.ks_2samp``, two-sided), ``wasserstein_bp`` (1-Wasserstein distance, bp,
    ``scipy.stats.wasserstein_distance``), ``n_a`` and ``n_b``; ``nan`` if a set is empty.
    """
    if which not in ("open", "atg"):
        raise ValueError(f"which must be 'open' or 'atg', got {which!r}")
    col = 0 if which == "open" else 1

    def lengths(s):
        s = list(s)
        if s and (isinstance(s[0], (str, bytes, bytearray)) or np.ndim(s[0]) > 0):  # sequences
            return np.array([orf_lengths(q)[col] for q in s], dtype=np.float64)
        return np.asarray(s, dtype=np.float64)

    x, y = lengths(a), lengths(b)
    out = {"n_a": int(x.size), "n_b": int(y.size)}
    if x.size == 0 or y.size == 0:
        return {**out, "ks_statistic": float("nan"), "ks_pvalue": float("nan"),
                "wasserstein_bp": float("nan")}
    ks = stats.ks_2samp(x, y)
    return {**out, "ks_statistic": float(ks.statistic), "ks_pvalue": float(ks.pvalue),
            "wasserstein_bp": float(stats.wasserstein_distance(x, y))}
