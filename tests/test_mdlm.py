"""The MDLM objective: schedule, forward masking, stratified times, SUBS, the NELBO."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import LogLinearSchedule, build_schedule
from dnadiff.models.dit import DiT

from conftest import IIDTrueConditional, entropy_nats

EPS = 1e-3
MASK, N_ID, PAD, V = 5, 4, 6, 7


def make_mdlm(eps=EPS, time_conditioning=False):
    return MDLM(LogLinearSchedule(eps), mask_id=MASK, generable_ids=[0, 1, 2, 3],
                vocab_size=V, time_conditioning=time_conditioning)


class FixedLogits(torch.nn.Module):
    """Returns a fixed logits tensor and records what it was called with."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.calls = []

    def forward(self, tokens, sigma=None, cond=None):
        self.calls.append({"tokens": tokens.clone(), "sigma": sigma, "cond": cond})
        return self.logits.clone()


# -- schedule ---------------------------------------------------------------------------------

def test_loglinear_alpha_exact():
    s = LogLinearSchedule(EPS)
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    assert torch.equal(s.alpha(t), 1.0 - (1.0 - EPS) * t)
    assert s.alpha(t)[0].item() == 1.0
    assert s.alpha(t)[-1].item() == pytest.approx(EPS, abs=1e-15)
    assert torch.equal(s.sigma(t), -torch.log(1.0 - (1.0 - EPS) * t))
    assert s.sigma(t)[0].item() == 0.0


def test_weight_is_exactly_one_over_t():
    s = LogLinearSchedule(EPS)
    t = torch.linspace(EPS, 1.0, 1001)
    assert torch.equal(s.weight(t), 1.0 / t)
    # and it is the NELBO weight -alpha'(t) / (1 - alpha(t))
    tt = torch.linspace(0.01, 1.0, 50, dtype=torch.float64, requires_grad=True)
    alpha = s.alpha(tt)
    (dalpha,) = torch.autograd.grad(alpha.sum(), tt)
    torch.testing.assert_close(-dalpha / (1 - alpha.detach()), s.weight(tt.detach()),
                               rtol=1e-12, atol=0)


def test_build_schedule():
    s = build_schedule({"schedule": "loglinear", "eps": 0.01})
    assert isinstance(s, LogLinearSchedule) and s.eps == 0.01
    with pytest.raises(ValueError, match="known: loglinear, cosine"):
        build_schedule({"schedule": "sqrt", "eps": 0.01})


# -- forward process --------------------------------------------------------------------------

