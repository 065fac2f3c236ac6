"""The forward-pass cache of the ancestral sampler: cached and uncached sampling agree, and the
cache saves forward passes."""

from __future__ import annotations

import pytest
import torch
from generation_kit import EPS, GEN, MASK, Recording, all_masked, make_mdlm, randomized_dit

from dnadiff.diffusion.samplers.ancestral import ancestral_sample

# -- 9. the forward-pass cache ----------------------------------------------------------------

def dedup_consecutive(seq):
    out = []
    for x in seq:
        if not out or not torch.equal(out[-1], x):
            out.append(x)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_cached_equals_uncached_and_uses_fewer_passes(seed):
    m = make_mdlm(time_conditioning=False)
    L, steps = 16, 256
    cached_model = Recording(randomized_dit(seed=3))
    plain_model = Recording(randomized_dit(seed=3))
    xc, ic = ancestral_sample(m, cached_model, all_masked(1, L), steps,
                              generator=torch.Generator().manual_seed(seed), cache=True)
    xu, iu = ancestral_sample(m, plain_model, all_masked(1, L), steps,
                              generator=torch.Generator().manual_seed(seed), cache=False)
    print(f"seed {seed}: cached forward passes {ic['forward_passes']}, "
          f"uncached {iu['forward_passes']} (L={L}, steps={steps})")
    assert torch.equal(xc, xu)
    assert not (xc == MASK).any() and set(xc.unique().tolist()) <= set(GEN)
    assert ic["forward_passes"] == len(cached_model.inputs)
    assert iu["forward_passes"] == len(plain_model.inputs)
    assert ic["forward_passes"] < iu["forward_passes"]
    assert ic["forward_passes"] <= L  # a pass only after a step that revealed something
    # uncached: one pass per step executed; every executed step still had a mask, the loop stops
    # right after the step that revealed the last one
    assert all((x == MASK).any() for x in plain_model.inputs)
    assert iu["forward_passes"] <= steps
    # the cached run evaluated exactly the distinct consecutive states of the uncached run
    dd = dedup_consecutive(plain_model.inputs)
    assert len(dd) == len(cached_model.inputs)
    for a, b in zip(dd, cached_model.inputs):
        assert torch.equal(a, b)
    # the model does depend on its input (otherwise the comparison would be vacuous)
    inner = plain_model.inner
    with torch.no_grad():
        assert not torch.equal(inner(plain_model.inputs[0]), inner(plain_model.inputs[-1]))


def test_uncached_passes_equal_steps_executed():
    """With time conditioning the cache is off; sigma identifies the step of each pass: the
    passes are steps 0, 1, ..., K-1 where step K-1 revealed the last mask."""
    m = make_mdlm(time_conditioning=True)
    L, steps, t_min = 12, 64, 1e-5
    model = Recording(randomized_dit(seed=4, time_conditioning=True))
    x, info = ancestral_sample(m, model, all_masked(1, L), steps,
                               generator=torch.Generator().manual_seed(2), t_min=t_min)
    assert not (x == MASK).any()
    sig = torch.stack([s[0] for s in model.sigmas]).double()
    t = (1 - torch.exp(-sig)) / (1 - EPS)
    idx = torch.round((1 - t) / (1 - t_min) * steps).long().tolist()
    K = info["forward_passes"]
    assert idx == list(range(K))
    assert K > L  # many steps reveal nothing at L=12, steps=64
    # the input of the last pass still had a mask: the loop ran exactly until all were revealed
    assert (model.inputs[-1] == MASK).any()
    # and with cache=True the result is the same (cache is ignored with time conditioning)
    model2 = Recording(randomized_dit(seed=4, time_conditioning=True))
    x2, info2 = ancestral_sample(m, model2, all_masked(1, L), steps,
                                 generator=torch.Generator().manual_seed(2), t_min=t_min,
                                 cache=True)
    assert torch.equal(x2, x) and info2["forward_passes"] == K


def test_cache_identical_with_temperature_and_top_p_batch():
    m = make_mdlm()
    kw = {"temperature": 0.7, "top_p": 0.8}
    a, ia = ancestral_sample(m, randomized_dit(seed=5), all_masked(3, 20), 40,
                             generator=torch.Generator().manual_seed(9), cache=True, **kw)
    b, ib = ancestral_sample(m, randomized_dit(seed=5), all_masked(3, 20), 40,
                             generator=torch.Generator().manual_seed(9), cache=False, **kw)
    assert torch.equal(a, b)
    assert ia["forward_passes"] <= ib["forward_passes"]
