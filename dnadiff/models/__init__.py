"""Backbones: ``logits = model(tokens, sigma=None, cond=None)``; the objective wraps any of them."""

from __future__ import annotations


def build_backbone(model_cfg: dict, vocab_size: int, max_len: int, causal: bool = False):
    """The denoiser named by ``model_cfg["backbone"]``; ``causal`` for the AR baseline."""
    from dnadiff.models.dit import DiT

    if model_cfg["backbone"] == "dit":
        return DiT(vocab_size=vocab_size, dim=model_cfg["dim"], layers=model_cfg["layers"],
                   heads=model_cfg["heads"], mlp_ratio=model_cfg["mlp_ratio"],
                   cond_dim=model_cfg["cond_dim"], dropout=model_cfg["dropout"],
                   time_conditioning=model_cfg["time_conditioning"] and not causal,
                   causal=causal, conv_kernel=model_cfg["conv_kernel"])
    raise ValueError(f"unknown backbone {model_cfg['backbone']!r}")
