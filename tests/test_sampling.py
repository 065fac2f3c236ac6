"""Ancestral sampling and the float64 categorical draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.samplers.ancestral import ancestral_sample
from dnadiff.diffusion.samplers.common import categorical_float64
from dnadiff.diffusion.schedule import LogLinearSchedule
from dnadiff.models.dit import DiT

from conftest import IIDTrueConditional

EPS = 1e-3
MASK, N_ID, PAD, V = 5, 4, 6, 7


def make_mdlm(time_conditioning=False):
    return MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V, time_conditioning)


class Recorder(torch.nn.Module):
    """Uniform logits (also large ones on N/mask/pad, which SUBS must remove); records inputs."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, tokens, sigma=None, cond=None):
        self.inputs.append(tokens.clone())
        logits = torch.zeros(*tokens.shape, V)
        logits[..., 4:] = 30.0
        return logits


def all_masked(b, length):
    return torch.full((b, length), MASK, dtype=torch.long)


# -- categorical_float64 ----------------------------------------------------------------------

def test_categorical_frequencies_match_probs():
    probs = torch.tensor([0.05, 0.0, 0.25, 0.1, 0.6, 0.0], dtype=torch.float64)
    n = 200_000
    draws = categorical_float64(probs.expand(n, -1), torch.Generator().manual_seed(0))
    assert draws.shape == (n,) and draws.dtype == torch.long
    counts = torch.bincount(draws, minlength=6).double()
    assert counts[1] == 0 and counts[5] == 0, "an index with probability 0 was drawn"
    expected = probs * n
    nz = probs > 0
    chi2 = (((counts - expected)[nz]) ** 2 / expected[nz]).sum().item()
    # 3 degrees of freedom: P(chi2 > 20) ~ 2e-4
    assert chi2 < 20, (counts, expected, chi2)


def test_categorical_unnormalized_and_batched():
    """Rows need not sum to 1 (the CDF is rescaled); shape [..., V] -> [...]."""
    probs = torch.tensor([[2.0, 0.0, 2.0], [0.0, 0.0, 5.0]]).expand(4, 2, 3)
    d = categorical_float64(probs, torch.Generator().manual_seed(1))
    assert d.shape == (4, 2)
    assert (d[:, 1] == 2).all()
    assert set(d[:, 0].tolist()) <= {0, 2}


def test_categorical_never_draws_zero_probability():
    """Zeros at the start, the middle and the end of the vector, one-hot rows, tiny masses."""
    g = torch.Generator().manual_seed(7)
    rows = torch.tensor([
        [0.0, 0.0, 1.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0, 1.0],
        [0.0, 0.5, 0.0, 0.5, 0.0],
        [1e-300, 0.0, 0.0, 0.0, 1.0],
    ], dtype=torch.float64)
    probs = rows.repeat(20_000, 1)
    d = categorical_float64(probs, g)
    chosen = probs.gather(1, d[:, None]).squeeze(1)
    assert (chosen > 0).all()


def test_categorical_float64_keeps_tiny_tail():
    """A token with probability 1e-4 is still drawn (the tail is not truncated)."""
    p = torch.tensor([1 - 1e-4, 1e-4], dtype=torch.float64)
    d = categorical_float64(p.expand(400_000, -1), torch.Generator().manual_seed(3))
    k = int((d == 1).sum())
    assert 20 <= k <= 70  # expected 40


# -- ancestral sampling -----------------------------------------------------------------------

def test_output_only_generable_tokens():
    m = make_mdlm()
    x, info = ancestral_sample(m, Recorder(), all_masked(8, 100), steps=10,
                               generator=torch.Generator().manual_seed(0))
    assert x.shape == (8, 100)
    assert x.min() >= 0 and x.max() <= 3
    assert not ((x == MASK) | (x == N_ID) | (x == PAD)).any()
    assert 1 <= info["forward_passes"] <= 10


def test_tiny_untrained_dit_samples_generable_only():
    torch.manual_seed(0)
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16).eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.5)
    m = make_mdlm()
    x, info = ancestral_sample(m, model, all_masked(3, 40), steps=8,
                               generator=torch.Generator().manual_seed(1))
    assert set(x.unique().tolist()) <= {0, 1, 2, 3}
    assert info["forward_passes"] <= 8


def test_time_conditioned_dit_samples():
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16, time_conditioning=True).eval()
    m = make_mdlm(time_conditioning=True)
    x, _ = ancestral_sample(m, model, all_masked(2, 16), steps=4,
                            generator=torch.Generator().manual_seed(1))
    assert set(x.unique().tolist()) <= {0, 1, 2, 3}


def test_prefix_and_infill_positions_never_change():
    m = make_mdlm()
    g = torch.Generator().manual_seed(4)
    x_init = all_masked(6, 80)
    prefix = torch.randint(0, 4, (6, 20), generator=g)
    left = torch.randint(0, 4, (6, 10), generator=g)
    right = torch.randint(0, 4, (6, 10), generator=g)
    x_init[:, :20] = prefix                   # prefix conditioning
    x_init[:, 40:50] = left                   # infill: flanks around a masked span 50..60
    x_init[:, 60:70] = right
    given = x_init != MASK
    model = Recorder()
    x, info = ancestral_sample(m, model, x_init, steps=16, generator=g)
    assert torch.equal(x[given], x_init[given])
    assert not (x == MASK).any()
    # the given tokens were also visible, unchanged, to the model at every step (each pass sees
    # the rows that need it: every row it sees is one of x_init's at the given columns)
    cols = given[0]
    for inp in model.inputs:
        for row in inp:
            assert (x_init[:, cols] == row[cols]).all(1).any()
    assert len(model.inputs) == info["forward_passes"]


