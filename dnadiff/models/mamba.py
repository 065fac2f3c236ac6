"""Bidirectional Mamba and Caduceus (reverse-complement equivariant) denoisers.

``MambaLM`` is the backbone for ``model.backbone: mamba`` and ``caduceus``:

* Each block is pre-norm and residual, ``x + gate * mixer(modulate(norm(x), shift, scale))``, with
  adaLN-Zero modulation from the conditioning vector (the diffusion time when
  ``time_conditioning`` is on, a learned constant otherwise, plus any class embedding), as in the
  DiT. There is no MLP (Caduceus has none).
* The mixer is bidirectional (Caduceus' BiMamba): the input projection is computed once, a
  forward scan and a scan of the flipped sequence run with their own convolution, dt/B/C
  projections, A and D, and their gated outputs are added before the shared output projection.
  ``causal`` (the AR baseline) keeps only the forward scan.
* Mixers: ``mamba1`` (selective scan, diagonal A per channel, as in Caduceus) or ``mamba2``
  (SSD, scalar A per head, gated RMSNorm), both from :mod:`dnadiff.models.scan`.

Caduceus' parameter sharing (``rc_equivariant``): the hidden width ``dim`` is split into a
forward half and a reverse-complement half of ``dim / 2`` channels. The RC half at position i holds
the features the *same* blocks compute for the reverse complement of the input at position
L-1-i, so the blocks run on the sequence and on its reverse complement (stacked along the batch),
and the LM head ties the halves through the complement map:

    logits[i, v] = W_v . f(x)[i] + W_comp(v) . f(RC x)[L-1-i] + b_v + b_comp(v)

which gives ``model(RC(x)) == RC(model(x))`` by construction: the two terms swap places, so the
only differences are floating-point rounding where a multi-threaded kernel treats the two batch
halves differently (none with one thread; ~1e-6 relative in float32 with two). The
conditioning vector is the same for both strands, so adaLN keeps the equivariance.

The post-hoc alternative for a non-equivariant backbone (Caduceus-Ph: average over both strands
at inference) is :meth:`dnadiff.models.base.Backbone.set_rc_conjoin`, shared with the DiT.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dnadiff.models.base import DEFAULTS, Backbone, complement_tensor, modulate
from dnadiff.models.registry import caduceus_problem, mixer_problem
from dnadiff.models.scan import default_chunk, resolve_scan_impl, selective_scan, ssd

MIXERS = ("mamba1", "mamba2")


def _dt_bias(n: int, dt_min: float = 1e-3, dt_max: float = 0.1) -> torch.Tensor:
    """Mamba's initialization: softplus(bias) log-uniform in [dt_min, dt_max]."""
    dt = torch.exp(torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=1e-4)
    return dt + torch.log(-torch.expm1(-dt))  # inverse of softplus


def _conv(x: torch.Tensor, conv: nn.Conv1d) -> torch.Tensor:
    """Causal depthwise convolution over [b, l, c] (left padding)."""
    k = conv.kernel_size[0]
    return conv(F.pad(x.transpose(1, 2), (k - 1, 0))).transpose(1, 2)


class _Mamba1Direction(nn.Module):
    """The per-direction part of a Mamba-1 mixer: conv, dt/B/C projections, A, D."""

    def __init__(self, d_inner, d_state, d_conv):
        super().__init__()
        self.d_state = d_state
        self.dt_rank = math.ceil(d_inner / 16)
        self.conv = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)
        self.x_proj = nn.Linear(d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, d_inner)
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        with torch.no_grad():
            self.dt_proj.bias.copy_(_dt_bias(d_inner))
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(d_inner))

    def forward(self, x, z, impl):
        x = F.silu(_conv(x, self.conv))
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight)  # the bias and softplus are applied in fp32
        y = selective_scan(x, dt, -torch.exp(self.A_log), B, C, self.D,
                           dt_bias=self.dt_proj.bias, impl=impl, chunk=default_chunk(x.shape[1]))
        return y * F.silu(z)


