"""The Mamba and Caduceus backbones: Caduceus exactly reverse-complement equivariant with every
weight randomized, conjoining for the plain models, bidirectional and causal context, and a
fresh model that predicts uniformly and learns."""

import pytest
import torch
from mamba_kit import COMP, F64, TOK, V, _randomized, _rc, _rc_logits, _tokens

from dnadiff.config import validate_config
from dnadiff.models.dit import DiT
from dnadiff.models.mamba import MambaLM


@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
@pytest.mark.parametrize("conditioning", ["none", "time", "time+class"])
def test_caduceus_is_exactly_rc_equivariant(mixer, conditioning):
    model = _randomized(MambaLM(V, dim=32, layers=2, cond_dim=12, mixer=mixer, headdim=8,
                                time_conditioning=conditioning != "none", complement=COMP))
    x = _tokens()
    kw = {}
    if conditioning != "none":
        kw["sigma"] = torch.tensor([0.1, 1.0, 3.0], dtype=F64)
    if conditioning == "time+class":
        kw["cond"] = torch.randn(3, 12, dtype=F64)
    with torch.no_grad():
        out, out_rc = model(x, **kw), model(_rc(x), **kw)
    assert out.abs().max() > 1  # not trivially zero
    assert torch.allclose(out_rc, _rc_logits(out), rtol=0, atol=1e-12)
    model.float()
    kw = {k: v.float() for k, v in kw.items()}
    with torch.no_grad():
        out, out_rc = model(x, **kw), model(_rc(x), **kw)
    # float32: equal up to rounding (bitwise with one thread, as conftest sets; with more
    # threads the two strands' batch halves can round differently, ~1e-6 relative)
    assert (out_rc - _rc_logits(out)).abs().max().item() < 1e-5 * max(1.0, out.abs().max())


@pytest.mark.parametrize("make", [lambda: MambaLM(V, dim=16, layers=2, cond_dim=8),
                                  lambda: DiT(V, dim=16, layers=2, heads=2, cond_dim=8,
                                              conv_kernel=3)])
def test_plain_models_are_not_equivariant_but_conjoined_ones_are(make):
    model = _randomized(make())
    x = _tokens()
    with torch.no_grad():
        plain, plain_rc = model(x), model(_rc(x))
    assert (plain_rc - _rc_logits(plain)).abs().max().item() > 1e-2  # the test can fail
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_rc_conjoin(COMP, V)
    assert model.state_dict().keys() == state.keys()  # same weights, same checkpoints
    model.eval()
    with torch.no_grad():
        out, out_rc = model(x), model(_rc(x))
    assert torch.allclose(out_rc, _rc_logits(out), rtol=0, atol=1e-12)
    assert torch.allclose(out, 0.5 * (plain + _rc_logits(plain_rc)), rtol=0, atol=1e-12)
    model.train()  # training sees the plain model
    with torch.no_grad():
        assert torch.equal(model(x), plain)
    model.set_rc_conjoin(None, V)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain)
    with pytest.raises(ValueError, match="own inverse"):
        model.set_rc_conjoin([0, 1, 2, 3, 4, 5, 5], V)


@pytest.mark.parametrize("backbone", ["mamba", "caduceus"])
@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
def test_bidirectional_context(backbone, mixer):
    """The output at position i changes when a token to its left or to its right changes."""
    model = _randomized(MambaLM(V, dim=16, layers=2, cond_dim=8, mixer=mixer, headdim=8,
                                complement=COMP if backbone == "caduceus" else None))
    x = _tokens(b=1, length=30)
    i = 15
    with torch.no_grad():
        base = model(x)[0, i]
        for j in (3, 14, 16, 27):
            y = x.clone()
            y[0, j] = (y[0, j] + 1) % 4
            assert (model(y)[0, i] - base).abs().max() > 1e-6, j


@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
def test_causal_mamba_sees_only_the_past(mixer):
    model = _randomized(MambaLM(V, dim=16, layers=2, cond_dim=8, mixer=mixer, headdim=8,
                                causal=True))
    assert model.blocks[0].mixer.rev is None
    x = _tokens(b=1, length=30)
    i = 15
    with torch.no_grad():
        base = model(x)[0, i]
        for j, changes in ((3, True), (15, True), (16, False), (29, False)):
            y = x.clone()
            y[0, j] = (y[0, j] + 1) % 4
            diff = (model(y)[0, i] - base).abs().max().item()
            assert (diff > 1e-6) == changes, (j, diff)


def test_caduceus_refuses_to_be_causal_or_half_specified():
    with pytest.raises(ValueError, match="causal"):
        MambaLM(V, dim=16, complement=COMP, causal=True)
    with pytest.raises(ValueError, match="even"):
        MambaLM(V, dim=15, complement=COMP)
    with pytest.raises(ValueError, match="complement"):
        MambaLM(V, dim=16, complement=COMP[:-1])
    with pytest.raises(ValueError, match="headdim"):
        MambaLM(V, dim=16, mixer="mamba2", headdim=12)


def test_fresh_model_predicts_uniformly_and_learns():
    """Zero-initialized output head: uniform at step 0; the MDLM loss then decreases."""
    from dnadiff.diffusion import build_objective

    torch.manual_seed(0)
    model = MambaLM(V, dim=32, layers=2, cond_dim=16, complement=COMP)
    x = torch.randint(0, 4, (8, 64))
    assert torch.equal(model(x), torch.zeros(8, 64, V))
    obj = build_objective(validate_config({"run": "t"}), TOK)
    # a learnable pattern: period-4 repeats
    x = torch.tensor([[0, 1, 2, 3] * 16] * 8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = obj.loss(model, x, torch.ones_like(x, dtype=torch.bool))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert abs(sum(losses[:3]) / 3 - torch.log(torch.tensor(4.0)).item()) < 0.1  # uniform
    assert sum(losses[-5:]) / 5 < 0.25  # nats/token; the neighbours determine each token
