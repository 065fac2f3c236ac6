"""New objective-side features: the cosine schedule, discrete-time NELBO weights and grid
times, the autoregressive (AR) baseline objective with a causal DiT, the EMA of the weights and
EMA weights in checkpoints."""

from __future__ import annotations

import math

import pytest
import torch

from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.schedule import CosineSchedule, LogLinearSchedule, build_schedule
from dnadiff.evaluation.likelihood import heldout_nelbo
from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT
from dnadiff.tokenizers import DNATokenizer
from dnadiff.training import EMA

from conftest import IIDTrueConditional, entropy_nats

EPS = 1e-3
A, C, G, T, N_ID, MASK, PAD, V = 0, 1, 2, 3, 4, 5, 6, 7
GEN = [0, 1, 2, 3]
LN2 = math.log(2.0)


class FixedLogits(torch.nn.Module):
    """Returns a fixed logits tensor whatever the input and records the inputs."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits
        self.inputs = []

    def forward(self, tokens, sigma=None, cond=None):
        self.inputs.append(tokens.clone())
        return self.logits.clone()


def make_ar():
    return Autoregressive(bos_id=MASK, generable_ids=GEN, vocab_size=V)


def randomized_dit(seed=0, std=0.5, **kw):
    """A tiny DiT whose every parameter (adaLN and head included, zero at init) is random, so the
    blocks are not identities and the output depends on the context."""
    torch.manual_seed(seed)
    model = DiT(V, dim=kw.pop("dim", 16), layers=kw.pop("layers", 2), heads=kw.pop("heads", 2),
                cond_dim=kw.pop("cond_dim", 16), **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * std)
    return model.eval()


def iid_dataset(p, n_win, length, seed, n_frac=0.0):
    """Windows drawn i.i.d. from p over A/C/G/T; a fraction of positions set to N and unscored."""
    g = torch.Generator().manual_seed(seed)
    x = torch.multinomial(torch.as_tensor(p, dtype=torch.float64), n_win * length,
                          replacement=True, generator=g).view(n_win, length)
    lm = torch.ones_like(x, dtype=torch.bool)
    if n_frac:
        unscored = torch.rand(x.shape, generator=g) < n_frac
        x = torch.where(unscored, torch.full_like(x, N_ID), x)
        lm = ~unscored
    return [{"tokens": x[i], "loss_mask": lm[i]} for i in range(n_win)], x, lm


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
    obj = build_objective(cfg, DNATokenizer().to_dict())
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

P = [0.1, 0.2, 0.3, 0.4]


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


# -- 4. the autoregressive objective ----------------------------------------------------------

def test_shift_right_puts_bos_first():
    ar = make_ar()
    x0 = torch.tensor([[0, 1, 2, 3, 4], [3, 3, 2, 1, 0]])
    assert torch.equal(ar.shift_right(x0), torch.tensor([[5, 0, 1, 2, 3], [5, 3, 3, 2, 1]]))
    assert ar.shift_right(x0).shape == x0.shape
    assert ar.bos_id == ar.mask_id == MASK
    assert ar.causal is True and ar.stochastic is False and ar.name == "ar"


def test_ar_token_nll_matches_hand_computation():
    ar = make_ar()
    B, L = 3, 40
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(B, L, V, generator=g) * 2
    logits[..., 4:] = 20.0  # N/mask/pad: must get zero mass
    x0 = torch.randint(0, 4, (B, L), generator=g)
    lm = torch.rand(B, L, generator=g) < 0.7
    x0[~lm] = N_ID
    model = FixedLogits(logits)
    nll_sum, n_tok, t = ar.token_nll(model, x0, lm)
    assert t is None
    assert len(model.inputs) == 1 and torch.equal(model.inputs[0], ar.shift_right(x0))
    assert torch.equal(n_tok, lm.sum(-1))
    logp = torch.log_softmax(logits[..., :4].double(), -1)
    expected = torch.zeros(B, dtype=torch.float64)
    for b in range(B):
        for i in range(L):
            if lm[b, i]:
                expected[b] -= logp[b, i, x0[b, i]]
    torch.testing.assert_close(nll_sum.double(), expected, rtol=1e-6, atol=1e-6)
    lp = ar.log_probs(model, ar.shift_right(x0))
    for bad in (N_ID, MASK, PAD):
        assert torch.isneginf(lp[..., bad]).all()
    loss = ar.loss(model, x0, lm)
    assert loss.item() == pytest.approx(expected.sum().item() / lm.sum().item(), rel=1e-6)


def test_ar_heldout_nelbo_is_exact_empirical_nll():
    ar = make_ar()
    ds, x, lm = iid_dataset(P, n_win=37, length=24, seed=8, n_frac=0.1)
    model = IIDTrueConditional(P)
    res = heldout_nelbo(model, ar, ds, batch_size=8, t_draws=5, seed=1)
    logp = torch.log(torch.tensor(P, dtype=torch.float64))
    expected = -logp[x[lm]].sum().item() / lm.sum().item()
    assert res["nats_per_token"] == pytest.approx(expected, rel=1e-6)
    assert res["bits_per_token"] == pytest.approx(expected / LN2, rel=1e-6)
    assert res["t_draws"] == 1
    assert res["estimate"] == "exact NLL"
    assert res["tokens_scored"] == int(lm.sum())
    assert res["windows"] == 37
    # deterministic: other seeds and t_draws change nothing
    res2 = heldout_nelbo(model, ar, ds, batch_size=5, t_draws=1, seed=99)
    assert res2["nats_per_token"] == pytest.approx(res["nats_per_token"], rel=1e-12)
    assert res2["bits_per_token_se"] == pytest.approx(res["bits_per_token_se"], rel=1e-9)


def test_ar_all_unscored_loss_is_exactly_zero():
    ar = make_ar()
    x0 = torch.full((2, 16), N_ID)
    lm = torch.zeros(2, 16, dtype=torch.bool)
    model = randomized_dit(causal=True, layers=1)
    loss = ar.loss(model, x0, lm)
    assert loss.item() == 0.0 and not torch.isnan(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    nll, n, _ = ar.token_nll(model, x0, lm)
    assert (nll == 0).all() and (n == 0).all()


def test_build_objective_ar():
    cfg = validate_config({"run": "x", "objective": "ar",
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}})
    tok = DNATokenizer().to_dict()
    obj = build_objective(cfg, tok)
    assert isinstance(obj, Autoregressive)
    assert obj.causal is True
    assert obj.bos_id == tok["mask_id"] == MASK and obj.vocab_size == V
    assert obj.allowed.tolist() == [True, True, True, True, False, False, False]
    model = build_backbone(cfg["model"], V, causal=obj.causal)
    assert model.causal and all(b.causal for b in model.blocks)
    assert validate_config({"run": "x"})["objective"] == "mdlm"
    with pytest.raises(ValueError, match="unknown objective"):
        build_objective({**cfg, "objective": "gpt"}, tok)


# -- 5. causal DiT ----------------------------------------------------------------------------

@pytest.mark.parametrize("conv_kernel", [0, 5])
@pytest.mark.parametrize("j", [0, 5, 11, 15])
def test_causal_dit_ignores_future_tokens(conv_kernel, j):
    L = 16
    model = randomized_dit(seed=1, causal=True, conv_kernel=conv_kernel)
    g = torch.Generator().manual_seed(j)
    x = torch.randint(0, 4, (2, L), generator=g)
    y = x.clone()
    y[:, j] = (x[:, j] + 1) % 4
    with torch.no_grad():
        out_x, out_y = model(x), model(y)
    torch.testing.assert_close(out_x[:, :j], out_y[:, :j], rtol=0, atol=1e-6)
    assert (out_x[:, j:] - out_y[:, j:]).abs().max() > 1e-3
    # control: the same weights without the causal mask see the future
    if j > 0:
        nc = randomized_dit(seed=1, causal=False, conv_kernel=conv_kernel)
        with torch.no_grad():
            assert (nc(x)[:, :j] - nc(y)[:, :j]).abs().max() > 1e-3


def test_ar_with_causal_dit_predicts_from_the_past_only():
    ar = make_ar()
    model = randomized_dit(seed=2, causal=True, conv_kernel=3)
    L, j = 20, 9
    x0 = torch.randint(0, 4, (3, L), generator=torch.Generator().manual_seed(0))
    x1 = x0.clone()
    x1[:, j] = (x0[:, j] + 2) % 4
    with torch.no_grad():
        lp0 = ar.log_probs(model, ar.shift_right(x0))
        lp1 = ar.log_probs(model, ar.shift_right(x1))
    # position i predicts x0[i] from x0[<i]: positions <= j do not see x0[j]
    torch.testing.assert_close(lp0[:, : j + 1], lp1[:, : j + 1], rtol=0, atol=1e-6)
    assert (lp0[:, j + 1:, :4] - lp1[:, j + 1:, :4]).abs().max() > 1e-3  # -inf off A-T
    # so the NLL of positions < j is unchanged
    lm = torch.zeros(3, L, dtype=torch.bool)
    lm[:, :j] = True
    with torch.no_grad():
        n0, _, _ = ar.token_nll(model, x0, lm)
        n1, _, _ = ar.token_nll(model, x1, lm)
    torch.testing.assert_close(n0, n1, rtol=0, atol=1e-5)


# -- 6. EMA -----------------------------------------------------------------------------------

def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                               torch.nn.Linear(4, 2))


def float_state(model):
    return {k: v.detach().clone().double() for k, v in model.state_dict().items()
            if v.is_floating_point()}


def perturb(model, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


@pytest.mark.parametrize("decay,d", [(0.999, 2 / 11), (0.1, 0.1)])
def test_ema_first_update_uses_warmup_decay(decay, d):
    model = small_net()
    w0 = float_state(model)
    ema = EMA(model, decay)
    perturb(model, 1)
    w1 = float_state(model)
    ema.update(model)
    assert ema.updates == 1
    assert set(ema.shadow) == set(w0)  # floating-point entries only
    assert "1.num_batches_tracked" not in ema.shadow
    for k in w0:
        assert ema.shadow[k].dtype == torch.float32
        torch.testing.assert_close(ema.shadow[k].double(), d * w0[k] + (1 - d) * w1[k],
                                   rtol=1e-6, atol=1e-6)
    # second update: d = min(decay, 3/12)
    perturb(model, 2)
    w2 = float_state(model)
    ema.update(model)
    d2 = min(decay, 3 / 12)
    for k in w0:
        expected = d2 * (d * w0[k] + (1 - d) * w1[k]) + (1 - d2) * w2[k]
        torch.testing.assert_close(ema.shadow[k].double(), expected, rtol=1e-6, atol=1e-6)


def test_ema_converges_to_constant_weights():
    model = small_net()
    ema = EMA(model, 0.999)
    perturb(model, 3, scale=5.0)
    target = float_state(model)
    for _ in range(200):
        ema.update(model)
    for k, v in target.items():
        torch.testing.assert_close(ema.shadow[k].double(), v, rtol=1e-5, atol=1e-5)


def test_ema_applied_loads_and_restores():
    model = small_net()
    ema = EMA(model, 0.999)
    w0 = float_state(model)
    perturb(model, 4)
    w1 = {k: v.clone() for k, v in model.state_dict().items()}
    with ema.applied(model):
        for k, v in model.state_dict().items():
            if k in w0:
                assert torch.equal(v.double(), w0[k]), k
    for k, v in model.state_dict().items():
        assert torch.equal(v, w1[k]), k
    # restored also when the body raises
    with pytest.raises(RuntimeError, match="boom"), ema.applied(model):
        assert torch.equal(model[0].weight.double(), w0["0.weight"])
        raise RuntimeError("boom")
    for k, v in model.state_dict().items():
        assert torch.equal(v, w1[k]), k


def test_ema_state_dict_has_every_key():
    model = small_net()
    model.train()
    model(torch.randn(5, 3))  # bumps the BatchNorm integer counter
    ema = EMA(model, 0.9)
    perturb(model, 5)
    ema.update(model)
    sd = ema.state_dict(model)
    assert set(sd) == set(model.state_dict())
    assert torch.equal(sd["1.num_batches_tracked"], model.state_dict()["1.num_batches_tracked"])
    for k in ema.shadow:
        assert torch.equal(sd[k], ema.shadow[k])
    # loadable as is
    other = small_net(seed=9)
    other.load_state_dict(sd)


# -- 7. checkpoints with EMA weights; old configs ---------------------------------------------

def small_config(**extra):
    cfg = {"run": "ck", "data": {"window": 24},
           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16}}
    cfg.update(extra)
    return validate_config(cfg)


def test_checkpoint_uses_ema_weights_by_default(tmp_path):
    cfg = small_config()
    model = build_backbone(cfg["model"], V)
    perturb(model, 6, scale=0.3)
    ema = EMA(model, 0.999)
    ema_w = model.head.weight.detach().clone()
    perturb(model, 7, scale=0.3)
    raw_w = model.head.weight.detach().clone()
    assert not torch.equal(ema_w, raw_w)
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, cfg, DNATokenizer().to_dict(), step=3,
                    ema_state=ema.state_dict(model))
    ckpt = load_checkpoint(path)
    assert "ema_state_dict" in ckpt
    m_ema, obj, _ = model_from_checkpoint(ckpt)
    assert torch.equal(m_ema.head.weight, ema_w)
    m_raw, _, _ = model_from_checkpoint(ckpt, use_ema=False)
    assert torch.equal(m_raw.head.weight, raw_w)
    for k, v in model.state_dict().items():
        assert torch.equal(m_raw.state_dict()[k], v), k
    assert isinstance(obj, MDLM)
    # without EMA weights the raw ones are used
    save_checkpoint(tmp_path / "n.pt", model, cfg, DNATokenizer().to_dict(), step=3)
    ck2 = load_checkpoint(tmp_path / "n.pt")
    assert "ema_state_dict" not in ck2
    assert torch.equal(model_from_checkpoint(ck2)[0].head.weight, raw_w)


def test_ar_checkpoint_rebuilds_causal_model(tmp_path):
    cfg = small_config(objective="ar")
    model = build_backbone(cfg["model"], V, causal=True)
    perturb(model, 8, scale=0.3)
    save_checkpoint(tmp_path / "ar.pt", model, cfg, DNATokenizer().to_dict(), step=1)
    m, obj, _ = model_from_checkpoint(load_checkpoint(tmp_path / "ar.pt"))
    assert isinstance(obj, Autoregressive) and m.causal
    x = torch.randint(0, 4, (2, 24))
    with torch.no_grad():
        assert torch.equal(m(x), model.eval()(x))


def test_old_config_without_new_keys_is_filled(tmp_path):
    cfg = small_config()
    old = {k: v for k, v in cfg.items() if k not in ("objective", "compare_ar")}
    old["model"] = {k: v for k, v in cfg["model"].items() if k != "conv_kernel"}
    old["sample"] = {k: v for k, v in cfg["sample"].items()
                     if k not in ("temperature", "top_p", "prefix", "suffix", "semi_ar_stride")}
    old["evaluate"] = {k: v for k, v in cfg["evaluate"].items() if k != "discrete_T"}
    old["train"] = {k: v for k, v in cfg["train"].items() if k != "ema_decay"}
    model = build_backbone(cfg["model"], V)
    perturb(model, 9, scale=0.3)
    save_checkpoint(tmp_path / "old.pt", model, old, DNATokenizer().to_dict(), step=5)
    ckpt = load_checkpoint(tmp_path / "old.pt")
    assert "objective" not in ckpt["config"]
    m, obj, tok = model_from_checkpoint(ckpt)
    assert isinstance(obj, MDLM) and obj.name == "mdlm"
    assert m.conv is None and not m.causal
    x = torch.randint(0, 4, (2, 24))
    with torch.no_grad():
        assert torch.equal(m(x), model.eval()(x))
    # the stored config itself is not modified
    assert "objective" not in ckpt["config"]
