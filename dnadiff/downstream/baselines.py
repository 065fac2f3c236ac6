"""The scikit-learn methods: the k-mer logistic regression (k and C chosen on validation, and
the plain single-k one beside it) and the logistic regression of the linear probe."""

from __future__ import annotations

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from dnadiff.evaluation.kmers import kmer_frequencies
from dnadiff.tokenizers import N_BASES

#: the single k-mer sizes of the plain k-mer baseline (``kmer_one_k``)
ONE_K = (3, 4, 5, 6)


# -- scikit-learn methods ------------------------------------------------------------------------
def kmer_matrix(seqs, max_k: int):
    """Sparse k-mer frequencies (k = 1..max_k concatenated; each k sums to 1 per sequence)."""
    return kmer_frequencies(seqs, max_k, sparse_matrix=True)


#: the inverse regularization strengths tried on validation (logistic regression)
C_GRID = (1e-5, 1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 100.0)


def fit_logistic(xtr, ytr, xva, yva, cs=C_GRID, seed: int = 0):
    """Standardized logistic regression; C picked by validation accuracy."""
    sparse_in = hasattr(xtr, "tocsr")
    best = None
    for c in cs:
        clf = make_pipeline(StandardScaler(with_mean=not sparse_in),
                            LogisticRegression(C=c, max_iter=3000, random_state=seed))
        clf.fit(xtr, ytr)
        acc = float((clf.predict(xva) == yva).mean())
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best[2], {"val_accuracy": best[0], "C": best[1]}


def kmer_feature_sets(max_k: int) -> list[tuple[str, int, int]]:
    """(name, first column, end column) of the k-mer features tried: each single k, and every
    k from 1 up to k, as column ranges of :func:`kmer_matrix` (k = 1..max_k side by side)."""
    offsets = [0]
    for k in range(1, max_k + 1):
        offsets.append(offsets[-1] + N_BASES ** k)
    sets = [(f"k={k}", offsets[k - 1], offsets[k]) for k in range(1, max_k + 1)]
    sets += [(f"k=1..{k}", 0, offsets[k]) for k in range(2, max_k + 1)]
    return sets


def fit_kmer(tr, va, max_k: int, seed: int = 0, cs=C_GRID):
    """The k-mer logistic regression with its features and C chosen together on validation:
    every feature set of :func:`kmer_feature_sets` (each single k, and 1..k) at every C of
    ``cs``. Returns the chosen classifier and its record, and the same for the best single k
    in :data:`ONE_K` (the plain baseline), or None for it when ``max_k`` < 3."""
    full = [kmer_matrix(s.seqs, max_k).tocsc() for s in (tr, va)]
    tried = []  # (val accuracy, -columns, name, a, b, C, classifier): ties go to fewer columns
    for name, a, b in kmer_feature_sets(max_k):
        for c in cs:
            clf, rec = fit_logistic(full[0][:, a:b], tr.labels, full[1][:, a:b], va.labels,
                                    cs=(c,), seed=seed)
            tried.append((rec["val_accuracy"], a - b, name, a, b, c, clf))
    grid = {f"{name} C={c:g}": round(acc, 4) for acc, _, name, _, _, c, _ in tried}

    def pick(rows):
        acc, _, name, a, b, c, clf = max(rows, key=lambda t: t[:2])
        return clf, {"val_accuracy": acc, "C": c, "features": name, "columns": [a, b],
                     "max_k": max_k}
    clf, rec = pick(tried)
    rec["grid_val_accuracy"] = grid
    single = [t for t in tried if t[2] in {f"k={k}" for k in ONE_K}]
    return clf, rec, (pick(single) if single else None)
