"""The samplers, one module each, and their registry: the one way every caller (``sample``, the
conditional model, the discreteness probes, ``bench``) gets a sampler.

- ``ancestral`` (mdlm): the MDLM reference, each masked position revealed with the schedule's
  probability per step (per-row cache);
- ``first_hitting`` (mdlm): exact continuous time, one reveal per pass, no wasted pass
  (Zheng et al. 2025);
- ``confidence`` (mdlm): the most confident positions first: top-k per step, a probability
  threshold, or an entropy bound (MaskGIT/LLaDA, Fast-dLLM, EB-sampler);
- ``remdm`` (mdlm): remasking, revealed tokens can be revised; cap or loop schedule (ReMDM 2025);
- ``autoregressive`` (ar): left to right, with a KV cache on the causal DiT.

The draws they share and the loop head of the step-grid samplers are in ``common``; the batch
driver every caller fills masked batches with is ``driver.fill_batches``. Every sampler keeps
the positions of ``x_init`` that are not masked (prefix, suffix, template), draws in float64,
and returns ``(tokens, {"forward_passes", "row_evaluations"})``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from dnadiff.diffusion.samplers.ancestral import ancestral_sample, expected_passes
from dnadiff.diffusion.samplers.autoregressive import autoregressive_sample
from dnadiff.diffusion.samplers.confidence import confidence_sample
from dnadiff.diffusion.samplers.driver import BlockwiseFill
from dnadiff.diffusion.samplers.first_hitting import first_hitting_sample
from dnadiff.diffusion.samplers.remdm import remdm_sample
from dnadiff.resolve import resolve_section


@dataclass(frozen=True)
class Sampler:
    """``fn(objective, model, x_init, *, generator, cond, temperature, top_p, [steps], [cache],
    **options) -> (tokens, {"forward_passes", "row_evaluations"})`` fills the mask positions
    of ``x_init``. ``objectives``: whose models it samples (the first sampler of an objective
    is its default); ``options``: the ``sample`` config keys it reads besides steps, cache,
    temperature and top_p; ``steps``: its forward passes follow ``sample.steps`` (else it
    takes none); ``cache``: it takes ``sample.cache``; ``expected_passes``: ``fn(schedule,
    steps, tokens) -> (uncached, cached)`` expected passes, where known (``bench sampler``)."""

    name: str
    fn: Callable
    objectives: tuple[str, ...]
    options: tuple[str, ...] = ()
    steps: bool = True
    cache: bool = True
    expected_passes: Callable | None = None


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("ancestral", ancestral_sample, ("mdlm",), expected_passes=expected_passes),
    Sampler("first_hitting", first_hitting_sample, ("mdlm",), steps=False, cache=False),
    Sampler("confidence", confidence_sample, ("mdlm",), ("k", "threshold", "entropy_bound")),
    Sampler("remdm", remdm_sample, ("mdlm",), ("remdm_schedule", "remdm_eta", "remdm_t_on",
                                              "remdm_t_off", "remdm_alpha_on"), cache=False),
    Sampler("autoregressive", autoregressive_sample, ("ar",), steps=False),
)}


def default_sampler(objective: str) -> str:
    """The sampler a model of ``objective`` is sampled with unless another is asked for."""
    return next(s.name for s in SAMPLERS.values() if objective in s.objectives)


def sampler_for(name: str | None, objective: str) -> Sampler:
    """Sampler ``name`` (a key of :data:`SAMPLERS`; ``None``: the default of ``objective``),
    refused with a ``ValueError`` of one line when unknown or unable to sample ``objective``."""
    name = default_sampler(objective) if name is None else name
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r} (known: {', '.join(SAMPLERS)})")
    if objective not in SAMPLERS[name].objectives:
        raise ValueError(f"sampler {name!r} cannot sample a model trained with the "
                         f"{objective} objective; use {default_sampler(objective)!r}")
    return SAMPLERS[name]


def sampler_options(name: str | None, sample_cfg: dict, objective: str = "mdlm") -> dict:
    """The options sampler ``name`` (``None``: the default of ``objective``) takes from a
    ``sample`` config section, resolved (keys it lacks: the schema's defaults; computed ones
    filled); options that stay null (the sampler picks) are left out."""
    sampler = sampler_for(name, objective)
    sample_cfg = resolve_section("sample", {k: sample_cfg[k] for k in sampler.options
                                            if k in sample_cfg})
    return {k: sample_cfg[k] for k in sampler.options if sample_cfg[k] is not None}


def block_sampler(name: str | None, objective, model, steps: int, cache: bool = True,
                  temperature: float = 1.0, top_p: float = 1.0, cond=None,
                  **options) -> Callable:
    """``fill(x_init, generator=None) -> (tokens, info)`` with sampler ``name`` (a key of
    :data:`SAMPLERS`; ``None``: the objective's default) for ``model`` trained with
    ``objective``; ``steps`` and ``cache`` go to the samplers that take them; options not
    given are the schema's (:func:`sampler_options`). For a block diffusion objective the fill
    runs the sampler inside each block, block by block (:class:`BlockwiseFill`; ``steps`` per
    block)."""
    sampler = sampler_for(name, objective.name)
    unknown = set(options) - set(sampler.options)
    if unknown:
        raise ValueError(f"sampler {sampler.name!r} takes no option {sorted(unknown)[0]!r}")
    options = sampler_options(sampler.name, options, objective.name)
    common = {"temperature": temperature, "top_p": top_p, "cond": cond}
    if sampler.steps:
        common["steps"] = steps
    if sampler.cache:
        common["cache"] = cache
    fill = partial(sampler.fn, objective, model, **common, **options)
    size = objective.block_size
    if size is None:
        return fill
    return BlockwiseFill(partial(sampler.fn, objective, model, **{**common, "cond": None},
                                 **options), model, size, objective.window, cond)
