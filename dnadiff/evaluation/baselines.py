"""Baselines for generated DNA: a k-th order Markov chain fitted on real DNA, and i.i.d. bases.

``fit_markov`` / ``MarkovChain``: sampling and log-likelihood in nats; ``iid_sample``: i.i.d.
bases with a given composition; ``markov_heldout_bits``: the held-out bits per base of a k-th
order Markov chain (the classical baseline of a DNA language model's likelihood). Sequences are
arrays of token ids (:mod:`dnadiff.tokenizers`); k-mer codes are those of
:mod:`dnadiff.evaluation.kmers`.
"""

from __future__ import annotations

import numpy as np

from dnadiff.evaluation.kmers import kmer_codes, kmer_counts
from dnadiff.tokenizers import BASES, N_BASES


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
        n_ctx = N_BASES ** self.order
        self.probs = np.asarray(probs, dtype=np.float64).reshape(n_ctx, N_BASES)
        self.initial = (np.full(n_ctx, 1.0 / n_ctx) if initial is None
                        else np.asarray(initial, dtype=np.float64).reshape(n_ctx))
        if not np.allclose(self.probs.sum(1), 1.0) or not np.isclose(self.initial.sum(), 1.0):
            raise ValueError("Markov chain probabilities must sum to 1")

    def sample(self, n: int, length: int, seed: int) -> list[np.ndarray]:
        """``n`` int64 sequences of ``length`` bases; deterministic for ``seed``."""
        rng = np.random.default_rng(seed)
        out = np.zeros((n, length), dtype=np.int64)
        k = self.order
        n_ctx = N_BASES ** k
        state = rng.choice(n_ctx, size=n, p=self.initial) if k else np.zeros(n, np.int64)
        for j in range(min(k, length)):  # decode the first k bases from the initial code
            out[:, j] = (state // N_BASES ** (k - 1 - j)) % N_BASES
        cdf = np.cumsum(self.probs, axis=1)[:, :N_BASES - 1]
        for t in range(k, length):
            u = rng.random(n)
            b = (u[:, None] >= cdf[state]).sum(axis=1)
            out[:, t] = b
            state = (state * N_BASES + b) % n_ctx
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
            weights = N_BASES ** np.arange(k - 1, -1, -1)
            for s in seqs:
                head = np.asarray(s[:k], dtype=np.int64)
                if head.size == k and (head < N_BASES).all():
                    total += float(log_init[int(head @ weights)])
        return total

    def window_log_likelihood(self, windows) -> np.ndarray:
        """Log-likelihood in nats of each row of ``windows`` ([n, L] token ids), scored as
        :meth:`log_likelihood` scores one sequence (the same N rules), all rows at once."""
        x = np.asarray(windows, dtype=np.int64)
        k, (n, length) = self.order, x.shape
        is_base = x < N_BASES
        digit = np.where(is_base, x, 0)
        with np.errstate(divide="ignore"):
            log_p, log_init = np.log(self.probs).ravel(), np.log(self.initial)
        m = max(length - k, 0)
        code, ok = np.zeros((n, m), np.int64), np.ones((n, m), bool)
        for j in range(k + 1):
            code = code * N_BASES + digit[:, j:j + m]
            ok &= is_base[:, j:j + m]
        total = np.where(ok, log_p[code], 0.0).sum(1)
        if k and length >= k:
            head = (digit[:, :k] * N_BASES ** np.arange(k - 1, -1, -1)).sum(1)
            total += np.where(is_base[:, :k].all(1), log_init[head], 0.0)
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
    counts = kmer_counts(seqs, order + 1).reshape(N_BASES ** order, N_BASES).astype(np.float64)
    counts += pseudocount
    row = counts.sum(axis=1, keepdims=True)
    probs = np.divide(counts, row, out=np.full_like(counts, 1.0 / N_BASES), where=row > 0)
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
        p = np.array([composition.get(b, 0) for b in BASES], dtype=np.float64)
    else:
        p = np.asarray(composition, dtype=np.float64).reshape(N_BASES)
    if p.sum() <= 0 or (p < 0).any():
        raise ValueError(f"composition must be non-negative with a positive sum, got {p}")
    rng = np.random.default_rng(seed)
    return list(rng.choice(N_BASES, size=(n, length), p=p / p.sum()).astype(np.int64))


def markov_heldout_bits(train, test, orders, complement=None, alpha: float = 1.0) -> list[dict]:
    """Bits per base of k-th order Markov chains (each k of ``orders``) fitted on ``train`` and
    scored on ``test`` (lists of token-id arrays, memory-mapped chromosomes welcome). Counts are
    add-``alpha`` smoothed and taken on both strands when a ``complement`` map (of the token
    ids) is given; every base of ``test`` whose k preceding bases are all bases (no N) is
    scored. Rows: order, bits_per_token, tokens_scored."""
    comp = None if complement is None else np.asarray(complement, dtype=np.int64)
    rows = []
    for k in orders:
        counts = kmer_counts(train, k + 1).astype(np.float64)
        if comp is not None:
            counts += kmer_counts([comp[np.asarray(s)][::-1] for s in train], k + 1)
        table = counts.reshape(N_BASES ** k, N_BASES) + alpha
        logp = np.log2(table / table.sum(1, keepdims=True)).ravel()
        total, scored = 0.0, 0
        for s in test:
            codes, _ = kmer_codes(s, k + 1)
            total -= float(logp[codes].sum())
            scored += codes.size
        rows.append({"order": int(k), "bits_per_token": total / max(scored, 1),
                     "tokens_scored": int(scored)})
    return rows

