"""Sequence-level scores of generated DNA against real DNA and simple baselines.

Everything here is pure: arrays of token ids in (A=0 C=1 G=2 T=3 N=4, uint8 or int64, memory-
mapped arrays welcome), numbers and dicts out. The figures:

- ``cpg_observed_expected``: CpG observed/expected ratio (dimensionless; ~0.2-0.25 in mammalian
  bulk DNA, ~1 for i.i.d. sequence, >0.6 in CpG islands).
- ``homopolymer_stats``: single-base runs per kb and the longest run (bases).
- ``fit_markov`` / ``MarkovChain`` / ``iid_sample``: k-th order Markov and i.i.d. baselines
  (sampling and log-likelihood in nats).
- ``discriminator_auroc``: cross-validated AUROC of a k-mer logistic-regression classifier
  telling real from generated (0.5 = indistinguishable, 1 = perfectly separable).
- ``frechet_distance``: Frechet distance between Gaussians fitted to two embedding sets (squared
  units of the embedding).
- ``memorization``: best ungapped identity of each sample to any stretch of the training data.
- ``score_set``: k-mer JS divergences (bits), GC, CpG o/e and homopolymers of one set.
"""

from __future__ import annotations

import numpy as np

from dnadiff.evaluation.generated import gc_content, js_divergence, kmer_counts

ACGT = 4  # ids 0..3 are A, C, G, T; 4 is N
_CG = 1 * ACGT + 2  # code of the dinucleotide CG in kmer_counts(.., 2)


# -- composition ------------------------------------------------------------------------------

def cpg_observed_expected(seqs) -> float:
    """CpG observed/expected ratio pooled over ``seqs`` (Gardiner-Garden & Frommer 1987).

    ``#CG * N / (#C * #G)`` where ``#CG`` counts CG dinucleotides (not touching N), ``#C`` and
    ``#G`` count bases and ``N`` is the number of A/C/G/T bases, all summed over the set.
    Dimensionless; ``nan`` when the set has no C or no G.
    """
    mono = kmer_counts(seqs, 1)
    c, g, n = int(mono[1]), int(mono[2]), int(mono.sum())
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
        n_bases += int(np.count_nonzero(s < ACGT))
        starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
        run_len = np.diff(np.append(starts, s.size))
        lengths.append(run_len[s[starts] < ACGT])
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
        n_bases += int(np.count_nonzero(s < ACGT))
        mark = np.zeros(s.size + 1, dtype=np.int64)
        for p in periods:
            need = (min_copies - 1) * p  # consecutive positions i with s[i] == s[i + p]
            if s.size < need + p:
                continue
            eq = (s[p:] == s[:-p]) & (s[p:] < ACGT)
            edges = np.diff(np.concatenate(([0], eq.view(np.int8), [0])))
            starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
            keep = ends - starts >= need
            # a run of matches over [a, b) covers bases [a, b + p)
            np.add.at(mark, starts[keep], 1)
            np.add.at(mark, np.minimum(ends[keep] + p, s.size), -1)
        covered += int(np.count_nonzero(np.cumsum(mark[:-1]) > 0))
    return covered / n_bases if n_bases else float("nan")


# -- Markov and i.i.d. baselines --------------------------------------------------------------

