"""Influence by distance (``dnadiff probe influence``): exact KL figures on hand-built models
whose reach is known (a model that looks +-2 positions away is moved by nothing farther), the
AR query that no later token can reach, the table's means and errors, and the probe on DNA
and text checkpoints through the command line."""

import json
import math

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.data.prepare import prepare_genome
from dnadiff.data.text import prepare_text
from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError
from dnadiff.evaluation.influence import (
    influence_probe,
    influence_table,
    later_block_distance,
    local_reach,
    mark_rows,
    predict_at,
    query_position,
    run_influence,
)
from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT
from dnadiff.tokenizers import CharTokenizer, DNATokenizer, tokenizer_from_dict

from conftest import random_dna, run_cli, write_fasta


class Neighbours(torch.nn.Module):
    """Logits at position i = sum over offsets o of W_o[token at i + o] (random W): a model
    whose reach is exactly its offsets."""

    def __init__(self, vocab: int, offsets, seed: int = 0):
        super().__init__()
        self.offsets = list(offsets)
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(len(self.offsets), vocab, vocab, generator=g)

    def forward(self, tokens, sigma=None, cond=None):
        B, L = tokens.shape
        out = torch.zeros(B, L, self.w.shape[-1])
        for j, o in enumerate(self.offsets):
            src = torch.arange(L) + o
            ok = (src >= 0) & (src < L)
            out[:, ok] += self.w[j][tokens[:, src[ok]]]
        return out


class Previous(torch.nn.Module):
    """Logits at i: ``a`` on the base at i - 1 (so p = e^a / (e^a + 3) there)."""

    def __init__(self, a: float):
        super().__init__()
        self.a = a

    def forward(self, tokens, sigma=None, cond=None):
        out = torch.zeros(*tokens.shape, 7)
        out[:, 1:] = self.a * torch.nn.functional.one_hot(tokens[:, :-1].clamp_max(6), 7)
        return out


def objective_for(tok, name="mdlm"):
    return build_objective(validate_config({"run": "x", "objective": name}), tok)


def windows_of(tok, n, length, seed=0):
    gen = np.asarray(tok.generable_ids)
    return np.random.default_rng(seed).choice(gen, size=(n, length))


@pytest.mark.parametrize("tok", [DNATokenizer(), CharTokenizer(list("abcdefgh "))],
                         ids=["dna", "text"])
def test_a_model_that_looks_two_away_is_moved_by_nothing_farther(tok):
    model = Neighbours(tok.vocab_size, [-2, -1, 1, 2])
    obj = objective_for(tok)
    res = influence_probe(model, obj, windows_of(tok, 5, 21), [1, 2, 3, 4, 8, 10, 11],
                          tok.generable_ids, alternatives=3, seed=0)
    assert res["query_position"] == 10
    # 11 fits neither side (left 10 at most, right 10 at most)
    assert [(s, d) for s, d, _ in res["probes"]] == [
        (s, d) for s in ("left", "right") for d in (1, 2, 3, 4, 8, 10)]
    rows = influence_table(res)
    assert [r["distance"] for r in rows] == [1, 2, 3, 4, 8, 10]
    for r in rows:
        if r["distance"] <= 2:
            assert r["left_kl_bits"] > 1e-3 and r["right_kl_bits"] > 1e-3
        else:
            assert r["left_kl_bits"] == 0.0 and r["right_kl_bits"] == 0.0 == r["kl_bits"]
        assert r["sides"] == "left+right" and r["windows"] == 5


