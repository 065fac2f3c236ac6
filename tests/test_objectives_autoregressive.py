"""The autoregressive (AR) baseline objective (shift right, token NLL, exact held-out NLL) and
the causal DiT that sees only the past."""

from __future__ import annotations

import pytest
import torch
from objectives_kit import (
    LN2,
    MASK,
    N_ID,
    PAD,
    FixedLogits,
    P,
    V,
    iid_dataset,
    make_ar,
    randomized_dit,
)

from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.autoregressive import Autoregressive
from dnadiff.evaluation.likelihood import heldout_nelbo
from dnadiff.models import build_backbone
from dnadiff.tokenizers import DNATokenizer

from conftest import IIDTrueConditional

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
    tok = DNATokenizer()
    obj = build_objective(cfg, tok)
    assert isinstance(obj, Autoregressive)
    assert obj.causal is True
    assert obj.bos_id == tok.mask_id == MASK and obj.vocab_size == V
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
