"""Downstream classification: metrics, features, k-mer features, fine-tuning, the whole task run."""

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dnadiff.checkpoint import load_checkpoint, load_classifier, save_checkpoint
from dnadiff.cli import main
from dnadiff.config import validate_config
from dnadiff.downstream import (
    classification_metrics,
    collect_results,
    fit_kmer,
    kmer_matrix,
    lr_factor,
    param_groups,
    recipe,
    run_task,
    train_classifier,
)
from dnadiff.downstream.published import PUBLISHED, comparison_rows
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier, embed, pad_batch, predict_proba
from dnadiff.models.cnn import GenomicBenchmarksCNN
from dnadiff.schema import downstream_protocols
from dnadiff.tasks import LabeledSet, LabeledTask
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()
COMP = TOK.complement.tolist()


def small_cfg(**model):
    return validate_config({"run": "t", "data": {"window": 32},
                            "model": {"dim": 16, "layers": 1, "heads": 2, "cond_dim": 8,
                                      **model}})


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def test_metrics_exact():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7], [0.2, 0.8]])
    m = classification_metrics(labels, probs)
    assert m["accuracy"] == 0.75
    # TP=2 TN=1 FP=1 FN=0: (2*1 - 1*0) / sqrt(3*2*1*2)
    assert m["mcc"] == pytest.approx(2 / np.sqrt(12))
    assert m["auroc"] == 1.0  # every positive scores above every negative


def test_kmer_matrix_frequencies():
    seqs = [TOK.encode("ACGTA"), TOK.encode("AANAA")]
    x = kmer_matrix(seqs, 2).toarray()
    assert x.shape == (2, 4 + 16)
    assert x[0, :4].tolist() == [0.4, 0.2, 0.2, 0.2]
    # dimers of ACGTA: AC CG GT TA, each 1/4 (codes 4*first+second)
    assert x[0, 4 + 1] == x[0, 4 + 6] == x[0, 4 + 11] == x[0, 4 + 12] == 0.25
    # k-mers touching N are skipped: AANAA has A x4 and AA x2
    assert x[1, 0] == 1.0 and x[1, 4 + 0] == 1.0 and x[1].sum() == 2.0


def test_pad_batch_masks_padding():
    tokens, mask = pad_batch([np.array([0, 1, 2]), np.array([3])])
    assert tokens.tolist() == [[0, 1, 2], [3, TOK.pad_id, TOK.pad_id]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize("backbone", ["dit", "mamba", "caduceus"])
def test_padding_never_reaches_the_backbone(backbone):
    """A sequence's embedding does not depend on what else is in its batch."""
    cfg = small_cfg(backbone=backbone, headdim=8)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    clf = SequenceClassifier(model, 2).eval()
    short, long = TOK.encode("ACGTACGGTAGG"), TOK.encode("TTGACCA" * 5)
    alone = embed(clf, [short])
    batched = embed(clf, [short, long, short[:5]])
    assert np.allclose(batched[0], alone[0], atol=1e-6)
    assert np.allclose(batched[1], embed(clf, [long])[0], atol=1e-6)
    tokens, mask = pad_batch([short])
    assert np.allclose(alone[0], model.features(tokens).mean(1)[0].detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("backbone", ["dit", "mamba", "caduceus"])
def test_feature_width_is_the_width_of_the_pooled_features(backbone):
    """The backbone says how wide its features are: caduceus (RC-equivariant) stacks both
    strands' halves, so its features are as wide as model.dim like the others'."""
    cfg = small_cfg(backbone=backbone, headdim=8)
    model = build_backbone(cfg["model"], TOK.vocab_size, complement=COMP).eval()
    assert model.rc_equivariant == (backbone == "caduceus")
    half = model.final_norm.normalized_shape[0]
    assert model.feature_width == (2 * half if backbone == "caduceus" else half) == 16
    x = [TOK.encode("ACGTACGGTA"), TOK.encode("TTGACC")]
    assert embed(model, x).shape == (2, model.feature_width)
    assert SequenceClassifier(model, 3).head.in_features == model.feature_width


def test_time_conditioned_backbone_is_embedded_at_sigma_zero():
    cfg = small_cfg(time_conditioning=True)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size)).eval()
    x = TOK.encode("ACGTACGGTA")
    got = embed(model, [x])
    tokens, _ = pad_batch([x])
    expect = model.features(tokens, torch.zeros(1)).mean(1).detach().numpy()
    assert np.allclose(got, expect, atol=1e-6)


