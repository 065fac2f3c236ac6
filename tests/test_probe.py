"""The discreteness analyses: the masked-position probe and the marginal trap, DNA and text."""

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
from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError, InputFileError
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.discreteness import (
    collapse_curves,
    collapse_probe,
    heldout_prompts,
    read_prompt_file,
    run_collapse,
    run_marginal_trap,
    trap_steps,
)
from dnadiff.evaluation.likelihood import ARScorer
from dnadiff.evaluation.text_scores import score_text_set
from dnadiff.models import build_backbone
from dnadiff.tokenizers import CharTokenizer, DNATokenizer, tokenizer_from_dict

from conftest import random_dna, run_cli, write_fasta


class FixedLogits(torch.nn.Module):
    """Every position gets the same logits (the model ignores its input)."""

    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, tokens, sigma=None, cond=None):
        return self.logits.expand(tokens.shape[0], tokens.shape[1], -1).clone()


class CopyFirst(torch.nn.Module):
    """Predicts the input's first token at every position (shows where the prompt is)."""

    def __init__(self, vocab):
        super().__init__()
        self.vocab = vocab

    def forward(self, tokens, sigma=None, cond=None):
        return 8.0 * torch.nn.functional.one_hot(tokens[:, :1], self.vocab).float().expand(
            -1, tokens.shape[1], -1)


def mdlm_for(tok, time_conditioning=False):
    cfg = validate_config({"run": "x", "model": {"time_conditioning": time_conditioning}})
    return build_objective(cfg, tok.to_dict())


def test_dna_probe_figures_are_exact():
    tok = DNATokenizer()
    q = np.array([0.1, 0.2, 0.3, 0.4])
    logits = np.zeros(tok.vocab_size)
    logits[:4] = np.log(q)
    logits[4:] = 3.0  # N/[MASK]/[PAD] are never predicted (SUBS keeps generable ids only)
    counts = np.array([40, 10, 10, 40, 0, 0, 0])  # training composition A=T=0.4, C=G=0.1
    prompts = [("a", tok.encode("ACGTACGT")), ("b", tok.encode("TTTTTTTT"))]
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, prompts, 5, counts)
    assert len(rows) == 10
    assert [(r["prompt_id"], r["distance"]) for r in rows[:5]] == [("a", d) for d in range(1, 6)]
    comp = np.array([0.4, 0.1, 0.1, 0.4])
    for r in rows:
        assert r["entropy_bits"] == pytest.approx(-(q * np.log2(q)).sum(), abs=1e-5)
        assert (r["top1"], r["top2"], r["top3"]) == ("T", "G", "C")
        assert (r["p1"], r["p2"], r["p3"]) == pytest.approx((0.4, 0.3, 0.2), abs=1e-6)
        assert r["kl_composition_bits"] == pytest.approx((q * np.log2(q / comp)).sum(),
                                                         abs=1e-5)
        assert r["top10_mass"] == pytest.approx(1.0)  # only 4 generable tokens
        assert "eos_mass" not in r
        assert r["top1_is_most_frequent"] == 0  # A (first of the tied A/T) is the most frequent
    # a prediction equal to the composition has KL 0
    logits[:4] = np.log(comp)
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, prompts[:1], 2, counts)
    assert rows[0]["kl_composition_bits"] == pytest.approx(0.0, abs=1e-6)
    assert rows[0]["top1_is_most_frequent"] == 1


def test_text_probe_mass_on_frequent_tokens_and_eos():
    tok = CharTokenizer([chr(ord("a") + i) for i in range(12)])
    logits = np.zeros(tok.vocab_size)
    logits[tok.eos_id] = math.log(3.0)  # [EOS] three times as likely as any letter
    counts = np.arange(tok.vocab_size) * 10  # the most frequent letters are the last ones
    counts[tok.eos_id] = 1000
    rows = collapse_probe(FixedLogits(logits), mdlm_for(tok), tok, [("p", tok.encode("abc"))],
                          4, counts)
    z = 12 + 3.0
    r = rows[0]
    assert r["eos_mass"] == pytest.approx(3.0 / z, abs=1e-6)
    assert r["top1"] == "[EOS]" and r["top1_is_most_frequent"] == 1
    # top-10 frequent tokens: [EOS] and the 9 most frequent letters
    assert r["top10_mass"] == pytest.approx((3.0 + 9) / z, abs=1e-6)
    p = np.array([1.0] * 12 + [3.0]) / z
    assert r["entropy_bits"] == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-5)
    assert "kl_composition_bits" not in r


def test_probe_puts_masks_after_each_prompt_of_any_length():
    tok = CharTokenizer(list("abcdef"))
    prompts = [("x", tok.encode("cab")), ("y", tok.encode("ea")), ("z", tok.encode("fabcd"))]
    rows = collapse_probe(CopyFirst(tok.vocab_size), mdlm_for(tok), tok, prompts, 3,
                          np.ones(tok.vocab_size))
    got = {(r["prompt_id"], r["prompt_tokens"], r["distance"]): r["top1"] for r in rows}
    assert got == {(pid, len(p), d): tok.decode(p[:1]) for pid, p in prompts
                   for d in (1, 2, 3)}


