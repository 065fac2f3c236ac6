"""Mamba / Caduceus backbones and the pure-PyTorch selective scans.

The scans are checked against step-by-step references in float64 (values and gradients); the
Caduceus backbone against exact reverse-complement equivariance with every weight randomized
(zero-initialized heads would make any model trivially equivariant).
"""

import pytest
import torch
import torch.nn.functional as F

import dnadiff.models.scan as scan
from dnadiff.config import validate_config
from dnadiff.errors import DnadiffError
from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT
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
from dnadiff.tokenizers import DNATokenizer

TOK = DNATokenizer()
COMP = TOK.complement.tolist()
V = len(TOK.tokens)
F64 = torch.float64


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


# --------------------------------------------------------------------------------------------
# backbones
# --------------------------------------------------------------------------------------------

def _randomized(model, seed=0):
    """Every parameter random (the adaLN and output heads start at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        for m in model.modules():
            if hasattr(m, "A_log"):
                m.A_log.copy_(torch.rand(m.A_log.shape, generator=g) * 2)
    return model.double()


def _rc(tokens):
    return torch.as_tensor(COMP)[tokens].flip(1)


def _rc_logits(logits):
    return logits.flip(1)[..., COMP]


def _tokens(b=3, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, 4, (b, length), generator=g)
    t[:, 5] = TOK.mask_id
    t[0, 7:12] = TOK.mask_id
    t[-1, 20] = TOK.token_to_id["N"]
    return t


@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
@pytest.mark.parametrize("conditioning", ["none", "time", "time+class"])
def test_caduceus_is_exactly_rc_equivariant(mixer, conditioning):
    model = _randomized(MambaLM(V, dim=32, layers=2, cond_dim=12, mixer=mixer, headdim=8,
                                time_conditioning=conditioning != "none", complement=COMP))
    x = _tokens()
    kw = {}
    if conditioning != "none":
        kw["sigma"] = torch.tensor([0.1, 1.0, 3.0], dtype=F64)
    if conditioning == "time+class":
        kw["cond"] = torch.randn(3, 12, dtype=F64)
    with torch.no_grad():
        out, out_rc = model(x, **kw), model(_rc(x), **kw)
    assert out.abs().max() > 1  # not trivially zero
    assert torch.allclose(out_rc, _rc_logits(out), rtol=0, atol=1e-12)
    model.float()
    kw = {k: v.float() for k, v in kw.items()}
    with torch.no_grad():
        out, out_rc = model(x, **kw), model(_rc(x), **kw)
    # float32: equal up to rounding (bitwise with one thread, as conftest sets; with more
    # threads the two strands' batch halves can round differently, ~1e-6 relative)
    assert (out_rc - _rc_logits(out)).abs().max().item() < 1e-5 * max(1.0, out.abs().max())


@pytest.mark.parametrize("make", [lambda: MambaLM(V, dim=16, layers=2, cond_dim=8),
                                  lambda: DiT(V, dim=16, layers=2, heads=2, cond_dim=8,
                                              conv_kernel=3)])
def test_plain_models_are_not_equivariant_but_conjoined_ones_are(make):
    model = _randomized(make())
    x = _tokens()
    with torch.no_grad():
        plain, plain_rc = model(x), model(_rc(x))
    assert (plain_rc - _rc_logits(plain)).abs().max().item() > 1e-2  # the test can fail
    state = {k: v.clone() for k, v in model.state_dict().items()}
    model.set_rc_conjoin(COMP, V)
    assert model.state_dict().keys() == state.keys()  # same weights, same checkpoints
    model.eval()
    with torch.no_grad():
        out, out_rc = model(x), model(_rc(x))
    assert torch.allclose(out_rc, _rc_logits(out), rtol=0, atol=1e-12)
    assert torch.allclose(out, 0.5 * (plain + _rc_logits(plain_rc)), rtol=0, atol=1e-12)
    model.train()  # training sees the plain model
    with torch.no_grad():
        assert torch.equal(model(x), plain)
    model.set_rc_conjoin(None, V)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), plain)
    with pytest.raises(ValueError, match="own inverse"):
        model.set_rc_conjoin([0, 1, 2, 3, 4, 5, 5], V)


@pytest.mark.parametrize("backbone", ["mamba", "caduceus"])
@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
def test_bidirectional_context(backbone, mixer):
    """The output at position i changes when a token to its left or to its right changes."""
    model = _randomized(MambaLM(V, dim=16, layers=2, cond_dim=8, mixer=mixer, headdim=8,
                                complement=COMP if backbone == "caduceus" else None))
    x = _tokens(b=1, length=30)
    i = 15
    with torch.no_grad():
        base = model(x)[0, i]
        for j in (3, 14, 16, 27):
            y = x.clone()
            y[0, j] = (y[0, j] + 1) % 4
            assert (model(y)[0, i] - base).abs().max() > 1e-6, j


@pytest.mark.parametrize("mixer", ["mamba1", "mamba2"])
def test_causal_mamba_sees_only_the_past(mixer):
    model = _randomized(MambaLM(V, dim=16, layers=2, cond_dim=8, mixer=mixer, headdim=8,
                                causal=True))
    assert model.blocks[0].mixer.rev is None
    x = _tokens(b=1, length=30)
    i = 15
    with torch.no_grad():
        base = model(x)[0, i]
        for j, changes in ((3, True), (15, True), (16, False), (29, False)):
            y = x.clone()
            y[0, j] = (y[0, j] + 1) % 4
            diff = (model(y)[0, i] - base).abs().max().item()
            assert (diff > 1e-6) == changes, (j, diff)


def test_caduceus_refuses_to_be_causal_or_half_specified():
    with pytest.raises(ValueError, match="causal"):
        MambaLM(V, dim=16, complement=COMP, causal=True)
    with pytest.raises(ValueError, match="even"):
        MambaLM(V, dim=15, complement=COMP)
    with pytest.raises(ValueError, match="complement"):
        MambaLM(V, dim=16, complement=COMP[:-1])
    with pytest.raises(ValueError, match="headdim"):
        MambaLM(V, dim=16, mixer="mamba2", headdim=12)


def test_fresh_model_predicts_uniformly_and_learns():
    """Zero-initialized output head: uniform at step 0; the MDLM loss then decreases."""
    from dnadiff.diffusion import build_objective

    torch.manual_seed(0)
    model = MambaLM(V, dim=32, layers=2, cond_dim=16, complement=COMP)
    x = torch.randint(0, 4, (8, 64))
    assert torch.equal(model(x), torch.zeros(8, 64, V))
    obj = build_objective(validate_config({"run": "t"}), TOK.to_dict())
    # a learnable pattern: period-4 repeats
    x = torch.tensor([[0, 1, 2, 3] * 16] * 8)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(80):
        loss = obj.loss(model, x, torch.ones_like(x, dtype=torch.bool))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert abs(sum(losses[:3]) / 3 - torch.log(torch.tensor(4.0)).item()) < 0.1  # uniform
    assert sum(losses[-5:]) / 5 < 0.25  # nats/token; the neighbours determine each token


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

def _cfg(**model):
    return validate_config({"run": "t", "data": {"window": 32},
                            "model": {"dim": 16, "layers": 1, "cond_dim": 8, **model}})


@pytest.mark.parametrize("backbone", ["mamba", "caduceus"])
def test_build_backbone_from_config(backbone):
    cfg = _cfg(backbone=backbone, mixer="mamba2", headdim=8, d_state=4, expand=3)
    model = build_backbone(cfg["model"], V, complement=COMP)
    assert isinstance(model, MambaLM)
    assert model.rc_equivariant == (backbone == "caduceus")
    width = 8 if backbone == "caduceus" else 16
    assert model.embed.embedding_dim == width
    assert model.blocks[0].mixer.d_inner == 3 * width
    assert model(torch.zeros(2, 32, dtype=torch.long)).shape == (2, 32, V)


def test_rc_conjoin_from_config_for_dit_and_mamba():
    for backbone in ("dit", "mamba"):
        cfg = _cfg(backbone=backbone, heads=2, rc_conjoin=True)
        model = build_backbone(cfg["model"], V, complement=COMP)
        assert torch.equal(model.rc_conjoin, torch.as_tensor(COMP))
        # the causal AR baseline (compare_ar) is never conjoined
        assert build_backbone(cfg["model"], V, causal=True, complement=COMP).rc_conjoin \
            is None
    with pytest.raises(ValueError, match="complement"):
        build_backbone(cfg["model"], V)


@pytest.mark.parametrize("extra,match", [
    ({"compare_ar": True}, "cannot be causal"),
    ({"objective": "ar"}, "cannot be causal"),
    ({"model": {"dim": 17}}, "even"),
    ({"model": {"rc_conjoin": True}}, "equivariant already"),
    ({"model": {"mixer": "mamba2", "headdim": 24}}, "headdim"),
])
def test_caduceus_config_errors(extra, match):
    cfg = {"run": "t", "model": {"backbone": "caduceus", "dim": 32}}
    for key, value in extra.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    with pytest.raises(DnadiffError, match=match):
        validate_config(cfg)


def test_rc_conjoin_refused_for_the_ar_objective():
    with pytest.raises(DnadiffError, match="rc_conjoin"):
        validate_config({"run": "t", "objective": "ar", "model": {"rc_conjoin": True}})
    validate_config({"run": "t", "compare_ar": True, "model": {"rc_conjoin": True}})
    # DiT-only keys do not constrain mamba (dim 20 is not 4 heads x an even head width)
    validate_config({"run": "t", "model": {"backbone": "mamba", "dim": 20}})


def test_caduceus_checkpoint_round_trip(tmp_path):
    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    cfg = _cfg(backbone="caduceus")
    tok = TOK.to_dict()
    model = _randomized(build_backbone(cfg["model"], V, complement=COMP)).float()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, config=cfg, tokenizer=tok, step=3)
    loaded, _, _ = model_from_checkpoint(load_checkpoint(path))
    x = _tokens(b=2, length=32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_checkpoint_conjoin_override_and_cuda_fallback(tmp_path):
    """Post-hoc conjoining switched on for a checkpoint trained without it; a checkpoint
    trained with scan_impl cuda still loads where the kernels are missing."""
    from dnadiff.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint

    cfg = _cfg(backbone="mamba")
    model = _randomized(build_backbone(cfg["model"], V)).float()
    path = tmp_path / "m.pt"
    cfg["model"]["scan_impl"] = "cuda"
    save_checkpoint(path, model=model, config=cfg, tokenizer=TOK.to_dict(), step=3)
    x = _tokens(b=2, length=32)
    plain, _, _ = model_from_checkpoint(load_checkpoint(path))
    if not mamba_ssm_status()[0]:
        assert plain.blocks[0].mixer.scan_impl == "auto"
    conj, _, _ = model_from_checkpoint(load_checkpoint(path), rc_conjoin=True)
    with torch.no_grad():
        assert torch.equal(plain(x), model.eval()(x))
        out, out_rc = conj(x), conj(_rc(x))
        assert torch.allclose(out, 0.5 * (plain(x) + _rc_logits(plain(_rc(x)))), atol=1e-6)
    assert (out_rc - _rc_logits(out)).abs().max().item() < 1e-5


def test_sampling_and_scoring_with_post_hoc_conjoining(tmp_path):
    """sample.rc_conjoin / evaluate.rc_conjoin switch conjoining on for a plain checkpoint;
    the FASTA headers say so."""
    from dnadiff.checkpoint import save_checkpoint
    from dnadiff.generation import sample_to_fasta

    cfg = _cfg(backbone="mamba")
    model = _randomized(build_backbone(cfg["model"], V)).float()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model=model, config=cfg, tokenizer=TOK.to_dict(), step=3)
    sc = {**cfg["sample"], "num_samples": 2, "steps": 4, "batch_size": 2}
    for conjoin in (None, True):
        out = tmp_path / f"s{conjoin}.fa"
        sample_to_fasta(path, out, {**sc, "rc_conjoin": conjoin}, "r")
        header = out.read_text().splitlines()[0]
        assert ("rc_conjoin=true" in header) == bool(conjoin)
