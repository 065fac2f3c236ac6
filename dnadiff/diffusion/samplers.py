"""The sampler menu: one line per sampler, and the one way every caller (``sample``, the
conditional model, the discreteness probes, ``bench``) gets a sampler.

- ``ancestral`` (mdlm): the MDLM reference, each masked position revealed with the schedule's
  probability per step (per-row cache);
- ``first_hitting`` (mdlm): exact continuous time, one reveal per pass, no wasted pass
  (Zheng et al. 2025);
- ``confidence`` (mdlm): the most confident positions first: top-k per step, a probability
  threshold, or an entropy bound (MaskGIT/LLaDA, Fast-dLLM, EB-sampler);
- ``remdm`` (mdlm): remasking, revealed tokens can be revised; cap or loop schedule (ReMDM 2025);
- ``autoregressive`` (ar): left to right, with a KV cache on the causal DiT.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from dnadiff.diffusion.parallel import confidence_sample, first_hitting_sample, remdm_sample
from dnadiff.diffusion.sampling import ancestral_sample, autoregressive_sample


@dataclass(frozen=True)
class Sampler:
    """``fn(objective, model, x_init, *, steps, generator, cond, cache, temperature, top_p,
    **options) -> (tokens, {"forward_passes", "row_evaluations"})`` fills the mask positions
    of ``x_init``; ``objectives``: whose models it samples; ``options``: the ``sample`` config
    keys it reads besides steps, cache, temperature and top_p."""

    name: str
    fn: Callable
    objectives: tuple[str, ...]
    options: tuple[str, ...] = ()


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("ancestral", ancestral_sample, ("mdlm",)),
    Sampler("first_hitting", first_hitting_sample, ("mdlm",)),
    Sampler("confidence", confidence_sample, ("mdlm",), ("k", "threshold", "entropy_bound")),
    Sampler("remdm", remdm_sample, ("mdlm",), ("remdm_schedule", "remdm_eta", "remdm_t_on",
                                              "remdm_t_off", "remdm_alpha_on")),
    Sampler("autoregressive", autoregressive_sample, ("ar",)),
)}


def default_sampler(objective: str) -> str:
    """The sampler a model of ``objective`` is sampled with unless another is asked for."""
    return next(s.name for s in SAMPLERS.values() if objective in s.objectives)


def sampler_options(name: str, sample_cfg: dict) -> dict:
    """The options sampler ``name`` takes from a ``sample`` config section (unset ones, null in
    the config, are left out)."""
    return {k: sample_cfg[k] for k in SAMPLERS[name].options if sample_cfg.get(k) is not None}


def block_sampler(name: str, objective, model, steps: int, cache: bool = True,
                  temperature: float = 1.0, top_p: float = 1.0, cond=None,
                  **options) -> Callable:
    """``fill(x_init, generator=None) -> (tokens, info)`` with sampler ``name`` (a key of
    :data:`SAMPLERS`) for ``model`` trained with ``objective``."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    sampler = SAMPLERS[name]
    if objective.name not in sampler.objectives:
        raise ValueError(f"sampler {name!r} cannot sample a model trained with the "
                         f"{objective.name} objective; use {default_sampler(objective.name)!r}")
    unknown = set(options) - set(sampler.options)
    if unknown:
        raise ValueError(f"sampler {name!r} takes no option {sorted(unknown)[0]!r}")
    return partial(sampler.fn, objective, model, steps=steps, cache=cache,
                   temperature=temperature, top_p=top_p, cond=cond, **options)
