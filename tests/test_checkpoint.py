"""Checkpoints: round trip, corrupt and unsafe files, and sampling from a checkpoint."""

from __future__ import annotations

import collections
import os

import pytest
import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.errors import InputFileError
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer

from conftest import read_fasta


def small_config(**extra):
    cfg = {"run": "ck", "data": {"window": 24},
           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
           "sample": {"num_samples": 5, "batch_size": 2, "steps": 6, "seed": 11}}
    cfg.update(extra)
    return validate_config(cfg)


def make_model(cfg, seed=0):
    torch.manual_seed(seed)
    model = build_backbone(cfg["model"], 7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model.eval()


@pytest.fixture
def saved(tmp_path):
    cfg = small_config()
    model = make_model(cfg)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, cfg, DNATokenizer(), step=42,
                    metrics={"val_bits_per_token": 1.9})
    return path, model, cfg


def test_round_trip(saved, tmp_path):
    path, model, cfg = saved
    ckpt = load_checkpoint(path)
    assert ckpt["format"] == "dnadiff-checkpoint" and ckpt["version"] == 1
    assert ckpt["step"] == 42
    assert ckpt["config"] == cfg
    # the file holds the tokenizer's dict; the loaded checkpoint, the tokenizer object
    assert torch.load(path, weights_only=True)["tokenizer"] == DNATokenizer().to_dict()
    assert isinstance(ckpt["tokenizer"], DNATokenizer)
    assert ckpt["tokenizer"].to_dict() == DNATokenizer().to_dict()
    assert ckpt["metrics"] == {"val_bits_per_token": 1.9}
    sd = model.state_dict()
    assert set(ckpt["state_dict"]) == set(sd)
    for k, v in sd.items():
        assert torch.equal(ckpt["state_dict"][k], v), k
    # the model rebuilt from the checkpoint computes the same function
    model2, mdlm, tok = model_from_checkpoint(ckpt)
    x = torch.randint(0, 4, (2, 24))
    assert torch.equal(model2(x), model(x))
    assert not model2.training
    assert mdlm.mask_id == 5 and mdlm.schedule.eps == cfg["diffusion"]["eps"]
    assert tok is ckpt["tokenizer"] and tok.tokens == DNATokenizer().tokens
    # nothing but the checkpoint in the folder (atomic write, no temp files left)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_time_conditioned_round_trip(tmp_path):
    cfg = small_config(model={"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16,
                              "time_conditioning": True})
    model = make_model(cfg)
    path = tmp_path / "t.pt"
    save_checkpoint(path, model, cfg, DNATokenizer(), step=1)
    model2, mdlm, _ = model_from_checkpoint(load_checkpoint(path))
    assert mdlm.time_conditioning
    x = torch.randint(0, 4, (2, 24))
    s = torch.tensor([0.3, 1.2])
    assert torch.equal(model2(x, sigma=s), model(x, sigma=s))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(InputFileError, match="checkpoint not found") as ei:
        load_checkpoint(tmp_path / "nope.pt")
    assert ei.value.path == str(tmp_path / "nope.pt")


@pytest.mark.parametrize("how", ["half", "empty", "garbage", "text", "flipped"])
def test_corrupt_checkpoint(saved, how):
    path, _, _ = saved
    data = path.read_bytes()
    if how == "half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(5000))
    elif how == "text":
        path.write_text("this is not a checkpoint\n")
    else:  # damage the zip central directory at the end
        path.write_bytes(data[:-200] + bytes(b ^ 0xFF for b in data[-200:]))
    with pytest.raises(InputFileError) as ei:
        load_checkpoint(path)
    assert ei.value.path == str(path)
    assert str(ei.value).startswith(f"{path}: ")
    assert len(str(ei.value).splitlines()) == 1


class Evil:
    """Unpickling this would run code (creates a marker file)."""

    marker = None

    def __reduce__(self):
        return (open, (str(Evil.marker), "w"))


