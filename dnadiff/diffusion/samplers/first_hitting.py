"""First-hitting sampling (Zheng et al., ICLR 2025): draw the time at which the next masked
position is revealed, reveal exactly one (uniformly at random) per forward pass; exact in
continuous time, so no pass is wasted on a step that reveals nothing and none reveals two at
once. There are as many passes as masked positions, whatever ``sample.steps``."""

from __future__ import annotations

import torch

from dnadiff.diffusion.samplers.common import RowEvaluator, categorical_float64, sampling_probs


@torch.no_grad()
def first_hitting_sample(mdlm, model, x_init: torch.Tensor, generator=None, cond=None,
                         temperature: float = 1.0, top_p: float = 1.0
                         ) -> tuple[torch.Tensor, dict]:
    """Reveal one masked position per pass at the exact continuous-time event times: with n
    positions masked at time t, each is revealed at a time s with (1 - alpha_s) / (1 - alpha_t)
    uniform, the first of them at ``1 - alpha_s = (1 - alpha_t) u^(1/n)``; which one is uniform.
    """
    x = x_init.clone()
    sched = mdlm.schedule
    t = torch.ones(x.shape[0], dtype=torch.float64)
    net = RowEvaluator(mdlm, model, cond)
    while True:
        masked = x == mdlm.mask_id
        active = masked.any(1)
        if not active.any():
            break
        logp = net(x, t, active)
        n = masked.sum(1).double().cpu()
        u = torch.rand(x.shape[0], generator=generator, dtype=torch.float64)
        m_t = 1.0 - sched.alpha(t)
        m_s = m_t * u ** (1.0 / n.clamp_min(1.0))
        t = torch.where(active.cpu(), sched.time_of(1.0 - m_s), t).clamp(0.0, 1.0)
        # which masked position: the largest of uniform scores over the masked ones
        score = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        pick = torch.where(masked, score, torch.full_like(score, -1.0)).argmax(1)
        rows = active.nonzero().squeeze(1)
        cols = pick[rows]
        probs = sampling_probs(logp[rows, cols], temperature, top_p)
        x[rows, cols] = categorical_float64(probs, generator)
    return x, net.info()
