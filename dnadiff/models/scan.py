"""Selective state-space scans: Mamba-1 (diagonal A per channel) and Mamba-2 / SSD (scalar A per
head), in pure PyTorch for CPU and as the reference, with the ``mamba-ssm`` CUDA kernels used when
they are importable and the tensors live on a GPU.

Shapes follow the sequence-first layout of the rest of ``dnadiff`` (batch, length, ...):

* Mamba-1 ``selective_scan(x, dt, A, B, C, D)``: ``x, dt`` [b, l, d]; ``A`` [d, n] (negative);
  ``B, C`` [b, l, n]; ``D`` [d]. ``h_t = exp(dt_t A) * h_{t-1} + dt_t x_t B_t`` (state [b, d, n]),
  ``y_t = h_t C_t + D x_t``.
* Mamba-2 ``ssd(x, dt, A, B, C, D)``: ``x`` [b, l, h, p]; ``dt`` [b, l, h]; ``A`` [h];
  ``B, C`` [b, l, n] (one group); ``D`` [h]. Same recurrence with a scalar decay per head.

Neither pure-PyTorch path loops over positions. The Mamba-1 scan is a custom autograd function:
the sequence is cut into ~sqrt(L) chunks, the recurrence runs inside all chunks at once (a loop
over the offset within a chunk, vectorized over chunks), then one pass carries each chunk's final
state into the next; the backward pass is the same recurrence run in reverse, so no per-position
graph is stored. Every quantity it multiplies is a decay in (0, 1]: no division, no overflow. The
SSD path is the chunked matrix form of Mamba-2 (masked decay matrices inside chunks, a recurrence
over chunk states), differentiated by autograd.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

SCAN_IMPLS = ("auto", "torch", "cuda")


@functools.cache
def mamba_ssm_status() -> tuple[bool, str]:
    """(importable, reason): whether the ``mamba-ssm`` kernels can be used in this process.

    On a CPU-only machine ``import mamba_ssm`` fails (its compiled CUDA extension is missing or
    cannot load): that is reported, not raised.
    """
    try:  # optional (CUDA hosts): imported only to see whether it works here
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined  # noqa: F401
    except Exception as exc:  # ImportError, OSError (missing libcuda), RuntimeError, ...
        return False, f"{type(exc).__name__}: {exc}".splitlines()[0]
    if not torch.cuda.is_available():
        return False, "mamba_ssm imports but no CUDA device is available"
    return True, "ok"


def resolve_scan_impl(impl: str, device: torch.device) -> str:
    """'torch' or 'cuda' for tensors on ``device``, from the config switch ``model.scan_impl``.

    ``auto`` takes the mamba-ssm kernels when they import and the tensors are on a GPU; ``cuda``
    insists on them (a clear error otherwise); ``torch`` always uses the pure-PyTorch path.
    """
    if impl not in SCAN_IMPLS:
        raise ValueError(f"scan_impl must be one of {SCAN_IMPLS}, not {impl!r}")
    if impl == "torch":
        return "torch"
    ok, reason = mamba_ssm_status()
    on_gpu = device.type == "cuda"
    if impl == "cuda":
        if not ok:
            raise RuntimeError(f"model.scan_impl is 'cuda' but the mamba-ssm kernels are not "
                               f"usable ({reason}); install dnadiff[gpu] on a CUDA machine or "
                               "set model.scan_impl: torch")
        if not on_gpu:
            raise RuntimeError("model.scan_impl is 'cuda' but the model runs on "
                               f"{device.type}; use a GPU or model.scan_impl: torch")
        return "cuda"
    return "cuda" if ok and on_gpu else "torch"


def default_chunk(length: int) -> int:
    """A power of two near sqrt(length), at least 8: balances the two loops of the scan."""
    return max(8, 2 ** round(math.log2(max(1.0, math.sqrt(length)))))


# ---------------------------------------------------------------------------------------------
# Linear recurrence h_t = a_t * h_{t-1} + b_t, chunked
# ---------------------------------------------------------------------------------------------

def linear_recurrence_(a: torch.Tensor, b: torch.Tensor, chunk: int | None = None,
                       reverse: bool = False) -> torch.Tensor:
    """Solve ``h_t = a_t h_{t-1} + b_t`` (``h_t = a_t h_{t+1} + b_t`` when ``reverse``) along
    dim 1 with a zero initial state. ``a, b``: [batch, length, *state].

    Works in place: the result is returned in ``b``'s storage and ``a`` is overwritten (with the
    running products of the decays); pass tensors you own. Not differentiable by itself:
    :func:`selective_scan` wraps it.
    """
    Bsz, L = b.shape[:2]
    T = chunk or default_chunk(L)
    n = -(-L // T)
    pad = n * T - L
    if pad:
        # padding sits after the sequence: forward it is never read; in reverse it carries a
        # zero state (b = 0) into the last real position
        a = torch.cat([a, a.new_ones((Bsz, pad) + a.shape[2:])], dim=1)
        b = torch.cat([b, b.new_zeros((Bsz, pad) + b.shape[2:])], dim=1)
    state = b.shape[2:]
    h = b.view((Bsz, n, T) + state)
    P = a.view((Bsz, n, T) + state)  # becomes the products of a from each chunk's boundary
    hs, Ps = h.unbind(2), P.unbind(2)  # views, one per offset inside a chunk
    order = range(T - 2, -1, -1) if reverse else range(1, T)
    for t in order:  # offset inside a chunk, all chunks at once
        prev = t + 1 if reverse else t - 1
        hs[t].addcmul_(Ps[t], hs[prev])  # Ps[t] still holds a_t here
        Ps[t].mul_(Ps[prev])
    hc, Pc = h.unbind(1), P.unbind(1)  # views, one per chunk
    if reverse:
        for c in range(n - 2, -1, -1):  # carry the state at chunk c+1's start into chunk c
            hc[c].addcmul_(Pc[c], hc[c + 1][:, :1])
    else:
        for c in range(1, n):
            hc[c].addcmul_(Pc[c], hc[c - 1][:, T - 1:])
    h = h.view((Bsz, n * T) + state)
    return h[:, :L] if pad else h


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


# Work on blocks of [b', l, d', n] below this many elements: on CPU each fresh tensor above
# glibc's mmap threshold (32 MB) pays page faults on every use (an allocation of a
# [16, 1024, 128, 16] float tensor costs 4x an in-place multiply over it), while small blocks are
# recycled from the heap and stay in cache. Blocks split the batch first (whole channels keep the
# state contiguous), then the channels.
_BLOCK_ELEMENTS = 2 ** 21


def _blocks(b, l, d, n):
    """[(batch slice, channel slice)] covering [b, l, d, n] in blocks of <= _BLOCK_ELEMENTS."""
    per_item = l * d * n
    if per_item <= _BLOCK_ELEMENTS:
        step = max(1, _BLOCK_ELEMENTS // per_item)
        return [(slice(i, min(b, i + step)), slice(None)) for i in range(0, b, step)]
    step = max(1, _BLOCK_ELEMENTS // (l * n))
    return [(slice(i, i + 1), slice(j, min(d, j + step))) for i in range(b)
            for j in range(0, d, step)]


def _contract_n(h, v):
    """sum_n h[b, l, d, n] v[b, l, n] as a batched matrix-vector product (einsum picks a slower
    plan for this on CPU)."""
    b, l, d, n = h.shape
    return torch.bmm(h.reshape(b * l, d, n), v.reshape(b * l, n, 1)).view(b, l, d)


def _contract_d(h, v):
    """sum_d h[b, l, d, n] v[b, l, d]."""
    b, l, d, n = h.shape
    return torch.bmm(v.reshape(b * l, 1, d), h.reshape(b * l, d, n)).view(b, l, n)


class _SelectiveScan(torch.autograd.Function):
    """Forward keeps only the inputs; backward recomputes the states block by block (as the
    mamba-ssm kernel does), so memory stays O(b l d) instead of O(b l d n)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C, D, chunk):
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtype = _compute_dtype(x)
            x_, dt_, A_, B_, C_ = (t.to(dtype).contiguous() for t in (x, dt, A, B, C))
            dtx = dt_ * x_
            y = torch.empty_like(x_)
            for bs, cs in _blocks(*x_.shape, A_.shape[-1]):
                a = torch.mul(dt_[bs, :, cs, None], A_[cs]).exp_()          # [b', l, d', n]
                h = linear_recurrence_(a, dtx[bs, :, cs, None] * B_[bs, :, None, :], chunk)
                y[bs, :, cs] = _contract_n(h, C_[bs])
            if D is not None:
                y += x_ * D.to(dtype)
        ctx.save_for_backward(x, dt, A, B, C, D)
        ctx.chunk = chunk
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, dt, A, B, C, D = ctx.saved_tensors
        chunk = ctx.chunk
        with torch.autocast(device_type=x.device.type, enabled=False):
            dtype = _compute_dtype(x)
            x_, dt_, A_, B_, C_ = (t.to(dtype).contiguous() for t in (x, dt, A, B, C))
            dy = dy.to(dtype).contiguous()
            dtx = dt_ * x_
            dx, ddt = torch.empty_like(x_), torch.empty_like(x_)
            dA = torch.zeros_like(A_)
            dB, dC = torch.zeros_like(B_), torch.zeros_like(C_)
            for bs, cs in _blocks(*x_.shape, A_.shape[-1]):
                dt_b, A_b, B_b, C_b = dt_[bs, :, cs, None], A_[cs], B_[bs], C_[bs]
                dtx_b, dy_b = dtx[bs, :, cs], dy[bs, :, cs]
                b = dtx_b[..., None] * B_b[:, :, None, :]
                a = torch.mul(dt_b, A_b).exp_()
                # g_t = dL/dh_t = C_t dy_t + a_{t+1} g_{t+1}: the same recurrence, backwards
                a_next = torch.empty_like(a)
                a_next[:, :-1] = a[:, 1:]
                a_next[:, -1] = 0
                h = linear_recurrence_(a, b.clone(), chunk)                # recompute the states
                del a
                g = linear_recurrence_(a_next, dy_b[..., None] * C_b[:, :, None, :], chunk,
                                       reverse=True)
                del a_next
                dC[bs] += _contract_d(h, dy_b)
                gB = _contract_n(g, B_b)                                 # sum_n g B
                dB[bs] += _contract_d(g, dtx_b)
                # dL/d(log a_t) = g_t * a_t * h_{t-1} = g_t * (h_t - b_t)
                q = g.mul_(h.sub_(b))
                del b, h
                dA[cs] += (q * dt_b).sum((0, 1))
                ddt[bs, :, cs] = (q * A_b).sum(-1) + x_[bs, :, cs] * gB
                dx[bs, :, cs] = dt_b[..., 0] * gB
            dD = None
            if D is not None:
                dx += dy * D.to(dtype)
                dD = (dy * x_).sum(dim=(0, 1)).to(D.dtype)
        return (dx.to(x.dtype), ddt.to(dt.dtype), dA.to(A.dtype), dB.to(B.dtype),
                dC.to(C.dtype), dD, None)