@pytest.mark.parametrize("backbone", ["dit", "mamba"])
def test_conjoined_features_are_strand_symmetric(backbone):
    cfg = small_cfg(backbone=backbone, rc_conjoin=True)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    x = torch.randint(0, 4, (3, 20))
    xrc = torch.as_tensor(TOK.complement)[x].flip(1)
    with torch.no_grad():
        f, frc = model.features(x), model.features(xrc)
    assert torch.allclose(frc, f.flip(1), atol=1e-5)
    model.set_rc_conjoin(None, TOK.vocab_size)  # without conjoining they differ
    with torch.no_grad():
        assert (model.features(xrc) - model.features(x).flip(1)).abs().max() > 1e-2


def test_caduceus_pooled_features_swap_strands_under_rc():
    cfg = small_cfg(backbone="caduceus", headdim=8)
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size, complement=COMP)).eval()
    x = torch.randint(0, 4, (2, 24))
    xrc = torch.as_tensor(TOK.complement)[x].flip(1)
    with torch.no_grad():
        p, prc = model.features(x).mean(1), model.features(xrc).mean(1)
    half = p.shape[1] // 2
    assert torch.allclose(prc, torch.cat([p[:, half:], p[:, :half]], 1), atol=1e-5)


def motif_task(n=160, length=24, seed=0):
    """Class 1 carries GGGGGG at a random position; class 0 never has a G run of 4."""
    rng = np.random.default_rng(seed)

    def make(m):
        seqs, labels = [], []
        for i in range(m):
            y = i % 2
            s = rng.choice([0, 1, 3], size=length)  # no G at all
            if y:
                p = rng.integers(0, length - 6)
                s[p:p + 6] = 2
            seqs.append(s.astype(np.uint8))
            labels.append(y)
        return LabeledSet(seqs, np.array(labels), [f"s{i}" for i in range(m)])
    return LabeledTask("motif", ["absent", "present"], make(n), None, make(n // 2), length,
                         "synthetic")


FT = {"steps": 60, "batch_size": 16, "lr": 3e-3, "weight_decay": 0.0, "dropout": 0.0,
      "eval_every": 10, "patience": 3, "seeds": [0, 1], "rc_conjoin": False,
      "rc_augment": False}


def test_fine_tuning_learns_a_motif_and_keeps_the_best_step():
    task = motif_task()
    model = build_backbone(small_cfg()["model"], TOK.vocab_size)
    clf, rec = train_classifier(model, task.train, task.test, 2, FT, seed=0,
                                device=torch.device("cpu"))
    probs = predict_proba(clf, task.test.seqs)
    acc = (probs.argmax(1) == task.test.labels).mean()
    assert acc == rec["val_accuracy"]  # the returned model is the best evaluated one
    assert acc > 0.9
    assert rec["step"] % FT["eval_every"] == 0 and rec["step"] <= rec["steps_run"]
    assert np.allclose(probs.sum(1), 1.0)


def test_fine_tuning_is_deterministic_for_a_seed():
    task = motif_task(n=40)
    ft = dict(FT, steps=10)
    out = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_backbone(small_cfg()["model"], TOK.vocab_size)
        clf, _ = train_classifier(model, task.train, task.test, 2, ft, seed=3,
                                  device=torch.device("cpu"))
        out.append(predict_proba(clf, task.test.seqs))
    assert np.array_equal(out[0], out[1])


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    cfg = small_cfg()
    model = randomize(build_backbone(cfg["model"], TOK.vocab_size), seed=5)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(path, model, cfg, TOK.to_dict(), step=1)
    return path


def test_run_task_reports_every_method_and_saves_a_working_oracle(pretrained, tmp_path):
    task = motif_task()
    ds_cfg = validate_config({"run": "t", "downstream": {
        "finetune": dict(FT, seeds=[0, 1]), "kmer_max_k": 3}})["downstream"]
    ckpt = load_checkpoint(pretrained)
    oracle_path = tmp_path / "oracle.pt"
    res = run_task(task, ckpt, ds_cfg, "cpu", oracle_out=oracle_path)
    methods = [r["method"] for r in res["rows"]]
    assert methods == ["finetune", "finetune", "scratch", "scratch", "cnn", "cnn", "probe",
                       "kmer", "kmer_one_k"]
    assert res["protocol"] == "quick" and set(res["recipes"]) == {"finetune", "scratch", "cnn"}
    assert res["recipes"]["scratch"]["lr_grid"] == [ds_cfg["scratch"]["lr"]]
    summary = {s["method"]: s for s in res["summary"]}
    assert summary["finetune"]["runs"] == 2 and summary["probe"]["runs"] == 1
    for s in summary.values():
        assert s["accuracy_min"] <= s["accuracy"] <= s["accuracy_max"]
        assert -1 <= s["mcc"] <= 1 and 0 <= s["auroc"] <= 1
    # every baseline learns the planted motif (the k-mer one sees the G run directly)
    for method in ("kmer", "scratch", "cnn"):
        assert summary[method]["accuracy"] > 0.9, (method, summary[method])
    kmer, one_k = (next(r for r in res["rows"] if r["method"] == m)
                   for m in ("kmer", "kmer_one_k"))
    assert f"{kmer['features']} {kmer['scaling']} C={kmer['C']:g}" in kmer["grid_val_accuracy"]
    assert kmer["scaling"] in ("none", "l2", "standard") and one_k["scaling"] in ("none", "l2",
                                                                                  "standard")
    assert one_k["features"] == "k=3"  # the only single k in 3..6 when kmer_max_k is 3
    assert kmer["val_accuracy"] >= one_k["val_accuracy"]  # its grid holds the plain one's
    for r in res["rows"]:  # what each trained run selected is in its row
        if r["method"] in ("finetune", "scratch", "cnn"):
            assert r["lr"] > 0 and r["step"] <= r["steps_run"]
    json.dumps(res)  # serializable as written by the CLI
    oracle, meta = load_classifier(oracle_path)
    assert meta["classes"] == ["absent", "present"] and meta["length"] == 24
    best = max((r for r in res["rows"] if r["method"] == "finetune"),
               key=lambda r: r["val_accuracy"])
    acc = (predict_proba(oracle, task.test.seqs).argmax(1) == task.test.labels).mean()
    assert acc == pytest.approx(best["accuracy"])


def test_oracle_keeps_rc_conjoining(pretrained, tmp_path):
    task = motif_task(n=40)
    ft = dict(FT, steps=4, eval_every=2, seeds=[0], rc_conjoin=True)
    ds_cfg = validate_config({"run": "t", "downstream": {
        "finetune": ft, "methods": ["finetune"]}})["downstream"]
    res = run_task(task, load_checkpoint(pretrained), ds_cfg, "cpu", tmp_path / "o.pt")
    oracle, _ = load_classifier(tmp_path / "o.pt")
    assert oracle.backbone.rc_conjoin is not None
    acc = (predict_proba(oracle, task.test.seqs).argmax(1) == task.test.labels).mean()
    assert acc == pytest.approx(res["rows"][0]["accuracy"])


def test_corrupt_classifier_checkpoint_is_named(tmp_path):
    bad = tmp_path / "oracle.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DnadiffError, match="oracle.pt: is a text file"):
        load_classifier(bad)
    bad.write_bytes(b"\x80\x02" + bytes(range(256)))  # a pickle's start, then garbage
    with pytest.raises(DnadiffError, match="oracle.pt: corrupt") as err:
        load_classifier(bad)
    assert "unsafe" not in str(err.value)
    with pytest.raises(DnadiffError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


@pytest.mark.parametrize("bad,message", [
    ({"downstream": {"tasks": [{"name": "a", "type": "gue"}]}}, "needs 'path'"),
    ({"downstream": {"tasks": [{"name": "a", "type": "fasta_pair", "positive": "p"}]}},
     "needs 'negative'"),
    ({"downstream": {"tasks": [{"name": "a", "type": "gue", "path": "x"},
                               {"name": "a", "type": "gue", "path": "y"}]}}, "unique"),
    ({"conditional": {"task": "nope"}}, "'nope' is not a downstream task"),
    ({"downstream": {"tasks": [{"name": "a", "type": "gue", "path": "x", "pth": 1}]}},
     "did you mean 'path'"),
    ({"downstream": {"tasks": [{"name": "a", "type": "gue", "path": "x"}],
                     "methods": ["probe"]}, "conditional": {"task": "a"}}, "finetune"),
])
def test_downstream_config_errors(bad, message):
    with pytest.raises(DnadiffError, match=message):
        validate_config({"run": "t", **copy.deepcopy(bad)})


def test_cli_bad_benchmark_file_one_line_error_and_no_outputs(pretrained, tmp_path):
    from conftest import run_cli

    task = tmp_path / "gue"
    task.mkdir()
    (task / "train.csv").write_text("sequence,label\nACGT,0\nACGA,1\nACXT,0\n")
    (task / "test.csv").write_text("sequence,label\nACGT,0\nACGA,1\n")
    cfg = json.dumps({"run": "t", "downstream": {"tasks": [
        {"name": "bad", "type": "gue", "path": str(task)}]}})
    out = tmp_path / "out"
    proc = run_cli("downstream", "run", "--config-json", cfg, "--task", "bad",
                   "--checkpoint", str(pretrained), "--out-json", str(out / "r.json"),
                   "--out-tsv", str(out / "r.tsv"), "--oracle", str(out / "o.pt"))
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "train.csv: line 4" in err[0] and "'X'" in err[0]
    assert not out.exists() or not any(out.iterdir())


# -- protocols, the training loop's pieces, the baselines at full strength (issue 20) ----------
def ds(**downstream):
    return validate_config({"run": "t", "downstream": downstream})["downstream"]


def test_quick_protocol_is_the_finetune_section_as_written():
    r = recipe(ds(), "finetune", 1000)
    ft = ds()["finetune"]
    assert (r["steps"], r["batch_size"], r["eval_every"], r["patience"], r["seeds"]) == (
        ft["steps"], ft["batch_size"], ft["eval_every"], ft["patience"], ft["seeds"])
    assert r["lr_grid"] == [ft["lr"]] and r["validation"] == "task"
    assert recipe(ds(), "scratch", 1000)["lr_grid"] == [ds()["scratch"]["lr"]]
    cnn = recipe(ds(cnn={"lr": 0.01, "weight_decay": 0.5}), "cnn", 1000)
    assert cnn["lr_grid"] == [0.01] and cnn["weight_decay"] == 0.5


def test_genomic_benchmarks_protocol_recipe():
    """10 epochs of batch 256 (steps from the size of train), evaluation every epoch, no
    early stop, lr from {1e-3, 2e-3} for finetune and scratch, 5 seeds, validation from
    train; the CNN keeps its own lr."""
    cfg = ds(protocol="genomic-benchmarks")
    for method in ("finetune", "scratch"):
        r = recipe(cfg, method, 1000)
        assert r["steps"] == 10 * 4 and r["eval_every"] == 4 and r["batch_size"] == 256
        assert r["lr_grid"] == [0.001, 0.002] and r["seeds"] == [0, 1, 2, 3, 4]
        assert r["patience"] is None and r["validation"] == "train"
    assert recipe(cfg, "cnn", 1000)["lr_grid"] == [cfg["cnn"]["lr"]]
    assert recipe(cfg, "finetune", 100)["batch_size"] == 100  # never more than train


def test_gue_protocol_recipe():
    r = recipe(ds(protocol="gue"), "finetune", 3200)
    assert r["steps"] == 3 * 100 and r["eval_every"] == 200 and r["batch_size"] == 32
    assert r["validation"] == "task" and r["seeds"] == [0, 1, 2] and r["patience"] is None


def test_protocols_set_only_finetune_keys():
    ft_keys = set(ds()["finetune"])
    for name, keys in downstream_protocols().items():
        assert set(keys) <= ft_keys, name
    with pytest.raises(DnadiffError, match="protocol"):
        ds(protocol="caduceus")


def test_genomic_benchmarks_protocol_splits_validation_from_train_by_seed(pretrained,
                                                                       monkeypatch):
    """Under genomic-benchmarks the validation split is a stratified 10% of train drawn by
    each seed, even where the task has a validation split of its own."""
    task = motif_task(n=200)
    task = LabeledTask(task.name, task.classes, task.train, task.test, task.test,
                         task.length, task.source)  # a task with its own validation
    cfg = ds(protocol="genomic-benchmarks", methods=["finetune"],
             finetune={"batch_size": 16, "epochs": 1, "dropout": 0.0})
    cfg["finetune"]["epochs"] = 1
    seen = {}

    def spy(model, tr, va, ft_cfg, seed, *args, **kw):
        seen.setdefault(seed, []).append((len(tr.seqs), len(va.seqs), tuple(va.names),
                                          ft_cfg["lr"], ft_cfg["steps"]))
        return model.eval(), {"val_accuracy": ft_cfg["lr"], "step": 1, "steps_run": 1}

    monkeypatch.setattr("dnadiff.downstream.run.fit_classifier", spy)
    res = run_task(task, load_checkpoint(pretrained), cfg, "cpu")
    assert sorted(seen) == [0, 1, 2, 3, 4]
    for seed, runs in seen.items():
        assert [r[3] for r in runs] == [0.001, 0.002]  # the lr grid, per seed
        assert {r[:2] for r in runs} == {(180, 20)}  # 10% of train, stratified
        assert runs[0][4] == 10 * math.ceil(180 / 180)  # 10 epochs of min(256, 180)
    assert len({runs[0][2] for runs in seen.values()}) == 5  # a different split per seed
    assert all(r["lr"] == 0.002 for r in res["rows"])  # the better validation accuracy
    assert all(r["lr_grid_val_accuracy"] == {"0.001": 0.001, "0.002": 0.002}
               for r in res["rows"])


def test_lr_schedule_warms_up_then_decays_by_cosine():
    steps = 200  # warmup: 10 steps
    assert lr_factor(0, steps) == pytest.approx(0.1 * 0.5 * (1 + math.cos(0)))
    assert lr_factor(9, steps) == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 200)))
    assert lr_factor(100, steps) == pytest.approx(0.5)
    assert lr_factor(199, steps) == pytest.approx(0.5 * (1 + math.cos(math.pi * 199 / 200)))
    assert all(lr_factor(s, steps) >= lr_factor(s + 1, steps) for s in range(9, 199))


