"""Ancestral sampling for masked diffusion.

From time t to s < t a masked position is revealed with probability
(alpha_s - alpha_t) / (1 - alpha_t) (= (t - s) / t for the log-linear schedule) and then takes
token v with probability p_theta(v | x_t); revealed tokens never change (carry-over). The
categorical draw is an inverse-CDF draw in float64. At the last step every position still
masked is revealed, so the output holds generable ids only.
"""

from __future__ import annotations

import torch


def categorical_float64(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """Draw one index per row of ``probs`` [..., V] by inverse CDF in float64."""
    p = probs.double()
    cdf = p.cumsum(-1)
    u = torch.rand(p.shape[:-1] + (1,), generator=generator, dtype=torch.float64)
    u = u.to(p.device) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return idx.clamp_max(p.shape[-1] - 1)


@torch.no_grad()
def ancestral_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                     t_min: float = 1e-5, cond=None, cache: bool = True
                     ) -> tuple[torch.Tensor, dict]:
    """Denoise ``x_init`` (mask ids where tokens are to be generated) in ``steps`` steps.

    Positions of ``x_init`` that are not ``mdlm.mask_id`` are kept (prefix/infill conditioning).
    With ``cache`` and no time conditioning the denoiser output depends on x_t alone, so after a
    step that revealed nothing the previous output is reused and the forward pass skipped; the
    random draws are the same either way, so cached and uncached runs give identical sequences.
    Returns the final tokens and ``{"forward_passes": n}``.
    """
    x = x_init.clone()
    sched = mdlm.schedule
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    n_forward = 0
    use_cache = cache and not mdlm.time_conditioning
    logp, changed = None, True
    for i in range(steps):
        masked = x == mdlm.mask_id
        if not masked.any():
            break
        if changed or not use_cache:
            t = torch.full((x.shape[0],), float(ts[i]), device=x.device)
            logp = mdlm.log_probs(model, x, t, cond)
            n_forward += 1
        alpha_t, alpha_s = sched.alpha(ts[i]), sched.alpha(ts[i + 1])
        last = i == steps - 1
        p_reveal = 1.0 if last else float((alpha_s - alpha_t) / (1.0 - alpha_t))
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        reveal = masked & (u < p_reveal)
        changed = bool(reveal.any())
        if changed:
            draws = categorical_float64(logp[reveal].double().exp(), generator)
            x[reveal] = draws
    return x, {"forward_passes": n_forward}
