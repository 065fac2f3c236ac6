"""The discreteness analyses on prepared data and checkpoints, DNA and text: held-out prompts,
the collapse probe, the marginal trap (its steps, and each set scored with the run's AR
model), unigram entropy, tokenizer mismatches, and the command line."""

import json
import math

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import probe_shape, validate_config
from dnadiff.data.prepare import prepare_genome
from dnadiff.data.prepared import PreparedData
from dnadiff.data.text import prepare_text
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.discreteness import (
    heldout_prompts,
    run_collapse,
    run_marginal_trap,
    trap_steps,
)
from dnadiff.evaluation.likelihood import ARScorer
from dnadiff.evaluation.text_scores import score_text_set
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer, tokenizer_from_dict

from conftest import random_dna, run_cli, write_fasta


@pytest.fixture(scope="module")
def dna_run(tmp_path_factory):
    """A prepared random genome and an untrained DiT MDLM checkpoint for it."""
    tmp = tmp_path_factory.mktemp("probe")
    fasta = write_fasta(tmp / "g.fa", [(f"c{i}", random_dna(3000, seed=i)) for i in range(4)])
    prepare_genome(fasta, tmp / "data", validation=["c2"], test=["c3"])
    cfg = validate_config({"run": "p", "data": {"window": 32},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
                           "probe": {"num_prompts": 5},
                           "marginal_trap": {"num_samples": 6, "batch_size": 4,
                                             "divisors": [1, 4, 16]},
                           "evaluate": {"kmer_max_k": 3}})
    tok = DNATokenizer()
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], tok.vocab_size, causal=False)
    with torch.no_grad():  # not the zero-initialized head: predictions that differ by position
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_checkpoint(tmp / "m.pt", model, cfg, tok, step=7)
    return tmp, cfg


def test_heldout_prompts_are_test_split_prefixes(dna_run):
    tmp, _ = dna_run
    data = PreparedData(tmp / "data")
    got = heldout_prompts(tmp / "data", 5, 12, seed=0)
    assert len(got) == 5
    for pid, ids in got:
        contig, start = pid.split(":")
        assert contig == "c3" and len(ids) == 12
        assert ids.tolist() == data.tokens(3)[int(start):int(start) + 12].tolist()


def test_run_collapse_on_a_dna_checkpoint(dna_run):
    tmp, cfg = dna_run
    masks, prompt_len = probe_shape(cfg)
    assert (masks, prompt_len) == (16, 16)  # window 32: half of it masked
    res = run_collapse(tmp / "m.pt", tmp / "data", cfg["probe"], masks, prompt_len)
    assert len(res["rows"]) == 5 * 16 and len(res["curves"]) == 16
    s = res["summary"]
    assert s["modality"] == "dna" and s["prompts"] == 5 and s["masks"] == 16
    assert set(s["at_distance"]) == {"1"}  # 32 and 128 are beyond 16 masks
    c = np.array(list(PreparedData(tmp / "data").token_counts("train")[:4]), float)
    c /= c.sum()
    assert s["train_unigram_entropy_bits"] == pytest.approx(-(c * np.log2(c)).sum())
    for r in res["rows"]:
        assert 0 <= r["entropy_bits"] <= 2 + 1e-9 and r["kl_composition_bits"] >= -1e-9
        assert r["p1"] >= r["p2"] >= r["p3"]


def test_trap_steps():
    assert trap_steps(256, [1, 2, 4, 8, 16]) == [(1, 256), (2, 128), (4, 64), (8, 32), (16, 16)]
    assert trap_steps(8, [16, 1]) == [(1, 8), (16, 1)]
    assert trap_steps(4, [4, 8]) == [(4, 1)]  # both would be one step


