"""Temperature and nucleus (top-p) filtering in ``sampling_probs``."""

from __future__ import annotations

import pytest
import torch
from generation_kit import V

from dnadiff.diffusion.samplers.common import sampling_probs

# -- 8. temperature and nucleus (top-p) -------------------------------------------------------

def test_sampling_probs_zero_ids_stay_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, V, generator=g, dtype=torch.float64) * 3
    logits[:, 4:] = float("-inf")          # mask / N / pad: zero mass (SUBS)
    logits[::3, 1] = float("-inf")         # and some generable ids in some rows
    logp = torch.log_softmax(logits, -1)
    zero = torch.isneginf(logp)
    for temperature in (0.05, 0.5, 1.0, 2.0, 50.0):
        for top_p in (1e-6, 0.3, 0.9, 0.999, 1.0):
            p = sampling_probs(logp, temperature, top_p)
            assert p.dtype == torch.float64 and p.shape == logp.shape
            assert not torch.isnan(p).any()
            assert (p[zero] == 0).all(), (temperature, top_p)
            torch.testing.assert_close(p.sum(-1), torch.ones(50, dtype=torch.float64))
    # float32 input: float64 output
    assert sampling_probs(logp.float()).dtype == torch.float64


@pytest.mark.parametrize("temperature", [0.25, 0.7, 1.0, 1.5, 4.0])
def test_sampling_probs_temperature(temperature):
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0, 0.0, 0.0],
                      [0.7, 0.05, 0.05, 0.2, 0.0, 0.0, 0.0]], dtype=torch.float64)
    logp = torch.log(p)
    got = sampling_probs(logp, temperature=temperature)
    q = p ** (1.0 / temperature)
    torch.testing.assert_close(got, q / q.sum(-1, keepdim=True), rtol=1e-12, atol=1e-15)


def test_sampling_probs_top_p():
    logp = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1, 0.0, 0.0, 0.0], dtype=torch.float64))
    # tiny top_p: only the argmax
    torch.testing.assert_close(sampling_probs(logp, top_p=1e-6),
                               torch.tensor([1.0, 0, 0, 0, 0, 0, 0], dtype=torch.float64))
    # 0.5: the two most probable (0.4 < 0.5 <= 0.7), renormalized
    torch.testing.assert_close(sampling_probs(logp, top_p=0.5),
                               torch.tensor([4 / 7, 3 / 7, 0, 0, 0, 0, 0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)
    # 0.75: three tokens
    torch.testing.assert_close(sampling_probs(logp, top_p=0.75),
                               torch.tensor([4 / 9, 3 / 9, 2 / 9, 0, 0, 0, 0],
                                            dtype=torch.float64), rtol=1e-12, atol=1e-15)
    # not sorted in id order: the argmax is kept wherever it is
    lp2 = torch.log(torch.tensor([0.1, 0.2, 0.0, 0.7], dtype=torch.float64))
    torch.testing.assert_close(sampling_probs(lp2, top_p=1e-6),
                               torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
    # top_p = 1 changes nothing
    torch.testing.assert_close(sampling_probs(logp, top_p=1.0), logp.exp(),
                               rtol=1e-12, atol=1e-15)


def test_sampling_probs_temperature_then_top_p():
    logp = torch.log(torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64))
    # temperature 0.5 -> p^2/Z = [16, 9, 4, 1]/30; top_p 0.6: 16/30 < 0.6 <= 25/30
    torch.testing.assert_close(sampling_probs(logp, temperature=0.5, top_p=0.6),
                               torch.tensor([16 / 25, 9 / 25, 0, 0], dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)
