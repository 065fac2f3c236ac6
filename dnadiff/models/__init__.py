"""Backbones: ``logits = model(tokens, sigma=None, cond=None)``; the objective wraps any of them.

Which backbones exist, and what the rest of dnadiff may know about each, is
:data:`dnadiff.models.registry.BACKBONES` (one line per backbone).
"""

from __future__ import annotations

import importlib

from dnadiff.models.registry import BACKBONES


def backbone_class(name: str):
    """The class of backbone ``name`` (its registry line names it)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    module, cls = BACKBONES[name].target.split(":")
    return getattr(importlib.import_module(module), cls)


def build_backbone(model_cfg: dict, vocab_size: int, causal: bool = False, complement=None):
    """The denoiser named by ``model_cfg["backbone"]``; ``causal`` for the AR baseline.

    ``complement`` (the tokenizer's complement map, a list of ids) is needed by a
    reverse-complement-equivariant backbone and by ``rc_conjoin`` (post-hoc conjoining at
    inference; never for a causal model).
    """
    name = model_cfg["backbone"]
    cls = backbone_class(name)
    spec = BACKBONES[name]
    conjoin = model_cfg["rc_conjoin"] and not causal  # an AR baseline is never conjoined
    if (spec.rc_equivariant or conjoin) and complement is None:
        raise ValueError(f"backbone {name!r} with these settings needs a tokenizer with a "
                         "complement map (DNA)")
    model = cls.from_config(model_cfg, vocab_size, causal=causal,
                            complement=complement if spec.rc_equivariant else None)
    if conjoin:
        model.set_rc_conjoin(complement, vocab_size)
    return model
