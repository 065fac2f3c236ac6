"""The masked Markov reference (hand-computed probabilities, wildcard counts as sums of full
counts, backoff, dense = sparse, DNA and text), scored under the model's own times and masks in
the likelihood table, and the loss by masking rate (``dnadiff evaluate masking-rate``)."""

import json
import math

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.data.prepare import prepare_genome
from dnadiff.data.prepared import PreparedData
from dnadiff.data.windows import TiledWindows
from dnadiff.diffusion import build_objective
from dnadiff.errors import DnadiffError
from dnadiff.evaluation import masked_markov
from dnadiff.evaluation.composition import entropy_bits
from dnadiff.evaluation.likelihood import evaluate_likelihood, heldout_nelbo, likelihood_rows
from dnadiff.evaluation.masked_markov import fit_masked_markov
from dnadiff.evaluation.masking_rate import masking_rate_rows, run_masking_rate
from dnadiff.models import build_backbone
from dnadiff.tokenizers import CharTokenizer, DNATokenizer

from conftest import IIDTrueConditional, random_dna, run_cli, write_fasta

DNA = DNATokenizer()
A, C, G, T, N, M = 0, 1, 2, 3, 4, 5


def test_hand_computed_probabilities_both_strands_wildcards_and_backoff():
    """Train AAC: the one 3-gram is (A _ C) -> A; its reverse complement GTT gives (G _ T) -> T.
    Add-0.5 over 4 bases: a context seen once gives 1.5/3 = 1/2 to its centre, 1/6 elsewhere;
    the all-wildcard context has A 1, T 1: (1.5, .5, .5, 1.5) / 4."""
    mm = fit_masked_markov([DNA.encode("AAC")], 1, DNA, min_count=0)
    assert mm.describe() == {"k": 1, "min_count": 0, "pseudocount": 0.5, "storage": "dense",
                             "train_positions": 2}
    x = np.array([[A, M, C, G, M, T, N, M, N]])
    p = mm.probs(x)[0]
    assert p[1] == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])  # A _ C
    assert p[4] == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])  # G _ T
    assert p[0] == pytest.approx([.375, .125, .125, .375])  # (outside, masked): all wildcards
    assert p[7] == pytest.approx([.375, .125, .125, .375])  # (N, N): N reads as a wildcard
    assert p[2] == pytest.approx([.25] * 4)  # (masked, G): G never seen left of a centre
    # the wildcard (A _ *) sums (A _ C): A once
    assert mm.probs(np.array([[A, M, M]]))[0, 1] == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])
    # as a denoiser: log-probabilities on the bases, -inf on N and the specials
    logits = mm(torch.from_numpy(x))
    assert torch.isinf(logits[0, :, 4:]).all()
    assert logits[0, 1, :4].exp().tolist() == pytest.approx([1 / 2, 1 / 6, 1 / 6, 1 / 6])
    # min_count 2: the context (A _ C), seen once, backs off to all wildcards
    backed = fit_masked_markov([DNA.encode("AAC")], 1, DNA, min_count=2)
    assert backed.probs(x)[0, 1] == pytest.approx([.375, .125, .125, .375])
    # one strand only (no complement map): T never seen
    one = fit_masked_markov([DNA.encode("AAC")], 1, DNA, 0, both_strands=False)
    assert one.probs(x)[0, 0] == pytest.approx([1.5 / 3, .5 / 3, .5 / 3, .5 / 3])


def test_backoff_takes_the_widest_context_seen_often_enough():
    """Train ACGTA (k = 2): one 5-gram, (A C _ T A) -> G, and on the other strand (T A _ G T)
    -> C. Query (A C _ T G): +-2 never seen (0), +-1 (C _ T) seen once, +-0 twice."""
    mm = lambda n: fit_masked_markov([DNA.encode("ACGTA")], 2, DNA, n)  # noqa: E731
    q = np.array([[A, C, M, T, G]])
    assert mm(0).probs(q)[0, 2] == pytest.approx([.25] * 4)
    assert mm(1).probs(q)[0, 2] == pytest.approx([1 / 6, 1 / 6, 1 / 2, 1 / 6])
    assert mm(2).probs(q)[0, 2] == pytest.approx([1 / 8, 3 / 8, 3 / 8, 1 / 8])
    assert mm(3).probs(q)[0, 2] == pytest.approx([1 / 8, 3 / 8, 3 / 8, 1 / 8])


