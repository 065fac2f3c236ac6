"""Downstream classification: metrics, features, k-mer features, fine-tuning, the whole task run."""

import copy
import json

import numpy as np
import pytest
import torch

from dnadiff.checkpoint import load_checkpoint, load_classifier, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.downstream import (
    classification_metrics,
    kmer_matrix,
    run_task,
    task_spec,
    train_classifier,
)
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.models.classifier import SequenceClassifier, embed, pad_batch, predict_proba
from dnadiff.tasks import BenchmarkTask, LabeledSet
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
    return BenchmarkTask("motif", ["absent", "present"], make(n), None, make(n // 2), length,
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
    assert methods == ["finetune", "finetune", "scratch", "scratch", "probe", "kmer"]
    summary = {s["method"]: s for s in res["summary"]}
    assert summary["finetune"]["runs"] == 2 and summary["probe"]["runs"] == 1
    for s in summary.values():
        assert s["accuracy_min"] <= s["accuracy"] <= s["accuracy_max"]
        assert -1 <= s["mcc"] <= 1 and 0 <= s["auroc"] <= 1
    # the k-mer baseline sees the G run directly
    assert summary["kmer"]["accuracy"] > 0.95
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
    with pytest.raises(DnadiffError, match="oracle.pt: corrupt"):
        load_classifier(bad)
    with pytest.raises(DnadiffError, match="not found"):
        load_classifier(tmp_path / "missing.pt")


def test_task_spec_fills_the_runs_genome_and_splits():
    cfg = validate_config({"run": "t", "downstream": {"tasks": [
        {"name": "p", "type": "annotation"},
        {"name": "g", "type": "gue", "path": "x"}]}})
    spec = task_spec(cfg, "p", "genome.fa", "genes.gff3")
    assert spec["fasta"] == "genome.fa" and spec["annotation"] == "genes.gff3"
    assert spec["validation_contigs"] == ["chr15"] and spec["test_contigs"] == ["chr16"]
    assert "path" not in spec and "reference" not in spec
    g = task_spec(cfg, "g")
    assert set(g) == {"name", "type", "path", "seed", "max_per_split", "fixed_length",
                      "split_fractions"}
    with pytest.raises(DnadiffError, match="no downstream task 'q'"):
        task_spec(cfg, "q")


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
