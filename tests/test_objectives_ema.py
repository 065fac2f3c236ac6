"""The exponential moving average (EMA) of the weights: warm-up decay, convergence, applying and
restoring, and its state dict."""

from __future__ import annotations

import pytest
import torch
from objectives_kit import perturb

from dnadiff.training import EMA

# -- 6. EMA -----------------------------------------------------------------------------------

def small_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                               torch.nn.Linear(4, 2))


def float_state(model):
    return {k: v.detach().clone().double() for k, v in model.state_dict().items()
            if v.is_floating_point()}


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
