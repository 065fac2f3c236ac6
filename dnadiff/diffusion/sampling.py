"""Samplers: ancestral sampling for masked diffusion, left-to-right sampling for the AR
baseline, and semi-autoregressive blocks for lengths beyond the context.

Ancestral sampling:

From time t to s < t a masked position is revealed with probability
(alpha_s - alpha_t) / (1 - alpha_t) (= (t - s) / t for the log-linear schedule) and then takes
token v with probability p_theta(v | x_t); revealed tokens never change (carry-over). The
categorical draw is an inverse-CDF draw in float64. At the last step every position still
masked is revealed, so the output holds generable ids only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch


def categorical_float64(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """Draw one index per row of ``probs`` [..., V] by inverse CDF in float64."""
    p = probs.double()
    cdf = p.cumsum(-1)
    u = torch.rand(p.shape[:-1] + (1,), generator=generator, dtype=torch.float64)
    u = u.to(p.device) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1)
    return idx.clamp_max(p.shape[-1] - 1)


def sampling_probs(logp: torch.Tensor, temperature: float = 1.0, top_p: float = 1.0
                   ) -> torch.Tensor:
    """Float64 probabilities from log-probabilities, with temperature and nucleus (top-p).

    Ids with zero probability (mask, non-generable) stay at zero whatever the options.
    """
    lp = logp.double()
    if temperature != 1.0:
        lp = lp / temperature
    p = torch.softmax(lp, dim=-1)
    if top_p < 1.0:
        sorted_p, order = torch.sort(p, dim=-1, descending=True)
        before = sorted_p.cumsum(-1) - sorted_p  # mass of strictly more probable tokens
        keep_sorted = before < top_p  # the most probable token is always kept
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        p = torch.where(keep, p, torch.zeros_like(p))
        p = p / p.sum(-1, keepdim=True)
    return p


@torch.no_grad()
def ancestral_sample(mdlm, model, x_init: torch.Tensor, steps: int, generator=None,
                     t_min: float = 1e-5, cond=None, cache: bool = True,
                     temperature: float = 1.0, top_p: float = 1.0
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
            probs = sampling_probs(logp[reveal], temperature, top_p)
            x[reveal] = categorical_float64(probs, generator)
    return x, {"forward_passes": n_forward}


@torch.no_grad()
def autoregressive_sample(ar, model, x_init: torch.Tensor, generator=None, cond=None,
                          temperature: float = 1.0, top_p: float = 1.0, **_ignored
                          ) -> tuple[torch.Tensor, dict]:
    """Left-to-right sampling for the AR objective: fills the ``ar.mask_id`` positions of
    ``x_init`` one position at a time (given positions are kept and used as context)."""
    x = x_init.clone()
    n_forward = 0
    for i in range(x.shape[1]):
        todo = x[:, i] == ar.mask_id
        if not todo.any():
            continue
        logp = ar.log_probs(model, ar.shift_right(x[:, : i + 1]), cond)[:, i]
        n_forward += 1
        x[todo, i] = categorical_float64(sampling_probs(logp[todo], temperature, top_p),
                                         generator)
    return x, {"forward_passes": n_forward}


@dataclass(frozen=True)
class Sampler:
    """A sampler: ``fn(objective, model, x_init, *, steps, generator, cond, cache, temperature,
    top_p) -> (tokens, {"forward_passes": n, ...})`` fills the mask positions of ``x_init``;
    ``objectives``: the training objectives whose models it can sample."""

    name: str
    fn: Callable
    objectives: tuple[str, ...]


#: every sampler, one line each; every caller (sample, conditional, probes, bench) goes through
#: :func:`block_sampler`
SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("ancestral", ancestral_sample, ("mdlm",)),
    Sampler("autoregressive", autoregressive_sample, ("ar",)),
)}


def default_sampler(objective: str) -> str:
    """The sampler a model of ``objective`` is sampled with unless another is asked for."""
    return next(s.name for s in SAMPLERS.values() if objective in s.objectives)


def block_sampler(name: str, objective, model, steps: int, cache: bool = True,
                  temperature: float = 1.0, top_p: float = 1.0, cond=None) -> Callable:
    """``fill(x_init, generator=None) -> (tokens, info)`` with sampler ``name`` (a key of
    :data:`SAMPLERS`) for ``model`` trained with ``objective``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    sampler = SAMPLERS[name]
    if objective.name not in sampler.objectives:
        raise ValueError(f"sampler {name!r} cannot sample a model trained with the "
                         f"{objective.name} objective; use {default_sampler(objective.name)!r}")
    return partial(sampler.fn, objective, model, steps=steps, cache=cache,
                   temperature=temperature, top_p=top_p, cond=cond)


def semi_autoregressive(sample_block, x_init: torch.Tensor, window: int, stride: int
                        ) -> tuple[torch.Tensor, dict]:
    """Generate a sequence longer than the model's context in overlapping blocks.

    The first block is ``x_init[:, :window]``; each later block covers the next ``stride`` new
    positions plus the ``window - stride`` positions before them, which are already generated
    and so are kept fixed (carry-over) as context. ``sample_block(block) -> (block, info)``
    fills the mask positions of one block. The output has exactly ``x_init``'s length.
    """
    if not 0 < stride < window:
        raise ValueError(f"stride ({stride}) must be in (0, window={window})")
    x = x_init.clone()
    total = x.shape[1]
    x[:, : min(window, total)], info = sample_block(x[:, : min(window, total)])
    passes = info["forward_passes"]
    pos = min(window, total)
    while pos < total:
        new = min(stride, total - pos)
        start = pos + new - window
        x[:, start: pos + new], info = sample_block(x[:, start: pos + new])
        passes += info["forward_passes"]
        pos += new
    return x, {"forward_passes": passes}