class _Mamba2Direction(nn.Module):
    """The per-direction part of a Mamba-2 mixer: conv over (x, B, C), dt bias, A, D, norm."""

    def __init__(self, d_inner, d_state, d_conv, headdim):
        super().__init__()
        self.d_inner, self.d_state, self.headdim = d_inner, d_state, headdim
        self.heads = d_inner // headdim
        self.conv = nn.Conv1d(d_inner + 2 * d_state, d_inner + 2 * d_state, d_conv,
                              groups=d_inner + 2 * d_state)
        self.dt_bias = nn.Parameter(_dt_bias(self.heads))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.heads).uniform_(1, 16)))
        self.D = nn.Parameter(torch.ones(self.heads))
        self.norm = nn.RMSNorm(d_inner, eps=1e-5)

    def forward(self, xbc, z, dt, impl):
        xbc = F.silu(_conv(xbc, self.conv))
        x, B, C = xbc.split([self.d_inner, self.d_state, self.d_state], dim=-1)
        b, l, _ = x.shape
        dt = F.softplus(dt + self.dt_bias)
        A = -torch.exp(self.A_log)
        y = ssd(x.reshape(b, l, self.heads, self.headdim), dt, A, B, C, self.D, impl=impl)
        return self.norm(y.reshape(b, l, self.d_inner) * F.silu(z))


class BiMambaMixer(nn.Module):
    """In/out projections shared by a forward and (unless causal) a reverse scan."""

    def __init__(self, dim, mixer=DEFAULTS["mixer"], d_state=DEFAULTS["d_state"],
                 expand=DEFAULTS["expand"], d_conv=DEFAULTS["d_conv"],
                 headdim=DEFAULTS["headdim"], causal=False, scan_impl=DEFAULTS["scan_impl"]):
        super().__init__()
        if mixer not in MIXERS:
            raise ValueError(f"mixer must be one of {MIXERS}, not {mixer!r}")
        problem = mixer_problem(dim, mixer, expand, headdim)
        if problem:
            raise ValueError(problem)
        self.mixer, self.causal, self.scan_impl = mixer, causal, scan_impl
        self.d_inner = d_inner = expand * dim
        if mixer == "mamba1":
            self.in_proj = nn.Linear(dim, 2 * d_inner, bias=False)
            make = lambda: _Mamba1Direction(d_inner, d_state, d_conv)  # noqa: E731
        else:
            self.heads = d_inner // headdim
            self.d_state = d_state
            self.in_proj = nn.Linear(dim, 2 * d_inner + 2 * d_state + self.heads, bias=False)
            make = lambda: _Mamba2Direction(d_inner, d_state, d_conv, headdim)  # noqa: E731
        self.fwd = make()
        self.rev = None if causal else make()
        self.out_proj = nn.Linear(d_inner, dim, bias=False)

    def _run(self, direction, proj, impl):
        if self.mixer == "mamba1":
            x, z = proj.chunk(2, dim=-1)
            return direction(x, z, impl)
        z, xbc, dt = proj.split([self.d_inner, self.d_inner + 2 * self.d_state, self.heads],
                                dim=-1)
        return direction(xbc, z, dt, impl)

    def forward(self, u):
        impl = resolve_scan_impl(self.scan_impl, u.device)
        proj = self.in_proj(u)
        y = self._run(self.fwd, proj, impl)
        if self.rev is not None:
            y = y + self._run(self.rev, proj.flip(1), impl).flip(1)
        return self.out_proj(y)


class MambaBlock(nn.Module):
    """A bidirectional Mamba mixer with adaLN modulation and a gated residual."""

    def __init__(self, dim, cond_dim, dropout, **mixer_kw):
        super().__init__()
        self.dropout = dropout
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.mixer = BiMambaMixer(dim, **mixer_kw)
        self.ada = nn.Linear(cond_dim, 3 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x, c):
        shift, scale, gate = self.ada(c).chunk(3, dim=-1)
        h = self.mixer(modulate(self.norm(x), shift, scale))
        return x + gate[:, None, :] * F.dropout(h, self.dropout, self.training)