@pytest.mark.parametrize("objective", ["mdlm", "ar"])
def test_local_reach_is_exactly_where_a_dit_without_attention_stops(objective):
    """A DiT whose attention and MLP are off (zero weights, open gates) sees only through its
    convolutions (embedding 5 wide, 3 wide in each of 2 blocks): the probe's influence is
    positive up to local_reach and exactly zero beyond, for the masked centre (2 + 1 + 1 = 4)
    and for a causal query (4 + 2 + 2 = 8 positions back from the position before it: 9)."""
    tok = DNATokenizer()
    obj = objective_for(tok, objective)
    torch.manual_seed(0)
    m = DiT(tok.vocab_size, dim=16, layers=2, heads=2, cond_dim=16, conv_kernel=5,
            layer_conv=3, causal=obj.causal)
    torch.nn.init.normal_(m.head.weight)
    torch.nn.init.normal_(m.final_ada.bias)
    for blk in m.blocks:
        for p in blk.parameters():
            torch.nn.init.zeros_(p)
        torch.nn.init.normal_(blk.conv.weight)
        torch.nn.init.constant_(blk.ada.bias[32:48], 1.0)
    m.eval()
    reach = local_reach(m, obj)
    assert reach == (9 if obj.causal else 4)
    res = influence_probe(m, obj, windows_of(tok, 3, 24), list(range(1, 12)),
                          tok.generable_ids, alternatives=3, seed=0)
    kl = {r["distance"]: r["kl_bits"] for r in influence_table(res)}
    assert all(kl[d] > 1e-9 for d in range(1, reach + 1))
    assert all(kl[d] == 0.0 for d in kl if d > reach)


def test_block_diffusion_later_blocks_have_exactly_no_influence():
    """A block-diffusion DiT (random weights, attention on): the query (the centre, 12 of 24)
    sits in the block 12..15, so the right distances 4 and more lie in later blocks, which it
    never sees (0, and flagged so), while everything in its block and on its left
    moves it."""
    tok = DNATokenizer()
    obj = build_objective(validate_config({"run": "x", "objective": "mdlm",
                                           "diffusion": {"block_size": 4}}), tok)
    assert later_block_distance(obj, 24) == 4 and later_block_distance(obj, 14) == 1
    assert later_block_distance(obj, 4) is None  # the query's block ends the window
    assert later_block_distance(objective_for(tok), 24) is None
    assert later_block_distance(objective_for(tok, "ar"), 24) is None
    torch.manual_seed(0)
    m = DiT(tok.vocab_size, dim=16, layers=2, heads=2, cond_dim=16)
    for p in m.parameters():
        torch.nn.init.normal_(p, std=0.5)
    m.eval()
    res = influence_probe(m, obj, windows_of(tok, 3, 24), [1, 2, 3, 4, 5, 8, 11],
                          tok.generable_ids, alternatives=3, seed=0)
    rows = {r["distance"]: r for r in influence_table(res)}
    assert all(rows[d]["left_kl_bits"] > 1e-6 for d in rows)
    assert all(rows[d]["right_kl_bits"] > 1e-6 for d in (1, 2, 3))
    # 0 up to float rounding (about 1e-9: the rows sit in different places of the batch); that
    # nothing of a later block enters the computation at all is tests/test_block_diffusion.py's
    assert all(abs(rows[d]["right_kl_bits"]) < 1e-7 for d in (4, 5, 8, 11))
    table = influence_table(influence_probe(m, obj, windows_of(tok, 2, 24), [3, 4, 12],
                                            tok.generable_ids, alternatives=3, seed=0))
    mark_rows(table, m.local_reach, later_block_distance(obj, 24))
    # 12 fits the left side only (12 left of the centre; 11 to its right at most)
    assert [(r["distance"], r["sides"], r["right_in_later_block"], r["beyond_local_reach"])
            for r in table] == [(3, "left+right", False, True), (4, "left+right", True, True),
                                (12, "left", False, True)]


def test_kl_of_a_one_neighbour_model_is_exact():
    """p(x_i) puts e^a / (e^a + 3) on the base at i - 1: changing that base swaps the big and
    a small probability, KL = a (p_big - p_small) nats; a = ln 3: p = 1/2 vs 1/6, log2(3)/3
    bits, for every alternative. Nothing else moves it."""
    tok = DNATokenizer()
    res = influence_probe(Previous(math.log(3.0)), objective_for(tok), windows_of(tok, 4, 16),
                          [1, 2, 5], tok.generable_ids, alternatives=3, seed=1)
    rows = {r["distance"]: r for r in influence_table(res)}
    assert rows[1]["left_kl_bits"] == pytest.approx(math.log2(3.0) / 3, rel=1e-6)
    assert rows[1]["left_kl_se"] == pytest.approx(0.0, abs=1e-7)
    assert rows[1]["right_kl_bits"] == 0.0
    assert rows[1]["kl_bits"] == pytest.approx(math.log2(3.0) / 6, rel=1e-6)
    assert rows[2]["kl_bits"] == 0.0 and rows[5]["kl_bits"] == 0.0


