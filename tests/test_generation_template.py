"""Infill templates (``sample.template``) and discrete-T training
(``diffusion.train_discrete_T``)."""

from __future__ import annotations

import pytest
import torch

# -- infill template and discrete-T training (added with sample.template) --------------------

def test_template_infills_several_spans(tmp_path):
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.config import validate_config
    from dnadiff.generation import write_samples
    from dnadiff.models import build_backbone
    from dnadiff.tokenizers import DNATokenizer

    template = "ACGT----GGCA--TT"  # two spans to infill: positions 4-7 and 12-13
    cfg = validate_config({"run": "tp", "data": {"window": 24},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16},
                           "sample": {"template": template, "num_samples": 3, "steps": 5}})
    tok = DNATokenizer()
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], tok.vocab_size)
    save_checkpoint(tmp_path / "m.pt", model, cfg, tok, step=1)
    write_samples(tmp_path / "m.pt", tmp_path / "s.fa", cfg["sample"], "tp")
    lines = (tmp_path / "s.fa").read_text().splitlines()
    headers, seqs = lines[0::2], lines[1::2]
    assert len(seqs) == 3
    for h, seq in zip(headers, seqs):
        assert len(seq) == len(template) and set(seq) <= set("ACGT")
        assert all(c == t for c, t in zip(seq, template) if t != "-")
        assert "template_fixed=10" in h
    # the generated spans are sampled, so they differ between samples
    assert len({s[4:8] + s[12:14] for s in seqs}) > 1


def test_template_excludes_prefix_and_needs_a_gap():
    from dnadiff.config import validate_config
    from dnadiff.errors import DnadiffError

    with pytest.raises(DnadiffError, match="cannot be combined"):
        validate_config({"run": "t", "sample": {"template": "AC--", "prefix": "A"}})
    with pytest.raises(DnadiffError, match="no '-' position"):
        validate_config({"run": "t", "sample": {"template": "ACGT"}})


def test_training_loss_uses_discrete_T_when_configured():
    from dnadiff.config import validate_config
    from dnadiff.diffusion import build_objective
    from dnadiff.tokenizers import DNATokenizer

    tok = DNATokenizer()
    cfg = validate_config({"run": "t", "diffusion": {"train_discrete_T": 4}})
    obj = build_objective(cfg, tok)
    seen = []

    def model(x, sigma=None, cond=None):
        seen.append(x)
        return torch.zeros(x.shape + (7,))

    x0 = torch.randint(0, 4, (8, 64))
    torch.manual_seed(0)
    obj.loss(model, x0, torch.ones_like(x0, dtype=torch.bool))
    # with T = 4 the masking rates are 1 - alpha(i/4): the fraction masked per row is near
    # one of 0.25, 0.5, 0.75, ~1.0 (stratified: rows 0-1 -> 1/4, 2-3 -> 2/4, ...)
    frac = (seen[0] == tok.mask_id).float().mean(1)
    grid = torch.tensor([0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 0.999, 0.999])
    assert torch.all((frac - grid).abs() < 0.2)
