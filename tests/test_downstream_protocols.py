"""Downstream protocols, the training loop's pieces and the baselines at full strength (issue
20): protocol recipes, validation splits by seed, the lr schedule, weight decay, from-scratch
and CNN baselines, the k-mer grid, and the Genomic Benchmarks config."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from downstream_kit import FT, TOK, ds, motif_task, repeat_task, small_cfg

from dnadiff.checkpoint import load_checkpoint, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.downstream import fit_kmer, kmer_matrix, lr_factor, param_groups, recipe, run_task
from dnadiff.downstream.published import PUBLISHED
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier
from dnadiff.models.cnn import GenomicBenchmarksCNN
from dnadiff.schema import downstream_protocols
from dnadiff.tasks import LabeledSet, LabeledTask


def test_quick_protocol_is_the_finetune_section_as_written():
    r = recipe(ds(), "finetune", 1000)
    ft = ds()["finetune"]
    assert (r["steps"], r["batch_size"], r["val_every"], r["patience"], r["seeds"]) == (
        ft["steps"], ft["batch_size"], ft["val_every"], ft["patience"], ft["seeds"])
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
        assert r["steps"] == 10 * 4 and r["val_every"] == 4 and r["batch_size"] == 256
        assert r["lr_grid"] == [0.001, 0.002] and r["seeds"] == [0, 1, 2, 3, 4]
        assert r["patience"] is None and r["validation"] == "train"
    assert recipe(cfg, "cnn", 1000)["lr_grid"] == [cfg["cnn"]["lr"]]
    assert recipe(cfg, "finetune", 100)["batch_size"] == 100  # never more than train


def test_gue_protocol_recipe():
    r = recipe(ds(protocol="gue"), "finetune", 3200)
    assert r["steps"] == 3 * 100 and r["val_every"] == 200 and r["batch_size"] == 32
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
                    TOK, step=1)
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
