"""Samplers for masked diffusion beyond ancestral sampling: which positions to reveal, and
whether a revealed token may be revised.

- ``first_hitting`` (Zheng et al., ICLR 2025): draw the time at which the next masked position
  is revealed, reveal exactly one (uniformly at random) per forward pass; exact in continuous
  time, so no pass is wasted on a step that reveals nothing and none reveals two at once.
- ``confidence``: draw a token for every masked position, reveal the most confident ones: the
  ``k`` best per step (MaskGIT / LLaDA; default as many as finish in ``steps``), or every one
  whose probability is at least ``threshold`` (Fast-dLLM), or as many as an ``entropy_bound``
  allows (EB-sampler: the most certain first, while the sum of their entropies less the largest
  stays within the bound); at least one per pass.
- ``remdm`` (Wang et al., ReMDM 2025): revealed tokens are remasked with probability sigma_t,
  so an early error can be revised: ``cap`` (sigma_t = min(eta, (1 - alpha_s) / alpha_t)) or
  ``loop`` (ancestral until t_on, then at alpha = alpha_on remask and reveal at rate eta until
  t_off, then ancestral to the end), with their repository's defaults.

Every sampler keeps the positions of ``x_init`` that are not masked (prefix, suffix, template)
and never changes them, draws in float64, and returns ``(tokens, {"forward_passes",
"row_evaluations"})``; the last pass reveals whatever is still masked.
"""

from __future__ import annotations

import math

import torch

from dnadiff.diffusion.sampling import RowEvaluator, categorical_float64, sampling_probs

#: ReMDM's defaults (their scripts: remdm-cap.sh and remdm-loop.sh)
REMDM_ETA = {"cap": 0.008, "loop": 0.02}


@torch.no_grad()
def first_hitting_sample(mdlm, model, x_init: torch.Tensor, steps: int | None = None,
                         generator=None, cond=None, temperature: float = 1.0,
                         top_p: float = 1.0, **_ignored) -> tuple[torch.Tensor, dict]:
    """Reveal one masked position per pass at the exact continuous-time event times: with n
    positions masked at time t, each is revealed at a time s with (1 - alpha_s) / (1 - alpha_t)
    uniform, the first of them at ``1 - alpha_s = (1 - alpha_t) u^(1/n)``; which one is uniform.
    ``steps`` is not used (there are as many passes as masked positions)."""
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


def _ranks(score: torch.Tensor) -> torch.Tensor:
    """Rank of every position of a row by ``score``, highest first (0 = best)."""
    order = score.argsort(1, descending=True)
    return torch.empty_like(order).scatter_(1, order, torch.arange(
        score.shape[1], device=score.device).expand_as(order))


@torch.no_grad()
def confidence_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                      t_min: float = 1e-5, cond=None, temperature: float = 1.0,
                      top_p: float = 1.0, k: int | None = None, threshold: float | None = None,
                      entropy_bound: float | None = None, cache: bool = True,
                      **_ignored) -> tuple[torch.Tensor, dict]:
    """Confidence-ordered reveals (see the module docstring); at most ``steps`` passes, the
    last of them revealing whatever is still masked. Rows that revealed nothing keep their
    denoiser output (per-row cache); a row always reveals at least one position per pass."""
    x = x_init.clone()
    ts = torch.linspace(1.0, t_min, steps + 1, dtype=torch.float64)
    use_cache = cache and not mdlm.time_conditioning
    net = RowEvaluator(mdlm, model, cond)
    stale = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
    for i in range(steps):
        masked = x == mdlm.mask_id
        active = masked.any(1)
        if not active.any():
            break
        logp = net(x, float(ts[i]), active & stale if use_cache else active)
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
        stale = reveal.any(1)
    return x, net.info()


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
                 t_min: float = 1e-5, cond=None, temperature: float = 1.0, top_p: float = 1.0,
                 remdm_schedule: str = "cap", remdm_eta: float | None = None,
                 remdm_t_on: float = 0.55, remdm_t_off: float = 0.05,
                 remdm_alpha_on: float = 0.9, **_ignored) -> tuple[torch.Tensor, dict]:
    """ReMDM (see the module docstring): from t to s a masked position is revealed with
    probability (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t) and a generated token is
    remasked with probability sigma; the positions given in ``x_init`` are never remasked."""
    if remdm_schedule not in REMDM_ETA:
        raise ValueError(f"remdm schedule must be one of {sorted(REMDM_ETA)}, not "
                         f"{remdm_schedule!r}")
    eta = REMDM_ETA[remdm_schedule] if remdm_eta is None else remdm_eta
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
