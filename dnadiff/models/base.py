"""What every denoiser shares: ``forward`` returns logits, optionally RC-conjoined at inference."""

from __future__ import annotations

import torch
import torch.nn as nn


def complement_tensor(complement, vocab_size: int) -> torch.Tensor:
    """The complement map as a tensor, checked: one id per token, its own inverse."""
    comp = torch.as_tensor(complement, dtype=torch.long)
    if comp.shape != (vocab_size,) or not torch.equal(comp[comp], torch.arange(vocab_size)):
        raise ValueError(f"a complement map must give one id for each of the {vocab_size} "
                         "tokens and be its own inverse")
    return comp


class Backbone(nn.Module):
    """Subclasses implement ``logits(tokens, sigma, cond)``.

    Post-hoc reverse-complement conjoining (Caduceus-Ph), switched on with
    :meth:`set_rc_conjoin`: in eval mode the output is the mean of ``f(x)`` and
    ``RC(f(RC(x)))``, which is strand-symmetric; training sees ``f`` alone. The map is a
    non-persistent buffer, so the weights (and checkpoints) are the same with or without it and
    conjoining can be switched on for a model trained without it.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("rc_conjoin", None, persistent=False)

    def set_rc_conjoin(self, complement, vocab_size: int) -> None:
        comp = None if complement is None else complement_tensor(complement, vocab_size)
        self.register_buffer("rc_conjoin", comp, persistent=False)

    def logits(self, tokens, sigma=None, cond=None):
        raise NotImplementedError

    def forward(self, tokens, sigma=None, cond=None):
        out = self.logits(tokens, sigma, cond)
        comp = self.rc_conjoin
        if comp is None or self.training:
            return out
        rc = self.logits(comp[tokens].flip(1), sigma, cond)
        return 0.5 * (out + rc.flip(1)[..., comp])