def test_weight_decay_only_on_weight_matrices():
    cfg = small_cfg(conv_kernel=3)
    clf = SequenceClassifier(build_backbone(cfg["model"], TOK.vocab_size), 2)
    decay, rest = param_groups(clf, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    ids = {id(p) for p in decay["params"]}
    assert id(clf.backbone.embed.weight) not in ids and id(clf.head.bias) not in ids
    assert id(clf.head.weight) in ids and id(clf.backbone.blocks[0].qkv.weight) in ids
    assert all(p.ndim >= 2 for p in decay["params"])
    assert len(decay["params"]) + len(rest["params"]) == len(list(clf.parameters()))
    cnn = GenomicBenchmarksCNN(TOK.vocab_size, 60, 2)
    d, r = param_groups(cnn, 0.1)
    assert id(cnn.embeddings.weight) in {id(p) for p in r["params"]}
    assert all(p.ndim == 1 for p in r["params"] if p is not cnn.embeddings.weight)


def test_a_fresh_dit_tells_positions_apart():
    """The cause of the from-scratch baseline at chance (issue 20): the default bias of the
    embedding convolution (std ~0.2) drowned the token embeddings (std 0.02), so after the
    layer norms neighbouring positions were near copies (cosine 0.99) and a classifier from
    random weights saw almost nothing. With the bias at zero they are not."""
    torch.manual_seed(0)
    cfg = validate_config({"run": "t", "model": {"dim": 64, "cond_dim": 64,
                                                 "conv_kernel": 9}})
    model = build_backbone(cfg["model"], TOK.vocab_size)
    assert torch.count_nonzero(model.conv.bias) == 0
    x = torch.randint(0, 4, (1, 200))
    with torch.no_grad():
        f = model.features(x)[0]
    assert torch.cosine_similarity(f[:-1], f[1:], -1).mean() < 0.5


def dimer_task(n=240, length=60, seed=0):
    """Both classes have the same base composition; class 1 is built from CG and TA pairs,
    class 0 from GC and AT pairs: only the dinucleotides differ (as in GUE tf0, where the
    k = 1 LR is at chance and k = 2 reaches 0.73)."""
    rng = np.random.default_rng(seed)
    pairs = {1: [TOK.encode("CG"), TOK.encode("TA")], 0: [TOK.encode("GC"), TOK.encode("AT")]}

    def make(m):
        seqs = [np.concatenate([pairs[i % 2][j] for j in rng.integers(0, 2, length // 2)])
                .astype(np.uint8) for i in range(m)]
        return LabeledSet(seqs, np.arange(m) % 2, [f"s{i}" for i in range(m)])
    return LabeledTask("dimers", ["gc_at", "cg_ta"], make(n), make(n // 4), make(n // 2),
                         length, "synthetic")


def test_scratch_and_cnn_learn_a_dinucleotide_task(tmp_path):
    """Only context tells the classes apart; the scratch DiT has the embedding convolution
    of the default configs (without it, random weights need hundreds of steps first)."""
    task = dimer_task()
    mcfg = small_cfg(conv_kernel=3)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.pt", build_backbone(mcfg["model"], TOK.vocab_size), mcfg,
                    TOK.to_dict(), step=1)
    cfg = ds(methods=["scratch", "cnn", "kmer"],
             finetune=dict(FT, steps=80, seeds=[0], lr=1e-3), scratch={"lr": 2e-3})
    res = run_task(task, load_checkpoint(tmp_path / "m.pt"), cfg, "cpu")
    assert res["recipes"]["scratch"]["patience"] is None
    acc = {r["method"]: r["accuracy"] for r in res["rows"]}
    assert acc["scratch"] > 0.9 and acc["cnn"] > 0.9 and acc["kmer"] > 0.9, acc


def test_kmer_grid_is_joint_and_holds_the_plain_baseline():
    task = dimer_task(n=200)
    clf, rec, (one_clf, one_rec) = fit_kmer(task.train, task.validation, 4, cs=(0.1, 1.0))
    # {k=1..4, k=1..2..4} x {none, l2, standard} x C
    assert len(rec["grid_val_accuracy"]) == (4 + 3) * 3 * 2
    assert rec["val_accuracy"] == max(rec["grid_val_accuracy"].values())
    assert one_rec["features"] in ("k=3", "k=4")
    assert rec["val_accuracy"] >= one_rec["val_accuracy"]
    assert fit_kmer(task.train, task.validation, 2, cs=(1.0,))[2] is None  # no k in 3..6


def repeat_task(n=200, seed=0):
    """Class 1 is a tandem repeat of a random 3-5 base unit (10% of bases mutated), class 0 a
    random sequence; lengths 60-240. Linear in the L2-normalised k-mer frequencies (their sum
    is 1 / the L2 norm: large for a diverse spectrum, small for a repeat's few k-mers), close
    to chance in the raw or standardised ones (every column is alike on average)."""
    rng = np.random.default_rng(seed)

    def make(m):
        seqs = []
        for i in range(m):
            length = int(rng.integers(60, 241))
            if i % 2:
                s = np.resize(rng.integers(0, 4, int(rng.integers(3, 6))), length)
                flip = rng.random(length) < 0.1
                s[flip] = rng.integers(0, 4, int(flip.sum()))
            else:
                s = rng.integers(0, 4, length)
            seqs.append(s.astype(np.uint8))
        return LabeledSet(seqs, np.arange(m) % 2, [f"s{i}" for i in range(m)])
    return LabeledTask("repeats", ["complex", "repeat"], make(n), make(n // 2), make(n), 240,
                         "synthetic")


@pytest.mark.parametrize("seed", [0, 1])
def test_kmer_grid_chooses_the_feature_scaling_on_validation(seed):
    """Issue 26, item 29: the scaling (none, l2, standard) is a dimension of the grid, chosen
    on validation with the features and C, and reported; where L2 normalisation is what
    separates the classes the grid picks it, for the plain single-k baseline too."""
    task = repeat_task(seed=seed)
    clf, rec, (one_clf, one_rec) = fit_kmer(task.train, task.validation, 3,
                                            cs=(0.1, 1.0, 10.0))
    assert len(rec["grid_val_accuracy"]) == (3 + 2) * 3 * 3
    best = {}
    for key, acc in rec["grid_val_accuracy"].items():
        scaling = key.split()[1]
        best[scaling] = max(best.get(scaling, 0.0), acc)
    assert set(best) == {"none", "l2", "standard"}
    assert rec["scaling"] == one_rec["scaling"] == "l2", (rec, best)
    assert rec["val_accuracy"] == best["l2"] >= 0.95
    assert best["none"] < 0.8 and best["standard"] < 0.8, best  # chance is 0.5
    a, b = rec["columns"]
    test = kmer_matrix(task.test.seqs, 3).tocsc()[:, a:b]
    assert (clf.predict(test) == task.test.labels).mean() >= 0.95


def test_downstream_table_shows_the_kmer_grids_choice(pretrained, tmp_path):
    """The k-mer rows of a result file carry the chosen features, scaling and C, and the
    downstream table's ``selected`` column shows them."""
    res = run_task(repeat_task(n=120), load_checkpoint(pretrained),
                   ds(methods=["kmer"], kmer_max_k=3), "cpu")
    rows = {r["method"]: r for r in res["rows"]}
    assert rows["kmer"]["scaling"] == rows["kmer_one_k"]["scaling"] == "l2"
    assert rows["kmer"]["accuracy"] >= 0.9
    (tmp_path / "r.json").write_text(json.dumps(res))
    out, _, _ = collect_results([tmp_path / "r.json"])
    assert main(["downstream", "table", "--inputs", str(tmp_path / "r.json"), "--out-tsv",
                 str(tmp_path / "t.tsv")]) == 0
    assert [r["selected"] for r in out] == [
        f"{rows[m]['features']} l2 C={rows[m]['C']:g}" for m in ("kmer", "kmer_one_k")]
    lines = (tmp_path / "t.tsv").read_text().splitlines()
    assert lines[0].split("\t")[-1] == "selected"
    assert lines[1].split("\t")[-1] == f"{rows['kmer']['features']} l2 C={rows['kmer']['C']:g}"


def test_comparison_table_renders_our_rows_beside_the_published(pretrained, tmp_path):
    """A task named as its benchmark names it gets the published rows under ours, in the
    benchmark's metric (GUE: MCC), with the protocol difference said."""
    task = motif_task(n=40)
    task = LabeledTask("tf0", task.classes, task.train, None, task.test, task.length,
                         task.source)
    cfg = ds(methods=["kmer"], kmer_max_k=3)
    res = run_task(task, load_checkpoint(pretrained), cfg, "cpu")
    assert res["model"]["parameters"].endswith("M") and "steps" in res["model"]["pretraining"]
    (tmp_path / "tf0.json").write_text(json.dumps(res))
    other = dict(res, summary=[dict(s, task="mine") for s in res["summary"]],
                 rows=[dict(r, task="mine") for r in res["rows"]],
                 task=dict(res["task"], name="mine"))
    (tmp_path / "mine.json").write_text(json.dumps(other))
    inputs = [tmp_path / "tf0.json", tmp_path / "mine.json"]
    rows, _, _ = collect_results(inputs)
    assert len(rows) == 4
    assert main(["downstream", "table", "--inputs", *map(str, inputs), "--out-tsv",
                 str(tmp_path / "t.tsv"), "--comparison", str(tmp_path / "cmp.md")]) == 0
    md = (tmp_path / "cmp.md").read_text()
    kmer = next(s for s in res["summary"] if s["method"] == "kmer")
    assert f"| tf0 | mcc | ours | kmer | {kmer['mcc']:.3f} |" in md
    assert "| tf0 | mcc | DNABERT-2 | published | 0.720 | 117M |" in md  # 71.99 in Table 4
    assert "quick (not the benchmark's protocol)" in md
    assert "mine" not in md and "DNABERT-2 paper" in md
    rows = comparison_rows([res])
    assert [r["method"] for r in rows] == ["kmer", "kmer_one_k"] + ["published"] * 3
    metric, published = PUBLISHED["genomic-benchmarks"]
    assert metric == "accuracy" and set(published) == {"human_enhancers_cohn",
                                                       "human_nontata_promoters"}


def test_genomic_benchmarks_config_has_the_mdlm_table_7_tasks():
    root = Path(__file__).resolve().parents[1] / "config"
    hg = yaml.safe_load((root / "hg38.yaml").read_text())
    gb = yaml.safe_load((root / "genomic-benchmarks.yaml").read_text())
    cfg = validate_config({**hg, **gb})
    assert cfg["downstream"]["protocol"] == "genomic-benchmarks"
    tasks = {t["name"]: t for t in cfg["downstream"]["tasks"]}
    assert len(tasks) == 8 and {t["type"] for t in tasks.values()} == {"coordinates"}
    assert set(PUBLISHED["genomic-benchmarks"][1]) <= set(tasks)
    # human tasks cut from the run's genome; mouse and worm name their own reference
    assert tasks["human_enhancers_cohn"]["reference"] is None
    assert tasks["dummy_mouse_enhancers_ensembl"]["reference"].endswith("mm10.fa.gz")
    r = recipe(cfg["downstream"], "finetune", 10_000)
    assert r["steps"] == 10 * 40 and r["lr_grid"] == [0.001, 0.002] and len(r["seeds"]) == 5
