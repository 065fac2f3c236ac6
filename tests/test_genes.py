"""Gene-level scores: ORFs and their two-sample distances (dnadiff.evaluation.orfs), pyrodigal
gene calls, codon periodicity, GC3 and biology_scores (dnadiff.evaluation.genes). All sequences
are constructed here (seeded); no real data needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dnadiff.evaluation import genes, orfs
from dnadiff.evaluation.genes import biology_scores, codon_periodicity, gc3, gene_calls
from dnadiff.evaluation.orfs import (
    longest_open_frame,
    longest_orf_atg,
    orf_lengths,
    orf_summary,
    two_sample_distance,
)
from dnadiff.tokenizers import DNATokenizer

STOPS = {"TAA", "TAG", "TGA"}
_COMP = str.maketrans("ACGTN", "TGCAN")

# One codon per amino acid (no Met, no stop): third positions all G/C, or (but Trp) all A/T.
GC3_CODONS = {"A": "GCC", "R": "CGC", "N": "AAC", "D": "GAC", "C": "TGC", "Q": "CAG",
              "E": "GAG", "G": "GGC", "H": "CAC", "I": "ATC", "L": "CTG", "K": "AAG",
              "F": "TTC", "P": "CCG", "S": "AGC", "T": "ACC", "W": "TGG", "Y": "TAC", "V": "GTG"}
AT3_CODONS = {"A": "GCA", "R": "CGT", "N": "AAT", "D": "GAT", "C": "TGT", "Q": "CAA",
              "E": "GAA", "G": "GGT", "H": "CAT", "I": "ATT", "L": "TTA", "K": "AAA",
              "F": "TTT", "P": "CCA", "S": "TCT", "T": "ACA", "W": "TGG", "Y": "TAT", "V": "GTT"}
AMINO = "ARNDCQEGHILKFPSTWYV"
# "TTAA" repeats (a palindrome) have a stop every 12 bp in each of the six frames: the longest
# open frame of "TTAA" * 25 is 9 bp (checked by hand and by the oracle below).
BLOCK = "TTAA" * 25


def rc(s: str) -> str:
    return s.translate(_COMP)[::-1]


def oracle(seq: str) -> tuple[int, int]:
    """Plain per-codon reference: (longest open frame, longest ATG..stop incl. stop)."""
    best_open = best_atg = 0
    for strand in (seq, rc(seq)):
        for f in range(3):
            codons = [strand[i:i + 3] for i in range(f, len(strand) - 2, 3)]
            run, start = 0, None
            for c in codons + [None]:  # None: end of sequence
                broken = c is None or c in STOPS or any(b not in "ACGT" for b in c)
                if broken:
                    best_open = max(best_open, 3 * run)
                    if c in STOPS and start is not None:
                        best_atg = max(best_atg, 3 * (start + 2))  # ATG + start codons + stop
                    run, start = 0, None
                else:
                    run += 1
                    if start is not None:
                        start += 1
                    elif c == "ATG":
                        start = 0
    return best_open, best_atg


def sense_codons(n: int, seed: int, exclude=("ATG",)) -> str:
    """n random sense codons (no stop, no ATG by default), seeded."""
    rng = np.random.default_rng(seed)
    pool = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"
            if a + b + c not in STOPS and a + b + c not in exclude]
    return "".join(pool[i] for i in rng.integers(0, len(pool), n))


def coding_sequence(seed: int, n_codons: int = 400, table=GC3_CODONS, flank: int = 300):
    """Random flank + ATG + back-translated random protein + TAA + random flank.

    Returns (sequence, 0-based gene start, gene end exclusive)."""
    rng = np.random.default_rng(seed)
    body = "".join(table[a] for a in rng.choice(list(AMINO), n_codons))
    left = "".join(rng.choice(list("ACGT"), flank))
    right = "".join(rng.choice(list("ACGT"), flank))
    return left + "ATG" + body + "TAA" + right, flank, flank + 3 * (n_codons + 2)


def shuffled(s: str, seed: int) -> str:
    a = np.frombuffer(s.encode(), np.uint8).copy()
    np.random.default_rng(seed).shuffle(a)
    return a.tobytes().decode()


# -- open frames ------------------------------------------------------------------------------

def test_block_has_stops_in_all_six_frames():
    assert longest_open_frame(BLOCK) == 9 == oracle(BLOCK)[0]
    assert longest_orf_atg(BLOCK) == 0
    # tiny cases: "TAA" is a stop on +, but its reverse complement "TTA" is a sense codon
    assert longest_open_frame("TAA") == 3
    assert longest_open_frame("TA") == 0 and longest_open_frame("") == 0
    assert longest_open_frame("N" * 30) == 0


@pytest.mark.parametrize("pad", ["", "A", "AC"])  # puts the ORF in each of the 3 frames
@pytest.mark.parametrize("minus", [False, True])
def test_open_frame_exact_length_each_frame_and_strand(pad, minus):
    body = sense_codons(200, seed=1)  # 600 bp
    seq = pad + BLOCK + "TAG" + body + "TGA" + BLOCK
    if minus:
        seq = rc(seq)
    assert longest_open_frame(seq) == 600
    assert oracle(seq)[0] == 600


@pytest.mark.parametrize("minus", [False, True])
def test_open_frame_running_off_either_end_counts(minus):
    body = sense_codons(150, seed=2)  # 450 bp, no stop
    off_right = BLOCK + "TAA" + body  # runs off the 3' end
    off_left = body + "TAA" + BLOCK  # runs off the 5' end
    for seq in (off_right, off_left):
        seq = rc(seq) if minus else seq
        assert longest_open_frame(seq) == 450 == oracle(seq)[0]
    assert longest_open_frame(body) == 450  # no stop at all: the whole sequence


def test_n_breaks_the_frame():
    body = sense_codons(200, seed=3)  # 600 bp
    seq = BLOCK + "TAG" + body + "TGA" + BLOCK
    start = len(BLOCK) + 3
    # N in codon 50 of the body: pieces of 50 and 149 codons
    i = start + 3 * 50 + 1
    with_n = seq[:i] + "N" + seq[i + 1:]
    assert longest_open_frame(with_n) == 3 * 149 == oracle(with_n)[0]
    assert longest_open_frame(rc(with_n)) == 3 * 149
    assert longest_open_frame(with_n.lower()) == 3 * 149  # lower case is accepted


def test_atg_orf_includes_stop_and_needs_both_ends():
    body = sense_codons(120, seed=4)  # no ATG inside
    seq = BLOCK + "ATG" + body + "TAA" + BLOCK
    assert longest_orf_atg(seq) == 3 * 122 == oracle(seq)[1]
    assert longest_orf_atg(rc(seq)) == 3 * 122
    assert longest_open_frame(seq) == 3 * 121  # ATG + body, stop excluded
    # an upstream in-frame ATG with no stop between gives the longer ORF
    seq2 = BLOCK + "ATG" + "GCC" * 10 + "ATG" + body + "TAA" + BLOCK
    assert longest_orf_atg(seq2) == 3 * 133
    # no stop inside the sequence (runs off the end): not an ATG ORF
    off_end = BLOCK + "ATG" + body
    assert longest_orf_atg(off_end) == oracle(off_end)[1] < 3 * 122
    # no start: not an ATG ORF either
    no_start = BLOCK + "CTG" + body + "TAA" + BLOCK
    assert longest_orf_atg(no_start) == oracle(no_start)[1] < 3 * 122
    # an N codon ends the frame but is not a stop
    with_n = BLOCK + "ATG" + body + "NAA" + BLOCK
    assert longest_orf_atg(with_n) == oracle(with_n)[1] < 3 * 122


def test_matches_plain_reference_on_random_sequences():
    rng = np.random.default_rng(5)
    for trial in range(60):
        n = int(rng.integers(0, 400))
        seq = "".join(rng.choice(list("ACGTN"), n, p=[0.24, 0.24, 0.24, 0.24, 0.04]))
        assert orf_lengths(seq) == oracle(seq), seq


def test_token_id_arrays_are_accepted():
    body = sense_codons(100, seed=6)
    seq = BLOCK + "TAG" + body + "TGA" + BLOCK
    ids = np.array(["ACGTN".index(b) for b in seq], dtype=np.uint8)
    assert orf_lengths(ids) == orf_lengths(seq) == (300, oracle(seq)[1])


def test_genes_keeps_the_orf_api_and_codes_follow_the_tokenizer():
    for name in ("longest_open_frame", "longest_orf_atg", "orf_lengths", "orf_summary",
                 "two_sample_distance"):
        assert getattr(genes, name) is getattr(orfs, name) and name in genes.__all__
    tok = DNATokenizer()
    assert orfs.encode_bases("ACGTNacgtRY").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4]
    assert orfs.encode_bases(tok.encode("ACGTNRYac")).tolist() == \
        orfs.encode_bases("ACGTNRYac").tolist()
    assert orfs.encode_bases(np.array([0, 3, 5, 6, -1])).tolist() == [0, 3, 4, 4, 4]
    assert orfs.to_letters(tok.encode("ACGTNacg")) == "ACGTNACG"


def test_orf_summary_shares_and_standard_errors():
    long_ = BLOCK + "ATG" + sense_codons(250, seed=7) + "TAA" + BLOCK  # open 753, ATG 756
    mid = BLOCK + "TAG" + sense_codons(120, seed=8) + "TGA" + BLOCK  # open 360
    short = BLOCK  # open 9
    s = orf_summary([long_, mid, short, short])
    assert s["n_seqs"] == 4
    assert s["orf_open_mean"] == pytest.approx((753 + 360 + 9 + 9) / 4)
    assert s["orf_open_median"] == pytest.approx((9 + 360) / 2)
    assert s["orf_open_ge300"] == 0.5
    assert s["orf_open_ge300_se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert s["orf_open_ge600"] == 0.25
    assert s["orf_open_ge600_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))
    assert s["orf_atg_ge600"] == 0.25 and s["orf_atg_ge300"] == 0.25
    assert s["orf_open_mean_se"] == pytest.approx(np.std([753, 360, 9, 9], ddof=1) / 2)
    assert math.isnan(orf_summary([])["orf_open_mean"])


# -- two-sample distance ----------------------------------------------------------------------

def test_two_sample_distance():
    real = [BLOCK + "TAG" + sense_codons(100 + 10 * i, seed=i) + "TGA" + BLOCK for i in range(8)]
    same = two_sample_distance(real, list(real))
    assert same["ks_statistic"] == 0.0 and same["wasserstein_bp"] == 0.0
    assert same["ks_pvalue"] == pytest.approx(1.0)
    far = two_sample_distance(real, [BLOCK] * 8)  # every length 300..510 vs 9
    assert far["ks_statistic"] == 1.0
    assert far["wasserstein_bp"] == pytest.approx(np.mean([300 + 30 * i for i in range(8)]) - 9)
    assert far["ks_pvalue"] < 1e-3
    assert (far["n_a"], far["n_b"]) == (8, 8)
    # lengths can be given directly
    d = two_sample_distance([0, 3, 6], [300, 303, 306])
    assert d["ks_statistic"] == 1.0 and d["wasserstein_bp"] == pytest.approx(300.0)


# -- gene calls, GC3 --------------------------------------------------------------------------

def test_pyrodigal_calls_the_constructed_gene():
    pytest.importorskip("pyrodigal")
    seqs, shuffles = [], []
    for seed in range(6):
        seq, a, b = coding_sequence(seed)
        seqs.append(seq)
        shuffles.append(shuffled(seq, 100 + seed))
        calls = gene_calls([seq])
        frac = calls["per_sequence"]["coding_fraction"][0]
        # gene is 1,206 of 1,806 bp; the call must cover at least 90% of it
        assert frac >= 0.9 * (b - a) / len(seq)
        assert calls["per_sequence"]["n_genes"][0] >= 1
        assert calls["per_sequence"]["best_score"][0] > 100
        assert longest_open_frame(seq) >= b - a - 3
        assert longest_orf_atg(seq) >= b - a
    real = gene_calls(seqs)
    shuf = gene_calls(shuffles)
    assert real["coding_fraction"] > 0.6
    assert shuf["coding_fraction"] < real["coding_fraction"] - 0.3
    assert real["gene_score_mean"] > 2 * shuf["gene_score_mean"]
    assert real["genes_per_kb"] == pytest.approx(real["n_genes"] / (6 * 1.806))
    assert 0 < real["coding_fraction_se"] < 0.1


def test_gc3_of_called_genes():
    pytest.importorskip("pyrodigal")
    gc_rich = [coding_sequence(s, table=GC3_CODONS)[0] for s in range(4)]
    at_rich = [coding_sequence(s, table=AT3_CODONS)[0] for s in range(4)]
    hi, lo = gc3(gc_rich), gc3(at_rich)
    assert hi["gc3"] > 0.95  # every third position of the gene is G/C
    assert lo["gc3"] < 0.12  # only Trp (TGG) has G at the third position
    assert hi["n_codons"] >= 4 * 390 and hi["gc3_se"] < 0.05
    none = gc3([BLOCK])  # nothing callable
    assert none["gc3"] is None and none["n_genes"] == 0


def test_gene_calls_on_short_and_empty_sequences():
    pytest.importorskip("pyrodigal")
    calls = gene_calls(["", "ACGT", BLOCK])
    assert list(calls["per_sequence"]["n_genes"]) == [0, 0, 0]
    assert calls["genes_per_kb"] == 0.0
    assert math.isnan(calls["gene_score_mean"])


# -- codon periodicity ------------------------------------------------------------------------

def test_period3_excess_coding_vs_shuffled_and_iid():
    coding = [coding_sequence(s, table=t)[0] for s in range(6) for t in (GC3_CODONS, AT3_CODONS)]
    shuf = [shuffled(s, 200 + i) for i, s in enumerate(coding)]
    rng = np.random.default_rng(9)
    iid = ["".join(rng.choice(list("ACGT"), 1800)) for _ in range(12)]
    pc, ps, pi = codon_periodicity(coding), codon_periodicity(shuf), codon_periodicity(iid)
    assert pc["mi"].shape == (13,)
    assert pc["period3_excess"] > 0.01  # bits
    # ~0 without codons: within 4 bootstrap SE and tiny next to the coding value (the GC-rich
    # and AT-rich shuffles pooled together add a d-independent MI, hence some noise)
    for null in (ps, pi):
        assert abs(null["period3_excess"]) < 4 * null["period3_excess_se"]
        assert abs(null["period3_excess"]) < 0.05 * pc["period3_excess"]
    assert pc["period3_excess"] > ps["period3_excess"] + 5 * pc["period3_excess_se"]
    assert pc["period3_ratio"] > 3
    # bootstrap is seeded: same result twice
    assert codon_periodicity(coding)["period3_excess_se"] == pc["period3_excess_se"]


def test_period3_excess_ignores_short_range_markov_correlation():
    # order-1 chain with strong dinucleotide structure (A->T, C->G, ...): MI(1) is large, but
    # nothing is periodic with period 3
    rng = np.random.default_rng(10)
    P = np.full((4, 4), 0.1) + 0.6 * np.eye(4)[[3, 2, 1, 0]]
    seqs = []
    for _ in range(12):
        x = [0]
        u = rng.random(1500)
        for i in range(1, 1500):
            x.append(int(np.searchsorted(np.cumsum(P[x[-1]]), u[i])))
        seqs.append("".join("ACGT"[b] for b in x))
    p = codon_periodicity(seqs)
    assert p["mi"][0] > 0.1
    assert abs(p["period3_excess"]) < 1e-3


# -- one row ----------------------------------------------------------------------------------

def test_biology_scores_row():
    pytest.importorskip("pyrodigal")
    coding = [coding_sequence(s)[0] for s in range(4)]
    row = biology_scores(coding)
    keys = {"n_seqs", "orf_open_mean", "orf_open_mean_se", "orf_open_ge300", "orf_open_ge300_se",
            "orf_open_ge600", "orf_open_ge600_se", "orf_atg_ge300", "orf_atg_ge300_se",
            "coding_fraction", "coding_fraction_se", "genes_per_kb", "gene_score_mean",
            "period3_excess", "period3_excess_se", "gc3", "gc3_se"}
    assert set(row) == keys
    assert row["n_seqs"] == 4
    assert row["orf_open_ge600"] == 1.0 and row["orf_open_ge600_se"] == 0.0
    assert row["orf_atg_ge300"] == 1.0
    assert row["coding_fraction"] == pytest.approx(gene_calls(coding)["coding_fraction"])
    assert row["gc3"] > 0.95
    assert row["period3_excess"] == pytest.approx(codon_periodicity(coding)["period3_excess"])
    assert all(isinstance(v, (int, float)) for v in row.values())
    no_genes = biology_scores([BLOCK], genes=False)
    assert math.isnan(no_genes["coding_fraction"]) and math.isnan(no_genes["gc3"])
    assert no_genes["orf_open_mean"] == 9.0
