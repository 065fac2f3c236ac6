"""The autoregressive sampler: it fills only masked positions left to right, greedy is argmax,
and nothing to do costs no forward pass."""

from __future__ import annotations

import torch
from generation_kit import GEN, MASK, Recording, all_masked, make_ar, randomized_dit

from dnadiff.diffusion.samplers.autoregressive import autoregressive_sample

# -- 11. the autoregressive sampler -----------------------------------------------------------

def ar_x_init():
    g = torch.Generator().manual_seed(3)
    x = all_masked(3, 20)
    x[:, :4] = torch.randint(0, 4, (3, 4), generator=g)      # prefix
    x[:, 17:] = torch.tensor([3, 0, 2])                       # fixed suffix
    x[:, 12] = torch.randint(0, 4, (3,), generator=g)         # a given column
    x[1, 10] = 1                                              # given in one row only
    return x


def test_autoregressive_sample_fills_masks_only():
    ar = make_ar()
    model = Recording(randomized_dit(seed=9, causal=True))
    x_init = ar_x_init()
    x, info = autoregressive_sample(ar, model, x_init, generator=torch.Generator().manual_seed(4))
    given = x_init != MASK
    assert torch.equal(x[given], x_init[given])
    assert not (x == MASK).any()
    assert set(x.unique().tolist()) <= set(GEN)
    cols = [i for i in range(20) if (x_init[:, i] == MASK).any()]
    assert cols == [4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16]
    assert info["forward_passes"] == len(cols) == len(model.inputs)
    # pass for column i sees BOS + the final tokens before i (left-to-right context)
    for i, inp in zip(cols, model.inputs):
        assert inp.shape == (3, i + 1)
        assert (inp[:, 0] == MASK).all()
        assert torch.equal(inp[:, 1:], x[:, :i])
    # deterministic given the seed
    x2, _ = autoregressive_sample(ar, model.inner, x_init,
                                  generator=torch.Generator().manual_seed(4))
    assert torch.equal(x, x2)
    x3, _ = autoregressive_sample(ar, model.inner, x_init,
                                  generator=torch.Generator().manual_seed(5))
    assert not torch.equal(x, x3)


def test_autoregressive_sample_greedy_is_argmax():
    ar = make_ar()
    model = randomized_dit(seed=10, causal=True)
    x_init = ar_x_init()
    x, _ = autoregressive_sample(ar, model, x_init, generator=torch.Generator().manual_seed(0),
                                 top_p=1e-6)
    with torch.no_grad():
        lp = ar.log_probs(model, ar.shift_right(x))
    todo = x_init == MASK
    assert torch.equal(x[todo], lp.argmax(-1)[todo])


def test_autoregressive_sample_nothing_to_do():
    ar = make_ar()
    x0 = torch.randint(0, 4, (2, 9))
    x, info = autoregressive_sample(ar, randomized_dit(causal=True), x0)
    assert torch.equal(x, x0) and info["forward_passes"] == 0
