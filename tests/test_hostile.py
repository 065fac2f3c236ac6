"""The reliability suite: dnadiff used as a hostile user would, through the real command line.

Every case is marked ``hostile("rejected")`` (bad input or a fault: exit status 2, exactly one
stderr line ``dnadiff: error: ...`` naming the file and the problem, and no new file or folder
left behind) or ``hostile("accepted")`` (odd but valid: it works, and leaves nothing stray).
``pytest tests/test_hostile*.py`` ends with the table of cases tried / rejected cleanly /
accepted correctly / wrong / partial outputs left (see ``conftest.py``).

This file: folders that are not ours, NaN and infinity, all-N splits, integer-valued floats,
leftovers, prepare and ``data.window``, and samples outside the alphabet. The rest of the suite
is split by subject: ``test_hostile_state.py`` (damaged and planted training state),
``test_hostile_errors.py`` (one line, never a traceback: unusable outputs, broken checkpoints
and prepared data, read-only and full output folders), ``test_hostile_kill.py`` (kill -9 and
concurrent writers), and the ``test_hostile_<subject>.py`` files named in the README.

Faults: kill -9 at several points of prepare, train and sample; read-only and full output
folders (small tmpfs mounts; skipped with a reason where mounting is not allowed); concurrent
writers of the same output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hostile_kit import (
    assert_ok,
    assert_rejected,
    cfg,
    copy_data,
    genome_records,
    hostile,
    listing,
    no_temporaries,
    train_args,
)

from dnadiff.config import validate_config

from conftest import REPO, random_dna, run_cli, write_fasta


@hostile("rejected")
def test_workdir_holding_user_files_is_refused_and_kept(world, tmp_path):
    project = tmp_path / "project"
    (project / "notes").mkdir(parents=True)
    (project / "notes" / "thesis.tex").write_text("months of work")
    copy_data(world, tmp_path / "data")
    before = listing(tmp_path)
    args = train_args(tmp_path / "data", tmp_path)
    args[-1] = project  # --workdir: the user's project folder
    line = assert_rejected(run_cli(*args), before, [tmp_path], project, "did not create")
    assert "never deletes" in line
    assert (project / "notes" / "thesis.tex").read_text() == "months of work"


@hostile("rejected")
def test_workdir_that_is_a_file(world, tmp_path):
    (tmp_path / "state").write_text("a file")
    before = listing(tmp_path)
    assert_rejected(run_cli(*train_args(world["data"], tmp_path)), before, [tmp_path],
                    tmp_path / "state", "is a file")


@hostile("rejected")
def test_prepare_into_a_user_folder_is_refused_and_kept(world, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", mine), before, [tmp_path], mine, "did not create")


@hostile("accepted")
def test_prepare_replaces_its_own_earlier_output(world, tmp_path):
    out = copy_data(world, tmp_path / "data")
    assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                      "--outdir", out))
    assert (out / ".dnadiff-output").exists() and (out / "index.json").exists()
    no_temporaries(tmp_path)


@hostile("rejected")
@pytest.mark.parametrize("marker", [None, "written by dnadiff; this folder may be replaced\n"])
def test_prepared_data_of_an_earlier_version_is_refused_with_the_command_to_move_it(
        world, tmp_path, marker):
    """Ownership by marker only: an earlier version's data (no marker, or the old plain-text
    marker that lists no files) is never replaced; the error gives the command to move it."""
    out = copy_data(world, tmp_path / "data")
    (out / ".dnadiff-output").unlink()
    if marker:
        (out / ".dnadiff-output").write_text(marker)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", out), before, [tmp_path], out, "mv ", ".old")


# ------------------------------------------------------- 2. NaN and infinity
@hostile("rejected")
@pytest.mark.parametrize("section,key,value", [("train", "lr", "Infinity"),
                                               ("train", "lr", "NaN"),
                                               ("data", "rc_augment", "NaN"),
                                               ("diffusion", "eps", "-Infinity")])
def test_non_finite_json_config(world, tmp_path, section, key, value):
    text = cfg(**{section: {key: 0.5}}).replace(f'"{key}": 0.5', f'"{key}": {value}')
    assert json.loads(text)[section][key] != 0.5
    before = listing(tmp_path)
    assert_rejected(run_cli(*train_args(world["data"], tmp_path, text)), before, [tmp_path],
                    f"{section}.{key}", "not a finite number")


@hostile("rejected")
@pytest.mark.parametrize("yaml_value", [".nan", ".inf", "-.inf"])
def test_non_finite_yaml_config(world, tmp_path, yaml_value):
    conf = tmp_path / "c.yaml"
    conf.write_text(f"run: h\ntrain:\n  lr: {yaml_value}\n")
    before = listing(tmp_path)
    assert_rejected(run_cli("config", "--config", conf, "--out", tmp_path / "full.yaml"),
                    before, [tmp_path], conf, "train.lr", "not a finite number")


@hostile("rejected")
def test_snakemake_dry_run_refuses_non_finite_config(tmp_path):
    conf = tmp_path / "nan.yaml"
    conf.write_text("run: h\ntrain:\n  lr: .nan\n")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-s",
                           str(REPO / "workflow" / "Snakefile"), "-n", "--configfile",
                           str(conf), "-d", str(tmp_path / "wd")], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "train.lr" in proc.stdout + proc.stderr and "not a finite number" in \
        proc.stdout + proc.stderr


@hostile("rejected")
def test_diverging_training_publishes_nothing(world, tmp_path):
    proc = run_cli(*train_args(world["data"], tmp_path,
                               cfg(train={"lr": 1e30, "grad_clip": 0, "steps": 9})))
    # the training state stays (resumable); nothing is published
    line = assert_rejected(proc, set(), [tmp_path / "model.pt", tmp_path / "metrics.csv"],
                           "diverged")
    assert "step" in line and "train.lr" in line
    assert not (tmp_path / "model.pt").exists() and not (tmp_path / "metrics.csv").exists()


@hostile("rejected")
@pytest.mark.parametrize("verb", ["sample", "evaluate"])
def test_checkpoint_with_non_finite_weights(world, tmp_path, verb):
    ckpt = torch.load(world["model"], weights_only=True)
    key = next(iter(ckpt["state_dict"]))
    for name in ("state_dict", "ema_state_dict"):
        if ckpt.get(name) is not None:
            ckpt[name][key] = torch.full_like(ckpt[name][key], float("nan"))
    bad = tmp_path / "nan.pt"
    torch.save(ckpt, bad)
    before = listing(tmp_path)
    if verb == "sample":
        proc = run_cli("sample", "--config-json", cfg(), "--checkpoint", bad, "--out",
                       tmp_path / "s.fa")
    else:
        proc = run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint", bad,
                       "--data", world["data"], "--out-json", tmp_path / "l.json",
                       "--out-tsv", tmp_path / "l.tsv")
    assert_rejected(proc, before, [tmp_path], bad, "not finite")


# ------------------------------------------------------- 3. all-N splits
@hostile("rejected")
def test_prepare_refuses_an_all_n_validation_split(tmp_path):
    recs = genome_records()
    recs[2] = ("v", "N" * 1000)
    fa = write_fasta(tmp_path / "g.fa", recs)
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir",
                            tmp_path / "data"), before, [tmp_path], fa, "validation",
                    "all N")


def _make_split_all_n(data: Path, contig: str) -> None:
    """Turn a contig of prepared data into N (as data prepared before the check would be)."""
    index = json.loads((data / "index.json").read_text())
    for c in index["contigs"]:
        if c["name"] == contig:
            arr = np.full(c["length"], 4, dtype=np.load(data / c["file"]).dtype)
            np.save(data / c["file"], arr)
            c["n_count"], c["n_runs"] = c["length"], [[0, c["length"]]]
    (data / "index.json").write_text(json.dumps(index))


@hostile("rejected")
def test_train_refuses_all_n_validation_data(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    _make_split_all_n(data, "v")
    before = listing(tmp_path)
    assert_rejected(run_cli(*train_args(data, tmp_path)), before, [tmp_path], data,
                    "validation split has no scorable token")


@hostile("rejected")
def test_likelihood_refuses_an_all_n_test_split(world, tmp_path):
    data = copy_data(world, tmp_path / "data")
    _make_split_all_n(data, "t")
    before = listing(tmp_path)
    assert_rejected(run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint",
                            world["model"], "--data", data, "--out-json", tmp_path / "l.json",
                            "--out-tsv", tmp_path / "l.tsv"), before, [tmp_path],
                    "test split has no scorable token")


# ------------------------------------------------------- 6. integer-valued floats
@hostile("accepted")
def test_integer_valued_floats(world, tmp_path):
    text = cfg(train={"steps": 4.0, "batch_size": 4.0, "val_every": 2.0})
    proc = run_cli(*train_args(world["data"], tmp_path, text))
    assert_ok(proc)
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == 4
    assert validate_config(json.loads(text))["train"]["steps"] == 4
    assert type(validate_config(json.loads(text))["train"]["steps"]) is int


# ------------------------------------------------------- 8. leftovers
@hostile("accepted")
def test_finished_training_keeps_no_checkpoints(world, tmp_path):
    assert_ok(run_cli(*train_args(world["data"], tmp_path)))
    assert not list((tmp_path / "state").rglob("*.ckpt"))
    no_temporaries(tmp_path)


@hostile("rejected")
def test_failed_prepare_removes_the_folders_it_made(tmp_path):
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGT\n>a\nACGT\n")
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", bad, "--outdir",
                            tmp_path / "x" / "y" / "data"), before, [tmp_path], bad)


@hostile("accepted")
def test_stale_temporary_of_a_killed_prepare_is_cleaned(world, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    stale = tmp_path / f".data.tmp-{dead.pid}@{socket.gethostname()}-abc123"
    (stale / "tokens").mkdir(parents=True)
    (stale / "tokens" / "00000.npy").write_bytes(b"half")
    other_host = tmp_path / ".data.tmp-1@another-host-xyz"
    other_host.mkdir()
    assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"], "--outdir",
                      tmp_path / "data"))
    assert not stale.exists()
    assert other_host.exists()  # another machine's writer may still be running


# ------------------------------------------------------- 9. prepare knows data.window
@hostile("accepted")
def test_prepare_names_contigs_that_give_no_window(tmp_path):
    recs = genome_records() + [("allN", "N" * 500), ("tiny", "ACGTACG")]
    fa = write_fasta(tmp_path / "g.fa", recs)
    proc = run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir",
                   tmp_path / "data")
    assert_ok(proc)
    assert "allN" in proc.stderr and "all N" in proc.stderr
    assert "tiny" in proc.stderr and "will not be trained on" in proc.stderr


@hostile("rejected")
def test_prepare_refuses_a_genome_without_a_training_window(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", [("a", "ACGTNACGTNACGT" * 10), ("v", random_dna(100)),
                                         ("t", random_dna(100, 1))])
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir",
                            tmp_path / "data"), before, [tmp_path], fa, "data.window")


@hostile("rejected")
def test_prepare_refuses_an_all_n_genome(tmp_path):
    fa = write_fasta(tmp_path / "g.fa", [("a", "N" * 100)])
    before = listing(tmp_path)
    no_splits = json.dumps({"run": "x", "data": {"splits": {"validation": [], "test": []}}})
    assert_rejected(run_cli("prepare", "--config-json", no_splits, "--fasta", fa,
                            "--outdir", tmp_path / "data"), before, [tmp_path], fa, "all N")


@hostile("rejected")
def test_samples_outside_the_alphabet_are_never_written(world, tmp_path, monkeypatch):
    """Whatever the network does, no sequence holding a non-alphabet symbol reaches a file."""
    from dnadiff import generation
    from dnadiff.config import load_config
    from dnadiff.diffusion import samplers
    from dnadiff.errors import DnadiffError
    from dnadiff.io import all_or_nothing

    def broken(objective, model, x, **kw):  # a sampler that leaves [MASK] in place
        return x.clone(), {"forward_passes": 1}

    monkeypatch.setitem(samplers.SAMPLERS, "ancestral",
                        samplers.Sampler("ancestral", broken, ("mdlm",)))
    before = listing(tmp_path)
    with pytest.raises(DnadiffError, match="not in the alphabet"), all_or_nothing():
        generation.write_samples(world["model"], tmp_path / "s.fa",
                                 load_config(None, cfg())["sample"], "h")
    assert listing(tmp_path) == before
