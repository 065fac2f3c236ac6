"""The reliability suite, faults while running: kill -9 during prepare, sample and train, then a
rerun that works and leaves nothing stray; concurrent writers of one output.

Every case is marked ``hostile("rejected")`` or ``hostile("accepted")``, as described in
``test_hostile.py``; ``pytest tests/test_hostile*.py`` ends with the table of cases.
"""

from __future__ import annotations

import json
import random
import signal
import time

import pytest
import torch
from hostile_kit import assert_ok, cfg, hostile, no_temporaries, popen_cli, train_args

from conftest import random_dna, run_cli, write_fasta


def _kill_at(proc, seconds: float) -> bool:
    """SIGKILL ``proc`` after ``seconds`` unless it ended; True if it was killed."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def _assert_whole(fasta, n: int) -> None:
    """``n`` records, each with a sequence as long as the first's, and a final newline."""
    text = fasta.read_text()
    records = [r.split("\n", 1) for r in text.split(">")[1:]]
    lengths = {len(body.replace("\n", "")) for _, body in records}
    assert len(records) == n and len(lengths) == 1 and text.endswith("\n"), (len(records),
                                                                            lengths)


@hostile("accepted")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kill_9_during_prepare_then_rerun(tmp_path, seed):
    fa = write_fasta(tmp_path / "g.fa", [(f"c{i}", random_dna(1_500_000, i)) for i in range(4)]
                     + [("v", random_dna(2000, 9)), ("t", random_dna(2000, 8))])
    out = tmp_path / "data"
    proc = popen_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir", out,
                     log=tmp_path / "log")
    killed = _kill_at(proc, random.Random(seed).uniform(1.0, 4.0))
    if killed:
        assert not out.exists() or (out / "index.json").exists()  # whole or absent
    assert_ok(run_cli("prepare", "--config-json", cfg(), "--fasta", fa, "--outdir", out))
    assert json.loads((out / "index.json").read_text())["split_sizes"]["train"] == 6_000_000
    no_temporaries(tmp_path)


@hostile("accepted")
@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_during_sample_then_rerun(world, tmp_path, seed):
    args = ["sample", "--config-json", cfg(sample={"num_samples": 120, "steps": 32,
                                                   "batch_size": 4}),
            "--checkpoint", world["model"], "--out", tmp_path / "s.fa"]
    proc = popen_cli(*args, log=tmp_path / "log")
    if _kill_at(proc, random.Random(seed).uniform(2.0, 5.0)) and (tmp_path / "s.fa").exists():
        # killed while exiting after publishing (a fast, idle machine): then it is whole
        _assert_whole(tmp_path / "s.fa", 120)
    assert_ok(run_cli(*args))
    _assert_whole(tmp_path / "s.fa", 120)
    no_temporaries(tmp_path)


@hostile("accepted")
@pytest.mark.parametrize("seed", [0, 1])
def test_kill_9_during_train_then_rerun(world, tmp_path, seed):
    args = train_args(world["data"], tmp_path, cfg(train={"steps": 150, "val_every": 10}))
    proc = popen_cli(*args, log=tmp_path / "log")
    if _kill_at(proc, random.Random(seed).uniform(3.0, 6.0)):
        # all or nothing: killed before publishing, neither output; killed while exiting after
        # publishing (a fast, idle machine), both, and the model complete
        published = [(tmp_path / n).exists() for n in ("model.pt", "metrics.csv")]
        assert published in ([False, False], [True, True]), published
        if all(published):
            assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == 150
    assert_ok(run_cli(*args))
    assert torch.load(tmp_path / "model.pt", weights_only=True)["step"] == 150
    assert not list((tmp_path / "state").rglob("*.ckpt"))
    no_temporaries(tmp_path)


@hostile("accepted")
def test_concurrent_writers_of_one_output(world, tmp_path):
    out = tmp_path / "data"
    procs = [popen_cli("prepare", "--config-json", cfg(), "--fasta", world["fasta"], "--outdir",
                       out, log=tmp_path / f"log{i}") for i in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0], [
        (tmp_path / f"log{i}").read_text()[-2000:] for i in range(3)]
    index = json.loads((out / "index.json").read_text())
    assert [c["name"] for c in index["contigs"]] == ["a", "b", "v", "t"]
    assert sorted(p.name for p in (out / "tokens").iterdir()) == [
        f"{i:05d}.npy" for i in range(4)]
    no_temporaries(tmp_path)
