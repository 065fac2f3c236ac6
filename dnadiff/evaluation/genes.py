"""Gene-level ("biology") scores of DNA sequences: pyrodigal gene calls, codon periodicity and
GC3, and :func:`biology_scores`, one table row of these with the open-reading-frame figures of
:mod:`dnadiff.evaluation.orfs` (whose functions this module also exports), so that sample
scores can see genes.

Inputs are sets (lists) of sequences. A sequence is a DNA string (``"ACGT..."``, lower case is
upper-cased) or bytes, or a 1-D integer array of token ids (the bases of
:mod:`dnadiff.tokenizers`; any other id is N).

The conventions of open frames and ORFs (genetic code, N, lengths, six frames) are in
:mod:`dnadiff.evaluation.orfs`.

Flat keys of :func:`biology_scores` (one sample-table row; stable names)
-----------------------------------------------------------------------
``n_seqs``
    number of sequences scored.
``orf_open_mean``, ``orf_open_mean_se``
    mean over sequences of :func:`longest_open_frame` (bp) and its standard error
    (sample std / sqrt(n)).
``orf_open_ge300``, ``orf_open_ge300_se``, ``orf_open_ge600``, ``orf_open_ge600_se``
    share of sequences whose longest open frame is >= 300 / >= 600 bp, with binomial standard
    error sqrt(p (1 - p) / n).
``orf_atg_ge300``, ``orf_atg_ge300_se``
    share of sequences with an ATG-to-stop ORF (stop included) of >= 300 bp, with binomial SE.
``coding_fraction``, ``coding_fraction_se``
    mean over sequences of the fraction of bases covered by pyrodigal (meta mode) gene calls
    (overlapping genes counted once), with its standard error over sequences.
``genes_per_kb``
    pyrodigal genes called per 1,000 bp of input (all sequences pooled).
``gene_score_mean``
    mean pyrodigal ``score`` over all called genes (``nan`` when none is called).
``period3_excess``, ``period3_excess_se``
    codon periodicity, bits (see :func:`codon_periodicity`): pooled mutual information between
    bases at distances 6, 9, 12 minus the mean of the MI at their neighbouring distances
    (5 and 7, 8 and 10, 11 and 13); bootstrap SE over sequences (fixed seed). ~0 for shuffled /
    i.i.d. / low-order Markov DNA, clearly positive for coding DNA (~1.5e-3 on yeast).
``gc3``, ``gc3_se``
    GC content at the third codon position of the pyrodigal-called genes (codons pooled over the
    set; start and stop codons excluded), bootstrap SE over sequences. ``nan`` here (``None``
    from :func:`gc3`) when no gene is called.

All shares/fractions are in [0, 1]; every figure is ``nan`` for an empty set.
"""

from __future__ import annotations

import numpy as np
import pyrodigal

from dnadiff.evaluation import orfs
from dnadiff.evaluation.orfs import (  # noqa: F401 (re-exported: orfs.__all__)
    encode_bases,
    longest_open_frame,
    longest_orf_atg,
    mean_se,
    orf_arrays,
    orf_lengths,
    orf_summary,
    orf_summary_from,
    to_letters,
    two_sample_distance,
)
from dnadiff.tokenizers import GC_IDS, N_BASES, N_ID

__all__ = [
    "biology_scores",
    "codon_periodicity",
    "gc3",
    "gene_calls",
    *orfs.__all__,  # the open-reading-frame functions, re-exported
]

_MIN_PYRODIGAL_LENGTH = 60  # Prodigal's smallest reportable (edge) gene; shorter: no call
_N_BOOT = 200
_SEED = 0


# -- pyrodigal gene calls ---------------------------------------------------------------------

_GENE_FINDER = None


def _gene_finder():
    """One shared ``pyrodigal.GeneFinder(meta=True)`` (open ends: genes may run off edges)."""
    global _GENE_FINDER
    if _GENE_FINDER is None:
        _GENE_FINDER = pyrodigal.GeneFinder(meta=True)
    return _GENE_FINDER