def test_ar_queries_the_last_position_from_its_left_only():
    tok = DNATokenizer()
    ar = objective_for(tok, "ar")
    model = Neighbours(tok.vocab_size, [-2, -1, 0, 1, 2])  # not causal: the cut must protect it
    x = torch.from_numpy(windows_of(tok, 3, 12))
    y = x.clone()
    y[:, 6:] = (y[:, 6:] + 1) % 4  # everything at and after i = 6 changed
    assert torch.equal(predict_at(ar, model, x, 6), predict_at(ar, model, y, 6))
    res = influence_probe(model, ar, windows_of(tok, 4, 12), [1, 2, 3, 4, 11, 12],
                          tok.generable_ids, alternatives=3, seed=0)
    assert res["query_position"] == query_position(ar, 12) == 11
    assert {s for s, _, _ in res["probes"]} == {"left"}
    rows = {r["distance"]: r for r in influence_table(res)}
    assert set(rows) == {1, 2, 3, 4, 11}  # 12 is before the window
    # the input at i holds x_(i-1); the model reads input positions i-2..i: x_(i-3)..x_(i-1)
    assert all(rows[d]["left_kl_bits"] > 1e-3 for d in (1, 2, 3))
    assert rows[4]["left_kl_bits"] == 0.0 == rows[11]["left_kl_bits"]
    assert all("right_kl_bits" not in r and r["sides"] == "left" for r in rows.values())
    assert rows[2]["kl_bits"] == rows[2]["left_kl_bits"]


def test_table_means_and_standard_errors():
    res = {"probes": [("left", 1, 4), ("right", 1, 6), ("left", 3, 2)],
           "kl": np.array([[1.0, 3.0, 0.5], [2.0, 5.0, 0.5], [3.0, 1.0, 2.0]])}
    one, three = influence_table(res)
    assert one["left_kl_bits"] == 2.0 and one["right_kl_bits"] == 3.0
    assert one["left_kl_se"] == pytest.approx(1.0 / math.sqrt(3))
    assert one["kl_bits"] == 2.5  # per window: 2, 3.5, 2
    assert one["kl_se"] == pytest.approx(np.std([2.0, 3.5, 2.0], ddof=1) / math.sqrt(3))
    assert three == {"distance": 3, "windows": 3, "left_kl_bits": 1.0,
                     "left_kl_se": pytest.approx(0.5), "kl_bits": 1.0,
                     "kl_se": pytest.approx(0.5), "sides": "left"}