def selective_scan(x, dt, A, B, C, D=None, dt_bias=None, impl: str = "torch",
                   chunk: int | None = None):
    """Mamba-1 selective scan (shapes in the module docstring).

    With ``dt_bias`` ([d]), ``dt`` is the raw projection and the step is
    ``softplus(dt + dt_bias)``, computed in float32 (as the mamba-ssm kernel does, which is given
    the raw ``dt`` in the input's dtype); without it ``dt`` is the (positive) step itself.
    """
    if impl == "cuda":  # the optional mamba-ssm kernels, importable only on CUDA hosts
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

        # the kernel wants u, delta, B, C in one dtype (bf16 under autocast), A/D/bias in fp32
        dtype = x.dtype
        y = selective_scan_fn(x.transpose(1, 2).contiguous(),
                              dt.to(dtype).transpose(1, 2).contiguous(), A.float(),
                              B.to(dtype).transpose(1, 2).contiguous(),
                              C.to(dtype).transpose(1, 2).contiguous(),
                              None if D is None else D.float(),
                              delta_bias=None if dt_bias is None else dt_bias.float(),
                              delta_softplus=dt_bias is not None)
        return y.transpose(1, 2)
    if dt_bias is not None:
        with torch.autocast(device_type=x.device.type, enabled=False):
            dt = F.softplus(dt.float() + dt_bias.float()).to(_compute_dtype(x))
    return _SelectiveScan.apply(x, dt, A, B, C, D, chunk)