def test_revealed_tokens_never_change_between_steps():
    m = make_mdlm()
    model = Recorder()
    x, _ = ancestral_sample(m, model, all_masked(4, 200), steps=12, cache=False,
                            generator=torch.Generator().manual_seed(2))
    seen = model.inputs + [x]
    for before, after in zip(seen[:-1], seen[1:]):
        revealed = before != MASK
        assert torch.equal(after[revealed], before[revealed])
        # masks only ever disappear
        assert ((after == MASK) <= (before == MASK)).all()


def test_same_seed_same_output_different_seed_different():
    m = make_mdlm()
    model = IIDTrueConditional([0.25] * 4)
    a, _ = ancestral_sample(m, model, all_masked(4, 64), 10, torch.Generator().manual_seed(5))
    b, _ = ancestral_sample(m, model, all_masked(4, 64), 10, torch.Generator().manual_seed(5))
    c, _ = ancestral_sample(m, model, all_masked(4, 64), 10, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_one_step_reveals_everything():
    m = make_mdlm()
    model = Recorder()
    x, info = ancestral_sample(m, model, all_masked(5, 50), steps=1,
                               generator=torch.Generator().manual_seed(0))
    assert info["forward_passes"] == 1
    assert len(model.inputs) == 1 and (model.inputs[0] == MASK).all()
    assert not (x == MASK).any()


def test_forward_passes_at_most_steps():
    m = make_mdlm()
    for steps in (1, 2, 5, 40, 200):
        x, info = ancestral_sample(m, Recorder(), all_masked(2, 30), steps=steps,
                                   generator=torch.Generator().manual_seed(steps))
        assert 1 <= info["forward_passes"] <= steps
        assert not (x == MASK).any()
    # nothing to generate: no forward pass at all
    x0 = torch.randint(0, 4, (2, 30))
    x, info = ancestral_sample(m, Recorder(), x0, steps=10)
    assert info["forward_passes"] == 0 and torch.equal(x, x0)


def test_reveal_probability_follows_schedule():
    """From t = 1 to s, a masked position is revealed with probability
    (alpha_s - alpha_1) / (1 - alpha_1); with 2 steps s = (1 + t_min) / 2 ~ 0.5."""
    m = make_mdlm()
    model = Recorder()
    n = 400_000
    ancestral_sample(m, model, all_masked(1, n), steps=2,
                     generator=torch.Generator().manual_seed(0), t_min=1e-5)
    assert len(model.inputs) == 2
    still_masked = (model.inputs[1] == MASK).double().mean().item()
    s = (1 + 1e-5) / 2
    a_t, a_s = 1 - (1 - EPS) * 1.0, 1 - (1 - EPS) * s
    expected_reveal = (a_s - a_t) / (1 - a_t)
    se = np.sqrt(expected_reveal * (1 - expected_reveal) / n)
    assert abs((1 - still_masked) - expected_reveal) < 4 * se


def test_sampled_tokens_follow_model_probabilities():
    p = np.array([0.1, 0.2, 0.3, 0.4])
    m = make_mdlm()
    x, _ = ancestral_sample(m, IIDTrueConditional(p), all_masked(10, 20_000), steps=5,
                            generator=torch.Generator().manual_seed(9))
    counts = torch.bincount(x.flatten(), minlength=V).double().numpy()
    assert counts[4:].sum() == 0
    expected = p * x.numel()
    chi2 = ((counts[:4] - expected) ** 2 / expected).sum()
    assert chi2 < 20, (counts, expected)


@pytest.mark.parametrize("steps", [3, 10])
def test_masks_never_left_when_steps_exceed_length(steps):
    m = make_mdlm()
    x, _ = ancestral_sample(m, Recorder(), all_masked(3, 2), steps=steps,
                            generator=torch.Generator().manual_seed(0))
    assert not (x == MASK).any()


def test_cache_skips_forward_pass_when_nothing_changed():
    """Reference sheet section 2 (Cache): without time conditioning the denoiser output depends
    only on x_t, so a step that revealed no token reuses the previous output. Every forward pass
    after the first therefore follows a step that revealed >= 1 token: with L tokens there are
    at most L forward passes, however many steps are asked for."""
    m = make_mdlm(time_conditioning=False)
    model = Recorder()
    x, info = ancestral_sample(m, model, all_masked(1, 6), steps=500,
                               generator=torch.Generator().manual_seed(0))
    assert not (x == MASK).any()
    assert info["forward_passes"] == len(model.inputs)
    assert info["forward_passes"] <= 6, info
    # every evaluated input is distinct (no pass on an unchanged x_t)
    for a, b in zip(model.inputs[:-1], model.inputs[1:]):
        assert not torch.equal(a, b)