def test_alternatives_are_drawn_without_the_original_and_capped():
    """Text with 3 alternatives: 3 distinct replacement tokens per probe, never the original;
    asking for more than exist uses all of them."""
    tok = CharTokenizer(list("abcdefgh"))
    seen = []

    class Record(torch.nn.Module):
        def forward(self, tokens, sigma=None, cond=None):
            seen.append(tokens.clone())
            return torch.zeros(*tokens.shape, tok.vocab_size)

    w = windows_of(tok, 2, 9)
    influence_probe(Record(), objective_for(tok), w, [1], tok.generable_ids, 3, seed=0,
                    batch_size=1000)
    x = seen[0]
    assert x.shape == (2 * (1 + 2 * 3), 9)
    left = x[1:4, 3]  # window 0, left d = 1: position 3
    assert len(set(left.tolist())) == 3 and int(w[0, 3]) not in left.tolist()
    seen.clear()
    influence_probe(Record(), objective_for(tok), w, [1], tok.generable_ids, 100, seed=0,
                    batch_size=1000)
    assert seen[0].shape == (2 * (1 + 2 * (len(tok.generable_ids) - 1)), 9)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A DNA MDLM (random weights) and a text AR model (zero head) with their prepared data."""
    tmp = tmp_path_factory.mktemp("influence")
    fasta = write_fasta(tmp / "g.fa", [(f"c{i}", random_dna(2000, seed=i)) for i in range(3)])
    prepare_genome(fasta, tmp / "dna", validation=["c1"], test=["c2"])
    cfg = validate_config({"run": "d", "data": {"window": 32},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16,
                                     "conv_kernel": 5}})
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], 7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    save_checkpoint(tmp / "dna.pt", model, cfg, DNATokenizer(), step=5)
    (tmp / "c.txt").write_text("\n\n".join("the king and the queen of night " * 3
                                           for _ in range(60)))
    tcfg = validate_config({"run": "t", "modality": "text", "objective": "ar",
                            "text": {"tokenizer": "char"}, "data": {"window": 24},
                            "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16}})
    index = prepare_text(tmp / "c.txt", tmp / "text", tcfg["text"])
    save_checkpoint(tmp / "ar.pt", build_backbone(tcfg["model"], len(index["tokenizer"][
        "tokens"]), causal=True), tcfg, tokenizer_from_dict(index["tokenizer"]), step=2)
    return tmp


def test_run_influence_on_a_dna_checkpoint(runs):
    cfg = {"windows": 6, "distances": [1, 2, 16, 32], "alternatives": 3, "seed": 0}
    res = run_influence(runs / "dna.pt", runs / "dna", cfg)
    assert (res["objective"], res["modality"], res["window"], res["query_position"]) == \
        ("mdlm", "dna", 32, 16)
    assert res["alternatives"] == 3 and res["checkpoint_step"] == 5
    rows = {r["distance"]: r for r in res["rows"]}
    assert set(rows) == {1, 2, 16}  # 32 fits no side; 16 only the left (right: 15 at most)
    assert rows[16]["sides"] == "left" and rows[1]["sides"] == "left+right"
    assert all(r["kl_bits"] > 0 and r["windows"] == 6 for r in rows.values())
    # the DiT's convolutions alone carry a token 5 // 2 positions (one block, no layer_conv);
    # the rows beyond that are marked: their influence came through attention
    assert res["local_reach"] == 2
    assert {d: r["beyond_local_reach"] for d, r in rows.items()} == {1: False, 2: False,
                                                                     16: True}


def test_cli_influence_on_text_ar_and_refusals(runs, tmp_path):
    out = tmp_path / "i.tsv", tmp_path / "i.json"
    cfg = json.dumps({"run": "t", "influence": {"windows": 3, "distances": [1, 5, 23, 40]}})
    proc = run_cli("probe", "influence", "--config-json", cfg, "--checkpoint", runs / "ar.pt",
                   "--data", runs / "text", "--out-tsv", out[0], "--out-json", out[1])
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out[1].read_text())
    assert res["objective"] == "ar" and res["query_position"] == 23
    assert res["alternatives"] == 3
    # an untrained AR model (zero head) is uniform whatever its input: no influence at all
    assert [(r["distance"], r["kl_bits"]) for r in res["rows"]] == [(1, 0.0), (5, 0.0),
                                                                      (23, 0.0)]
    # no convolution: the query (predicted at the position before it) sees the base 1 back
    # without attention, nothing farther
    assert res["local_reach"] == 1
    assert [r["beyond_local_reach"] for r in res["rows"]] == [False, True, True]
    assert out[0].read_text().splitlines()[0].split("\t")[:3] == [
        "distance", "windows", "left_kl_bits"]
    for p in out:
        p.unlink()
    proc = run_cli("probe", "influence", "--config-json", cfg, "--checkpoint", runs / "dna.pt",
                   "--data", runs / "text", "--out-tsv", out[0], "--out-json", out[1])
    assert proc.returncode == 2 and "different tokenizers" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not any(p.exists() for p in out)
    with pytest.raises(DnadiffError, match="no distance of \\[40\\] fits a window of 24"):
        run_influence(runs / "ar.pt", runs / "text", {"windows": 2, "distances": [40],
                                                      "alternatives": 1, "seed": 0})
