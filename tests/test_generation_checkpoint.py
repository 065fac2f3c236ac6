"""Generation from a checkpoint: prefix and suffix, lengths beyond the window (semi-
autoregressive), flank errors, and the sampler an MDLM or AR checkpoint accepts."""

from __future__ import annotations

import pytest
import torch
from generation_kit import V

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.generation import write_samples
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer

from conftest import read_fasta as conftest_read_fasta

# -- 12. generation from a checkpoint ---------------------------------------------------------

def make_checkpoint(path, objective="mdlm"):
    cfg = validate_config({"run": "gen", "objective": objective, "data": {"window": 24},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                           "sample": {"num_samples": 3, "batch_size": 2, "steps": 8,
                                      "seed": 1}})
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], V, causal=objective == "ar")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    save_checkpoint(path, model, cfg, DNATokenizer(), step=7)
    return cfg


def read_fasta(path):
    """(name, header fields as a dict, field order, sequence) per record."""
    out = []
    for header, seq in conftest_read_fasta(path):
        name, *fields = header.split(" ")
        out.append((name, dict(f.split("=", 1) for f in fields), list(fields), seq))
    return out


@pytest.fixture(scope="module")
def mdlm_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "mdlm.pt"
    return path, make_checkpoint(path)


@pytest.fixture(scope="module")
def ar_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("ck") / "ar.pt"
    return path, make_checkpoint(path, "ar")


def test_generation_prefix_and_suffix(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    out = tmp_path / "s.fa"
    sc = {**cfg["sample"], "prefix": "ACGTA", "suffix": "TTT"}
    assert write_samples(path, out, sc, "gen") == 3
    recs = read_fasta(out)
    assert len(recs) == 3
    for i, (name, f, raw, seq) in enumerate(recs):
        assert name == f"gen_{i}"
        assert [r.split("=")[0] for r in raw] == [
            "run", "checkpoint_step", "sampler", "steps", "seed", "index", "length", "cache",
            "temperature", "top_p", "prefix_len", "suffix_len", "forward_passes"]
        assert f["prefix_len"] == "5" and f["suffix_len"] == "3"
        assert f["sampler"] == "ancestral" and f["length"] == "24" and f["steps"] == "8"
        assert f["index"] == str(i) and f["checkpoint_step"] == "7"
        assert 1 <= int(f["forward_passes"]) <= 8
        assert len(seq) == 24 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and seq.endswith("TTT")
    # lower case flanks are the same flanks
    out2 = tmp_path / "s2.fa"
    write_samples(path, out2, {**sc, "prefix": "acgta", "suffix": "ttt"}, "gen")
    assert out2.read_text() == out.read_text()


def test_generation_longer_than_window_is_semi_autoregressive(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    out = tmp_path / "long.fa"
    sc = {**cfg["sample"], "length": 60, "prefix": "ACGTA", "suffix": "TTT",
          "temperature": 0.5, "top_p": 0.9}
    write_samples(path, out, sc, "gen")
    recs = read_fasta(out)
    assert len(recs) == 3
    for name, f, raw, seq in recs:
        assert len(seq) == 60 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and seq.endswith("TTT")
        assert f["length"] == "60" and f["semi_ar_stride"] == "12"
        assert f["temperature"] == "0.5" and f["top_p"] == "0.9"
        assert raw[-2].startswith("semi_ar_stride=") and raw[-1].startswith("forward_passes=")
        # 4 blocks (0-24, 12-36, 24-48, 36-60), each with masks, at most 8 passes each
        assert 4 <= int(f["forward_passes"]) <= 32
    out2 = tmp_path / "long8.fa"
    write_samples(path, out2, {**sc, "semi_ar_stride": 8}, "gen")
    assert all(f["semi_ar_stride"] == "8" and len(s) == 60 for _, f, _, s in read_fasta(out2))
    # within the window: no stride field
    out3 = tmp_path / "short.fa"
    write_samples(path, out3, cfg["sample"], "gen")
    assert all("semi_ar_stride" not in f for _, f, _, _ in read_fasta(out3))


@pytest.mark.parametrize("key,value", [("prefix", "ACNGT"), ("prefix", "ACXGT"),
                                       ("prefix", "AC-GT"), ("suffix", "TTN")])
def test_generation_non_generable_flank_is_an_error(mdlm_ckpt, tmp_path, key, value):
    path, cfg = mdlm_ckpt
    out = tmp_path / "bad.fa"
    with pytest.raises(DnadiffError, match=f"sample.{key}") as ei:
        write_samples(path, out, {**cfg["sample"], key: value}, "gen")
    assert len(str(ei.value).splitlines()) == 1
    assert not out.exists()


def test_generation_flanks_leaving_nothing_is_an_error(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    with pytest.raises(DnadiffError, match="leave nothing to generate"):
        write_samples(path, tmp_path / "x.fa",
                        {**cfg["sample"], "prefix": "A" * 20, "suffix": "C" * 4}, "gen")


def test_ar_checkpoint_needs_autoregressive_sampler(ar_ckpt, tmp_path):
    path, cfg = ar_ckpt
    out = tmp_path / "ar.fa"
    assert cfg["sample"]["sampler"] is None  # unset: the objective's own sampler
    with pytest.raises(DnadiffError, match="sample.sampler") as ei:
        write_samples(path, out, {**cfg["sample"], "sampler": "ancestral"}, "gen")
    assert "'autoregressive'" in str(ei.value) and "\n" not in str(ei.value)
    assert not out.exists()
    assert write_samples(path, out, cfg["sample"], "gen") == 3
    assert {f["sampler"] for _, f, _, _ in read_fasta(out)} == {"autoregressive"}
    out.unlink()
    # left to right, an AR model cannot condition on a suffix: refused, nothing written
    with pytest.raises(DnadiffError, match="sample.suffix") as ei:
        write_samples(path, out, {**cfg["sample"], "sampler": "autoregressive",
                                    "prefix": "ACGTA", "suffix": "TTT"}, "gen")
    assert "autoregressive" in str(ei.value) and "3 fixed position(s)" in str(ei.value)
    assert not out.exists()
    sc = {**cfg["sample"], "sampler": "autoregressive", "prefix": "ACGTA"}
    assert write_samples(path, out, sc, "gen") == 3
    for i, (name, f, raw, seq) in enumerate(read_fasta(out)):
        assert f["sampler"] == "autoregressive"
        assert f["steps"] == "24"  # one position at a time
        assert f["forward_passes"] == "24"  # KV cache: one pass per position
        assert len(seq) == 24 and set(seq) <= set("ACGT")
        assert seq.startswith("ACGTA") and f["suffix_len"] == "0"
    # longer than the window: AR blocks of 24 (stride 12), each decoded position by position
    # up to its last masked column: 24 + 24 + 24 + 24
    out2 = tmp_path / "ar_long.fa"
    write_samples(path, out2, {**sc, "length": 60}, "gen")
    for name, f, raw, seq in read_fasta(out2):
        assert len(seq) == 60 and seq.startswith("ACGTA")
        assert f["semi_ar_stride"] == "12" and f["forward_passes"] == str(24 * 4)


def test_mdlm_checkpoint_refuses_autoregressive_sampler(mdlm_ckpt, tmp_path):
    path, cfg = mdlm_ckpt
    with pytest.raises(DnadiffError, match="sample.sampler") as ei:
        write_samples(path, tmp_path / "x.fa", {**cfg["sample"], "sampler": "autoregressive"},
                        "gen")
    assert "'ancestral'" in str(ei.value)
