"""The autoregressive (AR) baseline objective: next-token prediction with a causal backbone.

Same interface as ``MDLM`` so the trainer, likelihood and sampling code take either. The input
is the sequence shifted right by one with ``bos_id`` in front (the mask id serves as the start
symbol, so no vocabulary change is needed); position i predicts token i from tokens < i. Its
NLL is exact (no time variable), in nats per scored token.
"""

from __future__ import annotations

import torch

from dnadiff.diffusion.mdlm import allowed_outputs


class Autoregressive:
    """The autoregressive baseline objective: next-token cross-entropy with the same backbone
    made causal."""

    name = "ar"
    causal = True
    stochastic = False
    time_conditioning = False
    block_size = None  # not block diffusion (left to right one token at a time already)

    def __init__(self, bos_id: int, generable_ids, vocab_size: int):
        self.bos_id = bos_id
        self.mask_id = bos_id  # positions to generate are marked with it, as for MDLM
        self.vocab_size = vocab_size
        self.allowed = allowed_outputs(vocab_size, generable_ids, bos_id)

    def shift_right(self, x0: torch.Tensor) -> torch.Tensor:
        bos = torch.full_like(x0[:, :1], self.bos_id)
        return torch.cat([bos, x0[:, :-1]], dim=1)

    def log_probs(self, model, x_in, cond=None) -> torch.Tensor:
        """Next-token log-probabilities; zero mass on non-generable ids."""
        return self.logp_from_logits(model(x_in, cond=cond))

    def logp_from_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Log-probabilities from a backbone's logits: zero mass on non-generable ids."""
        logits = logits.float().masked_fill(~self.allowed.to(logits.device), float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def token_nll(self, model, x0, loss_mask, t=None, generator=None, cond=None,
                  discrete_T=None):
        """Exact per-window NLL sums and scored-token counts: ``(nll_sum[B], n[B], None)``."""
        logp = self.log_probs(model, self.shift_right(x0), cond)
        target = torch.where(loss_mask, x0, torch.zeros_like(x0))
        nll = -logp.gather(-1, target[..., None]).squeeze(-1)
        nll = torch.where(loss_mask, nll, torch.zeros_like(nll))
        return nll.sum(-1), loss_mask.sum(-1), None

    def loss(self, model, x0, loss_mask, generator=None, cond=None):
        nll_sum, n_tok, _ = self.token_nll(model, x0, loss_mask, cond=cond)
        return nll_sum.sum() / n_tok.sum().clamp_min(1)
