"""Checkpoints with EMA weights, AR checkpoints rebuilding a causal model, and old configs
without the new keys."""

from __future__ import annotations

import torch
from objectives_kit import V, perturb

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer
from dnadiff.training import EMA

# -- 7. checkpoints with EMA weights; old configs ---------------------------------------------

def small_config(**extra):
    cfg = {"run": "ck", "data": {"window": 24},
           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}}
    cfg.update(extra)
    return validate_config(cfg)


def test_checkpoint_uses_ema_weights_by_default(tmp_path):
    cfg = small_config()
    model = build_backbone(cfg["model"], V)
    perturb(model, 6, scale=0.3)
    ema = EMA(model, 0.999)
    ema_w = model.head.weight.detach().clone()
    perturb(model, 7, scale=0.3)
    raw_w = model.head.weight.detach().clone()
    assert not torch.equal(ema_w, raw_w)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, cfg, DNATokenizer(), step=3,
                    ema_state=ema.state_dict(model))
    ckpt = load_checkpoint(path)
    assert "ema_state_dict" in ckpt
    m_ema, obj, _ = model_from_checkpoint(ckpt)
    assert torch.equal(m_ema.head.weight, ema_w)
    m_raw, _, _ = model_from_checkpoint(ckpt, use_ema=False)
    assert torch.equal(m_raw.head.weight, raw_w)
    for k, v in model.state_dict().items():
        assert torch.equal(m_raw.state_dict()[k], v), k
    assert isinstance(obj, MDLM)
    # without EMA weights the raw ones are used
    save_checkpoint(tmp_path / "n.pt", model, cfg, DNATokenizer(), step=3)
    ck2 = load_checkpoint(tmp_path / "n.pt")
    assert "ema_state_dict" not in ck2
    assert torch.equal(model_from_checkpoint(ck2)[0].head.weight, raw_w)


def test_ar_checkpoint_rebuilds_causal_model(tmp_path):
    cfg = small_config(objective="ar")
    model = build_backbone(cfg["model"], V, causal=True)
    perturb(model, 8, scale=0.3)
    save_checkpoint(tmp_path / "ar.pt", model, cfg, DNATokenizer(), step=1)
    m, obj, _ = model_from_checkpoint(load_checkpoint(tmp_path / "ar.pt"))
    assert isinstance(obj, Autoregressive) and m.causal
    x = torch.randint(0, 4, (2, 24))
    with torch.no_grad():
        assert torch.equal(m(x), model.eval()(x))


def test_old_config_without_new_keys_is_filled(tmp_path):
    cfg = small_config()
    old = {k: v for k, v in cfg.items() if k not in ("objective", "compare_ar")}
    old["model"] = {k: v for k, v in cfg["model"].items() if k != "conv_kernel"}
    old["sample"] = {k: v for k, v in cfg["sample"].items()
                     if k not in ("temperature", "top_p", "prefix", "suffix", "semi_ar_stride")}
    old["evaluate"] = {k: v for k, v in cfg["evaluate"].items() if k != "discrete_T"}
    old["train"] = {k: v for k, v in cfg["train"].items() if k != "ema_decay"}
    model = build_backbone(cfg["model"], V)
    perturb(model, 9, scale=0.3)
    save_checkpoint(tmp_path / "old.pt", model, old, DNATokenizer(), step=5)
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert "objective" not in ckpt["config"]
    m, obj, tok = model_from_checkpoint(ckpt)
    assert isinstance(obj, MDLM) and obj.name == "mdlm"
    assert m.conv is None and not m.causal
    x = torch.randint(0, 4, (2, 24))
    with torch.no_grad():
        assert torch.equal(m(x), model.eval()(x))
    # the stored config itself is not modified
    assert "objective" not in ckpt["config"]