def _call_genes(seqs) -> dict:
    """Per-sequence pyrodigal results: arrays ``length``, ``covered``, ``n_genes``,
    ``best_score``, ``gc3_gc``, ``gc3_n`` and the list of all gene scores."""
    finder = _gene_finder()
    seqs = list(seqs)
    n = len(seqs)
    length = np.zeros(n, np.int64)
    covered = np.zeros(n, np.int64)
    n_genes = np.zeros(n, np.int64)
    best = np.full(n, np.nan)
    gc3_gc = np.zeros(n, np.int64)
    gc3_n = np.zeros(n, np.int64)
    scores: list[float] = []
    for i, s in enumerate(seqs):
        text = to_letters(s)
        length[i] = len(text)
        if len(text) < _MIN_PYRODIGAL_LENGTH:
            continue
        genes = finder.find_genes(text)
        if len(genes) == 0:
            continue
        mask = np.zeros(len(text), dtype=bool)
        for g in genes:
            mask[g.begin - 1: g.end] = True  # 1-based, inclusive
            scores.append(float(g.score))
            third = encode_bases(g.sequence())  # coding strand, reverse-complemented for - genes
            third = third[: third.size - third.size % 3].reshape(-1, 3)
            if not g.partial_begin:
                third = third[1:]  # drop the start codon
            if not g.partial_end:
                third = third[:-1]  # drop the stop codon
            b3 = third[:, 2]
            gc3_gc[i] += int(np.isin(b3, GC_IDS).sum())
            gc3_n[i] += int((b3 < N_BASES).sum())
        covered[i] = int(mask.sum())
        n_genes[i] = len(genes)
        best[i] = max(float(g.score) for g in genes)
    return {"length": length, "covered": covered, "n_genes": n_genes, "best_score": best,
            "gc3_gc": gc3_gc, "gc3_n": gc3_n, "scores": np.array(scores, dtype=np.float64)}


def _gene_summary(t: dict) -> dict:
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(t["length"] > 0, t["covered"] / np.maximum(t["length"], 1), np.nan)
    frac_mean, frac_se = mean_se(frac[~np.isnan(frac)])
    total_kb = t["length"].sum() / 1000.0
    has = t["n_genes"] > 0
    return {
        "per_sequence": {"coding_fraction": frac, "n_genes": t["n_genes"],
                         "best_score": t["best_score"]},
        "n_seqs": int(t["length"].size),
        "coding_fraction": frac_mean,
        "coding_fraction_se": frac_se,
        "genes_per_kb": float(t["n_genes"].sum() / total_kb) if total_kb > 0 else float("nan"),
        "gene_score_mean": float(t["scores"].mean()) if t["scores"].size else float("nan"),
        "best_score_mean": float(t["best_score"][has].mean()) if has.any() else float("nan"),
        "share_with_gene": float(has.mean()) if has.size else float("nan"),
        "n_genes": int(t["n_genes"].sum()),
    }


def gene_calls(seqs) -> dict:
    """Gene predictions of ``pyrodigal.GeneFinder(meta=True)`` on each sequence separately.

    Meta mode uses Prodigal's pre-trained models, so it works on short pieces (no training,
    no 20 kb minimum); ends are open, so genes may run off either end (``partial_begin`` /
    ``partial_end``). Sequences shorter than 60 bp get no call. Returns

    - ``per_sequence``: numpy arrays ``coding_fraction`` (bases covered by called genes, overlaps
      counted once, / length; ``nan`` for an empty sequence), ``n_genes`` and ``best_score``
      (highest gene ``score``, ``nan`` when no gene);
    - ``coding_fraction`` and ``coding_fraction_se``: mean over sequences and its SE;
    - ``genes_per_kb``: genes per 1,000 bp, all sequences pooled;
    - ``gene_score_mean``: mean ``score`` over all called genes; ``best_score_mean``: mean of
      ``best_score`` over sequences with a gene (``nan`` when no gene anywhere);
    - ``share_with_gene``: share of sequences with at least one gene; ``n_genes``: total;
      ``n_seqs``.
    """
    return _gene_summary(_call_genes(seqs))


def _bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> float:
    """Bootstrap (over sequences) standard error of sum(num) / sum(den)."""
    n = num.size
    if n < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    d = den[idx].sum(axis=1)
    ok = d > 0
    if ok.sum() < 2:
        return float("nan")
    return float((num[idx].sum(axis=1)[ok] / d[ok]).std(ddof=1))