def test_wildcard_counts_are_sums_of_full_counts_and_sparse_equals_dense(monkeypatch):
    rng = np.random.default_rng(0)
    train = [rng.choice(7, size=3000, p=[.3, .2, .2, .25, .05, 0, 0]) for _ in range(2)]
    k = 2
    mm = fit_masked_markov(train, k, DNA, min_count=5)
    table = mm.table.reshape([5] * (2 * k) + [4])
    for axis in range(2 * k):
        wild = np.take(table, 4, axis=axis)
        assert np.array_equal(wild, np.take(table, range(4), axis=axis).sum(axis=axis))
    assert np.array_equal(mm.totals, table.sum(-1).reshape(-1))
    assert mm.totals[-1] == mm.positions == table[(slice(0, 4),) * (2 * k)].sum()
    monkeypatch.setattr(masked_markov, "DENSE_MAX", 0)
    sparse = fit_masked_markov(train, k, DNA, min_count=5)
    assert sparse.describe()["storage"] == "sparse" and sparse.positions == mm.positions
    x = rng.integers(0, 7, size=(4, 40))
    assert np.array_equal(sparse.probs(x), mm.probs(x))


def test_text_counts_dense_and_sparse_and_refuses_wide_contexts():
    tok = CharTokenizer(list("ab"))  # generable: a, b, [EOS]: G = 3, add-0.5: n + 1.5
    a, mask = 0, tok.mask_id
    mm = fit_masked_markov([tok.encode("abab")], 1, tok, 0)
    assert mm.describe()["storage"] == "dense"
    # (a _ a) -> b once, (b _ b) -> a once
    assert mm.probs(np.array([[a, mask, a]]))[0, 1] == pytest.approx([.5 / 2.5, 1.5 / 2.5,
                                                                      .5 / 2.5])
    big = CharTokenizer([chr(65 + i) for i in range(40)])
    ids = big.encode("ABCDEABCDEABCDF")
    sparse = fit_masked_markov([ids], 2, big, 0)
    assert sparse.describe()["storage"] == "sparse"
    g = len(big.generable_ids)
    q = big.encode("ABCDE")
    q[2] = big.mask_id
    # (A B _ D E) -> C twice, (A B _ D F) once
    assert sparse.probs(q[None])[0, 2, 2] == pytest.approx(2.5 / (2 + 0.5 * g))
    q[4] = big.mask_id  # (A B _ D *): C three times
    assert sparse.probs(q[None])[0, 2, 2] == pytest.approx(3.5 / (3 + 0.5 * g))
    with pytest.raises(DnadiffError, match="at most 2") as ei:
        fit_masked_markov([ids], 3, big, 0)
    assert "\n" not in str(ei.value)
    with pytest.raises(DnadiffError, match="no 3 consecutive generable tokens"):
        fit_masked_markov([DNA.encode("AANAC")], 1, DNA, 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Prepared random DNA (train c0, c1; test c3), an untrained DiT MDLM and AR (zero heads:
    uniform predictions, 2 bits)."""
    tmp = tmp_path_factory.mktemp("masked_ref")
    fasta = write_fasta(tmp / "g.fa", [(f"c{i}", random_dna(3000, seed=i, p=[.3, .2, .2, .3]))
                                       for i in range(4)])
    prepare_genome(fasta, tmp / "data", validation=["c2"], test=["c3"])
    cfg = validate_config({"run": "m", "data": {"window": 64},
                           "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 16},
                           "evaluate": {"batch_size": 8, "masked_markov_orders": [0, 2],
                                        "markov_likelihood_orders": [1],
                                        "masking_rates": [0.1, 0.5, 0.9]}})
    for objective in ("mdlm", "ar"):
        c = dict(cfg, objective=objective)
        model = build_backbone(c["model"], 7, causal=objective == "ar")
        save_checkpoint(tmp / f"{objective}.pt", model, c, DNA, step=4)
    return tmp, cfg


def test_masked_reference_is_scored_under_the_models_masks(run):
    tmp, cfg = run
    data = PreparedData(tmp / "data")
    ds = TiledWindows(data, "test", 64)
    obj = build_objective(cfg, DNA)
    mm = fit_masked_markov(data.split_arrays("train"), 2, DNA, 10)
    inputs = {}

    def recorder(name, model):
        def forward(tokens, sigma=None, cond=None):
            inputs.setdefault(name, []).append(tokens.clone())
            return model(tokens)
        return forward

    a = heldout_nelbo(recorder("model", IIDTrueConditional([.25] * 4)), obj, ds, 8, 2, seed=3)
    b = heldout_nelbo(recorder("mm", mm), obj, ds, 8, 2, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(inputs["model"], inputs["mm"], strict=True))
    assert a["tokens_scored"] == b["tokens_scored"] == 3000
    assert abs(a["bits_per_token"] - 2.0) < 4 * a["bits_per_token_se"]  # 2 in expectation


def test_likelihood_table_has_the_masked_references(run, tmp_path):
    tmp, cfg = run
    res = evaluate_likelihood(tmp / "mdlm.pt", tmp / "data", cfg["evaluate"])
    ref = res["masked_markov_baselines"]
    assert [(m["k"], m["min_count"], m["storage"]) for m in ref] == [(0, 200, "dense"),
                                                                      (2, 200, "dense")]
    for m in ref:  # paired with the model: the difference of the two, with its own error
        assert m["bits_vs_model"] == pytest.approx(m["bits_per_token"] - res["bits_per_token"],
                                                   abs=1e-9)
        assert m["bits_vs_model_se"] > 0
    rows = likelihood_rows(res)
    assert [r["objective"] for r in rows] == ["mdlm", "masked_markov0", "masked_markov2",
                                              "markov1"]
    assert "both strands" in rows[1]["estimate"] and rows[1]["tokens_scored"] == 3000
    # an AR checkpoint: the references under the MDLM of its config, the same figures
    ar = evaluate_likelihood(tmp / "ar.pt", tmp / "data", cfg["evaluate"])
    assert [m["bits_per_token"] for m in ar["masked_markov_baselines"]] == \
        [m["bits_per_token"] for m in ref]
    assert "bits_vs_model" not in ar["masked_markov_baselines"][0]
    # the command line's table: the paired columns and a row per reference
    proc = run_cli("evaluate", "likelihood", "--config-json", json.dumps(
        {"run": "m", "evaluate": {"masked_markov_orders": [1], "markov_likelihood_orders": []}}),
        "--checkpoint", tmp / "mdlm.pt", "--data", tmp / "data", "--out-json",
        tmp_path / "l.json", "--out-tsv", tmp_path / "l.tsv")
    assert proc.returncode == 0, proc.stderr
    header, *lines = [x.split("\t") for x in (tmp_path / "l.tsv").read_text().splitlines()]
    assert header[:7] == ["objective", "estimate", "split", "bits_per_token",
                          "bits_per_token_se", "bits_vs_model", "bits_vs_model_se"]
    assert [x[0] for x in lines] == ["mdlm", "masked_markov1"]
    assert lines[0][5] == "" and float(lines[1][6]) > 0


def test_loss_by_masking_rate(run):
    tmp, cfg = run
    data = PreparedData(tmp / "data")
    ds = TiledWindows(data, "test", 64)
    obj = build_objective(cfg, DNA)
    mm = fit_masked_markov(data.split_arrays("train"), 0, DNA, 0)
    rows = masking_rate_rows(IIDTrueConditional([.25] * 4), obj, {"mm0": mm}, ds,
                             cfg["evaluate"])
    assert [(r["model"], r["masking_rate"]) for r in rows] == [
        (m, r) for r in (0.1, 0.5, 0.9) for m in ("mdlm", "mm0")]
    counts = data.token_counts("train")[:4] * 1.0
    counts += counts[::-1]  # both strands
    p0 = (counts + 0.5) / (counts.sum() + 2)
    for model, ref in zip(rows[::2], rows[1::2], strict=True):
        assert abs(model["masked_fraction"] - model["masking_rate"]) < 0.04
        assert model["bits_per_masked_token"] == pytest.approx(2.0)  # uniform
        assert ref["masked_tokens"] == model["masked_tokens"]  # the same masks
        # order 0: the mean of -log2 p0 over the masked tokens; the masked positions are
        # those whose uniform draw fell under the rate, here checked through its bounds
        assert -np.log2(p0).max() <= ref["bits_per_masked_token"] <= -np.log2(p0).min()
        assert ref["bits_vs_model"] == pytest.approx(ref["bits_per_masked_token"] - 2.0)
    # the same rates give the same masks in a second run; another place in the list others
    again = masking_rate_rows(None, obj, {"mm0": mm}, ds, cfg["evaluate"])
    assert [r["bits_per_masked_token"] for r in again] == [r["bits_per_masked_token"]
                                                           for r in rows[1::2]]


def test_run_masking_rate_with_an_ar_model_and_order0(run, tmp_path):
    tmp, cfg = run
    res = run_masking_rate(tmp / "mdlm.pt", tmp / "data", cfg["evaluate"],
                           ar_checkpoint=tmp / "ar.pt")
    models = [r["model"] for r in res["rows"]]
    assert models == ["mdlm", "masked_markov0", "masked_markov2"] * 3 + ["ar", "order0"]
    ar, order0 = res["rows"][-2:]
    assert ar["bits_per_masked_token"] == pytest.approx(2.0, abs=1e-5)  # zero head: uniform
    assert ar["masked_tokens"] == 3000
    train = PreparedData(tmp / "data").token_counts("train")[:4]
    assert order0["bits_per_masked_token"] == pytest.approx(entropy_bits(train))
    assert res["order0_train_entropy_bits"] == order0["bits_per_masked_token"]
    # an AR checkpoint alone: its one row beside the references, under its config's MDLM masks
    alone = run_masking_rate(tmp / "ar.pt", tmp / "data", cfg["evaluate"])
    assert [r["model"] for r in alone["rows"]] == ["masked_markov0", "masked_markov2"] * 3 + [
        "ar", "order0"]
    refs = [r for r in res["rows"] if r["model"].startswith("masked")]
    assert [r["bits_per_masked_token"] for r in alone["rows"][:6]] == \
        [r["bits_per_masked_token"] for r in refs]
    # the command line: JSON and TSV
    out = tmp_path / "r.json", tmp_path / "r.tsv"
    proc = run_cli("evaluate", "masking-rate", "--config-json", json.dumps(
        {"run": "m", "evaluate": {"masking_rates": [0.5], "masked_markov_orders": [1]}}),
        "--checkpoint", tmp / "mdlm.pt", "--data", tmp / "data", "--out-json", out[0],
        "--out-tsv", out[1])
    assert proc.returncode == 0, proc.stderr
    got = json.loads(out[0].read_text())
    assert [r["model"] for r in got["rows"]] == ["mdlm", "masked_markov1", "order0"]
    assert out[1].read_text().splitlines()[0].startswith("model\tmasking_rate\tt\t")
    assert math.isclose(got["rows"][0]["masking_rate"], 0.5)
    proc = run_cli("evaluate", "masking-rate", "--config-json", '{"run": "m"}',
                   "--checkpoint", tmp / "mdlm.pt", "--data",
                   tmp / "data", "--ar-checkpoint", tmp / "mdlm.pt", "--out-json",
                   tmp_path / "x.json", "--out-tsv", tmp_path / "x.tsv")
    assert proc.returncode == 2 and "expected an AR checkpoint" in proc.stderr
    assert not (tmp_path / "x.json").exists()
