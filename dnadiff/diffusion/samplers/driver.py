"""The one batch driver: every caller that fills masked batches (``sample``, the conditional
model, the marginal trap, ``bench sampler``) goes through :func:`fill_batches`; lengths beyond
the model's context are filled semi-autoregressively (:func:`semi_autoregressive`), and a block
diffusion model fills its blocks left to right against a cache of the finished ones
(:class:`BlockwiseFill`, which :func:`dnadiff.diffusion.samplers.block_sampler` returns for it)."""

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


class BlockwiseFill:
    """``fill(x_init, generator=None) -> (tokens, info)`` for a block diffusion model: the
    blocks of ``size`` positions are filled left to right, each by ``inner(block,
    generator=..., cond=context)`` (any MDLM sampler, inside the block) against a
    ``BlockContext`` of the finished ones (``model.block_context``, class labels ``labels``;
    at most ``window - size`` positions kept: what a block saw in training), to which each
    block is then added (one more forward pass, counted). Any length: ``any_length``."""

    any_length = True

    def __init__(self, inner: Callable, model, size: int, window: int | None, labels=None):
        self.inner, self.model, self.size, self.labels = inner, model, size, labels
        self.keep = None if window is None else max(window - size, 0)

    def __call__(self, x_init: torch.Tensor, generator=None) -> tuple[torch.Tensor, dict]:
        x, size, total = x_init.clone(), self.size, x_init.shape[1]
        context = self.model.block_context(x.shape[0], self.labels, self.keep)
        totals = {"forward_passes": 0, "row_evaluations": 0}
        for start in range(0, total, size):
            block, info = self.inner(x[:, start: start + size], generator=generator,
                                     cond=context)
            x[:, start: start + size] = block
            for key, value in info.items():
                totals[key] = totals.get(key, 0) + value
            if start + size < total:
                context.append(block)
                totals["forward_passes"] += 1
                totals["row_evaluations"] += block.shape[0]
        return x, totals


def fill_batches(fill: Callable, n: int, batch_size: int, start: torch.Tensor, generator=None,
                 device="cpu", window: int | None = None, stride: int | None = None
                 ) -> Iterator[tuple[int, torch.Tensor, dict]]:
    """Yield ``(first index, tokens [b, L] on the CPU, info)`` for ``n`` samples in batches of
    ``batch_size``: each batch starts as copies of ``start`` (the [L] ids, the mask id where
    tokens are to be generated) and is filled by ``fill(x0, generator=generator)`` (a
    :func:`dnadiff.diffusion.samplers.block_sampler`), in blocks of ``window`` positions moving
    by ``stride`` when L is longer than ``window`` (a :class:`BlockwiseFill` takes any length
    itself)."""
    fill = partial(fill, generator=generator)
    for first in range(0, n, batch_size):
        b = min(batch_size, n - first)
        x0 = start.expand(b, -1).clone().to(device)
        if window is not None and x0.shape[1] > window and not getattr(fill, "any_length", False):
            x, info = semi_autoregressive(fill, x0, window, stride)
        else:
            x, info = fill(x0)
        yield first, x.cpu(), info
