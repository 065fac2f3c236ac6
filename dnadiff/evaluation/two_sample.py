"""Two-sample comparisons of generated and real sequences.

- ``discriminator_auroc``: cross-validated AUROC of a k-mer logistic-regression classifier
  telling real from generated (0.5 = indistinguishable, 1 = perfectly separable).
- ``frechet_distance``: Frechet distance between Gaussians fitted to two embedding sets (squared
  units of the embedding), e.g. a classifier's embeddings of generated and of real sequences.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dnadiff.evaluation.kmers import kmer_frequencies


def discriminator_auroc(real, generated, k: int, folds: int = 5, seed: int = 0) -> dict:
    """How well a classifier tells real from generated sequences: cross-validated AUROC.

    Features: each sequence's normalized k-mer frequencies for every length 1..k (the config's
    ``evaluate.discriminator_k``; 4 + 16 + ... + 4^k columns), standardized within each
    training fold; classifier: L2 logistic regression (C = 1). ``folds`` = 5 and C = 1 define
    the measure (the schema documents it as 5-fold), they are not settings. The larger set is
    subsampled (deterministically, from ``seed``) to the size of the smaller; ``folds``-fold
    stratified cross-validation (shuffled with ``seed``).

    Returns ``auroc_mean`` (0.5 = indistinguishable, 1.0 = perfectly separable), ``auroc_sd``
    (sample SD over folds), ``auroc_per_fold``, ``folds`` (the number of folds) and
    ``n_per_class``.
    """
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
    x = np.vstack([kmer_frequencies(real, k), kmer_frequencies(generated, k)])
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
