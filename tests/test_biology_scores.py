"""Sample scores that see biology: real windows by annotated class, gene figures in the
sample table (with the distance of each set's open-frame distribution to the real floor's), and
the Markov baselines of held-out likelihood."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_genes import coding_sequence, rc

from dnadiff.data.prepare import prepare_genome
from dnadiff.data.prepared import PreparedData
from dnadiff.evaluation.annotated import class_windows
from dnadiff.evaluation.dna_scores import BIOLOGY_COLUMNS, score_generated, score_rows
from dnadiff.tokenizers import DNATokenizer

from conftest import random_dna, write_fasta

TOK = DNATokenizer()


def ids(s: str) -> np.ndarray:
    return TOK.encode(s).astype(np.int64)


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """A test contig with a + strand gene at [2000, 8000) and a - strand gene at
    [12000, 15000), real coding sequence inside both; random DNA elsewhere."""
    tmp = tmp_path_factory.mktemp("annotated")
    gene_plus = coding_sequence(1, n_codons=2000, flank=0)[0][:6000]
    gene_minus = coding_sequence(2, n_codons=1000, flank=0)[0][:3000]
    t = (random_dna(2000, 10) + gene_plus + random_dna(4000, 11) + rc(gene_minus)
         + random_dna(5000, 12))
    recs = [("a", random_dna(20000, 1)), ("v", random_dna(5000, 2)), ("t", t)]
    write_fasta(tmp / "g.fa", recs)
    prepare_genome(tmp / "g.fa", tmp / "data", validation=["v"], test=["t"])
    gff = tmp / "genes.gff3"
    gff.write_text("##gff-version 3\n"
                   "t\tx\tgene\t2001\t8000\t.\t+\t.\tID=g1\n"
                   "t\tx\tCDS\t2001\t8000\t.\t+\t.\tID=c1\n"
                   "t\tx\tgene\t12001\t15000\t.\t-\t.\tID=g2\n"
                   "t\tx\tCDS\t12001\t15000\t.\t-\t.\tID=c2\n")
    return {"data": tmp / "data", "gff": gff, "t": t, "tmp": tmp}


def test_class_windows_are_what_the_annotation_says(annotated):
    genome = PreparedData(annotated["data"])
    t = annotated["t"]
    wins = class_windows(genome, annotated["gff"], "test", 500, 40, seed=0)
    assert len(wins["coding"]) == 40 and len(wins["intergenic"]) == 40
    gene = np.zeros(len(t), bool)
    gene[2000:8000] = gene[12000:15000] = True
    text = ids(t)
    for w in wins["coding"]:
        start = next(s for s in range(len(t) - 499) if np.array_equal(text[s:s + 500], w))
        assert gene[start:start + 500].mean() >= 0.9
    for w in wins["intergenic"]:
        start = next(s for s in range(len(t) - 499) if np.array_equal(text[s:s + 500], w))
        assert not gene[start:start + 500].any()
    # promoters: the 500 bases upstream of each gene, on the gene's strand
    expected = {t[1500:2000], rc(t[15000:15500])}
    assert {TOK.decode(w) for w in wins["promoter"]} == expected


def test_an_annotation_without_features_gives_no_classes(annotated, tmp_path):
    empty = tmp_path / "empty.gff3"
    empty.write_text("##gff-version 3\n")
    assert class_windows(PreparedData(annotated["data"]), empty, "test", 500, 4, 0) == {}


def test_sample_table_carries_genes_and_the_annotated_reference_rows(annotated):
    t = annotated["t"]
    # "samples": pieces of the + strand gene (coding) -- they should look like real coding DNA
    samples = [t[2000 + 300 * i: 2000 + 300 * i + 600] for i in range(12)]
    fa = write_fasta(annotated["tmp"] / "samples.fa", [(f"s{i}", s) for i, s in
                                                         enumerate(samples)])
    cfg = {"kmer_max_k": 3, "seed": 0, "markov_order": 2, "discriminator_k": 2,
           "memorization_seed_k": 12}
    res = score_generated(fa, annotated["data"], cfg, annotation=annotated["gff"])
    rows = {r["set"]: r for r in score_rows(res)}
    assert {"mdlm", "real_heldout", "iid", "markov2", "real_coding", "real_intergenic",
            "real_promoter"} <= set(rows)
    for r in rows.values():
        assert set(BIOLOGY_COLUMNS) <= set(r)
        assert 0 <= r["coding_fraction"] <= 1 and 0 <= r["orf_open_ge600"] <= 1
    # whole coding pieces: every sample's longest open frame covers it, genes are called
    assert rows["mdlm"]["orf_open_ge300"] == 1.0
    assert rows["mdlm"]["coding_fraction"] > rows["iid"]["coding_fraction"] + 0.3
    assert rows["real_coding"]["coding_fraction"] > rows["real_intergenic"]["coding_fraction"]
    # the distance of the open-frame distribution to the real floor's
    assert rows["real_heldout"]["orf_ks_vs_real"] == 0.0
    assert rows["mdlm"]["orf_ks_vs_real"] > 0.5
    json.dumps(res)  # the JSON output holds plain values


def test_markov_heldout_bits_exact_on_a_hand_example():
    """Order 1, add-one, one strand: train ACAC -> counts A->C 2, C->A 1; test AC: one base
    scored with P(C|A) = (2 + 1) / (2 + 4) = 1/2 -> exactly 1 bit."""
    from dnadiff.evaluation.baselines import markov_heldout_bits

    [row] = markov_heldout_bits([ids("ACAC")], [ids("AC")], [1])
    assert row == {"order": 1, "bits_per_token": pytest.approx(1.0), "tokens_scored": 1}
    # both strands: reverse complement GTGT adds G->T 2, T->G 1; A's row is unchanged
    [row] = markov_heldout_bits([ids("ACAC")], [ids("AC")], [1], complement=TOK.complement)
    assert row["bits_per_token"] == pytest.approx(1.0)
    # order 0: P(A) = P(C) = (2 + 1) / (4 + 4); N is never scored
    [row] = markov_heldout_bits([ids("AACC")], [ids("ANC")], [0])
    assert row["tokens_scored"] == 2 and row["bits_per_token"] == pytest.approx(-np.log2(3 / 8))


def test_likelihood_reports_markov_baselines(annotated, tmp_path):
    import torch

    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.config import validate_config
    from dnadiff.evaluation.likelihood import evaluate_likelihood, likelihood_rows
    from dnadiff.models import build_backbone

    cfg = validate_config({"run": "m", "data": {"window": 64}, "model": {
        "dim": 16, "heads": 2, "layers": 1, "cond_dim": 8},
        "evaluate": {"max_windows": 4, "markov_likelihood_orders": [0, 2]}})
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_backbone(cfg["model"], 7), cfg, TOK, 0)
    res = evaluate_likelihood(tmp_path / "m.pt", annotated["data"], cfg["evaluate"])
    assert [m["order"] for m in res["markov_baselines"]] == [0, 2]
    # order 0 of the train split on both strands is the train composition (symmetrized)
    assert res["markov_baselines"][0]["bits_per_token"] == pytest.approx(
        res["train_composition_cross_entropy_bits"], abs=0.01)
    assert res["best_markov_bits"] == min(m["bits_per_token"] for m in res["markov_baselines"])
    rows = likelihood_rows(res)
    assert [r["objective"] for r in rows[-2:]] == ["markov0", "markov2"]
