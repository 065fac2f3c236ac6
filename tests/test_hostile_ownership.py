"""The reliability suite, ownership: nothing is deleted that dnadiff did not create, and no
output lands on an input or on another output.

A folder is dnadiff's only when it holds the marker written when dnadiff created it
(``.dnadiff-output`` for outputs, ``.dnadiff-train-state`` for ``--workdir``), never by the
shape of its contents; a marked folder that has since gained files of the user's is not
replaced either. Every verb refuses, before any work, an output path that equals, contains or
sits inside one of its inputs or another of its outputs (symbolic links followed).
"""

from __future__ import annotations

import json
import shutil

import pytest
from hostile_kit import (
    assert_ok,
    assert_rejected,
    cfg,
    copy_data,
    hostile,
    listing,
    no_temporaries,
    train_args,
)

from conftest import run_cli


def contents(folder) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


# ------------------------------------------------------- 1. a folder's shape is not ownership
@hostile("rejected")
def test_prepare_keeps_a_user_folder_that_only_looks_prepared(world, tmp_path):
    out = tmp_path / "out"
    (out / "tokens").mkdir(parents=True)
    (out / "index.json").write_text("{}")
    (out / "thesis.tex").write_text("x")
    (out / "tokens" / "mine.npy").write_text("mine")
    kept = contents(out)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", out), before, [tmp_path], out, "did not create")
    assert contents(out) == kept


# ------------------------------------------------------- 2. --workdir: the marker only
@hostile("rejected")
def test_train_keeps_an_unmarked_workdir_that_looks_like_a_training_state(world, tmp_path):
    work = tmp_path / "work"
    (work / "checkpoints").mkdir(parents=True)
    (work / "run.json").write_text(json.dumps({"config": {"train": {}}}))
    (work / "checkpoints" / "best.ckpt").write_text("my best model")
    (work / "attempt_2.csv").write_text("my notes")
    kept = contents(work)
    before = listing(tmp_path)
    args = train_args(world["data"], tmp_path)
    args[-1] = work
    assert_rejected(run_cli(*args), before, [tmp_path], work, ".dnadiff-train-state", "mv ")
    assert contents(work) == kept


@hostile("accepted")
def test_train_in_a_marked_workdir_removes_only_its_own_entries(world, tmp_path):
    """A training-state folder of ours that has gained the user's files: training runs, and
    only what dnadiff writes there, by exact name, is ever removed."""
    work = tmp_path / "state"
    assert_ok(run_cli(*train_args(world["data"], tmp_path)))
    (work / "checkpoints").mkdir(exist_ok=True)
    (work / "checkpoints" / "best.ckpt").write_text("my best model")
    (work / "attempt_2.csv").write_text("my notes")
    (work / "attempt_x").mkdir()
    (work / "notes.txt").write_text("mine")
    mine = {k: v for k, v in contents(work).items()
            if k in ("checkpoints/best.ckpt", "attempt_2.csv", "notes.txt")}
    (tmp_path / "model.pt").unlink()
    (tmp_path / "metrics.csv").unlink()
    assert_ok(run_cli(*train_args(world["data"], tmp_path)))
    assert {k: v for k, v in contents(work).items() if k in mine} == mine
    assert (work / "attempt_x").is_dir() and (tmp_path / "model.pt").is_file()
    no_temporaries(tmp_path)


# ------------------------------------------------------- 3-6. outputs onto inputs and outputs
@hostile("rejected")
def test_prepare_refuses_an_outdir_that_holds_its_input(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    fasta = data / "g.fa"
    shutil.copy(world["fasta"], fasta)
    kept = contents(data)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", fasta, "--outdir",
                            data), before, [tmp_path], data, "contains the input --fasta")
    assert contents(data) == kept


@hostile("rejected")
def test_prepare_keeps_a_prepared_folder_that_gained_user_files(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    (data / "notes.txt").write_text("mine")
    kept = contents(data)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", data), before, [tmp_path], data, "notes.txt",
                    "did not write")
    assert contents(data) == kept


@hostile("rejected")
@pytest.mark.parametrize("notes", [True, False])
def test_export_never_replaces_prepared_data(world, tmp_path, notes):
    data = copy_data(world, tmp_path / "data")
    if notes:
        (data / "notes.txt").write_text("mine")
    kept = contents(data)
    before = listing(tmp_path)
    assert_rejected(run_cli("export", "--checkpoint", world["model"], "--out", data), before,
                    [tmp_path], data, "prepared data")
    assert contents(data) == kept


@hostile("accepted")
def test_export_replaces_its_own_export(world, tmp_path):
    out = tmp_path / "exported"
    assert_ok(run_cli("export", "--checkpoint", world["model"], "--out", out))
    first = sorted(contents(out))
    (out / "README.md").write_text("edited")  # a file of its own, changed: still ours
    assert_ok(run_cli("export", "--checkpoint", world["model"], "--out", out))
    assert sorted(contents(out)) == first and (out / "README.md").read_text() != "edited"
    no_temporaries(tmp_path)