def _gc3_from(t: dict, n_boot: int = _N_BOOT, seed: int = _SEED) -> dict:
    n3 = int(t["gc3_n"].sum())
    if n3 == 0:
        return {"gc3": None, "gc3_se": None, "n_codons": 0, "n_genes": int(t["n_genes"].sum())}
    return {"gc3": float(t["gc3_gc"].sum() / n3),
            "gc3_se": _bootstrap_ratio(t["gc3_gc"].astype(float), t["gc3_n"].astype(float),
                                       n_boot, seed),
            "n_codons": n3, "n_genes": int(t["n_genes"].sum())}


def gc3(seqs, n_boot: int = _N_BOOT, seed: int = _SEED) -> dict:
    """GC content at the third codon position of the pyrodigal (meta) genes of ``seqs``.

    Codons of all called genes are pooled over the set, read on the gene's coding strand;
    start and stop codons are left out (partial genes keep all their codons). Returns ``gc3``
    (in [0, 1]), ``gc3_se`` (bootstrap over sequences, ``n_boot`` resamples, fixed ``seed``),
    ``n_codons`` and ``n_genes``; ``gc3`` and ``gc3_se`` are ``None`` when no gene is called.
    """
    return _gc3_from(_call_genes(seqs), n_boot, seed)


# -- codon periodicity ------------------------------------------------------------------------

def _pair_counts(seqs, max_distance: int) -> np.ndarray:
    """(n_seqs, max_distance, N_BASES ** 2) counts of base pairs (x[i], x[i + d]), bases
    only."""
    codes = [encode_bases(s) for s in seqs]
    n = len(codes)
    out = np.zeros((n, max_distance, N_BASES ** 2), dtype=np.int64)
    if n == 0:
        return out
    # one array with max_distance N's between sequences: no pair crosses a boundary
    gap = np.full(max_distance, N_ID, dtype=np.uint8)
    parts, owner = [], []
    for i, c in enumerate(codes):
        parts += [c, gap]
        owner.append(np.full(c.size + max_distance, i, dtype=np.int64))
    x = np.concatenate(parts).astype(np.int64)
    sid = np.concatenate(owner)
    for d in range(1, max_distance + 1):
        a, b = x[:-d], x[d:]
        ok = (a < N_BASES) & (b < N_BASES)
        key = (sid[:-d][ok] * N_BASES + a[ok]) * N_BASES + b[ok]
        out[:, d - 1, :] = np.bincount(key, minlength=n * N_BASES ** 2).reshape(n, N_BASES ** 2)
    return out


