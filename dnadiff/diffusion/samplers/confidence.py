"""Confidence-ordered sampling: draw a token for every masked position, reveal the most
confident ones: the ``k`` best per step (MaskGIT / LLaDA; default as many as finish in
``steps``), or every one whose probability is at least ``threshold`` (Fast-dLLM), or as many as
an ``entropy_bound`` allows (EB-sampler: the most certain first, while the sum of their
entropies less the largest stays within the bound); at least one per pass."""

from __future__ import annotations

import math

import torch

from dnadiff.diffusion.samplers.common import T_MIN, StepGrid, categorical_float64, sampling_probs


def _ranks(score: torch.Tensor) -> torch.Tensor:
    """Rank of every position of a row by ``score``, highest first (0 = best)."""
    order = score.argsort(1, descending=True)
    return torch.empty_like(order).scatter_(1, order, torch.arange(
        score.shape[1], device=score.device).expand_as(order))


@torch.no_grad()
def confidence_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                      t_min: float = T_MIN, cond=None, temperature: float = 1.0,
                      top_p: float = 1.0, k: int | None = None, threshold: float | None = None,
                      entropy_bound: float | None = None, cache: bool = True
                      ) -> tuple[torch.Tensor, dict]:
    """Confidence-ordered reveals (see the module docstring); at most ``steps`` passes, the
    last of them revealing whatever is still masked. Rows that revealed nothing keep their
    denoiser output (per-row cache); a row always reveals at least one position per pass."""
    x = x_init.clone()
    grid = StepGrid(mdlm, model, x, steps, t_min, cond, cache)
    for i, masked, logp in grid:
        probs = sampling_probs(logp[masked], temperature, top_p)
        draw = categorical_float64(probs, generator)
        conf = torch.full(x.shape, -1.0, dtype=torch.float64, device=x.device)
        conf[masked] = probs.gather(-1, draw[:, None]).squeeze(-1)
        rank = _ranks(conf)
        n_masked = masked.sum(1)
        if i == steps - 1:
            reveal = masked
        elif threshold is not None:
            reveal = masked & ((conf >= threshold) | (rank == 0))
        elif entropy_bound is not None:
            ent = torch.zeros(x.shape, dtype=torch.float64, device=x.device)
            ent[masked] = -(probs * probs.clamp_min(1e-300).log()).sum(-1)
            order = torch.where(masked, -ent, torch.full_like(ent, -math.inf))
            e_rank = _ranks(order)  # most certain first
            e_sorted = torch.where(masked, ent, torch.zeros_like(ent)).gather(
                1, order.argsort(1, descending=True))
            # the sum of the entropies of the j most certain, less the largest of them (the
            # j-th): the error bound of revealing them together; nondecreasing in j
            bound = e_sorted.cumsum(1) - e_sorted
            count = ((bound <= entropy_bound).sum(1)).clamp(min=1)
            reveal = masked & (e_rank < torch.minimum(count, n_masked)[:, None])
        else:
            per_step = (torch.full_like(n_masked, k) if k is not None
                        else torch.ceil(n_masked / (steps - i)).long())
            reveal = masked & (rank < per_step.clamp(min=1)[:, None])
        tokens = torch.full_like(x, -1)
        tokens[masked] = draw
        x[reveal] = tokens[reveal]
        grid.stale = reveal.any(1)
    return x, grid.info()
