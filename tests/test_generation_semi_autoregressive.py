"""Semi-autoregressive generation in blocks: block spans, strides, and forward-pass counts with
MDLM and AR blocks."""

from __future__ import annotations

import functools

import pytest
import torch
from generation_kit import GEN, MASK, all_masked, make_ar, make_mdlm, randomized_dit

from dnadiff.diffusion.samplers.ancestral import ancestral_sample
from dnadiff.diffusion.samplers.autoregressive import autoregressive_sample
from dnadiff.diffusion.samplers.driver import semi_autoregressive

# -- 10. semi-autoregressive blocks -----------------------------------------------------------

class BlockRecorder:
    def __init__(self, sampler):
        self.sampler = sampler
        self.calls = []

    def __call__(self, block):
        inp = block.clone()
        out, info = self.sampler(block)
        self.calls.append((inp, out.clone(), info))
        return out, info


def expected_blocks(total, window, stride):
    spans = [(0, min(window, total))]
    pos = spans[0][1]
    while pos < total:
        new = min(stride, total - pos)
        spans.append((pos + new - window, pos + new))
        pos += new
    return spans


def test_semi_autoregressive_blocks():
    m = make_mdlm()
    model = randomized_dit(seed=6)
    total, window, stride = 50, 16, 6
    g = torch.Generator().manual_seed(0)
    x_init = all_masked(2, total)
    prefix = torch.randint(0, 4, (2, 5), generator=g)
    x_init[:, :5] = prefix
    rec = BlockRecorder(functools.partial(ancestral_sample, m, model, steps=8, generator=g))
    x, info = semi_autoregressive(rec, x_init, window, stride)
    assert x.shape == (2, total)
    assert set(x.unique().tolist()) <= set(GEN)
    assert torch.equal(x[:, :5], prefix)
    assert info["forward_passes"] == sum(c[2]["forward_passes"] for c in rec.calls)
    spans = expected_blocks(total, window, stride)
    assert spans == [(0, 16), (6, 22), (12, 28), (18, 34), (24, 40), (30, 46), (34, 50)]
    assert len(rec.calls) == len(spans)
    assert torch.equal(rec.calls[0][0], x_init[:, :window])
    prev_end = window
    for (s, e), (inp, out, _) in zip(spans, rec.calls):
        assert inp.shape == out.shape == (2, window)
        # every block keeps its final content: later blocks never touch it again
        assert torch.equal(x[:, s:e], out)
        assert not (out == MASK).any()
        if s > 0:
            overlap = prev_end - s
            assert overlap == window - (e - prev_end) >= window - stride
            # the overlap is the previous blocks' output, fully generated and kept unchanged
            assert not (inp[:, :overlap] == MASK).any()
            assert torch.equal(out[:, :overlap], inp[:, :overlap])
            assert (inp[:, overlap:] == MASK).all()
        prev_end = e


def test_semi_autoregressive_single_block_and_bad_stride():
    m = make_mdlm()
    model = randomized_dit(seed=7)
    x_init = all_masked(2, 12)
    block = functools.partial(ancestral_sample, m, model, steps=6)
    a, ia = semi_autoregressive(functools.partial(block, generator=torch.Generator()
                                                  .manual_seed(1)), x_init, 16, 4)
    b, ib = block(x_init, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and ia == ib
    for bad in (16, 17, 0):
        with pytest.raises(ValueError, match="stride"):
            semi_autoregressive(block, all_masked(1, 50), 16, bad)


def test_semi_autoregressive_with_ar_blocks_counts_passes():
    ar = make_ar()
    model = randomized_dit(seed=8, causal=True)
    x_init = all_masked(2, 40)
    x_init[:, :3] = torch.tensor([0, 1, 2])
    x_init[:, -2:] = torch.tensor([3, 3])
    block = functools.partial(autoregressive_sample, ar, model,
                              generator=torch.Generator().manual_seed(0))
    x, info = semi_autoregressive(block, x_init, 16, 8)
    assert torch.equal(x[:, :3], x_init[:, :3]) and torch.equal(x[:, -2:], x_init[:, -2:])
    assert set(x.unique().tolist()) <= set(GEN)
    # AR with the KV cache: one (one-position) pass per position of each block up to its last
    # masked column: 16 for the first block, then 16 per block of 8 new, the last block's two
    # given columns not decoded
    assert info["forward_passes"] == 16 + 16 + 16 + 16 - 2
    # without the cache: one (whole-prefix) pass per masked column, each generated once
    block = functools.partial(autoregressive_sample, ar, model, cache=False,
                              generator=torch.Generator().manual_seed(0))
    y, info = semi_autoregressive(block, x_init, 16, 8)
    assert torch.equal(x, y) and info["forward_passes"] == 40 - 3 - 2