class MambaLM(Backbone):
    """Bidirectional Mamba denoiser; Caduceus (RC-equivariant) when ``complement`` is given."""

    def __init__(self, vocab_size, dim=DEFAULTS["dim"], layers=DEFAULTS["layers"],
                 cond_dim=DEFAULTS["cond_dim"], dropout=DEFAULTS["dropout"],
                 time_conditioning=False, causal=False, mixer=DEFAULTS["mixer"],
                 d_state=DEFAULTS["d_state"], expand=DEFAULTS["expand"],
                 d_conv=DEFAULTS["d_conv"], headdim=DEFAULTS["headdim"],
                 scan_impl=DEFAULTS["scan_impl"], complement=None, num_classes=None):
        super().__init__()
        self.rc_equivariant = complement is not None
        if self.rc_equivariant:
            problem = caduceus_problem(dim, causal)
            if problem:
                raise ValueError(problem)
            self.register_buffer("complement", complement_tensor(complement, vocab_size),
                                 persistent=False)
        width = dim // 2 if self.rc_equivariant else dim
        self.causal = causal
        self._init_embedding(vocab_size, width)
        self._init_conditioning(cond_dim, time_conditioning, num_classes)
        mixer_kw = {"mixer": mixer, "d_state": d_state, "expand": expand, "d_conv": d_conv,
                        "headdim": headdim, "causal": causal, "scan_impl": scan_impl}
        self.blocks = nn.ModuleList(MambaBlock(width, cond_dim, dropout, **mixer_kw)
                                    for _ in range(layers))
        self._init_output(width, cond_dim, vocab_size)

    @classmethod
    def from_config(cls, m: dict, vocab_size: int, causal: bool = False, complement=None):
        """Mamba of a validated ``model`` config section; Caduceus with ``complement``."""
        return cls(vocab_size=vocab_size, dim=m["dim"], layers=m["layers"],
                   cond_dim=m["cond_dim"], dropout=m["dropout"],
                   time_conditioning=m["time_conditioning"] and not causal, causal=causal,
                   mixer=m["mixer"], d_state=m["d_state"], expand=m["expand"],
                   d_conv=m["d_conv"], headdim=m["headdim"], scan_impl=m["scan_impl"],
                   complement=complement, num_classes=m["num_classes"])

    def _run(self, tokens, sigma=None, cond=None):
        """Hidden states and conditioning; for caduceus both strands stacked on the batch."""
        B = tokens.shape[0]
        c = self.conditioning(B, sigma, cond)
        if self.rc_equivariant:  # both strands through the same blocks, stacked on the batch
            tokens = torch.cat([tokens, self.complement[tokens].flip(1)], dim=0)
            c = torch.cat([c, c], dim=0)
        x = self.embed(tokens)
        for blk in self.blocks:
            x = blk(x, c)
        return x, c

    def hidden(self, tokens, sigma=None, cond=None):
        x, c = self._run(tokens, sigma, cond)
        if self.rc_equivariant:  # [B, L, dim]: the forward strand, then the RC strand mapped back
            B = tokens.shape[0]
            return torch.cat([x[:B], x[B:].flip(1)], dim=-1), c[:B]
        return x, c

    def logits(self, tokens, sigma=None, cond=None):
        """Logits [B, L, vocab]; Caduceus adds the RC strand's, complemented and flipped back."""
        B = tokens.shape[0]
        x, c = self._run(tokens, sigma, cond)
        logits = self.output(x, c)
        if self.rc_equivariant:
            fwd, rc = logits[:B], logits[B:]
            logits = fwd + rc.flip(1)[..., self.complement]
        return logits

    def features(self, tokens, sigma=None, cond=None):
        """Downstream embeddings; Caduceus concatenates the two strands' normed hidden states."""
        if not self.rc_equivariant:
            return super().features(tokens, sigma, cond)
        B = tokens.shape[0]
        x, _ = self._run(tokens, sigma, cond)
        x = self.final_norm(x)  # per strand (dim/2 channels each)
        return torch.cat([x[:B], x[B:].flip(1)], dim=-1)