class MarkovChain:
    """A k-th order Markov chain on A/C/G/T.

    ``probs[c, b]`` = P(next base b | the previous ``order`` bases have code c), where the code
    of bases x1..xk is ``sum x_i 4^(k-i)`` (first base most significant, as in ``kmer_counts``).
    ``initial`` (length ``4**order``) is the distribution of the first ``order`` bases of a
    sequence; for order 0 it is ``[1.0]``.
    """

    def __init__(self, order: int, probs, initial=None):
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        self.order = int(order)
        n_ctx = ACGT ** self.order
        self.probs = np.asarray(probs, dtype=np.float64).reshape(n_ctx, ACGT)
        self.initial = (np.full(n_ctx, 1.0 / n_ctx) if initial is None
                        else np.asarray(initial, dtype=np.float64).reshape(n_ctx))
        if not np.allclose(self.probs.sum(1), 1.0) or not np.isclose(self.initial.sum(), 1.0):
            raise ValueError("Markov chain probabilities must sum to 1")

    def sample(self, n: int, length: int, seed: int) -> list[np.ndarray]:
        """``n`` int64 sequences of ``length`` bases; deterministic for ``seed``."""
        rng = np.random.default_rng(seed)
        out = np.zeros((n, length), dtype=np.int64)
        k = self.order
        n_ctx = ACGT ** k
        state = rng.choice(n_ctx, size=n, p=self.initial) if k else np.zeros(n, np.int64)
        for j in range(min(k, length)):  # decode the first k bases from the initial code
            out[:, j] = (state // ACGT ** (k - 1 - j)) % ACGT
        cdf = np.cumsum(self.probs, axis=1)[:, :ACGT - 1]
        for t in range(k, length):
            u = rng.random(n)
            b = (u[:, None] >= cdf[state]).sum(axis=1)
            out[:, t] = b
            state = (state * ACGT + b) % n_ctx
        return list(out)

    def log_likelihood(self, seqs) -> float:
        """Total log-likelihood of ``seqs`` in nats.

        The first ``order`` bases of each sequence are scored under ``initial`` and every later
        base under ``probs`` given its ``order`` predecessors. Transitions whose window of
        ``order + 1`` bases touches N are skipped, as is the initial term of a sequence whose
        first ``order`` bases contain N or that is shorter than ``order``.
        """
        seqs = list(seqs)
        k = self.order
        with np.errstate(divide="ignore"):
            log_p = np.log(self.probs).ravel()
            log_init = np.log(self.initial)
        counts = kmer_counts(seqs, k + 1)
        nz = counts > 0
        total = float(counts[nz] @ log_p[nz])
        if k:
            weights = ACGT ** np.arange(k - 1, -1, -1)
            for s in seqs:
                head = np.asarray(s[:k], dtype=np.int64)
                if head.size == k and (head < ACGT).all():
                    total += float(log_init[int(head @ weights)])
        return total


def fit_markov(seqs, order: int, pseudocount: float = 1.0) -> MarkovChain:
    """Maximum-likelihood k-th order chain with additive smoothing ``pseudocount``.

    Transition counts are the (order+1)-mer counts of ``seqs`` (``kmer_counts``: chunked,
    vectorized, windows touching N skipped), so whole memory-mapped chromosomes are fine.
    ``initial`` is the smoothed frequency of ``order``-mers over all positions (the stationary
    distribution estimate), not of sequence starts only: a genome has too few contigs for that.
    """
    seqs = list(seqs)
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    counts = kmer_counts(seqs, order + 1).reshape(ACGT ** order, ACGT).astype(np.float64)
    counts += pseudocount
    row = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, row, out=np.full_like(counts, 1.0 / ACGT), where=row > 0)
    if order == 0:
        initial = np.ones(1)
    else:
        init = kmer_counts(seqs, order).astype(np.float64) + pseudocount
        initial = (init / init.sum() if init.sum() > 0
                   else np.full(init.size, 1.0 / init.size))
    return MarkovChain(order, probs, initial)


def iid_sample(composition, n: int, length: int, seed: int) -> list[np.ndarray]:
    """``n`` int64 sequences of ``length`` i.i.d. bases drawn from ``composition``.

    ``composition``: dict with keys ``"A" "C" "G" "T"`` (other keys such as ``"N"`` ignored) or
    an array of 4 values in A, C, G, T order; counts or probabilities (normalized here).
    """
    if isinstance(composition, dict):
        p = np.array([composition.get(b, 0) for b in "ACGT"], dtype=np.float64)
    else:
        p = np.asarray(composition, dtype=np.float64).reshape(ACGT)
    if p.sum() <= 0 or (p < 0).any():
        raise ValueError(f"composition must be non-negative with a positive sum, got {p}")
    rng = np.random.default_rng(seed)
    return list(rng.choice(ACGT, size=(n, length), p=p / p.sum()).astype(np.int64))


# -- discriminator ----------------------------------------------------------------------------

def _kmer_features(seqs, k: int) -> np.ndarray:
    """Per-sequence normalized k-mer frequencies for lengths 1..k, concatenated."""
    blocks = []
    for kk in range(1, k + 1):
        m = np.stack([kmer_counts([s], kk) for s in seqs]).astype(np.float64)
        m /= np.maximum(m.sum(axis=1, keepdims=True), 1.0)
        blocks.append(m)
    return np.hstack(blocks)


