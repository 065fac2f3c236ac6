"""The whole downstream task run: every method reported, a working oracle saved (keeping
rc-conjoining), named errors for corrupt checkpoints, bad configs and bad benchmark files, and
the result and comparison tables."""

import copy
import json

import pytest
from downstream_kit import FT, ds, motif_task, repeat_task

from dnadiff.checkpoint import load_checkpoint, load_classifier
from dnadiff.cli import main
from dnadiff.config import validate_config
from dnadiff.downstream import collect_results, run_task
from dnadiff.downstream.published import PUBLISHED, comparison_rows
from dnadiff.errors import DnadiffError
from dnadiff.models.classifier import predict_proba
from dnadiff.tasks import LabeledTask


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
    ft = dict(FT, steps=4, val_every=2, seeds=[0], rc_conjoin=True)
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
