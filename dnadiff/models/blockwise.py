"""Block diffusion (BD3-LM, Arriola et al. 2025) on the DiT: what a position may see.

The window is cut into blocks of ``size`` positions. A noisy position of block b sees the noisy
positions of block b and the clean positions of blocks < b; a clean position of block b sees the
clean positions of blocks <= b. Training runs noisy and clean copies side by side in one pass
(:func:`attention_mask`, :func:`visible_conv`); sampling keeps the finished clean blocks as a
key/value cache (:class:`BlockContext`) and denoises one block at a time against it. Both see
exactly the same: the tests check the logits of one against the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dnadiff.models.base import rotary_inverse_frequencies


def block_index(length: int, size: int, device=None) -> torch.Tensor:
    """The block of each of ``length`` positions (the last block may be shorter)."""
    return torch.arange(length, device=device) // size


def attention_mask(length: int, size: int, device=None) -> torch.Tensor:
    """Bool [2L, 2L] (True = may attend) over the noisy copy (first L) then the clean copy."""
    b = block_index(length, size, device)
    same, earlier, upto = (b[:, None] == b[None]), (b[:, None] > b[None]), (b[:, None] >= b[None])
    top = torch.cat([same, earlier], dim=1)
    bottom = torch.cat([torch.zeros_like(same), upto], dim=1)
    return torch.cat([top, bottom], dim=0)


def visible_conv(conv, noisy: torch.Tensor, clean: torch.Tensor, size: int):
    """The DiT's depthwise embedding convolution (zero padding at the window's ends) applied to
    both copies [B, L, D] with the block visibility: a noisy position's neighbours in its own
    block are noisy, in earlier blocks clean and in later blocks zero; a clean position's
    neighbours in later blocks are zero. Each block is convolved on its own, after the clean
    positions before it and before zeros (as :class:`BlockContext` does when sampling): one
    batched convolution per copy. With one block this is the plain convolution."""
    r = conv.kernel_size[0] // 2
    B, length, D = noisy.shape
    nb = -(-length // size)
    pad_end = nb * size - length
    starts = torch.arange(nb, device=noisy.device) * size
    # the r clean positions before each block (zeros before position 0)
    tails = F.pad(clean, (0, 0, r, 0))[:, starts[:, None] + torch.arange(r, device=noisy.device)]
    zeros = noisy.new_zeros(B, nb, r, D)

    def per_block(x):
        blocks = F.pad(x, (0, 0, 0, pad_end)).view(B, nb, size, D)
        seq = torch.cat([tails, blocks, zeros], dim=2).view(B * nb, size + 2 * r, D)
        out = conv(seq.transpose(1, 2)).transpose(1, 2)  # [B * nb, size, D]
        return out.reshape(B, nb * size, D)[:, :length]

    return per_block(noisy), per_block(clean)


class BlockContext:
    """The finished clean blocks of a batch generated block by block: per DiT block their keys
    and values, and the last embeddings the convolution reaches back to. Passed to the DiT as
    ``cond``, it makes the DiT denoise the next block against them
    (``model(block, sigma, cond=context)``); :meth:`append` adds a finished block. At most
    ``keep`` positions are kept (the model's window less a block: what a block saw in
    training), so generation has no length limit; rotary embeddings are relative, and positions
    are counted in float64."""

    def __init__(self, model, batch: int, labels=None, keep: int | None = None):
        self.model, self.labels, self.keep = model, labels, keep
        w = model.embed.weight
        heads = model.blocks[0].heads
        empty = w.new_zeros(batch, heads, 0, model.head_dim)
        self.kv = [(empty, empty) for _ in model.blocks]
        r = model.conv_kernel // 2 if model.conv is not None else 0
        self.tail = w.new_zeros(batch, r, model.embed.embedding_dim)  # zeros before position 0
        self.pos = 0

    def rows(self, idx: torch.Tensor) -> BlockContext:
        """The context of batch rows ``idx`` (for samplers that evaluate some rows only)."""
        view = object.__new__(BlockContext)
        view.model, view.keep, view.pos = self.model, self.keep, self.pos
        view.labels = (self.labels[idx] if torch.is_tensor(self.labels) and self.labels.ndim
                       else self.labels)
        view.kv = [(k[idx], v[idx]) for k, v in self.kv]
        view.tail = self.tail[idx]
        return view

    def _rotary(self, n: int):
        m = self.model
        inv = rotary_inverse_frequencies(m.head_dim, dtype=torch.float64)
        pos = torch.arange(self.pos, self.pos + n, dtype=torch.float64)
        freqs = torch.outer(pos, inv).to(m.embed.weight.device)
        return freqs.cos().float(), freqs.sin().float()

    def _embed(self, tokens):
        m = self.model
        e = m.embed(tokens)
        if m.conv is None:
            return e, e
        r = self.tail.shape[1]
        x = torch.cat([self.tail, e, e.new_zeros(e.shape[0], r, e.shape[2])], dim=1)
        return e + m.conv(x.transpose(1, 2)).transpose(1, 2), e

    def _run(self, tokens, sigma):
        e, raw = self._embed(tokens)
        c = self.model.conditioning(tokens.shape[0], sigma, self.labels)
        cos, sin = self._rotary(tokens.shape[1])
        new = []
        x = e
        for blk, past in zip(self.model.blocks, self.kv):
            x, kv = blk(x, c, cos, sin, past=past)
            new.append(kv)
        return x, c, new, raw

    def hidden(self, tokens, sigma=None):
        """Hidden states and conditioning of the block ``tokens`` [b, n] (noisy: mask ids where
        not yet generated) that follows the finished blocks."""
        x, c, _, _ = self._run(tokens, sigma)
        return x, c

    @torch.no_grad()
    def append(self, tokens) -> None:
        """Add the finished (clean) block ``tokens`` [b, n] to the context: one forward pass."""
        _, _, new, raw = self._run(tokens, None)
        keep = self.keep
        self.kv = [(torch.cat([k, nk], 2), torch.cat([v, nv], 2))
                   for (k, v), (nk, nv) in zip(self.kv, new)]
        if keep is not None and self.kv[0][0].shape[2] > keep:
            self.kv = [(k[:, :, -keep:], v[:, :, -keep:]) for k, v in self.kv]
        r = self.tail.shape[1]
        if r:
            self.tail = torch.cat([self.tail, raw], dim=1)[:, -r:]
        self.pos += tokens.shape[1]