def test_corrupt_masking_rate_matches_schedule():
    m = make_mdlm()
    ts = torch.tensor([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
    L = 200_000
    gen = torch.Generator().manual_seed(123)
    x0 = torch.randint(0, 4, (len(ts), L), generator=gen)
    lm = torch.ones_like(x0, dtype=torch.bool)
    x_t, masked = m.corrupt(x0, ts, lm, generator=gen)
    assert torch.equal(masked, x_t == MASK)
    assert torch.equal(x_t[~masked], x0[~masked])
    rate = masked.double().mean(-1)
    expected = 1.0 - (1.0 - EPS) * ts.double()
    expected = 1.0 - expected  # = (1 - eps) t, the masking probability
    se = torch.sqrt(expected * (1 - expected) / L).clamp_min(1e-4)
    z = (rate - expected) / se
    assert (z.abs() < 4).all(), (rate, expected, z)


def test_corrupt_never_masks_outside_loss_mask():
    m = make_mdlm()
    gen = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, 5, (4, 5000), generator=gen)
    lm = torch.rand(x0.shape, generator=gen) < 0.5
    t = torch.ones(4)  # masking probability 1 - eps
    x_t, masked = m.corrupt(x0, t, lm, generator=gen)
    assert not masked[~lm].any()
    assert torch.equal(x_t[~lm], x0[~lm])
    # inside the loss mask almost everything is masked at t = 1
    assert masked[lm].float().mean() > 0.99


def test_corrupt_deterministic_given_generator():
    m = make_mdlm()
    x0 = torch.randint(0, 4, (3, 100), generator=torch.Generator().manual_seed(0))
    lm = torch.ones_like(x0, dtype=torch.bool)
    t = torch.tensor([0.2, 0.5, 0.8])
    a = m.corrupt(x0, t, lm, generator=torch.Generator().manual_seed(9))
    b = m.corrupt(x0, t, lm, generator=torch.Generator().manual_seed(9))
    c = m.corrupt(x0, t, lm, generator=torch.Generator().manual_seed(10))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


# -- stratified time sampling -----------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 7, 64, 1000])
def test_sample_t_one_draw_per_stratum(n):
    m = make_mdlm()
    t = m.sample_t(n, generator=torch.Generator().manual_seed(n)).double()
    assert t.shape == (n,)
    i = torch.arange(n, dtype=torch.float64)
    lo = EPS + (1 - EPS) * i / n
    hi = EPS + (1 - EPS) * (i + 1) / n
    tol = 1e-6  # float32 rounding of the returned times
    assert (t >= lo - tol).all() and (t < hi + tol).all()
    # one draw per stratum: the stratum indices are exactly 0..n-1
    u = ((t - EPS) / (1 - EPS) * n).floor().clamp(0, n - 1)
    near = ((t - lo).abs() < tol) | ((hi - t).abs() < tol)
    assert torch.equal(u[~near], i[~near])
    assert (t >= EPS - tol).all() and (t < 1.0 + tol).all()


def test_sample_t_is_uniform_and_seeded():
    m = make_mdlm()
    t = torch.cat([m.sample_t(50, generator=torch.Generator().manual_seed(s)) for s in range(40)])
    # the stratified mean is very precise: E[t] = (1 + eps) / 2
    assert t.double().mean().item() == pytest.approx((1 + EPS) / 2, abs=0.01)
    a = m.sample_t(16, generator=torch.Generator().manual_seed(3))
    b = m.sample_t(16, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# -- SUBS log-probabilities -------------------------------------------------------------------

def test_log_probs_zero_mass_on_mask_and_non_generable():
    m = make_mdlm()
    logits = torch.randn(2, 9, V, generator=torch.Generator().manual_seed(0)) * 3
    logits[..., MASK] = 50.0  # the model "wants" the mask: SUBS must remove it
    logits[..., N_ID] = 40.0
    model = FixedLogits(logits)
    x_t = torch.full((2, 9), MASK)
    lp = m.log_probs(model, x_t, torch.full((2,), 0.5))
    assert lp.dtype == torch.float32
    for bad in (MASK, N_ID, PAD):
        assert torch.isneginf(lp[..., bad]).all()
        assert (lp[..., bad].exp() == 0).all()
    torch.testing.assert_close(lp[..., :4], torch.log_softmax(logits[..., :4], -1))
    torch.testing.assert_close(lp.exp().sum(-1), torch.ones(2, 9))


def test_log_probs_time_conditioning_passes_sigma():
    t = torch.tensor([0.25, 0.75])
    logits = torch.zeros(2, 3, V)
    m = make_mdlm(time_conditioning=True)
    model = FixedLogits(logits)
    m.log_probs(model, torch.full((2, 3), MASK), t)
    torch.testing.assert_close(model.calls[-1]["sigma"], -torch.log(1 - (1 - EPS) * t))
    m2 = make_mdlm(time_conditioning=False)
    m2.log_probs(model, torch.full((2, 3), MASK), t)
    assert model.calls[-1]["sigma"] is None


# -- the loss ---------------------------------------------------------------------------------

def test_token_nll_matches_hand_computation():
    m = make_mdlm()
    B, L = 4, 300
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(B, L, V, generator=g) * 2
    x0 = torch.randint(0, 4, (B, L), generator=g)
    lm = torch.rand(B, L, generator=g) < 0.8
    t = torch.tensor([0.1, 0.4, 0.7, 1.0])
    model = FixedLogits(logits)
    nll_sum, n_tok, t_out = m.token_nll(model, x0, lm, t=t,
                                        generator=torch.Generator().manual_seed(1))
    assert torch.equal(t_out, t)
    assert torch.equal(n_tok, lm.sum(-1))
    x_t = model.calls[-1]["tokens"]
    masked = x_t == MASK
    assert not masked[~lm].any()
    assert masked.sum() > 100
    logp4 = torch.log_softmax(logits[..., :4].double(), -1)
    true_lp = logp4.gather(-1, x0[..., None]).squeeze(-1)
    expected = torch.where(masked, -true_lp, torch.zeros_like(true_lp)).sum(-1) / t.double()
    torch.testing.assert_close(nll_sum.double(), expected, rtol=1e-5, atol=1e-5)

    # unmasked positions contribute exactly zero: making the true token impossible there
    # (logit -1e4) does not change the result at all
    logits2 = logits.clone()
    onehot = torch.nn.functional.one_hot(x0, V).bool()
    logits2[onehot & ~masked[..., None]] = -1e4
    nll2, _, _ = m.token_nll(FixedLogits(logits2), x0, lm, t=t,
                             generator=torch.Generator().manual_seed(1))
    assert torch.equal(nll2, nll_sum)

    loss = m.loss(FixedLogits(logits), x0, lm, generator=torch.Generator().manual_seed(2))
    assert loss.ndim == 0 and torch.isfinite(loss)


def test_loss_is_ratio_of_sums():
    m = make_mdlm()
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 50, V, generator=g)
    x0 = torch.randint(0, 4, (3, 50), generator=g)
    lm = torch.ones(3, 50, dtype=torch.bool)
    lm[1, 10:] = False
    nll_sum, n_tok, _ = m.token_nll(FixedLogits(logits), x0, lm,
                                    generator=torch.Generator().manual_seed(4))
    loss = m.loss(FixedLogits(logits), x0, lm, generator=torch.Generator().manual_seed(4))
    assert loss.item() == pytest.approx((nll_sum.sum() / n_tok.sum()).item(), rel=1e-6)


def test_all_padding_batch_gives_exact_zero_not_nan():
    m = make_mdlm()
    x0 = torch.full((3, 32), N_ID)  # an all-N window
    x0[1] = PAD
    lm = torch.zeros(3, 32, dtype=torch.bool)
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16)
    for p in model.parameters():  # make the model non-trivial
        torch.nn.init.normal_(p, std=0.3)
    loss = m.loss(model, x0, lm, generator=torch.Generator().manual_seed(0))
    assert loss.item() == 0.0
    assert not torch.isnan(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    nll_sum, n_tok, _ = m.token_nll(model, x0, lm, generator=torch.Generator().manual_seed(0))
    assert (nll_sum == 0).all() and (n_tok == 0).all()


def test_dit_at_init_gives_log4_per_masked_token():
    """A zero-head DiT predicts uniform over A/C/G/T: nll_sum = n_masked * ln 4 / t exactly."""
    m = make_mdlm()
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=16)
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 4, (4, 64), generator=g)
    lm = torch.ones_like(x0, dtype=torch.bool)
    lm[:, -5:] = False
    t = torch.tensor([0.2, 0.5, 0.9, 1.0])
    nll_sum, _, _ = m.token_nll(model, x0, lm, t=t, generator=torch.Generator().manual_seed(8))
    _, masked = m.corrupt(x0, t, lm, generator=torch.Generator().manual_seed(8))
    expected = masked.sum(-1).double() * math.log(4) / t.double()
    torch.testing.assert_close(nll_sum.double(), expected, rtol=1e-5, atol=1e-6)


