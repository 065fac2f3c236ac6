"""Noise schedules (log-linear and cosine, continuous and discrete-time weights), time sampling
on the discrete grid, and the held-out NELBO of the true conditional equal to the entropy."""

from __future__ import annotations

import math

import pytest
import torch
from objectives_kit import EPS, GEN, LN2, MASK, P, V, iid_dataset

from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import CosineSchedule, LogLinearSchedule, build_schedule
from dnadiff.evaluation.likelihood import heldout_nelbo
from dnadiff.tokenizers import DNATokenizer

from conftest import IIDTrueConditional, entropy_nats

# -- 1. schedules -----------------------------------------------------------------------------

def test_cosine_alpha_endpoints():
    s = CosineSchedule(EPS)
    t = torch.tensor([0.0, 1.0], dtype=torch.float64)
    a = s.alpha(t)
    assert a[0].item() == 1.0
    assert a[1].item() == pytest.approx(EPS, abs=1e-12)
    # monotone decreasing in between
    tt = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert (s.alpha(tt).diff() < 0).all()
    assert s.sigma(torch.tensor(0.0, dtype=torch.float64)).item() == 0.0


def test_cosine_weight_matches_autograd():
    s = CosineSchedule(EPS)
    t = torch.tensor([EPS, 0.01, 0.1, 0.3, 0.5, 0.77, 0.9, 1.0], dtype=torch.float64,
                     requires_grad=True)
    alpha = s.alpha(t)
    (dalpha,) = torch.autograd.grad(alpha.sum(), t)
    expected = -dalpha / (1.0 - alpha.detach())
    got = s.weight(t.detach())
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=0)
    # the documented closed form
    half = 0.5 * math.pi * t.detach()
    torch.testing.assert_close(got, 0.5 * math.pi * torch.sin(half) / (1 - torch.cos(half)),
                               rtol=1e-12, atol=0)


@pytest.mark.parametrize("T", [1, 2, 10, 1000])
def test_loglinear_discrete_weight_is_one_over_t_on_grid(T):
    s = LogLinearSchedule(EPS)
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    torch.testing.assert_close(s.discrete_weight(t, T), 1.0 / t, rtol=1e-10, atol=0)


@pytest.mark.parametrize("T", [1, 4, 10, 100])
def test_cosine_discrete_weights_telescope(T):
    """sum_i (1/T) w_T(t_i) (1 - alpha(t_i)) = alpha(0) - alpha(1) = 1 - eps (exact T-step bound
    of a perfect model)."""
    s = CosineSchedule(EPS)
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    total = (s.discrete_weight(t, T) * (1 - s.alpha(t))).sum() / T
    assert total.item() == pytest.approx(1 - EPS, abs=1e-12)


def test_build_schedule_cosine():
    s = build_schedule({"schedule": "cosine", "eps": 0.01})
    assert isinstance(s, CosineSchedule) and s.eps == 0.01 and s.name == "cosine"
    assert isinstance(build_schedule({"schedule": "loglinear", "eps": 0.01}), LogLinearSchedule)
    cfg = validate_config({"run": "x", "diffusion": {"schedule": "cosine"}})
    obj = build_objective(cfg, DNATokenizer())
    assert isinstance(obj, MDLM) and isinstance(obj.schedule, CosineSchedule)
    assert obj.schedule.eps == cfg["diffusion"]["eps"] == 0.001


# -- 2. time sampling on the discrete grid ----------------------------------------------------

@pytest.mark.parametrize("T", [1, 3, 10, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_sample_t_discrete_grid_each_value_once(T, seed):
    m = MDLM(LogLinearSchedule(EPS), MASK, GEN, V)
    t = m.sample_t(T, generator=torch.Generator().manual_seed(seed), discrete_T=T)
    assert t.shape == (T,)
    grid = (torch.arange(1, T + 1, dtype=torch.float64) / T).float()
    assert torch.equal(torch.sort(t).values, grid)
    # stratified: stratum i maps to grid point (i + 1) / T, in order
    assert torch.equal(t, grid)


def test_sample_t_discrete_grid_twice():
    m = MDLM(LogLinearSchedule(EPS), MASK, GEN, V)
    T = 8
    t = m.sample_t(2 * T, generator=torch.Generator().manual_seed(3), discrete_T=T)
    grid = (torch.arange(1, T + 1, dtype=torch.float64) / T).float()
    assert torch.equal(torch.sort(t).values, grid.repeat_interleave(2))


@pytest.mark.parametrize("n", [1, 10, 1000])
def test_sample_t_continuous_in_eps_to_one(n):
    m = MDLM(CosineSchedule(EPS), MASK, GEN, V)
    for seed in range(3):
        t = m.sample_t(n, generator=torch.Generator().manual_seed(seed)).double()
        assert t.shape == (n,)
        assert (t >= EPS).all() and (t < 1.0).all()
        # not on a grid: continuous values
        assert len(torch.unique(t)) == n


# -- 3. NELBO of the true conditional equals the entropy --------------------------------------


@pytest.mark.parametrize("schedule,discrete_T", [(CosineSchedule, None),
                                                 (LogLinearSchedule, 10),
                                                 (CosineSchedule, 10)])
def test_heldout_nelbo_true_conditional_equals_entropy(schedule, discrete_T):
    H = entropy_nats(P)
    ds, _, lm = iid_dataset(P, n_win=4096, length=32, seed=17, n_frac=0.05)
    m = MDLM(schedule(EPS), MASK, GEN, V)
    res = heldout_nelbo(IIDTrueConditional(P), m, ds, batch_size=1024, seed=5,
                        discrete_T=discrete_T)
    est = res["bits_per_token"] * LN2
    se = res["bits_per_token_se"] * LN2
    assert res["nats_per_token"] == pytest.approx(est, rel=1e-12)
    assert res["windows"] == 4096 and res["t_draws"] == 1
    assert res["tokens_scored"] == int(lm.sum())
    assert res["estimate"] == (f"NELBO, discrete T={discrete_T}" if discrete_T
                               else "NELBO, continuous time")
    assert 0 < se < 0.02 * H, se
    assert abs(est - H) < 3 * se, (est, H, se)


def test_heldout_nelbo_uniform_model_pays_log4():
    ds, _, _ = iid_dataset(P, n_win=2048, length=32, seed=3)
    m = MDLM(CosineSchedule(EPS), MASK, GEN, V)
    res = heldout_nelbo(IIDTrueConditional([0.25] * 4), m, ds, batch_size=1024, seed=1)
    est, se = res["bits_per_token"] * LN2, res["bits_per_token_se"] * LN2
    assert abs(est - math.log(4)) < 3 * se, (est, se)
