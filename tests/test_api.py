"""The Python API (``dnadiff.load``): sampling, per-sequence likelihood, embeddings and variant
effects of tiny models trained on a repeated motif; the API gives the verbs' numbers."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
from score_kit import MOTIF, WINDOW, other_base

import dnadiff
from dnadiff.cli import main
from dnadiff.errors import DnadiffError

from conftest import REPO, read_fasta, write_fasta


def read_tsv(path) -> list[dict]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def test_import_is_cheap_and_load_is_exported():
    code = ("import sys, dnadiff; assert 'torch' not in sys.modules; "
            "assert callable(dnadiff.load) and 'load' in dir(dnadiff); "
            "assert 'torch' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["mdlm", "ar"])
def test_round_trip_sample_then_log_likelihood(motif_models, kind):
    model = dnadiff.load(motif_models[kind])
    assert (model.window, model.objective.name) == (WINDOW, kind)
    seqs = model.sample(3, length=40, steps=8, seed=1)  # longer than the window: semi-AR
    assert len(seqs) == 3 and all(len(s) == 40 and set(s) <= set("ACGT") for s in seqs)
    assert model.sample(3, length=40, steps=8, seed=1) == seqs  # deterministic in the seed
    ll = model.log_likelihood(seqs, t_draws=4)
    assert ll.bits_per_token.shape == ll.se.shape == ll.tokens.shape == (3,)
    assert np.isfinite(ll.bits_per_token).all() and (ll.bits_per_token > 0).all()
    assert list(ll.tokens) == [40, 40, 40]
    if kind == "ar":
        assert ll.t_draws == 1 and ll.estimate == "exact NLL" and (ll.se == 0).all()
    else:
        assert ll.t_draws == 4 and (ll.se > 0).all() and np.isfinite(ll.se).all()


def test_api_samples_are_the_sample_verbs(motif_models, tmp_path):
    out = tmp_path / "s.fa"
    assert main(["sample", "--config-json", '{"run": "x", "sample": {"num_samples": 2, '
                 '"steps": 8, "seed": 3, "length": 24}}', "--checkpoint",
                 str(motif_models["mdlm"]), "--out", str(out)]) == 0
    api = dnadiff.load(motif_models["mdlm"]).sample(2, length=24, steps=8, seed=3)
    assert [seq for _, seq in read_fasta(out)] == api


def test_embedding_shapes(motif_models):
    model = dnadiff.load(motif_models["mdlm"])
    seqs = [MOTIF * 3, (MOTIF * 3)[::-1]]
    mean = model.embed(seqs)
    every = model.embed(seqs, pool="none")
    assert mean.shape == (2, 32) and every.shape == (2, 24, 32)
    assert np.allclose(every.mean(1), mean, atol=1e-5)
    assert not model.module.training  # embedding leaves the model in eval mode
    assert model.embed([MOTIF, MOTIF * 2]).shape == (2, 32)  # mean: any lengths
    with pytest.raises(DnadiffError, match="one length"):
        model.embed([MOTIF, MOTIF * 2], pool="none")
    with pytest.raises(DnadiffError, match="longer than the model's window"):
        model.embed(["A" * (WINDOW + 1)])


def test_api_gives_the_numbers_of_score_sequences(motif_models, tmp_path):
    seqs = [("long", (MOTIF * 9)[:70]), ("short", MOTIF * 2), ("with_n", MOTIF + "NN" + MOTIF)]
    fasta = write_fasta(tmp_path / "s.fa", seqs)
    out = tmp_path / "s.tsv"
    assert main(["score", "sequences", "--checkpoint", str(motif_models["mdlm"]), "--fasta",
                 str(fasta), "--out", str(out)]) == 0
    rows = read_tsv(out)
    ll = dnadiff.load(motif_models["mdlm"]).log_likelihood([s for _, s in seqs])
    assert [r["name"] for r in rows] == ["long", "short", "with_n"]
    assert [int(r["windows"]) for r in rows] == [3, 1, 1]
    assert [int(r["tokens_scored"]) for r in rows] == list(ll.tokens) == [70, 16, 16]
    assert np.allclose([float(r["bits_per_token"]) for r in rows], ll.bits_per_token,
                       rtol=1e-5)
    assert np.allclose([float(r["bits_per_token_se"]) for r in rows], ll.se, rtol=1e-5)
    assert rows[0]["t_draws"] == "8" and rows[0]["estimate"] == "NELBO, continuous time"


@pytest.mark.parametrize("kind", ["mdlm", "ar", "bd"])
def test_breaking_the_motif_lowers_the_likelihood(motif_models, kind):
    model = dnadiff.load(motif_models[kind])
    good = MOTIF * 8
    broken = list(good)
    for p in range(3, len(good), 4):  # every fourth base changed
        broken[p] = other_base(good[p])
    ll = model.log_likelihood([good, "".join(broken)], t_draws=32)
    gap = ll.bits_per_token[1] - ll.bits_per_token[0]
    assert gap > 0.5 and gap > 4 * np.hypot(*ll.se), (ll.bits_per_token, ll.se)


@pytest.mark.parametrize("kind", ["mdlm", "ar", "bd"])
@pytest.mark.parametrize("both", [False, True])
def test_a_motif_breaking_snv_has_a_negative_llr(motif_models, kind, both):
    model = dnadiff.load(motif_models[kind])
    ref = MOTIF * 16
    snvs = [(p, ref[p - 1], other_base(ref[p - 1], s)) for p in range(60, 68) for s in (1, 2)]
    scores = model.variant_effects(ref, snvs, window=WINDOW, both_strands=both)
    assert scores.shape == (16,)
    assert (scores < 0).all() and scores.mean() < -2, scores
    # a motif-restoring change (the reverse of a breaking one) is scored positive
    broken = ref[:63] + other_base(ref[63]) + ref[64:]
    back = model.variant_effects(broken, [(64, broken[63], ref[63])], window=WINDOW)
    assert back[0] > 0


def test_ar_variant_effect_is_the_difference_of_exact_window_likelihoods(motif_models):
    model = dnadiff.load(motif_models["ar"])
    ref = (MOTIF * 4)[:WINDOW]
    alt = ref[:16] + other_base(ref[16]) + ref[17:]
    score = model.variant_effects(ref, [(17, ref[16], alt[16])], window=WINDOW)[0]
    ll = model.log_likelihood([ref, alt])
    nats = ll.bits_per_token * ll.tokens * np.log(2)
    assert score == pytest.approx(nats[0] - nats[1], abs=1e-4)


def test_an_export_folder_loads_and_scores_alike(motif_models, tmp_path):
    from dnadiff.export import export_checkpoint

    export_checkpoint(motif_models["ar"], tmp_path / "exported")
    seqs = [MOTIF * 3, "ACGT" * 5]
    a = dnadiff.load(tmp_path / "exported").log_likelihood(seqs)
    b = dnadiff.load(motif_models["ar"]).log_likelihood(seqs)
    assert np.allclose(a.bits_per_token, b.bits_per_token, rtol=1e-6)


def test_variant_effects_refuse_bad_variants_in_one_line(motif_models):
    model = dnadiff.load(motif_models["mdlm"])
    ref = MOTIF * 8
    with pytest.raises(DnadiffError, match=r"variant seq:3 A>C: REF A does not match the "
                                           r"reference given, which has G at seq:3"):
        model.variant_effects(ref, [(3, "A", "C")], window=WINDOW)
    with pytest.raises(DnadiffError, match="contig 'chr9' is not in the reference"):
        model.variant_effects({"c": ref}, [("chr9", 3, "G", "C")], window=WINDOW)
    with pytest.raises(DnadiffError, match=r"'score.window' \(128\) is longer than the window"):
        model.variant_effects(ref, [(3, "G", "C")])
    with pytest.raises(DnadiffError, match="'score.window': 0 is less than the minimum of 1"):
        model.variant_effects(ref, [(3, "G", "C")], window=0)
    with pytest.raises(DnadiffError, match="sequence 'c': character 'X' at position 2"):
        model.variant_effects({"c": "AXGT" * 100}, [("c", 3, "G", "C")], window=WINDOW)
    with pytest.raises(DnadiffError, match="'score.t_draws': 0 is less than the minimum"):
        model.log_likelihood([ref], t_draws=0)