def discriminator_auroc(real, generated, k: int = 4, folds: int = 5, seed: int = 0) -> dict:
    """How well a classifier tells real from generated sequences: cross-validated AUROC.

    Features: each sequence's normalized k-mer frequencies for every length 1..k (4 + 16 + ...
    + 4^k columns), standardized within each training fold; classifier: L2 logistic regression
    (C = 1). The larger set is subsampled (deterministically, from ``seed``) to the size of the
    smaller; ``folds``-fold stratified cross-validation (shuffled with ``seed``).

    Returns ``auroc_mean`` (0.5 = indistinguishable, 1.0 = perfectly separable), ``auroc_sd``
    (sample SD over folds), ``auroc_per_fold``, ``folds`` (the number of folds) and
    ``n_per_class``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    real, generated = list(real), list(generated)
    n = min(len(real), len(generated))
    if n < folds:
        raise ValueError(f"need at least {folds} sequences per class for {folds}-fold CV, "
                         f"got {len(real)} real and {len(generated)} generated")
    rng = np.random.default_rng(seed)

    def subsample(seqs):
        if len(seqs) == n:
            return seqs
        return [seqs[i] for i in np.sort(rng.choice(len(seqs), size=n, replace=False))]

    real, generated = subsample(real), subsample(generated)
    x = np.vstack([_kmer_features(real, k), _kmer_features(generated, k)])
    y = np.concatenate([np.ones(n, dtype=np.int64), np.zeros(n, dtype=np.int64)])
    aurocs = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
        model.fit(x[train], y[train])
        aurocs.append(float(roc_auc_score(y[test], model.decision_function(x[test]))))
    a = np.array(aurocs)
    return {"auroc_mean": float(a.mean()),
            "auroc_sd": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "auroc_per_fold": aurocs, "folds": int(folds), "n_per_class": int(n)}


# -- Frechet distance -------------------------------------------------------------------------

def _sym_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two embedding sets (rows = items).

    ``||mu_a - mu_b||^2 + Tr(Ca + Cb - 2 (Ca Cb)^(1/2))`` with unbiased sample covariances, in
    squared embedding units; 0 for identical sets. ``Tr((Ca Cb)^(1/2))`` is computed as
    ``Tr((Ca^(1/2) Cb Ca^(1/2))^(1/2))`` (same value; the inner matrix is symmetric PSD), with
    symmetric eigendecompositions and negative round-off eigenvalues clipped to 0, which is
    exact for singular covariances (fewer items than dimensions) and never gives imaginary
    parts. The result is clipped at 0 (round-off).
    """
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    a = a.reshape(len(a), -1)
    b = b.reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 embeddings per set")
    mu = a.mean(0) - b.mean(0)
    ca = np.atleast_2d(np.cov(a, rowvar=False))
    cb = np.atleast_2d(np.cov(b, rowvar=False))
    sa = _sym_sqrt(ca)
    inner = sa @ cb @ sa
    w = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(w, 0.0, None)).sum())
    d = float(mu @ mu) + float(np.trace(ca) + np.trace(cb)) - 2.0 * tr_sqrt
    return max(d, 0.0)


# -- memorization -----------------------------------------------------------------------------

