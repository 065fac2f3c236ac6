"""The scikit-learn methods: the k-mer logistic regression (k, the feature scaling and C chosen
on validation, and the plain single-k one beside it) and the logistic regression of the linear
probe."""

from __future__ import annotations

import copy

from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

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


#: the feature scalings tried for the k-mer regression: each sequence's vector L2-normalised,
#: the frequencies as they are, or each column standardised (on train); a tie on validation
#: goes to the earlier one
SCALINGS = ("l2", "none", "standard")


def _scaler(scaling: str, sparse_in: bool):
    if scaling == "standard":
        return StandardScaler(with_mean=not sparse_in)
    if scaling == "l2":
        return Normalizer(norm="l2")
    if scaling == "none":
        return "passthrough"
    raise ValueError(f"unknown feature scaling {scaling!r} (one of {', '.join(SCALINGS)})")


def fit_logistic(xtr, ytr, xva, yva, cs=C_GRID, seed: int = 0, scaling: str = "standard"):
    """Logistic regression on the features scaled as ``scaling`` says (:data:`SCALINGS`;
    standardised by default); C picked by validation accuracy."""
    sparse_in = hasattr(xtr, "tocsr")
    best = None
    for c in cs:
        clf = make_pipeline(_scaler(scaling, sparse_in),
                            LogisticRegression(C=c, max_iter=3000, random_state=seed))
        clf.fit(xtr, ytr)
        acc = float((clf.predict(xva) == yva).mean())
        if best is None or acc > best[0]:
            best = (acc, c, clf)
    return best[2], {"val_accuracy": best[0], "C": best[1], "scaling": scaling}


def _c_path(xtr, ytr, xva, yva, scaling: str, cs, seed: int, what: tuple) -> list[tuple]:
    """One feature set and scaling at every C (ascending), each fit starting from the solution
    at the C before it (the same optimum up to the solver's tolerance, in fewer iterations,
    and the scaling fitted once on train): the rows of
    :func:`fit_kmer`'s grid, each with its classifier (the fitted scaling and regression)."""
    name, a, b = what
    scaler = _scaler(scaling, hasattr(xtr, "tocsr"))
    if not isinstance(scaler, str):  # "passthrough": the frequencies as they are
        scaler.fit(xtr)
        xtr, xva = scaler.transform(xtr), scaler.transform(xva)
    lr = LogisticRegression(max_iter=3000, random_state=seed, warm_start=True)
    rows = []
    for c in cs:
        lr.set_params(C=c).fit(xtr, ytr)
        acc = float((lr.predict(xva) == yva).mean())
        clf = make_pipeline(scaler, copy.deepcopy(lr))
        rows.append((acc, a - b, name, a, b, scaling, c, clf))
    return rows


def kmer_feature_sets(max_k: int) -> list[tuple[str, int, int]]:
    """(name, first column, end column) of the k-mer features tried: each single k, and every
    k from 1 up to k, as column ranges of :func:`kmer_matrix` (k = 1..max_k side by side)."""
    offsets = [0]
    for k in range(1, max_k + 1):
        offsets.append(offsets[-1] + N_BASES ** k)
    sets = [(f"k={k}", offsets[k - 1], offsets[k]) for k in range(1, max_k + 1)]
    sets += [(f"k=1..{k}", 0, offsets[k]) for k in range(2, max_k + 1)]
    return sets


def fit_kmer(tr, va, max_k: int, seed: int = 0, cs=C_GRID, scalings=SCALINGS):
    """The k-mer logistic regression with its features, their scaling and C chosen together on
    validation: every feature set of :func:`kmer_feature_sets` (each single k, and 1..k), each
    scaling of ``scalings`` (:data:`SCALINGS`), at every C of ``cs``. Returns the chosen
    classifier and its record (``features``, ``scaling``, ``C``, and the validation accuracy
    of every point of the grid), and the same for the best single k in :data:`ONE_K` (the
    plain baseline, over the same scalings and C), or None for it when ``max_k`` < 3."""
    full = [kmer_matrix(s.seqs, max_k).tocsc() for s in (tr, va)]
    # (val accuracy, -columns, name, a, b, scaling, C, classifier): ties go to fewer columns,
    # then to the earlier scaling and the smaller C
    tried = []
    for name, a, b in kmer_feature_sets(max_k):
        for scaling in scalings:
            tried += _c_path(full[0][:, a:b], tr.labels, full[1][:, a:b], va.labels, scaling,
                             sorted(cs), seed, (name, a, b))
    grid = {f"{name} {scaling} C={c:g}": round(acc, 4)
            for acc, _, name, _, _, scaling, c, _ in tried}

    def pick(rows):
        acc, _, name, a, b, scaling, c, clf = max(rows, key=lambda t: t[:2])
        return clf, {"val_accuracy": acc, "C": c, "features": name, "scaling": scaling,
                     "columns": [a, b], "max_k": max_k}
    clf, rec = pick(tried)
    rec["grid_val_accuracy"] = grid
    single = [t for t in tried if t[2] in {f"k={k}" for k in ONE_K}]
    return clf, rec, (pick(single) if single else None)
