"""Helpers shared by the generation tests (``tests/test_generation_*.py``): the token ids, the
MDLM and AR objectives, a tiny randomized DiT, a model wrapper that records its inputs, and
all-masked batches."""

from __future__ import annotations

import torch

from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import LogLinearSchedule
from dnadiff.models.dit import DiT

EPS = 1e-3
N_ID, MASK, PAD, V = 4, 5, 6, 7
GEN = [0, 1, 2, 3]


def make_mdlm(time_conditioning=False):
    return MDLM(LogLinearSchedule(EPS), MASK, GEN, V, time_conditioning)


def make_ar():
    return Autoregressive(bos_id=MASK, generable_ids=GEN, vocab_size=V)


def randomized_dit(seed=0, std=0.5, **kw):
    """Tiny DiT with every parameter random (adaLN and head are zero at init), so its output
    depends on the whole (visible) context."""
    torch.manual_seed(seed)
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * std)
    return model.eval()


class Recording(torch.nn.Module):
    """Wraps a model and records every input (and sigma)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.inputs, self.sigmas = [], []

    def forward(self, tokens, sigma=None, cond=None):
        self.inputs.append(tokens.clone())
        self.sigmas.append(None if sigma is None else sigma.clone())
        return self.inner(tokens, sigma=sigma, cond=cond)


def all_masked(b, length):
    return torch.full((b, length), MASK, dtype=torch.long)


