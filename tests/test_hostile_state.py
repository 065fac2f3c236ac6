"""The reliability suite, corrupt and unsafe training state: a damaged state (empty, truncated,
text, or a pickle that would run planted code) is set aside and training starts afresh; an
intact one resumes.

Every case is marked ``hostile("rejected")`` or ``hostile("accepted")``, as described in
``test_hostile.py``; ``pytest tests/test_hostile*.py`` ends with the table of cases.
"""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import torch
from hostile_kit import assert_ok, cfg, hostile, no_temporaries, train_args

from conftest import run_cli


@pytest.fixture(scope="module")
def interrupted(world, tmp_path_factory):
    """The workdir of a training run that stopped after its first saved state (as after a
    kill -9), made in-process so the moment is exact."""
    from dnadiff import training
    from dnadiff.config import load_config

    root = tmp_path_factory.mktemp("interrupted")
    original = training.SaveState.on_validation_end

    def stop_after_save(self, trainer, module):
        original(self, trainer, module)
        raise RuntimeError("stopped after the first saved state")

    training.SaveState.on_validation_end = stop_after_save
    try:
        with pytest.raises(RuntimeError, match="stopped after"):
            training.train(load_config(None, cfg()), world["data"], root / "model.pt",
                           root / "metrics.csv", root / "state", progress=False)
    finally:
        training.SaveState.on_validation_end = original
    assert (root / "state" / "checkpoints" / "last.ckpt").exists()
    return root / "state"


class Planted:
    """Unpickling this runs code: it creates the file named in ``path``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


@hostile("accepted")
@pytest.mark.parametrize("damage", ["empty", "truncated", "text", "planted code"])
def test_damaged_training_state_is_set_aside_and_training_starts_afresh(
        world, interrupted, tmp_path, damage):
    state = shutil.copytree(interrupted, tmp_path / "state")
    last = state / "checkpoints" / "last.ckpt"
    sentinel = tmp_path / "code-ran"
    if damage == "empty":
        last.write_bytes(b"")
    elif damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    elif damage == "text":
        last.write_text("not a checkpoint\n")
    else:
        state_dict = torch.load(last, weights_only=True)
        state_dict["evil"] = Planted(str(sentinel))
        torch.save(state_dict, last, pickle_protocol=pickle.DEFAULT_PROTOCOL)
    proc = run_cli(*train_args(world["data"], tmp_path))
    assert_ok(proc)
    assert not sentinel.exists(), "resuming ran code from the training state"
    assert "set aside" in proc.stderr and "last.ckpt" in proc.stderr
    assert "resuming" not in proc.stderr
    assert torch.load(tmp_path / "model.pt", weights_only=True)["metrics"][
        "resumed_from_step"] == 0
    # the damaged state is kept where the warning said it was set aside (never run, never
    # deleted: the user may want to look at it); nothing else of the run's state stays
    aside = state / "last.ckpt.corrupt"
    assert str(aside) in proc.stderr and aside.is_file()
    assert not list(state.rglob("*.ckpt"))
    no_temporaries(tmp_path)


@hostile("accepted")
def test_intact_state_resumes(world, interrupted, tmp_path):
    shutil.copytree(interrupted, tmp_path / "state")
    proc = run_cli(*train_args(world["data"], tmp_path))
    assert_ok(proc)
    assert "resuming from" in proc.stderr
    assert torch.load(tmp_path / "model.pt", weights_only=True)["metrics"][
        "resumed_from_step"] == 3