def test_probe_noise_level_is_the_masked_fraction_under_any_schedule():
    from dnadiff.diffusion.schedule import build_schedule
    from dnadiff.evaluation.discreteness import time_for_masked_fraction

    for name in ("loglinear", "cosine"):
        sched = build_schedule({"schedule": name, "eps": 1e-3})
        for frac in (0.1, 0.5, 0.9):
            t = time_for_masked_fraction(sched, frac)
            assert 1 - float(sched.alpha(torch.tensor(t, dtype=torch.float64))) == \
                pytest.approx(frac, abs=1e-9)
    sched = build_schedule({"schedule": "loglinear", "eps": 1e-3})
    assert time_for_masked_fraction(sched, 0.5) == pytest.approx(0.5 / (1 - 1e-3))

    class RecordSigma(torch.nn.Module):
        def forward(self, tokens, sigma=None, cond=None):
            self.sigma = sigma
            return torch.zeros(tokens.shape[0], tokens.shape[1], 7)

    tok = DNATokenizer()
    model = RecordSigma()
    objective = mdlm_for(tok, time_conditioning=True)
    collapse_probe(model, objective, tok, [("p", tok.encode("ACGTACGT"))], 8, np.ones(7))
    # 8 masks after 8 prompt bases: half masked, sigma = -log(alpha) = -log(0.5)
    assert model.sigma.tolist() == pytest.approx([math.log(2.0)], abs=1e-6)


def test_collapse_curves_average_over_prompts():
    rows = [{"prompt_id": i, "distance": d, "entropy_bits": float(i + d), "p1": 0.5,
             "top10_mass": 1.0, "top1_is_most_frequent": i % 2, "top1": "A" if i else "C"}
            for i in range(3) for d in (1, 2)]
    curves = collapse_curves(rows)
    assert [c["distance"] for c in curves] == [1, 2]
    assert curves[0]["entropy_bits_mean"] == pytest.approx(2.0)
    assert curves[1]["entropy_bits_sd"] == pytest.approx(np.std([2.0, 3.0, 4.0]))
    assert curves[0]["top1_is_most_frequent_mean"] == pytest.approx(1 / 3)
    assert (curves[0]["commonest_top1"], curves[0]["commonest_top1_share"]) == ("A", 2 / 3)
    tie = [{"distance": 1, "entropy_bits": 1.0, "top1": t} for t in "GCAT"]
    assert collapse_curves(tie)[0]["commonest_top1"] == "G"  # ties: the first seen


def test_read_prompt_file(tmp_path):
    tok = CharTokenizer(list("abc "))
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "one", "prompt": "abcabc"}\n\n{"prompt": "a x b"}\n'
                    '{"id": 3, "prompt": "zzz"}\n{"prompt": "cc"}\n')
    got = read_prompt_file(path, tok, 10, 4)
    # cut to the last 4 tokens; unknown characters dropped; an empty prompt skipped
    assert [(pid, tok.decode(ids)) for pid, ids in got] == [("one", "cabc"), ("3", "a  b"),
                                                            ("5", "cc")]
    assert len(read_prompt_file(path, tok, 1, 4)) == 1
    path.write_text('{"prompt": "ab"}\n{"text": "ab"}\n')
    with pytest.raises(InputFileError, match="line 2: expected an object with a 'prompt'"):
        read_prompt_file(path, tok, 10, 4)
    path.write_text('{"prompt": "ab"\n')
    with pytest.raises(InputFileError, match="line 1: not JSON"):
        read_prompt_file(path, tok, 10, 4)
    with pytest.raises(InputFileError, match="file not found"):
        read_prompt_file(tmp_path / "none.jsonl", tok, 10, 4)


def test_lima_prompts_encode_with_a_byte_level_bpe(shared_data):
    from dnadiff.tokenizers import BPETokenizer

    text = (shared_data / "text" / "tinyshakespeare.txt").read_text()[:200_000]
    tok = BPETokenizer.train([text], vocab_size=512)
    got = read_prompt_file(shared_data / "prompts" / "lima_prompts.jsonl", tok, 100, 64)
    assert len(got) == 100 and all(0 < len(ids) <= 64 for _, ids in got)
    assert got[0][0].startswith("lima")


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
    tok = DNATokenizer().to_dict()
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], len(tok["tokens"]), causal=False)
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
    tok = index["tokenizer"]
    for objective in ("mdlm", "ar"):
        c = dict(cfg, objective=objective)
        model = build_backbone(c["model"], len(tok["tokens"]), causal=objective == "ar")
        save_checkpoint(tmp / f"{objective}.pt", model, c, tok, step=3)
    return tmp, cfg, tokenizer_from_dict(tok)


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
    save_checkpoint(tmp_path / "ar.pt", model, ar_cfg, tok.to_dict(), step=1)
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
    save_checkpoint(tmp_path / "ar.pt", model, ar_cfg, DNATokenizer().to_dict(), step=1)
    trap = {**cfg["marginal_trap"], "samplers": ["ancestral"], "divisors": [1]}
    res = run_marginal_trap(tmp / "m.pt", tmp / "data", trap, cfg["evaluate"],
                            ar_checkpoint=tmp_path / "ar.pt")
    # an untrained AR model (zero head) is uniform over the four bases: exactly 2 bits
    for r in res["rows"]:
        assert r["ar_bits_per_base"] == pytest.approx(2.0, abs=1e-5)