def _kmer_codes(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """2-bit-packed codes (uint64) of the N-free k-mers of ``s`` and their start positions."""
    s = np.asarray(s)
    m = s.size - k + 1
    if m <= 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    bad = np.concatenate(([0], np.cumsum(s >= ACGT, dtype=np.int64)))
    ok = bad[k:] == bad[:m]
    base = np.where(s < ACGT, s, 0).astype(np.uint64)
    code = np.zeros(m, dtype=np.uint64)
    two = np.uint64(2)
    for j in range(k):
        code = (code << two) | base[j:j + m]
    pos = np.flatnonzero(ok)
    return code[pos], pos


class _SeedIndex:
    """Sorted 2-bit-packed k-mer codes of the training arrays with their global positions.

    When ``2k + bits(total length) <= 64`` code and position share one sorted uint64
    (``code << pos_bits | pos``: one array, sorted in place); otherwise codes are argsorted and
    positions kept beside them.
    """

    def __init__(self, train_seqs, k: int, chunk: int = 1 << 20):
        self.k = k
        lens = np.array([len(t) for t in train_seqs], dtype=np.int64)
        self.starts = np.concatenate(([0], np.cumsum(lens)[:-1])).astype(np.int64)
        self.ends = self.starts + lens
        total = int(lens.sum())
        self.pos_bits = max(total, 1).bit_length()
        self.packed = 2 * k + self.pos_bits <= 64
        cap = int(np.clip(lens - k + 1, 0, None).sum())
        keys = np.empty(cap, dtype=np.uint64)
        pos_dtype = np.int32 if total < 2 ** 31 else np.int64
        pos_all = None if self.packed else np.empty(cap, dtype=pos_dtype)
        filled = 0
        for t, off in zip(train_seqs, self.starts):
            n = len(t)
            for a in range(0, max(n - k + 1, 0), chunk):
                code, pos = _kmer_codes(np.asarray(t[a:a + chunk + k - 1]), k)
                gpos = pos + (int(off) + a)
                if self.packed:
                    keys[filled:filled + code.size] = ((code << np.uint64(self.pos_bits))
                                                       | gpos.astype(np.uint64))
                else:
                    keys[filled:filled + code.size] = code
                    pos_all[filled:filled + code.size] = gpos
                filled += code.size
        keys = keys[:filled]
        if self.packed:
            keys.sort()
            self.keys, self.pos = keys, None
        else:
            order = np.argsort(keys, kind="stable")
            self.keys = keys[order]
            del keys
            self.pos = pos_all[:filled][order]

    def lookup(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Index ranges [lo, hi) of the training occurrences of each code."""
        if self.packed:
            sh = np.uint64(self.pos_bits)
            lo = np.searchsorted(self.keys, codes << sh, side="left")
            hi = np.searchsorted(self.keys, (codes + np.uint64(1)) << sh, side="left")
            if 2 * self.k + self.pos_bits == 64:  # the largest code overflows when shifted + 1
                top = codes == np.uint64((1 << (2 * self.k)) - 1)
                hi[top] = self.keys.size
        else:
            lo = np.searchsorted(self.keys, codes, side="left")
            hi = np.searchsorted(self.keys, codes, side="right")
        return lo.astype(np.int64), hi.astype(np.int64)

    def positions(self, idx: np.ndarray) -> np.ndarray:
        if self.packed:
            mask = np.uint64((1 << self.pos_bits) - 1)
            return (self.keys[idx] & mask).astype(np.int64)
        return self.pos[idx].astype(np.int64)


def _best_identity(sample, index: _SeedIndex, genome: np.ndarray, max_seed_occurrences: int,
                   max_candidates: int) -> tuple[float, bool, bool]:
    """Best ungapped identity of ``sample`` over the candidate diagonals of its seed hits.

    Returns (identity, had a candidate window, candidates were capped)."""
    L = sample.size
    codes, spos = _kmer_codes(sample, index.k)
    if codes.size == 0:
        return 0.0, False, False
    lo, hi = index.lookup(codes)
    occ = hi - lo
    take = np.minimum(occ, max_seed_occurrences)
    capped = bool((occ > take).any())
    total = int(take.sum())
    if total == 0:
        return 0.0, False, capped
    seed = np.repeat(np.arange(codes.size), take)
    within = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
    diag = index.positions(lo[seed] + within) - spos[seed]
    # the whole window [diag, diag + L) must lie inside one training array
    arr = np.searchsorted(index.starts, diag, side="right") - 1
    ok = (diag >= 0) & (arr >= 0)
    ok[ok] &= diag[ok] + L <= index.ends[arr[ok]]
    diag = diag[ok]
    if diag.size == 0:
        return 0.0, False, capped
    cand, support = np.unique(diag, return_counts=True)
    if cand.size > max_candidates:
        capped = True
        cand = cand[np.argsort(-support, kind="stable")[:max_candidates]]
    query = np.where(sample < ACGT, sample, 254).astype(np.uint8)  # sample N never matches
    best = 0
    rows = max(1, (1 << 22) // max(L, 1))
    offs = np.arange(L)
    for a in range(0, cand.size, rows):
        window = genome[cand[a:a + rows, None] + offs]
        best = max(best, int((window == query).sum(axis=1).max()))
    return best / L, True, capped


def memorization(samples, train_seqs, seed_k: int = 20, both_strands: bool = True,
                 max_seed_occurrences: int = 1000, max_candidates: int = 10000) -> dict:
    """Does the model copy its training data? Best ungapped identity of each sample.

    For each sample, its identity (fraction of its bases equal, over its whole length) to the
    best-matching equally long stretch of one training array, searched over every diagonal
    (sample offset in the training data) supported by at least one exact shared ``seed_k``-mer
    (N-free), on the forward strand and, with ``both_strands``, for the sample's reverse
    complement. A window must lie wholly inside one training array (no match across contig or
    segment boundaries). Sample N bases count as mismatches.

    Sensitivity: a stretch sharing no exact ``seed_k``-mer with the sample is not found (any
    identity >= 0.9 over a few hundred bases is essentially always seeded at k = 20). A sample
    with no candidate window gets identity 0.0 and ``per_sample_seed_hit`` False: read it as
    "below seed sensitivity", not as 0 % identity (the mean/median include these zeros; see
    ``mean_max_identity_seeded``). Repetitive seeds are bounded: at most
    ``max_seed_occurrences`` occurrences per seed k-mer and the ``max_candidates`` diagonals
    with most seed support are evaluated (``per_sample_capped`` marks samples where a cap applied,
    whose identity is then a lower bound).

    Returns ``per_sample_identity`` (list of floats in [0, 1]), ``per_sample_seed_hit``,
    ``per_sample_capped``, ``mean_max_identity``, ``median_max_identity``,
    ``mean_max_identity_seeded`` (over samples with a seed hit; nan if none),
    ``exact_copy_rate`` (fraction with identity 1.0), ``frac_identity_ge_0.9``,
    ``frac_no_seed_hit`` and ``seed_k``.

    Cost: the index is one sorted uint64 per training position when ``2 * seed_k`` plus the bits
    of the total training length fit in 64 (k <= 20 up to 16.7 Mbp), plus a uint8 copy of the
    training sequence: 12 Mbp -> ~110 MB held, ~200 MB peak, ~1.5 s for 64 x 1 kbp samples.
    Longer seeds fall back to argsorted codes + int32 positions (~2-3x the memory and time).
    """
    if not 1 <= seed_k <= 31:
        raise ValueError(f"seed_k must be in 1..31, got {seed_k}")
    train_seqs = list(train_seqs)
    index = _SeedIndex(train_seqs, seed_k)
    genome = (np.concatenate([np.asarray(t, dtype=np.uint8) for t in train_seqs])
              if train_seqs else np.zeros(0, np.uint8))
    comp = np.array([3, 2, 1, 0], dtype=np.int64)
    ident, hit, capped = [], [], []
    for s in samples:
        s = np.asarray(s, dtype=np.int64)
        strands = [s]
        if both_strands:
            strands.append(np.where(s < ACGT, comp[np.minimum(s, 3)], s)[::-1].copy())
        best, any_hit, any_cap = 0.0, False, False
        for q in strands:
            i, h, c = _best_identity(q, index, genome, max_seed_occurrences, max_candidates)
            best, any_hit, any_cap = max(best, i), any_hit or h, any_cap or c
        ident.append(best)
        hit.append(any_hit)
        capped.append(any_cap)
    a = np.array(ident, dtype=np.float64)
    h = np.array(hit, dtype=bool)
    nan = float("nan")
    return {
        "per_sample_identity": ident,
        "per_sample_seed_hit": hit,
        "per_sample_capped": capped,
        "mean_max_identity": float(a.mean()) if a.size else nan,
        "median_max_identity": float(np.median(a)) if a.size else nan,
        "mean_max_identity_seeded": float(a[h].mean()) if h.any() else nan,
        "exact_copy_rate": float((a == 1.0).mean()) if a.size else nan,
        "frac_identity_ge_0.9": float((a >= 0.9).mean()) if a.size else nan,
        "frac_no_seed_hit": float((~h).mean()) if a.size else nan,
        "seed_k": int(seed_k),
    }


# -- one set ----------------------------------------------------------------------------------

def score_set(seqs, reference_counts: dict[int, np.ndarray], max_k: int = 6) -> dict:
    """Scores of one set of sequences.

    ``kmer_js``: {k: Jensen-Shannon divergence in bits of the set's k-mer spectrum to
    ``reference_counts[k]``} for k = 1..max_k (k-mer counts as from ``kmer_counts``);
    ``gc_mean``/``gc_sd``: mean and SD (ddof 0) over sequences of the per-sequence GC fraction;
    ``cpg_oe``: pooled CpG observed/expected; ``tandem_repeat_frac``: fraction of bases in short
    tandem repeats (``tandem_repeat_fraction``); plus every key of ``homopolymer_stats``.
    """
    seqs = list(seqs)
    kmer_js = {k: js_divergence(kmer_counts(seqs, k), reference_counts[k])
               for k in range(1, max_k + 1)}
    gc = np.array([gc_content(s) for s in seqs], dtype=np.float64)
    gc = gc[~np.isnan(gc)]
    return {"kmer_js": kmer_js,
            "gc_mean": float(gc.mean()) if gc.size else float("nan"),
            "gc_sd": float(gc.std()) if gc.size else float("nan"),
            "cpg_oe": cpg_observed_expected(seqs),
            "tandem_repeat_frac": tandem_repeat_fraction(seqs),
            **homopolymer_stats(seqs)}