@hostile("rejected")
@pytest.mark.parametrize("how", ["same path", "symbolic link", "hard link"])
def test_sample_never_writes_over_its_model(world, tmp_path, how):
    model = tmp_path / "m.pt"
    shutil.copy(world["model"], model)
    out = model
    if how == "symbolic link":
        out = tmp_path / "samples.fa"
        out.symlink_to(model)
    elif how == "hard link":
        out = tmp_path / "samples.fa"
        out.hardlink_to(model)
    kept = model.read_bytes()
    before = listing(tmp_path)
    assert_rejected(run_cli("sample", "--config-json", cfg(), "--checkpoint", model, "--out",
                            out), before, [tmp_path], out, "--checkpoint")
    assert model.read_bytes() == kept


@hostile("rejected")
def test_train_refuses_one_path_for_model_and_metrics(world, tmp_path):
    before = listing(tmp_path)
    x = tmp_path / "x"
    assert_rejected(run_cli("train", "--config-json", cfg(), "--data", world["data"],
                            "--checkpoint", x, "--metrics", x, "--workdir", tmp_path / "s"),
                    before, [tmp_path], x, "--checkpoint", "--metrics")


@hostile("rejected")
def test_train_refuses_a_workdir_inside_its_data(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    before = listing(tmp_path)
    assert_rejected(run_cli("train", "--config-json", cfg(), "--data", data, "--checkpoint",
                            tmp_path / "m.pt", "--metrics", tmp_path / "m.csv", "--workdir",
                            data / "state"), before, [tmp_path], "--workdir", "inside")


@hostile("rejected")
def test_likelihood_refuses_one_path_for_json_and_tsv(world, tmp_path):
    before = listing(tmp_path)
    x = tmp_path / "x"
    assert_rejected(run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint",
                            world["model"], "--data", world["data"], "--out-json", x,
                            "--out-tsv", x), before, [tmp_path], "--out-json", "--out-tsv")


@hostile("rejected")
def test_likelihood_refuses_an_output_inside_its_data(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    kept = contents(data)
    before = listing(tmp_path)
    assert_rejected(run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint",
                            world["model"], "--data", data, "--out-json", data / "l.json",
                            "--out-tsv", tmp_path / "l.tsv"), before, [tmp_path],
                    "--out-json", "inside the input --data")
    assert contents(data) == kept


@hostile("rejected")
def test_downstream_run_refuses_one_path_for_json_and_tsv(world, tmp_path):
    before = listing(tmp_path)
    x = tmp_path / "x"
    assert_rejected(run_cli("downstream", "run", "--config-json", cfg(), "--task", "any",
                            "--checkpoint", world["model"], "--out-json", x, "--out-tsv", x),
                    before, [tmp_path], "--out-json", "--out-tsv")


@hostile("rejected")
def test_config_never_writes_over_its_own_config_file(tmp_path):
    conf = tmp_path / "c.yaml"
    conf.write_text("run: mine\n")
    before = listing(tmp_path)
    assert_rejected(run_cli("config", "--config", conf, "--out", conf), before, [tmp_path],
                    "--out", "--config")
    assert conf.read_text() == "run: mine\n"


@hostile("rejected")
def test_prepare_refuses_an_outdir_that_is_a_symbolic_link(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    link = tmp_path / "link"
    link.symlink_to(data)
    kept = contents(data)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", link), before, [tmp_path], link, "symbolic link")
    assert link.is_symlink() and contents(data) == kept


@hostile("rejected")
def test_downstream_run_never_writes_into_a_task_the_config_names(world, tmp_path):
    """Inputs named by the config (a task's folder, the probe's prompts) are inputs too."""
    task = tmp_path / "gue"
    task.mkdir()
    (task / "train.csv").write_text("sequence,label\nACGT,0\n")
    conf = cfg(downstream={"tasks": [{"name": "g", "type": "gue", "path": str(task)}]})
    before = listing(tmp_path)
    assert_rejected(run_cli("downstream", "run", "--config-json", conf, "--task", "g",
                            "--checkpoint", world["model"], "--out-json", tmp_path / "o.json",
                            "--out-tsv", task / "train.csv"), before, [tmp_path],
                    "--out-tsv", "downstream.tasks[0].path")
    assert (task / "train.csv").read_text() == "sequence,label\nACGT,0\n"


@hostile("rejected")
def test_probe_never_writes_over_its_prompts(world, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "ACGTACGT"}\n')
    before = listing(tmp_path)
    assert_rejected(run_cli("probe", "collapse", "--config-json", cfg(probe={"prompts":
                                                                             str(prompts)}),
                            "--checkpoint", world["model"], "--data", world["data"],
                            "--out-tsv", tmp_path / "p.tsv", "--out-curves", tmp_path / "c.tsv",
                            "--out-json", prompts), before, [tmp_path], "--out-json",
                    "probe.prompts")
    assert prompts.read_text() == '{"prompt": "ACGTACGT"}\n'
