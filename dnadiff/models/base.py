"""What every denoiser shares: token embedding, the adaLN conditioning vector, the
zero-initialized adaLN output head, and ``forward`` (logits, optionally RC-conjoined at
inference)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnadiff.schema import defaults

#: the schema's defaults of the model section: constructors take theirs from here
DEFAULTS = defaults("model")


def rotary_inverse_frequencies(head_dim: int, device=None, dtype=torch.float32,
                               base: float = 10_000.0) -> torch.Tensor:
    """The rotary embeddings' inverse frequencies base^(-2i / head_dim), i < head_dim / 2."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, device=device, dtype=dtype) / head_dim))


def modulate(x, shift, scale):
    """adaLN: ``x * (1 + scale) + shift``, per sequence."""
    return x * (1 + scale[:, None, :]) + shift[:, None, :]


class TimestepEmbedding(nn.Module):
    """Sinusoidal embedding of a scalar (sigma) followed by an MLP."""

    def __init__(self, cond_dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, cond_dim), nn.SiLU(),
                                 nn.Linear(cond_dim, cond_dim))

    def forward(self, s):
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=s.device) / half)
        args = s.to(self.mlp[0].weight.dtype)[:, None] * freqs[None]
        return self.mlp(torch.cat([args.cos(), args.sin()], dim=-1))


def complement_tensor(complement, vocab_size: int) -> torch.Tensor:
    """The complement map as a tensor, checked: one id per token, its own inverse."""
    comp = torch.as_tensor(complement, dtype=torch.long)
    if comp.shape != (vocab_size,) or not torch.equal(comp[comp], torch.arange(vocab_size)):
        raise ValueError(f"a complement map must give one id for each of the {vocab_size} "
                         "tokens and be its own inverse")
    return comp


class Backbone(nn.Module):
    """Subclasses implement ``logits(tokens, sigma, cond)``.

    Post-hoc reverse-complement conjoining (Caduceus-Ph), switched on with
    :meth:`set_rc_conjoin`: in eval mode the output is the mean of ``f(x)`` and
    ``RC(f(RC(x)))``, which is strand-symmetric; training sees ``f`` alone. The map is a
    non-persistent buffer, so the weights (and checkpoints) are the same with or without it and
    conjoining can be switched on for a model trained without it.
    """

    #: model(RC(x)) == RC(model(x)) by construction (caduceus sets it; see models/mamba.py)
    rc_equivariant = False

    def __init__(self):
        super().__init__()
        self.register_buffer("rc_conjoin", None, persistent=False)

    @property
    def feature_width(self) -> int:
        """Width of :meth:`features`: the final-norm width, or twice it for a
        reverse-complement-equivariant backbone (both strands' halves side by side)."""
        width = self.final_norm.normalized_shape[0]
        return 2 * width if self.rc_equivariant else width

    def set_rc_conjoin(self, complement, vocab_size: int) -> None:
        """Switch reverse-complement conjoining on (a complement map) or off (``None``)."""
        comp = None if complement is None else complement_tensor(complement, vocab_size)
        self.register_buffer("rc_conjoin", comp, persistent=False)

    # Subclasses call these in this order from __init__ (blocks between the last two).
    def _init_embedding(self, vocab_size: int, width: int) -> None:
        self.vocab_size = vocab_size
        self.embed = nn.Embedding(vocab_size, width)
        nn.init.normal_(self.embed.weight, std=0.02)

    def _init_conditioning(self, cond_dim: int, time_conditioning: bool,
                           num_classes: int | None = None) -> None:
        self.time_conditioning = time_conditioning
        if time_conditioning:
            self.t_embed = TimestepEmbedding(cond_dim)
        else:
            self.const_cond = nn.Parameter(torch.zeros(cond_dim))
        # Class labels: ids 0..num_classes-1 and the null label num_classes (classifier-free
        # guidance). Small random init, as in DiT: a zero table could never learn from the label
        # (ARCHITECTURE.md, "Design decisions"); while adaLN is zero it changes no output.
        self.num_classes = num_classes
        if num_classes:
            self.class_embed = nn.Embedding(num_classes + 1, cond_dim)
            nn.init.normal_(self.class_embed.weight, std=0.02)

    def _init_output(self, width: int, cond_dim: int, vocab_size: int) -> None:
        """adaLN-modulated final norm and head, zero-initialized: uniform predictions at first."""
        self.final_norm = nn.LayerNorm(width, elementwise_affine=False)
        self.final_ada = nn.Linear(cond_dim, 2 * width)
        self.head = nn.Linear(width, vocab_size)
        for lin in (self.final_ada, self.head):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def conditioning(self, batch: int, sigma=None, cond=None):
        """The adaLN input: SiLU(time embedding of sigma, or a learned constant, + class vector).

        ``cond`` is either a float vector [B, cond_dim] added as is, or integer class labels [B]
        (``num_classes`` = the null label) looked up in the class table.
        """
        if self.time_conditioning:
            if sigma is None:
                raise ValueError(f"this {type(self).__name__} was built with time_conditioning: "
                                 "pass sigma")
            c = self.t_embed(sigma)
        else:
            c = self.const_cond.expand(batch, -1)
        if cond is not None:
            if not cond.is_floating_point():
                if not self.num_classes:
                    raise ValueError(f"this {type(self).__name__} has no class labels")
                cond = self.class_embed(cond)
            c = c + cond
        return F.silu(c)

    def output(self, x, c):
        """Logits from hidden states ``x``: the adaLN-modulated final norm, then the head."""
        shift, scale = self.final_ada(c).chunk(2, dim=-1)
        return self.head(modulate(self.final_norm(x), shift, scale))

    def hidden(self, tokens, sigma=None, cond=None):
        """Per-position hidden states [B, L, width] after the last block, and the adaLN
        conditioning vector ``c``."""
        raise NotImplementedError

    def block_hidden(self, noisy, clean, size: int, sigma=None, cond=None):
        """Hidden states of ``noisy`` under block diffusion (blocks of ``size``, the clean
        copy as the earlier blocks' context); backbones that offer it override this."""
        raise NotImplementedError(f"{type(self).__name__} has no block diffusion (DiT only)")

    def block_logits(self, noisy, clean, size: int, sigma=None, cond=None):
        """Logits [B, L, vocab] of the noisy copy under block diffusion (training and the
        held-out NELBO; no RC conjoining: the blocks run left to right)."""
        return self.output(*self.block_hidden(noisy, clean, size, sigma, cond))

    def logits(self, tokens, sigma=None, cond=None):
        """Logits [B, L, vocab] (without RC conjoining; ``forward`` adds it in eval mode)."""
        x, c = self.hidden(tokens, sigma, cond)
        return self.output(x, c)

    def features(self, tokens, sigma=None, cond=None):
        """Embeddings for downstream tasks: the final-norm hidden states [B, L, width].

        With RC conjoining switched on (eval mode) the features of the sequence and of its
        reverse complement (positions mapped back) are averaged.
        """
        x, _ = self.hidden(tokens, sigma, cond)
        out = self.final_norm(x)
        comp = self.rc_conjoin
        if comp is None or self.training:
            return out
        rc, _ = self.hidden(comp[tokens].flip(1), sigma, cond)
        return 0.5 * (out + self.final_norm(rc).flip(1))

    def forward(self, tokens, sigma=None, cond=None):
        out = self.logits(tokens, sigma, cond)
        comp = self.rc_conjoin
        if comp is None or self.training:
            return out
        rc = self.logits(comp[tokens].flip(1), sigma, cond)
        return 0.5 * (out + rc.flip(1)[..., comp])
