"""The reliability suite, one line and never a traceback: outputs onto files or folders, unusable
metrics paths, broken checkpoints and files that are not one, damaged prepared tokens, and
read-only and full output folders (small tmpfs mounts; skipped with a reason where mounting
is not allowed).

Every case is marked ``hostile("rejected")`` or ``hostile("accepted")``, as described in
``test_hostile.py``; ``pytest tests/test_hostile*.py`` ends with the table of cases.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hostile_kit import assert_rejected, cfg, copy_data, hostile, listing, train_args

from conftest import random_dna, run_cli, write_fasta


@hostile("rejected")
def test_prepare_outdir_is_an_existing_file(world, tmp_path):
    target = tmp_path / "data"
    target.write_text("x")
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", target), before, [tmp_path], target, "is a file")


@hostile("rejected")
def test_output_below_a_regular_file(world, tmp_path):
    (tmp_path / "f").write_text("x")
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"],
                            "--outdir", tmp_path / "f" / "data"), before, [tmp_path],
                    "is a file")


@hostile("rejected")
def test_sample_out_is_a_directory(world, tmp_path):
    (tmp_path / "s.fa").mkdir()
    before = listing(tmp_path)
    assert_rejected(run_cli("sample", "--config-json", cfg(), "--checkpoint", world["model"],
                            "--out", tmp_path / "s.fa"), before, [tmp_path], "s.fa",
                    "is a folder")


@hostile("rejected")
def test_train_metrics_path_unusable_publishes_no_model(world, tmp_path):
    (tmp_path / "blocker").write_text("a file")
    before = listing(tmp_path)
    proc = run_cli("train", "--config-json", cfg(), "--data", world["data"], "--checkpoint",
                   tmp_path / "model.pt", "--metrics", tmp_path / "blocker" / "m.csv",
                   "--workdir", tmp_path / "state")
    assert_rejected(proc, before, [tmp_path], "blocker", "is a file")


def _edit_checkpoint(world, tmp_path, edit) -> Path:
    ckpt = torch.load(world["model"], weights_only=True)
    edit(ckpt)
    path = tmp_path / "edited.pt"
    torch.save(ckpt, path)
    return path


@hostile("rejected")
@pytest.mark.parametrize("edit,needle", [
    (lambda c: c["config"]["model"].update(dim=32), "do not fit"),
    (lambda c: c.pop("state_dict"), "state_dict"),
    (lambda c: c["tokenizer"].update(mask_id=99), "mask_id"),
    (lambda c: c["tokenizer"].update(tokens=["A", "C"]), "tokenizer"),
    (lambda c: c["tokenizer"].pop("generable_ids"), "generable_ids"),
    (lambda c: c.update(format="other"), "not a dnadiff checkpoint"),
    (lambda c: c["config"]["train"].update(lr=-1), "config"),
], ids=["config-does-not-fit", "no-state-dict", "mask-id", "token-list", "no-generable",
        "format", "bad-config"])
def test_broken_checkpoint(world, tmp_path, edit, needle):
    bad = _edit_checkpoint(world, tmp_path, edit)
    before = listing(tmp_path)
    assert_rejected(run_cli("sample", "--config-json", cfg(), "--checkpoint", bad, "--out",
                            tmp_path / "s.fa"), before, [tmp_path], bad, needle)


@hostile("rejected")
@pytest.mark.parametrize("content,needle", [(b"", "empty"), (b"hello world\n", "text file"),
                                            (b"\x00\x01\x02binary", "not a PyTorch file"),
                                            ("truncated", "corrupt")])
def test_checkpoint_that_is_not_one(world, tmp_path, content, needle):
    bad = tmp_path / "bad.pt"
    if content == "truncated":
        data = world["model"].read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    else:
        bad.write_bytes(content)
    before = listing(tmp_path)
    assert_rejected(run_cli("sample", "--config-json", cfg(), "--checkpoint", bad, "--out",
                            tmp_path / "s.fa"), before, [tmp_path], bad, needle)


@hostile("rejected")
@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_prepared_tokens_damaged(world, tmp_path, damage):
    data = copy_data(world, tmp_path / "data")
    target = data / "tokens" / "00003.npy"  # the test contig
    if damage == "missing":
        target.unlink()
    else:
        target.write_bytes(target.read_bytes()[:200])
    before = listing(tmp_path)
    assert_rejected(run_cli("evaluate", "likelihood", "--config-json", cfg(), "--checkpoint",
                            world["model"], "--data", data, "--out-json", tmp_path / "l.json",
                            "--out-tsv", tmp_path / "l.tsv"), before, [tmp_path],
                    target, "prepare")


@hostile("rejected")
def test_read_only_output_folder(world, tmp_path, small_fs):
    ro = small_fs("1m", read_only=True)
    before = listing(tmp_path)
    for args in (["prepare", "--config-json", cfg(), "--fasta", world["fasta"], "--outdir",
                  ro / "data"],
                 ["sample", "--config-json", cfg(), "--checkpoint", world["model"], "--out",
                  ro / "s.fa"],
                 train_args(world["data"], ro)):
        assert_rejected(run_cli(*args), before, [tmp_path], ro, "read-only")


@hostile("rejected")
def test_full_disk_during_prepare(tmp_path, small_fs):
    full = small_fs("64k")
    fa = write_fasta(tmp_path / "big.fa", [("a", random_dna(200_000, 1)),
                                           ("v", random_dna(2000, 2)),
                                           ("t", random_dna(2000, 3))])
    before = listing(tmp_path)
    assert_rejected(run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir",
                            full / "data"), before, [tmp_path], full / "data", "disk is full")



@hostile("rejected")
def test_full_disk_when_saving_the_model(world, tmp_path, small_fs):
    full = small_fs("8k")
    before = listing(full)
    proc = run_cli("train", "--config-json", cfg(), "--data", world["data"], "--checkpoint",
                   full / "model.pt", "--metrics", full / "metrics.csv", "--workdir",
                   tmp_path / "state")
    assert_rejected(proc, before, [full], "model.pt", "disk is full")


@hostile("rejected")
def test_full_disk_when_saving_the_training_state(world, tmp_path, small_fs):
    full = small_fs("12k")
    before = listing(tmp_path)
    proc = run_cli(*train_args(world["data"], full))
    assert_rejected(proc, before, [tmp_path], full, "training state", "disk is full")
