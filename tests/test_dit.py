"""The DiT denoiser: shapes, zero-initialized head, bidirectional attention, rotary embedding."""

from __future__ import annotations

import re

import pytest
import torch

from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT, apply_rotary, rotary_tables

V = 7


def tiny(**kw):
    torch.manual_seed(0)
    args = {"vocab_size": V, "dim": 16, "layers": 2, "heads": 2, "cond_dim": 16}
    args.update(kw)
    return DiT(**args).eval()


def randomize(model, std=0.3, seed=0):
    """Give every parameter (incl. the zero-initialized adaLN gates and head) random values so
    that outputs depend on the whole input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def test_output_shape_and_dtype():
    model = tiny()
    x = torch.randint(0, V, (3, 37))
    out = model(x)
    assert out.shape == (3, 37, V)
    assert out.dtype == torch.float32


def test_zero_head_gives_exactly_zero_logits():
    model = tiny()
    x = torch.randint(0, V, (2, 50))
    out = model(x)
    assert (out == 0).all()
    probs = torch.softmax(out, -1)
    assert torch.equal(probs, torch.full_like(probs, 1.0 / V))
    # also with time conditioning
    mt = tiny(time_conditioning=True)
    assert (mt(x, sigma=torch.tensor([0.1, 2.0])) == 0).all()


def test_head_perturbation_makes_output_input_dependent():
    model = tiny()
    with torch.no_grad():
        torch.nn.init.normal_(model.head.weight, std=1.0)
    x = torch.randint(0, 4, (1, 20))
    y = x.clone()
    y[0, 5] = (x[0, 5] + 1) % 4
    assert not torch.equal(model(x), model(y))


@pytest.mark.parametrize("j", [0, 10, 19])
def test_bidirectional(j):
    model = randomize(tiny())
    x = torch.randint(0, 4, (1, 20), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, j] = (x[0, j] + 2) % 4
    diff = (model(x) - model(y)).abs().amax(-1)[0]  # [L]
    changed = diff > 1e-6
    assert changed[j]
    others = torch.cat([changed[:j], changed[j + 1:]])
    assert others.all(), "every other position (before and after j) must see the change"
    if 0 < j < 19:
        assert changed[:j].any() and changed[j + 1:].any()


def test_causal_variant_only_looks_back():
    """Sanity check of the probe above: with causal attention, earlier positions don't change."""
    model = randomize(tiny(causal=True))
    x = torch.randint(0, 4, (1, 20), generator=torch.Generator().manual_seed(1))
    y = x.clone()
    y[0, 10] = (x[0, 10] + 2) % 4
    diff = (model(x) - model(y)).abs().amax(-1)[0]
    assert (diff[:10] == 0).all()
    assert (diff[10:] > 1e-6).all()


def test_batch_items_are_independent():
    model = randomize(tiny())
    x = torch.randint(0, 4, (3, 16), generator=torch.Generator().manual_seed(2))
    full = model(x)
    for b in range(3):
        torch.testing.assert_close(model(x[b:b + 1])[0], full[b], rtol=1e-5, atol=1e-5)


def test_time_conditioning_requires_sigma_and_uses_it():
    model = randomize(tiny(time_conditioning=True))
    x = torch.randint(0, 4, (2, 12))
    with pytest.raises(ValueError, match="sigma"):
        model(x)
    a = model(x, sigma=torch.tensor([0.1, 0.1]))
    b = model(x, sigma=torch.tensor([3.0, 3.0]))
    assert not torch.allclose(a, b)
    # without time conditioning sigma is ignored
    plain = randomize(tiny())
    torch.testing.assert_close(plain(x, sigma=torch.tensor([0.1, 0.1])),
                               plain(x, sigma=torch.tensor([3.0, 3.0])))


def test_cond_vector_is_used():
    model = randomize(tiny())
    x = torch.randint(0, 4, (2, 12))
    c = torch.randn(2, 16)
    assert not torch.allclose(model(x), model(x, cond=c))


def test_rotary_preserves_norms():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 50, 8, generator=g)
    cos, sin = rotary_tables(50, 8, "cpu")
    assert cos.shape == (50, 4) and sin.shape == (50, 4)
    y = apply_rotary(x, cos, sin)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1), rtol=1e-5, atol=1e-5)
    # position 0 is the identity rotation
    torch.testing.assert_close(y[:, :, 0], x[:, :, 0])
    # and positions > 0 do rotate
    assert not torch.allclose(y[:, :, 1:], x[:, :, 1:])


def test_rotary_scores_depend_on_relative_position_only():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(8, generator=g)
    k = torch.randn(8, generator=g)
    L = 40
    cos, sin = rotary_tables(L, 8, "cpu")
    Q = apply_rotary(q.expand(1, 1, L, 8), cos, sin)[0, 0]
    K = apply_rotary(k.expand(1, 1, L, 8), cos, sin)[0, 0]
    scores = Q @ K.T  # scores[m, n] = <R_m q, R_n k>
    for offset in (0, 3, -5):
        diag = torch.diagonal(scores, offset)
        torch.testing.assert_close(diag, diag[0].expand_as(diag), rtol=1e-4, atol=1e-4)


def test_rotary_base_10000():
    cos, sin = rotary_tables(3, 4, "cpu")
    # inv_freq = 1 / 10000^(2i/d) for i = 0, 1 with d = 4: [1, 0.01]
    torch.testing.assert_close(cos[2], torch.cos(torch.tensor([2.0, 0.02])))
    torch.testing.assert_close(sin[1], torch.sin(torch.tensor([1.0, 0.01])))