def selective_scan_naive(x, dt, A, B, C, D=None):
    """Step-by-step reference (a Python loop over positions; tests only)."""
    Bsz, L, d = x.shape
    h = x.new_zeros(Bsz, d, A.shape[1])
    ys = []
    for t in range(L):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[..., None] * B[:, t, None]
        ys.append((h * C[:, t, None]).sum(-1))
    y = torch.stack(ys, dim=1)
    return y + x * D if D is not None else y


# ---------------------------------------------------------------------------------------------
# Mamba-2 / SSD
# ---------------------------------------------------------------------------------------------

def _masked_decay(cum_from: torch.Tensor, cum_to: torch.Tensor, mask: torch.Tensor):
    """exp(cum_to[..., i] - cum_from[..., j]) where ``mask[i, j]``, else 0 (no overflow)."""
    diff = cum_to[..., :, None] - cum_from[..., None, :]
    return torch.exp(diff.masked_fill(~mask, float("-inf")))


def ssd(x, dt, A, B, C, D=None, impl: str = "torch", chunk: int = 64):
    """Mamba-2 state-space duality scan (shapes in the module docstring)."""
    if impl == "cuda":
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        return mamba_chunk_scan_combined(x.contiguous(), dt.contiguous(), A.float(),
                                         B[:, :, None].contiguous(), C[:, :, None].contiguous(),
                                         chunk_size=chunk, D=None if D is None else D.float())
    with torch.autocast(device_type=x.device.type, enabled=False):
        dtype = _compute_dtype(x)
        out_dtype = x.dtype
        x, dt, A, B, C = (t.to(dtype) for t in (x, dt, A, B, C))
        Bsz, L, H, P = x.shape
        T = min(chunk, L)
        n = -(-L // T)
        pad = n * T - L
        xs = x
        if pad:  # dt = 0 on padding: decay 1, no input: the real positions are untouched
            x = F.pad(x, (0, 0, 0, 0, 0, pad))
            dt, B, C = F.pad(dt, (0, 0, 0, pad)), F.pad(B, (0, 0, 0, pad)), F.pad(C, (0, 0, 0, pad))
        X = (x * dt[..., None]).reshape(Bsz, n, T, H, P)
        Bc, Cc = B.reshape(Bsz, n, T, -1), C.reshape(Bsz, n, T, -1)
        Acum = torch.cumsum((dt * A).reshape(Bsz, n, T, H).permute(0, 3, 1, 2), dim=-1)  # b h c t
        tri = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        Lmat = _masked_decay(Acum, Acum, tri)                                   # b h c t s
        scores = torch.einsum("bctn,bcsn->bcts", Cc, Bc)
        y = torch.einsum("bcts,bhcts,bcshp->bcthp", scores, Lmat, X)
        # each chunk's final state, then the state entering each chunk
        to_end = torch.exp(Acum[..., -1:] - Acum)                               # b h c t
        states = torch.einsum("bcsn,bhcs,bcshp->bchpn", Bc, to_end, X)
        tot = torch.cumsum(Acum[..., -1], dim=-1)                               # b h c
        strict = torch.ones(n, n, dtype=torch.bool, device=x.device).tril(-1)
        carry = _masked_decay(tot, tot - Acum[..., -1], strict)                 # b h c c'
        entering = torch.einsum("bhzc,bchpn->bzhpn", carry, states)
        y = y + torch.einsum("bctn,bchpn,bhct->bcthp", Cc, entering, torch.exp(Acum))
        y = y.reshape(Bsz, n * T, H, P)[:, :L]
        if D is not None:
            y = y + xs * D.to(dtype)[:, None]
        return y.to(out_dtype)


def ssd_naive(x, dt, A, B, C, D=None):
    """Step-by-step reference for :func:`ssd` (tests only)."""
    Bsz, L, H, P = x.shape
    h = x.new_zeros(Bsz, H, P, B.shape[-1])
    ys = []
    for t in range(L):
        decay = torch.exp(dt[:, t] * A)[..., None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        ys.append((h * C[:, t, None, None, :]).sum(-1))
    y = torch.stack(ys, dim=1)
    return y + x * D[:, None] if D is not None else y