def test_marginal_trap_on_dna(dna_run):
    tmp, cfg = dna_run
    res = run_marginal_trap(tmp / "m.pt", tmp / "data", cfg["marginal_trap"], cfg["evaluate"])
    rows = res["rows"]
    # every sampler of the menu at every budget; first_hitting at the largest only
    assert [(r["sampler"], r["steps"]) for r in rows] == [
        ("ancestral", 32), ("ancestral", 8), ("ancestral", 2), ("confidence", 32),
        ("confidence", 8), ("confidence", 2), ("remdm", 32), ("remdm", 8), ("remdm", 2),
        ("first_hitting", 32), ("", 0)]
    for r in rows[:-1]:
        assert r["tokens_per_step"] == 32 / r["steps"]
        # two batches (4 + 2); cached passes never exceed the steps, and a pass runs at the
        # first step of each batch; confidence and remdm take every step, first hitting one
        # pass per position
        if r["sampler"] == "ancestral":
            assert 2 <= r["forward_passes"] <= 2 * r["steps"]
            assert r["passes_per_sequence"] <= r["steps"]
        elif r["sampler"] == "first_hitting":
            assert r["passes_per_sequence"] == 32
        else:
            assert r["forward_passes"] == 2 * r["steps"] and r["passes_per_sequence"] == \
                r["steps"]
        seqs = res["_samples"][r["set"]]
        assert len(seqs) == 6 and all(s.shape == (32,) and s.max() < 4 for s in seqs)
        assert 0 <= r["coding_fraction"] <= 1
    for r in rows:
        assert all(0 <= r[f"js_k{k}"] <= 1 for k in (1, 2, 3))
        assert 0 <= r["discriminator_auroc"] <= 1 and 0 <= r["gc_mean"] <= 1
    assert rows[-1]["set"] == "real_heldout"


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    """A char-level corpus, an untrained MDLM and an untrained AR model (zero-initialized heads:
    uniform predictions)."""
    tmp = tmp_path_factory.mktemp("probe_text")
    words = ["the", "king", "and", "queen", "of", "all", "night", "day"]
    rng = np.random.default_rng(0)
    paras = ["\n".join(" ".join(rng.choice(words, 6)) for _ in range(3)) for _ in range(200)]
    (tmp / "c.txt").write_text("\n\n".join(paras))
    cfg = validate_config({"run": "t", "modality": "text", "text": {"tokenizer": "char"},
                           "data": {"window": 24},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
                           "marginal_trap": {"num_samples": 4, "divisors": [1, 8],
                                             "samplers": ["ancestral"]}})
    index = prepare_text(tmp / "c.txt", tmp / "data", cfg["text"])
    tok = tokenizer_from_dict(index["tokenizer"])
    for objective in ("mdlm", "ar"):
        c = dict(cfg, objective=objective)
        model = build_backbone(c["model"], tok.vocab_size, causal=objective == "ar")
        save_checkpoint(tmp / f"{objective}.pt", model, c, tok, step=3)
    return tmp, cfg, tok


def test_unigram_entropy_and_uniform_ar_perplexity(text_run):
    tmp, _, tok = text_run
    # a sample's unigram entropy: the one entropy function on its token counts
    assert entropy_bits(np.bincount([1, 1, 2, 3])) == pytest.approx(1.5)
    assert entropy_bits(np.bincount([5] * 10)) == 0.0
    assert score_text_set([np.array([1, 1, 2, 3])], None)["unigram_entropy_bits"] == \
        pytest.approx(1.5)
    scorer = ARScorer(tmp / "ar.pt")
    n_gen = len(tok.generable_ids)
    seqs = [np.arange(60) % n_gen, np.zeros(7, dtype=int)]  # 60 tokens: 3 windows of 24
    nats, count = scorer.nll(seqs)
    assert count.tolist() == [60, 7]
    # an untrained AR model (zero head) is uniform over the generable tokens
    assert nats == pytest.approx(np.array([60, 7]) * math.log(n_gen), rel=1e-5)
    res = score_text_set(seqs, scorer)
    assert res["gen_perplexity"] == pytest.approx(n_gen, rel=1e-5)
    with pytest.raises(DnadiffError, match="needs an AR checkpoint"):
        ARScorer(tmp / "mdlm.pt")


def test_probes_refuse_data_of_another_tokenizer(dna_run, text_run):
    tmp_dna, cfg = dna_run
    tmp_text, _, _ = text_run
    with pytest.raises(DnadiffError, match="different tokenizers"):
        run_collapse(tmp_dna / "m.pt", tmp_text / "data", cfg["probe"], 16, 16)
    with pytest.raises(DnadiffError, match="different tokenizers"):
        run_marginal_trap(tmp_dna / "m.pt", tmp_text / "data", cfg["marginal_trap"],
                          cfg["evaluate"])