class MyDict(collections.OrderedDict):
    pass


def test_arbitrary_object_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    Evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": "dnadiff-checkpoint", "version": 1, "payload": Evil()}, path)
    assert not marker.exists()
    with pytest.raises(InputFileError) as ei:
        load_checkpoint(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: ") and "unsafe" in msg
    assert len(msg.splitlines()) == 1
    assert not marker.exists(), "loading the checkpoint executed code"


def test_custom_class_refused(tmp_path):
    path = tmp_path / "cls.pt"
    torch.save(MyDict(format="dnadiff-checkpoint", version=1), path)
    with pytest.raises(InputFileError, match="unsafe"):
        load_checkpoint(path)


@pytest.mark.parametrize("obj", [{"a": 1}, [1, 2, 3], torch.zeros(3),
                                 {"format": "other", "version": 1}])
def test_not_a_dnadiff_checkpoint(tmp_path, obj):
    path = tmp_path / "other.pt"
    torch.save(obj, path)
    with pytest.raises(InputFileError, match="not a dnadiff checkpoint"):
        load_checkpoint(path)


def test_unsupported_version(tmp_path):
    path = tmp_path / "v2.pt"
    torch.save({"format": "dnadiff-checkpoint", "version": 2, "state_dict": {}}, path)
    with pytest.raises(InputFileError, match="version 2 is not supported"):
        load_checkpoint(path)


def test_directory_as_checkpoint(tmp_path):
    d = tmp_path / "ckdir"
    d.mkdir()
    with pytest.raises(InputFileError) as ei:
        load_checkpoint(d)
    assert ei.value.path == str(d)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="running as root: root can read a chmod 000 file")
def test_unreadable_checkpoint(saved):
    path, _, _ = saved
    path.chmod(0)
    try:
        with pytest.raises(InputFileError):
            load_checkpoint(path)
    finally:
        path.chmod(0o644)


def test_cli_corrupt_checkpoint_is_one_line_error(saved, tmp_path, capsys):
    from dnadiff.cli import main

    path, _, cfg = saved
    path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "samples.fa"
    rc = main(["sample", "--config-json", '{"run": "ck", "data": {"window": 24}}',
               "--checkpoint", str(path), "--out", str(out)])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dnadiff: error: {path}: ")
    assert not out.exists()


# -- sampling from a checkpoint ---------------------------------------------------------------


def test_write_samples(saved, tmp_path):
    from dnadiff.generation import write_samples

    path, _, cfg = saved
    out = tmp_path / "s.fa"
    n = write_samples(path, out, cfg["sample"], cfg["run"], line_width=10)
    assert n == 5
    recs = read_fasta(out)
    assert len(recs) == 5
    for i, (header, seq) in enumerate(recs):
        assert header.startswith(f"ck_{i} run=ck checkpoint_step=42 sampler=ancestral steps=6 "
                                 f"seed=11 index={i} length=24 cache=true temperature=1 "
                                 "top_p=1 prefix_len=0 suffix_len=0 forward_passes=")
        assert 1 <= int(header.rsplit("=", 1)[1]) <= 6
        assert len(seq) == 24 and set(seq) <= set("ACGT")
    assert max(len(line) for line in out.read_text().splitlines() if line[0] != ">") == 10
    # deterministic given checkpoint + sample config; another seed differs
    out2 = tmp_path / "s2.fa"
    write_samples(path, out2, cfg["sample"], cfg["run"], line_width=10)
    assert out2.read_text() == out.read_text()
    out3 = tmp_path / "s3.fa"
    write_samples(path, out3, {**cfg["sample"], "seed": 12}, cfg["run"])
    assert [s for _, s in read_fasta(out3)] != [s for _, s in recs]
    # explicit shorter length
    out4 = tmp_path / "s4.fa"
    write_samples(path, out4, {**cfg["sample"], "length": 7, "num_samples": 2}, "r")
    assert [len(s) for _, s in read_fasta(out4)] == [7, 7]