def _mutual_information(counts: np.ndarray) -> np.ndarray:
    """Mutual information (bits) of 4x4 joint counts along the last axis (length 16)."""
    c = counts.reshape(counts.shape[:-1] + (N_BASES, N_BASES)).astype(np.float64)
    tot = c.sum(axis=(-1, -2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = c / tot
        pa = p.sum(axis=-1, keepdims=True)
        pb = p.sum(axis=-2, keepdims=True)
        terms = np.where(p > 0, p * np.log2(p / (pa * pb)), 0.0)
    mi = terms.sum(axis=(-1, -2))
    return np.where(tot[..., 0, 0] > 0, mi, np.nan)


_MAX_DISTANCE = 13
_ON = np.array([6, 9, 12]) - 1  # indices of MI(6), MI(9), MI(12) in mi[d - 1]


def _neighbours(mi: np.ndarray) -> np.ndarray:
    """(MI(3k - 1) + MI(3k + 1)) / 2 for k = 2, 3, 4."""
    return 0.5 * (mi[..., _ON - 1] + mi[..., _ON + 1])


def _period3_excess(mi: np.ndarray) -> np.ndarray:
    """mean over k = 2, 3, 4 of MI(3k) - (MI(3k - 1) + MI(3k + 1)) / 2."""
    return (mi[..., _ON] - _neighbours(mi)).mean(axis=-1)


def codon_periodicity(seqs, n_boot: int = _N_BOOT, seed: int = _SEED) -> dict:
    """Frame-free 3-periodicity of a set: mutual information between bases at distance d.

    The joint distribution of (x[i], x[i + d]) is pooled over all positions of all sequences
    (pairs touching N skipped) for d = 1..13, and its mutual information ``MI(d)`` (bits)
    computed. Coding DNA has a peak at every multiple of 3 (codon-position composition), while
    shuffled, i.i.d. and low-order Markov DNA have a flat or decaying MI. The score is

        ``period3_excess = mean over k = 2, 3, 4 of MI(3k) - (MI(3k - 1) + MI(3k + 1)) / 2``

    i.e. MI at 6, 9 and 12 each against its two neighbours. Distances 1-4 are left out on
    purpose: they carry the short-range (dinucleotide / low-order Markov) correlation of any DNA,
    which makes "mean MI at 3, 6, 9 minus mean MI at 1, 2, 4, 5, 7, 8" negative even for real
    coding DNA (MI(1) dominates), and "MI(3) vs MI(2), MI(4)" negative for an order-2 Markov
    chain (MI(2) large, MI(3) ~ 0). The finite-sample MI bias (~9 / (2 N ln 2) bits) is the
    same at every d and cancels. On yeast chr16 1-kb windows it is ~1.5e-3 bits, against
    ~0 +- 2e-5 for shuffled, i.i.d. and order-2 Markov sequences.

    Returns ``mi`` (array, ``mi[d - 1] = MI(d)``, d = 1..13, bits), ``period3_excess`` (bits),
    ``period3_excess_se`` (bootstrap over sequences, ``n_boot`` resamples, fixed ``seed``),
    ``period3_ratio`` = mean MI(3k) / mean neighbour MI, k = 2, 3, 4 (``nan`` if that is 0; ~1
    without periodicity) and ``n_pairs`` (pairs at d = 1). Figures are ``nan`` for a set
    without pairs.
    """
    seqs = list(seqs)
    counts = _pair_counts(seqs, _MAX_DISTANCE)
    pooled = counts.sum(axis=0)
    mi = _mutual_information(pooled)
    excess = float(_period3_excess(mi))
    on = float(mi[_ON].mean())
    off = float(_neighbours(mi).mean())
    ratio = on / off if off > 0 else float("nan")
    se = float("nan")
    n = len(seqs)
    if n >= 2 and np.isfinite(excess):
        rng = np.random.default_rng(seed)
        weights = np.zeros((n_boot, n), dtype=np.float64)
        idx = rng.integers(0, n, size=(n_boot, n))
        np.add.at(weights, (np.arange(n_boot)[:, None], idx), 1.0)
        boot = np.einsum("bn,ndk->bdk", weights, counts.astype(np.float64))
        se = float(np.nanstd(_period3_excess(_mutual_information(boot)), ddof=1))
    return {"mi": mi, "period3_excess": excess, "period3_excess_se": se,
            "period3_ratio": ratio, "n_pairs": int(pooled[0].sum())}


# -- one table row ----------------------------------------------------------------------------

def biology_scores(seqs, genes: bool = True) -> dict:
    """The main gene-level figures of a set as one flat dict (keys in the module docstring).

    ``genes=False`` skips pyrodigal (``coding_fraction*``, ``genes_per_kb``,
    ``gene_score_mean``, ``gc3*`` are then ``nan``). Pyrodigal runs once for both the coding
    fraction and GC3.
    """
    seqs = list(seqs)
    open_, atg = orf_arrays(seqs)
    orf = orf_summary_from(open_, atg)
    out = {"n_seqs": len(seqs)}
    for key in ("orf_open_mean", "orf_open_mean_se", "orf_open_ge300", "orf_open_ge300_se",
                "orf_open_ge600", "orf_open_ge600_se", "orf_atg_ge300", "orf_atg_ge300_se"):
        out[key] = orf[key]
    nan = float("nan")
    if genes:
        table = _call_genes(seqs)
        g = _gene_summary(table)
        c3 = _gc3_from(table)
        out.update(coding_fraction=g["coding_fraction"],
                   coding_fraction_se=g["coding_fraction_se"],
                   genes_per_kb=g["genes_per_kb"], gene_score_mean=g["gene_score_mean"])
    else:
        c3 = {"gc3": None, "gc3_se": None}
        out.update(coding_fraction=nan, coding_fraction_se=nan, genes_per_kb=nan,
                   gene_score_mean=nan)
    p3 = codon_periodicity(seqs)
    out["period3_excess"] = p3["period3_excess"]
    out["period3_excess_se"] = p3["period3_excess_se"]
    out["gc3"] = nan if c3["gc3"] is None else c3["gc3"]
    out["gc3_se"] = nan if c3["gc3_se"] is None else c3["gc3_se"]
    return out
