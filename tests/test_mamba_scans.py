"""The pure-PyTorch selective scans (Mamba-1's and Mamba-2's SSD) and the linear recurrence,
checked against step-by-step references in float64 (values and gradients); the switch between
them and the CUDA kernels."""

import pytest
import torch
import torch.nn.functional as F
from mamba_kit import COMP, F64, V, _randomized

import dnadiff.models.scan as scan
from dnadiff.models.mamba import MambaLM
from dnadiff.models.scan import (
    linear_recurrence_,
    mamba_ssm_status,
    resolve_scan_impl,
    selective_scan,
    selective_scan_naive,
    ssd,
    ssd_naive,
)


def _mamba1_inputs(b=2, length=37, d=5, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, d, generator=g, dtype=F64)
    dt = F.softplus(torch.randn(b, length, d, generator=g, dtype=F64))
    A = -torch.rand(d, n, generator=g, dtype=F64) * 3
    B = torch.randn(b, length, n, generator=g, dtype=F64)
    C = torch.randn(b, length, n, generator=g, dtype=F64)
    D = torch.randn(d, generator=g, dtype=F64)
    return [t.requires_grad_() for t in (x, dt, A, B, C, D)]


def _grads(y, inputs, seed=1):
    gy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=y.dtype)
    return torch.autograd.grad(y, inputs, gy)


@pytest.mark.parametrize("length,chunk", [(37, None), (37, 4), (37, 8), (32, 8), (5, 16),
                                          (1, None)])
def test_selective_scan_matches_sequential_reference(length, chunk):
    inputs = _mamba1_inputs(length=length)
    y = selective_scan(*inputs, chunk=chunk)
    y_ref = selective_scan_naive(*inputs)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    for g, g_ref in zip(_grads(y, inputs), _grads(y_ref, inputs)):
        assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("budget,blocks", [
    (19 * 7 * 4, [(slice(0, 1), slice(None)), (slice(1, 2), slice(None)),
                  (slice(2, 3), slice(None))]),                      # one sequence per block
    (19 * 4 * 3, [(slice(i, i + 1), slice(j, min(7, j + 3))) for i in range(3)
                  for j in (0, 3, 6)]),                              # and 3 channels
    (10 ** 6, [(slice(0, 3), slice(None))]),                         # everything at once
])
def test_selective_scan_blocks_and_gradcheck(monkeypatch, budget, blocks):
    """Splitting into blocks (done to keep CPU tensors small) changes nothing."""
    inputs = _mamba1_inputs(b=3, length=19, d=7)
    y_ref = selective_scan_naive(*inputs)
    grads_ref = _grads(y_ref, inputs)
    monkeypatch.setattr(scan, "_BLOCK_ELEMENTS", budget)
    assert scan._blocks(3, 19, 7, 4) == blocks
    y = selective_scan(*inputs, chunk=4)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-12)
    for g, g_ref in zip(_grads(y, inputs), grads_ref):
        assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-10)
    small = _mamba1_inputs(b=2, length=6, d=2, n=3)
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a, chunk=4), small)


def test_selective_scan_without_D_and_in_float32():
    x, dt, A, B, C, _ = _mamba1_inputs(length=64, d=6, n=8)
    y64 = selective_scan(x, dt, A, B, C)
    assert torch.allclose(y64, selective_scan_naive(x, dt, A, B, C), atol=1e-12, rtol=0)
    y32 = selective_scan(*(t.detach().float() for t in (x, dt, A, B, C)))
    assert y32.dtype == torch.float32
    assert torch.allclose(y32.double(), y64, atol=1e-4, rtol=1e-4)


def test_scan_handles_strong_decay_without_overflow():
    """Large dt * |A| (decays that underflow to 0) must not produce inf or nan."""
    x, dt, A, B, C, D = (t.detach().float().requires_grad_() for t in _mamba1_inputs(length=64))
    y = selective_scan(x, dt * 200, A * 20, B, C, D)
    y_ref = selective_scan_naive(*(t.detach() for t in (x, dt * 200, A * 20, B, C, D)))
    assert torch.isfinite(y).all()
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)
    grads = torch.autograd.grad(y.square().sum(), (x, dt, A, B, C, D))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence(reverse):
    g = torch.Generator().manual_seed(3)
    a = torch.rand(2, 23, 3, generator=g, dtype=F64)
    b = torch.randn(2, 23, 3, generator=g, dtype=F64)
    expect = torch.zeros_like(b)
    h = torch.zeros_like(b[:, 0])
    order = range(22, -1, -1) if reverse else range(23)
    for t in order:
        h = a[:, t] * h + b[:, t]
        expect[:, t] = h
    got = linear_recurrence_(a.clone(), b.clone(), chunk=4, reverse=reverse)
    assert torch.allclose(got, expect, atol=1e-13, rtol=0)


