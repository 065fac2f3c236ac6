"""ReMDM (Wang et al., ReMDM 2025): revealed tokens are remasked with probability sigma_t, so an
early error can be revised: ``cap`` (sigma_t = min(eta, (1 - alpha_s) / alpha_t)) or ``loop``
(ancestral until t_on, then at alpha = alpha_on remask and reveal at rate eta until t_off, then
ancestral to the end), with their repository's defaults. The positions given in ``x_init``
(prefix, suffix, template) are never remasked; the last pass reveals whatever is still masked.
"""

from __future__ import annotations

import torch

from dnadiff.diffusion.samplers.common import (
    T_MIN,
    RowEvaluator,
    categorical_float64,
    sampling_probs,
)


def _loop_alphas(t: float, s: float, t_on: float, t_off: float, alpha_on: float):
    """ReMDM-loop's (alpha_t, alpha_s, in the loop phase): linear from 0 to alpha_on until
    t_on, constant alpha_on until t_off, linear from alpha_on to 1 after."""
    def alpha(u):
        if u > t_on:
            return (1.0 - u) * alpha_on / (1.0 - t_on)
        if u <= t_off:
            return 1.0 - u * (1.0 - alpha_on) / t_off
        return alpha_on

    return alpha(t), alpha(s), t_off < t <= t_on


@torch.no_grad()
def remdm_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                 t_min: float = T_MIN, cond=None, temperature: float = 1.0, top_p: float = 1.0,
                 *, remdm_schedule: str, remdm_eta: float, remdm_t_on: float,
                 remdm_t_off: float, remdm_alpha_on: float) -> tuple[torch.Tensor, dict]:
    """ReMDM (see the module docstring): from t to s a masked position is revealed with
    probability (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t) and a generated token is
    remasked with probability sigma; the positions given in ``x_init`` are never remasked. The
    options are the ``sample.remdm_*`` keys, resolved (:func:`dnadiff.resolve.resolve_section`:
    the schema's defaults, and ReMDM's own eta for a null ``remdm_eta``)."""
    if remdm_schedule not in ("cap", "loop"):
        raise ValueError(f"remdm schedule must be 'cap' or 'loop', not {remdm_schedule!r}")
    eta = remdm_eta
    x = x_init.clone()
    free = x_init == mdlm.mask_id  # the generated positions: the only ones ever remasked
    sched = mdlm.schedule
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    net = RowEvaluator(mdlm, model, cond)
    for i in range(steps):
        t, s = float(ts[i]), float(ts[i + 1])
        last = i == steps - 1
        if remdm_schedule == "cap":
            a_t, a_s = float(sched.alpha(ts[i])), float(sched.alpha(ts[i + 1]))
            sigma = min(eta, (1.0 - a_s) / a_t) if a_t > 0 else eta
        else:
            a_t, a_s, looping = _loop_alphas(t, s, remdm_t_on, remdm_t_off, remdm_alpha_on)
            sigma = eta if looping else 0.0
        masked = x == mdlm.mask_id
        active = free.any(1)
        if not masked.any() and sigma == 0.0:
            break
        # a time-conditioned denoiser sees the schedule's time of this step's alpha
        t_net = t if remdm_schedule == "cap" else float(
            sched.time_of(torch.tensor(a_t, dtype=torch.float64)).clamp(0.0, 1.0))
        logp = net(x, t_net, active)
        p_reveal = 1.0 if last else (a_s - (1.0 - sigma) * a_t) / (1.0 - a_t)
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        reveal = masked & (u < p_reveal)
        v = torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device)
        remask = free & ~masked & (v < (0.0 if last else sigma))
        if reveal.any():
            x[reveal] = categorical_float64(sampling_probs(logp[reveal], temperature, top_p),
                                            generator)
        x[remask] = mdlm.mask_id
    return x, net.info()
