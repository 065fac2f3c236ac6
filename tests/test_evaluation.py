"""Evaluation: the k-mer encoder, JS divergence, entropies, held-out NELBO, sample evaluation,
and the DNA alphabet facts of the tokenizers module."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import LogLinearSchedule
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation.composition import entropy_bits, gc_content, gc_fraction
from dnadiff.evaluation.dna_scores import (
    evaluate_samples,
    score_generated,
    score_rows,
    trap_scorer,
)
from dnadiff.evaluation.kmers import js_divergence, kmer_counts
from dnadiff.evaluation.likelihood import cross_entropy_bits, heldout_nelbo
from dnadiff.tokenizers import (
    BASE_COMPLEMENT,
    BASE_IDS,
    BASES,
    GC_IDS,
    N_BASES,
    N_ID,
    PAD_ID,
    DNATokenizer,
)

from conftest import IIDTrueConditional, entropy_nats, random_dna, write_fasta

EPS = 1e-3


def ids(s):
    return DNATokenizer().encode(s).astype(np.int64)


def test_dna_alphabet_facts_come_from_the_tokenizer():
    tok = DNATokenizer()
    assert BASES == "ACGT" and N_BASES == 4 and BASE_IDS == (0, 1, 2, 3)
    assert [tok.tokens[i] for i in BASE_IDS] == list(BASES)
    assert GC_IDS == (tok.token_to_id["C"], tok.token_to_id["G"]) == (1, 2)
    assert N_ID == tok.n_id == 4 and PAD_ID == tok.pad_id == 6
    assert BASE_COMPLEMENT.tolist() == [3, 2, 1, 0]
    assert not BASE_COMPLEMENT.flags.writeable


# -- k-mers -----------------------------------------------------------------------------------

def test_kmer_counts_hand_example():
    seqs = [ids("ACGTA"), ids("AANAC")]
    k1 = kmer_counts(seqs, 1)
    assert k1.tolist() == [5, 2, 1, 1]  # A C G T, the N is skipped
    k2 = kmer_counts(seqs, 2)
    assert k2.shape == (16,) and k2.sum() == 6
    # code = 4 * first + second (A=0 C=1 G=2 T=3): AA=0, AC=1, CG=6, GT=11, TA=12
    expected = np.zeros(16, dtype=int)
    expected[[0, 1, 6, 11, 12]] = [1, 2, 1, 1, 1]
    assert k2.tolist() == expected.tolist()
    k3 = kmer_counts(seqs, 3)
    # ACG=6, CGT=27, GTA=44; every 3-mer of AANAC touches the N
    expected = np.zeros(64, dtype=int)
    expected[[6, 27, 44]] = 1
    assert k3.tolist() == expected.tolist()


def test_kmer_counts_short_and_empty():
    assert kmer_counts([ids("AC")], 3).sum() == 0
    assert kmer_counts([], 2).tolist() == [0] * 16
    assert kmer_counts([ids("NNNN")], 1).sum() == 0
    assert kmer_counts([ids("AAAA")], 4).tolist() == [1] + [0] * 255


def test_kmer_counts_matches_brute_force():
    rng = np.random.default_rng(0)
    seq = "".join(rng.choice(list("ACGTN"), p=[0.24] * 4 + [0.04], size=3000))
    for k in (1, 2, 3, 5):
        brute = np.zeros(4 ** k, dtype=int)
        for i in range(len(seq) - k + 1):
            kmer = seq[i:i + k]
            if "N" in kmer:
                continue
            code = 0
            for ch in kmer:
                code = code * 4 + "ACGT".index(ch)
            brute[code] += 1
        assert kmer_counts([ids(seq)], k).tolist() == brute.tolist()


def test_gc_fraction_of_base_counts():
    assert gc_fraction([3, 1, 1, 5]) == pytest.approx(0.2)
    assert gc_fraction(kmer_counts([ids("GGCCAT")], 1)) == pytest.approx(gc_content(ids("GGCCAT")))


# -- divergences and entropies ----------------------------------------------------------------

def test_js_divergence_properties():
    a = np.array([5, 3, 0, 2])
    b = np.array([1, 1, 6, 2])
    assert js_divergence(a, a) == 0.0
    assert js_divergence(a, 3 * a) == pytest.approx(0.0, abs=1e-15)
    assert js_divergence([1, 0, 3, 0], [0, 2, 0, 7]) == pytest.approx(1.0, abs=1e-12)
    assert js_divergence(a, b) == pytest.approx(js_divergence(b, a), abs=1e-15)
    assert 0 < js_divergence(a, b) < 1
    # known value: p = (1, 0), q = (1/2, 1/2)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert js_divergence([1, 0], [1, 1]) == pytest.approx(expected, abs=1e-12)


def test_entropy_bits():
    assert entropy_bits([1, 1, 1, 1]) == pytest.approx(2.0, abs=1e-15)
    assert entropy_bits([7, 7, 7, 7]) == pytest.approx(2.0, abs=1e-15)
    assert entropy_bits([3, 0, 0, 0]) == 0.0
    assert entropy_bits([1, 1, 0, 0]) == pytest.approx(1.0)
    p = [0.1, 0.2, 0.3, 0.4]
    assert entropy_bits(p) == pytest.approx(entropy_nats(p) / math.log(2), rel=1e-12)


def test_cross_entropy_bits():
    q = [1, 2, 3, 4]
    assert cross_entropy_bits(q, q) == pytest.approx(entropy_bits(q), rel=1e-12)
    assert cross_entropy_bits(q, [1, 1, 1, 1]) == pytest.approx(2.0, rel=1e-12)
    assert cross_entropy_bits(q, [4, 3, 2, 1]) > entropy_bits(q)


def test_gc_content():
    assert gc_content(ids("GGCCAT")) == pytest.approx(4 / 6)
    assert gc_content(ids("GCNNNNAT")) == pytest.approx(0.5)  # N ignored
    assert math.isnan(gc_content(ids("NNN")))


# -- held-out NELBO ---------------------------------------------------------------------------

def iid_windows(p, n_windows, length, seed, pad_tail=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.multinomial(torch.tensor(p), n_windows * length, replacement=True,
                          generator=g).view(n_windows, length)
    items = []
    for i in range(n_windows):
        tokens = x[i].clone()
        lm = torch.ones(length, dtype=torch.bool)
        if pad_tail and i % 2 == 0:
            tokens[-pad_tail:] = 6
            lm[-pad_tail:] = False
        items.append({"tokens": tokens, "loss_mask": lm})
    return items


def test_heldout_nelbo_true_conditional_equals_entropy():
    p = [0.1, 0.2, 0.3, 0.4]
    H = entropy_nats(p)
    mdlm = MDLM(LogLinearSchedule(EPS), 5, [0, 1, 2, 3], 7)
    ds = iid_windows(p, 3000, 64, seed=1, pad_tail=8)
    res = heldout_nelbo(IIDTrueConditional(p), mdlm, ds, batch_size=512, t_draws=2, seed=3)
    se_nats = res["bits_per_token_se"] * math.log(2)
    assert se_nats > 0
    assert se_nats < 0.02 * H
    assert abs(res["nats_per_token"] - H) < 3 * se_nats, (res, H)
    assert res["bits_per_token"] == pytest.approx(res["nats_per_token"] / math.log(2))
    assert res["perplexity"] == pytest.approx(math.exp(res["nats_per_token"]))
    assert res["windows"] == 3000 and res["t_draws"] == 2
    assert res["tokens_scored"] == 3000 * 64 - 1500 * 8  # padding is never scored
    again = heldout_nelbo(IIDTrueConditional(p), mdlm, ds, batch_size=100, t_draws=2, seed=3)
    assert again["nats_per_token"] == pytest.approx(res["nats_per_token"], rel=1e-5)


def test_heldout_nelbo_uniform_model_is_two_bits():
    p = [0.25] * 4
    mdlm = MDLM(LogLinearSchedule(EPS), 5, [0, 1, 2, 3], 7)
    ds = iid_windows([0.1, 0.2, 0.3, 0.4], 1000, 32, seed=2)
    res = heldout_nelbo(IIDTrueConditional(p), mdlm, ds, batch_size=250, seed=0)
    assert abs(res["bits_per_token"] - 2.0) < 3 * res["bits_per_token_se"] + 1e-9


# -- generated samples ------------------------------------------------------------------------

@pytest.fixture
def eval_genome(tmp_path):
    from dnadiff.data.prepare import prepare_genome

    test_seq = random_dna(320, seed=21, p=[0.3, 0.2, 0.2, 0.3])
    fa = write_fasta(tmp_path / "g.fa", [("tr", random_dna(500, seed=20)),
                                         ("va", random_dna(300, seed=22)),
                                         ("te", test_seq)])
    prepare_genome(fa, tmp_path / "prep", validation=["va"], test=["te"])
    return tmp_path / "prep", test_seq


def test_evaluate_samples_rows(tmp_path, eval_genome):
    data, test_seq = eval_genome
    samples = write_fasta(tmp_path / "s.fa", [(f"s{i}", random_dna(32, seed=100 + i))
                                             for i in range(6)])
    res = evaluate_samples(samples, data, max_k=4, seed=0)
    assert res["num_samples"] == 6 and res["sample_lengths"] == [32]
    rows = res["kmer_js"]
    assert [r["k"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        for key in ("js_generated", "js_real_floor", "js_iid_baseline"):
            assert 0.0 <= r[key] <= 1.0, (key, r)
    # js_generated is exactly the divergence of the sample spectrum from the test spectrum
    gen = [ids(random_dna(32, seed=100 + i)) for i in range(6)]
    for r in rows:
        k = r["k"]
        assert r["js_generated"] == pytest.approx(
            js_divergence(kmer_counts(gen, k), kmer_counts([ids(test_seq)], k)), abs=1e-12)
    t = ids(test_seq)
    assert res["gc_test_split"] == pytest.approx(np.isin(t, (1, 2)).mean())
    assert res["_gc_generated"].shape == (6,) and res["_gc_real"].shape == (6,)
    assert res["gc_generated_mean"] == pytest.approx(np.mean([gc_content(s) for s in gen]))
    # deterministic in the seed
    again = evaluate_samples(samples, data, max_k=4, seed=0)
    assert again["kmer_js"] == rows


def test_evaluate_samples_of_real_test_sequence(tmp_path, eval_genome):
    """Samples that are the test split cut in pieces have exactly the test 1-mer spectrum."""
    data, test_seq = eval_genome
    pieces = [(f"p{i}", test_seq[i:i + 32]) for i in range(0, 320, 32)]
    samples = write_fasta(tmp_path / "real.fa", pieces)
    res = evaluate_samples(samples, data, max_k=3, seed=1)
    assert res["kmer_js"][0]["js_generated"] == 0.0
    assert res["kmer_js"][1]["js_generated"] < res["kmer_js"][1]["js_iid_baseline"] + 0.05


def _eval_cfg(**kw):
    from dnadiff.config import validate_config

    return validate_config({"run": "t", "data": {"window": 32},
                            "evaluate": {"kmer_max_k": 3, "markov_order": 1,
                                         "memorization_seed_k": 12, **kw}})["evaluate"]


def test_the_three_dna_scorers_agree(tmp_path, eval_genome):
    """evaluate samples, evaluate scores and the marginal trap score a set with the same
    functions against the same real DNA: the same figures for the same sequences."""
    data, test_seq = eval_genome
    gen = [random_dna(32, seed=200 + i) for i in range(6)]
    samples = write_fasta(tmp_path / "s.fa", [(f"s{i}", g) for i, g in enumerate(gen)])
    cfg = _eval_cfg()
    table = evaluate_samples(samples, data, max_k=3, seed=cfg["seed"])
    scores = score_generated(samples, data, cfg)
    score, floor = trap_scorer(data, cfg, 32, 6)
    assert list(scores["sets"]) == ["mdlm", "real_heldout", "iid", "markov1"]
    for row in table["kmer_js"]:
        k = row["k"]
        assert scores["sets"]["mdlm"]["kmer_js"][k] == row["js_generated"]
        assert scores["sets"]["real_heldout"]["kmer_js"][k] == row["js_real_floor"]
        assert scores["sets"]["iid"]["kmer_js"][k] == row["js_iid_baseline"]
    trap = score([ids(g) for g in gen])
    assert [trap[f"js_k{k}"] for k in (1, 2, 3)] == [r["js_generated"] for r in table["kmer_js"]]
    assert trap["gc_mean"] == table["gc_generated_mean"]
    d = scores["sets"]["mdlm"]["discriminator"]
    assert (trap["discriminator_auroc"], trap["discriminator_auroc_sd"]) == (d["auroc_mean"],
                                                                             d["auroc_sd"])
    assert score(floor)["js_k2"] == table["kmer_js"][1]["js_real_floor"]
    rows = score_rows(scores)
    assert [r["set"] for r in rows] == list(scores["sets"])
    assert rows[0]["js_k3"] == table["kmer_js"][2]["js_generated"]
    assert math.isnan(rows[0]["frechet_distance"])


def test_score_generated_needs_one_length(tmp_path, eval_genome):
    data, _ = eval_genome
    samples = write_fasta(tmp_path / "s.fa", [("a", "ACGT" * 8), ("b", "ACGT" * 7)])
    with pytest.raises(InputFileError, match="samples have 2 different lengths; scoring needs one"):
        score_generated(samples, data, _eval_cfg())
    bad = write_fasta(tmp_path / "n.fa", [("ok", "ACGT" * 8), ("bad", "ACGN" * 8)])
    with pytest.raises(InputFileError, match="record 'bad' contains non-ACGT bases"):
        score_generated(bad, data, _eval_cfg())


def test_score_generated_frechet_distance_of_an_embedder(tmp_path, eval_genome):
    from types import SimpleNamespace

    from dnadiff.checkpoint import load_classifier, save_classifier
    from dnadiff.config import validate_config
    from dnadiff.models import build_backbone
    from dnadiff.models.classifier import SequenceClassifier, embed

    data, _ = eval_genome
    samples = write_fasta(tmp_path / "s.fa", [(f"s{i}", random_dna(32, seed=300 + i))
                                             for i in range(5)])
    cfg = validate_config({"run": "t", "data": {"window": 32},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}})
    torch.manual_seed(0)
    clf = SequenceClassifier(build_backbone(cfg["model"], 7), 2)
    ckpt = {"config": cfg, "tokenizer": DNATokenizer()}
    for length in (16, 64):
        save_classifier(tmp_path / f"c{length}.pt", clf, ckpt,
                        SimpleNamespace(classes=["a", "b"], length=length, name="toy"), {})
    embedder = load_classifier(tmp_path / "c16.pt")
    res = score_generated(samples, data, _eval_cfg(), embedder)
    for name, r in res["sets"].items():
        assert r["frechet_distance"] >= 0, name
    # the figure is the Frechet distance of the embeddings of 16-base pieces
    pieces = [ids(random_dna(32, seed=300 + i))[a:a + 16] for i in range(5) for a in (0, 16)]
    assert embed(embedder[0], pieces).shape == (10, 16)
    with pytest.raises(DnadiffError, match=r"needs sequences of one length no longer than the "
                                           r"samples \(32\); its task has length 64"):
        score_generated(samples, data, _eval_cfg(), load_classifier(tmp_path / "c64.pt"))


def test_evaluate_samples_rejects_n(tmp_path, eval_genome):
    data, _ = eval_genome
    samples = write_fasta(tmp_path / "n.fa", [("ok", "ACGT" * 8), ("bad", "ACGN" * 8)])
    with pytest.raises(InputFileError, match="record 'bad' contains non-ACGT bases"):
        evaluate_samples(samples, data, max_k=2)


def test_evaluate_samples_cli(tmp_path, eval_genome):
    from dnadiff.cli import main

    data, _ = eval_genome
    samples = write_fasta(tmp_path / "s.fa", [(f"s{i}", random_dna(32, seed=i)) for i in range(4)])
    out = tmp_path / "out"
    rc = main(["evaluate", "samples", "--config-json",
               json.dumps({"run": "t", "data": {"window": 32},
                           "evaluate": {"kmer_max_k": 3}}),
               "--samples", str(samples), "--data", str(data),
               "--out-json", str(out / "s.json"), "--out-tsv", str(out / "s.tsv"),
               "--plot-kmer", str(out / "k.png"), "--plot-gc", str(out / "gc.png")])
    assert rc == 0
    res = json.loads((out / "s.json").read_text())
    assert [r["k"] for r in res["kmer_js"]] == [1, 2, 3]
    with open(out / "s.tsv") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [int(r["k"]) for r in rows] == [1, 2, 3]
    assert set(rows[0]) == {"k", "js_generated", "js_real_floor", "js_iid_baseline"}
    assert (out / "k.png").stat().st_size > 0 and (out / "gc.png").stat().st_size > 0


def test_evaluate_likelihood_of_untrained_model_is_two_bits(tmp_path, eval_genome):
    """A freshly initialized DiT predicts uniform A/C/G/T: NELBO = 2 bits per token."""
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.config import validate_config
    from dnadiff.evaluation.likelihood import evaluate_likelihood
    from dnadiff.models import build_backbone
    from dnadiff.tokenizers import DNATokenizer

    data, test_seq = eval_genome
    cfg = validate_config({"run": "t", "data": {"window": 32},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                           "evaluate": {"t_draws": 4, "batch_size": 64}})
    model = build_backbone(cfg["model"], 7)
    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, cfg, DNATokenizer(), step=3)
    res = evaluate_likelihood(ckpt, data, cfg["evaluate"], "test")
    assert res["split"] == "test" and res["checkpoint_step"] == 3
    assert res["windows"] == 10 and res["t_draws"] == 4 and res["tokens_scored"] == 320
    assert abs(res["bits_per_token"] - 2.0) < 3 * res["bits_per_token_se"] + 1e-6
    assert res["uniform_bits"] == 2.0
    t = ids(test_seq)
    assert res["order0_entropy_bits"] == pytest.approx(entropy_bits(np.bincount(t, minlength=4)))


def test_kmer_counts_in_chunks_equal_one_pass():
    """Whole chromosomes are counted in overlapping chunks: the result must not depend on the
    chunk size (every k-mer counted once, none across an N)."""
    rng = np.random.default_rng(3)
    s = rng.integers(0, 5, size=10_007)  # ids 0-3 and N (4)
    for k in (1, 3, 6):
        whole = kmer_counts([s], k, chunk=len(s) + 10)
        for chunk in (1, 7, 1000):
            assert np.array_equal(kmer_counts([s], k, chunk=chunk), whole)
        assert whole.sum() == sum(
            all(s[i + j] < 4 for j in range(k)) for i in range(len(s) - k + 1))