def test_build_backbone_from_config():
    from dnadiff.config import validate_config

    cfg = validate_config({"run": "t", "data": {"window": 32},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 8}})
    model = build_backbone(cfg["model"], V)
    assert isinstance(model, DiT)
    assert len(model.blocks) == 1 and model.head.out_features == V
    assert model(torch.zeros(1, 32, dtype=torch.long)).shape == (1, 32, V)
    with pytest.raises(ValueError):
        build_backbone({**cfg["model"], "backbone": "hyena"}, V)
    with pytest.raises(ValueError, match="complement map"):
        build_backbone({**cfg["model"], "backbone": "caduceus"}, V)


def test_odd_head_dim_not_silently_wrong():
    """Rotary embedding rotates pairs, so it needs an even per-head dimension: dim=24, heads=8
    (head_dim 3) is refused rather than silently computing attention on vectors of the wrong
    size."""
    with pytest.raises(ValueError, match="even head width"):
        DiT(7, dim=24, heads=8)
    DiT(7, dim=24, heads=6)  # head_dim 4 is fine
    for bad, key in (({"heads": 0}, "model.heads' (0)"), ({"dim": 0}, "model.dim' (0)")):
        with pytest.raises(ValueError, match=re.escape(key + " must be at least 1")):
            DiT(7, **{"dim": 24, "heads": 6, **bad})


def test_conv_mixes_neighbours_at_initialisation():
    """With conv_kernel=k, position i sees tokens within k//2 from the first step; the causal
    (AR) variant only tokens at or before i: a change at j reaches j..j+k-1."""
    torch.manual_seed(0)
    for causal in (False, True):
        m = DiT(7, dim=16, layers=1, heads=2, cond_dim=16, conv_kernel=5, causal=causal)
        torch.nn.init.normal_(m.head.weight)  # make outputs depend on the hidden state
        torch.nn.init.normal_(m.final_ada.bias)
        for p in m.blocks.parameters():
            torch.nn.init.zeros_(p)  # attention/MLP off: only the convolution mixes positions
        x = torch.randint(0, 4, (1, 20))
        y = x.clone()
        y[0, 10] = (x[0, 10] + 1) % 4
        diff = (m(x) - m(y)).abs().sum(-1)[0] > 1e-6
        changed = set(torch.nonzero(diff).flatten().tolist())
        assert changed == (set(range(10, 15)) if causal else set(range(8, 13)))


def test_layer_conv_reaches_further_in_each_block():
    """With layer_conv = k in every block (attention and MLP off), a change at position j
    reaches the embedding convolution's k_e // 2 plus k // 2 per block on each side; only later
    positions (j .. j + reach) when causal."""
    torch.manual_seed(0)
    for causal in (False, True):
        m = DiT(7, dim=16, layers=2, heads=2, cond_dim=16, conv_kernel=5, layer_conv=3,
                causal=causal)
        torch.nn.init.normal_(m.head.weight)
        torch.nn.init.normal_(m.final_ada.bias)
        for blk in m.blocks:
            for p in blk.parameters():
                torch.nn.init.zeros_(p)  # attention and MLP off
            torch.nn.init.normal_(blk.conv.weight)
            torch.nn.init.constant_(blk.ada.bias[32:48], 1.0)  # open the attention gate
        x = torch.randint(0, 4, (1, 30))
        y = x.clone()
        y[0, 15] = (x[0, 15] + 1) % 4
        diff = (m(x) - m(y)).abs().sum(-1)[0] > 1e-6
        changed = set(torch.nonzero(diff).flatten().tolist())
        reach = 5 // 2 + 2 * (3 // 2) if not causal else 4 + 2 * 2  # 4 and 8
        assert m.local_reach == reach
        assert changed == (set(range(15, 15 + reach + 1)) if causal
                           else set(range(15 - reach, 15 + reach + 1)))


def test_local_reach_without_convolutions_is_zero():
    """A DiT without convolutions reaches nothing without attention; the embedding
    convolution alone reaches k // 2 (k - 1 to the left when causal)."""
    assert DiT(7, dim=16, heads=2, conv_kernel=0).local_reach == 0
    assert DiT(7, dim=16, heads=2, conv_kernel=0, causal=True).local_reach == 0
    assert DiT(7, dim=16, layers=3, heads=2, conv_kernel=9).local_reach == 4
    assert DiT(7, dim=16, layers=3, heads=2, conv_kernel=9, causal=True).local_reach == 8
    assert DiT(7, dim=16, layers=2, heads=2, conv_kernel=65, layer_conv=33).local_reach == 64


def test_layer_conv_must_be_odd_and_runs_whole_windows_only():
    with pytest.raises(ValueError, match="'model.layer_conv' \\(4\\) must be odd"):
        DiT(7, dim=16, heads=2, layer_conv=4)
    m = DiT(7, dim=16, heads=2, cond_dim=16, layer_conv=3)
    with pytest.raises(ValueError, match="whole windows only"):
        m.block_logits(torch.zeros(1, 8, dtype=torch.long), torch.zeros(1, 8, dtype=torch.long),
                       4)


def test_conv_kernel_must_be_odd():
    with pytest.raises(ValueError, match="must be odd"):
        DiT(7, dim=16, heads=2, conv_kernel=4)


def test_gate_init_opens_the_residual_branches():
    """gate_init 0 (adaLN-Zero): a fresh block is the identity; 1: both branches add to it."""
    import torch

    from dnadiff.models.dit import DiT

    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    for gate, identity in ((0.0, True), (1.0, False)):
        blk = DiT(7, dim=16, layers=1, heads=2, cond_dim=8, gate_init=gate).blocks[0]
        cos, sin = torch.ones(5, 4), torch.zeros(5, 4)
        out = blk(x, torch.zeros(2, 8), cos, sin)
        assert torch.equal(out, x) == identity
        gates = blk.ada.bias.view(6, 16)[[2, 5]]
        assert torch.all(gates == gate)
