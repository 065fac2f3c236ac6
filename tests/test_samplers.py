"""The sampler menu: every sampler's invariants, the exact expectations of the per-row cache,
first-hitting's pass count and marginals, the confidence rules, remasking, AR with a KV cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_sampling import EPS, MASK, Recorder, V, all_masked, make_mdlm

from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.samplers import SAMPLERS, block_sampler, sampler_options
from dnadiff.diffusion.samplers.ancestral import expected_passes
from dnadiff.diffusion.samplers.autoregressive import autoregressive_sample
from dnadiff.models import build_backbone
from dnadiff.models.dit import DiT
from dnadiff.tokenizers import DNATokenizer

from conftest import IIDTrueConditional

MDLM_SAMPLERS = [n for n, s in SAMPLERS.items() if "mdlm" in s.objectives]


def random_dit(seed=0, **kw):
    torch.manual_seed(seed)
    model = DiT(V, dim=16, layers=1, heads=2, cond_dim=8, **kw).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def fill(name, model, x_init, steps, seed=0, **options):
    return block_sampler(name, make_mdlm(), model, steps=steps, **options)(
        x_init, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", MDLM_SAMPLERS)
def test_every_sampler_fills_every_mask_with_a_generable_token(name):
    x, info = fill(name, Recorder(), all_masked(4, 48), steps=12)
    assert ((x >= 0) & (x < 4)).all()  # never N, [MASK] or [PAD]
    assert info["forward_passes"] >= 1 and info["row_evaluations"] >= info["forward_passes"]


@pytest.mark.parametrize("name", MDLM_SAMPLERS)
def test_conditioning_positions_never_change(name):
    g = torch.Generator().manual_seed(3)
    x_init = all_masked(5, 60)
    x_init[:, :15] = torch.randint(0, 4, (5, 15), generator=g)     # prefix
    x_init[:, 30:40] = torch.randint(0, 4, (5, 10), generator=g)   # template island
    x_init[:, 55:] = torch.randint(0, 4, (5, 5), generator=g)      # suffix
    given = x_init != MASK
    model = Recorder()
    x, _ = fill(name, model, x_init, steps=10, remdm_schedule="loop") if name == "remdm" \
        else fill(name, model, x_init, steps=10)
    assert torch.equal(x[given], x_init[given]) and not (x == MASK).any()
    cols = given[0]
    for inp in model.inputs:  # and the model saw them unchanged at every pass
        for row in inp:
            assert (x_init[:, cols] == row[cols]).all(1).any()


@pytest.mark.parametrize("name,options", [("ancestral", {}), ("confidence", {}),
                                          ("confidence", {"threshold": 0.3})])
def test_cached_equals_uncached(name, options):
    model = random_dit()
    a, ia = fill(name, model, all_masked(6, 32), steps=64, cache=True, **options)
    b, ib = fill(name, model, all_masked(6, 32), steps=64, cache=False, **options)
    assert torch.equal(a, b)
    if name == "ancestral":  # confidence reveals something in every row at every pass
        assert ia["row_evaluations"] < ib["row_evaluations"]


def test_per_row_cache_skips_the_expected_row_evaluations():
    """steps = L: each row is evaluated only after a step in which it revealed something, so
    its expected evaluations are those of a batch of one (``expected_passes``), about
    (1 - 1/e) L: 1.58x fewer than uncached, at any batch size (the whole-batch cache of
    earlier versions saved nothing at batch 64)."""
    L, B = 48, 64
    _, exp_cached = expected_passes(make_mdlm().schedule, L, L)
    rows = []
    for seed in range(3):
        _, info = fill("ancestral", Recorder(), all_masked(B, L), steps=L, seed=seed)
        rows.append(info["row_evaluations"] / B)
    mean = float(np.mean(rows))
    # a row's evaluation count has SD ~ sqrt(L / e) / 2; the mean over 192 rows is within 0.5
    assert abs(mean - exp_cached) < 0.5, (mean, exp_cached)
    assert exp_cached == pytest.approx(L * (1 - math.exp(-1)), rel=0.05)


def test_first_hitting_passes_equal_generated_tokens_and_reveal_one_at_a_time():
    model = Recorder()
    x_init = all_masked(3, 40)
    x_init[:, :10] = 0
    x, info = fill("first_hitting", model, x_init, steps=1)
    assert info["forward_passes"] == 30 and info["row_evaluations"] == 90
    masked_before = [(inp == MASK).sum(1) for inp in model.inputs]
    assert [int(m[0]) for m in masked_before] == list(range(30, 0, -1))


def test_first_hitting_marginals_match_the_model_and_ancestral():
    """With a time-independent denoiser of known per-position distribution, every sampler's
    token marginals are that distribution."""
    p = np.array([0.1, 0.2, 0.3, 0.4])
    model = IIDTrueConditional(p)
    for name, steps in (("first_hitting", 1), ("ancestral", 200)):
        x, _ = fill(name, model, all_masked(20, 1000), steps=steps, seed=7)
        counts = torch.bincount(x.flatten(), minlength=V).double().numpy()[:4]
        chi2 = ((counts - p * x.numel()) ** 2 / (p * x.numel())).sum()
        assert chi2 < 20, (name, counts)


def test_first_hitting_times_follow_the_schedule():
    """The first event among n masked positions at time t: (1 - alpha_s) / (1 - alpha_t) is the
    largest of n uniforms; for the log-linear schedule s = t u^(1/n), so the k-th event time of
    n positions from t = 1 has mean prod_{j <= k} n_j / (n_j + 1)."""
    mdlm = make_mdlm(time_conditioning=True)
    seen = []

    class TimeRecorder(Recorder):
        def forward(self, tokens, sigma=None, cond=None):
            seen.append(sigma.clone())
            return super().forward(tokens, sigma, cond)

    n, B = 5, 4000
    block_sampler("first_hitting", mdlm, TimeRecorder(), steps=1)(
        all_masked(B, n), generator=torch.Generator().manual_seed(0))
    times = [1 - torch.exp(-s.double()) for s in seen]  # sigma = -log(alpha) -> 1 - alpha
    for k in range(1, n):
        expected = np.prod([j / (j + 1) for j in range(n, n - k, -1)])
        got = (times[k] / (1 - EPS)).mean().item()
        assert got == pytest.approx(expected, abs=0.02), (k, got, expected)


def test_confidence_top_k_reveals_k_per_step_most_confident_first():
    model = random_dit(seed=1)
    x_init = all_masked(2, 24)
    recorder = []

    class Rec(torch.nn.Module):
        def forward(self, tokens, sigma=None, cond=None):
            recorder.append(tokens.clone())
            return model(tokens, sigma, cond)

    x, info = fill("confidence", Rec(), x_init, steps=6, k=4)
    assert info["forward_passes"] == 6
    revealed = [int((r != MASK).sum()) for r in recorder]
    assert revealed == [0, 8, 16, 24, 32, 40]  # 4 per row per step, 2 rows
    # default k: as many as finish in `steps`
    _, info = fill("confidence", random_dit(), all_masked(3, 25), steps=5)
    assert info["forward_passes"] == 5


def test_confidence_threshold_and_entropy_bound():
    # a model certain of position 0..9 (probability 1) and uniform elsewhere
    class Certain(torch.nn.Module):
        def forward(self, tokens, sigma=None, cond=None):
            logits = torch.zeros(*tokens.shape, V)
            logits[:, :10, 2] = 50.0
            return logits

    x, info = fill("confidence", Certain(), all_masked(1, 30), steps=30, threshold=0.9)
    # the first pass reveals the ten certain positions, then one (the best) per pass
    assert info["forward_passes"] == 1 + 20 and (x[0, :10] == 2).all()
    # entropy bound: the certain ones (entropy ~0) and one uniform (its own entropy does not
    # count, only the sum of the more certain ones') together, then one per pass
    x, info = fill("confidence", Certain(), all_masked(1, 30), steps=30, entropy_bound=1e-6)
    assert info["forward_passes"] == 1 + 19 and (x[0, :10] == 2).all()
    # a bound of one uniform position's entropy lets two uniform positions in together (the
    # sum less the largest): 10 + 2 in the first pass, then 2 per pass
    x, info = fill("confidence", Certain(), all_masked(1, 30), steps=30,
                   entropy_bound=math.log(4) + 1e-9)
    assert info["forward_passes"] == 1 + 9


@pytest.mark.parametrize("schedule", ["cap", "loop"])
def test_remasking_keeps_the_length_and_only_revises_generated_positions(schedule):
    model = Recorder()
    x_init = all_masked(4, 50)
    x_init[:, :20] = 1
    x, info = fill("remdm", model, x_init, steps=40, remdm_schedule=schedule, remdm_eta=0.2)
    assert x.shape == x_init.shape and (x[:, :20] == 1).all() and not (x == MASK).any()
    # something was remasked: a position revealed at one pass is masked again later
    masks = torch.stack([inp == MASK for inp in model.inputs])
    remasked = (~masks[:-1] & masks[1:]).any()
    assert remasked and not masks[:, :, :20].any()
    assert info["forward_passes"] == 40


def test_remdm_loop_holds_the_masked_share_at_alpha_on():
    """In the loop phase alpha stays at alpha_on: about 1 - alpha_on of the positions stay
    masked while tokens are remasked and revealed again."""
    model = Recorder()
    fill("remdm", model, all_masked(8, 400), steps=100, remdm_schedule="loop")
    grid = torch.linspace(1.0, 1e-5, 101, dtype=torch.float64)
    loop = [i for i in range(100) if 0.05 < float(grid[i]) <= 0.55]
    shares = [float((model.inputs[i] == MASK).double().mean()) for i in loop[2:]]
    assert np.mean(shares) == pytest.approx(0.1, abs=0.02)


@pytest.mark.parametrize("layer_conv", [0, 3])
def test_ar_with_a_kv_cache_equals_without(layer_conv):
    """The KV-cached decoder (and its per-block convolution windows) gives the full pass's
    logits and the same samples."""
    tok = DNATokenizer()
    cfg = validate_config({"run": "x", "objective": "ar", "model": {
        "dim": 32, "heads": 2, "layers": 2, "cond_dim": 16, "conv_kernel": 5,
        "layer_conv": layer_conv}})
    model = build_backbone(cfg["model"], 7, causal=True).double().eval()
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ar = build_objective(cfg, tok)
    x_init = torch.full((3, 40), tok.mask_id)
    x_init[:, :5] = 2  # a prompt
    a, ia = autoregressive_sample(ar, model, x_init, torch.Generator().manual_seed(1), cache=True)
    b, ib = autoregressive_sample(ar, model, x_init, torch.Generator().manual_seed(1),
                                  cache=False)
    assert torch.equal(a, b) and (a[:, :5] == 2).all()
    assert ia["forward_passes"] == 40 and ib["forward_passes"] == 35
    # the incremental logits are the full pass's
    full = model(ar.shift_right(a))
    dec = model.decoder(3)
    steps = [dec.step(torch.full((3, 1), ar.bos_id))] + [dec.step(a[:, i - 1:i])
                                                          for i in range(1, 40)]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-10)


def test_options_come_from_the_config_and_unknown_ones_are_refused():
    cfg = validate_config({"run": "x", "sample": {"sampler": "confidence", "threshold": 0.8}})
    assert sampler_options("confidence", cfg["sample"]) == {"threshold": 0.8}
    assert sampler_options("ancestral", cfg["sample"]) == {}
    with pytest.raises(ValueError, match="takes no option 'threshold'"):
        block_sampler("ancestral", make_mdlm(), Recorder(), 4, threshold=0.5)
    with pytest.raises(ValueError, match="cannot sample a model trained with the mdlm"):
        block_sampler("autoregressive", make_mdlm(), Recorder(), 4)


@pytest.mark.parametrize("name", MDLM_SAMPLERS)
def test_same_seed_same_sequences(name):
    model = random_dit(seed=2)
    a, _ = fill(name, model, all_masked(3, 20), 8, seed=4)
    b, _ = fill(name, model, all_masked(3, 20), 8, seed=4)
    assert torch.equal(a, b)


def test_each_sampler_takes_exactly_its_options():
    """No sampler swallows unknown keywords: its signature is the common arguments it takes
    (steps and cache only where the registry says so) and its own options."""
    import inspect

    for s in SAMPLERS.values():
        params = inspect.signature(s.fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), s.name
        assert set(s.options) <= set(params), s.name
        assert ("steps" in params) == s.steps and ("cache" in params) == s.cache, s.name


def test_an_unset_sampler_is_the_objectives_own():
    from dnadiff.diffusion.samplers import default_sampler, sampler_for

    assert sampler_for(None, "mdlm").name == default_sampler("mdlm") == "ancestral"
    assert sampler_for(None, "ar").name == default_sampler("ar") == "autoregressive"
    with pytest.raises(ValueError, match="unknown sampler .nonesuch."):
        sampler_for("nonesuch", "mdlm")


def test_the_batch_driver_fills_every_batch_from_the_start_ids():
    """``fill_batches``: batches of at most batch_size, each a copy of the start ids, the fixed
    positions kept; longer than the window, semi-autoregressive blocks."""
    from dnadiff.diffusion.samplers.driver import fill_batches

    start = torch.full((12,), MASK, dtype=torch.long)
    start[:2] = torch.tensor([1, 2])
    fill = block_sampler("ancestral", make_mdlm(), Recorder(), steps=4)
    out = list(fill_batches(fill, 5, 2, start, torch.Generator().manual_seed(0)))
    assert [(first, x.shape[0]) for first, x, _ in out] == [(0, 2), (2, 2), (4, 1)]
    for _, x, info in out:
        assert (x[:, :2] == torch.tensor([1, 2])).all() and (x != MASK).all()
        assert info["forward_passes"] >= 1
    (_, x, info), = fill_batches(fill, 1, 1, start, torch.Generator().manual_seed(0),
                                 window=8, stride=4)
    assert x.shape == (1, 12) and (x != MASK).all() and info["forward_passes"] > 4


def test_conditional_sampling_and_bench_take_the_configured_sampler(tmp_path):
    from dnadiff.checkpoint import load_checkpoint, save_checkpoint
    from dnadiff.conditional import sample_conditional
    from dnadiff.errors import DnadiffError
    from dnadiff.perf.sampler import bench_sampler

    tok = DNATokenizer()
    cfg = validate_config({"run": "t", "data": {"window": 12}, "model": {
        "dim": 16, "layers": 1, "heads": 2, "cond_dim": 8, "num_classes": 2},
        "conditional": {"samples_per_class": 2, "sample_batch_size": 2, "guidance": [1.0],
                        "sampling_steps": 4}})
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c.pt", build_backbone(cfg["model"], tok.vocab_size), cfg,
                    tok, step=0)
    ckpt = load_checkpoint(tmp_path / "c.pt")

    def groups(sample_cfg):
        return [x for _, _, x in sample_conditional(ckpt, cfg["conditional"], 0, "cpu",
                                                    sample_cfg)]

    default = groups(None)
    assert all(np.array_equal(a, b) for a, b in zip(default, groups(cfg["sample"])))
    assert all(np.array_equal(a, b) for a, b in zip(default, groups({"sampler": "ancestral"})))
    remdm = groups({**cfg["sample"], "sampler": "remdm", "remdm_eta": 0.5})
    assert not all(np.array_equal(a, b) for a, b in zip(default, remdm))
    with pytest.raises(DnadiffError, match="sample.sampler"):
        groups({"sampler": "autoregressive"})
    fig = bench_sampler(12, 4, [2], checkpoint=tmp_path / "c.pt",
                        sample_cfg={**cfg["sample"], "sampler": "confidence", "k": 3})
    run, = fig["runs"]
    assert run["identical_sequences"] and run["cached_forward_passes"] <= 4
    assert "expected_cached_passes" not in run  # known for ancestral only