def test_marginal_trap_scores_each_set_with_the_ar_model(text_run, tmp_path):
    """With an AR scorer that is not uniform, each row is the score of its own samples."""
    tmp, cfg, tok = text_run
    ar_cfg = dict(cfg, objective="ar")
    torch.manual_seed(1)
    model = build_backbone(ar_cfg["model"], tok.vocab_size, causal=True)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    save_checkpoint(tmp_path / "ar.pt", model, ar_cfg, tok, step=1)
    res = run_marginal_trap(tmp / "mdlm.pt", tmp / "data", cfg["marginal_trap"],
                            cfg["evaluate"], ar_checkpoint=tmp_path / "ar.pt")
    scorer = ARScorer(tmp_path / "ar.pt")
    for r in res["rows"][:-1]:
        expect = score_text_set(res["_samples"][r["set"]], scorer)
        assert r["gen_perplexity"] == pytest.approx(expect["gen_perplexity"], rel=1e-6)
        assert r["unigram_entropy_bits"] == pytest.approx(expect["unigram_entropy_bits"])
    assert len({round(r["gen_perplexity"], 6) for r in res["rows"]}) == len(res["rows"])


def test_marginal_trap_on_text(text_run):
    tmp, cfg, tok = text_run
    with pytest.raises(DnadiffError, match="needs the run's AR model"):
        run_marginal_trap(tmp / "mdlm.pt", tmp / "data", cfg["marginal_trap"], cfg["evaluate"])
    res = run_marginal_trap(tmp / "mdlm.pt", tmp / "data", cfg["marginal_trap"],
                            cfg["evaluate"], ar_checkpoint=tmp / "ar.pt")
    rows = res["rows"]
    assert [(r["steps"], r["tokens_per_step"]) for r in rows] == [(24, 1.0), (3, 8.0), (0, 0.0)]
    n_gen = len(tok.generable_ids)
    for r in rows:
        assert r["gen_perplexity"] == pytest.approx(n_gen, rel=1e-5)  # uniform AR scorer
        assert 0 < r["unigram_entropy_bits"] <= math.log2(24)
        assert 0 <= r["eos_fraction"] <= 1


def test_cli_probe_and_text_scores(text_run, tmp_path):
    tmp, cfg, tok = text_run
    cfg_json = json.dumps({"run": "t", "modality": "text", "data": {"window": 24},
                           "probe": {"num_prompts": 3}})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"prompt": "the king"}\n{"prompt": "queen of all"}\n')
    out = {k: tmp_path / f"{k}" for k in ("rows.tsv", "curves.tsv", "s.json", "p.png")}
    proc = run_cli("probe", "collapse", "--config-json", cfg_json, "--checkpoint",
                   tmp / "mdlm.pt", "--data", tmp / "data", "--prompts", prompts,
                   "--out-tsv", out["rows.tsv"], "--out-curves", out["curves.tsv"],
                   "--out-json", out["s.json"], "--plot", out["p.png"])
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(out["s.json"].read_text())
    assert summary["prompts"] == 2 and summary["masks"] == 12
    assert summary["at_distance"]["1"]["eos_mass_mean"] == pytest.approx(
        1 / len(tok.generable_ids), rel=1e-4)  # untrained: uniform
    assert len(out["rows.tsv"].read_text().splitlines()) == 1 + 2 * 12
    assert out["p.png"].read_bytes()[:4] == b"\x89PNG"
    # an AR checkpoint cannot be probed: exit 2, one line, no outputs
    for p in out.values():
        p.unlink()
    proc = run_cli("probe", "collapse", "--config-json", cfg_json, "--checkpoint",
                   tmp / "ar.pt", "--data", tmp / "data", "--out-tsv", out["rows.tsv"],
                   "--out-curves", out["curves.tsv"], "--out-json", out["s.json"])
    assert proc.returncode == 2 and "masked diffusion (mdlm) checkpoint" in proc.stderr
    assert not any(p.exists() for p in out.values())


def test_marginal_trap_scores_dna_samples_under_the_runs_ar_model(dna_run, tmp_path):
    tmp, cfg = dna_run
    ar_cfg = dict(cfg, objective="ar")
    torch.manual_seed(2)
    model = build_backbone(ar_cfg["model"], 7, causal=True)
    save_checkpoint(tmp_path / "ar.pt", model, ar_cfg, DNATokenizer(), step=1)
    trap = {**cfg["marginal_trap"], "samplers": ["ancestral"], "divisors": [1]}
    res = run_marginal_trap(tmp / "m.pt", tmp / "data", trap, cfg["evaluate"],
                            ar_checkpoint=tmp_path / "ar.pt")
    # an untrained AR model (zero head) is uniform over the four bases: exactly 2 bits
    for r in res["rows"]:
        assert r["ar_bits_per_base"] == pytest.approx(2.0, abs=1e-5)
