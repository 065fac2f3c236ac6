"""Diffusion Transformer (DiT) denoiser.

Non-causal transformer encoder (causal for the AR baseline) with rotary position embeddings
(base 10,000), an optional depthwise convolution over the token embeddings (``conv_kernel``;
0 = the reference DiT) and one inside every block, beside its attention (``layer_conv``: on the
block's normalized input, added to the attention's output under the same gate), adaLN-Zero
modulation from a conditioning vector (the diffusion time when ``time_conditioning`` is on,
else a learned constant), GELU MLP, ``scaled_dot_product_attention`` (flash kernels on GPU),
and a zero-initialized output head so that initial predictions are uniform.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnadiff.models.base import DEFAULTS, Backbone, modulate, rotary_inverse_frequencies
from dnadiff.models.blockwise import BlockContext, attention_mask, visible_conv
from dnadiff.models.registry import dit_problem


def rotary_tables(length: int, head_dim: int, device, base: float = 10_000.0):
    """cos and sin tables of rotary position embeddings for ``length`` positions."""
    inv_freq = rotary_inverse_frequencies(head_dim, device, base=base)
    pos = torch.arange(length, device=device).float()
    freqs = torch.outer(pos, inv_freq)  # [L, head_dim/2]
    return freqs.cos(), freqs.sin()


def apply_rotary(x, cos, sin):
    """x: [B, H, L, D]; rotate pairs (x1, x2) of the two halves of the head dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class DiTBlock(nn.Module):
    """Attention and MLP, each with adaLN-Zero modulation and a gated residual."""

    def __init__(self, dim, heads, mlp_ratio, cond_dim, dropout, causal=False, gate_init=0.0,
                 layer_conv=0):
        super().__init__()
        self.heads, self.causal, self.dropout = heads, causal, dropout
        self.layer_conv = layer_conv
        self.conv = nn.Conv1d(dim, dim, layer_conv, groups=dim) if layer_conv else None
        if self.conv is not None:
            nn.init.zeros_(self.conv.bias)
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False)
        hidden = int(mlp_ratio * dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(),
                                 nn.Linear(hidden, dim))
        self.ada = nn.Linear(cond_dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)
        with torch.no_grad():  # the two gates (chunks 2 and 5 of shift, scale, gate x 2)
            self.ada.bias[2 * dim: 3 * dim] = gate_init
            self.ada.bias[5 * dim:] = gate_init

    def forward(self, x, c, cos, sin, mask=None, past=None):
        """``x`` [B, L, D] -> [B, L, D]. ``mask``: which keys each query may attend to (bool
        [L, L'], True = visible; None: all, or causal for a causal block). ``past``: keys and
        values [B, H, P, D/H] of earlier positions, attended to by every query before the
        queries' own. With ``past`` given the output is ``(x, (k, v))``: this call's keys and
        values, for a cache."""
        B, L, D = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1)
        q, k, v = self.qkv(h).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        keys, values = k, v
        if past is not None:
            keys, values = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        a = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask,
                                           is_causal=self.causal and mask is None and past is None,
                                           dropout_p=self.dropout if self.training else 0.0)
        a = self.proj(a.transpose(1, 2).reshape(B, L, D))
        if self.conv is not None:  # the block's convolution beside its attention
            if past is not None or mask is not None:
                raise ValueError("a DiT with 'model.layer_conv' runs whole windows only (no "
                                 "block diffusion)")
            k = self.layer_conv
            pad = (k - 1, 0) if self.causal else (k // 2, k // 2)
            a = a + self.conv(F.pad(h.transpose(1, 2), pad)).transpose(1, 2)
        x = x + g1[:, None, :] * F.dropout(a, self.dropout, self.training)
        h = modulate(self.norm2(x), sh2, sc2)
        x = x + g2[:, None, :] * F.dropout(self.mlp(h), self.dropout, self.training)
        return x if past is None else (x, (k, v))

    def keys_values(self, x, c, cos, sin):
        """The keys and values [B, H, L, D/H] this block's attention takes from ``x``."""
        B, L, D = x.shape
        sh1, sc1 = self.ada(c).chunk(6, dim=-1)[:2]
        h = modulate(self.norm1(x), sh1, sc1)
        _, k, v = self.qkv(h).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        return apply_rotary(k, cos, sin), v

    def step(self, x, c, cos, sin, cache: dict):
        """One new position ``x`` [B, 1, D] of a causal block, attending to the keys and values
        of the positions before it (``cache``, extended in place)."""
        B, _, D = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = self.ada(c).chunk(6, dim=-1)
        h = modulate(self.norm1(x), sh1, sc1)
        q, k, v = self.qkv(h).view(B, 1, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        cache["k"] = k if "k" not in cache else torch.cat([cache["k"], k], dim=2)
        cache["v"] = v if "v" not in cache else torch.cat([cache["v"], v], dim=2)
        a = F.scaled_dot_product_attention(q, cache["k"], cache["v"])
        a = self.proj(a.transpose(1, 2).reshape(B, 1, D))
        if self.conv is not None:  # the causal convolution over the last layer_conv inputs
            window = torch.cat([cache.get("h", h.new_zeros(B, self.layer_conv - 1, D)), h], 1)
            cache["h"] = window[:, 1:]
            a = a + self.conv(window.transpose(1, 2)).transpose(1, 2)
        x = x + g1[:, None, :] * a
        h = modulate(self.norm2(x), sh2, sc2)
        return x + g2[:, None, :] * self.mlp(h)


class KVDecoder:
    """Left-to-right decoding of a causal DiT one position at a time: the keys and values of
    every block and the last ``conv_kernel`` embeddings are kept, so each step costs one
    position (the same logits as the full forward pass, up to rounding)."""

    def __init__(self, model: DiT, batch: int, cond=None):
        self.model, self.pos = model, 0
        self.c = model.conditioning(batch, None, cond)
        self.caches = [{} for _ in model.blocks]
        k = model.conv_kernel
        self.window = (model.embed.weight.new_zeros(batch, k, model.embed.embedding_dim)
                       if model.conv is not None else None)
        self.inv_freq = rotary_inverse_frequencies(model.head_dim, model.embed.weight.device)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, V] of the next position, given its input token ``tokens`` [B, 1]."""
        m = self.model
        x = m.embed(tokens)
        if self.window is not None:  # the causal convolution over the last k embeddings
            self.window = torch.cat([self.window[:, 1:], x], dim=1)
            x = x + m.conv(self.window.transpose(1, 2)).transpose(1, 2)
        freqs = self.pos * self.inv_freq
        cos, sin = freqs.cos()[None], freqs.sin()[None]
        for blk, cache in zip(m.blocks, self.caches):
            x = blk.step(x, self.c, cos, sin, cache)
        self.pos += 1
        return m.output(x, self.c)[:, 0]


class DiT(Backbone):
    """The DiT denoiser (see the module docstring); ``from_config`` builds it from a config's
    model section."""

    def __init__(self, vocab_size, dim=DEFAULTS["dim"], layers=DEFAULTS["layers"],
                 heads=DEFAULTS["heads"], mlp_ratio=DEFAULTS["mlp_ratio"],
                 cond_dim=DEFAULTS["cond_dim"], dropout=DEFAULTS["dropout"],
                 time_conditioning=False, causal=False, conv_kernel=DEFAULTS["conv_kernel"],
                 num_classes=None, gate_init=DEFAULTS["gate_init"],
                 layer_conv=DEFAULTS["layer_conv"]):
        super().__init__()
        problem = dit_problem(dim, heads, conv_kernel, layer_conv)
        if problem:
            raise ValueError(problem)
        self.causal, self.conv_kernel = causal, conv_kernel
        self._init_embedding(vocab_size, dim)
        # Optional depthwise convolution over the embeddings: local context from the first step
        # (attention starts uniform over the whole window). Left-padded when causal.
        self.conv = nn.Conv1d(dim, dim, conv_kernel, groups=dim) if conv_kernel else None
        if self.conv is not None:
            # Zero bias: PyTorch's default (std ~0.2) would swamp the token embeddings (std 0.02)
            # with one vector at every position (ARCHITECTURE.md, "Design decisions").
            nn.init.zeros_(self.conv.bias)
        self._init_conditioning(cond_dim, time_conditioning, num_classes)
        self.blocks = nn.ModuleList(
            DiTBlock(dim, heads, mlp_ratio, cond_dim, dropout, causal, gate_init, layer_conv)
            for _ in range(layers))
        self.head_dim = dim // heads
        self._init_output(dim, cond_dim, vocab_size)

    @classmethod
    def from_config(cls, m: dict, vocab_size: int, causal: bool = False, complement=None):
        """The DiT of a validated ``model`` config section (time conditioning never for a
        causal model)."""
        return cls(vocab_size=vocab_size, dim=m["dim"], layers=m["layers"], heads=m["heads"],
                   mlp_ratio=m["mlp_ratio"], cond_dim=m["cond_dim"], dropout=m["dropout"],
                   time_conditioning=m["time_conditioning"] and not causal, causal=causal,
                   conv_kernel=m["conv_kernel"], num_classes=m["num_classes"],
                   gate_init=m["gate_init"], layer_conv=m["layer_conv"])

    def decoder(self, batch: int, cond=None) -> KVDecoder:
        """Incremental (KV-cached) decoding of this causal DiT, for left-to-right sampling."""
        if not self.causal:
            raise ValueError("incremental decoding needs a causal DiT (the AR objective)")
        return KVDecoder(self, batch, cond)

    @property
    def local_reach(self) -> int:
        """Positions on each side (the left only when causal) that reach a prediction through
        the convolutions alone: the embedding convolution's plus every block's. Farther tokens
        reach it only through attention (the influence probe marks those distances)."""
        widths = [self.conv_kernel] + [block.layer_conv for block in self.blocks]
        return sum(max(k - 1, 0) if self.causal else k // 2 for k in widths)

    def training_flops(self, length: int, batch: int = 1, block_size: int | None = None) -> int:
        """Matmul FLOPs of one training step (forward + backward = 3 x forward) on ``batch``
        sequences of ``length``: per layer qkv, output projection and MLP
        (2 L D (4D + 2 hidden)), attention scores and values (4 L^2 D) and the adaLN
        modulation (2 cond 6D per sequence); the final adaLN and the output head. Equals what
        ``torch.utils.flop_counter`` counts (tested). With ``block_size`` (block diffusion):
        every block but the last runs on the 2L positions of the noisy and clean copies; the
        last runs the clean copy's keys and values and the noisy copy's L queries over 2L
        keys."""
        dim, vocab = self.embed.embedding_dim, self.vocab_size
        cond = self.blocks[0].ada.in_features
        hidden = self.blocks[0].mlp[0].out_features
        ada = 2 * cond * 6 * dim

        def layer(n: int) -> int:
            return 2 * n * (4 * dim * dim + 2 * dim * hidden) + 4 * n**2 * dim + ada

        if block_size is None:
            layers = len(self.blocks) * layer(length)
        else:
            last = (2 * length * 3 * dim * dim + ada  # the clean copy's keys and values
                    + 2 * length * (4 * dim * dim + 2 * dim * hidden) + 8 * length**2 * dim
                    + ada)
            layers = (len(self.blocks) - 1) * layer(2 * length) + last
        forward = layers + 2 * cond * 2 * dim + 2 * length * dim * vocab
        return 3 * forward * batch

    def block_context(self, batch: int, labels=None, keep: int | None = None) -> BlockContext:
        """An empty context for block-by-block generation (block diffusion): pass it as
        ``cond`` to denoise a block against the finished ones, ``append`` each finished block."""
        if self.causal:
            raise ValueError("block diffusion needs a non-causal DiT (the MDLM objective)")
        return BlockContext(self, batch, labels, keep)

    def block_hidden(self, noisy, clean, size: int, sigma=None, cond=None):
        """Hidden states of the noisy copy [B, L] under block diffusion with blocks of
        ``size``: one pass over noisy and clean copies side by side, each position seeing what
        :mod:`dnadiff.models.blockwise` allows (attention and convolution alike)."""
        B, L = noisy.shape
        e_n, e_c = self.embed(noisy), self.embed(clean)
        if self.conv is not None:
            c_n, c_c = visible_conv(self.conv, e_n, e_c, size)
            e_n, e_c = e_n + c_n, e_c + c_c
        x = torch.cat([e_n, e_c], dim=1)
        c = self.conditioning(B, sigma, cond)
        cos, sin = rotary_tables(L, self.head_dim, noisy.device)
        cos, sin = torch.cat([cos, cos]), torch.cat([sin, sin])
        mask = attention_mask(L, size, noisy.device)
        for blk in self.blocks[:-1]:
            x = blk(x, c, cos, sin, mask=mask)
        # the last block: only the noisy copy's outputs are used, so only its queries run,
        # against the clean copy's keys and values (first) and its own
        last = self.blocks[-1]
        past = last.keys_values(x[:, L:], c, cos[L:], sin[L:])
        rows = mask[:L]
        x, _ = last(x[:, :L], c, cos[:L], sin[:L], mask=torch.cat([rows[:, L:], rows[:, :L]], 1),
                    past=past)
        return x, c

    def hidden(self, tokens, sigma=None, cond=None):
        if isinstance(cond, BlockContext):  # a block after the finished ones (block diffusion)
            return cond.hidden(tokens, sigma)
        B, L = tokens.shape
        x = self.embed(tokens)
        if self.conv is not None:
            k = self.conv_kernel
            pad = (k - 1, 0) if self.causal else (k // 2, k // 2)
            x = x + self.conv(F.pad(x.transpose(1, 2), pad)).transpose(1, 2)
        c = self.conditioning(B, sigma, cond)
        cos, sin = rotary_tables(L, self.head_dim, tokens.device)
        for blk in self.blocks:
            x = blk(x, c, cos, sin)
        return x, c
