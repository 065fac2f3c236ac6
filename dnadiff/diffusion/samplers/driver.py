"""The one batch driver: every caller that fills masked batches (``sample``, the conditional
model, the marginal trap, ``bench sampler``) goes through :func:`fill_batches`; lengths beyond
the model's context are filled semi-autoregressively (:func:`semi_autoregressive`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import torch


def semi_autoregressive(sample_block, x_init: torch.Tensor, window: int, stride: int
                        ) -> tuple[torch.Tensor, dict]:
    """Generate a sequence longer than the model's context in overlapping blocks.

    The first block is ``x_init[:, :window]``; each later block covers the next ``stride`` new
    positions plus the ``window - stride`` positions before them, which are already generated
    and so are kept fixed (carry-over) as context. ``sample_block(block) -> (block, info)``
    fills the mask positions of one block. The output has exactly ``x_init``'s length.
    """
    if not 0 < stride < window:
        raise ValueError(f"stride ({stride}) must be in (0, window={window})")
    x = x_init.clone()
    total = x.shape[1]
    x[:, : min(window, total)], info = sample_block(x[:, : min(window, total)])
    totals = dict(info)
    pos = min(window, total)
    while pos < total:
        new = min(stride, total - pos)
        start = pos + new - window
        x[:, start: pos + new], info = sample_block(x[:, start: pos + new])
        for key, value in info.items():
            totals[key] = totals.get(key, 0) + value
        pos += new
    return x, totals


def fill_batches(fill: Callable, n: int, batch_size: int, start: torch.Tensor, generator=None,
                 device="cpu", window: int | None = None, stride: int | None = None
                 ) -> Iterator[tuple[int, torch.Tensor, dict]]:
    """Yield ``(first index, tokens [b, L] on the CPU, info)`` for ``n`` samples in batches of
    ``batch_size``: each batch starts as copies of ``start`` (the [L] ids, the mask id where
    tokens are to be generated) and is filled by ``fill(x0, generator=generator)`` (a
    :func:`dnadiff.diffusion.samplers.block_sampler`), in blocks of ``window`` positions moving
    by ``stride`` when L is longer than ``window``."""
    fill = partial(fill, generator=generator)
    for first in range(0, n, batch_size):
        b = min(batch_size, n - first)
        x0 = start.expand(b, -1).clone().to(device)
        if window is not None and x0.shape[1] > window:
            x, info = semi_autoregressive(fill, x0, window, stride)
        else:
            x, info = fill(x0)
        yield first, x.cpu(), info
