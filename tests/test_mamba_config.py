"""Mamba and Caduceus from the config: building, ``rc_conjoin``, configuration errors,
checkpoint round trips and overrides, and sampling and scoring with post-hoc conjoining."""

import pytest
import torch
from mamba_kit import COMP, TOK, V, _randomized, _rc, _rc_logits, _tokens

from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.models.mamba import MambaLM
from dnadiff.models.scan import mamba_ssm_status


def _cfg(**model):
    return validate_config({"run": "t", "data": {"window": 32},
                            "model": {"dim": 16, "layers": 1, "cond_dim": 8, **model}})


@pytest.mark.parametrize("backbone", ["mamba", "caduceus"])
def test_build_backbone_from_config(backbone):
    cfg = _cfg(backbone=backbone, mixer="mamba2", headdim=8, d_state=4, expand=3)
    model = build_backbone(cfg["model"], V, complement=COMP)
    assert isinstance(model, MambaLM)
    assert model.rc_equivariant == (backbone == "caduceus")
    width = 8 if backbone == "caduceus" else 16
    assert model.embed.embedding_dim == width
    assert model.blocks[0].mixer.d_inner == 3 * width
    assert model(torch.zeros(2, 32, dtype=torch.long)).shape == (2, 32, V)


def test_rc_conjoin_from_config_for_dit_and_mamba():
    for backbone in ("dit", "mamba"):
        cfg = _cfg(backbone=backbone, heads=2, rc_conjoin=True)
        model = build_backbone(cfg["model"], V, complement=COMP)
        assert torch.equal(model.rc_conjoin, torch.as_tensor(COMP))
        # the causal AR baseline (compare_ar) is never conjoined
        assert build_backbone(cfg["model"], V, causal=True, complement=COMP).rc_conjoin \
            is None
    with pytest.raises(ValueError, match="complement"):
        build_backbone(cfg["model"], V)


@pytest.mark.parametrize("extra,match", [
    ({"compare_ar": True}, "cannot be causal"),
    ({"objective": "ar"}, "cannot be causal"),
    ({"model": {"dim": 17}}, "even"),
    ({"model": {"rc_conjoin": True}}, "equivariant already"),
    ({"model": {"mixer": "mamba2", "headdim": 24}}, "headdim"),
])
def test_caduceus_config_errors(extra, match):
    cfg = {"run": "t", "model": {"backbone": "caduceus", "dim": 32}}
    for key, value in extra.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    with pytest.raises(DnadiffError, match=match):
        validate_config(cfg)


def test_rc_conjoin_refused_for_the_ar_objective():
    with pytest.raises(DnadiffError, match="rc_conjoin"):
        validate_config({"run": "t", "objective": "ar", "model": {"rc_conjoin": True}})
    validate_config({"run": "t", "compare_ar": True, "model": {"rc_conjoin": True}})
    # DiT-only keys do not constrain mamba (dim 20 is not 4 heads x an even head width)
    validate_config({"run": "t", "model": {"backbone": "mamba", "dim": 20}})


def test_caduceus_checkpoint_round_trip(tmp_path):
    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    cfg = _cfg(backbone="caduceus")
    model = _randomized(build_backbone(cfg["model"], V, complement=COMP)).float()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, config=cfg, tokenizer=TOK, step=3)
    loaded, _, _ = model_from_checkpoint(load_checkpoint(path))
    x = _tokens(b=2, length=32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_checkpoint_conjoin_override_and_cuda_fallback(tmp_path):
    """Post-hoc conjoining switched on for a checkpoint trained without it; a checkpoint
    trained with scan_impl cuda still loads where the kernels are missing."""
    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    cfg = _cfg(backbone="mamba")
    model = _randomized(build_backbone(cfg["model"], V)).float()
    path = tmp_path / "m.pt"
    cfg["model"]["scan_impl"] = "cuda"
    save_checkpoint(path, model=model, config=cfg, tokenizer=TOK, step=3)
    x = _tokens(b=2, length=32)
    plain, _, _ = model_from_checkpoint(load_checkpoint(path))
    if not mamba_ssm_status()[0]:
        assert plain.blocks[0].mixer.scan_impl == "auto"
    conj, _, _ = model_from_checkpoint(load_checkpoint(path), rc_conjoin=True)
    with torch.no_grad():
        assert torch.equal(plain(x), model.eval()(x))
        out, out_rc = conj(x), conj(_rc(x))
        assert torch.allclose(out, 0.5 * (plain(x) + _rc_logits(plain(_rc(x)))), atol=1e-6)
    assert (out_rc - _rc_logits(out)).abs().max().item() < 1e-5


def test_sampling_and_scoring_with_post_hoc_conjoining(tmp_path):
    """sample.rc_conjoin / evaluate.rc_conjoin switch conjoining on for a plain checkpoint;
    the FASTA headers say so."""
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.generation import write_samples

    cfg = _cfg(backbone="mamba")
    model = _randomized(build_backbone(cfg["model"], V)).float()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, config=cfg, tokenizer=TOK, step=3)
    sc = {**cfg["sample"], "num_samples": 2, "steps": 4, "batch_size": 2}
    for conjoin in (None, True):
        out = tmp_path / f"s{conjoin}.fa"
        write_samples(path, out, {**sc, "rc_conjoin": conjoin}, "r")
        header = out.read_text().splitlines()[0]
        assert ("rc_conjoin=true" in header) == bool(conjoin)