def _ssd_inputs(b=2, length=37, h=3, p=4, n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, h, p, generator=g, dtype=F64)
    dt = F.softplus(torch.randn(b, length, h, generator=g, dtype=F64))
    A = -torch.rand(h, generator=g, dtype=F64) * 3
    B = torch.randn(b, length, n, generator=g, dtype=F64)
    C = torch.randn(b, length, n, generator=g, dtype=F64)
    D = torch.randn(h, generator=g, dtype=F64)
    return [t.requires_grad_() for t in (x, dt, A, B, C, D)]


@pytest.mark.parametrize("length,chunk", [(37, 4), (37, 8), (32, 8), (37, 64), (1, 4)])
def test_ssd_matches_sequential_reference(length, chunk):
    inputs = _ssd_inputs(length=length)
    y = ssd(*inputs, chunk=chunk)
    y_ref = ssd_naive(*inputs)
    assert torch.allclose(y, y_ref, rtol=0, atol=1e-11)
    for g, g_ref in zip(_grads(y, inputs), _grads(y_ref, inputs)):
        assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-10)


def test_ssd_strong_decay_has_finite_values_and_gradients():
    x, dt, A, B, C, D = (t.detach().float().requires_grad_() for t in _ssd_inputs(length=70))
    y = ssd(x, dt * 300, A * 20, B, C, D, chunk=16)
    y_ref = ssd_naive(*(t.detach() for t in (x, dt * 300, A * 20, B, C, D)))
    assert torch.allclose(y, y_ref, atol=1e-4, rtol=1e-4)
    grads = torch.autograd.grad(y.square().sum(), (x, dt, A, B, C))
    assert all(torch.isfinite(g).all() for g in grads)


def test_ssd_is_mamba1_with_a_shared_decay():
    """With A equal across a head's channels and states, the two scans are the same map."""
    x, dt, A, B, C, D = (t.detach() for t in _ssd_inputs(h=2, p=3))
    y = ssd(x, dt, A, B, C, D, chunk=8)
    b, length, h, p = x.shape
    dt1 = dt[..., None].expand(b, length, h, p).reshape(b, length, h * p)
    A1 = A[:, None, None].expand(h, p, B.shape[-1]).reshape(h * p, -1)
    y1 = selective_scan(x.reshape(b, length, h * p), dt1, A1, B, C, D.repeat_interleave(p))
    assert torch.allclose(y.reshape(b, length, h * p), y1, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------------------------
# scan implementation switch
# --------------------------------------------------------------------------------------------

def test_scan_impl_switch_on_this_machine():
    ok, reason = mamba_ssm_status()
    assert isinstance(reason, str) and reason
    cpu = torch.device("cpu")
    assert resolve_scan_impl("torch", cpu) == "torch"
    assert resolve_scan_impl("auto", cpu) == "torch"  # the kernels need CUDA tensors
    with pytest.raises(RuntimeError, match="scan_impl"):
        resolve_scan_impl("cuda", cpu)
    with pytest.raises(ValueError):
        resolve_scan_impl("triton", cpu)
    if not ok:  # CPU machines: the import failure is reported, not raised
        with pytest.raises(RuntimeError, match="dnadiff\\[gpu\\]"):
            resolve_scan_impl("cuda", cpu)


@pytest.mark.skipif(not (torch.cuda.is_available() and mamba_ssm_status()[0]),
                    reason="needs a CUDA GPU with mamba-ssm installed")
@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
def test_cuda_kernels_match_pure_pytorch(mixer):
    """The mamba-ssm kernels and the pure-PyTorch scans: the same outputs and gradients in
    float32, and a bf16-autocast training step that runs and agrees loosely."""
    torch.manual_seed(0)
    model = _randomized(MambaLM(V, dim=64, layers=2, cond_dim=16, mixer=mixer,
                                complement=COMP)).float().cuda()
    tokens = torch.randint(0, 4, (2, 256), device="cuda")

    def run(impl, bf16):
        for m in model.modules():
            if hasattr(m, "scan_impl"):
                m.scan_impl = impl
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            out = model(tokens).float()
        out.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return out.detach(), grads

    for bf16, tol in ((False, 1e-3), (True, 5e-2)):
        (o_t, g_t), (o_c, g_c) = run("torch", bf16), run("cuda", bf16)
        scale = o_t.abs().max().item()
        assert (o_t - o_c).abs().max().item() <= tol * scale
        assert (g_t - g_c).norm().item() <= tol * g_t.norm().item() * 10
