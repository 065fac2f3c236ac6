"""Helpers shared by the objective tests (``tests/test_objectives_*.py``): the token ids, a model
with fixed logits, the AR objective, a tiny randomized DiT, and i.i.d. data sets."""

from __future__ import annotations

import math

import torch

from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.models.dit import DiT

EPS = 1e-3
A, C, G, T, N_ID, MASK, PAD, V = 0, 1, 2, 3, 4, 5, 6, 7
GEN = [0, 1, 2, 3]
LN2 = math.log(2.0)


class FixedLogits(torch.nn.Module):
    """Returns a fixed logits tensor whatever the input and records the inputs."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.inputs = []

    def forward(self, tokens, sigma=None, cond=None):
        self.inputs.append(tokens.clone())
        return self.logits.clone()


def make_ar():
    return Autoregressive(bos_id=MASK, generable_ids=GEN, vocab_size=V)


def randomized_dit(seed=0, std=0.5, **kw):
    """A tiny DiT whose every parameter (adaLN and head included, zero at init) is random, so the
    blocks are not identities and the output depends on the context."""
    torch.manual_seed(seed)
    model = DiT(V, dim=kw.pop("dim", 16), layers=kw.pop("layers", 2), heads=kw.pop("heads", 2),
                cond_dim=kw.pop("cond_dim", 16), **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * std)
    return model.eval()


def iid_dataset(p, n_win, length, seed, n_frac=0.0):
    """Windows drawn i.i.d. from p over A/C/G/T; a fraction of positions set to N and unscored."""
    g = torch.Generator().manual_seed(seed)
    x = torch.multinomial(torch.as_tensor(p, dtype=torch.float64), n_win * length,
                          replacement=True, generator=g).view(n_win, length)
    lm = torch.ones_like(x, dtype=torch.bool)
    if n_frac:
        unscored = torch.rand(x.shape, generator=g) < n_frac
        x = torch.where(unscored, torch.full_like(x, N_ID), x)
        lm = ~unscored
    return [{"tokens": x[i], "loss_mask": lm[i]} for i in range(n_win)], x, lm

P = [0.1, 0.2, 0.3, 0.4]
def perturb(model, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
