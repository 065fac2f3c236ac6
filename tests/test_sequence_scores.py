"""Sequence-level scores: k-mer codes and per-sequence frequencies (kmers); CpG o/e, homopolymers,
tandem repeats (composition); Markov/iid baselines; discriminator AUROC and Frechet distance
(two_sample); memorization search; score_set (dna_scores)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import hadamard

from dnadiff.evaluation.baselines import MarkovChain, fit_markov, iid_sample
from dnadiff.evaluation.composition import (
    cpg_observed_expected,
    homopolymer_stats,
    tandem_repeat_fraction,
)
from dnadiff.evaluation.dna_scores import score_set
from dnadiff.evaluation.kmers import (
    js_divergence,
    kmer_codes,
    kmer_counts,
    kmer_frequencies,
    kmer_spectra,
    spectrum_js,
)
from dnadiff.evaluation.memorization import memorization
from dnadiff.evaluation.two_sample import discriminator_auroc, frechet_distance
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()


def ids(s: str) -> np.ndarray:
    return TOK.encode(s).astype(np.int64)


def rc(a: np.ndarray) -> np.ndarray:
    return TOK.reverse_complement(a)


# -- the k-mer encoder (counts: tests/test_evaluation.py) -----------------------------------

def test_kmer_codes_and_positions_skip_n():
    codes, pos = kmer_codes(ids("ACGNTTA"), 2)
    # AC=1 CG=6, GN and NT touch the N, TT=15 TA=12
    assert codes.tolist() == [1, 6, 15, 12] and pos.tolist() == [0, 1, 4, 5]
    assert codes.dtype == np.int64 and pos.dtype == np.int64
    assert kmer_codes(ids("AC"), 3)[0].size == 0 and kmer_codes(ids("NNN"), 1)[0].size == 0
    assert kmer_codes(ids("T" * 31), 31)[0].tolist() == [4 ** 31 - 1]  # k <= 31 fits int64


def test_kmer_frequencies_dense_and_sparse_agree_with_counts():
    seqs = [ids("ACGTA"), ids("AANAA"), ids("NN"), ids("GGGCCCATAT")]
    dense = kmer_frequencies(seqs, 3)
    assert dense.shape == (4, 4 + 16 + 64) and dense.dtype == np.float64
    sp = kmer_frequencies(seqs, 3, sparse_matrix=True)
    assert sp.format == "csr" and sp.has_sorted_indices
    assert np.array_equal(sp.toarray(), dense)
    for i, s in enumerate(seqs):
        off = 0
        for k in (1, 2, 3):
            c = kmer_counts([s], k).astype(np.float64)
            expect = c / c.sum() if c.sum() else c
            assert np.array_equal(dense[i, off:off + 4 ** k], expect), (i, k)
            off += 4 ** k
    assert dense[2].sum() == 0.0  # no k-mer at all


def test_kmer_spectra_and_spectrum_js():
    ref_seqs = [ids("ACGTACGGTTACNAC")]
    spectra = kmer_spectra(ref_seqs, 3)
    assert list(spectra) == [1, 2, 3]
    assert all(np.array_equal(spectra[k], kmer_counts(ref_seqs, k)) for k in spectra)
    gen = [ids("AACCGGTT"), ids("TTTACG")]
    assert spectrum_js(gen, spectra) == {k: js_divergence(kmer_counts(gen, k), spectra[k])
                                         for k in (1, 2, 3)}


# -- CpG o/e ----------------------------------------------------------------------------------

def test_cpg_oe_hand_examples():
    # CGCGCG: 3 CG, 3 C, 3 G, 6 bases -> 3 * 6 / 9
    assert cpg_observed_expected([ids("CGCGCG")]) == pytest.approx(2.0)
    # C and G present but never as CG
    assert cpg_observed_expected([ids("GGCCAATT")]) == 0.0
    # pooled over sequences; CG across the N and across sequences is not counted
    # seqs: "ACGT" (1 CG) and "CNGA": bases A C G T C G A = 7, C=2, G=2, CG=1
    assert cpg_observed_expected([ids("ACGT"), ids("CNGA")]) == pytest.approx(1 * 7 / 4)
    assert cpg_observed_expected([ids("AC"), ids("GT")]) == 0.0
    assert math.isnan(cpg_observed_expected([ids("AAAT")]))


def test_cpg_oe_iid_is_about_one():
    seqs = iid_sample([1, 1, 1, 1], 10, 10_000, seed=3)
    assert cpg_observed_expected(seqs) == pytest.approx(1.0, abs=0.05)


# -- homopolymers -----------------------------------------------------------------------------

def test_homopolymer_hand_example():
    # runs: AAAA(4) C GGGGGG(6) T AAAAAAAA(8), then CCC and CCC split by an N
    s = "AAAA" + "C" + "GGGGGG" + "T" + "AAAAAAAA" + "NN" + "CCC" + "N" + "CCC"
    st = homopolymer_stats([ids(s)])
    n_acgt = 4 + 1 + 6 + 1 + 8 + 3 + 3  # 26; N breaks CCC|CCC into two runs of 3
    assert st["runs_ge_4_per_kb"] == pytest.approx(3 * 1000 / n_acgt)
    assert st["runs_ge_6_per_kb"] == pytest.approx(2 * 1000 / n_acgt)
    assert st["runs_ge_8_per_kb"] == pytest.approx(1 * 1000 / n_acgt)
    assert st["longest"] == 8
    assert st["frac_bases_in_runs_ge_6"] == pytest.approx(14 / n_acgt)


def test_homopolymer_maximal_runs_and_n():
    # a run of 12 is one run (not three of 4); a long N stretch is not a run
    st = homopolymer_stats([ids("A" * 12 + "N" * 20)], min_lengths=(4, 12, 13))
    assert st["runs_ge_4_per_kb"] == pytest.approx(1000 / 12)
    assert st["runs_ge_12_per_kb"] == pytest.approx(1000 / 12)
    assert st["runs_ge_13_per_kb"] == 0.0
    assert st["longest"] == 12 and st["frac_bases_in_runs_ge_6"] == 1.0
    # runs do not continue across sequences; pooled denominator
    st = homopolymer_stats([ids("TTTT"), ids("TTTTG")])
    assert st["runs_ge_4_per_kb"] == pytest.approx(2 * 1000 / 9)
    assert st["longest"] == 4 and st["frac_bases_in_runs_ge_6"] == 0.0
    assert homopolymer_stats([])["longest"] == 0


# -- Markov chains ----------------------------------------------------------------------------

def _true_order2_chain() -> MarkovChain:
    rng = np.random.default_rng(7)
    probs = rng.dirichlet(np.full(4, 0.7), size=16)
    return MarkovChain(2, probs, np.full(16, 1 / 16))


def test_markov_fit_recovers_order2_chain():
    truth = _true_order2_chain()
    seqs = truth.sample(100, 5000, seed=1)
    fit = fit_markov(seqs, 2)
    assert fit.order == 2 and fit.probs.shape == (16, 4) and fit.initial.shape == (16,)
    np.testing.assert_allclose(fit.probs.sum(1), 1.0)
    assert np.abs(fit.probs - truth.probs).max() < 0.02
    # the true chain explains its own data better than an order-0 fit
    assert truth.log_likelihood(seqs) > fit_markov(seqs, 0).log_likelihood(seqs)


def test_markov_sample_deterministic():
    chain = _true_order2_chain()
    a, b, c = chain.sample(3, 50, seed=5), chain.sample(3, 50, seed=5), chain.sample(3, 50, 6)
    assert len(a) == 3 and all(x.shape == (50,) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert all(((x >= 0) & (x < 4)).all() for x in a)


def test_markov_order0_is_composition():
    seqs = [ids("AACGTTTTGN"), ids("CCCA")]
    counts = kmer_counts(seqs, 1)
    m = fit_markov(seqs, 0, pseudocount=0.0)
    np.testing.assert_allclose(m.probs[0], counts / counts.sum())
    np.testing.assert_allclose(fit_markov(seqs, 0).probs[0], (counts + 1) / (counts.sum() + 4))
    assert m.initial.tolist() == [1.0]
    # an order-0 sample has the composition
    x = np.concatenate(m.sample(20, 2000, seed=0))
    np.testing.assert_allclose(np.bincount(x, minlength=4) / x.size, m.probs[0], atol=0.01)


def test_markov_log_likelihood_brute_force():
    seqs = [ids("ACGTTGCAAC"), ids("GGTACNTTAC"), ids("TA")]
    m = fit_markov(seqs, 2, pseudocount=0.5)
    brute = 0.0
    for s in seqs:
        s = s.tolist()
        if len(s) >= 2 and max(s[:2]) < 4:
            brute += math.log(m.initial[4 * s[0] + s[1]])
        for t in range(2, len(s)):
            w = s[t - 2:t + 1]
            if max(w) < 4:
                brute += math.log(m.probs[4 * w[0] + w[1], w[2]])
    assert m.log_likelihood(seqs) == pytest.approx(brute, rel=1e-12)
    # order-0 likelihood: sum of log base probabilities
    m0 = fit_markov(seqs, 0)
    b0 = sum(math.log(m0.probs[0, b]) for s in seqs for b in s.tolist() if b < 4)
    assert m0.log_likelihood(seqs) == pytest.approx(b0, rel=1e-12)


def test_iid_sample_composition():
    seqs = iid_sample({"A": 70, "C": 10, "G": 10, "T": 10, "N": 999}, 10, 5000, seed=2)
    assert len(seqs) == 10 and seqs[0].shape == (5000,)
    f = np.bincount(np.concatenate(seqs), minlength=4) / 50_000
    np.testing.assert_allclose(f, [0.7, 0.1, 0.1, 0.1], atol=0.01)
    again = iid_sample(np.array([0.7, 0.1, 0.1, 0.1]), 10, 5000, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(seqs, again))


# -- discriminator ----------------------------------------------------------------------------

def test_discriminator_same_distribution_near_half():
    real = iid_sample([3, 2, 2, 3], 150, 300, seed=0)
    gen = iid_sample([3, 2, 2, 3], 200, 300, seed=1)
    r = discriminator_auroc(real, gen, k=3, folds=5, seed=0)
    assert r["n_per_class"] == 150 and r["folds"] == 5 and len(r["auroc_per_fold"]) == 5
    assert abs(r["auroc_mean"] - 0.5) < 0.1
    assert r == discriminator_auroc(real, gen, k=3, folds=5, seed=0)  # deterministic


def test_discriminator_separates_structure():
    rng = np.random.default_rng(0)
    real = iid_sample([1, 1, 1, 1], 100, 300, seed=0)
    gen = [np.tile(rng.integers(0, 4, 3), 100) for _ in range(100)]  # period-3 repeats
    r = discriminator_auroc(real, gen, k=4, folds=5, seed=0)
    assert r["auroc_mean"] > 0.95


# -- Frechet distance -------------------------------------------------------------------------

def test_frechet_identical_translation_symmetric():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = rng.normal(size=16)
    assert frechet_distance(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    b = rng.normal(size=(400, 16)) * 2.0 + 1.0
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)
    assert frechet_distance(a, b) > 1.0
    # singular covariances (fewer items than dimensions) stay finite and non-negative
    small = rng.normal(size=(5, 16))
    assert frechet_distance(small, small) == pytest.approx(0.0, abs=1e-6)
    assert np.isfinite(frechet_distance(small, b)) and frechet_distance(small, b) >= 0


def test_frechet_diagonal_closed_form():
    # columns of a Hadamard matrix: zero mean, orthogonal -> exactly diagonal covariances
    h = hadamard(8)[:, 1:4].astype(np.float64)
    sa, sb = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    ma, mb = np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 2.0])
    a, b = h * sa + ma, h * sb + mb
    var_a, var_b = sa ** 2 * 8 / 7, sb ** 2 * 8 / 7  # unbiased sample variances
    expected = ((ma - mb) ** 2).sum() + ((np.sqrt(var_a) - np.sqrt(var_b)) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


# -- memorization -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train():
    rng = np.random.default_rng(11)
    t0 = rng.integers(0, 4, 20_000).astype(np.uint8)
    t1 = rng.integers(0, 4, 8_000).astype(np.uint8)
    t1[3000:3050] = 4  # an N run
    return [t0, t1]


def test_memorization_exact_copies_and_substitutions(train):
    t0, t1 = train
    copy0 = t0[1000:1200].astype(np.int64)
    copy1 = t1[100:1124].astype(np.int64)
    mutated = t0[5000:5200].astype(np.int64).copy()
    for p in (10, 90, 170):  # 3 substitutions
        mutated[p] = (mutated[p] + 1) % 4
    r = memorization([copy0, copy1, mutated], train, seed_k=20)
    assert r["per_sample_identity"] == [1.0, 1.0, pytest.approx(197 / 200)]
    assert r["exact_copy_rate"] == pytest.approx(2 / 3)
    assert r["frac_identity_ge_0.9"] == 1.0 and r["per_sample_seed_hit"] == [True] * 3
    assert r["seed_k"] == 20 and r["mean_max_identity"] == pytest.approx((2 + 197 / 200) / 3)
    # the last window of an array is a candidate
    end = t1[-300:].astype(np.int64)
    assert memorization([end], train)["per_sample_identity"] == [1.0]


def test_memorization_reverse_complement(train):
    sample = rc(train[0][7000:7500])
    assert memorization([sample], train, both_strands=True)["per_sample_identity"] == [1.0]
    r = memorization([sample], train, both_strands=False)
    assert r["per_sample_identity"][0] < 0.6 and r["exact_copy_rate"] == 0.0


def test_memorization_random_and_boundary(train):
    t0, t1 = train
    rng = np.random.default_rng(99)
    random = rng.integers(0, 4, 500)
    # spans the end of t0 and the start of t1: each half matches, the whole must not
    spans = np.concatenate([t0[-100:], t1[:100]]).astype(np.int64)
    r = memorization([random, spans], train)
    assert r["per_sample_seed_hit"] == [False, False]
    assert r["per_sample_identity"] == [0.0, 0.0] and r["frac_no_seed_hit"] == 1.0
    assert math.isnan(r["mean_max_identity_seeded"])
    # a sample overlapping the N run: N positions in the training data are mismatches
    over_n = t1[2900:3100].astype(np.int64)
    ident = memorization([over_n], train)["per_sample_identity"][0]
    assert ident == pytest.approx(150 / 200)


def test_memorization_seed_k_and_small_shift(train):
    # a seed length whose packed key uses all 64 bits still finds copies (k = 31 -> argsort)
    sample = train[0][123:623].astype(np.int64)
    for k in (11, 31):
        assert memorization([sample], train, seed_k=k)["per_sample_identity"] == [1.0]
    # one sample base that is N counts as a mismatch
    with_n = sample.copy()
    with_n[250] = 4
    assert memorization([with_n], train)["per_sample_identity"] == [pytest.approx(499 / 500)]


def test_memorization_full_64_bit_key():
    # 40,000 bases need 16 position bits; k = 24 fills all 64 bits of the packed key, and the
    # all-T seed (the largest code) must still be found
    rng = np.random.default_rng(5)
    t = rng.integers(0, 4, 40_000).astype(np.uint8)
    t[600:700] = 3
    r = memorization([t[600:700].astype(np.int64)], [t], seed_k=24, both_strands=False)
    assert r["per_sample_identity"] == [1.0]


def test_memorization_repetitive_caps():
    # a poly-A training stretch and a poly-A sample: many hits per seed, still exact
    t = np.zeros(3000, dtype=np.uint8)
    r = memorization([np.zeros(200, np.int64)], [t], max_seed_occurrences=50,
                     max_candidates=10)
    assert r["per_sample_identity"] == [1.0] and r["per_sample_capped"] == [True]


# -- score_set --------------------------------------------------------------------------------

def test_score_set():
    seqs = [ids("ACGTTTTTTGCA"), ids("GGGCCCANT")]
    ref = {k: kmer_counts([ids("ACGTACGTAAACCCGGGTTT")], k) + 1 for k in range(1, 4)}
    s = score_set(seqs, ref, max_k=3)
    assert set(s["kmer_js"]) == {1, 2, 3}
    assert s["kmer_js"][2] == pytest.approx(js_divergence(kmer_counts(seqs, 2), ref[2]))
    gc = [4 / 12, 6 / 8]
    assert s["gc_mean"] == pytest.approx(np.mean(gc)) and s["gc_sd"] == pytest.approx(np.std(gc))
    assert s["cpg_oe"] == pytest.approx(cpg_observed_expected(seqs))
    assert s["longest"] == 6 and s["runs_ge_6_per_kb"] == pytest.approx(1000 / 20)


def test_tandem_repeat_fraction_exact():
    enc = {"A": 0, "C": 1, "G": 2, "T": 3, "N": 4}

    def ids(s):
        return np.array([enc[c] for c in s])

    # ACACAC: three copies of AC -> all 6 bases; flanks G, T are outside
    assert tandem_repeat_fraction([ids("GACACACT")]) == 6 / 8
    # two copies only: not a repeat of >= 3 copies
    assert tandem_repeat_fraction([ids("GACACTTG")]) == 0.0
    # CAGCAGCAG (period 3, 3 copies) + ACGT: 9 of 13
    assert tandem_repeat_fraction([ids("CAGCAGCAGACGT")]) == 9 / 13
    # N breaks a repeat and is not counted in the denominator
    assert tandem_repeat_fraction([ids("ACACNCAC")]) == 0.0
    # pooled over sequences
    assert tandem_repeat_fraction([ids("ACACAC"), ids("ACGT")]) == 6 / 10
    assert np.isnan(tandem_repeat_fraction([ids("NNN")]))
