"""Ancestral sampling for masked diffusion, with the per-row cache.

From time t to s < t a masked position is revealed with probability
(alpha_s - alpha_t) / (1 - alpha_t) (= (t - s) / t for the log-linear schedule) and then takes
token v with probability p_theta(v | x_t); revealed tokens never change (carry-over). The
categorical draw is an inverse-CDF draw in float64. At the last step every position still
masked is revealed, so the output holds generable ids only.
"""

from __future__ import annotations

import torch

from dnadiff.diffusion.samplers.common import T_MIN, StepGrid, categorical_float64, sampling_probs


def reveal_probability(schedule, ts: torch.Tensor, i: int) -> float:
    """The probability that a position still masked at ``ts[i]`` is revealed by ``ts[i + 1]``
    (1 at the last step of the grid ``ts``)."""
    if i == len(ts) - 2:
        return 1.0
    alpha_t, alpha_s = schedule.alpha(ts[i]), schedule.alpha(ts[i + 1])
    return float((alpha_s - alpha_t) / (1.0 - alpha_t))


@torch.no_grad()
def ancestral_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                     t_min: float = T_MIN, cond=None, cache: bool = True,
                     temperature: float = 1.0, top_p: float = 1.0
                     ) -> tuple[torch.Tensor, dict]:
    """Denoise ``x_init`` (mask ids where tokens are to be generated) in ``steps`` steps.

    Positions of ``x_init`` that are not ``mdlm.mask_id`` are kept (prefix/infill conditioning).
    With ``cache`` and no time conditioning the denoiser output depends on x_t alone, so a row
    that revealed nothing in a step keeps its previous output and only the rows that changed go
    through the network (gathered, evaluated, scattered back); the random draws are the same
    either way, so cached and uncached runs give identical sequences. Rows with nothing left to
    reveal are not evaluated. Returns the final tokens and ``{"forward_passes": n,
    "row_evaluations": rows}``.
    """
    x = x_init.clone()
    grid = StepGrid(mdlm, model, x, steps, t_min, cond, cache)
    for i, masked, logp in grid:
        p_reveal = reveal_probability(mdlm.schedule, grid.ts, i)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        reveal = masked & (u < p_reveal)
        grid.stale = reveal.any(1)
        if grid.stale.any():
            probs = sampling_probs(logp[reveal], temperature, top_p)
            x[reveal] = categorical_float64(probs, generator)
    return x, grid.info()


def expected_passes(schedule, steps: int, tokens: int, t_min: float = T_MIN
                    ) -> tuple[float, float]:
    """Expected forward passes of :func:`ancestral_sample` from ``tokens`` masked positions (all
    of a batch together), (uncached, cached), exact for its step grid: each position is revealed
    independently, at step i with probability q_i (from :func:`reveal_probability`), so with
    F_i = P(revealed by step i), a step i > 0 runs the network when something is still masked,
    1 - F_{i-1}^N, and the cached sampler only when, besides, step i-1 revealed something:
    1 - (1 - q_{i-1})^N - (F_{i-1}^N - F_{i-2}^N). At batch 1 and steps = length = N this is
    about (1 - 1/e) steps: 1.58x fewer passes; the ratio passes 3 at about 2.5 steps per
    position."""
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    survive, q, F = 1.0, [], []
    for i in range(steps):
        p = reveal_probability(schedule, ts, i)
        q.append(survive * p)
        survive *= 1.0 - p
        F.append(1.0 - survive)
    n = tokens
    uncached = 1.0 + sum(1.0 - F[i - 1] ** n for i in range(1, steps))
    cached = 1.0 + sum(1.0 - (1.0 - q[i - 1]) ** n
                       - (F[i - 1] ** n - (F[i - 2] ** n if i >= 2 else 0.0))
                       for i in range(1, steps))
    return uncached, cached
