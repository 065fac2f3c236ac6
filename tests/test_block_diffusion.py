"""Block diffusion (BD3-LM): the exact limits (one block is MDLM, blocks of one at t = 1 are the
AR NLL), no leak from a block or later ones (values and gradients), sampling sees exactly what
training saw, every MDLM sampler inside a block, and the config and sampling refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from generation_kit import EPS, GEN, MASK, V, randomized_dit

from dnadiff.checkpoint import save_checkpoint
from dnadiff.config import validate_config
from dnadiff.diffusion import build_objective
from dnadiff.diffusion.mdlm import MDLM
from dnadiff.diffusion.samplers import SAMPLERS, block_sampler
from dnadiff.diffusion.samplers.driver import fill_batches
from dnadiff.diffusion.schedule import LogLinearSchedule
from dnadiff.errors import DnadiffError
from dnadiff.generation import write_samples
from dnadiff.models import build_backbone
from dnadiff.models.blockwise import attention_mask
from dnadiff.tokenizers import DNATokenizer

from conftest import read_fasta

L = 16


def mdlm(block_size=None):
    return MDLM(LogLinearSchedule(EPS), MASK, GEN, V, block_size=block_size, window=L)


def data(b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (b, L), generator=g)


@pytest.mark.parametrize("kernel", [0, 5])
def test_one_block_is_mdlm(kernel):
    """B = window: the same masks, weights and loss as MDLM for the same times and draws."""
    model = randomized_dit(conv_kernel=kernel)
    x0, t = data(), torch.tensor([0.2, 0.55, 0.9])
    keep = torch.ones_like(x0, dtype=torch.bool)
    plain, _, _ = mdlm().token_nll(model, x0, keep, t=t, generator=torch.Generator().manual_seed(3))
    block, _, _ = mdlm(L).token_nll(model, x0, keep, t=t,
                                    generator=torch.Generator().manual_seed(3))
    assert torch.allclose(plain, block, rtol=1e-5, atol=1e-5)
    assert plain.abs().min() > 0


@pytest.mark.parametrize("kernel", [0, 5, 9])
def test_blocks_of_one_at_t1_are_the_exact_ar_likelihood(kernel):
    """B = 1, every position masked (t = 1, weight 1): the NELBO is sum_i -log p(x_i | x_<i),
    and it equals the likelihood of left-to-right decoding with the cache (the sampling path)."""
    model, obj = randomized_dit(conv_kernel=kernel), mdlm(1)
    x0 = data()
    nll, n, _ = obj.token_nll(model, x0, torch.ones_like(x0, dtype=torch.bool),
                              t=torch.ones(3, L))
    ctx, seq = model.block_context(3), torch.zeros(3)
    for i in range(L):
        logp = obj.log_probs(model, torch.full((3, 1), MASK), torch.ones(3), cond=ctx)
        seq -= logp[:, 0].gather(-1, x0[:, i: i + 1]).squeeze(-1)
        ctx.append(x0[:, i: i + 1])
    assert torch.allclose(nll, seq, rtol=1e-5, atol=1e-5)
    assert n.tolist() == [L] * 3


def test_blocks_of_one_match_the_ar_nll_in_expectation():
    """Random times (weight 1/t on a position masked with probability t): the mean of the
    NELBO over draws is the AR NLL, within 4 standard errors; its spread is the variance the
    clipped schedules of the paper cut."""
    model, obj = randomized_dit(conv_kernel=5), mdlm(1)
    x0 = data(b=1).expand(400, -1)
    keep = torch.ones_like(x0, dtype=torch.bool)
    exact, _, _ = obj.token_nll(model, x0[:1], keep[:1], t=torch.ones(1, L))
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([obj.token_nll(model, x0, keep, generator=g)[0].detach()
                       for _ in range(5)])
    se = draws.std() / draws.numel() ** 0.5
    assert abs(float(draws.mean() - exact[0].detach())) < 4 * float(se)
    assert draws.std() > 0


@pytest.mark.parametrize("size", [1, 3, 4, 8])
@pytest.mark.parametrize("kernel", [0, 5, 9])
def test_sampling_context_sees_what_training_sees(size, kernel):
    """The logits of block b denoised against a cache of blocks < b equal the training pass's
    logits of block b (attention and convolution alike), the last block shorter included."""
    model = randomized_dit(conv_kernel=kernel)
    x0 = data()
    g = torch.Generator().manual_seed(1)
    x_t = torch.where(torch.rand(x0.shape, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    with torch.no_grad():
        train = model.block_logits(x_t, x0, size)
        ctx = model.block_context(3)
        for start in range(0, L, size):
            sample = model(x_t[:, start: start + size], cond=ctx)
            assert torch.allclose(sample, train[:, start: start + size], atol=1e-5), start
            ctx.append(x0[:, start: start + size])


def test_the_context_keeps_at_most_a_window_less_a_block():
    """Past the window the context keeps the last window - block positions (what a block saw
    in training), whatever the length generated."""
    model = randomized_dit(conv_kernel=5)
    x0 = torch.randint(0, 4, (3, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ctx = model.block_context(3, keep=L - 4)
        for start in range(0, 40, 4):
            ctx.append(x0[:, start: start + 4])
            assert all(k.shape[2] == min(start + 4, L - 4) == v.shape[2] for k, v in ctx.kv)
        assert ctx.pos == 40 and torch.equal(ctx.tail, model.embed(x0[:, -2:]))


def test_attention_mask_is_the_papers():
    m = attention_mask(4, 2)
    noisy_to_noisy, noisy_to_clean = m[:4, :4], m[:4, 4:]
    clean_to_noisy, clean_to_clean = m[4:, :4], m[4:, 4:]
    assert noisy_to_noisy.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    assert noisy_to_clean.tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]]
    assert not clean_to_noisy.any()
    assert clean_to_clean.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1]]


class Probe(torch.nn.Module):
    """The embedding with a leaf offset added per call (noisy copy first, clean second)."""

    def __init__(self, embed, shape):
        super().__init__()
        self.embed, self.offsets, self.calls = embed, [], 0
        self.embedding_dim, self.weight = embed.embedding_dim, embed.weight
        self.shape = shape

    def forward(self, tokens):
        d = torch.zeros(*tokens.shape, self.embedding_dim, requires_grad=True)
        self.offsets.append(d)
        return self.embed(tokens) + d


@pytest.mark.parametrize("kernel", [0, 5, 9])
def test_nothing_leaks_into_a_block_from_itself_or_later_blocks(kernel):
    """The loss of block b is unchanged when the clean tokens of blocks >= b change, and its
    gradient with respect to every input it must not see is exactly zero: the noisy copy
    outside block b and the clean copy of blocks >= b."""
    size, b = 4, 2
    model = randomized_dit(conv_kernel=kernel)
    x0 = data()
    g = torch.Generator().manual_seed(1)
    x_t = torch.where(torch.rand(x0.shape, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    x_t[:, b * size: (b + 1) * size] = MASK
    other = x0.clone()
    other[:, b * size:] = (other[:, b * size:] + 1) % 4
    with torch.no_grad():
        a = model.block_logits(x_t, x0, size)[:, : (b + 1) * size]
        c = model.block_logits(x_t, other, size)[:, : (b + 1) * size]
    assert torch.equal(a, c)
    model.embed = Probe(model.embed, x0.shape)
    out = model.block_logits(x_t, x0, size)[:, b * size: (b + 1) * size]
    out.logsumexp(-1).sum().backward()
    noisy, clean = (d.grad for d in model.embed.offsets)
    inside = slice(b * size, (b + 1) * size)
    assert noisy[:, inside].abs().sum() > 0 and clean[:, : b * size].abs().sum() > 0
    assert torch.count_nonzero(noisy[:, : b * size]) == 0
    assert torch.count_nonzero(noisy[:, (b + 1) * size:]) == 0
    assert torch.count_nonzero(clean[:, b * size:]) == 0


def test_training_draws_one_stratified_time_per_block():
    obj, model = mdlm(4), randomized_dit()
    x0 = data(b=8)
    _, _, t = obj.token_nll(model, x0, torch.ones_like(x0, dtype=torch.bool),
                            generator=torch.Generator().manual_seed(0))
    assert t.shape == (8, L // 4)
    u = (t.flatten().double() - EPS) / (1 - EPS)
    strata = torch.sort(torch.floor(u * 32)).values
    assert strata.tolist() == list(range(32))  # one draw in each of the 32 strata


@pytest.mark.parametrize("name", [s for s, v in SAMPLERS.items() if "mdlm" in v.objectives])
def test_every_mdlm_sampler_runs_inside_blocks(name):
    """Any length (past the window), the prefix kept, nothing left masked, deterministic."""
    model, obj = randomized_dit(conv_kernel=5), mdlm(4)
    fill = block_sampler(name, obj, model, steps=6)
    start = torch.full((30,), MASK)
    start[:5] = torch.tensor([0, 1, 2, 3, 0])
    runs = []
    for _ in range(2):
        out = list(fill_batches(fill, 3, 2, start, torch.Generator().manual_seed(0),
                                window=L, stride=L // 2))
        runs.append(torch.cat([x for _, x, _ in out]))
        assert out[0][2]["forward_passes"] >= 7  # at least a pass per block
    assert torch.equal(runs[0], runs[1])
    x = runs[0]
    assert x.shape == (3, 30) and not (x == MASK).any() and (x < 4).all()
    assert (x[:, :5] == start[:5]).all()


def block_checkpoint(path, **sample):
    cfg = validate_config({"run": "bd", "data": {"window": 16}, "diffusion": {"block_size": 4},
                           "model": {"dim": 16, "heads": 2, "layers": 1, "cond_dim": 16,
                                     "conv_kernel": 5},
                           "sample": {"num_samples": 3, "batch_size": 2, "steps": 4, "seed": 1,
                                      **sample}})
    torch.manual_seed(0)
    model = build_backbone(cfg["model"], V)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    save_checkpoint(path, model, cfg, DNATokenizer(), step=7)
    return cfg


def test_block_checkpoint_samples_any_length_with_a_prefix(tmp_path):
    cfg = block_checkpoint(tmp_path / "m.pt")
    obj = build_objective(cfg, DNATokenizer())
    assert obj.block_size == 4
    sc = dict(cfg["sample"], length=50, prefix="ACGTA")
    assert write_samples(tmp_path / "m.pt", tmp_path / "s.fa", sc, "bd") == 3
    recs = read_fasta(tmp_path / "s.fa")
    assert all(len(seq) == 50 and seq.startswith("ACGTA") and set(seq) <= set("ACGT")
               for _, seq in recs)
    assert all("block_size=4" in header and "semi_ar_stride" not in header
               for header, _ in recs)


@pytest.mark.parametrize("key,value,ok", [
    ("suffix", "ACG", False),                      # in a later block: never seen
    ("template", "ACGTA-C-----", True),            # fixed characters in the generated block
    ("template", "AC------GT", False),             # fixed characters two blocks on
    ("template", "AC--GTAC", False),               # a fixed block after a generated one
])
def test_block_checkpoint_refuses_what_it_cannot_see(tmp_path, key, value, ok):
    cfg = block_checkpoint(tmp_path / "m.pt")
    sc = dict(cfg["sample"], **{key: value})
    if ok:
        write_samples(tmp_path / "m.pt", tmp_path / "s.fa", sc, "bd")
        assert all(len(seq) == 12 and seq[:5] == "ACGTA" and seq[6] == "C"
                   for _, seq in read_fasta(tmp_path / "s.fa"))
    else:
        with pytest.raises(DnadiffError, match="block diffusion model.*pasted on"):
            write_samples(tmp_path / "m.pt", tmp_path / "s.fa", sc, "bd")
        assert not (tmp_path / "s.fa").exists()


@pytest.mark.parametrize("model,why", [
    ({"backbone": "mamba"}, "the DiT is the backbone"),
    ({"time_conditioning": True}, "one time per window"),
    ({"rc_conjoin": True}, "strand averaging"),
])
def test_block_size_is_refused_where_it_cannot_apply(model, why):
    with pytest.raises(DnadiffError, match=f"diffusion.block_size.*{why}"):
        validate_config({"run": "x", "data": {"window": 64}, "diffusion": {"block_size": 8},
                         "model": model})


def test_block_size_of_the_window_or_ar_is_plain():
    tok = DNATokenizer()
    whole = validate_config({"run": "x", "data": {"window": 64}, "diffusion": {"block_size": 64}})
    assert build_objective(whole, tok).block_size is None
    ar = validate_config({"run": "x", "objective": "ar", "data": {"window": 64},
                          "diffusion": {"block_size": 8}})
    assert build_objective(ar, tok).name == "ar"


def test_one_pass_of_a_block_model_predicts_the_block_after_the_context():
    """What the probes read: the block holding the first mask, denoised against the blocks
    before it (the same logits as sampling's), NaN after it; plain MDLM: every position."""
    model, obj = randomized_dit(conv_kernel=5), mdlm(4)
    x = data()
    x[:, 6:] = MASK  # the prompt ends inside block 1
    with torch.no_grad():
        logp = obj.one_pass_log_probs(model, x, torch.ones(3))
        ctx = model.block_context(3)
        ctx.append(x[:, :4])
        want = obj.log_probs(model, x[:, 4:8], torch.ones(3), cond=ctx)
    assert torch.allclose(logp[:, 4:8], want)
    assert logp[:, :4].isnan().all() and logp[:, 8:].isnan().all()
    plain = mdlm().one_pass_log_probs(model, x, torch.ones(3))
    assert not plain.isnan().any()


def test_the_collapse_probe_of_a_block_model_reads_its_first_block():
    from dnadiff.evaluation.discreteness import collapse_probe
    tok = DNATokenizer()
    model, obj = randomized_dit(conv_kernel=5), mdlm(4)
    prompts = [("a", tok.encode("ACGTAC")), ("b", tok.encode("GGTTCA"))]
    rows = collapse_probe(model, obj, tok, prompts, 8, [10, 10, 10, 10, 0, 0, 0])
    # prompts of 6 end inside block 1: its last 2 positions are what one pass predicts
    assert sorted({r["distance"] for r in rows}) == [1, 2] and len(rows) == 4


def test_influence_of_a_block_model_stops_at_its_block_on_the_right():
    """The influence probe on a block model: the query (the centre, masked) sees the clean
    blocks to its left and its own block; a position in a later block has exactly no
    influence."""
    from dnadiff.evaluation.influence import influence_probe

    model, obj = randomized_dit(conv_kernel=5), mdlm(4)
    windows = data(b=4).numpy()
    res = influence_probe(model, obj, windows, [1, 2, 3, 4, 6], GEN, 3, seed=0)
    kl = dict(zip([(side, d) for side, d, _ in res["probes"]], res["kl"].mean(0)))
    # the centre (8) opens block 2 (8..11): 9, 10, 11 are in it, 12 and 14 are not
    assert kl[("right", 1)] > 0 and kl[("right", 3)] > 0
    assert kl[("right", 4)] == 0 and kl[("right", 6)] == 0
    assert all(kl[("left", d)] > 0 for d in (1, 2, 3, 4, 6))


def test_the_masked_reference_of_a_block_model_sees_what_it_sees():
    """The masked Markov reference scored like a block model: a neighbour in an earlier block
    is read clean, one in a later block is a wildcard; one block is the plain reference."""
    from dnadiff.evaluation.masked_markov import MaskedMarkov

    mm = MaskedMarkov(1, GEN, V, np.zeros(1), np.zeros(1), 0)
    x0 = torch.tensor([[0, 1, 2, 3, 0, 1]])
    x_t = torch.tensor([[MASK, 1, MASK, MASK, 0, MASK]])
    G = len(GEN)  # the wildcard symbol
    codes = mm.context_codes(x_t.numpy(), x0.numpy(), 2)[0, :, 1]
    # blocks {0,1} {2,3} {4,5}; code = left * (G + 1) + right
    want = [G * 5 + 1,   # 0: left outside, right 1 (same block, visible)
            G * 5 + G,   # 1: left masked (same block), right in a later block
            1 * 5 + G,   # 2: left clean 1 (earlier block), right masked
            G * 5 + G,   # 3: left masked, right in a later block
            3 * 5 + G,   # 4: left clean 3, right masked
            0 * 5 + G]   # 5: left 0 (same block, visible), right outside
    assert codes.tolist() == want
    plain = mm.context_codes(x_t.numpy())[0, :, 1]
    assert np.array_equal(mm.context_codes(x_t.numpy(), x0.numpy(), 6)[0, :, 1], plain)


def test_a_deeper_model_samples_what_it_trained_on():
    """Three blocks (the last one runs the noisy queries only): sampling's logits equal
    training's, and nothing of a block's own or later clean tokens reaches it."""
    from dnadiff.models.dit import DiT

    torch.manual_seed(0)
    model = DiT(V, dim=16, layers=3, heads=2, cond_dim=16, conv_kernel=5).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.4)
    x0 = data()
    g = torch.Generator().manual_seed(2)
    x_t = torch.where(torch.rand(x0.shape, generator=g) < 0.5, torch.full_like(x0, MASK), x0)
    other = torch.where(x_t == MASK, (x0 + 1) % 4, x0)  # other tokens under every mask
    with torch.no_grad():
        train = model.block_logits(x_t, x0, 4)
        ctx = model.block_context(3)
        for start in range(0, L, 4):
            assert torch.allclose(model(x_t[:, start: start + 4], cond=ctx),
                                  train[:, start: start + 4], atol=1e-5)
            ctx.append(x0[:, start: start + 4])
        leaked = model.block_logits(x_t, other, 4)
    first = x_t[:, :4] == MASK
    assert first.any()
    # block 0 never sees clean tokens: its logits cannot change
    assert torch.equal(leaked[:, :4], train[:, :4])