def nelbo_estimate(m, model, x0, seed):
    """NELBO (nats/token) over windows with stratified t, and its ratio-estimator SE."""
    lm = torch.ones_like(x0, dtype=torch.bool)
    nll_sum, n_tok, _ = m.token_nll(model, x0, lm, generator=torch.Generator().manual_seed(seed))
    y, n = nll_sum.double().numpy(), n_tok.double().numpy()
    ratio = y.sum() / n.sum()
    resid = y - ratio * n
    se = math.sqrt(len(y) / (len(y) - 1) * (resid ** 2).sum()) / n.sum()
    return ratio, se


def test_nelbo_of_true_conditional_equals_entropy():
    """The key exactness check: for an i.i.d. source and its true conditional, the MDLM NELBO
    equals the entropy H(p) (up to the eps cut-off, (1 - eps) H)."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    H = entropy_nats(p)
    m = make_mdlm()
    g = torch.Generator().manual_seed(2024)
    B, L = 8192, 64
    x0 = torch.multinomial(torch.tensor(p), B * L, replacement=True, generator=g).view(B, L)
    est, se = nelbo_estimate(m, IIDTrueConditional(p), x0, seed=7)
    assert 0 < se < 0.02 * H
    assert abs(est - H) < 3 * se, (est, H, se)

    # a uniform predictor pays ln 4 per token: the NELBO of the wrong model is ln 4 > H
    uniform = IIDTrueConditional([0.25] * 4)
    est_u, se_u = nelbo_estimate(m, uniform, x0, seed=7)
    assert abs(est_u - math.log(4)) < 3 * se_u, (est_u, se_u)
    assert est_u > est  # same masks (common random numbers): the true model is better


class PairCopyConditional(torch.nn.Module):
    """The true conditional of a source whose tokens come in equal pairs (x_2k = x_2k+1, each
    pair uniform over the four bases): a masked token is its partner's token when the partner is
    visible, else uniform. Its entropy rate is ln(4)/2, and its MDLM NELBO is
    (1 - eps)^2 ln(4)/2: at time t a token is scored with probability (1 - eps) t and then pays
    ln 4 only when its partner is masked too (probability (1 - eps) t again), weight 1/t."""

    def forward(self, tokens, sigma=None, cond=None):
        partner = tokens.view(tokens.shape[0], -1, 2).flip(-1).reshape(tokens.shape)
        uniform = torch.full((V,), -1e4)
        uniform[:4] = 0.0
        known = (torch.nn.functional.one_hot(partner.clamp_max(3), V).float() - 1.0) * 1e4
        return torch.where((partner != MASK)[..., None], known, uniform)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_train_time_power_keeps_the_nelbo_in_expectation(power):
    """Importance-weighted times (t = (1 - eps) u^p + eps, weight p u^(p-1)) estimate the same
    NELBO as uniform times, on a source whose per-time loss depends strongly on t (it grows
    linearly in t), so unweighted low times would come out far lower."""
    m = MDLM(LogLinearSchedule(EPS), mask_id=MASK, generable_ids=[0, 1, 2, 3], vocab_size=V,
             train_time_power=power)
    g = torch.Generator().manual_seed(11)
    B, L = 4096, 64
    x0 = torch.randint(0, 4, (B, L // 2), generator=g).repeat_interleave(2, dim=1)
    exact = (1 - EPS) ** 2 * math.log(4) / 2
    sums, ts = [], []
    for _ in range(4):
        nll_sum, n_tok, t = m.token_nll(PairCopyConditional(), x0, torch.ones_like(x0).bool(),
                                        generator=g, time_power=power)
        sums.append(nll_sum / n_tok)
        ts.append(t)
    per_window, t = torch.cat(sums).double(), torch.cat(ts).double()
    se = per_window.std().item() / math.sqrt(len(per_window))
    assert abs(per_window.mean().item() - exact) < 4 * se, (per_window.mean(), exact, se)
    # the times follow t = (1 - eps) u^p + eps: the share below (1 - eps) 0.25^p + eps is 1/4
    share = (t < (1 - EPS) * 0.25 ** power + EPS).double().mean().item()
    assert share == pytest.approx(0.25, abs=1e-3)
    # and the training loss uses them
    assert m.loss(PairCopyConditional(), x0[:512], torch.ones_like(x0[:512]).bool(),
                  generator=g).item() == pytest.approx(exact, rel=0.1)


def test_train_mask_range_draws_only_clipped_rates():
    """Clipped masking rates (BD3-LM): every training time has 1 - alpha_t in [low, high],
    uniformly (loglinear), and the training loss is the clipped integral of the same
    integrand: on the pair-copy source the loss at time t is (1 - eps)^2 t ln 4, so with
    t uniform on [low, high] / (1 - eps) the mean is (1 - eps) ln 4 (low + high) / 2."""
    low, high = 0.3, 0.8
    m = MDLM(LogLinearSchedule(EPS), mask_id=MASK, generable_ids=[0, 1, 2, 3], vocab_size=V,
             train_mask_range=[low, high])
    g = torch.Generator().manual_seed(5)
    x0 = torch.randint(0, 4, (2048, 32), generator=g).repeat_interleave(2, dim=1)
    lm = torch.ones_like(x0).bool()
    nll_sum, n_tok, t = m.token_nll(PairCopyConditional(), x0, lm, generator=g,
                                    mask_range=m.train_mask_range)
    rate = 1 - m.schedule.alpha(t.double())
    assert rate.min() >= low - 1e-6 and rate.max() <= high + 1e-6
    # stratified: a quarter of the draws in each quarter of the range
    q = ((rate - low) / (high - low) * 4).floor().clamp(0, 3)
    assert torch.bincount(q.long().flatten(), minlength=4).tolist() == [rate.numel() // 4] * 4
    per_window = (nll_sum / n_tok).double()
    expected = (1 - EPS) * math.log(4) * (low + high) / 2
    se = per_window.std().item() / math.sqrt(len(per_window))
    assert abs(per_window.mean().item() - expected) < 4 * se, (per_window.mean(), expected)
    # the training loss uses the clipped rates; evaluation (token_nll's default) does not
    assert m.loss(PairCopyConditional(), x0, lm, generator=g).item() == pytest.approx(
        expected, rel=0.05)
    _, _, t_eval = m.token_nll(PairCopyConditional(), x0, lm, generator=g)
    assert (1 - m.schedule.alpha(t_eval.double())).min() < low / 2
    # block diffusion: one clipped time per block
    blocks = MDLM(LogLinearSchedule(EPS), mask_id=MASK, generable_ids=[0, 1, 2, 3],
                  vocab_size=V, train_mask_range=[low, high], block_size=4, window=64)
    net = DiT(V, dim=16, layers=1, heads=1, cond_dim=16)
    _, _, t = blocks.token_nll(net, x0[:8], lm[:8], generator=g, mask_range=[low, high])
    rate = 1 - blocks.schedule.alpha(t.double())
    assert t.shape == (8, 16) and rate.min() >= low - 1e-6 and rate.max() <= high + 1e-6


def test_train_mask_range_of_everything_is_the_unclipped_objective():
    """[0, 1] draws exactly the times of null: the same float32 times from the same draws."""
    plain, full = make_mdlm(), MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V,
                                    train_mask_range=[0.0, 1.0])
    u = MDLM.stratified_uniform(1000, torch.Generator().manual_seed(0))
    assert torch.equal(plain.time_from_uniform(u),
                       full.time_from_uniform(u, mask_range=full.train_mask_range))
    with pytest.raises(ValueError, match="0 <= low < high <= 1"):
        MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V, train_mask_range=[0.8, 0.3])
    with pytest.raises(ValueError, match="continuous-time objective only"):
        MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V, train_mask_range=[0.3, 0.8],
             train_discrete_T=10)


def complementary_mdlm(**kw):
    return MDLM(LogLinearSchedule(EPS), mask_id=MASK, generable_ids=[0, 1, 2, 3], vocab_size=V,
                train_complementary=True, **kw)


def test_complementary_masks_are_exact_complements_at_complementary_times():
    """The second half of the rows is masked exactly where the first half is not (inside the
    loss mask, never outside it), at the time whose masking rate is the first's unmasked rate;
    per window and per block."""
    g = torch.Generator().manual_seed(3)
    x0 = torch.randint(0, 4, (4, 64), generator=g).repeat(2, 1)
    lm = torch.rand(4, 64, generator=g).gt(0.2).repeat(2, 1)
    for m in (complementary_mdlm(), complementary_mdlm(block_size=8, window=64)):
        model = FixedLogits(torch.zeros(8, 64, V)) if m.block_size is None else \
            DiT(V, dim=16, layers=1, heads=1, cond_dim=16)
        _, _, t = m.token_nll(model, x0, lm, generator=g, complementary=True)
        a = m.schedule.alpha(t.double())
        assert torch.allclose(a[4:], 1 - a[:4], atol=1e-6)
        _, masked = m.corrupt(x0, t, lm, generator=g, complementary=True)
        first, second = masked[:4], masked[4:]
        assert not (first & second).any() and torch.equal(first | second, lm[:4])
    # the time used is the exact complement: t' = 1/(1 - eps) - t for the loglinear schedule
    t = torch.tensor([EPS, 0.25, 0.5, 0.9], dtype=torch.float64)
    assert torch.allclose(complementary_mdlm().complementary_time(t),
                          (1 / (1 - EPS) - t).clamp(max=1.0))
    with pytest.raises(ValueError, match="even batch"):
        complementary_mdlm().token_nll(FixedLogits(torch.zeros(3, 8, V)), x0[:3, :8],
                                       lm[:3, :8], complementary=True)


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_complementary_masks_keep_the_nelbo_and_lower_its_variance(power):
    """On the pair-copy source (NELBO exactly (1 - eps)^2 ln(4)/2) the mean of a window's two
    complementary copies estimates the NELBO, with or without the time power. With uniform
    times its variance is below that of two independent draws of the same window (negatively
    correlated); with the time power it is not (the complements of its low times are high times
    carrying the low times' importance weights), which the schema says."""
    g = torch.Generator().manual_seed(17)
    B, L = 4096, 64
    x0 = torch.randint(0, 4, (B, L // 2), generator=g).repeat_interleave(2, dim=1)
    lm = torch.ones_like(x0).bool()
    exact = (1 - EPS) ** 2 * math.log(4) / 2
    comp = complementary_mdlm(train_time_power=power)
    pairs = torch.cat([x0, x0])
    nll_sum, n_tok, _ = comp.token_nll(PairCopyConditional(), pairs, torch.cat([lm, lm]),
                                       generator=g, time_power=power, complementary=True)
    per = (nll_sum / n_tok).double()
    paired = (per[:B] + per[B:]) / 2
    se = paired.std().item() / math.sqrt(B)
    assert abs(paired.mean().item() - exact) < 4 * se, (paired.mean(), exact, se)
    plain = MDLM(LogLinearSchedule(EPS), mask_id=MASK, generable_ids=[0, 1, 2, 3],
                 vocab_size=V, train_time_power=power)
    nll_sum, n_tok, _ = plain.token_nll(PairCopyConditional(), pairs, torch.cat([lm, lm]),
                                        generator=g, time_power=power)
    per = (nll_sum / n_tok).double()
    independent = (per[:B] + per[B:][torch.randperm(B, generator=g)]) / 2
    assert (paired.var().item() < 0.8 * independent.var().item()) == (power == 1.0)


def test_complementary_training_loss_scores_the_first_half_twice():
    """``loss`` with complementary masks runs the first floor(B/2) windows twice (an odd last
    window is left out; a batch of one is plain), each copy masked where the other is not."""
    m = complementary_mdlm()
    g = torch.Generator().manual_seed(8)
    x0 = torch.randint(0, 4, (5, 32), generator=g)
    lm = torch.ones_like(x0).bool()
    rec = FixedLogits(torch.zeros(4, 32, V))
    m.loss(rec, x0, lm, generator=g)
    seen = rec.calls[0]["tokens"]
    assert seen.shape == (4, 32)
    for i in range(2):
        a, b = seen[i], seen[i + 2]
        assert torch.equal((a == MASK) ^ (b == MASK), torch.ones(32, dtype=torch.bool))
        assert torch.equal(torch.where(a == MASK, b, a), x0[i])
    one = FixedLogits(torch.zeros(1, 32, V))
    m.loss(one, x0[:1], lm[:1], generator=g)
    assert one.calls[0]["tokens"].shape == (1, 32)
    with pytest.raises(ValueError, match="loglinear schedule"):
        MDLM(build_schedule({"schedule": "cosine", "eps": EPS}), MASK, [0, 1, 2, 3], V,
             train_complementary=True)
    with pytest.raises(ValueError, match="full range"):
        complementary_mdlm(train_mask_range=[0.3, 0.8])


def test_train_time_power_rejects_bad_values():
    with pytest.raises(ValueError, match="train_time_power must be >= 1"):
        MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V, train_time_power=0.5)
    with pytest.raises(ValueError, match="continuous-time objective only"):
        MDLM(LogLinearSchedule(EPS), MASK, [0, 1, 2, 3], V, train_time_power=2.0,
             train_discrete_T=10)
